//! `cargo xtask data cifar10|imdb`: load a dataset as a run would and summarise its splits.

use anyhow::Result;
use lrlab_datasets::{
    CIFAR10_CLASSES, DEFAULT_CHECKPOINT, Hub, IMDB_CLASSES, Limits, RepoRef, Source, SplitConfig,
    Splits, label_counts, load_cifar10, load_imdb, pixel_mean_std, text_encoder, token_stats,
};
use serde_json::{Value, json};

/// The datasets of the study.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Dataset {
    /// CIFAR-10 (`uoft-cs/cifar10`).
    Cifar10,
    /// IMDB (`stanfordnlp/imdb`).
    Imdb,
}

/// Arguments of `cargo xtask data`.
#[derive(clap::Args)]
pub struct Args {
    /// The dataset.
    #[arg(value_enum)]
    dataset: Dataset,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Fraction of the training file held out for validation.
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// Seed of the validation split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Revision (branch, tag or commit) of the dataset repository.
    #[arg(long, default_value = "main")]
    revision: String,
    /// IMDB: the BERT-family checkpoint whose tokenizer is used.
    #[arg(long, default_value = DEFAULT_CHECKPOINT)]
    checkpoint: String,
    /// IMDB: sequence length.
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    /// Stratified caps on the splits' sizes.
    #[arg(long)]
    limit_train: Option<usize>,
    /// See `--limit-train`.
    #[arg(long)]
    limit_val: Option<usize>,
    /// See `--limit-train`.
    #[arg(long)]
    limit_test: Option<usize>,
}

fn split_summary<T>(splits: &Splits<T>, labels: impl Fn(&T) -> &[u8], classes: usize) -> Value {
    let one =
        |t: &T| json!({ "n": labels(t).len(), "label_counts": label_counts(labels(t), classes) });
    json!({ "train": one(&splits.train), "val": one(&splits.val), "test": one(&splits.test) })
}

/// Reports a step of the work on stderr (stdout carries the summary).
fn progress(started: std::time::Instant, what: &str) {
    eprintln!("[{:6.1} s] {what}", started.elapsed().as_secs_f64());
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let started = std::time::Instant::now();
    let hub = Hub::from_env();
    let config = SplitConfig {
        val_fraction: args.val_fraction,
        seed: args.seed,
        limit: Limits {
            train: args.limit_train,
            val: args.limit_val,
            test: args.limit_test,
        },
    };
    let mut source = match args.dataset {
        Dataset::Cifar10 => Source::cifar10(),
        Dataset::Imdb => Source::imdb(),
    };
    source.repo = source.repo.at(&args.revision);
    let summary = match args.dataset {
        Dataset::Cifar10 => {
            progress(
                started,
                &format!("loading {} (decoding PNGs) …", source.repo.id),
            );
            let splits = load_cifar10(&hub, &source, &config)?;
            progress(started, "computing pixel statistics …");
            let (mean, std) = pixel_mean_std(&[&splits.train, &splits.val]);
            json!({
                "dataset": "cifar10",
                "repo": source.repo.id,
                "classes": CIFAR10_CLASSES,
                "splits": split_summary(&splits, |s| &s.labels, CIFAR10_CLASSES.len()),
                "pixel_mean": mean,
                "pixel_std": std,
            })
        }
        Dataset::Imdb => {
            progress(started, &format!("loading {} …", source.repo.id));
            let splits = load_imdb(&hub, &source, &config)?;
            progress(
                started,
                &format!(
                    "tokenizing {} reviews with {} …",
                    splits.train.len() + splits.val.len(),
                    args.checkpoint
                ),
            );
            let encoder = text_encoder(&hub, &RepoRef::model(&args.checkpoint), args.max_len)?;
            let mut lengths = encoder.lengths(&splits.train)?;
            lengths.extend(encoder.lengths(&splits.val)?);
            let (mean, max, truncated) = token_stats(&lengths, args.max_len);
            json!({
                "dataset": "imdb",
                "repo": source.repo.id,
                "checkpoint": args.checkpoint,
                "max_len": args.max_len,
                "classes": IMDB_CLASSES,
                "splits": split_summary(&splits, |s| &s.labels, IMDB_CLASSES.len()),
                "tokens_mean": mean,
                "tokens_max": max,
                "truncated_fraction": truncated,
            })
        }
    };
    progress(started, "done");
    if args.json {
        println!("{summary}");
    } else {
        print_table(&summary);
    }
    Ok(())
}

fn print_table(summary: &Value) {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    println!(
        "dataset {} ({})",
        text(&summary["dataset"]),
        text(&summary["repo"])
    );
    let classes: Vec<String> = summary["classes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let widths: Vec<usize> = classes.iter().map(|c| c.len().max(5)).collect();
    let row = |cells: Vec<String>| -> String {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("{:<6} {:>6}  {}", "split", "n", row(classes.clone()));
    for split in ["train", "val", "test"] {
        let s = &summary["splits"][split];
        let counts = s["label_counts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(Value::to_string)
            .collect();
        println!("{split:<6} {:>6}  {}", s["n"].to_string(), row(counts));
    }
    for key in [
        "pixel_mean",
        "pixel_std",
        "tokens_mean",
        "tokens_max",
        "truncated_fraction",
    ] {
        if !summary[key].is_null() {
            println!("{key}: {}", summary[key]);
        }
    }
}
