//! `cargo xtask evaluate cifar10|imdb --weights FILE`: the loss and accuracy of a saved model on a
//! split, in evaluation mode, with the preprocessing a run uses.

use std::path::PathBuf;

use anyhow::{Result, bail};
use lrlab_datasets::{DEFAULT_CHECKPOINT, Hub, RepoRef, Splits};
use lrlab_runs::DataSettings;
use lrlab_trainer::{Score, evaluate};
use serde_json::json;

use crate::device::DeviceArg;
use crate::tasks::Task;

/// Which split to evaluate on.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Split {
    /// The dataset's test file.
    Test,
    /// The validation split carved from the training file (`--val-fraction`, `--seed`).
    Val,
}

/// Arguments of `cargo xtask evaluate`.
#[derive(clap::Args)]
pub struct Args {
    /// The task (CIFAR-10 with a ResNet-18, IMDB with a BERT classifier).
    #[arg(value_enum)]
    task: Task,
    /// The model's weights: a safetensors file saved by lrlab, torchvision (CIFAR-10) or
    /// transformers (IMDB: the whole classifier, head included).
    #[arg(long)]
    weights: PathBuf,
    /// The split.
    #[arg(long, value_enum, default_value = "test")]
    split: Split,
    /// IMDB: the Hub repository of the model's `config.json` and tokenizer.
    #[arg(long, default_value = DEFAULT_CHECKPOINT)]
    checkpoint: String,
    /// IMDB: sequence length.
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    /// Evaluate the first N examples of the split only (in the split's order: the test file's
    /// row order; the validation split's carved order).
    #[arg(long)]
    limit: Option<usize>,
    /// Examples per forward pass.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// `--split val`: the validation fraction the model was trained with.
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// `--split val`: the seed of the validation split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The device.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
}

/// Runs the command: prints `{"loss", "accuracy", "n"}`.
pub fn run(args: &Args) -> Result<()> {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let hub = Hub::from_env();
    let device = args.device.device()?;
    let checkpoint = RepoRef::model(&args.checkpoint);
    let model = args
        .task
        .trained_network(&hub, &args.weights, &checkpoint, &device)?;
    let settings = DataSettings {
        revision: "main".into(),
        val_fraction: args.val_fraction,
        split_seed: args.seed,
        limit_train: None,
        limit_val: None,
        limit_test: None,
        max_len: Some(args.max_len),
    };
    let loaded = args.task.load(&hub, &settings, Some(&checkpoint))?;
    let examples = pick(loaded.examples(), args.split);
    let Score { loss, accuracy, n } =
        evaluate(&*model, examples, args.limit, args.batch_size, &device)?;
    println!("{}", json!({ "loss": loss, "accuracy": accuracy, "n": n }));
    Ok(())
}

fn pick<T>(splits: Splits<T>, split: Split) -> T {
    match split {
        Split::Test => splits.test,
        Split::Val => splits.val,
    }
}
