//! Runs as the analysis reads them, through `lrlab-runs`: each run's record and its per-epoch
//! curves, found under one or more roots, and the checks that make the runs of an experiment
//! comparable — all else held equal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use lrlab_runs::{Difference, EpochRow, RunDir, RunRecord, RunSpec, differences};

pub use lrlab_runs::Status;

use crate::error::{AnalysisError, Result};

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
    /// The curves of `rows`, in their order.
    pub fn from_rows(rows: &[EpochRow]) -> Self {
        Curves {
            epoch: rows.iter().map(|r| r.epoch).collect(),
            lr: rows.iter().map(|r| r.lr).collect(),
            train_loss: rows.iter().map(|r| r.train_loss).collect(),
            train_acc: rows.iter().map(|r| r.train_acc).collect(),
            val_loss: rows.iter().map(|r| r.val_loss).collect(),
            val_acc: rows.iter().map(|r| r.val_acc).collect(),
            test_acc: rows.iter().map(|r| r.test_acc).collect(),
        }
    }

    /// The number of finished epochs.
    pub fn len(&self) -> usize {
        self.epoch.len()
    }

    /// Whether no epoch finished.
    pub fn is_empty(&self) -> bool {
        self.epoch.is_empty()
    }
}

/// One run: its record (what it is, how its study means to analyse it, where it stands), its
/// folder and its curves.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// `run.json`.
    pub record: RunRecord,
    /// The run directory.
    pub path: PathBuf,
    /// The finished epochs.
    pub curves: Curves,
}

impl Run {
    /// What the run is.
    pub fn spec(&self) -> &RunSpec {
        &self.record.spec
    }

    /// The experiment.
    pub fn experiment(&self) -> &str {
        &self.record.spec.experiment
    }

    /// The arm.
    pub fn arm(&self) -> &str {
        &self.record.spec.arm
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.record.spec.seed
    }

    /// Where the run stands.
    pub fn status(&self) -> Status {
        self.record.status
    }
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
        let found = RunDir::find_under(root)?;
        if found.is_empty() {
            return Err(AnalysisError::file(
                root,
                "holds no run (no run.json in it or below it); pass the folder `cargo xtask \
                 experiment` wrote with --runs",
            ));
        }
        folders.extend(found);
    }
    let mut runs = read_all(&folders)?;
    runs.sort_by(|a, b| {
        (a.experiment(), a.arm(), a.seed(), &a.path).cmp(&(
            b.experiment(),
            b.arm(),
            b.seed(),
            &b.path,
        ))
    });
    for pair in runs.windows(2) {
        let key = |run: &Run| {
            (
                run.experiment().to_owned(),
                run.arm().to_owned(),
                run.seed(),
            )
        };
        if key(&pair[0]) == key(&pair[1]) {
            return Err(AnalysisError::setting(format!(
                "run {} / {} / seed {} is in two places: {} and {}; pass only one of them with --runs",
                pair[0].experiment(),
                pair[0].arm(),
                pair[0].seed(),
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
fn read_all(folders: &[RunDir]) -> Result<Vec<Run>> {
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
                        mine.push((i, read_dir(folder)));
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

/// Reads one run folder.
pub fn read_run(folder: &Path) -> Result<Run> {
    read_dir(&RunDir::new(folder))
}

fn read_dir(dir: &RunDir) -> Result<Run> {
    let record = dir.read_record()?.ok_or_else(|| {
        AnalysisError::file(
            dir.path().join(lrlab_runs::RECORD_FILE),
            "missing: not a run directory",
        )
    })?;
    let mut rows = dir.read_epochs()?;
    rows.retain(|row| row.epoch <= record.epochs_done);
    Ok(Run {
        record,
        path: dir.path().to_owned(),
        curves: Curves::from_rows(&rows),
    })
}

/// The runs grouped by experiment, then arm, in name order.
pub fn by_experiment(runs: &[Run]) -> BTreeMap<&str, BTreeMap<&str, Vec<&Run>>> {
    let mut grouped: BTreeMap<&str, BTreeMap<&str, Vec<&Run>>> = BTreeMap::new();
    for run in runs {
        grouped
            .entry(run.experiment())
            .or_default()
            .entry(run.arm())
            .or_default()
            .push(run);
    }
    grouped
}

/// The keys of a specification that make one run of an experiment another run of it: which arm
/// it is (its schedule) and its seed.
const ARM_KEYS: [&str; 3] = ["arm", "scheduler", "seed"];

/// The differences between `a` and `b` outside `keys` (and anything under them).
fn differences_beyond(a: &RunSpec, b: &RunSpec, keys: &[&str]) -> Vec<Difference> {
    let within = |key: &str, of: &str| {
        key == of
            || key
                .strip_prefix(of)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    };
    differences(a, b)
        .into_iter()
        .filter(|d| !keys.iter().any(|of| within(&d.key, of)))
        .collect()
}

fn listed(found: &[Difference]) -> String {
    found
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks that the runs of one experiment compare what they claim to: the runs of an arm differ
/// only by their seed, and the arms only by their schedule. Anything else — a smoke run beside
/// a full one, another base rate, runs of another dataset commit, of another lrlab — is an
/// error naming both runs and what differs.
pub fn check_comparable(name: &str, arms: &BTreeMap<&str, Vec<&Run>>) -> Result<()> {
    let mut first_of_experiment: Option<&Run> = None;
    for (arm, runs) in arms {
        let first = runs[0];
        for run in &runs[1..] {
            let found = differences_beyond(first.spec(), run.spec(), &["seed"]);
            if !found.is_empty() {
                return Err(AnalysisError::setting(format!(
                    "experiment `{name}`, arm `{arm}`: {} and {} were trained under other \
                     settings ({}); their seeds cannot be pooled: analyse them apart (--runs), or \
                     train them again under one setting",
                    first.path.display(),
                    run.path.display(),
                    listed(&found)
                )));
            }
        }
        let reference = *first_of_experiment.get_or_insert(first);
        let found = differences_beyond(reference.spec(), first.spec(), &ARM_KEYS);
        if !found.is_empty() {
            return Err(AnalysisError::setting(format!(
                "experiment `{name}`: arms `{}` ({}) and `{arm}` ({}) were trained under other \
                 settings ({}); comparing them would not hold all else equal: analyse them apart \
                 (--runs), or train them again under one setting",
                reference.arm(),
                reference.path.display(),
                first.path.display(),
                listed(&found)
            )));
        }
    }
    Ok(())
}
