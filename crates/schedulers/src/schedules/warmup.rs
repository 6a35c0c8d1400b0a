//! Linear warmup in front of any schedule, metric-driven ones included.

use crate::error::{ConfigError, at_least_one, in_range};
use crate::length::{Length, Span};
use crate::observation::{Interval, Observation, Signals};
use crate::schedules::{AnyScheduler, CosineConfig, PlateauConfig, SchedulerConfig};
use crate::scheduler::{RateBounds, ScheduleConfig, Scheduler};
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
/// event from the warmup and takes its first tick after it. Lengths of `inner` relative to the
/// run ([`Length`]) are shares of what follows the warmup: with `total_iters = "steps"` a
/// linear decay after the warmup ends on the run's last step. This is PyTorch's
/// `SequentialLR([LinearLR(start_factor, 1.0, W), inner], milestones=[W])` — but it also works
/// when `inner` is metric-driven (plateau, greedy, trend-gap), which PyTorch cannot do
/// (pytorch/pytorch#68978), and when the warmup counts steps while `inner` counts epochs.
///
/// ```toml
/// [scheduler]
/// kind = "warmup"
/// warmup_steps = 500
/// start_factor = 0.0
/// inner = { kind = "linear", start_factor = 1.0, end_factor = 0.0, total_iters = "steps", interval = "step" }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmupConfig {
    /// Factor of the base rate at tick 0; in [0, 1]. Default 1/3 (PyTorch's `LinearLR`).
    #[serde(default = "one_third")]
    pub start_factor: f64,
    /// Length of the warmup in optimizer steps (a [`Length`]; give this or `warmup_epochs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<Length>,
    /// Length of the warmup in epochs (a [`Length`]; give this or `warmup_steps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_epochs: Option<Length>,
    /// The schedule that follows.
    #[serde(alias = "scheduler")]
    pub inner: Box<SchedulerConfig>,
}

impl WarmupConfig {
    /// The warmup's clock and length, from whichever of `warmup_steps` and `warmup_epochs` is
    /// given, with the key it came from.
    fn warmup(&self) -> Result<(Interval, Length, &'static str), ConfigError> {
        match (self.warmup_steps, self.warmup_epochs) {
            (Some(steps), None) => Ok((Interval::Step, steps, "warmup_steps")),
            (None, Some(epochs)) => Ok((Interval::Epoch, epochs, "warmup_epochs")),
            _ => Err(ConfigError::new(
                "warmup_steps",
                "give exactly one of `warmup_steps` and `warmup_epochs`",
            )),
        }
    }
}

impl ScheduleConfig for WarmupConfig {
    type Scheduler = Warmup;

    fn build(self, base_lr: f64) -> Result<Warmup, ConfigError> {
        Warmup::new(self, base_lr)
    }

    fn bounds(&self, base_lr: f64) -> RateBounds {
        RateBounds::new(base_lr * self.start_factor, base_lr).union(self.inner.bounds(base_lr))
    }

    fn examples() -> Vec<Self> {
        vec![
            WarmupConfig {
                start_factor: 0.0,
                warmup_steps: Some(Length::Ticks(5)),
                warmup_epochs: None,
                inner: Box::new(SchedulerConfig::Plateau(PlateauConfig {
                    patience: Length::Ticks(1),
                    cooldown: Length::Ticks(1),
                    ..Default::default()
                })),
            },
            WarmupConfig {
                start_factor: 0.5,
                warmup_steps: None,
                warmup_epochs: Some(Length::Ticks(2)),
                inner: Box::new(SchedulerConfig::Cosine(CosineConfig {
                    t_max: Length::Ticks(20),
                    eta_min: 0.0,
                    interval: Some(Interval::Step),
                })),
            },
        ]
    }

    fn clock(&self) -> Interval {
        let unit = match self.warmup_steps {
            Some(_) => Interval::Step,
            None => Interval::Epoch,
        };
        unit.finer(self.inner.clock())
    }

    fn resolve(&self, span: Span) -> Result<Self, ConfigError> {
        let (unit, length, field) = self.warmup()?;
        let length = length.resolve(field, span, unit, 1)?;
        let ticks = length.ticks(field)?;
        let after = span.after(ticks, unit);
        if after.ticks(unit) <= 0.0 {
            return Err(ConfigError::new(
                field,
                format!(
                    "{ticks} {unit}s of warmup take the whole run ({} {unit}s): nothing is left \
                     for the schedule after it; shorten the warmup",
                    span.ticks(unit)
                ),
            ));
        }
        let inner = self.inner.resolve(after).map_err(|e| e.within("inner"))?;
        let (warmup_steps, warmup_epochs) = match unit {
            Interval::Step => (Some(length), None),
            Interval::Epoch => (None, Some(length)),
        };
        Ok(WarmupConfig {
            start_factor: self.start_factor,
            warmup_steps,
            warmup_epochs,
            inner: Box::new(inner),
        })
    }
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
        let (unit, length, field) = config.warmup()?;
        let length = length.ticks(field)?;
        at_least_one(field, length)?;
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
        self.unit.finer(self.inner.interval())
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
