//! Bold driver (Battiti 1989): grow the rate a little after each epoch whose validation loss
//! fell, cut it after each one whose loss rose.

use crate::error::{ConfigError, in_range};
use crate::float::Float;
use crate::observation::{Interval, Observation, Signal, Signals};
use crate::scheduler::{RateBounds, ScheduleConfig, Scheduler};
use serde::{Deserialize, Serialize};

/// Configuration of [`BoldDriver`] (`kind = "bold_driver"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoldDriverConfig {
    /// Factor after a better epoch; in [1, 10].
    pub grow: f64,
    /// Factor after a worse one (or a NaN loss); in (0, 1].
    pub cut: f64,
    /// The highest rate, as a multiple of the base rate; in [1, 1000].
    pub max_factor: f64,
}

impl ScheduleConfig for BoldDriverConfig {
    type Scheduler = BoldDriver;

    lengths!(clock = |_| Interval::Epoch, []);

    fn build(self, base_lr: f64) -> Result<BoldDriver, ConfigError> {
        in_range("grow", self.grow, 1.0, 10.0, false)?;
        in_range("cut", self.cut, 0.0, 1.0, true)?;
        in_range("max_factor", self.max_factor, 1.0, 1e3, false)?;
        let (lr, max_lr) = (base_lr, base_lr * self.max_factor);
        Ok(BoldDriver {
            config: self,
            max_lr,
            lr,
            last: None,
        })
    }

    fn bounds(&self, base_lr: f64) -> RateBounds {
        RateBounds::up_to(base_lr * self.max_factor)
    }

    fn examples() -> Vec<Self> {
        let (grow, cut, max_factor) = (1.05, 0.5, 10.0);
        vec![BoldDriverConfig {
            grow,
            cut,
            max_factor,
        }]
    }
}

/// Bold driver; see [`BoldDriverConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoldDriver {
    config: BoldDriverConfig,
    max_lr: f64,
    lr: f64,
    /// The last validation loss (a `Float`: JSON has no ∞, and a save must restore it).
    last: Option<Float>,
}

impl Scheduler for BoldDriver {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn interval(&self) -> Interval {
        Interval::Epoch
    }

    fn needs(&self) -> Signals {
        Signals::of(Signal::ValLoss)
    }

    fn observe(&mut self, observation: &Observation) -> f64 {
        let Some(loss) = observation.get(Signal::ValLoss) else {
            return self.lr;
        };
        match self.last.map(|last| last.0) {
            Some(last) if loss < last => self.lr = (self.lr * self.config.grow).min(self.max_lr),
            Some(last) if loss > last || loss.is_nan() => self.lr *= self.config.cut,
            _ => {}
        }
        if !loss.is_nan() {
            self.last = Some(Float(loss));
        }
        self.lr
    }
}
