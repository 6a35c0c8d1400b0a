//! Cosine annealing (PyTorch's `CosineAnnealingLR`) and with warm restarts
//! (`CosineAnnealingWarmRestarts`).

use crate::error::{ConfigError, at_least_one, non_negative};
use crate::length::Length;
use crate::observation::Interval;
use crate::scheduler::{Clock, RateBounds, ScheduleConfig, Ticking};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Configuration of [`CosineAnnealing`] (`kind = "cosine"`), PyTorch's `CosineAnnealingLR`.
///
/// With `t` the number of ticks so far and `η₀` the base learning rate:
///
/// ```text
/// η_t = η_min + (η₀ − η_min) · (1 + cos(π t / t_max)) / 2
/// ```
///
/// The rate reaches `eta_min` at `t = t_max` and, as in PyTorch, climbs back along the same
/// cosine if training goes on. The value is computed with PyTorch's recursive form, so that the
/// two agree to the last bits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosineConfig {
    /// Ticks of the half period (`T_max` in PyTorch; a [`Length`], `"epochs"` for the whole
    /// run); ≥ 1.
    pub t_max: Length,
    /// The lowest rate; ≥ 0. Default 0.
    #[serde(default)]
    pub eta_min: f64,
    /// Clock override; default `epoch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

/// Cosine annealing; see [`CosineConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CosineAnnealing {
    t_max: u64,
    eta_min: f64,
    clock: Clock,
    base_lr: f64,
    ticks: u64,
}

impl ScheduleConfig for CosineConfig {
    type Scheduler = CosineAnnealing;

    lengths!(
        clock = |c| c.interval.unwrap_or(Interval::Epoch),
        [t_max >= 1]
    );

    fn build(self, base_lr: f64) -> Result<CosineAnnealing, ConfigError> {
        CosineAnnealing::new(self, base_lr)
    }

    fn bounds(&self, base_lr: f64) -> RateBounds {
        RateBounds::up_to(base_lr.max(self.eta_min))
    }

    fn examples() -> Vec<Self> {
        vec![
            CosineConfig {
                t_max: Length::Ticks(7),
                eta_min: 1e-5,
                interval: Some(Interval::Step),
            },
            // Past t_max the rate climbs back, as PyTorch's does.
            CosineConfig {
                t_max: Length::Ticks(3),
                eta_min: 0.0,
                interval: None,
            },
        ]
    }
}

impl CosineAnnealing {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`.
    pub fn new(config: CosineConfig, base_lr: f64) -> Result<Self, ConfigError> {
        let t_max = config.t_max.ticks("t_max")?;
        at_least_one("t_max", t_max)?;
        non_negative("eta_min", config.eta_min)?;
        Ok(CosineAnnealing {
            t_max,
            eta_min: config.eta_min,
            base_lr,
            ticks: 0,
            clock: Clock {
                interval: config.clock(),
                lr: base_lr,
            },
        })
    }
}

impl Ticking for CosineAnnealing {
    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn tick(&mut self) {
        self.ticks += 1;
        let (t, t_max, eta_min) = (self.ticks, self.t_max, self.eta_min);
        // PyTorch's recursion; the first branch steps over the 0/0 at the trough.
        self.clock.lr = if (t as i128 - 1 - t_max as i128).rem_euclid(2 * t_max as i128) == 0 {
            self.clock.lr + (self.base_lr - eta_min) * (1.0 - (PI / t_max as f64).cos()) / 2.0
        } else {
            (1.0 + (PI * t as f64 / t_max as f64).cos())
                / (1.0 + (PI * (t - 1) as f64 / t_max as f64).cos())
                * (self.clock.lr - eta_min)
                + eta_min
        };
    }
}

serde_defaults! {
    one: u64 = 1;
}

/// Configuration of [`CosineWarmRestarts`] (`kind = "cosine_warm_restarts"`), PyTorch's
/// `CosineAnnealingWarmRestarts` (SGDR, Loshchilov & Hutter 2017).
///
/// With `T_cur` the ticks since the last restart and `T_i` the length of the current cycle
/// (`t_0`, then multiplied by `t_mult` at every restart):
///
/// ```text
/// η = η_min + (η₀ − η_min) · (1 + cos(π T_cur / T_i)) / 2
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosineWarmRestartsConfig {
    /// Ticks of the first cycle (`T_0`; a [`Length`]); ≥ 1.
    pub t_0: Length,
    /// Growth of the cycle length at each restart (`T_mult`); ≥ 1. Default 1.
    #[serde(default = "one")]
    pub t_mult: u64,
    /// The lowest rate; ≥ 0. Default 0.
    #[serde(default)]
    pub eta_min: f64,
    /// Clock override; default `epoch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

impl ScheduleConfig for CosineWarmRestartsConfig {
    type Scheduler = CosineWarmRestarts;

    lengths!(
        clock = |c| c.interval.unwrap_or(Interval::Epoch),
        [t_0 >= 1]
    );

    fn build(self, base_lr: f64) -> Result<CosineWarmRestarts, ConfigError> {
        CosineWarmRestarts::new(self, base_lr)
    }

    fn bounds(&self, base_lr: f64) -> RateBounds {
        RateBounds::up_to(base_lr.max(self.eta_min))
    }

    fn examples() -> Vec<Self> {
        vec![
            CosineWarmRestartsConfig {
                t_0: Length::Ticks(3),
                t_mult: 2,
                eta_min: 1e-6,
                interval: None,
            },
            CosineWarmRestartsConfig {
                t_0: Length::Ticks(4),
                t_mult: 1,
                eta_min: 0.0,
                interval: Some(Interval::Step),
            },
        ]
    }
}

/// Cosine annealing with warm restarts; see [`CosineWarmRestartsConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CosineWarmRestarts {
    t_mult: u64,
    eta_min: f64,
    clock: Clock,
    base_lr: f64,
    t_cur: u64,
    t_i: u64,
}

impl CosineWarmRestarts {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`.
    pub fn new(config: CosineWarmRestartsConfig, base_lr: f64) -> Result<Self, ConfigError> {
        let t_0 = config.t_0.ticks("t_0")?;
        at_least_one("t_0", t_0)?;
        at_least_one("t_mult", config.t_mult)?;
        non_negative("eta_min", config.eta_min)?;
        let mut schedule = CosineWarmRestarts {
            t_i: t_0,
            t_mult: config.t_mult,
            eta_min: config.eta_min,
            base_lr,
            t_cur: 0,
            clock: Clock {
                interval: config.clock(),
                lr: base_lr,
            },
        };
        schedule.clock.lr = schedule.cosine();
        Ok(schedule)
    }

    fn cosine(&self) -> f64 {
        let eta_min = self.eta_min;
        eta_min
            + (self.base_lr - eta_min) * (1.0 + (PI * self.t_cur as f64 / self.t_i as f64).cos())
                / 2.0
    }
}

impl Ticking for CosineWarmRestarts {
    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn tick(&mut self) {
        self.t_cur += 1;
        if self.t_cur >= self.t_i {
            self.t_cur %= self.t_i;
            self.t_i = self.t_i.saturating_mul(self.t_mult);
        }
        self.clock.lr = self.cosine();
    }
}
