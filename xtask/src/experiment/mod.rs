//! `cargo xtask experiment cifar10|imdb`: every arm × every seed of an experiment, one run after
//! the other, all else held equal. Every run is specified, resolved and checked before the first
//! trains; a run directory is skipped or resumed only when it holds a run of the same
//! specification, and `--shard I/N` splits the protocol between processes sharing the folder.

mod config;
mod eta;
mod lock;
mod plan;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use lrlab_datasets::Hub;
use lrlab_runs::{AnalysisPlan, HubCommit, Precision, Resolved, Status};
use lrlab_trainer::{Options, Outcome, Progress, Run, train};

use crate::checkout;
use crate::device::DeviceArg;
use crate::interrupt::Termination;
use crate::tasks::{Loaded, Task};
pub use config::{Experiment, Origin, Overrides, Space};
use eta::Eta;
use lock::RunLock;
use plan::Planned;

/// What `experiment` and `tune` take alike: the task, its experiment file and preset, and how
/// the runs are shared out and trained.
#[derive(clap::Args)]
pub struct CommonArgs {
    /// The task.
    #[arg(value_enum)]
    pub task: Task,
    /// The experiment file (default `configs/<task>.toml`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The preset of the file to apply (`full`: the published plan; `smoke`: minutes on a CPU).
    #[arg(long, default_value = "full")]
    pub preset: String,
    /// Delete the runs in the folder that were trained under other settings, and train them
    /// again (without it, such runs stop the command before anything trains).
    #[arg(long)]
    pub discard_changed: bool,
    /// The device.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// `I/N`: run only every N-th run of the protocol, starting with the I-th (0-based), so that
    /// N processes (a job array) share the protocol.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
}

impl CommonArgs {
    /// The experiment file: `--config`, or the task's in this checkout.
    pub fn experiment_file(&self) -> Result<PathBuf> {
        match &self.config {
            Some(path) => Ok(path.clone()),
            None => checkout::file(
                &config::default_relative(self.task.name()),
                Some("--config FILE"),
            ),
        }
    }

    /// How the runs go into `out`, or by default into `<stem>` for the `full` preset and
    /// `<stem>-<preset>` for the others.
    pub fn execution(&self, out: Option<&PathBuf>, stem: &str) -> Execution {
        let out = match (out, self.preset.as_str()) {
            (Some(out), _) => out.clone(),
            (None, "full") => PathBuf::from(stem),
            (None, preset) => PathBuf::from(format!("{stem}-{preset}")),
        };
        Execution {
            task: self.task,
            preset: self.preset.clone(),
            out,
            shard: self.shard,
            discard_changed: self.discard_changed,
            device: self.device,
        }
    }
}

/// Arguments of `cargo xtask experiment`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Only these arms (comma-separated names of the file's `[arms.*]`).
    #[arg(long, value_delimiter = ',')]
    arms: Option<Vec<String>>,
    /// Only these seeds (comma-separated), instead of the file's `seeds`.
    #[arg(allow_negative_numbers = true, long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Epochs per run, instead of the file's `train.epochs`.
    #[arg(allow_negative_numbers = true, long)]
    epochs: Option<u32>,
    /// The compute precision (`f32` | `bf16`), instead of the file's `train.dtype`.
    #[arg(long)]
    dtype: Option<Precision>,
    /// TF32 tensor cores for `f32` products on a CUDA GPU (sets the file's `train.tf32`).
    #[arg(long)]
    tf32: bool,
    /// The folder of the runs, `<out>/<experiment>/<arm>/seed-<k>/`; default `runs` for the
    /// `full` preset and `runs-<preset>` for the others.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Parses `--shard I/N`.
fn parse_shard(text: &str) -> std::result::Result<(usize, usize), String> {
    let (i, n) = text.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
    let (i, n): (usize, usize) = (
        i.parse().map_err(|_| "I: a number")?,
        n.parse().map_err(|_| "N: a number")?,
    );
    if n == 0 || i >= n {
        return Err(format!("{i}/{n}: need 0 ≤ I < N"));
    }
    Ok((i, n))
}

/// Where the runs of a protocol go and how they run: what `experiment` and `tune` share.
pub struct Execution {
    /// The task.
    pub task: Task,
    /// The preset applied (for the header line).
    pub preset: String,
    /// The folder of the runs.
    pub out: PathBuf,
    /// `I/N`: every N-th run, from the I-th.
    pub shard: Option<(usize, usize)>,
    /// Delete runs trained under other settings and train them again.
    pub discard_changed: bool,
    /// The device.
    pub device: DeviceArg,
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let (experiment, origin) = read_experiment(args)?;
    let execution = args.common.execution(args.out.as_ref(), "runs");
    execute(
        experiment,
        &origin,
        args.arms.as_deref(),
        &execution,
        started,
    )?;
    Ok(())
}

/// Trains every arm × seed of `experiment` (only `arms` when given) that is not complete yet;
/// returns the folder of the runs (`<out>/<experiment>`).
pub fn execute(
    mut experiment: Experiment,
    origin: &config::Origin,
    arms: Option<&[String]>,
    execution: &Execution,
    started: Instant,
) -> Result<PathBuf> {
    let device = execution.device.device()?;
    let hub = Hub::from_env();
    let checkpoint = Task::checkpoint(&experiment.model);
    let loaded = execution
        .task
        .load(&hub, &experiment.data, checkpoint.as_ref())?;
    let split_sizes = loaded.sizes();
    let resolved = Resolved {
        dataset: loaded.dataset.clone(),
        checkpoint: checkpoint.map(|repo| HubCommit {
            commit: hub.commit(&repo),
            repo: repo.id,
        }),
        classes: execution.task.classes(),
        split_sizes,
        steps_per_epoch: split_sizes
            .train
            .div_ceil(experiment.train.batch_size.max(1)) as u64,
    };
    // Every arm of the file is checked, those `--arms` leaves out included.
    let mut specs = plan::specify(&experiment, origin, &resolved)?;
    if let Some(arms) = arms {
        experiment.retain_arms(arms);
        specs.retain(|spec| arms.contains(&spec.arm));
    }
    let out = execution.out.clone();
    let planned = plan::place(specs, &out, execution.shard);
    let root = out.join(&experiment.experiment);
    prepare_out(&out)?;
    settle_conflicts(&planned, &root, execution.discard_changed)?;
    eprintln!(
        "{}: {} run(s) of {} arm(s) × {} seed(s), preset `{}`, {} train / {} validation / {} \
         test examples, {} epochs of {} steps, {}, on {:?}, into {} (checked in {:.1} s)",
        experiment.experiment,
        planned.len(),
        experiment.arms.len(),
        experiment.seeds.len(),
        execution.preset,
        split_sizes.train,
        split_sizes.val,
        split_sizes.test,
        experiment.train.epochs,
        resolved.steps_per_epoch,
        experiment.train.dtype,
        device.location(),
        out.display(),
        started.elapsed().as_secs_f64()
    );
    // From here on a signal stops the protocol between two steps; before, while the data load
    // and the runs are checked, it ends the command at once (nothing is written yet).
    let termination = Termination::listen()?;
    let protocol = Protocol {
        task: execution.task,
        hub: &hub,
        loaded: &loaded,
        analysis: experiment.analysis(),
        device: &device,
        threshold: experiment.threshold,
        termination: &termination,
        started: Instant::now(),
    };
    let finished = protocol.run(&planned)?;
    print_table(&finished, experiment.threshold);
    Ok(root)
}

/// The experiment file with its preset, the flags and `--arms` applied, checked against the
/// task, the task's data defaults made explicit.
fn read_experiment(args: &Args) -> Result<(Experiment, config::Origin)> {
    let task = args.common.task;
    let path = args.common.experiment_file()?;
    let overrides = Overrides {
        epochs: args.epochs,
        seeds: args.seeds.clone(),
        dtype: args.dtype,
        tf32: args.tf32,
    };
    let (mut experiment, origin) = Experiment::read(&path, &args.common.preset, &overrides)?;
    if let Some(arms) = &args.arms {
        experiment.check_arm_names(arms, &origin)?;
    }
    settle(task, &mut experiment, &origin)?;
    Ok((experiment, origin))
}

/// Checks `experiment` against the task, and makes the task's data defaults explicit.
pub fn settle(task: Task, experiment: &mut Experiment, origin: &config::Origin) -> Result<()> {
    task.check_experiment_name(&experiment.experiment)
        .map_err(|e| origin.error("experiment", e))?;
    task.check_model(&experiment.model)
        .map_err(|e| origin.error("model.kind", e))?;
    experiment.data = task
        .settle_data(experiment.data.clone())
        .map_err(|e| origin.error("data.max_len", e))?;
    experiment
        .data
        .check()
        .map_err(|e| origin.error(&e.key, e.message))
}

/// Makes `out` a folder the runs can be written in, or says why it cannot be, before any
/// run is looked at.
fn prepare_out(out: &Path) -> Result<()> {
    let fix = "pass `--out` a folder you can write";
    if out.exists() && !out.is_dir() {
        bail!("--out {}: a file, not a folder; {fix}", out.display());
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("--out {}: cannot create the folder; {fix}", out.display()))?;
    // A name no other process picks, on this machine or another sharing the folder.
    let probe = tempfile::Builder::new()
        .prefix(".write-test-")
        .tempfile_in(out)
        .with_context(|| format!("--out {}: cannot write in it; {fix}", out.display()))?;
    let path = probe.path().to_owned();
    probe
        .close()
        .with_context(|| format!("--out {}: cannot delete {}", out.display(), path.display()))
}

/// Stops the command when run directories of the plan hold runs of other specifications, or
/// with `discard` deletes them, saying which.
fn settle_conflicts(planned: &[Planned], root: &Path, discard: bool) -> Result<()> {
    let conflicts = plan::conflicts(planned);
    if conflicts.is_empty() {
        return Ok(());
    }
    if !discard {
        return Err(plan::conflict_error(&conflicts, root));
    }
    for conflict in &conflicts {
        let lock = RunLock::take(conflict.dir.path())?;
        conflict.dir.discard()?;
        drop(lock);
        eprintln!(
            "discarded {} (trained under other settings)",
            conflict.dir.path().display()
        );
    }
    Ok(())
}

/// The protocol's runs and what they share.
struct Protocol<'a> {
    task: Task,
    hub: &'a Hub,
    loaded: &'a Loaded,
    analysis: AnalysisPlan,
    device: &'a Device,
    threshold: f64,
    /// Stops the protocol between two steps at `SIGTERM` or Ctrl-C.
    termination: &'a Termination,
    started: Instant,
}

/// A finished call of one run.
struct Finished {
    arm: String,
    seed: u64,
    outcome: Outcome,
}

impl Protocol<'_> {
    /// Trains the planned runs one after the other; returns each one's outcome, or
    /// [`Interrupted`](crate::interrupt::Interrupted) naming the run a signal stopped.
    fn run(&self, planned: &[Planned]) -> Result<Vec<Finished>> {
        let data = self.loaded.data(true);
        let options = Options {
            stop_after: None,
            stop: self.termination.stop().clone(),
            progress: Progress::Auto,
            git_commit: checkout::commit(&config::default_relative(self.task.name())),
        };
        let mut finished = Vec::new();
        let left = planned
            .iter()
            .map(|run| eta::epochs_left(&run.dir, run.spec.train.epochs))
            .collect::<Result<Vec<_>>>()?;
        let mut eta = Eta::new(left.iter().copied());
        for ((index, run), &left) in planned.iter().enumerate().zip(&left) {
            self.termination.check()?;
            let spec = &run.spec;
            eprintln!(
                "[run {}/{}{}] {} seed {} in {}",
                index + 1,
                planned.len(),
                eta.suffix(self.started.elapsed()),
                spec.arm,
                spec.seed,
                run.dir.path().display()
            );
            let lock = RunLock::take(run.dir.path())?;
            let model = self
                .task
                .network(self.hub, &spec.model, spec.seed, self.device)?;
            let job = Run {
                spec,
                analysis: &self.analysis,
                dir: &run.dir,
            };
            let outcome = train(&*model, &data, job, self.device, &options)
                .with_context(|| format!("run {}", run.dir.path().display()))?;
            drop(lock);
            let done_before = spec.train.epochs - left;
            eta.record(left, outcome.epochs_done.saturating_sub(done_before));
            let done = Finished {
                arm: spec.arm.clone(),
                seed: spec.seed,
                outcome,
            };
            println!("{}", run_line(&done, self.threshold));
            self.termination
                .check()
                .with_context(|| stopped_after(run, &done.outcome))?;
            finished.push(done);
        }
        Ok(finished)
    }
}

/// What a signal that stopped the protocol after training `run` left of it.
fn stopped_after(run: &Planned, outcome: &Outcome) -> String {
    let folder = run.dir.path().display();
    match outcome.status {
        Status::Running if outcome.epochs_done == 0 => format!(
            "run {folder} had finished no epoch yet and starts from the beginning when the \
             command runs again"
        ),
        Status::Running => format!(
            "run {folder} kept its checkpoint of epoch {} and resumes there when the command \
             runs again",
            outcome.epochs_done
        ),
        status => format!(
            "run {folder} ended ({status}) before the signal was seen; the runs after it start \
             when the command runs again"
        ),
    }
}

/// What the run line and the final table say of a finished run.
struct RunSummary {
    /// The best validation accuracy, formatted.
    best_val_acc: String,
    /// Its epoch.
    best_epoch: Option<u32>,
    /// The last epoch's test accuracy, formatted.
    final_test_acc: String,
    /// The first epoch reaching the threshold.
    reached: Option<u32>,
    /// The run's status.
    status: Status,
}

impl RunSummary {
    fn of(outcome: &Outcome, threshold: f64) -> Self {
        let epochs = &outcome.epochs;
        let best = epochs.iter().max_by(|a, b| a.val_acc.total_cmp(&b.val_acc));
        RunSummary {
            best_val_acc: best.map_or("-".into(), |r| format!("{:.4}", r.val_acc)),
            best_epoch: best.map(|r| r.epoch),
            final_test_acc: epochs
                .last()
                .and_then(|r| r.test_acc)
                .map_or("-".into(), |a| format!("{a:.4}")),
            reached: epochs
                .iter()
                .find(|r| r.val_acc >= threshold)
                .map(|r| r.epoch),
            status: outcome.status,
        }
    }
}

fn run_line(done: &Finished, threshold: f64) -> String {
    let s = RunSummary::of(&done.outcome, threshold);
    format!(
        "{} seed {}: {}, {} epochs, best val acc {}{}, final test acc {}, epochs to {threshold}: {}",
        done.arm,
        done.seed,
        s.status,
        done.outcome.epochs_done,
        s.best_val_acc,
        s.best_epoch
            .map_or(String::new(), |e| format!(" (epoch {e})")),
        s.final_test_acc,
        s.reached.map_or("not reached".into(), |e| e.to_string()),
    )
}

fn print_table(finished: &[Finished], threshold: f64) {
    println!();
    println!(
        "{:<16} {:>4} {:>12} {:>14} {:>10} {:>9}",
        "arm", "seed", "best val acc", "final test acc", "epochs→thr", "status"
    );
    for done in finished {
        let s = RunSummary::of(&done.outcome, threshold);
        let reached = s.reached.map_or("-".into(), |e| e.to_string());
        println!(
            "{:<16} {:>4} {:>12} {:>14} {reached:>10} {:>9}",
            done.arm,
            done.seed,
            s.best_val_acc,
            s.final_test_acc,
            s.status.name()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_arguments_are_checked() {
        assert_eq!(parse_shard("1/4"), Ok((1, 4)));
        for bad in ["4/4", "1", "a/2", "0/0"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }
}
