//! `cargo xtask data cifar10|imdb`: load a task's dataset as a run would and summarise its
//! splits.

use std::num::NonZeroUsize;

use anyhow::Result;
use lrlab_datasets::{
    CIFAR10_CLASSES, DEFAULT_CHECKPOINT, Examples, Hub, IMDB_CLASSES, RepoRef, Splits,
    label_counts, pixel_mean_std, token_stats,
};
use lrlab_runs::{DataSettings, SpecError};
use serde_json::{Value, json};

use crate::tasks::{Task, TaskSplits};
use crate::values;

/// Arguments of `cargo xtask data`.
#[derive(clap::Args)]
pub struct Args {
    /// The task whose dataset to load.
    #[arg(value_enum)]
    task: Task,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Fraction of the training file held out for validation.
    #[arg(allow_negative_numbers = true, long, default_value_t = 0.1, value_parser = values::fraction)]
    val_fraction: f64,
    /// Seed of the validation split.
    #[arg(allow_negative_numbers = true, long, default_value_t = 0)]
    seed: u64,
    /// Revision (branch, tag or commit) of the dataset repository.
    #[arg(long, default_value = "main")]
    revision: String,
    /// IMDB: the BERT-family checkpoint whose tokenizer is used.
    #[arg(long, default_value = DEFAULT_CHECKPOINT)]
    checkpoint: String,
    /// IMDB: sequence length.
    #[arg(allow_negative_numbers = true, long, default_value_t = 128, value_parser = values::tokens)]
    max_len: usize,
    /// Stratified caps on the splits' sizes.
    #[arg(allow_negative_numbers = true, long)]
    limit_train: Option<NonZeroUsize>,
    /// See `--limit-train`.
    #[arg(allow_negative_numbers = true, long)]
    limit_val: Option<NonZeroUsize>,
    /// See `--limit-train`.
    #[arg(allow_negative_numbers = true, long)]
    limit_test: Option<NonZeroUsize>,
}

fn split_summary(splits: &Splits<&dyn Examples>, classes: usize) -> Value {
    let one = |e: &dyn Examples| json!({ "n": e.len(), "label_counts": label_counts(e.labels(), classes) });
    json!({ "train": one(splits.train), "val": one(splits.val), "test": one(splits.test) })
}

/// A fault of the data settings, named by the flag that set it (`data.limit_train` is
/// `--limit-train`).
fn flag_error(error: SpecError) -> anyhow::Error {
    let flag = error.key.trim_start_matches("data.").replace('_', "-");
    anyhow::anyhow!("--{flag}: {}", error.message)
}

/// Reports a step of the work on stderr (stdout carries the summary).
fn progress(started: std::time::Instant, what: &str) {
    eprintln!("[{:6.1} s] {what}", started.elapsed().as_secs_f64());
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let started = std::time::Instant::now();
    let hub = Hub::from_env();
    let task = args.task;
    let settings = DataSettings {
        revision: args.revision.clone(),
        val_fraction: args.val_fraction,
        split_seed: args.seed,
        limit_train: args.limit_train.map(NonZeroUsize::get),
        limit_val: args.limit_val.map(NonZeroUsize::get),
        limit_test: args.limit_test.map(NonZeroUsize::get),
        max_len: Some(args.max_len),
    };
    settings.check().map_err(flag_error)?;
    let repo = task.source(&args.revision).repo.id;
    progress(started, &format!("loading {repo} (decoding, tokenizing) …"));
    let tokenizer = RepoRef::model(&args.checkpoint);
    let loaded = task.load(&hub, &settings, Some(&tokenizer))?;
    settings.check_sizes(loaded.sizes()).map_err(flag_error)?;
    progress(started, "computing statistics …");
    let splits = split_summary(&loaded.examples(), task.classes());
    let summary = match &loaded.splits {
        TaskSplits::Images(images) => {
            let (mean, std) = pixel_mean_std(&[&images.train, &images.val]);
            json!({
                "dataset": task.name(),
                "repo": repo,
                "classes": CIFAR10_CLASSES,
                "splits": splits,
                "pixel_mean": mean,
                "pixel_std": std,
            })
        }
        TaskSplits::Text(text) => {
            let mut lengths = text.encoder.lengths(&text.reviews.train)?;
            lengths.extend(text.encoder.lengths(&text.reviews.val)?);
            let (mean, max, truncated) = token_stats(&lengths, args.max_len);
            json!({
                "dataset": task.name(),
                "repo": repo,
                "checkpoint": args.checkpoint,
                "max_len": args.max_len,
                "classes": IMDB_CLASSES,
                "splits": splits,
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
