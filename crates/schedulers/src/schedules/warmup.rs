//! Linear warmup in front of any schedule, metric-driven ones included.

use crate::error::{ConfigError, at_least_one, in_range};
use crate::observation::{Interval, Observation, Signals};
use crate::registry::{AnyScheduler, SchedulerConfig};
use crate::scheduler::Scheduler;
use serde::{Deserialize, Serialize};

serde_defaults! {
    one_third: f64 = 1.0 / 3.0;
}

/// Configuration of [`Warmup`] (`kind = "warmup"`): a linear ramp, then any schedule.
///
/// For the first `W` ticks (`warmup_steps` optimizer steps or `warmup_epochs` epochs), with
/// `t` the ticks so far and `η₀` the base learning rate:
///
/// ```text
/// η_t = η₀ · (start_factor + (1 − start_factor) · t / W)
/// ```
///
/// From tick `W` on, `inner` runs as if training had started then: it is built fresh, sees no
/// event from the warmup and takes its first tick after it. This is PyTorch's
/// `SequentialLR([LinearLR(start_factor, 1.0, W), inner], milestones=[W])` — but it also works
/// when `inner` is metric-driven (plateau, greedy, trend-gap), which PyTorch cannot do
/// (pytorch/pytorch#68978), and when the warmup counts steps while `inner` counts epochs.
///
/// ```toml
/// [scheduler]
/// kind = "warmup"
/// warmup_steps = 500
/// start_factor = 0.0
/// inner = { kind = "plateau", patience = 2 }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmupConfig {
    /// Factor of the base rate at tick 0; in [0, 1]. Default 1/3 (PyTorch's `LinearLR`).
    #[serde(default = "one_third")]
    pub start_factor: f64,
    /// Length of the warmup in optimizer steps (give this or `warmup_epochs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<u64>,
    /// Length of the warmup in epochs (give this or `warmup_steps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_epochs: Option<u64>,
    /// The schedule that follows.
    #[serde(alias = "scheduler")]
    pub inner: Box<SchedulerConfig>,
}

/// Linear warmup, then another schedule; see [`WarmupConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Warmup {
    start_factor: f64,
    unit: Interval,
    length: u64,
    elapsed: u64,
    base_lr: f64,
    inner: Box<AnyScheduler>,
}

impl Warmup {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`.
    pub fn new(config: WarmupConfig, base_lr: f64) -> Result<Self, ConfigError> {
        in_range("start_factor", config.start_factor, 0.0, 1.0, false)?;
        let (unit, length) = match (config.warmup_steps, config.warmup_epochs) {
            (Some(steps), None) => (Interval::Step, steps),
            (None, Some(epochs)) => (Interval::Epoch, epochs),
            _ => {
                return Err(ConfigError::new(
                    "warmup_steps",
                    "give exactly one of `warmup_steps` and `warmup_epochs`",
                ));
            }
        };
        at_least_one(&format!("warmup_{unit}s"), length)?;
        let inner = config.inner.build(base_lr).map_err(|e| e.within("inner"))?;
        Ok(Warmup {
            start_factor: config.start_factor,
            unit,
            length,
            elapsed: 0,
            base_lr,
            inner: Box::new(inner),
        })
    }

    fn warming(&self) -> bool {
        self.elapsed < self.length
    }
}

impl Scheduler for Warmup {
    fn lr(&self) -> f64 {
        if self.warming() {
            let progress = self.elapsed as f64 / self.length as f64;
            self.base_lr * (self.start_factor + (1.0 - self.start_factor) * progress)
        } else {
            self.inner.lr()
        }
    }

    fn interval(&self) -> Interval {
        if self.unit == Interval::Step || self.inner.interval() == Interval::Step {
            Interval::Step
        } else {
            Interval::Epoch
        }
    }

    fn needs(&self) -> Signals {
        self.inner.needs()
    }

    fn observe(&mut self, observation: &Observation) -> f64 {
        if self.warming() {
            if observation.interval() == self.unit {
                self.elapsed += 1;
            }
        } else {
            self.inner.observe(observation);
        }
        self.lr()
    }
}
