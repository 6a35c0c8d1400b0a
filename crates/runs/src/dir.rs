//! A run directory: its files, written atomically, and read back.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{Result, RunError};
use crate::record::RunRecord;
use crate::rows::{self, EpochRow, StepRow};

/// `run.json`.
pub const RECORD_FILE: &str = "run.json";
/// `epochs.parquet`.
pub const EPOCHS_FILE: &str = "epochs.parquet";
/// `steps.parquet`.
pub const STEPS_FILE: &str = "steps.parquet";
/// `checkpoint/`, the trainer's folder.
pub const CHECKPOINT_FOLDER: &str = "checkpoint";

/// The files of one run (see the crate's documentation for the format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory at `root` (created when first written to).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }

    /// `<root>/<experiment>/<arm>/seed-<seed>`: the run's place in a folder of runs.
    pub fn in_layout(root: &Path, experiment: &str, arm: &str, seed: u64) -> Self {
        RunDir::new(root.join(experiment).join(arm).join(format!("seed-{seed}")))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The trainer's checkpoint folder.
    pub fn checkpoint_folder(&self) -> PathBuf {
        self.root.join(CHECKPOINT_FOLDER)
    }

    /// `run.json`, if the run has started.
    pub fn read_record(&self) -> Result<Option<RunRecord>> {
        let path = self.root.join(RECORD_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => RunRecord::parse(&path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RunError::file(&path, e)),
        }
    }

    /// Writes `run.json`.
    pub fn write_record(&self, record: &RunRecord) -> Result<()> {
        let text = serde_json::to_string_pretty(record).expect("a run record serialises");
        write_atomic(&self.root.join(RECORD_FILE), text.as_bytes())
    }

    /// Writes `epochs.parquet` and `steps.parquet`.
    pub fn write_rows(&self, epochs: &[EpochRow], steps: &[StepRow]) -> Result<()> {
        // epochs.parquet is a few kilobytes: stored uncompressed, because analysing thousands of
        // runs otherwise spends a third of its reading time setting up zstd decoders.
        for (name, frame, compression) in [
            (
                EPOCHS_FILE,
                rows::epoch_frame(epochs),
                ParquetCompression::Uncompressed,
            ),
            (
                STEPS_FILE,
                rows::step_frame(steps),
                ParquetCompression::Zstd(None),
            ),
        ] {
            let path = self.root.join(name);
            let mut frame = frame.map_err(|e| RunError::file(&path, e))?;
            let mut bytes = Vec::new();
            ParquetWriter::new(&mut bytes)
                .with_compression(compression)
                .finish(&mut frame)
                .map_err(|e| RunError::file(&path, e))?;
            write_atomic(&path, &bytes)?;
        }
        Ok(())
    }

    /// Every row of `epochs.parquet` (none before the first epoch is written).
    pub fn read_epochs(&self) -> Result<Vec<EpochRow>> {
        let path = self.root.join(EPOCHS_FILE);
        match path.is_file() {
            true => rows::read_epochs(&path),
            false => Ok(Vec::new()),
        }
    }

    /// Every row of `steps.parquet` (none before the first epoch is written).
    pub fn read_steps(&self) -> Result<Vec<StepRow>> {
        let path = self.root.join(STEPS_FILE);
        match path.is_file() {
            true => rows::read_steps(&path),
            false => Ok(Vec::new()),
        }
    }

    /// Deletes the run directory and everything in it.
    pub fn discard(&self) -> Result<()> {
        match fs::remove_dir_all(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RunError::file(&self.root, format!("cannot delete: {e}"))),
        }
    }

    /// Every run directory under `root` (itself included), depth first in name order: folders
    /// holding `run.json`, not looked inside. A folder with `epochs.parquet` but no `run.json`
    /// is an error: a run whose specification is unknown cannot be analysed or resumed.
    pub fn find_under(root: &Path) -> Result<Vec<RunDir>> {
        let mut found = Vec::new();
        find(root, &mut found)?;
        Ok(found)
    }
}

fn find(folder: &Path, found: &mut Vec<RunDir>) -> Result<()> {
    if folder.join(RECORD_FILE).is_file() {
        found.push(RunDir::new(folder));
        return Ok(());
    }
    if folder.join(EPOCHS_FILE).is_file() {
        return Err(RunError::file(
            &folder.join(RECORD_FILE),
            "missing beside epochs.parquet: a run without its record cannot be analysed; \
             restore it or move the folder away",
        ));
    }
    let entries = fs::read_dir(folder).map_err(|e| RunError::file(folder, e))?;
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| RunError::file(folder, e))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            children.push(entry.path());
        }
    }
    children.sort();
    for child in children {
        find(&child, found)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` so that `path` holds either its old content or all of the new, never
/// a part: a temporary file in the same folder, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(folder)
        .map_err(|e| RunError::file(folder, format!("cannot create: {e}")))?;
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
        RunError::file(path, format!("cannot write: {e}"))
    })
}
