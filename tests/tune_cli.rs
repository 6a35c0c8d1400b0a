//! `cargo xtask tune` end to end on the smoke preset: the same budget for every arm, the chain
//! tune → experiment → analyze, the written preset reproducing the choices, and choices that do
//! not change when the test split's labels are poisoned.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::shared_home;
use lrlab_runs::{RunDir, RunRecord};
use lrlab_schedulers::SchedulerConfig;
use polars::prelude::*;

/// `cargo xtask <args>` with `HF_HOME` at `home`, offline; panics with its stderr on failure.
fn xtask_in(home: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("HF_HOME", home)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_HUB_CACHE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "`{}`: {stderr}", args.join(" "));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Tunes the cifar10 smoke preset into `out` with the budget given; returns the tuned file.
fn tune(home: &Path, out: &Path, budget: u32) -> PathBuf {
    let budget = budget.to_string();
    let out_arg = out.to_str().unwrap();
    xtask_in(
        home,
        &[
            "tune", "cifar10", "--preset", "smoke", "--budget", &budget, "--out", out_arg,
        ],
    );
    out.join("cifar10/tuned.toml")
}

/// Every run under `root`, with its record.
fn records(root: &Path) -> Vec<(RunDir, RunRecord)> {
    let dirs = RunDir::find_under(root).unwrap();
    dirs.into_iter()
        .map(|dir| {
            let record = dir.read_record().unwrap().unwrap();
            (dir, record)
        })
        .collect()
}

/// The best validation accuracy of a run.
fn best_val_acc(dir: &RunDir) -> f64 {
    let epochs = dir.read_epochs().unwrap();
    epochs
        .iter()
        .map(|e| e.val_acc)
        .fold(f64::NEG_INFINITY, f64::max)
}

#[test]
fn tune_then_experiment_then_analyze_with_one_budget_for_every_arm() {
    let scratch = tempfile::tempdir().unwrap();
    let (search, study) = (scratch.path().join("tune"), scratch.path().join("runs"));
    let tuned = tune(&shared_home(), &search, 3);
    let trials = records(&search);

    // The same budget for every arm: the arm as written and two draws (constant has no space).
    let arms = [
        "constant",
        "step",
        "cosine",
        "plateau",
        "greedy",
        "hypergradient",
        "trend_gap",
    ];
    for arm in arms {
        let prefix = format!("{arm}-t");
        let count = trials
            .iter()
            .filter(|(_, r)| r.spec.arm.starts_with(&prefix))
            .count();
        assert_eq!(count, if arm == "constant" { 1 } else { 3 }, "{arm}");
    }
    assert!(
        trials.iter().all(|(_, r)| r.spec.seed == 1000),
        "tuning seed"
    );

    // Running tune again trains nothing and writes the same file.
    let first = fs::read_to_string(&tuned).unwrap();
    tune(&shared_home(), &search, 3);
    assert_eq!(fs::read_to_string(&tuned).unwrap(), first);

    // The written preset runs with the study's seeds; each arm's schedule is its best trial's.
    let config = tuned.to_str().unwrap();
    let out = study.to_str().unwrap();
    let args = [
        "experiment",
        "cifar10",
        "--config",
        config,
        "--preset",
        "tuned",
        "--out",
        out,
    ];
    xtask_in(&shared_home(), &args);
    let runs = records(&study);
    assert_eq!(runs.len(), arms.len() * 3);
    for (_, run) in &runs {
        assert!([0, 1, 2].contains(&run.spec.seed));
        let arm = &run.spec.arm;
        let of_arm: Vec<_> = trials
            .iter()
            .filter(|(_, r)| r.spec.arm.rsplit_once("-t").unwrap().0 == arm)
            .collect();
        let best = of_arm
            .iter()
            .map(|(d, _)| best_val_acc(d))
            .fold(f64::MIN, f64::max);
        let chosen: Vec<&SchedulerConfig> = of_arm
            .iter()
            .filter(|(d, _)| best_val_acc(d) == best)
            .map(|(_, r)| &r.spec.scheduler)
            .collect();
        assert_eq!(
            chosen[0], &run.spec.scheduler,
            "{arm}: the first best trial's schedule"
        );
        assert!(
            run.analysis.tuning.is_some(),
            "{arm}: the run records the tuning"
        );
    }

    let reports = scratch.path().join("reports");
    xtask_in(
        &shared_home(),
        &["analyze", "--runs", out, "--out", reports.to_str().unwrap()],
    );
    let report = fs::read_to_string(reports.join("cifar10/report.md")).unwrap();
    assert!(report.contains("same budget of 3 settings"), "{report}");
    assert!(report.contains("seed 1000"), "{report}");
}

/// A copy of the shared cache's CIFAR-10 with every test label moved to the next class.
fn poisoned_home(root: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            match path.is_dir() {
                true => copy(&path, &target),
                false => {
                    fs::copy(&path, &target).unwrap();
                }
            }
        }
    }
    let repo = "hub/datasets--uoft-cs--cifar10";
    let home = root.join("poisoned");
    copy(&shared_home().join(repo), &home.join(repo));
    let snapshot = fs::read_dir(home.join(repo).join("snapshots"))
        .unwrap()
        .next();
    let test = snapshot
        .unwrap()
        .unwrap()
        .path()
        .join("plain_text/test-00000-of-00001.parquet");
    let mut frame = ParquetReader::new(fs::File::open(&test).unwrap())
        .finish()
        .unwrap();
    let labels = frame
        .column("label")
        .unwrap()
        .as_materialized_series()
        .clone();
    let shifted = ((&labels + 1) % 10).with_name("label".into());
    frame.replace("label", shifted.into_column()).unwrap();
    fs::remove_file(&test).unwrap();
    ParquetWriter::new(fs::File::create(&test).unwrap())
        .finish(&mut frame)
        .unwrap();
    home
}

#[test]
fn choices_do_not_change_when_the_test_labels_are_poisoned() {
    let scratch = tempfile::tempdir().unwrap();
    let clean = tune(&shared_home(), &scratch.path().join("clean"), 3);
    let home = poisoned_home(scratch.path());
    let poisoned = tune(&home, &scratch.path().join("poisoned"), 3);
    assert_eq!(
        fs::read_to_string(&clean).unwrap(),
        fs::read_to_string(&poisoned).unwrap(),
        "the tuned experiments differ"
    );
    // The poison took: the trials' test accuracies differ, their validation accuracies do not.
    let test_accs = |root: &Path| {
        let mut accs: Vec<(String, Vec<Option<f64>>, f64)> = records(root)
            .into_iter()
            .map(|(dir, record)| {
                let epochs = dir.read_epochs().unwrap();
                let test = epochs.iter().map(|e| e.test_acc).collect();
                (record.spec.arm, test, best_val_acc(&dir))
            })
            .collect();
        accs.sort_by(|a, b| a.0.cmp(&b.0));
        accs
    };
    let (a, b) = (
        test_accs(&scratch.path().join("clean")),
        test_accs(&scratch.path().join("poisoned")),
    );
    assert_eq!(a.len(), b.len());
    assert!(
        a.iter().zip(&b).all(|(x, y)| x.0 == y.0 && x.2 == y.2),
        "validation differs"
    );
    assert!(
        a.iter().zip(&b).any(|(x, y)| x.1 != y.1),
        "the test split was not poisoned"
    );
}
