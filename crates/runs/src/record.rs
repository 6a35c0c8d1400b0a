//! `run.json`: what a run is (its specification and fingerprint), how the study means to
//! analyse it, and where it stands.

use std::fmt;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, RunError};
use crate::fingerprint::Fingerprint;
use crate::spec::RunSpec;

/// The version of the run-directory format this crate writes and reads. A run written in
/// another format is refused with a message saying so, never misread.
pub const SCHEMA: u32 = 3;

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Training, or stopped before the end without an error (a resume continues it).
    Running,
    /// Every planned epoch finished.
    Complete,
    /// The loss became non-finite; the run ended early. An outcome of the schedule.
    Diverged,
    /// An error ended the run (a resume starts again from its last checkpoint).
    Failed,
}

impl Status {
    /// The status as `run.json` writes it: `running`, `complete`, `diverged` or `failed`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Complete => "complete",
            Status::Diverged => "diverged",
            Status::Failed => "failed",
        }
    }

    /// Whether the run reached an outcome of its own — every epoch, or divergence — as opposed
    /// to being cut short by a crash or an error, or still going. Such a run is never trained
    /// again, and its numbers are a result of the study.
    pub fn is_outcome(self) -> bool {
        matches!(self, Status::Complete | Status::Diverged)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the study that planned the run means to analyse it. It cannot change the run's numbers,
/// so it is not part of the specification: a later invocation may restate it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisPlan {
    /// The metric the study's verdicts are drawn from, named before any result (its key in
    /// the analysis, e.g. `test_acc_at_best_val`).
    pub primary_metric: String,
    /// The validation accuracy that counts as converged.
    pub threshold: f64,
    /// The arms the others are compared with.
    pub baselines: Vec<String>,
    /// Arms reported apart, as references: neither baselines nor arms under test (a published
    /// schedule, say).
    pub references: Vec<String>,
    /// The search the arms' settings were chosen by, when `cargo xtask tune` wrote them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<Tuning>,
}

/// How the arms' settings of a tuned experiment were chosen: the same budget for every arm, each
/// setting trained once on a seed apart from the study's, the best by validation accuracy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tuning {
    /// Settings offered to every arm: the arm as written, then draws from its search space.
    pub budget: u32,
    /// The seed the settings were drawn with and trained on.
    pub seed: u64,
    /// The experiment file and preset searched.
    pub source: String,
    /// Per arm, the distinct settings trained (fewer than the budget when its space is small)
    /// and the chosen one's best validation accuracy.
    pub arms: std::collections::BTreeMap<String, TunedArm>,
}

/// One arm's search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunedArm {
    /// The distinct settings trained.
    pub trials: u32,
    /// The best validation accuracy of the chosen setting.
    pub val_acc: f64,
}

/// `run.json`: the run's specification and fingerprint, its analysis plan, and where it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    /// The format's version, [`SCHEMA`].
    pub schema: u32,
    /// The fingerprint of `spec`.
    pub fingerprint: Fingerprint,
    /// What the run is.
    pub spec: RunSpec,
    /// How the study means to analyse it.
    pub analysis: AnalysisPlan,
    /// Where it stands.
    pub status: Status,
    /// Why it failed or diverged.
    pub message: Option<String>,
    /// Epochs finished.
    pub epochs_done: u32,
    /// The device it last trained on, as `cpu` or `cuda:N`.
    pub device: String,
    /// The git commit of the code that last trained it, where known.
    pub git_commit: Option<String>,
    /// When it first started (RFC 3339, UTC).
    pub started: String,
    /// When it last ended (complete, diverged or failed).
    pub finished: Option<String>,
    /// How many times it was resumed.
    pub resumed: u32,
}

impl RunRecord {
    /// The record of a run starting now: `running`, no epoch done.
    pub fn start(spec: RunSpec, analysis: AnalysisPlan, device: String) -> Self {
        RunRecord {
            schema: SCHEMA,
            fingerprint: spec.fingerprint(),
            spec,
            analysis,
            status: Status::Running,
            message: None,
            epochs_done: 0,
            device,
            git_commit: None,
            started: now(),
            finished: None,
            resumed: 0,
        }
    }

    /// Marks the run as ended now with `status` (`running`: stopped, to be resumed).
    pub fn end(&mut self, status: Status, message: Option<String>) {
        self.status = status;
        self.message = message;
        self.finished = (status != Status::Running).then(now);
    }

    /// Parses the text of `run.json` at `path`: the schema version first, then the record, then
    /// the fingerprint against the specification.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self> {
        /// The one field read before the rest, whatever the format.
        #[derive(Deserialize)]
        struct Versioned {
            schema: Option<Value>,
        }
        let versioned: Versioned = serde_json::from_str(text)
            .map_err(|e| RunError::file(path, format!("not valid JSON ({e}); fix or delete it")))?;
        match versioned.schema.as_ref().map(|v| (v, v.as_u64())) {
            Some((_, Some(version))) if version == u64::from(SCHEMA) => {}
            Some((v, _)) => {
                return Err(RunError::file(
                    path,
                    format!(
                        "written in run-directory format {v}; this lrlab reads format {SCHEMA} \
                         only: use the lrlab that wrote it, or train the run again in another \
                         --out folder"
                    ),
                ));
            }
            None => {
                return Err(RunError::file(
                    path,
                    format!(
                        "no `schema`: written by an lrlab older than run-directory format \
                         {SCHEMA}, which recorded no run specification; train the run again in \
                         another --out folder, or delete this one"
                    ),
                ));
            }
        }
        let mut json = serde_json::Deserializer::from_str(text);
        let record: RunRecord = serde_path_to_error::deserialize(&mut json)
            .map_err(|e| RunError::file(path, format!("key `{}`: {}", e.path(), e.inner())))?;
        let computed = record.spec.fingerprint();
        if computed != record.fingerprint {
            return Err(RunError::file(
                path,
                format!(
                    "`fingerprint` {} is not that of its `spec` ({}): the file was edited; \
                     restore it or train the run again",
                    record.fingerprint.short(),
                    computed.short()
                ),
            ));
        }
        Ok(record)
    }
}

/// The current time, RFC 3339, UTC, to the second.
fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
