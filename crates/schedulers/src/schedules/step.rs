//! Step decay (PyTorch's `StepLR`) and decay at milestones (`MultiStepLR`).

use crate::error::{ConfigError, at_least_one, ensure, positive};
use crate::observation::Interval;
use crate::scheduler::{Clock, Ticking};
use serde::{Deserialize, Serialize};

serde_defaults! {
    default_gamma: f64 = 0.1;
}

/// Configuration of [`StepLr`] (`kind = "step"`), PyTorch's `StepLR`.
///
/// With `t` the number of ticks so far and `η₀` the base learning rate:
///
/// ```text
/// η_t = η₀ · gamma^⌊t / step_size⌋
/// ```
///
/// computed as PyTorch does, by multiplying the previous rate by `gamma` every `step_size`
/// ticks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// Ticks between two decays; ≥ 1.
    pub step_size: u64,
    /// Multiplicative decay; > 0. Default 0.1.
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// Clock override; default `epoch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

/// Step decay; see [`StepConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepLr {
    config: StepConfig,
    clock: Clock,
    ticks: u64,
}

impl StepLr {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`.
    pub fn new(config: StepConfig, base_lr: f64) -> Result<Self, ConfigError> {
        at_least_one("step_size", config.step_size)?;
        positive("gamma", config.gamma)?;
        let interval = config.interval.unwrap_or(Interval::Epoch);
        Ok(StepLr {
            config,
            ticks: 0,
            clock: Clock {
                interval,
                lr: base_lr,
            },
        })
    }
}

impl Ticking for StepLr {
    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn tick(&mut self) {
        self.ticks += 1;
        if self.ticks % self.config.step_size == 0 {
            self.clock.lr *= self.config.gamma;
        }
    }
}

/// Configuration of [`MultiStepLr`] (`kind = "multistep"`), PyTorch's `MultiStepLR`.
///
/// ```text
/// η_t = η₀ · gamma^(number of milestones ≤ t)
/// ```
///
/// computed as PyTorch does, by multiplying the rate by `gamma` when a milestone is reached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiStepConfig {
    /// Ticks at which the rate decays; strictly increasing, each ≥ 1.
    pub milestones: Vec<u64>,
    /// Multiplicative decay; > 0. Default 0.1.
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// Clock override; default `epoch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

/// Decay at milestones; see [`MultiStepConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MultiStepLr {
    config: MultiStepConfig,
    clock: Clock,
    ticks: u64,
    /// Index of the next milestone not yet reached.
    next: usize,
}

/// Checks that milestones are strictly increasing and start at 1 or later.
pub(crate) fn check_milestones(milestones: &[u64]) -> Result<(), ConfigError> {
    ensure(
        milestones.first().is_none_or(|&m| m >= 1),
        "milestones",
        || format!("must be ≥ 1, got {milestones:?}"),
    )?;
    ensure(
        milestones.windows(2).all(|w| w[0] < w[1]),
        "milestones",
        || format!("must be strictly increasing, got {milestones:?}"),
    )
}

impl MultiStepLr {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`.
    pub fn new(config: MultiStepConfig, base_lr: f64) -> Result<Self, ConfigError> {
        check_milestones(&config.milestones)?;
        positive("gamma", config.gamma)?;
        let interval = config.interval.unwrap_or(Interval::Epoch);
        Ok(MultiStepLr {
            config,
            ticks: 0,
            next: 0,
            clock: Clock {
                interval,
                lr: base_lr,
            },
        })
    }
}

impl Ticking for MultiStepLr {
    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn tick(&mut self) {
        self.ticks += 1;
        if self.config.milestones.get(self.next) == Some(&self.ticks) {
            self.next += 1;
            self.clock.lr *= self.config.gamma;
        }
    }
}

/// Configuration of [`ExponentialLr`] (`kind = "exponential"`), PyTorch's `ExponentialLR`.
///
/// ```text
/// η_t = η₀ · gamma^t
/// ```
///
/// computed as PyTorch does, by multiplying the rate by `gamma` at every tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExponentialConfig {
    /// Multiplicative decay per tick; > 0.
    pub gamma: f64,
    /// Clock override; default `epoch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

/// Exponential decay; see [`ExponentialConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExponentialLr {
    config: ExponentialConfig,
    clock: Clock,
}

impl ExponentialLr {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`.
    pub fn new(config: ExponentialConfig, base_lr: f64) -> Result<Self, ConfigError> {
        positive("gamma", config.gamma)?;
        let interval = config.interval.unwrap_or(Interval::Epoch);
        Ok(ExponentialLr {
            config,
            clock: Clock {
                interval,
                lr: base_lr,
            },
        })
    }
}

impl Ticking for ExponentialLr {
    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn tick(&mut self) {
        self.clock.lr *= self.config.gamma;
    }
}
