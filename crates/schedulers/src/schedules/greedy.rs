//! GreedyLR: raise the rate while the loss improves, cut it when it stalls.

use crate::error::{ConfigError, at_least_one, ensure, lr_bounds, non_negative, positive};
use crate::float::Float;
use crate::length::Length;
use crate::observation::{Interval, Observation, Signal, Signals};
use crate::rate::Rate;
use crate::scheduler::{RateBounds, ScheduleConfig, Scheduler};
use crate::schedules::improvement::{Improvement, Mode, ThresholdMode, mode_for, watched};
use crate::schedules::plateau::monitor_interval;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

serde_defaults! {
    val_loss: Signal = Signal::ValLoss;
    factor: f64 = 0.95;
    patience: Length = Length::Ticks(10);
    zero: Length = Length::Ticks(0);
    threshold: f64 = 1e-6;
    abs: ThresholdMode = ThresholdMode::Abs;
    max_lr: Rate = Rate::Absolute(1.0);
    no_rate: Rate = Rate::Absolute(0.0);
    eps: f64 = 1e-8;
    window_size: usize = 50;
    reset_start: u64 = 500;
}

/// Configuration of [`GreedyLr`] (`kind = "greedy"`).
///
/// GreedyLR (Subramanian & Ganapathiraman, "GreedyLR: A Novel Adaptive Learning Rate
/// Scheduler", arXiv:2512.14527; in Hugging Face transformers as `GreedyLR` since 2026) treats
/// the rate greedily: more of it while it helps, less when it stops helping. At each tick the
/// monitored value `v` — optionally its streaming mean over the last `window_size` ticks
/// (`smooth`) — is compared with the best so far, with the same rule as
/// [`PlateauConfig`](crate::PlateauConfig) (`mode`, `threshold`, `threshold_mode`). Then:
///
/// ```text
/// in cooldown (after a cut) or warmup (after a raise):  count down; good = bad = 0
/// otherwise:  v better → good += 1, bad = 0;   else → bad += 1, good = 0
///             good > patience → η ← min(η / factor, max_lr)   (if it moves by > eps),
///                               warmup = `warmup`, good = 0
///             bad  > patience → η ← max(η · factor, min_lr)   (if it moves by > eps),
///                               cooldown = `cooldown`, bad = 0
/// ```
///
/// When cuts keep finding the rate at `min_lr`, after `reset_start` of them the scheduler
/// resets: the rate returns to its initial value and the best, the counters and the window are
/// cleared. A raise re-arms that count.
///
/// Defaults are those of the transformers implementation, except the rate bounds: its
/// `min_lr = 1e-3` would equal the study's base rate and forbid any cut, so lrlab bounds the
/// rate by `[0, 1]` unless told otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GreedyConfig {
    /// The quantity watched: `val_loss` (default), `val_acc`, `train_loss`, `train_acc`, or
    /// `batch_loss` (with `interval = "step"`).
    #[serde(default = "val_loss")]
    pub monitor: Signal,
    /// `min` or `max`; default `max` for accuracies and `min` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// The rate is divided by it on a raise and multiplied on a cut; in (0, 1). Default 0.95.
    #[serde(default = "factor")]
    pub factor: f64,
    /// Good or bad ticks tolerated before the rate moves (a [`Length`]). Default 10.
    #[serde(default = "patience")]
    pub patience: Length,
    /// Margin a value must beat the best by; ≥ 0. Default 1e-6.
    #[serde(default = "threshold")]
    pub threshold: f64,
    /// `rel` or `abs` (default).
    #[serde(default = "abs")]
    pub threshold_mode: ThresholdMode,
    /// Ticks after a cut during which nothing is counted (a [`Length`]). Default 0.
    #[serde(default = "zero")]
    pub cooldown: Length,
    /// Ticks after a raise during which nothing is counted (a [`Length`]). Default 0.
    #[serde(default = "zero")]
    pub warmup: Length,
    /// Lower bound of the rate (a [`Rate`]: `"0.01x"` is a hundredth of the base rate); ≥ 0.
    /// Default 0.
    #[serde(default = "no_rate")]
    pub min_lr: Rate,
    /// Upper bound of the rate (a [`Rate`], e.g. `"10x"`); > 0. Default 1.
    #[serde(default = "max_lr")]
    pub max_lr: Rate,
    /// Smallest change worth making; ≥ 0. Default 1e-8.
    #[serde(default = "eps")]
    pub eps: f64,
    /// Compare the streaming mean of the last `window_size` values. Default false.
    #[serde(default)]
    pub smooth: bool,
    /// Length of the smoothing window; ≥ 1. Default 50.
    #[serde(default = "window_size")]
    pub window_size: usize,
    /// Cuts at `min_lr` before the scheduler resets; ≥ 1. Default 500.
    #[serde(default = "reset_start")]
    pub reset_start: u64,
    /// Clock; default: the one that carries `monitor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

impl ScheduleConfig for GreedyConfig {
    type Scheduler = GreedyLr;

    lengths!(
        clock = |c| c.interval.unwrap_or(c.monitor.interval()),
        [patience >= 0, cooldown >= 0, warmup >= 0]
    );

    fn build(self, base_lr: f64) -> Result<GreedyLr, ConfigError> {
        GreedyLr::new(self, base_lr)
    }

    fn bounds(&self, base_lr: f64) -> RateBounds {
        RateBounds::new(
            self.min_lr.of(base_lr).min(base_lr),
            self.max_lr.of(base_lr).max(base_lr),
        )
    }

    fn examples() -> Vec<Self> {
        let greedy = GreedyConfig {
            monitor: val_loss(),
            mode: None,
            factor: 0.8,
            patience: Length::Ticks(1),
            threshold: threshold(),
            threshold_mode: abs(),
            cooldown: zero(),
            warmup: zero(),
            min_lr: Rate::Absolute(1e-5),
            max_lr: Rate::Absolute(0.05),
            eps: eps(),
            smooth: true,
            window_size: 3,
            reset_start: 4,
            interval: None,
        };
        vec![
            greedy.clone(),
            GreedyConfig {
                monitor: Signal::ValAcc,
                factor: 0.5,
                patience: Length::Ticks(2),
                cooldown: Length::Ticks(1),
                warmup: Length::Ticks(2),
                min_lr: Rate::Times(0.01),
                max_lr: Rate::Times(10.0),
                smooth: false,
                ..greedy.clone()
            },
            GreedyConfig {
                monitor: Signal::BatchLoss,
                threshold_mode: ThresholdMode::Rel,
                threshold: 1e-3,
                ..greedy
            },
        ]
    }
}

/// GreedyLR; see [`GreedyConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GreedyLr {
    config: GreedyConfig,
    patience: u64,
    cooldown: u64,
    warmup: u64,
    min_lr: f64,
    max_lr: f64,
    improvement: Improvement,
    initial_lr: f64,
    lr: f64,
    best: Float,
    good_ticks: u64,
    bad_ticks: u64,
    cooldown_left: u64,
    warmup_left: u64,
    resets_left: u64,
    window: VecDeque<Float>,
    window_sum: Float,
}

impl GreedyLr {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`.
    pub fn new(config: GreedyConfig, base_lr: f64) -> Result<Self, ConfigError> {
        ensure(config.factor > 0.0 && config.factor < 1.0, "factor", || {
            format!("must lie in (0, 1), got {}", config.factor)
        })?;
        non_negative("threshold", config.threshold)?;
        let (min_lr, max_lr) = (config.min_lr.of(base_lr), config.max_lr.of(base_lr));
        non_negative("min_lr", min_lr)?;
        positive("max_lr", max_lr)?;
        lr_bounds(min_lr, max_lr)?;
        non_negative("eps", config.eps)?;
        at_least_one("window_size", config.window_size as u64)?;
        at_least_one("reset_start", config.reset_start)?;
        let interval = monitor_interval(config.monitor, config.interval)?;
        let improvement = Improvement {
            mode: mode_for(config.mode, config.monitor),
            threshold: config.threshold,
            threshold_mode: config.threshold_mode,
        };
        Ok(GreedyLr {
            best: Float(improvement.worst()),
            improvement,
            patience: config.patience.ticks("patience")?,
            cooldown: config.cooldown.ticks("cooldown")?,
            warmup: config.warmup.ticks("warmup")?,
            min_lr,
            max_lr,
            initial_lr: base_lr,
            lr: base_lr,
            good_ticks: 0,
            bad_ticks: 0,
            cooldown_left: 0,
            warmup_left: 0,
            resets_left: config.reset_start,
            window: VecDeque::with_capacity(if config.smooth {
                config.window_size + 1
            } else {
                0
            }),
            window_sum: Float(0.0),
            config: GreedyConfig {
                interval: Some(interval),
                ..config
            },
        })
    }

    /// The streaming mean, kept as a running sum as the reference implementation does.
    fn smoothed(&mut self, value: f64) -> f64 {
        self.window.push_back(Float(value));
        self.window_sum.0 += value;
        if self.window.len() > self.config.window_size {
            if let Some(Float(removed)) = self.window.pop_front() {
                self.window_sum.0 -= removed;
            }
        }
        self.window_sum.0 / self.window.len() as f64
    }

    fn raise(&mut self) {
        let raised = (self.lr / self.config.factor).min(self.max_lr);
        if raised - self.lr > self.config.eps {
            self.lr = raised;
        }
        self.resets_left = self.config.reset_start;
    }

    fn cut(&mut self) {
        let cut = (self.lr * self.config.factor).max(self.min_lr);
        if self.lr - cut > self.config.eps {
            self.lr = cut;
        }
        if self.lr <= self.min_lr {
            self.resets_left -= 1;
            if self.resets_left == 0 {
                self.reset();
            }
        }
    }

    fn reset(&mut self) {
        self.lr = self.initial_lr;
        self.best = Float(self.improvement.worst());
        self.good_ticks = 0;
        self.bad_ticks = 0;
        self.cooldown_left = 0;
        self.warmup_left = 0;
        self.resets_left = self.config.reset_start;
        self.window.clear();
        self.window_sum = Float(0.0);
    }
}

impl Scheduler for GreedyLr {
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
        let Some(raw) = watched(observation, self.config.monitor, "greedy") else {
            return self.lr;
        };
        let value = if self.config.smooth {
            self.smoothed(raw)
        } else {
            raw
        };
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.good_ticks = 0;
            self.bad_ticks = 0;
        } else if self.warmup_left > 0 {
            self.warmup_left -= 1;
            self.good_ticks = 0;
            self.bad_ticks = 0;
        } else {
            if self.improvement.is_better(value, self.best.0) {
                self.best = Float(value);
                self.bad_ticks = 0;
                self.good_ticks += 1;
            } else {
                self.bad_ticks += 1;
                self.good_ticks = 0;
            }
            if self.good_ticks > self.patience {
                self.raise();
                self.warmup_left = self.warmup;
                self.good_ticks = 0;
            } else if self.bad_ticks > self.patience {
                self.cut();
                self.cooldown_left = self.cooldown;
                self.bad_ticks = 0;
            }
        }
        self.lr
    }
}
