//! Step decay (PyTorch's `StepLR`) and decay at milestones (`MultiStepLR`).

use crate::error::{ConfigError, at_least_one, ensure, positive};
use crate::length::{Length, Span};
use crate::observation::Interval;
use crate::scheduler::{Clock, RateBounds, ScheduleConfig, Ticking};
use serde::{Deserialize, Serialize};

serde_defaults! {
    default_gamma: f64 = 0.1;
}

/// The rates of a schedule that multiplies its base rate by `gamma` now and then: never above
/// the base rate unless `gamma` > 1, which grows it without bound.
fn decay_bounds(gamma: f64, base_lr: f64) -> RateBounds {
    RateBounds::up_to(if gamma <= 1.0 { base_lr } else { f64::MAX })
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
    /// Ticks between two decays (a [`Length`]); ≥ 1.
    pub step_size: Length,
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
    step_size: u64,
    gamma: f64,
    clock: Clock,
    ticks: u64,
}

impl ScheduleConfig for StepConfig {
    type Scheduler = StepLr;

    lengths!(
        clock = |c| c.interval.unwrap_or(Interval::Epoch),
        [step_size >= 1]
    );

    fn build(self, base_lr: f64) -> Result<StepLr, ConfigError> {
        StepLr::new(self, base_lr)
    }

    fn bounds(&self, base_lr: f64) -> RateBounds {
        decay_bounds(self.gamma, base_lr)
    }

    fn examples() -> Vec<Self> {
        vec![
            StepConfig {
                step_size: Length::Ticks(3),
                gamma: 0.5,
                interval: None,
            },
            StepConfig {
                step_size: Length::Ticks(2),
                gamma: 0.1,
                interval: Some(Interval::Step),
            },
        ]
    }
}

impl StepLr {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`.
    pub fn new(config: StepConfig, base_lr: f64) -> Result<Self, ConfigError> {
        let step_size = config.step_size.ticks("step_size")?;
        at_least_one("step_size", step_size)?;
        positive("gamma", config.gamma)?;
        Ok(StepLr {
            step_size,
            gamma: config.gamma,
            ticks: 0,
            clock: Clock {
                interval: config.clock(),
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
        if self.ticks % self.step_size == 0 {
            self.clock.lr *= self.gamma;
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
    /// Ticks at which the rate decays ([`Length`]s); strictly increasing, each ≥ 1.
    pub milestones: Vec<Length>,
    /// Multiplicative decay; > 0. Default 0.1.
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// Clock override; default `epoch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

impl ScheduleConfig for MultiStepConfig {
    type Scheduler = MultiStepLr;

    fn clock(&self) -> Interval {
        self.interval.unwrap_or(Interval::Epoch)
    }

    fn resolve(&self, span: Span) -> Result<Self, ConfigError> {
        Ok(MultiStepConfig {
            milestones: resolve_milestones(&self.milestones, span, self.clock())?,
            ..self.clone()
        })
    }

    fn build(self, base_lr: f64) -> Result<MultiStepLr, ConfigError> {
        MultiStepLr::new(self, base_lr)
    }

    fn bounds(&self, base_lr: f64) -> RateBounds {
        decay_bounds(self.gamma, base_lr)
    }

    fn examples() -> Vec<Self> {
        vec![
            MultiStepConfig {
                milestones: [2, 5, 9].map(Length::Ticks).to_vec(),
                gamma: 0.3,
                interval: None,
            },
            MultiStepConfig {
                milestones: Vec::new(),
                gamma: 0.1,
                interval: Some(Interval::Step),
            },
        ]
    }
}

/// Decay at milestones; see [`MultiStepConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MultiStepLr {
    milestones: Vec<u64>,
    gamma: f64,
    clock: Clock,
    ticks: u64,
    /// Index of the next milestone not yet reached.
    next: usize,
}

/// Milestones resolved against `span` on `clock`, checked as [`milestone_ticks`] does.
pub(crate) fn resolve_milestones(
    milestones: &[Length],
    span: Span,
    clock: Interval,
) -> Result<Vec<Length>, ConfigError> {
    let resolved = milestones
        .iter()
        .enumerate()
        .map(|(i, m)| m.resolve(&format!("milestones[{i}]"), span, clock, 1))
        .collect::<Result<Vec<_>, _>>()?;
    milestone_ticks(&resolved).map_err(|e| {
        let written: Vec<String> = milestones.iter().map(Length::to_string).collect();
        ConfigError::new(
            e.field,
            format!(
                "[{}] over {} {clock}s: {}; write fewer milestones or numbers of ticks",
                written.join(", "),
                span.ticks(clock),
                e.message
            ),
        )
    })?;
    Ok(resolved)
}

/// The milestones in ticks, checked: strictly increasing and at 1 or later.
pub(crate) fn milestone_ticks(milestones: &[Length]) -> Result<Vec<u64>, ConfigError> {
    let milestones = milestones
        .iter()
        .enumerate()
        .map(|(i, m)| m.ticks(&format!("milestones[{i}]")))
        .collect::<Result<Vec<u64>, _>>()?;
    ensure(
        milestones.first().is_none_or(|&m| m >= 1),
        "milestones",
        || format!("must be ≥ 1, got {milestones:?}"),
    )?;
    ensure(
        milestones.windows(2).all(|w| w[0] < w[1]),
        "milestones",
        || format!("must be strictly increasing, got {milestones:?}"),
    )?;
    Ok(milestones)
}

impl MultiStepLr {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`.
    pub fn new(config: MultiStepConfig, base_lr: f64) -> Result<Self, ConfigError> {
        let milestones = milestone_ticks(&config.milestones)?;
        positive("gamma", config.gamma)?;
        Ok(MultiStepLr {
            milestones,
            gamma: config.gamma,
            ticks: 0,
            next: 0,
            clock: Clock {
                interval: config.clock(),
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
        if self.milestones.get(self.next) == Some(&self.ticks) {
            self.next += 1;
            self.clock.lr *= self.gamma;
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

impl ScheduleConfig for ExponentialConfig {
    type Scheduler = ExponentialLr;

    lengths!(clock = |c| c.interval.unwrap_or(Interval::Epoch), []);

    fn build(self, base_lr: f64) -> Result<ExponentialLr, ConfigError> {
        ExponentialLr::new(self, base_lr)
    }

    fn bounds(&self, base_lr: f64) -> RateBounds {
        decay_bounds(self.gamma, base_lr)
    }

    fn examples() -> Vec<Self> {
        vec![ExponentialConfig {
            gamma: 0.9,
            interval: None,
        }]
    }
}

impl ExponentialLr {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`.
    pub fn new(config: ExponentialConfig, base_lr: f64) -> Result<Self, ConfigError> {
        positive("gamma", config.gamma)?;
        Ok(ExponentialLr {
            clock: Clock {
                interval: config.clock(),
                lr: base_lr,
            },
            config,
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
