//! `cargo xtask`: lrlab's commands. This binary only parses, wires and prints; the work lives in
//! the library crates.

mod allocator;
mod analyze;
mod checkout;
mod data;
mod device;
mod evaluate;
mod experiment;
mod interrupt;
mod schedule;
mod speed;
mod tasks;
mod tune;
mod values;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "lrlab: a laboratory for learning-rate schedules"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load CIFAR-10 or IMDB as a run would (Hub cache, splits, tokens) and summarise it.
    Data(data::Args),
    /// Train every arm × seed of an experiment (resumable; `--shard I/N` splits it).
    Experiment(experiment::Args),
    /// Loss and accuracy of saved weights on a split (evaluation mode), as JSON.
    Evaluate(evaluate::Args),
    /// The same tuning budget for every arm: settings drawn from each arm's space, chosen by
    /// validation accuracy, written as an experiment file (`<out>/<experiment>/tuned.toml`).
    Tune(tune::Args),
    /// Tables, tests and plots from the runs: `<out>/<experiment>/report.md` (`--json`: comparisons).
    Analyze(analyze::Args),
    /// Preview a schedule, or replay an adaptive one against a logged run, as CSV on stdout.
    Schedule(schedule::Args),
    /// Time lrlab's training step (and with --pytorch PyTorch's, side by side) on the CPU or GPU.
    Speed(speed::Args),
}

fn main() -> ExitCode {
    allocator::configure();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Analyze(args) => analyze::run(&args),
        Command::Data(args) => data::run(&args),
        Command::Evaluate(args) => evaluate::run(&args),
        Command::Experiment(args) => experiment::run(&args),
        Command::Schedule(args) => schedule::run(&args),
        Command::Speed(args) => speed::run(&args),
        Command::Tune(args) => tune::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            match err.downcast_ref::<interrupt::Interrupted>() {
                Some(interrupted) => ExitCode::from(interrupted.exit_status()),
                None => ExitCode::FAILURE,
            }
        }
    }
}
