//! "Is this value better than the best so far?" — the test shared by plateau and GreedyLR.

use crate::error::{ConfigError, ensure};
use crate::observation::{Observation, Signal};
use serde::{Deserialize, Serialize};

/// Whether the monitored quantity should fall or rise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Lower is better (losses).
    Min,
    /// Higher is better (accuracies).
    Max,
}

/// How far past the best a value must go to count as better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMode {
    /// Relative: `best · (1 ∓ threshold)`.
    Rel,
    /// Absolute: `best ∓ threshold`.
    Abs,
}

/// PyTorch's `ReduceLROnPlateau` comparison, with its exact floating-point operations.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Improvement {
    pub mode: Mode,
    pub threshold: f64,
    pub threshold_mode: ThresholdMode,
}

impl Improvement {
    /// The starting "best": the worst possible value.
    pub fn worst(&self) -> f64 {
        match self.mode {
            Mode::Min => f64::INFINITY,
            Mode::Max => f64::NEG_INFINITY,
        }
    }

    /// Whether `value` improves on `best`. NaN never does.
    pub fn is_better(&self, value: f64, best: f64) -> bool {
        let t = self.threshold;
        match (self.mode, self.threshold_mode) {
            (Mode::Min, ThresholdMode::Rel) => value < best * (1.0 - t),
            (Mode::Min, ThresholdMode::Abs) => value < best - t,
            (Mode::Max, ThresholdMode::Rel) => value > best * (t + 1.0),
            (Mode::Max, ThresholdMode::Abs) => value > best + t,
        }
    }
}

/// The mode to use: the one given, else the natural one for the monitored signal.
pub(crate) fn mode_for(mode: Option<Mode>, monitor: Signal) -> Mode {
    mode.unwrap_or(if monitor.higher_is_better() {
        Mode::Max
    } else {
        Mode::Min
    })
}

/// Checks that `monitor` is a quantity a metric-driven schedule can watch.
pub(crate) fn check_monitor(monitor: Signal) -> Result<(), ConfigError> {
    ensure(
        !matches!(monitor, Signal::GradDot | Signal::GradCos),
        "monitor",
        || {
            format!(
                "must be one of val_loss, val_acc, train_loss, train_acc, batch_loss; got {monitor}"
            )
        },
    )
}

/// The value of `monitor` when `observation` is an event of its clock, for the schedule `who`.
///
/// # Panics
/// When the event is of the monitor's clock but lacks the value.
pub(crate) fn watched(observation: &Observation, monitor: Signal, who: &str) -> Option<f64> {
    (observation.interval() == monitor.interval()).then(|| observation.expect(monitor, who))
}
