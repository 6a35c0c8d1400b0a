//! Reduce the rate when a metric stops improving (PyTorch's `ReduceLROnPlateau`).

use crate::error::{ConfigError, ensure, non_negative};
use crate::float::Float;
use crate::length::Length;
use crate::observation::{Interval, Observation, Signal, Signals};
use crate::rate::Rate;
use crate::scheduler::{RateBounds, ScheduleConfig, Scheduler};
use crate::schedules::improvement::{
    Improvement, Mode, ThresholdMode, check_monitor, mode_for, watched,
};
use serde::{Deserialize, Serialize};

serde_defaults! {
    val_loss: Signal = Signal::ValLoss;
    factor: f64 = 0.1;
    patience: Length = Length::Ticks(10);
    zero: Length = Length::Ticks(0);
    no_rate: Rate = Rate::Absolute(0.0);
    threshold: f64 = 1e-4;
    rel: ThresholdMode = ThresholdMode::Rel;
    eps: f64 = 1e-8;
}

/// Configuration of [`Plateau`] (`kind = "plateau"`), PyTorch's `ReduceLROnPlateau` with
/// every option.
///
/// At each tick the monitored value `v` is compared with the best so far: it is better when
/// `v < best·(1 − threshold)` (`min`, `rel`), `v < best − threshold` (`min`, `abs`),
/// `v > best·(1 + threshold)` (`max`, `rel`) or `v > best + threshold` (`max`, `abs`). A tick
/// that is not better is a bad tick, except during the `cooldown` ticks after a reduction.
/// After more than `patience` consecutive bad ticks:
///
/// ```text
/// η ← max(η · factor, min_lr)     unless that changes η by eps or less
/// ```
///
/// then the bad count restarts and the cooldown begins. NaN is never better.
///
/// The LR of epoch `e` is the one after the metrics of epochs `1 … e−1` were observed, exactly
/// as calling PyTorch's `scheduler.step(metric)` after each epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlateauConfig {
    /// The quantity watched: `val_loss` (default), `val_acc`, `train_loss`, `train_acc`, or
    /// `batch_loss` (with `interval = "step"`).
    #[serde(default = "val_loss")]
    pub monitor: Signal,
    /// `min` or `max`; default `max` for accuracies and `min` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Multiplier applied at a reduction; in [0, 1). Default 0.1.
    #[serde(default = "factor")]
    pub factor: f64,
    /// Bad ticks tolerated before a reduction (a [`Length`]). Default 10.
    #[serde(default = "patience")]
    pub patience: Length,
    /// Margin a value must beat the best by; ≥ 0. Default 1e-4.
    #[serde(default = "threshold")]
    pub threshold: f64,
    /// `rel` (default) or `abs`.
    #[serde(default = "rel")]
    pub threshold_mode: ThresholdMode,
    /// Ticks after a reduction during which bad ticks are not counted (a [`Length`]).
    /// Default 0.
    #[serde(default = "zero")]
    pub cooldown: Length,
    /// Lower bound of the rate (a [`Rate`]: `"0.01x"` is a hundredth of the base rate); ≥ 0.
    /// Default 0.
    #[serde(default = "no_rate")]
    pub min_lr: Rate,
    /// Smallest change worth making; ≥ 0. Default 1e-8.
    #[serde(default = "eps")]
    pub eps: f64,
    /// Clock; default: the one that carries `monitor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            monitor: val_loss(),
            mode: None,
            factor: factor(),
            patience: patience(),
            threshold: threshold(),
            threshold_mode: rel(),
            cooldown: zero(),
            min_lr: no_rate(),
            eps: eps(),
            interval: None,
        }
    }
}

/// Checks that the clock carries the monitored signal; returns that clock.
pub(crate) fn monitor_interval(
    monitor: Signal,
    requested: Option<Interval>,
) -> Result<Interval, ConfigError> {
    check_monitor(monitor)?;
    let interval = requested.unwrap_or(monitor.interval());
    ensure(interval == monitor.interval(), "interval", || {
        format!(
            "`{monitor}` is observed per {}, not per {interval}; per step monitor `batch_loss`",
            monitor.interval()
        )
    })?;
    Ok(interval)
}

impl ScheduleConfig for PlateauConfig {
    type Scheduler = Plateau;

    lengths!(
        clock = |c| c.interval.unwrap_or(c.monitor.interval()),
        [patience >= 0, cooldown >= 0]
    );

    fn build(self, base_lr: f64) -> Result<Plateau, ConfigError> {
        Plateau::new(self, base_lr)
    }

    fn bounds(&self, base_lr: f64) -> RateBounds {
        RateBounds::new(self.min_lr.of(base_lr).min(base_lr), base_lr)
    }

    fn examples() -> Vec<Self> {
        vec![
            PlateauConfig {
                patience: Length::Ticks(1),
                cooldown: Length::Ticks(1),
                ..Default::default()
            },
            PlateauConfig {
                monitor: Signal::ValAcc,
                patience: Length::Ticks(1),
                threshold_mode: ThresholdMode::Abs,
                threshold: 0.01,
                min_lr: Rate::Times(0.01),
                ..Default::default()
            },
            PlateauConfig {
                monitor: Signal::BatchLoss,
                factor: 0.5,
                patience: Length::Ticks(2),
                ..Default::default()
            },
        ]
    }
}

/// Reduce on plateau; see [`PlateauConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    config: PlateauConfig,
    patience: u64,
    cooldown: u64,
    min_lr: f64,
    improvement: Improvement,
    best: Float,
    bad_ticks: u64,
    cooldown_left: u64,
    lr: f64,
}

impl Plateau {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`.
    pub fn new(config: PlateauConfig, base_lr: f64) -> Result<Self, ConfigError> {
        ensure((0.0..1.0).contains(&config.factor), "factor", || {
            format!("must lie in [0, 1), got {}", config.factor)
        })?;
        non_negative("threshold", config.threshold)?;
        let min_lr = config.min_lr.of(base_lr);
        non_negative("min_lr", min_lr)?;
        non_negative("eps", config.eps)?;
        let interval = monitor_interval(config.monitor, config.interval)?;
        let improvement = Improvement {
            mode: mode_for(config.mode, config.monitor),
            threshold: config.threshold,
            threshold_mode: config.threshold_mode,
        };
        Ok(Plateau {
            patience: config.patience.ticks("patience")?,
            cooldown: config.cooldown.ticks("cooldown")?,
            min_lr,
            config: PlateauConfig {
                interval: Some(interval),
                ..config
            },
            best: Float(improvement.worst()),
            improvement,
            bad_ticks: 0,
            cooldown_left: 0,
            lr: base_lr,
        })
    }
}

impl Scheduler for Plateau {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn interval(&self) -> Interval {
        self.config.monitor.interval()
    }

    fn needs(&self) -> Signals {
        Signals::of(self.config.monitor)
    }

    fn observe(&mut self, observation: &Observation) -> f64 {
        let Some(value) = watched(observation, self.config.monitor, "plateau") else {
            return self.lr;
        };
        if self.improvement.is_better(value, self.best.0) {
            self.best = Float(value);
            self.bad_ticks = 0;
        } else {
            self.bad_ticks += 1;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad_ticks = 0;
        }
        if self.bad_ticks > self.patience {
            let reduced = (self.lr * self.config.factor).max(self.min_lr);
            if self.lr - reduced > self.config.eps {
                self.lr = reduced;
            }
            self.cooldown_left = self.cooldown;
            self.bad_ticks = 0;
        }
        self.lr
    }
}
