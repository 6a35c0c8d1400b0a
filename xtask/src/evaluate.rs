//! `cargo xtask evaluate cifar10|imdb --weights FILE`: the loss and accuracy of a saved model on a
//! split, in evaluation mode, with the preprocessing a run uses.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use anyhow::Result;
use lrlab_datasets::{DEFAULT_CHECKPOINT, Hub, RepoRef, Splits};
use lrlab_runs::DataSettings;
use lrlab_trainer::{Score, evaluate};
use serde_json::json;

use crate::device::DeviceArg;
use crate::tasks::Task;
use crate::values;

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
    #[arg(allow_negative_numbers = true, long, default_value_t = 128, value_parser = values::tokens)]
    max_len: usize,
    /// Evaluate the first N examples of the split only (in the split's order: the test file's
    /// row order; the validation split's carved order).
    #[arg(allow_negative_numbers = true, long)]
    limit: Option<NonZeroUsize>,
    /// Examples per forward pass.
    #[arg(allow_negative_numbers = true, long, default_value_t = NonZeroUsize::new(64).expect("64 is not 0"))]
    batch_size: NonZeroUsize,
    /// `--split val`: the validation fraction the model was trained with.
    #[arg(allow_negative_numbers = true, long, default_value_t = 0.1, value_parser = values::fraction)]
    val_fraction: f64,
    /// `--split val`: the seed of the validation split.
    #[arg(allow_negative_numbers = true, long, default_value_t = 0)]
    seed: u64,
    /// The device.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
}

/// Runs the command: prints `{"loss", "accuracy", "n"}`.
pub fn run(args: &Args) -> Result<()> {
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
    let Score { loss, accuracy, n } = evaluate(
        &*model,
        examples,
        args.limit.map(NonZeroUsize::get),
        args.batch_size.get(),
        &device,
    )?;
    println!("{}", json!({ "loss": loss, "accuracy": accuracy, "n": n }));
    Ok(())
}

fn pick<T>(splits: Splits<T>, split: Split) -> T {
    match split {
        Split::Test => splits.test,
        Split::Val => splits.val,
    }
}
