//! The trainer's part of a run directory, `checkpoint/`: per epoch the weights, the optimizer's
//! moments and the loop's state, committed by `latest.json`; and the best epoch's weights.

use std::fs;
use std::path::{Path, PathBuf};

use lrlab_runs::{RunDir, write_atomic};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

const LATEST: &str = "latest.json";
const WEIGHTS: &str = "weights.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "state.json";
const BEST: &str = "best.safetensors";

/// What a checkpoint holds besides the tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CheckpointState {
    /// The epoch reached.
    pub epoch: u32,
    /// Optimizer steps taken.
    pub step: u64,
    /// The scheduler, whole.
    pub scheduler: lrlab_schedulers::AnyScheduler,
    /// The best validation accuracy so far and its epoch.
    pub best: Option<(f64, u32)>,
}

/// A complete checkpoint on disk.
pub(crate) struct Checkpoint {
    folder: PathBuf,
}

impl Checkpoint {
    /// The model's weights.
    pub fn weights(&self) -> PathBuf {
        self.folder.join(WEIGHTS)
    }

    /// The optimizer's moments.
    pub fn optimizer(&self) -> PathBuf {
        self.folder.join(OPTIMIZER)
    }

    /// The loop's state.
    pub fn state(&self) -> Result<CheckpointState> {
        let path = self.folder.join(STATE);
        let text = fs::read_to_string(&path).map_err(|e| TrainError::file(&path, e))?;
        serde_json::from_str(&text).map_err(|e| TrainError::file(&path, e))
    }
}

/// The folder of the checkpoint of `epoch`.
fn folder_of(run: &RunDir, epoch: u32) -> PathBuf {
    run.checkpoint_folder().join(format!("epoch-{epoch:04}"))
}

/// The last complete checkpoint, if any.
pub(crate) fn latest(run: &RunDir) -> Result<Option<Checkpoint>> {
    let pointer = run.checkpoint_folder().join(LATEST);
    if !pointer.exists() {
        return Ok(None);
    }
    let text = fs::read_to_string(&pointer).map_err(|e| TrainError::file(&pointer, e))?;
    let epoch = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["epoch"].as_u64())
        .and_then(|epoch| u32::try_from(epoch).ok())
        .ok_or_else(|| TrainError::file(&pointer, "expected {\"epoch\": N}"))?;
    Ok(Some(Checkpoint {
        folder: folder_of(run, epoch),
    }))
}

/// Writes the checkpoint of `state.epoch`: its files in their own folder, then the pointer
/// `latest.json` (the commit point), then removes older checkpoints.
pub(crate) fn write(
    run: &RunDir,
    state: &CheckpointState,
    weights: &[u8],
    optimizer: &[u8],
) -> Result<()> {
    let folder = folder_of(run, state.epoch);
    write_atomic(&folder.join(WEIGHTS), weights)?;
    write_atomic(&folder.join(OPTIMIZER), optimizer)?;
    let text = serde_json::to_string_pretty(state).expect("checkpoint state serialises");
    write_atomic(&folder.join(STATE), text.as_bytes())?;
    let pointer = format!("{{\"epoch\": {}}}\n", state.epoch);
    let checkpoints = run.checkpoint_folder();
    write_atomic(&checkpoints.join(LATEST), pointer.as_bytes())?;
    remove_older(&checkpoints, &folder)
}

fn remove_older(checkpoints: &Path, kept: &Path) -> Result<()> {
    for entry in fs::read_dir(checkpoints).map_err(|e| TrainError::file(checkpoints, e))? {
        let path = entry.map_err(|e| TrainError::file(checkpoints, e))?.path();
        let stale = path.is_dir()
            && path != kept
            && path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("epoch-"));
        if stale {
            fs::remove_dir_all(&path).map_err(|e| TrainError::file(&path, e))?;
        }
    }
    Ok(())
}

/// Writes `checkpoint/best.safetensors`, the weights of the best epoch by validation accuracy.
pub(crate) fn write_best(run: &RunDir, weights: &[u8]) -> Result<()> {
    write_atomic(&run.checkpoint_folder().join(BEST), weights)?;
    Ok(())
}
