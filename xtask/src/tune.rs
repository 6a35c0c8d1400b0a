//! `cargo xtask tune cifar10|imdb`: the same tuning budget for every arm. Each arm is offered K
//! settings — the arm as written, then draws from the search space its `[tune.<arm>]` table
//! declares — each trained once on a tuning seed apart from the study's seeds and chosen by
//! validation accuracy alone; the choices are written as an experiment file (preset `tuned`)
//! that `experiment` runs with the study's seeds.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use indexmap::IndexMap;
use lrlab_runs::{RunDir, Status, TunedArm, Tuning};
use lrlab_schedulers::SchedulerConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::experiment::{self, CommonArgs, Experiment, Origin, Overrides, Space};

/// Arguments of `cargo xtask tune`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Settings offered to every arm, instead of the file's `tuning.budget`.
    #[arg(allow_negative_numbers = true, long)]
    budget: Option<u32>,
    /// The seed settings are drawn with and trained on, instead of the file's `tuning.seed`.
    #[arg(allow_negative_numbers = true, long)]
    seed: Option<u64>,
    /// The folder of the search's runs, `<out>/<experiment>/<arm>-t<k>/seed-<seed>/`, and of
    /// the tuned experiment file `<out>/<experiment>/tuned.toml`; default `tune` for the `full`
    /// preset and `tune-<preset>` for the others.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One setting of one arm: the arm's schedule with some keys drawn.
struct Trial {
    /// The arm.
    arm: String,
    /// Its name as an arm of the search, `<arm>-t<k>`.
    name: String,
    /// The schedule.
    schedule: SchedulerConfig,
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let common = &args.common;
    let path = common.experiment_file()?;
    let (table, origin) = Experiment::merged(&path, &common.preset, &Overrides::default())?;
    let mut study = Experiment::from_table(table.clone(), &origin)?;
    experiment::settle(common.task, &mut study, &origin)?;
    let (budget, seed) = budget_and_seed(args, &study, &origin)?;
    let trials = draw_trials(&study, &origin, budget, seed)?;
    let mut search = study.clone();
    search.seeds = vec![seed];
    search.baselines = Vec::new();
    search.references = Vec::new();
    search.arms = trials
        .iter()
        .map(|t| (t.name.clone(), t.schedule.clone()))
        .collect();
    let execution = common.execution(args.out.as_ref(), "tune");
    let root = experiment::execute(search, &origin, None, &execution, started)?;
    let Some(chosen) = choose(&trials, &execution.out, &study.experiment, seed)? else {
        return Ok(());
    };
    let tuning = Tuning {
        budget,
        seed,
        source: format!("{} (preset `{}`)", file_name(&path), common.preset),
        arms: chosen
            .iter()
            .map(|(arm, c)| (arm.clone(), c.record.clone()))
            .collect(),
    };
    let written = root.join("tuned.toml");
    write_tuned(table, &chosen, &tuning, &written)?;
    print_choices(&chosen, &tuning, &written);
    Ok(())
}

/// The name of the experiment file, which the tuned experiment records as its source (a path
/// would differ between machines sharing the runs).
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The budget and seed: the flags, else the file's `[tuning]`; the seed must not be a study's.
fn budget_and_seed(args: &Args, study: &Experiment, origin: &Origin) -> Result<(u32, u64)> {
    let file = study.tuning.as_ref();
    let budget = args.budget.or(file.map(|t| t.budget)).ok_or_else(|| {
        origin.error(
            "tuning.budget",
            "missing: add `[tuning] budget = K` or pass --budget K",
        )
    })?;
    let seed = args.seed.or(file.map(|t| t.seed)).ok_or_else(|| {
        origin.error(
            "tuning.seed",
            "missing: add `[tuning] seed = S` or pass --seed S",
        )
    })?;
    if budget == 0 {
        bail!("{}", origin.error("tuning.budget", "must be at least 1"));
    }
    if study.seeds.contains(&seed) {
        bail!(
            "{}",
            origin.error(
                "tuning.seed",
                format!(
                    "{seed} is one of the study's seeds {:?}: settings chosen on a seed the \
                     study then reports would favour them; pick another",
                    study.seeds
                )
            )
        );
    }
    Ok((budget, seed))
}

/// Every arm's settings: the arm as written, then `budget − 1` draws from its space with a
/// generator seeded by `seed` and the arm's name (so one arm's draws do not depend on the
/// others'); a setting drawn twice is trained once.
fn draw_trials(study: &Experiment, origin: &Origin, budget: u32, seed: u64) -> Result<Vec<Trial>> {
    let mut trials = Vec::new();
    for (arm, schedule) in &study.arms {
        let space = study.tune.get(arm);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ name_hash(arm));
        let mut settings = vec![schedule.clone()];
        for _ in 1..budget {
            let Some(space) = space.filter(|s| !s.is_empty()) else {
                break;
            };
            let drawn = draw(schedule, space, &mut rng)
                .map_err(|(key, e)| origin.error(&format!("tune.{arm}.{key}"), e))?;
            if !settings.contains(&drawn) {
                settings.push(drawn);
            }
        }
        for (k, schedule) in settings.into_iter().enumerate() {
            trials.push(Trial {
                arm: arm.clone(),
                name: format!("{arm}-t{k}"),
                schedule,
            });
        }
    }
    Ok(trials)
}

/// FNV-1a of an arm's name: a seed offset that is the same on every machine and every run.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `schedule` with every key of `space` drawn; an error names the key.
fn draw(
    schedule: &SchedulerConfig,
    space: &IndexMap<String, Space>,
    rng: &mut ChaCha8Rng,
) -> std::result::Result<SchedulerConfig, (String, String)> {
    let mut table = match toml::Value::try_from(schedule) {
        Ok(toml::Value::Table(table)) => table,
        other => unreachable!("a schedule serializes as a table, not {other:?}"),
    };
    for (key, values) in space {
        let value = sample(values, rng).map_err(|e| (key.clone(), e))?;
        set_path(&mut table, key, value).map_err(|e| (key.clone(), e))?;
    }
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        (key, e.into_inner().to_string())
    })
}

/// One value of a space.
fn sample(space: &Space, rng: &mut ChaCha8Rng) -> std::result::Result<toml::Value, String> {
    match space {
        Space::Choice(values) if values.is_empty() => Err("an empty list of values".into()),
        Space::Choice(values) => Ok(values[rng.random_range(0..values.len())].clone()),
        Space::Range(r)
            if !r.low.is_finite()
                || !r.high.is_finite()
                || r.low > r.high
                || (r.log && r.low <= 0.0) =>
        {
            Err(format!(
                "low {} and high {} must satisfy low ≤ high (and 0 < low with log = true)",
                r.low, r.high
            ))
        }
        Space::Range(r) => {
            let u: f64 = rng.random();
            let x = match r.log {
                true => (r.low.ln() + u * (r.high.ln() - r.low.ln())).exp(),
                false => r.low + u * (r.high - r.low),
            };
            Ok(match r.integer {
                true => toml::Value::Integer(x.round().clamp(r.low.ceil(), r.high.floor()) as i64),
                false => toml::Value::Float(x),
            })
        }
    }
}

/// Sets the dotted `key` (`inner.patience`) of `table`.
fn set_path(
    table: &mut toml::Table,
    key: &str,
    value: toml::Value,
) -> std::result::Result<(), String> {
    match key.split_once('.') {
        None => {
            table.insert(key.to_owned(), value);
            Ok(())
        }
        Some((head, rest)) => match table.get_mut(head) {
            Some(toml::Value::Table(inner)) => set_path(inner, rest, value),
            _ => Err(format!("the schedule has no table `{head}`")),
        },
    }
}

/// An arm's chosen setting.
struct Chosen {
    /// The schedule.
    schedule: SchedulerConfig,
    /// The trial's name.
    trial: String,
    /// What the tuned file records.
    record: TunedArm,
}

/// Per arm, the setting with the best validation accuracy (the earlier on a tie), once every
/// trial has finished; `None` (and a message) while some are still to run.
fn choose(
    trials: &[Trial],
    out: &Path,
    experiment: &str,
    seed: u64,
) -> Result<Option<IndexMap<String, Chosen>>> {
    let mut chosen: IndexMap<String, Chosen> = IndexMap::new();
    let mut unfinished = 0;
    for trial in trials {
        let dir = RunDir::in_layout(out, experiment, &trial.name, seed);
        let status = dir.read_record()?.map(|r| r.status);
        if !status.is_some_and(Status::is_outcome) {
            unfinished += 1;
            continue;
        }
        let val_acc = dir
            .read_epochs()?
            .iter()
            .map(|e| e.val_acc)
            .filter(|a| a.is_finite())
            .fold(f64::NEG_INFINITY, f64::max);
        let entry = chosen.entry(trial.arm.clone()).or_insert_with(|| Chosen {
            schedule: trial.schedule.clone(),
            trial: trial.name.clone(),
            record: TunedArm { trials: 0, val_acc },
        });
        entry.record.trials += 1;
        if val_acc > entry.record.val_acc {
            entry.schedule = trial.schedule.clone();
            entry.trial = trial.name.clone();
            entry.record.val_acc = val_acc;
        }
    }
    if unfinished > 0 {
        eprintln!(
            "{unfinished} of {} settings still to train (other shards, or a stopped run): run \
             `tune` again once they are done to write the tuned experiment",
            trials.len()
        );
        return Ok(None);
    }
    Ok(Some(chosen))
}

/// Writes the tuned experiment: the file as searched (its preset applied), each arm's chosen
/// schedule, the search's record in `[tuned]`, and one preset, `tuned`, that changes nothing.
fn write_tuned(
    mut table: toml::Table,
    chosen: &IndexMap<String, Chosen>,
    tuning: &Tuning,
    path: &Path,
) -> Result<()> {
    for key in ["presets", "tune", "tuning"] {
        table.remove(key);
    }
    let arms = table
        .get_mut("arms")
        .and_then(toml::Value::as_table_mut)
        .ok_or_else(|| anyhow!("the experiment has no [arms] table"))?;
    for (arm, choice) in chosen {
        arms.insert(arm.clone(), toml::Value::try_from(&choice.schedule)?);
    }
    table.insert("tuned".into(), toml::Value::try_from(tuning)?);
    let mut presets = toml::Table::new();
    presets.insert("tuned".into(), toml::Table::new().into());
    table.insert("presets".into(), presets.into());
    let header = format!(
        "# Written by `cargo xtask tune` from {}.\n# Every arm's settings were chosen by \
         validation accuracy from a budget of {} (seed {}).\n# Run it with `cargo xtask \
         experiment <task> --config <this file> --preset tuned`.\n\n",
        tuning.source, tuning.budget, tuning.seed
    );
    let text = header + &toml::to_string(&table)?;
    lrlab_runs::write_atomic(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn print_choices(chosen: &IndexMap<String, Chosen>, tuning: &Tuning, written: &Path) {
    println!();
    println!("budget {} per arm, seed {}", tuning.budget, tuning.seed);
    println!(
        "{:<16} {:>7} {:>12} {:<14} schedule",
        "arm", "trials", "best val acc", "chosen"
    );
    for (arm, c) in chosen {
        let schedule = serde_json::to_string(&c.schedule).unwrap_or_default();
        println!(
            "{arm:<16} {:>7} {:>12.4} {:<14} {schedule}",
            c.record.trials, c.record.val_acc, c.trial
        );
    }
    println!("\nwrote {}", written.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_reproducible_and_stay_in_their_space() {
        let schedule: SchedulerConfig = toml::from_str("kind = 'step'\nstep_size = 3").unwrap();
        let space: IndexMap<String, Space> = toml::from_str(
            "gamma = { low = 0.01, high = 0.5, log = true }\nstep_size = ['20%', 5]",
        )
        .unwrap();
        let draws = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..20)
                .map(|_| draw(&schedule, &space, &mut rng).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(1), draws(1));
        assert_ne!(draws(1), draws(2));
        for config in draws(1) {
            let SchedulerConfig::Step(step) = config else {
                panic!()
            };
            assert!((0.01..=0.5).contains(&step.gamma), "{}", step.gamma);
            let size = step.step_size.to_string();
            assert!(["\"20%\"", "5"].contains(&size.as_str()), "{size}");
        }
    }

    #[test]
    fn a_key_the_schedule_does_not_have_is_an_error_naming_it() {
        let schedule: SchedulerConfig = toml::from_str("kind = 'cosine'\nt_max = 3").unwrap();
        let space: IndexMap<String, Space> = toml::from_str("gama = [0.1]").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (_, message) = draw(&schedule, &space, &mut rng).unwrap_err();
        assert!(message.contains("gama"), "{message}");
    }
}
