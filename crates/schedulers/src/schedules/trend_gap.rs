//! lrlab's own adaptive schedule: steer the rate by the validation trend and the train–val gap.

use crate::error::{ConfigError, ensure, in_range, lr_bounds, non_negative, only_clock, positive};
use crate::length::Length;
use crate::observation::{Interval, Observation, Signal, Signals};
use crate::rate::Rate;
use crate::scheduler::{RateBounds, ScheduleConfig, Scheduler};
use serde::{Deserialize, Serialize};

/// Default growth per healthy epoch: +10 %. Doubling takes about seven epochs, slow enough that
/// a rate grown too far shows as a spike or a stall within an epoch or two and is taken back.
pub const DEFAULT_GROWTH: f64 = 1.1;
/// Default cut on a stall or a widening gap: halve. Gentler than plateau's ×0.1 because the
/// schedule also grows, so it can afford to correct in small steps in both directions.
pub const DEFAULT_DECAY: f64 = 0.5;
/// Default cut on a loss spike or a non-finite loss: ×0.1, one order of magnitude — the step
/// that PyTorch's plateau takes — because a spike means the rate is already far too high.
pub const DEFAULT_SPIKE_CUT: f64 = 0.1;
/// Default weight of history in the EMA of the validation slope. With 0.5 the EMA forgets half
/// of its past each epoch (a horizon of about two epochs): epoch-level losses are already means
/// over thousands of examples, and a 50-epoch run cannot wait long to react.
pub const DEFAULT_SLOPE_SMOOTHING: f64 = 0.5;
/// Default relative fall per epoch (EMA of the slope) that counts as clear progress: 1 %.
pub const DEFAULT_IMPROVE_TOLERANCE: f64 = 0.01;
/// Default relative fall per epoch below which validation has stalled: 0.1 % — the same order
/// as PyTorch plateau's default relative threshold of 1e-4 summed over ten epochs of patience.
pub const DEFAULT_STALL_TOLERANCE: f64 = 0.001;
/// Default largest relative train–val gap `(val − train) / val` at which growth is still
/// allowed: 0.2, i.e. validation loss at most 25 % above training loss.
pub const DEFAULT_MAX_GAP: f64 = 0.2;
/// Default rise of the relative gap in one epoch that, above `max_gap`, counts as overfitting:
/// 0.05.
pub const DEFAULT_GAP_WIDENING: f64 = 0.05;
/// Default jump of a loss over its previous epoch's value that counts as a spike: ×1.5. Epoch
/// means of a healthy run do not rise by half in one epoch; a too-high rate does that.
pub const DEFAULT_SPIKE_RATIO: f64 = 1.5;
/// Default epochs after any change of the rate during which it is not changed again (spikes
/// excepted): one, so that the next decision sees a full epoch at the new rate.
pub const DEFAULT_COOLDOWN: u64 = 1;
/// Default lower bound as a fraction of the base rate.
pub const DEFAULT_MIN_LR_FACTOR: f64 = 0.01;
/// Default upper bound as a multiple of the base rate.
pub const DEFAULT_MAX_LR_FACTOR: f64 = 10.0;

serde_defaults! {
    growth: f64 = DEFAULT_GROWTH;
    decay: f64 = DEFAULT_DECAY;
    spike_cut: f64 = DEFAULT_SPIKE_CUT;
    slope_smoothing: f64 = DEFAULT_SLOPE_SMOOTHING;
    improve_tolerance: f64 = DEFAULT_IMPROVE_TOLERANCE;
    stall_tolerance: f64 = DEFAULT_STALL_TOLERANCE;
    max_gap: f64 = DEFAULT_MAX_GAP;
    gap_widening: f64 = DEFAULT_GAP_WIDENING;
    spike_ratio: f64 = DEFAULT_SPIKE_RATIO;
    cooldown: Length = Length::Ticks(DEFAULT_COOLDOWN);
    min_lr: Rate = Rate::Times(DEFAULT_MIN_LR_FACTOR);
    max_lr: Rate = Rate::Times(DEFAULT_MAX_LR_FACTOR);
}

/// Configuration of [`TrendGap`] (`kind = "trend_gap"`), lrlab's own adaptive schedule.
///
/// Once per epoch it reads the training loss `t` and the validation loss `v` and keeps three
/// things: the relative validation slope `s = (v − v_prev) / v_prev` smoothed by an EMA,
/// `S ← smoothing·S + (1 − smoothing)·s`; the relative generalisation gap `g = (v − t) / v`;
/// and the previous epoch's losses. Then, in this order:
///
/// 1. **Spike or non-finite loss** — `v` or `t` is NaN/∞, or exceeds `spike_ratio` times its
///    previous value: `η ← η · spike_cut`; the spiking epoch is not used as a reference and the
///    trend restarts; cooldown.
/// 2. **In cooldown**: hold.
/// 3. **Stall or overfitting** — `S > −stall_tolerance` (validation no longer falls), or the gap
///    is above `max_gap` and widened by more than `gap_widening` since the last epoch:
///    `η ← η · decay`; cooldown.
/// 4. **Underfitting, healthy** — `S < −improve_tolerance` (validation falls clearly), the
///    training loss fell too, and `g ≤ max_gap`: `η ← η · growth`; cooldown.
/// 5. Otherwise hold.
///
/// The rate always stays in `[min_lr, max_lr]`. State and work per epoch are O(1), and the
/// schedule is a deterministic function of the losses it is shown. It starts at the base rate
/// and makes its first decision at the end of the second epoch (the first slope). For warmup,
/// put it inside [`WarmupConfig`](crate::WarmupConfig).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrendGapConfig {
    /// Lower bound of the rate (a [`Rate`]); default `"0.01x"`, a hundredth of the base rate.
    #[serde(default = "min_lr")]
    pub min_lr: Rate,
    /// Upper bound of the rate (a [`Rate`]); default `"10x"`, ten times the base rate.
    #[serde(default = "max_lr")]
    pub max_lr: Rate,
    /// Multiplier for a healthy epoch; ≥ 1. Default [`DEFAULT_GROWTH`].
    #[serde(default = "growth")]
    pub growth: f64,
    /// Multiplier on a stall or a widening gap; in (0, 1]. Default [`DEFAULT_DECAY`].
    #[serde(default = "decay")]
    pub decay: f64,
    /// Multiplier on a spike or a non-finite loss; in (0, 1]. Default [`DEFAULT_SPIKE_CUT`].
    #[serde(default = "spike_cut")]
    pub spike_cut: f64,
    /// Weight of history in the slope EMA; in [0, 1). Default [`DEFAULT_SLOPE_SMOOTHING`].
    #[serde(default = "slope_smoothing")]
    pub slope_smoothing: f64,
    /// Smoothed relative fall per epoch that allows growth; ≥ 0. Default
    /// [`DEFAULT_IMPROVE_TOLERANCE`].
    #[serde(default = "improve_tolerance")]
    pub improve_tolerance: f64,
    /// Smoothed relative fall per epoch below which validation has stalled; ≥ 0 and at most
    /// `improve_tolerance`. Default [`DEFAULT_STALL_TOLERANCE`].
    #[serde(default = "stall_tolerance")]
    pub stall_tolerance: f64,
    /// Largest relative gap that allows growth; ≥ 0. Default [`DEFAULT_MAX_GAP`].
    #[serde(default = "max_gap")]
    pub max_gap: f64,
    /// Rise of the gap in one epoch that counts as overfitting above `max_gap`; ≥ 0. Default
    /// [`DEFAULT_GAP_WIDENING`].
    #[serde(default = "gap_widening")]
    pub gap_widening: f64,
    /// Jump over the previous epoch that counts as a spike; > 1. Default
    /// [`DEFAULT_SPIKE_RATIO`].
    #[serde(default = "spike_ratio")]
    pub spike_ratio: f64,
    /// Epochs without a further change after a change (a [`Length`]). Default
    /// [`DEFAULT_COOLDOWN`].
    #[serde(default = "cooldown")]
    pub cooldown: Length,
    /// Clock; only `epoch` is possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

impl Default for TrendGapConfig {
    fn default() -> Self {
        TrendGapConfig {
            min_lr: min_lr(),
            max_lr: max_lr(),
            growth: growth(),
            decay: decay(),
            spike_cut: spike_cut(),
            slope_smoothing: slope_smoothing(),
            improve_tolerance: improve_tolerance(),
            stall_tolerance: stall_tolerance(),
            max_gap: max_gap(),
            gap_widening: gap_widening(),
            spike_ratio: spike_ratio(),
            cooldown: cooldown(),
            interval: None,
        }
    }
}

impl ScheduleConfig for TrendGapConfig {
    type Scheduler = TrendGap;

    lengths!(clock = |_| Interval::Epoch, [cooldown >= 0]);

    fn build(self, base_lr: f64) -> Result<TrendGap, ConfigError> {
        TrendGap::new(self, base_lr)
    }

    fn bounds(&self, base_lr: f64) -> RateBounds {
        RateBounds::new(self.min_lr.of(base_lr), self.max_lr.of(base_lr))
    }

    fn examples() -> Vec<Self> {
        vec![
            TrendGapConfig::default(),
            TrendGapConfig {
                growth: 1.5,
                decay: 0.5,
                slope_smoothing: 0.0,
                cooldown: Length::Ticks(2),
                ..Default::default()
            },
        ]
    }
}

/// The losses of the last epoch that was not a spike.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Reference {
    train_loss: f64,
    val_loss: f64,
    gap: f64,
}

/// The trend-gap schedule; see [`TrendGapConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrendGap {
    config: TrendGapConfig,
    cooldown: u64,
    min_lr: f64,
    max_lr: f64,
    lr: f64,
    reference: Option<Reference>,
    slope_ema: Option<f64>,
    cooldown_left: u64,
}

/// What the schedule decided at an epoch's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Spike,
    Hold,
    Decay,
    Grow,
}

impl TrendGap {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`.
    pub fn new(config: TrendGapConfig, base_lr: f64) -> Result<Self, ConfigError> {
        let (min_lr, max_lr) = (config.min_lr.of(base_lr), config.max_lr.of(base_lr));
        non_negative("min_lr", min_lr)?;
        positive("max_lr", max_lr)?;
        lr_bounds(min_lr, max_lr)?;
        ensure(
            config.growth.is_finite() && config.growth >= 1.0,
            "growth",
            || format!("must be a finite number ≥ 1, got {}", config.growth),
        )?;
        in_range("decay", config.decay, 0.0, 1.0, true)?;
        in_range("spike_cut", config.spike_cut, 0.0, 1.0, true)?;
        ensure(
            (0.0..1.0).contains(&config.slope_smoothing),
            "slope_smoothing",
            || format!("must lie in [0, 1), got {}", config.slope_smoothing),
        )?;
        non_negative("improve_tolerance", config.improve_tolerance)?;
        non_negative("stall_tolerance", config.stall_tolerance)?;
        ensure(
            config.stall_tolerance <= config.improve_tolerance,
            "stall_tolerance",
            || {
                format!(
                    "must not exceed improve_tolerance ({}), got {}",
                    config.improve_tolerance, config.stall_tolerance
                )
            },
        )?;
        non_negative("max_gap", config.max_gap)?;
        non_negative("gap_widening", config.gap_widening)?;
        ensure(
            config.spike_ratio.is_finite() && config.spike_ratio > 1.0,
            "spike_ratio",
            || format!("must be a finite number > 1, got {}", config.spike_ratio),
        )?;
        only_clock(
            config.interval,
            Interval::Epoch,
            "the validation loss exists at epoch ends only",
        )?;
        Ok(TrendGap {
            cooldown: config.cooldown.ticks("cooldown")?,
            config,
            min_lr,
            max_lr,
            lr: base_lr.clamp(min_lr, max_lr),
            reference: None,
            slope_ema: None,
            cooldown_left: 0,
        })
    }

    fn decide(&mut self, train_loss: f64, val_loss: f64) -> Decision {
        let c = &self.config;
        let finite = train_loss.is_finite() && val_loss.is_finite();
        let spiked = self.reference.is_some_and(|r| {
            val_loss > r.val_loss * c.spike_ratio || train_loss > r.train_loss * c.spike_ratio
        });
        if !finite || spiked {
            self.slope_ema = None;
            return Decision::Spike;
        }
        let gap = (val_loss - train_loss) / val_loss.abs().max(f64::MIN_POSITIVE);
        let previous = self.reference.replace(Reference {
            train_loss,
            val_loss,
            gap,
        });
        let Some(previous) = previous else {
            return Decision::Hold;
        };
        let slope = (val_loss - previous.val_loss) / previous.val_loss.abs().max(f64::MIN_POSITIVE);
        let trend = match self.slope_ema {
            Some(ema) => c.slope_smoothing * ema + (1.0 - c.slope_smoothing) * slope,
            None => slope,
        };
        self.slope_ema = Some(trend);
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            return Decision::Hold;
        }
        let stalled = trend > -c.stall_tolerance;
        let overfitting = gap > c.max_gap && gap - previous.gap > c.gap_widening;
        let improving = trend < -c.improve_tolerance && train_loss < previous.train_loss;
        if stalled || overfitting {
            Decision::Decay
        } else if improving && gap <= c.max_gap {
            Decision::Grow
        } else {
            Decision::Hold
        }
    }
}

impl Scheduler for TrendGap {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn interval(&self) -> Interval {
        Interval::Epoch
    }

    fn needs(&self) -> Signals {
        Signals::of(Signal::TrainLoss).union(Signals::of(Signal::ValLoss))
    }

    fn observe(&mut self, observation: &Observation) -> f64 {
        if observation.interval() != Interval::Epoch {
            return self.lr;
        }
        let train_loss = observation.expect(Signal::TrainLoss, "trend_gap");
        let val_loss = observation.expect(Signal::ValLoss, "trend_gap");
        let factor = match self.decide(train_loss, val_loss) {
            Decision::Hold => return self.lr,
            Decision::Spike => self.config.spike_cut,
            Decision::Decay => self.config.decay,
            Decision::Grow => self.config.growth,
        };
        self.lr = (self.lr * factor).clamp(self.min_lr, self.max_lr);
        self.cooldown_left = self.cooldown;
        self.lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::EpochEnd;

    const BASE: f64 = 1e-3;

    fn schedule() -> TrendGap {
        TrendGap::new(TrendGapConfig::default(), BASE).unwrap()
    }

    /// Feeds (train, val) pairs and returns the rate after each epoch.
    fn run(schedule: &mut TrendGap, losses: &[(f64, f64)]) -> Vec<f64> {
        losses
            .iter()
            .enumerate()
            .map(|(i, &(train, val))| {
                schedule.observe(&Observation::Epoch(EpochEnd {
                    epoch: i as u64 + 1,
                    train_loss: Some(train),
                    val_loss: Some(val),
                    ..Default::default()
                }))
            })
            .collect()
    }

    #[test]
    fn steady_improvement_with_a_small_gap_grows_to_max_lr() {
        let losses: Vec<_> = (0..60)
            .map(|e| {
                let val = 2.0 * 0.93f64.powi(e);
                (val * 0.95, val)
            })
            .collect();
        let mut s = schedule();
        let lrs = run(&mut s, &losses);
        assert_eq!(lrs[0], BASE, "no decision before the first slope");
        assert!(lrs[2] > BASE, "grows once the trend is clear: {lrs:?}");
        assert!(lrs.windows(2).all(|w| w[1] >= w[0]), "never cuts: {lrs:?}");
        assert_eq!(*lrs.last().unwrap(), BASE * DEFAULT_MAX_LR_FACTOR);
    }

    #[test]
    fn plateau_decays_once_the_trend_flattens_then_every_other_epoch() {
        let mut losses = vec![(1.0, 1.1), (0.9, 1.0)];
        losses.extend(std::iter::repeat_n((0.9, 1.0), 10));
        let lrs = run(&mut schedule(), &losses);
        let grown = BASE * DEFAULT_GROWTH;
        // Epoch 2 falls 9 %: growth. From epoch 3 validation is flat and the slope EMA halves
        // each epoch: −0.045, −0.023, … It crosses −stall_tolerance at epoch 9 (−0.0007).
        assert_eq!(
            lrs[..8],
            [BASE, grown, grown, grown, grown, grown, grown, grown]
        );
        assert_eq!(lrs[8], grown * DEFAULT_DECAY, "{lrs:?}");
        assert_eq!(lrs[9], lrs[8], "cooldown");
        assert_eq!(lrs[10], grown * DEFAULT_DECAY * DEFAULT_DECAY);
        assert_eq!(lrs[11], lrs[10], "cooldown");
    }

    #[test]
    fn widening_gap_decays_even_while_validation_still_improves() {
        // Validation falls 2 % per epoch (clear progress), but training falls much faster and
        // the gap opens by more than 0.05 per epoch from above max_gap.
        let mut s = schedule();
        let losses: Vec<(f64, f64)> = (0..6)
            .map(|e| {
                let val = 1.0 * 0.98f64.powi(e);
                let gap = 0.25 + 0.08 * e as f64;
                (val * (1.0 - gap), val)
            })
            .collect();
        let lrs = run(&mut s, &losses);
        assert_eq!(lrs[1], BASE * DEFAULT_DECAY, "{lrs:?}");
        assert!(lrs.iter().all(|&lr| lr <= BASE));
    }

    #[test]
    fn small_stable_gap_with_progress_is_not_overfitting() {
        let mut s = schedule();
        let lrs = run(&mut s, &[(0.8, 1.0), (0.76, 0.95), (0.72, 0.9)]);
        assert_eq!(lrs[1], BASE * DEFAULT_GROWTH);
    }

    #[test]
    fn spike_cuts_hard_and_is_not_taken_as_the_new_reference() {
        let mut s = schedule();
        let lrs = run(
            &mut s,
            &[
                (1.0, 1.1),
                (0.9, 1.0),
                (0.85, 0.98),
                (0.8, 2.5),
                (0.8, 0.97),
            ],
        );
        assert_eq!(lrs[3], lrs[2] * DEFAULT_SPIKE_CUT, "{lrs:?}");
        // After the spike the reference is still epoch 3 (0.98), so epoch 5 is a small gain,
        // not a 60 % recovery that would have triggered growth; cooldown holds it anyway.
        assert_eq!(lrs[4], lrs[3]);
        assert_eq!(s.reference.unwrap().val_loss, 0.97);
    }

    #[test]
    fn non_finite_loss_cuts_hard_and_bounds_hold() {
        let mut s = schedule();
        let lrs = run(
            &mut s,
            &[
                (1.0, 1.1),
                (f64::NAN, 1.0),
                (0.9, f64::INFINITY),
                (0.9, f64::NAN),
            ],
        );
        assert_eq!(lrs[1], BASE * DEFAULT_SPIKE_CUT);
        assert_eq!(
            lrs[3],
            BASE * DEFAULT_MIN_LR_FACTOR,
            "clamped at min_lr: {lrs:?}"
        );
        assert!(lrs.iter().all(|lr| lr.is_finite()));
    }

    #[test]
    fn warmup_in_front_ramps_per_step_then_hands_over() {
        let config: crate::SchedulerConfig = toml::from_str(
            "kind = 'warmup'\nwarmup_steps = 4\nstart_factor = 0.0\ninner = { kind = 'trend_gap' }",
        )
        .unwrap();
        let mut s = config.build(BASE).unwrap();
        let mut seen = Vec::new();
        for (epoch, (train, val)) in [(1.0, 1.05), (0.9, 0.95), (0.8, 0.85), (0.7, 0.75)]
            .into_iter()
            .enumerate()
        {
            for _ in 0..2 {
                seen.push(s.lr());
                s.observe(&Observation::Step(crate::StepEnd::default()));
            }
            s.observe(&Observation::Epoch(EpochEnd {
                epoch: epoch as u64 + 1,
                train_loss: Some(train),
                val_loss: Some(val),
                ..Default::default()
            }));
        }
        seen.push(s.lr());
        // Four warmup steps from 0, then the base rate; trend-gap sees epochs 2, 3, 4 and grows
        // at epoch 3 (its first slope), then holds in cooldown.
        let ramp = [0.0, 0.25 * BASE, 0.5 * BASE, 0.75 * BASE, BASE, BASE];
        assert_eq!(seen[..6], ramp);
        assert_eq!(seen[6..], [BASE * DEFAULT_GROWTH; 3]);
    }

    #[test]
    fn ignores_step_events_and_rejects_a_step_clock() {
        let mut s = schedule();
        let step = Observation::Step(crate::StepEnd::default());
        assert_eq!(s.observe(&step), BASE);
        let err = TrendGap::new(
            TrendGapConfig {
                interval: Some(Interval::Step),
                ..Default::default()
            },
            BASE,
        )
        .unwrap_err();
        assert_eq!(err.field, "interval");
    }
}
