//! Linear (PyTorch's `LinearLR`) and polynomial (`PolynomialLR`) ramps.

use crate::error::{ConfigError, in_range, non_negative};
use crate::length::Length;
use crate::observation::Interval;
use crate::scheduler::{Clock, RateBounds, ScheduleConfig, Ticking};
use serde::{Deserialize, Serialize};

serde_defaults! {
    one_third: f64 = 1.0 / 3.0;
    one: f64 = 1.0;
    five: Length = Length::Ticks(5);
}

/// Configuration of [`LinearLr`] (`kind = "linear"`), PyTorch's `LinearLR`.
///
/// With `t` the number of ticks so far and `η₀` the base learning rate:
///
/// ```text
/// η_t = η₀ · (start_factor + (end_factor − start_factor) · min(t, total_iters) / total_iters)
/// ```
///
/// computed with PyTorch's recursive form. Defaults are PyTorch's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearConfig {
    /// Factor at tick 0; in (0, 1]. Default 1/3.
    #[serde(default = "one_third")]
    pub start_factor: f64,
    /// Factor from `total_iters` on; in [0, 1]. Default 1.
    #[serde(default = "one")]
    pub end_factor: f64,
    /// Ticks of the ramp (a [`Length`]). Default 5.
    #[serde(default = "five")]
    pub total_iters: Length,
    /// Clock override; default `epoch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

/// A linear ramp of the rate's factor; see [`LinearConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearLr {
    start_factor: f64,
    end_factor: f64,
    total_iters: u64,
    clock: Clock,
    ticks: u64,
}

impl ScheduleConfig for LinearConfig {
    type Scheduler = LinearLr;

    lengths!(
        clock = |c| c.interval.unwrap_or(Interval::Epoch),
        [total_iters >= 0]
    );

    fn build(self, base_lr: f64) -> Result<LinearLr, ConfigError> {
        LinearLr::new(self, base_lr)
    }

    fn bounds(&self, base_lr: f64) -> RateBounds {
        let low = self.start_factor.min(self.end_factor);
        RateBounds::new(base_lr * low, base_lr * self.start_factor.max(self.end_factor))
    }

    fn examples() -> Vec<Self> {
        vec![
            LinearConfig {
                start_factor: 0.1,
                end_factor: 1.0,
                total_iters: Length::Ticks(6),
                interval: None,
            },
            LinearConfig {
                start_factor: 1.0,
                end_factor: 0.0,
                total_iters: Length::Ticks(10),
                interval: Some(Interval::Step),
            },
        ]
    }
}

impl LinearLr {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`.
    pub fn new(config: LinearConfig, base_lr: f64) -> Result<Self, ConfigError> {
        in_range("start_factor", config.start_factor, 0.0, 1.0, true)?;
        in_range("end_factor", config.end_factor, 0.0, 1.0, false)?;
        Ok(LinearLr {
            start_factor: config.start_factor,
            end_factor: config.end_factor,
            total_iters: config.total_iters.ticks("total_iters")?,
            clock: Clock {
                interval: config.clock(),
                lr: base_lr * config.start_factor,
            },
            ticks: 0,
        })
    }
}

impl Ticking for LinearLr {
    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn tick(&mut self) {
        self.ticks += 1;
        if self.ticks <= self.total_iters {
            let slope = self.end_factor - self.start_factor;
            self.clock.lr *= 1.0
                + slope
                    / (self.total_iters as f64 * self.start_factor
                        + (self.ticks - 1) as f64 * slope);
        }
    }
}

/// Configuration of [`PolynomialLr`] (`kind = "polynomial"`), PyTorch's `PolynomialLR`.
///
/// ```text
/// η_t = η₀ · (1 − min(t, total_iters) / total_iters)^power
/// ```
///
/// computed with PyTorch's recursive form; the rate is 0 from `total_iters` on. Defaults are
/// PyTorch's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolynomialConfig {
    /// Ticks until the rate reaches 0 (a [`Length`]). Default 5.
    #[serde(default = "five")]
    pub total_iters: Length,
    /// Exponent of the decay; ≥ 0. Default 1 (linear).
    #[serde(default = "one")]
    pub power: f64,
    /// Clock override; default `epoch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

/// Polynomial decay to zero; see [`PolynomialConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolynomialLr {
    total_iters: u64,
    power: f64,
    clock: Clock,
    ticks: u64,
}

impl ScheduleConfig for PolynomialConfig {
    type Scheduler = PolynomialLr;

    lengths!(
        clock = |c| c.interval.unwrap_or(Interval::Epoch),
        [total_iters >= 0]
    );

    fn build(self, base_lr: f64) -> Result<PolynomialLr, ConfigError> {
        PolynomialLr::new(self, base_lr)
    }

    fn bounds(&self, base_lr: f64) -> RateBounds {
        RateBounds::up_to(base_lr)
    }

    fn examples() -> Vec<Self> {
        vec![
            PolynomialConfig {
                total_iters: Length::Ticks(8),
                power: 2.0,
                interval: None,
            },
            PolynomialConfig {
                total_iters: Length::Ticks(12),
                power: 0.5,
                interval: Some(Interval::Step),
            },
        ]
    }
}

impl PolynomialLr {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`.
    pub fn new(config: PolynomialConfig, base_lr: f64) -> Result<Self, ConfigError> {
        non_negative("power", config.power)?;
        Ok(PolynomialLr {
            total_iters: config.total_iters.ticks("total_iters")?,
            power: config.power,
            ticks: 0,
            clock: Clock {
                interval: config.clock(),
                lr: base_lr,
            },
        })
    }
}

impl Ticking for PolynomialLr {
    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn tick(&mut self) {
        self.ticks += 1;
        let (t, total) = (self.ticks as f64, self.total_iters as f64);
        if self.ticks <= self.total_iters {
            let decay = ((1.0 - t / total) / (1.0 - (t - 1.0) / total)).powf(self.power);
            self.clock.lr *= decay;
        }
    }
}
