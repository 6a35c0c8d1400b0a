//! A constant learning rate, optionally scaled for the first iterations (PyTorch's `ConstantLR`).

use crate::error::{ConfigError, in_range};
use crate::length::Length;
use crate::observation::Interval;
use crate::scheduler::{Clock, RateBounds, ScheduleConfig, Ticking};
use serde::{Deserialize, Serialize};

/// Configuration of [`ConstantLr`] (`kind = "constant"`).
///
/// With `t` the number of ticks so far and `η₀` the base learning rate:
///
/// ```text
/// η_t = η₀ · factor   if t < total_iters
/// η_t = η₀            otherwise
/// ```
///
/// Parameters and semantics are those of `torch.optim.lr_scheduler.ConstantLR`; only the
/// defaults differ (`factor = 1`, `total_iters = 0`), so that a bare `kind = "constant"` is the
/// constant-rate baseline. `total_iters = 0` with `factor < 1` keeps the scaled rate for ever,
/// as in PyTorch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstantConfig {
    /// Multiplier applied until `total_iters` ticks have passed; in (0, 1]. Default 1.
    #[serde(default = "one")]
    pub factor: f64,
    /// Ticks during which `factor` applies (a [`Length`]). Default 0.
    #[serde(default = "zero")]
    pub total_iters: Length,
    /// Clock override; default `epoch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

serde_defaults! {
    one: f64 = 1.0;
    zero: Length = Length::Ticks(0);
}

impl Default for ConstantConfig {
    fn default() -> Self {
        ConstantConfig {
            factor: 1.0,
            total_iters: Length::Ticks(0),
            interval: None,
        }
    }
}

/// A constant learning rate; see [`ConstantConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConstantLr {
    factor: f64,
    total_iters: u64,
    clock: Clock,
    ticks: u64,
}

impl ScheduleConfig for ConstantConfig {
    type Scheduler = ConstantLr;

    lengths!(
        clock = |c| c.interval.unwrap_or(Interval::Epoch),
        [total_iters >= 0]
    );

    fn build(self, base_lr: f64) -> Result<ConstantLr, ConfigError> {
        ConstantLr::new(self, base_lr)
    }

    fn bounds(&self, base_lr: f64) -> RateBounds {
        RateBounds::new(base_lr * self.factor, base_lr)
    }

    fn examples() -> Vec<Self> {
        vec![
            ConstantConfig::default(),
            ConstantConfig {
                factor: 0.5,
                total_iters: Length::Ticks(3),
                interval: None,
            },
            ConstantConfig {
                factor: 0.25,
                total_iters: Length::Ticks(5),
                interval: Some(Interval::Step),
            },
        ]
    }
}

impl ConstantLr {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`.
    pub fn new(config: ConstantConfig, base_lr: f64) -> Result<Self, ConfigError> {
        in_range("factor", config.factor, 0.0, 1.0, true)?;
        Ok(ConstantLr {
            factor: config.factor,
            total_iters: config.total_iters.ticks("total_iters")?,
            clock: Clock {
                interval: config.clock(),
                lr: base_lr * config.factor,
            },
            ticks: 0,
        })
    }
}

impl Ticking for ConstantLr {
    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn tick(&mut self) {
        self.ticks += 1;
        if self.ticks == self.total_iters {
            self.clock.lr *= 1.0 / self.factor;
        }
    }
}
