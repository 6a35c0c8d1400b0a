//! From an experiment file to the protocol's runs: one resolved, checked specification per
//! (arm, seed), and what each run directory already holds.

use std::path::Path;

use anyhow::{Result, anyhow};
use lrlab_runs::{Difference, Resolved, RunDir, RunRecord, RunSpec, SpecError, differences};
use lrlab_schedulers::Span;

use super::config::{Experiment, Origin};

/// One run of the protocol: its specification and its directory.
pub struct Planned {
    /// What the run is.
    pub spec: RunSpec,
    /// Where it is written.
    pub dir: RunDir,
}

/// The specification of every (arm, seed) of `experiment`, arm by arm and seed by seed, each
/// resolved against the plan and checked; the first fault is an error naming the experiment
/// file's key.
pub fn specify(
    experiment: &Experiment,
    origin: &Origin,
    resolved: &Resolved,
) -> Result<Vec<RunSpec>> {
    let span = Span::of_run(u64::from(experiment.train.epochs), resolved.steps_per_epoch);
    let mut specs = Vec::new();
    for arm in experiment.arms.keys() {
        let scheduler = experiment
            .schedule_of(arm)
            .resolve(span)
            .map_err(|e| origin.error(&experiment.schedule_key(arm, &e.field), e.message))?;
        for &seed in &experiment.seeds {
            let spec = RunSpec {
                experiment: experiment.experiment.clone(),
                arm: arm.clone(),
                seed,
                data: experiment.data.clone(),
                model: experiment.model.clone(),
                train: experiment.train.clone(),
                optimizer: experiment.optimizer.clone(),
                scheduler: scheduler.clone(),
                resolved: resolved.clone(),
                lrlab_version: env!("CARGO_PKG_VERSION").into(),
            };
            spec.check()
                .map_err(|e| origin.error(&file_key(experiment, arm, &e), e.message))?;
            specs.push(spec);
        }
    }
    Ok(specs)
}

/// The key of the experiment file that a fault of `arm`'s specification comes from.
fn file_key(experiment: &Experiment, arm: &str, error: &SpecError) -> String {
    let key = error.key.as_str();
    match key.split_once('.') {
        Some(("scheduler", rest)) => experiment.schedule_key(arm, rest),
        None if key == "scheduler" => experiment.schedule_key(arm, ""),
        None if key == "arm" => format!("arms.{arm}"),
        _ => key.to_owned(),
    }
}

/// The runs of `specs` in `root`, or those of shard `(i, n)` ([`of_shard`]).
pub fn place(specs: Vec<RunSpec>, root: &Path, shard: Option<(usize, usize)>) -> Vec<Planned> {
    of_shard(specs, shard)
        .into_iter()
        .map(|spec| Planned {
            dir: RunDir::in_layout(root, &spec.experiment, &spec.arm, spec.seed),
            spec,
        })
        .collect()
}

/// `items`, or those of shard `(i, n)`: every n-th starting with the i-th, so that n shards
/// partition them.
fn of_shard<T>(items: Vec<T>, shard: Option<(usize, usize)>) -> Vec<T> {
    items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| shard.is_none_or(|(shard, of)| i % of == shard))
        .map(|(_, item)| item)
        .collect()
}

/// A run directory that holds something other than its planned run.
pub struct Conflict {
    /// The directory.
    pub dir: RunDir,
    /// What differs from the plan, or why the record cannot be read.
    pub why: Why,
}

/// Why a run directory cannot be skipped or resumed.
pub enum Why {
    /// It holds a run of another specification: the keys that differ, recorded → planned.
    Changed(Vec<Difference>),
    /// Its record cannot be read (another format, damaged).
    Unreadable(String),
}

/// The planned runs whose directories hold another run, in plan order.
pub fn conflicts(planned: &[Planned]) -> Vec<Conflict> {
    planned
        .iter()
        .filter_map(|run| {
            let why = match run.dir.read_record() {
                Ok(None) => return None,
                Ok(Some(record)) => changed(&record, &run.spec)?,
                Err(e) => Why::Unreadable(e.to_string()),
            };
            Some(Conflict {
                dir: run.dir.clone(),
                why,
            })
        })
        .collect()
}

fn changed(record: &RunRecord, spec: &RunSpec) -> Option<Why> {
    (record.fingerprint != spec.fingerprint())
        .then(|| Why::Changed(differences(&record.spec, spec)))
}

/// The error that stops a protocol whose folder holds runs of other specifications: every
/// such run with what differs (runs that differ alike on one line), and the two ways out.
pub fn conflict_error(conflicts: &[Conflict], root: &Path) -> anyhow::Error {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for conflict in conflicts {
        let name = conflict
            .dir
            .path()
            .strip_prefix(root)
            .unwrap_or(conflict.dir.path());
        let why = conflict.why.to_string();
        match groups.iter_mut().find(|(said, _)| *said == why) {
            Some((_, names)) => names.push(name.display().to_string()),
            None => groups.push((why, vec![name.display().to_string()])),
        }
    }
    let mut text = format!(
        "{} run(s) in {} were trained under other settings, so they can neither be skipped nor \
         resumed; nothing was trained:",
        conflicts.len(),
        root.display()
    );
    for (why, names) in groups {
        text.push_str(&format!("\n  {}: {why}", names.join(", ")));
    }
    text.push_str(
        "\nEither write the runs elsewhere (--out DIR), or discard these runs and train them \
         again (--discard-changed).",
    );
    anyhow!(text)
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 6;
        match self {
            Why::Changed(found) => {
                let listed: Vec<String> =
                    found.iter().take(SHOWN).map(ToString::to_string).collect();
                f.write_str(&listed.join("; "))?;
                if found.len() > SHOWN {
                    write!(f, "; and {} more", found.len() - SHOWN)?;
                }
                Ok(())
            }
            Why::Unreadable(message) => f.write_str(message),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_protocol() {
        let whole: Vec<usize> = (0..9).collect();
        assert_eq!(of_shard(whole.clone(), None), whole);
        let mut parts: Vec<usize> = (0..4)
            .flat_map(|i| of_shard(whole.clone(), Some((i, 4))))
            .collect();
        parts.sort();
        assert_eq!(parts, whole);
        assert_eq!(of_shard(whole, Some((3, 4))), [3, 7]);
    }
}
