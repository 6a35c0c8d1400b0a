//! `cargo xtask analyze`: the runs of every experiment turned into a report per experiment
//! (tables, tests, plots), and the comparisons as JSON on request.

use std::path::{Path, PathBuf};

use anyhow::Result;
use lrlab_analysis::{Resampler, Settings, analyze, read_runs, write_report};

use crate::values;

/// Arguments of `cargo xtask analyze`.
#[derive(clap::Args)]
pub struct Args {
    /// Folders of runs (a runs root, an experiment folder or a run); several are merged, as
    /// shards of one study.
    #[arg(long = "runs", default_value = "runs", num_args = 1..)]
    runs: Vec<PathBuf>,
    /// Where reports go: `<out>/<experiment>/report.md` and its tables and plots (default
    /// `reports`, or `reports-<preset>` for the one folder `runs-<preset>`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The baseline arms every other arm is compared with (default: each experiment's
    /// `baselines`, recorded in its runs).
    #[arg(long = "baseline", num_args = 1..)]
    baselines: Vec<String>,
    /// The validation accuracy that counts as converged (default: the experiment's `threshold`).
    #[arg(allow_negative_numbers = true, long, value_parser = values::share)]
    threshold: Option<f64>,
    /// Print the comparisons as a JSON array on stdout.
    #[arg(long)]
    json: bool,
    /// Bootstrap resamples where the bootstrap is not enumerated exactly.
    #[arg(allow_negative_numbers = true, long, default_value_t = 10_000)]
    resamples: usize,
    /// The seed of drawn bootstrap resamples.
    #[arg(allow_negative_numbers = true, long, default_value_t = 0)]
    seed: u64,
}

impl Args {
    /// The folder of the reports.
    fn out(&self) -> PathBuf {
        if let Some(out) = &self.out {
            return out.clone();
        }
        let preset = match self.runs.as_slice() {
            [one] => one
                .file_name()
                .and_then(|name| name.to_str()?.strip_prefix("runs-")),
            _ => None,
        };
        preset.map_or_else(|| "reports".into(), |p| format!("reports-{p}").into())
    }
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    if args.resamples < 1000 {
        anyhow::bail!(
            "--resamples {}: use at least 1000 (10,000 recommended)",
            args.resamples
        );
    }
    if let [only] = args.runs.as_slice()
        && only == Path::new("runs")
        && !only.exists()
    {
        let others = preset_folders();
        if !others.is_empty() {
            anyhow::bail!(
                "runs: no such folder; the presets' runs are in {}: pass it with --runs",
                others.join(", ")
            );
        }
    }
    let runs = read_runs(&args.runs)?;
    let settings = Settings {
        threshold: args.threshold,
        baselines: args.baselines.clone(),
        resampler: Resampler {
            resamples: args.resamples,
            seed: args.seed,
        },
        ..Settings::default()
    };
    let analysis = analyze(&runs, &settings)?;
    for experiment in &analysis.experiments {
        let folder = args.out().join(&experiment.name);
        write_report(experiment, &settings, &folder)?;
        let counted = experiment.runs.iter().filter(|r| r.counted).count();
        eprintln!(
            "{}: {} runs ({counted} counted), {} arms, {} comparisons → {}",
            experiment.name,
            experiment.runs.len(),
            experiment.arms.len(),
            experiment.comparisons.len(),
            folder.join("report.md").display()
        );
    }
    if args.json {
        let comparisons: Vec<_> = analysis
            .experiments
            .iter()
            .flat_map(|e| &e.comparisons)
            .collect();
        println!("{}", serde_json::to_string_pretty(&comparisons)?);
    }
    Ok(())
}

/// The `runs-<preset>` folders of the current directory, by name.
fn preset_folders() -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(".")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.starts_with("runs-"))
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn out_of(command: &[&str]) -> PathBuf {
        let cli = Cli::parse_from([&["analyze"], command].concat());
        cli.args.out()
    }

    #[test]
    fn reports_go_beside_the_runs_of_a_preset() {
        assert_eq!(out_of(&[]), PathBuf::from("reports"));
        assert_eq!(
            out_of(&["--runs", "runs-smoke"]),
            PathBuf::from("reports-smoke")
        );
        assert_eq!(
            out_of(&["--runs", "x/runs-bert-lr"]),
            PathBuf::from("reports-bert-lr")
        );
        assert_eq!(
            out_of(&["--runs", "runs-a", "runs-b"]),
            PathBuf::from("reports")
        );
        assert_eq!(
            out_of(&["--runs", "runs-smoke", "--out", "r"]),
            PathBuf::from("r")
        );
    }
}
