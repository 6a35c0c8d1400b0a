//! `cargo xtask schedule`: the learning rate of every optimizer step of a run, as PyTorch would
//! set it, for a schedule given in a TOML file and (for adaptive ones) the metrics of a run —
//! from a CSV of epoch metrics, or replayed from a run directory, every step's signals included.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use lrlab_runs::{EpochRow, RunDir, StepRow};
use lrlab_schedulers::{
    EpochEnd, Interval, Observation, Scheduler, SchedulerConfig, Signal, Signals, Span, StepEnd,
};
use serde::Deserialize;

use crate::values;

/// Arguments of `cargo xtask schedule`.
#[derive(clap::Args)]
pub struct Args {
    /// TOML file with one `[scheduler]` table.
    #[arg(long, value_name = "FILE.toml")]
    scheduler: PathBuf,
    /// Epochs to simulate.
    #[arg(
        long,
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(u64).range(1..),
        required_unless_present = "run",
        conflicts_with = "run"
    )]
    epochs: Option<u64>,
    /// Optimizer steps per epoch (default 1).
    #[arg(allow_negative_numbers = true, long, value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "run")]
    steps_per_epoch: Option<u64>,
    /// The optimizer's initial learning rate (default 1e-3, or the run's with --run).
    #[arg(allow_negative_numbers = true, long, value_parser = values::rate)]
    base_lr: Option<f64>,
    /// CSV with a header holding `epoch` (1-based) and any of train_loss, train_acc, val_loss,
    /// val_acc: the values observed at the end of each epoch. Other columns are ignored.
    #[arg(long, value_name = "FILE.csv", conflicts_with = "run")]
    metrics: Option<PathBuf>,
    /// A run directory: replay what it recorded — every step's loss and gradient agreement,
    /// every epoch's losses and accuracies — over its own plan, beside the rate it used.
    #[arg(long, value_name = "DIR")]
    run: Option<PathBuf>,
}

/// The table of the schedule file.
const TABLE: &str = "scheduler";

/// The TOML file: exactly one `[scheduler]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleFile {
    scheduler: SchedulerConfig,
}

/// Loads the schedule of `path` and builds it for a run of `span`, its lengths relative to the
/// run resolved against it; errors name the file and the key.
fn load_scheduler(path: &Path, base_lr: f64, span: Span) -> Result<lrlab_schedulers::AnyScheduler> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the scheduler file {}", path.display()))?;
    let file: ScheduleFile = toml::from_str(&text).map_err(|e| {
        let no_table = toml::from_str::<toml::Table>(&text).is_ok_and(|t| !t.contains_key(TABLE));
        match no_table {
            true => anyhow::anyhow!(
                "{}: no [{TABLE}] table; the file holds one schedule under it, e.g. \
                 `[{TABLE}]` then `kind = \"cosine\"`",
                path.display()
            ),
            false => anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()),
        }
    })?;
    file.scheduler
        .resolve(span)
        .and_then(|config| config.build(base_lr))
        .map_err(|e| anyhow::anyhow!("{}: [scheduler] {e}", path.display()))
}

/// Epoch-end signals by epoch, as read from a metrics CSV.
type EpochMetrics = BTreeMap<u64, EpochEnd>;

const EPOCH_SIGNALS: [Signal; 4] = [
    Signal::TrainLoss,
    Signal::TrainAcc,
    Signal::ValLoss,
    Signal::ValAcc,
];

fn parse_value(path: &Path, row: usize, column: &str, text: &str) -> Result<Option<f64>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<f64>().map(Some).map_err(|_| {
        anyhow::anyhow!(
            "{}: row {row}, column `{column}`: expected a number (or nan/inf), found {text:?}",
            path.display()
        )
    })
}

/// Reads `path`, checking that it holds every signal in `needs` for epochs `1..last`.
fn read_metrics(path: &Path, needs: Signals, last: u64) -> Result<EpochMetrics> {
    let mut reader = csv::Reader::from_path(path)
        .with_context(|| format!("cannot read the metrics file {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header", path.display()))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.trim() == name);
    let epoch_column = column("epoch").with_context(|| {
        let found = match headers.is_empty() {
            true => "the file is empty".to_owned(),
            false => format!(
                "its header has: {}",
                headers.iter().collect::<Vec<_>>().join(", ")
            ),
        };
        format!(
            "{}: no `epoch` column ({found}); the file needs a header naming `epoch` and the \
             signals, e.g. `epoch,{}`",
            path.display(),
            needs.iter().map(|s| s.name()).collect::<Vec<_>>().join(",")
        )
    })?;
    let signal_columns: Vec<(Signal, usize)> = EPOCH_SIGNALS
        .into_iter()
        .filter_map(|s| column(s.name()).map(|c| (s, c)))
        .collect();
    for signal in needs.iter() {
        ensure!(
            signal_columns.iter().any(|&(s, _)| s == signal),
            "{}: no `{signal}` column, which the scheduler needs at every epoch end",
            path.display()
        );
    }
    let mut metrics = EpochMetrics::new();
    for (index, record) in reader.records().enumerate() {
        let row = index + 2; // 1-based, after the header
        let record = record.with_context(|| format!("{}: row {row}", path.display()))?;
        let epoch_text = record.get(epoch_column).unwrap_or("").trim();
        let epoch: u64 = epoch_text.parse().ok().filter(|&e| e >= 1).with_context(|| {
            format!(
                "{}: row {row}, column `epoch`: expected an epoch number ≥ 1, found {epoch_text:?}",
                path.display()
            )
        })?;
        let mut end = EpochEnd {
            epoch,
            ..Default::default()
        };
        for &(signal, c) in &signal_columns {
            let value = parse_value(path, row, signal.name(), record.get(c).unwrap_or(""))?;
            match signal {
                Signal::TrainLoss => end.train_loss = value,
                Signal::TrainAcc => end.train_acc = value,
                Signal::ValLoss => end.val_loss = value,
                _ => end.val_acc = value,
            }
        }
        ensure!(
            metrics.insert(epoch, end).is_none(),
            "{}: row {row}: epoch {epoch} appears twice",
            path.display()
        );
    }
    for epoch in 1..last {
        let end = metrics.get(&epoch).with_context(|| {
            format!(
                "{}: no row for epoch {epoch}; the scheduler needs {} at the end of every epoch \
                 before the last",
                path.display(),
                names(needs)
            )
        })?;
        for signal in needs.iter() {
            ensure!(
                Observation::Epoch(*end).get(signal).is_some(),
                "{}: epoch {epoch} has no `{signal}` value, which the scheduler needs",
                path.display()
            );
        }
    }
    Ok(metrics)
}

fn names(signals: Signals) -> String {
    signals
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the command: prints `step,epoch,lr` for every optimizer step (and the run's own rate,
/// `run_lr`, when replaying a run).
pub fn run(args: &Args) -> Result<()> {
    match &args.run {
        Some(dir) => replay(args, &RunDir::new(dir)),
        None => preview(args),
    }
}

/// The schedule over `--epochs` × `--steps-per-epoch`, fed the epoch metrics of `--metrics`.
fn preview(args: &Args) -> Result<()> {
    let epochs = args.epochs.expect("clap requires --epochs without --run");
    let steps_per_epoch = args.steps_per_epoch.unwrap_or(1);
    let span = Span::of_run(epochs, steps_per_epoch);
    let mut scheduler = load_scheduler(&args.scheduler, args.base_lr.unwrap_or(1e-3), span)?;
    let needs = scheduler.needs();
    let per_step: Signals = needs
        .iter()
        .filter(|s| s.interval() == Interval::Step)
        .collect();
    if !per_step.is_empty() {
        bail!(
            "{}: the scheduler needs {} at every optimizer step, which a metrics file cannot \
             provide: replay a run that recorded them with --run DIR",
            args.scheduler.display(),
            names(per_step)
        );
    }
    let metrics = match (&args.metrics, needs.is_empty()) {
        (Some(path), false) => read_metrics(path, needs, epochs)?,
        (Some(path), true) => {
            eprintln!(
                "note: {} reads no metrics; {} is not read",
                args.scheduler.display(),
                path.display()
            );
            EpochMetrics::new()
        }
        (None, true) => EpochMetrics::new(),
        (None, false) => bail!(
            "{}: the scheduler needs {} at every epoch end: pass --metrics FILE.csv with those \
             columns, or replay a run with --run DIR",
            args.scheduler.display(),
            names(needs)
        ),
    };

    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    writeln!(out, "step,epoch,lr")?;
    let mut step = 0;
    for epoch in 1..=epochs {
        for _ in 0..steps_per_epoch {
            writeln!(out, "{step},{epoch},{}", scheduler.lr())?;
            step += 1;
            scheduler.observe(&Observation::Step(StepEnd {
                step,
                epoch,
                ..StepEnd::default()
            }));
        }
        if epoch < epochs {
            // The last epoch's end sets no rate that a step of this run uses.
            let end = metrics.get(&epoch).copied().unwrap_or_default();
            scheduler.observe(&Observation::Epoch(EpochEnd { epoch, step, ..end }));
        }
    }
    out.flush()?;
    Ok(())
}

/// The schedule over the run's own plan, fed every signal the run recorded, step by step.
fn replay(args: &Args, dir: &RunDir) -> Result<()> {
    let record = dir
        .read_record()?
        .with_context(|| format!("{}: no run.json: not a run directory", dir.path().display()))?;
    let spec = &record.spec;
    let base_lr = args.base_lr.unwrap_or(spec.optimizer.lr);
    let mut scheduler = load_scheduler(&args.scheduler, base_lr, spec.span())?;
    let (epochs, steps) = (dir.read_epochs()?, dir.read_steps()?);
    check_recorded(scheduler.needs(), &steps, dir)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    writeln!(out, "step,epoch,lr,run_lr")?;
    for (i, row) in steps.iter().enumerate() {
        writeln!(
            out,
            "{},{},{},{}",
            row.step - 1,
            row.epoch,
            scheduler.lr(),
            row.lr
        )?;
        scheduler.observe(&Observation::Step(step_end(row)));
        let epoch_ends = steps.get(i + 1).is_none_or(|next| next.epoch != row.epoch);
        let ended = epochs.iter().find(|e| e.epoch == row.epoch);
        if let (true, Some(ended)) = (epoch_ends, ended) {
            scheduler.observe(&Observation::Epoch(epoch_end(ended, row.step)));
        }
    }
    out.flush()?;
    Ok(())
}

/// Checks that the run recorded every per-step signal the scheduler reads.
fn check_recorded(needs: Signals, steps: &[StepRow], dir: &RunDir) -> Result<()> {
    for signal in needs.iter() {
        let recorded = steps
            .iter()
            .any(|row| Observation::Step(step_end(row)).get(signal).is_some());
        ensure!(
            signal.interval() == Interval::Epoch || recorded,
            "{}: its steps.parquet has no `{signal}`, which the scheduler reads at every step: \
             a run records the gradients' agreement only when its own schedule reads it (a \
             hypergradient arm)",
            dir.path().display()
        );
    }
    Ok(())
}

fn step_end(row: &StepRow) -> StepEnd {
    StepEnd {
        step: row.step,
        epoch: u64::from(row.epoch),
        loss: Some(row.loss),
        grad_dot: row.grad_dot,
        grad_cos: row.grad_cos,
    }
}

fn epoch_end(row: &EpochRow, step: u64) -> EpochEnd {
    EpochEnd {
        epoch: u64::from(row.epoch),
        step,
        train_loss: Some(row.train_loss),
        train_acc: Some(row.train_acc),
        val_loss: Some(row.val_loss),
        val_acc: Some(row.val_acc),
    }
}
