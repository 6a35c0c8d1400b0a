//! What one run achieved: convergence, quality and over/under-fitting, from its curves — with
//! a run that diverged counted as the failure it is.

use crate::runs::Curves;

/// Epochs until the validation accuracy first reached the threshold, or the epochs watched
/// without reaching it (right-censored).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct TimeToThreshold {
    /// The first epoch with val accuracy ≥ threshold, or the epoch it was watched to if never.
    pub epochs: u32,
    /// Whether the threshold was reached (`false`: censored at `epochs`).
    pub reached: bool,
}

/// How a run fits its data at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// Neither training nor validation accuracy reaches the threshold: the model fits neither.
    Underfit,
    /// Validation loss ended above its minimum (by more than [`RISE`]) while the loss gap grew
    /// past its value there: it learns the training set at the validation set's expense.
    Overfit,
    /// Neither.
    Fits,
    /// The loss became non-finite.
    Diverged,
}

impl Fit {
    /// The word for the report.
    pub fn name(self) -> &'static str {
        match self {
            Fit::Underfit => "underfit",
            Fit::Overfit => "overfit",
            Fit::Fits => "fits",
            Fit::Diverged => "diverged",
        }
    }
}

/// How far above its minimum the final validation loss must be to count as risen: 1 %.
pub const RISE: f64 = 0.01;

/// What the metrics of a run are read against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Context {
    /// The validation accuracy of convergence.
    pub threshold: f64,
    /// The epochs the run was planned for.
    pub planned_epochs: u32,
    /// The accuracy of guessing: 1 / classes.
    pub chance: f64,
    /// Whether the run diverged.
    pub diverged: bool,
}

/// Generalisation gaps are written so that positive means fitting the training data better
/// than the validation data: `val_loss − train_loss`, `train_acc − val_acc`. They describe a
/// run; neither sign is "better" (a model that learnt nothing has no gap).
///
/// A run that **diverged** counts as a failure: its accuracies (best and final, validation and
/// test) are chance level, its area under the accuracy curve counts chance level for every
/// planned epoch after the divergence, and unless it reached the threshold before diverging it
/// is censored at the planned end — it never got there. Its gaps are those of its last
/// finished epoch.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct RunMetrics {
    /// Finished epochs.
    pub epochs: u32,
    /// Whether the run diverged.
    pub diverged: bool,
    /// The best validation accuracy.
    pub best_val_acc: f64,
    /// Its epoch (the first one, on ties).
    pub best_val_epoch: u32,
    /// Test accuracy at the best-validation epoch (what model selection would ship).
    pub test_acc_at_best_val: Option<f64>,
    /// Training accuracy of the last epoch.
    pub final_train_acc: f64,
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
    /// planned epochs, in [0, 1]; rewards reaching good accuracy early.
    pub val_acc_auc: f64,
    /// How the run fits its data at the end.
    pub fit: Fit,
}

/// How many final epochs the averaged gaps cover.
pub const LAST_EPOCHS: usize = 5;

impl RunMetrics {
    /// The metrics of a run's curves; `None` if no epoch finished.
    pub fn of(curves: &Curves, context: &Context) -> Option<Self> {
        let last = curves.len().checked_sub(1)?;
        let best = (0..curves.len())
            .rev()
            .max_by(|&a, &b| curves.val_acc[a].total_cmp(&curves.val_acc[b]))
            .expect("a finished epoch");
        let reached = curves
            .val_acc
            .iter()
            .position(|&acc| acc >= context.threshold);
        let epochs_to_threshold = match (reached, context.diverged) {
            (Some(row), _) => TimeToThreshold {
                epochs: curves.epoch[row],
                reached: true,
            },
            (None, true) => TimeToThreshold {
                epochs: context.planned_epochs.max(curves.epoch[last]),
                reached: false,
            },
            (None, false) => TimeToThreshold {
                epochs: curves.epoch[last],
                reached: false,
            },
        };
        let loss_gap = |row: usize| curves.val_loss[row] - curves.train_loss[row];
        let acc_gap = |row: usize| curves.train_acc[row] - curves.val_acc[row];
        let tail = curves.len().saturating_sub(LAST_EPOCHS)..curves.len();
        let tail_mean =
            |gap: &dyn Fn(usize) -> f64| tail.clone().map(gap).sum::<f64>() / tail.len() as f64;
        let seen: f64 = curves.val_acc.iter().sum();
        let measured_test = curves.test_acc.iter().any(Option::is_some);
        let chance = context.chance;
        let (accuracies, auc) = match context.diverged {
            false => (
                [
                    curves.val_acc[best],
                    curves.val_acc[last],
                    curves.train_acc[last],
                ],
                seen / curves.len() as f64,
            ),
            true => {
                let planned = context.planned_epochs.max(curves.epoch[last]);
                let missing = f64::from(planned) - curves.len() as f64;
                (
                    [chance, chance, curves.train_acc[last]],
                    (seen + chance * missing) / f64::from(planned),
                )
            }
        };
        let test = |row: usize| match context.diverged {
            false => curves.test_acc[row],
            true => measured_test.then_some(chance),
        };
        Some(RunMetrics {
            epochs: curves.epoch[last],
            diverged: context.diverged,
            best_val_acc: accuracies[0],
            best_val_epoch: curves.epoch[best],
            test_acc_at_best_val: test(best),
            final_train_acc: accuracies[2],
            final_val_acc: accuracies[1],
            final_test_acc: test(last),
            epochs_to_threshold,
            final_loss_gap: loss_gap(last),
            final_acc_gap: acc_gap(last),
            loss_gap_last5: tail_mean(&loss_gap),
            acc_gap_last5: tail_mean(&acc_gap),
            val_acc_auc: auc,
            fit: fit(curves, context),
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

/// How a run fits at its end (see [`Fit`]).
fn fit(curves: &Curves, context: &Context) -> Fit {
    if context.diverged {
        return Fit::Diverged;
    }
    let last = curves.len() - 1;
    let poor = |acc: f64| acc < context.threshold;
    if poor(curves.train_acc[last]) && poor(curves.val_acc[last]) {
        return Fit::Underfit;
    }
    let lowest = (0..curves.len())
        .min_by(|&a, &b| curves.val_loss[a].total_cmp(&curves.val_loss[b]))
        .expect("a finished epoch");
    let gap = |row: usize| curves.val_loss[row] - curves.train_loss[row];
    let risen = curves.val_loss[last] > curves.val_loss[lowest] * (1.0 + RISE);
    match risen && gap(last) > gap(lowest) {
        true => Fit::Overfit,
        false => Fit::Fits,
    }
}

/// Which way a metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// Larger values (accuracies).
    Higher,
    /// Smaller values (epochs to the threshold).
    Lower,
    /// Neither: a description (the generalisation gaps).
    Neither,
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

    /// The metric of a column name.
    pub fn from_key(key: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.key() == key)
    }

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

    /// Which way the metric is better; the gaps describe and are neither.
    pub fn better(self) -> Better {
        match self {
            Metric::BestValAcc
            | Metric::TestAccAtBestVal
            | Metric::FinalTestAcc
            | Metric::FinalValAcc
            | Metric::ValAccAuc => Better::Higher,
            Metric::EpochsToThreshold => Better::Lower,
            Metric::FinalLossGap
            | Metric::FinalAccGap
            | Metric::LossGapLast5
            | Metric::AccGapLast5 => Better::Neither,
        }
    }

    /// Whether the metric is an accuracy in [0, 1], whose differences read in points (0.01).
    pub fn is_accuracy(self) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Curves of `(train_loss, train_acc, val_loss, val_acc)` per epoch, test = val − 0.01.
    fn curves(rows: &[(f64, f64, f64, f64)]) -> Curves {
        Curves {
            epoch: (1..=rows.len() as u32).collect(),
            lr: vec![1e-3; rows.len()],
            train_loss: rows.iter().map(|r| r.0).collect(),
            train_acc: rows.iter().map(|r| r.1).collect(),
            val_loss: rows.iter().map(|r| r.2).collect(),
            val_acc: rows.iter().map(|r| r.3).collect(),
            test_acc: rows.iter().map(|r| Some(r.3 - 0.01)).collect(),
        }
    }

    fn context(diverged: bool) -> Context {
        Context {
            threshold: 0.8,
            planned_epochs: 10,
            chance: 0.1,
            diverged,
        }
    }

    #[test]
    fn a_diverged_run_counts_as_a_failure() {
        let good = [
            (1.0, 0.5, 1.1, 0.6),
            (0.5, 0.85, 0.6, 0.82),
            (0.4, 0.9, 0.5, 0.84),
        ];
        let kept = RunMetrics::of(&curves(&good), &context(false)).unwrap();
        assert_eq!(kept.test_acc_at_best_val, Some(0.83));
        let failed = RunMetrics::of(&curves(&good[..1]), &context(true)).unwrap();
        assert_eq!(
            (
                failed.best_val_acc,
                failed.final_val_acc,
                failed.final_test_acc
            ),
            (0.1, 0.1, Some(0.1))
        );
        assert_eq!(failed.test_acc_at_best_val, Some(0.1));
        assert_eq!(
            failed.final_train_acc, 0.5,
            "the seed's own training accuracy"
        );
        assert!((failed.val_acc_auc - (0.6 + 0.1 * 9.0) / 10.0).abs() < 1e-12);
        assert_eq!(
            failed.epochs_to_threshold,
            TimeToThreshold {
                epochs: 10,
                reached: false
            },
            "censored at the planned end, not where it diverged"
        );
        let late = RunMetrics::of(&curves(&good[..2]), &context(true)).unwrap();
        assert!(
            late.epochs_to_threshold.reached,
            "it reached 0.8 before diverging"
        );
        assert_eq!((late.fit, kept.fit), (Fit::Diverged, Fit::Fits));
    }

    #[test]
    fn fit_says_underfit_when_both_are_poor_and_overfit_when_the_gap_grows_as_val_loss_rises() {
        // A collapsed model: train ≈ val ≈ chance, no gap.
        let collapsed = [(0.69, 0.5, 0.69, 0.5), (0.69, 0.5, 0.69, 0.5)];
        let m = RunMetrics::of(&curves(&collapsed), &context(false)).unwrap();
        assert_eq!(m.fit, Fit::Underfit);
        assert!(m.final_acc_gap.abs() < 1e-12);
        let overfit = [
            (1.0, 0.6, 1.0, 0.6),
            (0.3, 0.9, 0.5, 0.85),
            (0.05, 0.99, 0.7, 0.84),
        ];
        assert_eq!(
            RunMetrics::of(&curves(&overfit), &context(false))
                .unwrap()
                .fit,
            Fit::Overfit
        );
        let settled = [
            (1.0, 0.6, 1.0, 0.6),
            (0.3, 0.9, 0.5, 0.85),
            (0.28, 0.91, 0.502, 0.85),
        ];
        assert_eq!(
            RunMetrics::of(&curves(&settled), &context(false))
                .unwrap()
                .fit,
            Fit::Fits,
            "a rise within 1 % is noise"
        );
    }
}
