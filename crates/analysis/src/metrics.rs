//! What one run achieved: convergence, quality and over/under-fitting, from its curves.

use crate::runs::Curves;

/// Epochs until the validation accuracy first reached the threshold, or the epochs watched
/// without reaching it (right-censored).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct TimeToThreshold {
    /// The first epoch with val accuracy ≥ threshold, or the last finished epoch if never.
    pub epochs: u32,
    /// Whether the threshold was reached (`false`: censored at `epochs`).
    pub reached: bool,
}

/// Generalisation gaps are written so that positive means fitting the training data better
/// than the validation data (over-fitting): `val_loss − train_loss`, `train_acc − val_acc`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct RunMetrics {
    /// Finished epochs.
    pub epochs: u32,
    /// The best validation accuracy.
    pub best_val_acc: f64,
    /// Its epoch (the first one, on ties).
    pub best_val_epoch: u32,
    /// Test accuracy at the best-validation epoch (what model selection would ship).
    pub test_acc_at_best_val: Option<f64>,
    /// Validation accuracy at the last epoch.
    pub final_val_acc: f64,
    /// Test accuracy at the last epoch.
    pub final_test_acc: Option<f64>,
    /// Convergence speed.
    pub epochs_to_threshold: TimeToThreshold,
    /// `val_loss − train_loss` at the last epoch.
    pub final_loss_gap: f64,
    /// `train_acc − val_acc` at the last epoch.
    pub final_acc_gap: f64,
    /// `val_loss − train_loss` averaged over the last 5 epochs (fewer if the run is shorter).
    pub loss_gap_last5: f64,
    /// `train_acc − val_acc` averaged over the last 5 epochs.
    pub acc_gap_last5: f64,
    /// Area under the validation-accuracy curve per epoch: the mean val accuracy over the
    /// finished epochs, in [0, 1]; rewards reaching good accuracy early.
    pub val_acc_auc: f64,
}

/// How many final epochs the averaged gaps cover.
pub const LAST_EPOCHS: usize = 5;

impl RunMetrics {
    /// The metrics of a run's curves; `None` if no epoch finished.
    pub fn of(curves: &Curves, threshold: f64) -> Option<Self> {
        let last = curves.len().checked_sub(1)?;
        let best = (0..curves.len())
            .rev()
            .max_by(|&a, &b| curves.val_acc[a].total_cmp(&curves.val_acc[b]))
            .expect("a finished epoch");
        let epochs_to_threshold = match curves.val_acc.iter().position(|&acc| acc >= threshold) {
            Some(row) => TimeToThreshold {
                epochs: curves.epoch[row],
                reached: true,
            },
            None => TimeToThreshold {
                epochs: curves.epoch[last],
                reached: false,
            },
        };
        let loss_gap = |row: usize| curves.val_loss[row] - curves.train_loss[row];
        let acc_gap = |row: usize| curves.train_acc[row] - curves.val_acc[row];
        let tail = curves.len().saturating_sub(LAST_EPOCHS)..curves.len();
        let tail_mean =
            |gap: &dyn Fn(usize) -> f64| tail.clone().map(gap).sum::<f64>() / tail.len() as f64;
        Some(RunMetrics {
            epochs: curves.epoch[last],
            best_val_acc: curves.val_acc[best],
            best_val_epoch: curves.epoch[best],
            test_acc_at_best_val: curves.test_acc[best],
            final_val_acc: curves.val_acc[last],
            final_test_acc: curves.test_acc[last],
            epochs_to_threshold,
            final_loss_gap: loss_gap(last),
            final_acc_gap: acc_gap(last),
            loss_gap_last5: tail_mean(&loss_gap),
            acc_gap_last5: tail_mean(&acc_gap),
            val_acc_auc: curves.val_acc.iter().sum::<f64>() / curves.len() as f64,
        })
    }

    /// The value of a metric; `None` where the run has none (no test set; for
    /// epochs-to-threshold, a run that never reached it).
    pub fn value(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::BestValAcc => Some(self.best_val_acc),
            Metric::TestAccAtBestVal => self.test_acc_at_best_val,
            Metric::FinalTestAcc => self.final_test_acc,
            Metric::FinalValAcc => Some(self.final_val_acc),
            Metric::EpochsToThreshold => self
                .epochs_to_threshold
                .reached
                .then_some(f64::from(self.epochs_to_threshold.epochs)),
            Metric::FinalLossGap => Some(self.final_loss_gap),
            Metric::FinalAccGap => Some(self.final_acc_gap),
            Metric::LossGapLast5 => Some(self.loss_gap_last5),
            Metric::AccGapLast5 => Some(self.acc_gap_last5),
            Metric::ValAccAuc => Some(self.val_acc_auc),
        }
    }
}

/// A per-run outcome that arms are compared on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Best validation accuracy.
    BestValAcc,
    /// Test accuracy at the best-validation epoch.
    TestAccAtBestVal,
    /// Test accuracy at the last epoch.
    FinalTestAcc,
    /// Validation accuracy at the last epoch.
    FinalValAcc,
    /// Epochs to the validation-accuracy threshold (right-censored).
    EpochsToThreshold,
    /// `val_loss − train_loss` at the last epoch.
    FinalLossGap,
    /// `train_acc − val_acc` at the last epoch.
    FinalAccGap,
    /// `val_loss − train_loss` over the last 5 epochs.
    LossGapLast5,
    /// `train_acc − val_acc` over the last 5 epochs.
    AccGapLast5,
    /// Mean validation accuracy over the epochs.
    ValAccAuc,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 10] = [
        Metric::BestValAcc,
        Metric::TestAccAtBestVal,
        Metric::FinalTestAcc,
        Metric::FinalValAcc,
        Metric::EpochsToThreshold,
        Metric::FinalLossGap,
        Metric::FinalAccGap,
        Metric::LossGapLast5,
        Metric::AccGapLast5,
        Metric::ValAccAuc,
    ];

    /// The column name used in tables and JSON.
    pub fn key(self) -> &'static str {
        match self {
            Metric::BestValAcc => "best_val_acc",
            Metric::TestAccAtBestVal => "test_acc_at_best_val",
            Metric::FinalTestAcc => "final_test_acc",
            Metric::FinalValAcc => "final_val_acc",
            Metric::EpochsToThreshold => "epochs_to_threshold",
            Metric::FinalLossGap => "final_loss_gap",
            Metric::FinalAccGap => "final_acc_gap",
            Metric::LossGapLast5 => "loss_gap_last5",
            Metric::AccGapLast5 => "acc_gap_last5",
            Metric::ValAccAuc => "val_acc_auc",
        }
    }

    /// Words for the report.
    pub fn label(self) -> &'static str {
        match self {
            Metric::BestValAcc => "best validation accuracy",
            Metric::TestAccAtBestVal => "test accuracy at the best-validation epoch",
            Metric::FinalTestAcc => "final test accuracy",
            Metric::FinalValAcc => "final validation accuracy",
            Metric::EpochsToThreshold => "epochs to the threshold",
            Metric::FinalLossGap => "final loss gap (val − train)",
            Metric::FinalAccGap => "final accuracy gap (train − val)",
            Metric::LossGapLast5 => "loss gap over the last 5 epochs",
            Metric::AccGapLast5 => "accuracy gap over the last 5 epochs",
            Metric::ValAccAuc => "area under the val-accuracy curve",
        }
    }

    /// Whether a larger value is the better outcome (fewer epochs and smaller
    /// over-fitting gaps are better).
    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            Metric::BestValAcc
                | Metric::TestAccAtBestVal
                | Metric::FinalTestAcc
                | Metric::FinalValAcc
                | Metric::ValAccAuc
        )
    }
}
