//! The run directory of DESIGN.md: `run.json`, `epochs.parquet`, `steps.parquet` and
//! `checkpoint/`, every file written atomically (temporary file, fsync, rename, fsync of the
//! folder), so that a run killed at any instant leaves files that read and resume.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// One row of `epochs.parquet`: a finished epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    /// The 1-based epoch.
    pub epoch: i64,
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
    pub images_or_sequences_per_second: f64,
}

/// One row of `steps.parquet`: an optimizer step (the file also has a `grad_dot` column).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRow {
    /// Steps completed, this one included (1-based).
    pub step: i64,
    /// The 1-based epoch.
    pub epoch: i64,
    /// The learning rate the step used.
    pub lr: f64,
    /// The batch's loss.
    pub loss: f64,
    /// ⟨g_t, d_{t−1}⟩ where the scheduler asked for it (hypergradient), else `None`.
    pub grad_dot: Option<f64>,
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Training, or stopped before the end without an error (a resume continues it).
    Running,
    /// Every epoch finished.
    Complete,
    /// The loss became non-finite; the run ended early.
    Diverged,
    /// An error ended the run.
    Failed,
}

/// `run.json`: what the run is and where it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The experiment (dataset + model), e.g. `cifar10`.
    pub experiment: String,
    /// The arm (scheduler) name.
    pub arm: String,
    /// The seed of weights, data order, augmentation and dropout.
    pub seed: u64,
    /// The resolved configuration of the run.
    pub config: serde_json::Value,
    /// The device, as candle names it.
    pub device: String,
    /// The lrlab version.
    pub lrlab_version: String,
    /// The git commit of the code, where known.
    pub git_commit: Option<String>,
    /// Where the run stands.
    pub status: Status,
    /// Why it failed or diverged.
    pub message: Option<String>,
    /// Epochs finished.
    pub epochs_done: u64,
    /// When the run first started (RFC 3339, UTC).
    pub started: String,
    /// When it last ended (complete, diverged or failed).
    pub finished: Option<String>,
    /// How many times it was resumed.
    pub resumed: u64,
}

/// What a checkpoint holds besides the tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CheckpointState {
    /// The epoch reached.
    pub epoch: u64,
    /// Optimizer steps taken.
    pub step: u64,
    /// The scheduler, whole.
    pub scheduler: lrlab_schedulers::AnyScheduler,
    /// The best validation accuracy so far and its epoch.
    pub best: Option<(f64, u64)>,
}

/// The files of one run.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

const CHECKPOINT: &str = "checkpoint";
const LATEST: &str = "latest.json";

impl RunDir {
    /// The run directory at `root` (created when written to).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `run.json`, if the run has started.
    pub fn info(&self) -> Result<Option<RunInfo>> {
        let path = self.root.join("run.json");
        if !path.exists() {
            return Ok(None);
        }
        let text = fs::read_to_string(&path).map_err(|e| TrainError::file(&path, e))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| TrainError::file(&path, e))
    }

    /// Writes `run.json`.
    pub fn write_info(&self, info: &RunInfo) -> Result<()> {
        let text = serde_json::to_string_pretty(info).expect("run info serialises");
        write_atomic(&self.root.join("run.json"), text.as_bytes())
    }

    /// Writes `epochs.parquet` and `steps.parquet`.
    pub(crate) fn write_metrics(&self, epochs: &[EpochRow], steps: &[StepRow]) -> Result<()> {
        let column = |name: &str, values: Vec<f64>| Column::new(name.into(), values);
        let optional = |name: &str, values: Vec<Option<f64>>| Column::new(name.into(), values);
        let epoch_frame = DataFrame::new_infer_height(vec![
            Column::new(
                "epoch".into(),
                epochs.iter().map(|r| r.epoch).collect::<Vec<_>>(),
            ),
            column("lr", epochs.iter().map(|r| r.lr).collect()),
            column("train_loss", epochs.iter().map(|r| r.train_loss).collect()),
            column("train_acc", epochs.iter().map(|r| r.train_acc).collect()),
            column("val_loss", epochs.iter().map(|r| r.val_loss).collect()),
            column("val_acc", epochs.iter().map(|r| r.val_acc).collect()),
            optional("test_loss", epochs.iter().map(|r| r.test_loss).collect()),
            optional("test_acc", epochs.iter().map(|r| r.test_acc).collect()),
            column(
                "epoch_seconds",
                epochs.iter().map(|r| r.epoch_seconds).collect(),
            ),
            column(
                "images_or_sequences_per_second",
                epochs
                    .iter()
                    .map(|r| r.images_or_sequences_per_second)
                    .collect(),
            ),
        ]);
        let step_frame = DataFrame::new_infer_height(vec![
            Column::new(
                "step".into(),
                steps.iter().map(|r| r.step).collect::<Vec<_>>(),
            ),
            Column::new(
                "epoch".into(),
                steps.iter().map(|r| r.epoch).collect::<Vec<_>>(),
            ),
            column("lr", steps.iter().map(|r| r.lr).collect()),
            column("loss", steps.iter().map(|r| r.loss).collect()),
            optional("grad_dot", steps.iter().map(|r| r.grad_dot).collect()),
        ]);
        // epochs.parquet is a few kilobytes: stored uncompressed, because analysing thousands of
        // runs otherwise spends a third of its reading time setting up zstd decoders.
        for (name, frame, compression) in [
            (
                "epochs.parquet",
                epoch_frame,
                ParquetCompression::Uncompressed,
            ),
            ("steps.parquet", step_frame, ParquetCompression::Zstd(None)),
        ] {
            let path = self.root.join(name);
            let mut frame = frame.map_err(|e| TrainError::file(&path, e))?;
            let mut bytes = Vec::new();
            ParquetWriter::new(&mut bytes)
                .with_compression(compression)
                .finish(&mut frame)
                .map_err(|e| TrainError::file(&path, e))?;
            write_atomic(&path, &bytes)?;
        }
        Ok(())
    }

    /// Every row of `epochs.parquet` and `steps.parquet`.
    pub fn metrics(&self) -> Result<(Vec<EpochRow>, Vec<StepRow>)> {
        self.read_metrics(u64::MAX)
    }

    /// The rows of `epochs.parquet` and `steps.parquet` up to epoch `through` (rows of a later
    /// epoch were written after the last checkpoint and are dropped: the epoch runs again).
    pub(crate) fn read_metrics(&self, through: u64) -> Result<(Vec<EpochRow>, Vec<StepRow>)> {
        let through = i64::try_from(through).unwrap_or(i64::MAX);
        let epochs = read_frame(&self.root.join("epochs.parquet"))?;
        let steps = read_frame(&self.root.join("steps.parquet"))?;
        let path = self.root.join("epochs.parquet");
        let fail = |e: PolarsError| TrainError::file(&path, e);
        let ints = |f: &DataFrame, name: &str| -> PolarsResult<Vec<i64>> {
            Ok(f.column(name)?.i64()?.into_no_null_iter().collect())
        };
        let floats = |f: &DataFrame, name: &str| -> PolarsResult<Vec<Option<f64>>> {
            Ok(f.column(name)?.f64()?.iter().collect())
        };
        let e = |name| floats(&epochs, name).map_err(fail);
        let (lr, train_loss, train_acc) = (e("lr")?, e("train_loss")?, e("train_acc")?);
        let (val_loss, val_acc) = (e("val_loss")?, e("val_acc")?);
        let (test_loss, test_acc) = (e("test_loss")?, e("test_acc")?);
        let (seconds, speed) = (e("epoch_seconds")?, e("images_or_sequences_per_second")?);
        let epoch_rows = ints(&epochs, "epoch")
            .map_err(fail)?
            .into_iter()
            .enumerate()
            .filter(|(_, epoch)| *epoch <= through)
            .map(|(i, epoch)| EpochRow {
                epoch,
                lr: lr[i].unwrap_or(f64::NAN),
                train_loss: train_loss[i].unwrap_or(f64::NAN),
                train_acc: train_acc[i].unwrap_or(f64::NAN),
                val_loss: val_loss[i].unwrap_or(f64::NAN),
                val_acc: val_acc[i].unwrap_or(f64::NAN),
                test_loss: test_loss[i],
                test_acc: test_acc[i],
                epoch_seconds: seconds[i].unwrap_or(f64::NAN),
                images_or_sequences_per_second: speed[i].unwrap_or(f64::NAN),
            })
            .collect();
        let path = self.root.join("steps.parquet");
        let fail = |e: PolarsError| TrainError::file(&path, e);
        let (step, epoch) = (
            ints(&steps, "step").map_err(fail)?,
            ints(&steps, "epoch").map_err(fail)?,
        );
        let (lr, loss) = (
            floats(&steps, "lr").map_err(fail)?,
            floats(&steps, "loss").map_err(fail)?,
        );
        let grad_dot = floats(&steps, "grad_dot").map_err(fail)?;
        let step_rows = (0..step.len())
            .filter(|&i| epoch[i] <= through)
            .map(|i| StepRow {
                step: step[i],
                epoch: epoch[i],
                lr: lr[i].unwrap_or(f64::NAN),
                loss: loss[i].unwrap_or(f64::NAN),
                grad_dot: grad_dot[i],
            })
            .collect();
        Ok((epoch_rows, step_rows))
    }

    /// The folder of the checkpoint of `epoch`.
    fn checkpoint_folder(&self, epoch: u64) -> PathBuf {
        self.root.join(CHECKPOINT).join(format!("epoch-{epoch:04}"))
    }

    /// The epoch of the last complete checkpoint and its folder.
    pub(crate) fn latest_checkpoint(&self) -> Result<Option<(u64, PathBuf)>> {
        let pointer = self.root.join(CHECKPOINT).join(LATEST);
        if !pointer.exists() {
            return Ok(None);
        }
        let text = fs::read_to_string(&pointer).map_err(|e| TrainError::file(&pointer, e))?;
        let epoch: u64 = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["epoch"].as_u64())
            .ok_or_else(|| TrainError::file(&pointer, "expected {\"epoch\": N}"))?;
        Ok(Some((epoch, self.checkpoint_folder(epoch))))
    }

    /// Writes the checkpoint of `state.epoch`: its files in their own folder, then the pointer
    /// `latest.json` (the commit point), then removes older checkpoints.
    pub(crate) fn write_checkpoint(
        &self,
        state: &CheckpointState,
        weights: &[u8],
        optimizer: &[u8],
    ) -> Result<()> {
        let folder = self.checkpoint_folder(state.epoch);
        write_atomic(&folder.join("weights.safetensors"), weights)?;
        write_atomic(&folder.join("optimizer.safetensors"), optimizer)?;
        let text = serde_json::to_string_pretty(state).expect("checkpoint state serialises");
        write_atomic(&folder.join("state.json"), text.as_bytes())?;
        let pointer = format!("{{\"epoch\": {}}}\n", state.epoch);
        let checkpoints = self.root.join(CHECKPOINT);
        write_atomic(&checkpoints.join(LATEST), pointer.as_bytes())?;
        for entry in fs::read_dir(&checkpoints).map_err(|e| TrainError::file(&checkpoints, e))? {
            let path = entry.map_err(|e| TrainError::file(&checkpoints, e))?.path();
            let stale = path.is_dir() && path != folder;
            if stale
                && path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("epoch-"))
            {
                fs::remove_dir_all(&path).map_err(|e| TrainError::file(&path, e))?;
            }
        }
        Ok(())
    }

    /// Writes `checkpoint/best.safetensors`, the weights of the best epoch by validation accuracy.
    pub(crate) fn write_best(&self, weights: &[u8]) -> Result<()> {
        write_atomic(
            &self.root.join(CHECKPOINT).join("best.safetensors"),
            weights,
        )
    }
}

fn read_frame(path: &Path) -> Result<DataFrame> {
    let file = File::open(path).map_err(|e| TrainError::file(path, e))?;
    ParquetReader::new(file)
        .finish()
        .map_err(|e| TrainError::file(path, e))
}

/// Writes `bytes` to `path` so that `path` holds either its old content or all of the new, never
/// a part: a temporary file in the same folder, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(folder).map_err(|e| TrainError::file(folder, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temporary = folder.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        File::open(folder)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&temporary);
        TrainError::file(path, format!("cannot write: {e}"))
    })
}
