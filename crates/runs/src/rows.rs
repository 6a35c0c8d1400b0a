//! The rows a run records: one per finished epoch (`epochs.parquet`) and one per optimizer step
//! (`steps.parquet`), with their column names, written and read in one place.

use std::path::Path;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RunError};

/// The column names of `epochs.parquet`, in order.
pub mod epoch_columns {
    /// The 1-based epoch (`u32`).
    pub const EPOCH: &str = "epoch";
    /// The learning rate of the epoch's last optimizer step (`f64`).
    pub const LR: &str = "lr";
    /// Mean of the epoch's batch losses, in training mode.
    pub const TRAIN_LOSS: &str = "train_loss";
    /// Accuracy over the epoch's training batches.
    pub const TRAIN_ACC: &str = "train_acc";
    /// Validation loss after the epoch.
    pub const VAL_LOSS: &str = "val_loss";
    /// Validation accuracy after the epoch.
    pub const VAL_ACC: &str = "val_acc";
    /// Test loss after the epoch (null when not measured).
    pub const TEST_LOSS: &str = "test_loss";
    /// Test accuracy after the epoch (null when not measured).
    pub const TEST_ACC: &str = "test_acc";
    /// Wall time of the epoch, evaluation included.
    pub const EPOCH_SECONDS: &str = "epoch_seconds";
    /// Training examples per second of the epoch's training part.
    pub const EXAMPLES_PER_SECOND: &str = "examples_per_second";
}

/// The column names of `steps.parquet`, in order.
pub mod step_columns {
    /// Steps completed, this one included (`u64`, 1-based).
    pub const STEP: &str = "step";
    /// The 1-based epoch (`u32`).
    pub const EPOCH: &str = "epoch";
    /// The learning rate the step used.
    pub const LR: &str = "lr";
    /// The batch's loss.
    pub const LOSS: &str = "loss";
    /// ⟨g_t, d_{t−1}⟩ where the schedule reads the gradients' agreement (null elsewhere).
    pub const GRAD_DOT: &str = "grad_dot";
    /// cos(g_t, d_{t−1}), likewise.
    pub const GRAD_COS: &str = "grad_cos";
}

/// One row of `epochs.parquet`: a finished epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    /// The 1-based epoch.
    pub epoch: u32,
    /// The learning rate of the epoch's last optimizer step.
    pub lr: f64,
    /// Mean of the epoch's batch losses, in training mode.
    pub train_loss: f64,
    /// Accuracy over the epoch's training batches, in training mode.
    pub train_acc: f64,
    /// Validation loss after the epoch, in evaluation mode.
    pub val_loss: f64,
    /// Validation accuracy after the epoch.
    pub val_acc: f64,
    /// Test loss after the epoch (reported only, never used for a decision).
    pub test_loss: Option<f64>,
    /// Test accuracy after the epoch.
    pub test_acc: Option<f64>,
    /// Wall time of the epoch, evaluation included.
    pub epoch_seconds: f64,
    /// Training examples per second of the epoch's training part.
    pub examples_per_second: f64,
}

/// One row of `steps.parquet`: an optimizer step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRow {
    /// Steps completed, this one included (1-based).
    pub step: u64,
    /// The 1-based epoch.
    pub epoch: u32,
    /// The learning rate the step used.
    pub lr: f64,
    /// The batch's loss.
    pub loss: f64,
    /// ⟨g_t, d_{t−1}⟩ where the scheduler reads the gradients' agreement (hypergradient),
    /// else `None`.
    pub grad_dot: Option<f64>,
    /// cos(g_t, d_{t−1}) = ⟨g_t, d_{t−1}⟩ / (‖g_t‖ ‖d_{t−1}‖), likewise.
    pub grad_cos: Option<f64>,
}

/// The epoch rows as a frame with the columns of [`epoch_columns`].
pub(crate) fn epoch_frame(rows: &[EpochRow]) -> PolarsResult<DataFrame> {
    use epoch_columns::*;
    let f = |name: &str, get: fn(&EpochRow) -> f64| {
        Column::new(name.into(), rows.iter().map(get).collect::<Vec<f64>>())
    };
    let optional = |name: &str, get: fn(&EpochRow) -> Option<f64>| {
        Column::new(name.into(), rows.iter().map(get).collect::<Vec<_>>())
    };
    DataFrame::new_infer_height(vec![
        Column::new(
            EPOCH.into(),
            rows.iter().map(|r| r.epoch).collect::<Vec<_>>(),
        ),
        f(LR, |r| r.lr),
        f(TRAIN_LOSS, |r| r.train_loss),
        f(TRAIN_ACC, |r| r.train_acc),
        f(VAL_LOSS, |r| r.val_loss),
        f(VAL_ACC, |r| r.val_acc),
        optional(TEST_LOSS, |r| r.test_loss),
        optional(TEST_ACC, |r| r.test_acc),
        f(EPOCH_SECONDS, |r| r.epoch_seconds),
        f(EXAMPLES_PER_SECOND, |r| r.examples_per_second),
    ])
}

/// The step rows as a frame with the columns of [`step_columns`].
pub(crate) fn step_frame(rows: &[StepRow]) -> PolarsResult<DataFrame> {
    use step_columns::*;
    DataFrame::new_infer_height(vec![
        Column::new(STEP.into(), rows.iter().map(|r| r.step).collect::<Vec<_>>()),
        Column::new(
            EPOCH.into(),
            rows.iter().map(|r| r.epoch).collect::<Vec<_>>(),
        ),
        Column::new(LR.into(), rows.iter().map(|r| r.lr).collect::<Vec<_>>()),
        Column::new(LOSS.into(), rows.iter().map(|r| r.loss).collect::<Vec<_>>()),
        Column::new(
            GRAD_DOT.into(),
            rows.iter().map(|r| r.grad_dot).collect::<Vec<_>>(),
        ),
        Column::new(
            GRAD_COS.into(),
            rows.iter().map(|r| r.grad_cos).collect::<Vec<_>>(),
        ),
    ])
}

/// What a measured column of `epochs.parquet` may hold.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Measured {
    /// An accuracy: a finite share in [0, 1].
    Share,
    /// A loss, rate, duration or speed: finite and not negative.
    NonNegative,
}

impl Measured {
    fn admits(self, value: f64) -> bool {
        match self {
            Measured::Share => (0.0..=1.0).contains(&value),
            Measured::NonNegative => value.is_finite() && value >= 0.0,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Measured::Share => "a share in [0, 1]",
            Measured::NonNegative => "a finite number ≥ 0",
        }
    }
}

/// The columns of a frame read from `path`, each cast to the type its rows hold; errors name
/// the file, the column and the row.
pub(crate) struct Columns<'a> {
    path: &'a Path,
    frame: DataFrame,
}

impl<'a> Columns<'a> {
    /// Reads the parquet file at `path`.
    pub(crate) fn read(path: &'a Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| RunError::file(path, e))?;
        // One small file per run: reading its columns in parallel costs more than it saves.
        let frame = ParquetReader::new(file)
            .read_parallel(ParallelStrategy::None)
            .finish()
            .map_err(|e| {
                RunError::file(
                    path,
                    format!(
                        "not a readable parquet file ({e}): it was damaged; delete the run's \
                         folder to train the run again"
                    ),
                )
            })?;
        Ok(Columns { path, frame })
    }

    /// The number of rows.
    pub(crate) fn len(&self) -> usize {
        self.frame.height()
    }

    /// Column `name` cast to `dtype`, nulls kept.
    fn cast(&self, name: &str, dtype: &DataType) -> Result<Series> {
        let column = self.frame.column(name).map_err(|_| {
            let found: Vec<&str> = self
                .frame
                .get_column_names()
                .into_iter()
                .map(|n| n.as_str())
                .collect();
            RunError::file(
                self.path,
                format!("no column `{name}` (it has: {})", found.join(", ")),
            )
        })?;
        let cast = column.cast(dtype).map_err(|e| {
            RunError::file(
                self.path,
                format!("column `{name}` is {}, not {dtype}: {e}", column.dtype()),
            )
        })?;
        if cast.null_count() > column.null_count() {
            return Err(RunError::file(
                self.path,
                format!("column `{name}` holds values that are not {dtype}"),
            ));
        }
        Ok(cast.as_materialized_series().clone())
    }

    /// Column `name` as numbers, null where the file has no value.
    pub(crate) fn optional(&self, name: &str) -> Result<Vec<Option<f64>>> {
        Ok(self
            .cast(name, &DataType::Float64)?
            .f64()
            .expect("f64")
            .iter()
            .collect())
    }

    /// Column `name` as numbers, every row required.
    pub(crate) fn floats(&self, name: &str) -> Result<Vec<f64>> {
        self.required(self.optional(name)?, name)
    }

    /// Column `name` as measurements of `kind`, every row required: what the trainer writes
    /// in `epochs.parquet`, where a NaN would be taken for a measurement.
    pub(crate) fn measured(&self, name: &str, kind: Measured) -> Result<Vec<f64>> {
        let values = self.floats(name)?;
        self.check_measured(values.iter().map(|&v| Some(v)), name, kind)?;
        Ok(values)
    }

    /// Column `name` as measurements of `kind`, null where the file has no value.
    pub(crate) fn optional_measured(&self, name: &str, kind: Measured) -> Result<Vec<Option<f64>>> {
        let values = self.optional(name)?;
        self.check_measured(values.iter().copied(), name, kind)?;
        Ok(values)
    }

    fn check_measured(
        &self,
        values: impl Iterator<Item = Option<f64>>,
        name: &str,
        kind: Measured,
    ) -> Result<()> {
        let bad = values
            .enumerate()
            .find_map(|(row, v)| v.filter(|&v| !kind.admits(v)).map(|v| (row, v)));
        match bad {
            Some((row, value)) => Err(RunError::file(
                self.path,
                format!(
                    "column `{name}` is {value} at row {row}, not {}; the trainer never writes \
                     that (a diverged epoch ends the run before its row), so the file was edited \
                     or damaged: delete the run's folder to train it again",
                    kind.describe()
                ),
            )),
            None => Ok(()),
        }
    }

    /// Column `name` as epoch numbers (1-based), every row required.
    pub(crate) fn epochs(&self, name: &str) -> Result<Vec<u32>> {
        let values = self.cast(name, &DataType::UInt32)?;
        let values = self.required(values.u32().expect("u32").iter().collect(), name)?;
        self.one_based(values, name)
    }

    /// Column `name` as step numbers (1-based), every row required.
    pub(crate) fn steps(&self, name: &str) -> Result<Vec<u64>> {
        let values = self.cast(name, &DataType::UInt64)?;
        let values = self.required(values.u64().expect("u64").iter().collect(), name)?;
        self.one_based(values, name)
    }

    fn required<T>(&self, values: Vec<Option<T>>, name: &str) -> Result<Vec<T>> {
        values
            .into_iter()
            .enumerate()
            .map(|(row, value)| {
                value.ok_or_else(|| {
                    RunError::file(
                        self.path,
                        format!("column `{name}` is null at row {row}; every row needs it"),
                    )
                })
            })
            .collect()
    }

    fn one_based<T: Copy + Into<u64>>(&self, values: Vec<T>, name: &str) -> Result<Vec<T>> {
        match values.iter().position(|&v| v.into() == 0) {
            Some(row) => Err(RunError::file(
                self.path,
                format!("column `{name}` is 0 at row {row}; it counts from 1"),
            )),
            None => Ok(values),
        }
    }
}

/// Reads `epochs.parquet`: every column of [`epoch_columns`], epochs strictly increasing, every
/// value finite and not negative, accuracies in [0, 1].
pub(crate) fn read_epochs(path: &Path) -> Result<Vec<EpochRow>> {
    use epoch_columns::*;
    let columns = Columns::read(path)?;
    let epoch = columns.epochs(EPOCH)?;
    if let Some(row) = (1..epoch.len()).find(|&i| epoch[i] <= epoch[i - 1]) {
        return Err(RunError::file(
            path,
            format!(
                "`epoch` goes from {} to {} at row {row}; each finished epoch appears once, in \
                 order",
                epoch[row - 1],
                epoch[row]
            ),
        ));
    }
    use Measured::{NonNegative as NON_NEGATIVE, Share as SHARE};
    let lr = columns.measured(LR, NON_NEGATIVE)?;
    let train_loss = columns.measured(TRAIN_LOSS, NON_NEGATIVE)?;
    let train_acc = columns.measured(TRAIN_ACC, SHARE)?;
    let val_loss = columns.measured(VAL_LOSS, NON_NEGATIVE)?;
    let val_acc = columns.measured(VAL_ACC, SHARE)?;
    let test_loss = columns.optional_measured(TEST_LOSS, NON_NEGATIVE)?;
    let test_acc = columns.optional_measured(TEST_ACC, SHARE)?;
    let seconds = columns.measured(EPOCH_SECONDS, NON_NEGATIVE)?;
    let speed = columns.measured(EXAMPLES_PER_SECOND, NON_NEGATIVE)?;
    Ok((0..columns.len())
        .map(|i| EpochRow {
            epoch: epoch[i],
            lr: lr[i],
            train_loss: train_loss[i],
            train_acc: train_acc[i],
            val_loss: val_loss[i],
            val_acc: val_acc[i],
            test_loss: test_loss[i],
            test_acc: test_acc[i],
            epoch_seconds: seconds[i],
            examples_per_second: speed[i],
        })
        .collect())
}

/// Reads `steps.parquet`: every column of [`step_columns`].
pub(crate) fn read_steps(path: &Path) -> Result<Vec<StepRow>> {
    use step_columns::*;
    let columns = Columns::read(path)?;
    let (step, epoch) = (columns.steps(STEP)?, columns.epochs(EPOCH)?);
    let (lr, loss) = (columns.floats(LR)?, columns.floats(LOSS)?);
    let (grad_dot, grad_cos) = (columns.optional(GRAD_DOT)?, columns.optional(GRAD_COS)?);
    Ok((0..columns.len())
        .map(|i| StepRow {
            step: step[i],
            epoch: epoch[i],
            lr: lr[i],
            loss: loss[i],
            grad_dot: grad_dot[i],
            grad_cos: grad_cos[i],
        })
        .collect())
}
