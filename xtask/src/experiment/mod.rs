//! `cargo xtask experiment cifar10|imdb`: every arm × every seed of an experiment, one run after
//! the other, all else held equal; complete runs are skipped, partial ones resumed, and
//! `--shard I/N` splits the protocol between processes that share the output folder.

mod config;
mod lock;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use lrlab_datasets::{
    Examples, Hub, Limits, RepoRef, Source, SplitConfig, Splits, load_cifar10, load_imdb,
    text_encoder,
};
use lrlab_models::{BertClassifier, BertConfig, Network, Precision, ResNet18, ResNetConfig};
use lrlab_trainer::{
    Data, DeviceChoice, Options, Outcome, Progress, RunDir, RunLabel, Status, TrainConfig, train,
};

use crate::data::Dataset;
pub use config::Experiment;
use config::ModelSettings;
use lock::RunLock;

/// Which device to train on.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DeviceArg {
    /// A CUDA GPU when the build has one, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA GPU (a build with `--features cuda`).
    Cuda,
}

impl DeviceArg {
    /// The candle device.
    pub fn device(self) -> Result<Device> {
        let choice = match self {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Cuda => DeviceChoice::Cuda,
        };
        Ok(choice.device()?)
    }
}

/// Arguments of `cargo xtask experiment`.
#[derive(clap::Args)]
pub struct Args {
    /// The experiment.
    #[arg(value_enum)]
    dataset: Dataset,
    /// The experiment file (default `configs/<experiment>.toml`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The preset of the file to apply (`full`: the published plan; `smoke`: minutes on a CPU).
    #[arg(long, default_value = "full")]
    preset: String,
    /// Only these arms (comma-separated names of the file's `[arms.*]`).
    #[arg(long, value_delimiter = ',')]
    arms: Option<Vec<String>>,
    /// Only these seeds (comma-separated).
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Epochs per run, instead of the file's.
    #[arg(long)]
    epochs: Option<u64>,
    /// The compute precision (`f32` | `bf16`), instead of the file's `train.dtype`.
    #[arg(long)]
    dtype: Option<Precision>,
    /// TF32 tensor cores for `f32` products on a CUDA GPU (sets the file's `train.tf32`).
    #[arg(long)]
    tf32: bool,
    /// The folder of the runs: `<out>/<experiment>/<arm>/seed-<k>/`.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// The device.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
    /// `I/N`: run only every N-th run of the protocol, starting with the I-th (0-based), so that
    /// N processes (a job array) share the protocol.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
}

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

/// One run of the protocol.
struct Planned {
    arm: String,
    seed: u64,
}

/// The runs of the protocol, arm by arm and seed by seed, or those of shard `(i, n)`: every
/// n-th starting with the i-th, so that n shards partition the protocol.
fn plan_runs(arms: &[String], seeds: &[u64], shard: Option<(usize, usize)>) -> Vec<Planned> {
    arms.iter()
        .flat_map(|arm| {
            seeds.iter().map(|&seed| Planned {
                arm: arm.clone(),
                seed,
            })
        })
        .enumerate()
        .filter(|(i, _)| shard.is_none_or(|(shard, of)| i % of == shard))
        .map(|(_, planned)| planned)
        .collect()
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let name = match args.dataset {
        Dataset::Cifar10 => "cifar10",
        Dataset::Imdb => "imdb",
    };
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| config::default_path(name));
    let mut experiment = Experiment::read(&path, &args.preset)?;
    if let Some(epochs) = args.epochs {
        experiment.train.epochs = epochs;
    }
    if let Some(seeds) = &args.seeds {
        experiment.train.seeds = seeds.clone();
    }
    if let Some(dtype) = args.dtype {
        experiment.train.dtype = dtype;
    }
    experiment.train.tf32 |= args.tf32;
    if let Some(arms) = &args.arms {
        for arm in arms {
            if !experiment.arms.contains_key(arm) {
                let known: Vec<&str> = experiment.arms.keys().map(String::as_str).collect();
                bail!(
                    "--arms: no arm `{arm}` in {} (it has: {})",
                    path.display(),
                    known.join(", ")
                );
            }
        }
        experiment.arms.retain(|name, _| arms.contains(name));
        experiment.arm_lr.retain(|name, _| arms.contains(name));
        experiment.baselines.retain(|name| arms.contains(name));
    }
    let device = args.device.device()?;
    let arms: Vec<String> = experiment.arms.keys().cloned().collect();
    let plan = plan_runs(&arms, &experiment.train.seeds, args.shard);
    eprintln!(
        "{}: {} run(s) of {} arm(s) × {} seed(s), preset `{}`, {} epochs, {}, on {:?}",
        experiment.experiment,
        plan.len(),
        experiment.arms.len(),
        experiment.train.seeds.len(),
        args.preset,
        experiment.train.epochs,
        experiment.train.dtype,
        device.location()
    );
    let hub = Hub::from_env();
    let protocol = Protocol {
        experiment: &experiment,
        plan: &plan,
        root: args.out.join(&experiment.experiment),
        device: &device,
        started: Instant::now(),
    };
    let finished = match args.dataset {
        Dataset::Cifar10 => {
            let ModelSettings::Resnet18 { width } = experiment.model else {
                bail!(
                    "{}: cifar10 needs `model.kind = \"resnet18\"`",
                    path.display()
                );
            };
            let splits = load_cifar10(&hub, &Source::cifar10(), &split_config(&experiment))?;
            let config = ResNetConfig {
                width,
                num_classes: 10,
            };
            protocol.run(&splits, |seed| Ok(ResNet18::new(config, seed, &device)?))?
        }
        Dataset::Imdb => {
            let ModelSettings::Bert { checkpoint } = &experiment.model else {
                bail!("{}: imdb needs `model.kind = \"bert\"`", path.display());
            };
            let repo = RepoRef::model(checkpoint);
            let reviews = load_imdb(&hub, &Source::imdb(), &split_config(&experiment))?;
            let max_len = experiment.data.max_len.unwrap_or(128);
            let encoder = text_encoder(&hub, &repo, max_len)?;
            let splits = Splits {
                train: encoder.encode(&reviews.train)?,
                val: encoder.encode(&reviews.val)?,
                test: encoder.encode(&reviews.test)?,
            };
            let config = hub.file(&repo, "config.json")?;
            let weights = hub.file(&repo, "model.safetensors")?;
            protocol.run(&splits, |seed| {
                let bert = BertConfig::from_file(&config)?;
                let (model, _) =
                    BertClassifier::from_checkpoint(bert, &[&weights], 2, seed, &device)?;
                Ok(model)
            })?
        }
    };
    print_table(&experiment, &finished);
    Ok(())
}

fn split_config(experiment: &Experiment) -> SplitConfig {
    let data = &experiment.data;
    SplitConfig {
        val_fraction: data.val_fraction,
        seed: data.split_seed,
        limit: Limits {
            train: data.limit_train,
            val: data.limit_val,
            test: data.limit_test,
        },
    }
}

/// The protocol's runs and where they go, whatever the data and model.
struct Protocol<'a> {
    experiment: &'a Experiment,
    plan: &'a [Planned],
    /// `<out>/<experiment>`.
    root: PathBuf,
    device: &'a Device,
    started: Instant,
}

impl Protocol<'_> {
    /// Trains the planned runs one after the other, each from `model(seed)`; returns each
    /// run's arm, seed and outcome.
    fn run<E: Examples, M: Network>(
        &self,
        splits: &Splits<E>,
        model: impl Fn(u64) -> Result<M>,
    ) -> Result<Vec<(String, u64, Outcome)>> {
        let Protocol {
            experiment,
            plan,
            root,
            device,
            started,
        } = self;
        let mut finished = Vec::new();
        let data = Data::from_splits(splits, true);
        for (index, planned) in plan.iter().enumerate() {
            let folder = root
                .join(&planned.arm)
                .join(format!("seed-{}", planned.seed));
            let run = RunDir::new(&folder);
            let eta = match index {
                0 => String::new(),
                _ => {
                    let per_run = started.elapsed().as_secs_f64() / index as f64;
                    format!(", ETA {:.0} s", per_run * (plan.len() - index) as f64)
                }
            };
            eprintln!(
                "[run {}/{}{eta}] {} seed {}",
                index + 1,
                plan.len(),
                planned.arm,
                planned.seed
            );
            let lock = RunLock::take(&folder)?;
            let scheduler = experiment.arms[&planned.arm].clone();
            let config = TrainConfig {
                epochs: experiment.train.epochs,
                batch_size: experiment.train.batch_size,
                eval_batch_size: experiment.train.eval_batch_size,
                seed: planned.seed,
                augment: experiment.train.augment,
                keep_best: experiment.train.keep_best,
                optimizer: experiment.optimizer_of(&planned.arm),
                scheduler,
                dtype: experiment.train.dtype,
                tf32: experiment.train.tf32,
            };
            let label = RunLabel {
                experiment: experiment.experiment.clone(),
                arm: planned.arm.clone(),
                config: serde_json::json!({ "experiment": experiment, "train": config }),
                git_commit: git_commit(),
            };
            let options = Options {
                stop_after: None,
                progress: Progress::Auto,
            };
            let outcome = train(
                &model(planned.seed)?,
                &data,
                &config,
                &label,
                &run,
                device,
                options,
            )
            .with_context(|| format!("run {}", folder.display()))?;
            drop(lock);
            println!(
                "{}",
                run_line(&planned.arm, planned.seed, &outcome, experiment.threshold)
            );
            finished.push((planned.arm.clone(), planned.seed, outcome));
        }
        Ok(finished)
    }
}

/// What the run line and the final table say of a finished run.
struct RunSummary {
    /// The best validation accuracy, formatted.
    best_val_acc: String,
    /// Its epoch.
    best_epoch: Option<i64>,
    /// The last epoch's test accuracy, formatted.
    final_test_acc: String,
    /// The first epoch reaching the threshold.
    reached: Option<i64>,
    /// The run's status, as run.json writes it.
    status: &'static str,
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
            status: match outcome.status {
                Status::Running => "running",
                Status::Complete => "complete",
                Status::Diverged => "diverged",
                Status::Failed => "failed",
            },
        }
    }
}

fn run_line(arm: &str, seed: u64, outcome: &Outcome, threshold: f64) -> String {
    let s = RunSummary::of(outcome, threshold);
    format!(
        "{arm} seed {seed}: {}, {} epochs, best val acc {}{}, final test acc {}, epochs to {threshold}: {}",
        s.status,
        outcome.epochs_done,
        s.best_val_acc,
        s.best_epoch
            .map_or(String::new(), |e| format!(" (epoch {e})")),
        s.final_test_acc,
        s.reached.map_or("not reached".into(), |e| e.to_string()),
    )
}

fn print_table(experiment: &Experiment, finished: &[(String, u64, Outcome)]) {
    println!();
    println!(
        "{:<16} {:>4} {:>12} {:>14} {:>10} {:>9}",
        "arm", "seed", "best val acc", "final test acc", "epochs→thr", "status"
    );
    for (arm, seed, outcome) in finished {
        let s = RunSummary::of(outcome, experiment.threshold);
        let reached = s.reached.map_or("-".into(), |e| e.to_string());
        println!(
            "{arm:<16} {seed:>4} {:>12} {:>14} {reached:>10} {:>9}",
            s.best_val_acc, s.final_test_acc, s.status
        );
    }
}

/// The commit of the working tree, where git knows it.
fn git_commit() -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_protocol() {
        let arms: Vec<String> = ["constant", "cosine", "plateau"].map(String::from).to_vec();
        let seeds = [0, 1, 2];
        let key = |p: &Planned| (p.arm.clone(), p.seed);
        let whole: Vec<_> = plan_runs(&arms, &seeds, None).iter().map(key).collect();
        assert_eq!(whole.len(), 9);
        let mut parts: Vec<_> = (0..4)
            .flat_map(|i| {
                plan_runs(&arms, &seeds, Some((i, 4)))
                    .iter()
                    .map(key)
                    .collect::<Vec<_>>()
            })
            .collect();
        parts.sort();
        let mut sorted = whole.clone();
        sorted.sort();
        assert_eq!(parts, sorted);
        assert_eq!(plan_runs(&arms, &seeds, Some((3, 4))).len(), 2);
    }

    #[test]
    fn shard_arguments_are_checked() {
        assert_eq!(parse_shard("1/4"), Ok((1, 4)));
        for bad in ["4/4", "1", "a/2", "0/0"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }
}
