//! Reading run directories (DESIGN.md's contract): `<experiment>/<arm>/seed-<k>/` holding
//! `run.json` and `epochs.parquet`, found anywhere under one or more roots.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use polars::prelude::*;
use serde_json::Value;

use crate::error::{AnalysisError, Result};

/// Where a run stands, as `run.json` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every planned epoch finished.
    Complete,
    /// The loss became non-finite and the run ended early.
    Diverged,
    /// Still training, or stopped without an error (resumable).
    Running,
    /// An error ended the run.
    Failed,
    /// `run.json` is missing or names no status.
    Unknown,
}

impl Status {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "complete" => Status::Complete,
            "diverged" => Status::Diverged,
            "running" => Status::Running,
            "failed" => Status::Failed,
            _ => return None,
        })
    }

    /// Whether the run's data count in the statistics: finished runs, diverged ones included
    /// (divergence is an outcome of the schedule), and runs of unknown status (a tool that
    /// writes no `run.json`); not runs cut short by a crash or still going.
    pub fn counts(self) -> bool {
        matches!(self, Status::Complete | Status::Diverged | Status::Unknown)
    }

    /// The status as `run.json` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Diverged => "diverged",
            Status::Running => "running",
            Status::Failed => "failed",
            Status::Unknown => "unknown",
        }
    }
}

/// The per-epoch curves of a run (`epochs.parquet`), one entry per finished epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Curves {
    /// The 1-based epochs, strictly increasing.
    pub epoch: Vec<u32>,
    /// The learning rate in effect at the epoch's last step.
    pub lr: Vec<f64>,
    /// Mean training loss of the epoch.
    pub train_loss: Vec<f64>,
    /// Training accuracy of the epoch.
    pub train_acc: Vec<f64>,
    /// Validation loss after the epoch.
    pub val_loss: Vec<f64>,
    /// Validation accuracy after the epoch.
    pub val_acc: Vec<f64>,
    /// Test accuracy after the epoch, where measured.
    pub test_acc: Vec<Option<f64>>,
}

impl Curves {
    /// The number of finished epochs.
    pub fn len(&self) -> usize {
        self.epoch.len()
    }

    /// Whether no epoch finished.
    pub fn is_empty(&self) -> bool {
        self.epoch.is_empty()
    }
}

/// One run: who it is, where it stands, what the study planned for it, and its curves.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// The experiment (dataset + model).
    pub experiment: String,
    /// The arm (scheduler).
    pub arm: String,
    /// The seed.
    pub seed: u64,
    /// Where the run stands.
    pub status: Status,
    /// The run directory.
    pub path: PathBuf,
    /// The experiment's validation-accuracy threshold, if `run.json` records it
    /// (`config.experiment.threshold`).
    pub threshold: Option<f64>,
    /// The experiment's baseline arms, if `run.json` records them
    /// (`config.experiment.baselines`).
    pub baselines: Option<Vec<String>>,
    /// The planned number of epochs, if `run.json` records it (`config.train.epochs`).
    pub planned_epochs: Option<u32>,
    /// The finished epochs.
    pub curves: Curves,
}

/// Every run found under `roots` (each a runs root, an experiment folder or a run folder),
/// sorted by experiment, arm and seed. Several roots are merged (shards of one study); the
/// same run in two places is an error naming both.
pub fn read_runs<P: AsRef<Path>>(roots: &[P]) -> Result<Vec<Run>> {
    let mut folders = Vec::new();
    for root in roots.iter().map(AsRef::as_ref) {
        if !root.is_dir() {
            return Err(AnalysisError::file(
                root,
                "no such folder of runs; run `cargo xtask experiment …` first or pass the folder it wrote with --runs",
            ));
        }
        find_run_folders(root, &mut folders)?;
    }
    let mut runs = read_all(&folders)?;
    runs.sort_by(|a, b| {
        (&a.experiment, &a.arm, a.seed, &a.path).cmp(&(&b.experiment, &b.arm, b.seed, &b.path))
    });
    for pair in runs.windows(2) {
        if (&pair[0].experiment, &pair[0].arm, pair[0].seed)
            == (&pair[1].experiment, &pair[1].arm, pair[1].seed)
        {
            return Err(AnalysisError::setting(format!(
                "run {} / {} / seed {} is in two places: {} and {}; pass only one of them with --runs",
                pair[0].experiment,
                pair[0].arm,
                pair[0].seed,
                pair[0].path.display(),
                pair[1].path.display()
            )));
        }
    }
    Ok(runs)
}

/// Reads run folders on as many plain threads as there are cores. Not rayon: polars
/// parallelises inside each read, and a rayon worker waiting on it steals further reads,
/// nesting them until the stack overflows (seen at 10,000 runs).
fn read_all(folders: &[PathBuf]) -> Result<Vec<Run>> {
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, folders.len().max(1));
    let mut read: Vec<(usize, Result<Run>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(folder) = folders.get(i) else {
                            return mine;
                        };
                        mine.push((i, read_run(folder)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a reader thread does not panic"))
            .collect()
    });
    read.sort_by_key(|(i, _)| *i);
    read.into_iter().map(|(_, run)| run).collect()
}

const RUN_JSON: &str = "run.json";
/// The columns of `epochs.parquet` that are read.
const COLUMNS: [&str; 7] = [
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_acc",
];
const EPOCHS: &str = "epochs.parquet";

/// Folders holding `run.json` or `epochs.parquet`, depth first, not looking inside them.
fn find_run_folders(folder: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    if folder.join(RUN_JSON).is_file() || folder.join(EPOCHS).is_file() {
        found.push(folder.to_owned());
        return Ok(());
    }
    let entries = fs::read_dir(folder).map_err(|e| AnalysisError::file(folder, e))?;
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| AnalysisError::file(folder, e))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            children.push(entry.path());
        }
    }
    children.sort();
    for child in children {
        find_run_folders(&child, found)?;
    }
    Ok(())
}

/// Reads one run folder.
pub fn read_run(folder: &Path) -> Result<Run> {
    let info_path = folder.join(RUN_JSON);
    let info: Value = match fs::read(&info_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            AnalysisError::file(
                &info_path,
                format!("not valid JSON ({e}); fix or delete it"),
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
        Err(e) => return Err(AnalysisError::file(&info_path, e)),
    };
    let names: Vec<String> = folder
        .components()
        .rev()
        .take(3)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let from_path = |depth: usize| names.get(depth).cloned();
    let text = |key: &str| info.get(key).and_then(Value::as_str).map(str::to_owned);
    let missing = |what: &str, key: &str, layout: &str| {
        AnalysisError::file(
            &info_path,
            format!(
                "no `{key}` to tell the run's {what}, and the folder is not laid out as {layout}; \
                 write `{key}` into run.json or move the run to <experiment>/<arm>/seed-<k>/"
            ),
        )
    };
    let seed = match info.get("seed") {
        Some(value) => value.as_u64().ok_or_else(|| {
            AnalysisError::file(
                &info_path,
                format!("`seed` is {value}; expected a non-negative integer"),
            )
        })?,
        None => from_path(0)
            .and_then(|name| name.strip_prefix("seed-")?.parse().ok())
            .ok_or_else(|| missing("seed", "seed", "seed-<k>"))?,
    };
    let arm = text("arm")
        .or_else(|| from_path(1))
        .ok_or_else(|| missing("arm", "arm", "<arm>/seed-<k>"))?;
    let experiment = text("experiment")
        .or_else(|| from_path(2))
        .ok_or_else(|| missing("experiment", "experiment", "<experiment>/<arm>/seed-<k>"))?;
    let status = match info.get("status") {
        None => Status::Unknown,
        Some(value) => value.as_str().and_then(Status::parse).ok_or_else(|| {
            AnalysisError::file(
                &info_path,
                format!("`status` is {value}; expected one of complete, diverged, running, failed"),
            )
        })?,
    };
    let settings = info.pointer("/config/experiment");
    let threshold = settings
        .and_then(|s| s.get("threshold"))
        .and_then(Value::as_f64);
    let baselines = settings
        .and_then(|s| s.get("baselines"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        });
    let planned_epochs = info
        .pointer("/config/train/epochs")
        .and_then(Value::as_u64)
        .and_then(|e| u32::try_from(e).ok());
    let epochs_path = folder.join(EPOCHS);
    let curves = if epochs_path.is_file() {
        read_curves(&epochs_path)?
    } else {
        Curves::default()
    };
    Ok(Run {
        experiment,
        arm,
        seed,
        status,
        path: folder.to_owned(),
        threshold,
        baselines,
        planned_epochs,
        curves,
    })
}

/// Reads the columns of `epochs.parquet` the analysis uses (DESIGN.md's, but the test loss and
/// the timings), any numeric type; `test_acc` may be absent or null.
pub fn read_curves(path: &Path) -> Result<Curves> {
    let file = fs::File::open(path).map_err(|e| AnalysisError::file(path, e))?;
    // One small file per run: reading its columns in parallel costs more than it saves, and
    // decompressing the columns not used costs as much as those used.
    let mut reader = ParquetReader::new(file).read_parallel(ParallelStrategy::None);
    let present = reader
        .schema()
        .map_err(|e| AnalysisError::file(path, format!("not a readable parquet file: {e}")))?;
    let wanted: Vec<String> = COLUMNS
        .iter()
        .filter(|name| present.contains(name))
        .map(|name| name.to_string())
        .collect();
    let frame = reader
        .with_columns(Some(wanted))
        .finish()
        .map_err(|e| AnalysisError::file(path, format!("not a readable parquet file: {e}")))?;
    let column = |name: &str, required: bool| -> Result<Option<Vec<Option<f64>>>> {
        let Ok(column) = frame.column(name) else {
            if !required {
                return Ok(None);
            }
            let found: Vec<&str> = present.iter_names().map(|n| n.as_str()).collect();
            return Err(AnalysisError::file(
                path,
                format!(
                    "no column `{name}` (it has: {}); epochs.parquet needs epoch, lr, train_loss, \
                     train_acc, val_loss, val_acc (DESIGN.md, the run directory)",
                    found.join(", ")
                ),
            ));
        };
        let cast = column.cast(&DataType::Float64).map_err(|e| {
            AnalysisError::file(
                path,
                format!("column `{name}` is {}, not a number: {e}", column.dtype()),
            )
        })?;
        let values = cast.f64().expect("cast to f64").iter().collect();
        Ok(Some(values))
    };
    let required = |name: &str| -> Result<Vec<f64>> {
        let values = column(name, true)?.expect("required column");
        values
            .into_iter()
            .enumerate()
            .map(|(row, value)| {
                value.ok_or_else(|| {
                    AnalysisError::file(
                        path,
                        format!(
                            "column `{name}` is null at row {row}; every finished epoch needs it"
                        ),
                    )
                })
            })
            .collect()
    };
    let epoch_values = required("epoch")?;
    let mut epoch = Vec::with_capacity(epoch_values.len());
    for (row, value) in epoch_values.into_iter().enumerate() {
        let previous = epoch.last().copied().unwrap_or(0);
        if value.fract() != 0.0 || value < 1.0 || value > f64::from(u32::MAX) {
            return Err(AnalysisError::file(
                path,
                format!("`epoch` is {value} at row {row}; epochs are 1-based integers"),
            ));
        }
        let value = value as u32;
        if value <= previous {
            return Err(AnalysisError::file(
                path,
                format!(
                    "`epoch` goes from {previous} to {value} at row {row}; each finished epoch \
                     must appear once, in order"
                ),
            ));
        }
        epoch.push(value);
    }
    let rows = epoch.len();
    let optional = |name: &str| -> Result<Vec<Option<f64>>> {
        Ok(column(name, false)?.unwrap_or_else(|| vec![None; rows]))
    };
    Ok(Curves {
        epoch,
        lr: required("lr")?,
        train_loss: required("train_loss")?,
        train_acc: required("train_acc")?,
        val_loss: required("val_loss")?,
        val_acc: required("val_acc")?,
        test_acc: optional("test_acc")?,
    })
}

/// The runs grouped by experiment, then arm, in name order.
pub fn by_experiment(runs: &[Run]) -> BTreeMap<&str, BTreeMap<&str, Vec<&Run>>> {
    let mut grouped: BTreeMap<&str, BTreeMap<&str, Vec<&Run>>> = BTreeMap::new();
    for run in runs {
        grouped
            .entry(&run.experiment)
            .or_default()
            .entry(&run.arm)
            .or_default()
            .push(run);
    }
    grouped
}
