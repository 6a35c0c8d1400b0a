//! `cargo xtask evaluate cifar10|imdb --weights FILE`: the loss and accuracy of a saved model on a
//! split, in evaluation mode, with the preprocessing a run uses.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use lrlab_datasets::{
    DEFAULT_CHECKPOINT, Hub, IMDB_CLASSES, RepoRef, Source, SplitConfig, Splits, load_cifar10,
    load_imdb, text_encoder,
};
use lrlab_models::{BertClassifier, BertConfig, ResNet18};
use lrlab_trainer::{Score, evaluate};
use serde_json::json;

use crate::data::Dataset;
use crate::experiment::DeviceArg;

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
    /// The dataset (CIFAR-10 with a ResNet-18, IMDB with a BERT classifier).
    #[arg(value_enum)]
    dataset: Dataset,
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
    let split = SplitConfig {
        val_fraction: args.val_fraction,
        seed: args.seed,
        ..SplitConfig::default()
    };
    let weights = &args.weights;
    let score = match args.dataset {
        Dataset::Cifar10 => {
            let model = ResNet18::load(&[weights], &device)
                .with_context(|| format!("loading the ResNet-18 weights {}", weights.display()))?;
            let splits = load_cifar10(&hub, &Source::cifar10(), &split)?;
            let images = pick(&splits, args.split);
            evaluate(&model, images, args.limit, args.batch_size, &device)?
        }
        Dataset::Imdb => {
            let repo = RepoRef::model(&args.checkpoint);
            let config = BertConfig::from_file(&hub.file(&repo, "config.json")?)?;
            let (model, report) =
                BertClassifier::from_checkpoint(config, &[weights], IMDB_CLASSES.len(), 0, &device)
                    .with_context(|| {
                        format!("loading the BERT classifier {}", weights.display())
                    })?;
            if !report.fresh.is_empty() {
                bail!(
                    "{}: no `{}`: this is not a trained classifier (a base checkpoint has no \
                     head); pass the weights a run saved",
                    weights.display(),
                    report.fresh.join("`, `")
                );
            }
            let splits = load_imdb(&hub, &Source::imdb(), &split)?;
            let encoder = text_encoder(&hub, &repo, args.max_len)?;
            let tokens = encoder.encode(pick(&splits, args.split))?;
            evaluate(&model, &tokens, args.limit, args.batch_size, &device)?
        }
    };
    let Score { loss, accuracy, n } = score;
    println!("{}", json!({ "loss": loss, "accuracy": accuracy, "n": n }));
    Ok(())
}

fn pick<T>(splits: &Splits<T>, split: Split) -> &T {
    match split {
        Split::Test => &splits.test,
        Split::Val => &splits.val,
    }
}
