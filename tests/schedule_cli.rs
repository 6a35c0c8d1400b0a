//! `cargo xtask schedule` end to end: the rates it prints equal PyTorch's recorded traces, per
//! epoch and per step, with and without metrics, lengths relative to the run resolved from
//! `--epochs` and `--steps-per-epoch`; a replayed run gives back its own rates; bad input is
//! named.

mod common;

use lrlab_schedulers::{Interval, SchedulerConfig};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/schedulers/tests/fixtures/pytorch_traces.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("schedule")
        .args(args)
        .output()
        .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The `[scheduler]` file for a JSON configuration.
fn scheduler_toml(config: &Value) -> String {
    toml::to_string(&serde_json::json!({ "scheduler": config })).unwrap()
}

/// A metrics CSV giving `metrics[i]` as every epoch-end signal of epoch `i + 1`.
fn metrics_csv(metrics: &[Value]) -> String {
    let mut csv = String::from("epoch,lr,train_loss,train_acc,val_loss,val_acc\n");
    for (i, m) in metrics.iter().enumerate() {
        let v = match m {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        writeln!(csv, "{},0.5,{v},{v},{v},{v}", i + 1).unwrap();
    }
    csv
}

/// Parses `step,epoch,lr` rows.
fn rows(output: &Output) -> Vec<(u64, u64, f64)> {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step,epoch,lr"));
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

fn close(ours: f64, theirs: f64) -> bool {
    ours == theirs || (ours - theirs).abs() <= 1e-12 * ours.abs().max(theirs.abs())
}

#[test]
fn prints_pytorchs_rate_for_every_step_of_every_recorded_trace() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture();
    let cases = fixture["cases"].as_array().unwrap();
    for (index, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let lrs: Vec<f64> = case["lrs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let clock = serde_json::from_value::<SchedulerConfig>(case["config"].clone())
            .unwrap()
            .clock();
        let per_step = clock == Interval::Step;
        let config = write(
            dir.path(),
            &format!("{index}.toml"),
            &scheduler_toml(&case["config"]),
        );
        let base_lr = case["base_lr"].to_string();
        // The run that relative lengths are shares of; otherwise per-epoch schedules over 3
        // steps per epoch, per-step ones over 1 step per epoch.
        let run = |key: &str| case["run"][key].as_u64().map(|n| n as usize);
        let (epochs, steps_per_epoch) = match (run("epochs"), run("steps_per_epoch")) {
            (Some(epochs), Some(steps_per_epoch)) => (epochs, steps_per_epoch),
            _ if per_step => (lrs.len(), 1),
            _ => (lrs.len(), 3),
        };
        let (epochs_arg, steps_arg) = (epochs.to_string(), steps_per_epoch.to_string());
        let mut args = vec![
            "--scheduler",
            config.to_str().unwrap(),
            "--epochs",
            &epochs_arg,
            "--steps-per-epoch",
            &steps_arg,
            "--base-lr",
            &base_lr,
        ];
        let metrics_path;
        if let Some(metrics) = case.get("metrics").and_then(Value::as_array) {
            metrics_path = write(dir.path(), &format!("{index}.csv"), &metrics_csv(metrics));
            args.extend(["--metrics", metrics_path.to_str().unwrap()]);
        }
        let rows = rows(&xtask(&args));
        assert_eq!(rows.len(), epochs * steps_per_epoch, "{name}");
        for (i, &(step, epoch, lr)) in rows.iter().enumerate() {
            assert_eq!(step, i as u64, "{name}");
            assert_eq!(epoch, (i / steps_per_epoch) as u64 + 1, "{name}");
            let tick = if per_step { i } else { i / steps_per_epoch };
            if tick >= lrs.len() {
                break;
            }
            assert!(
                close(lr, lrs[tick]),
                "{name}, step {step}: {lr} vs torch {}",
                lrs[tick]
            );
        }
    }
}

#[test]
fn a_per_step_schedule_moves_within_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture();
    let case = fixture["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["config"]["kind"] == "one_cycle" && c["config"]["total_steps"] == 100)
        .unwrap();
    let config = write(
        dir.path(),
        "one_cycle.toml",
        &scheduler_toml(&case["config"]),
    );
    let rows = rows(&xtask(&[
        "--scheduler",
        config.to_str().unwrap(),
        "--epochs",
        "20",
        "--steps-per-epoch",
        "5",
    ]));
    assert_eq!(rows.len(), 100);
    for (step, epoch, lr) in rows {
        assert_eq!(epoch, step / 5 + 1);
        assert!(
            close(lr, case["lrs"][step as usize].as_f64().unwrap()),
            "step {step}"
        );
    }
}

#[test]
fn prints_rates_with_full_precision() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "exp.toml",
        "[scheduler]\nkind = 'exponential'\ngamma = 0.3\n",
    );
    let rows = rows(&xtask(&[
        "--scheduler",
        config.to_str().unwrap(),
        "--epochs",
        "40",
        "--base-lr",
        "0.7",
    ]));
    let mut lr = 0.7f64;
    for (_, _, printed) in rows {
        assert_eq!(printed.to_bits(), lr.to_bits());
        lr *= 0.3;
    }
}

#[test]
fn bad_input_is_named() {
    const PLATEAU: &str = "[scheduler]\nkind = 'plateau'\npatience = 1\n";
    // (scheduler file, metrics file, epochs, what stderr must say); `{toml}` and `{csv}` stand
    // for the files' paths.
    let cases: &[(&str, Option<&str>, &str, &[&str])] = &[
        (
            "[scheduler]\nkind = 'step'\nstep_size = 2\ngama = 0.5\n",
            None,
            "3",
            &["{toml}", "unknown field `gama`"],
        ),
        (
            "[scheduler]\nkind = 'cosine'\nt_max = 0\n",
            None,
            "3",
            &["{toml}: [scheduler] `t_max`: must be ≥ 1, got 0"],
        ),
        (
            "kind = 'cosine'\nt_max = 3\n",
            None,
            "3",
            &["{toml}: no [scheduler] table", "`[scheduler]` then `kind"],
        ),
        (
            "[scheduler]\nkind = 'cosine'\nt_max = 'steps'\n",
            None,
            "3",
            &[
                "{toml}: [scheduler] `t_max`: \"steps\" counts steps",
                "\"epochs\"",
            ],
        ),
        (
            "[scheduler]\nkind = 'step'\nstep_size = '30'\n",
            None,
            "3",
            &["{toml}", "\"30\"", "share of the run such as \"30%\""],
        ),
        (
            PLATEAU,
            None,
            "3",
            &["{toml}", "needs `val_loss`", "--metrics"],
        ),
        (
            PLATEAU,
            Some("epoch,train_loss\n1,0.5\n2,0.4\n"),
            "3",
            &["{csv}: no `val_loss` column"],
        ),
        (
            PLATEAU,
            Some("val_loss\n0.5\n"),
            "3",
            &[
                "{csv}: no `epoch` column (its header has: val_loss)",
                "`epoch,val_loss`",
            ],
        ),
        (
            PLATEAU,
            Some(""),
            "3",
            &["{csv}: no `epoch` column (the file is empty)"],
        ),
        (
            PLATEAU,
            Some("epoch,val_loss\n1,0.5\n3,0.4\n"),
            "4",
            &["{csv}: no row for epoch 2"],
        ),
        (
            PLATEAU,
            Some("epoch,val_loss\n1,0.5\n2,low\n"),
            "3",
            &["{csv}: row 3, column `val_loss`", "\"low\""],
        ),
        (
            PLATEAU,
            Some("epoch,val_loss\n0,0.5\n"),
            "3",
            &["{csv}: row 2, column `epoch`"],
        ),
        (
            PLATEAU,
            Some("epoch,val_loss\n1,0.5\n2,\n"),
            "3",
            &["{csv}: epoch 2 has no `val_loss` value"],
        ),
        (
            PLATEAU,
            Some("epoch,val_loss\n1,0.5\n1,0.4\n"),
            "2",
            &["{csv}: row 3: epoch 1 appears twice"],
        ),
        (
            "[scheduler]\nkind = 'hypergradient'\nmax_lr = 0.1\n",
            Some("epoch\n1\n"),
            "3",
            &[
                "{toml}",
                "needs `grad_cos` at every optimizer step",
                "--run DIR",
            ],
        ),
        (PLATEAU, None, "0", &["--epochs"]),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (toml, csv, epochs, fragments)) in cases.iter().enumerate() {
        let toml_path = write(dir.path(), &format!("s{i}.toml"), toml);
        let csv_path = csv.map(|text| write(dir.path(), &format!("m{i}.csv"), text));
        let mut args = vec![
            "--scheduler",
            toml_path.to_str().unwrap(),
            "--epochs",
            epochs,
        ];
        if let Some(path) = &csv_path {
            args.extend(["--metrics", path.to_str().unwrap()]);
        }
        let output = xtask(&args);
        assert!(!output.status.success(), "case {i} should fail");
        assert!(
            output.stdout.is_empty(),
            "case {i}: nothing on stdout when failing"
        );
        let err = String::from_utf8(output.stderr).unwrap();
        for fragment in *fragments {
            let fragment = fragment.replace("{toml}", toml_path.to_str().unwrap());
            let fragment = match &csv_path {
                Some(path) => fragment.replace("{csv}", path.to_str().unwrap()),
                None => fragment,
            };
            assert!(
                err.contains(&fragment),
                "case {i}: {err:?} lacks {fragment:?}"
            );
        }
    }
}

#[test]
fn metrics_given_to_a_schedule_that_reads_none_are_left_unread() {
    let dir = tempfile::tempdir().unwrap();
    let cosine = write(
        dir.path(),
        "c.toml",
        "[scheduler]\nkind = 'cosine'\nt_max = 3\n",
    );
    let empty = write(dir.path(), "m.csv", "");
    let output = xtask(&[
        "--scheduler",
        cosine.to_str().unwrap(),
        "--epochs",
        "3",
        "--metrics",
        empty.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("reads no metrics") && stderr.contains("m.csv"),
        "{stderr}"
    );
    assert_eq!(rows(&output).len(), 3);
}

#[test]
fn the_last_epochs_metrics_are_optional() {
    let dir = tempfile::tempdir().unwrap();
    let plateau = write(
        dir.path(),
        "p.toml",
        "[scheduler]\nkind = 'plateau'\npatience = 0\n",
    );
    let metrics = write(dir.path(), "m.csv", "val_loss,epoch\n1.0,1\n1.0,2\n");
    let rows = rows(&xtask(&[
        "--scheduler",
        plateau.to_str().unwrap(),
        "--epochs",
        "3",
        "--metrics",
        metrics.to_str().unwrap(),
        "--base-lr",
        "0.5",
    ]));
    let lrs: Vec<f64> = rows.iter().map(|r| r.2).collect();
    assert_eq!(lrs, [0.5, 0.5, 0.05]);
}

#[test]
fn a_replayed_run_gives_the_rates_its_own_schedule_gave() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let trained = common::xtask(&[
        "experiment",
        "cifar10",
        "--preset",
        "smoke",
        "--arms",
        "hypergradient,greedy",
        "--seeds",
        "0",
        "--epochs",
        "3",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/schedules");
    let replay = |schedule: &str, arm: &str| {
        let run = out.join("cifar10").join(arm).join("seed-0");
        let output = xtask(&[
            "--scheduler",
            configs.join(schedule).to_str().unwrap(),
            "--run",
            run.to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        assert_eq!(text.lines().next(), Some("step,epoch,lr,run_lr"));
        text.lines()
            .skip(1)
            .map(|line| {
                let f: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
                (f[2], f[3])
            })
            .collect::<Vec<_>>()
    };
    // The shipped configuration of the arm, replayed on its run's recorded signals (every
    // step's gradient agreement), gives back the very rates the run trained with.
    let hypergradient = replay("hypergradient.toml", "hypergradient");
    assert_eq!(hypergradient.len(), 12, "3 epochs of 4 steps");
    assert!(
        hypergradient.iter().all(|(ours, theirs)| ours == theirs),
        "{hypergradient:?}"
    );
    assert!(
        hypergradient.iter().any(|(lr, _)| *lr != 1e-3),
        "the rate moved"
    );
    let greedy = replay("greedy.toml", "greedy");
    assert!(
        greedy.iter().all(|(ours, theirs)| ours == theirs),
        "{greedy:?}"
    );
    // A run that did not record the agreement cannot feed the hypergradient.
    let run = out.join("cifar10/greedy/seed-0");
    let output = xtask(&[
        "--scheduler",
        configs.join("hypergradient.toml").to_str().unwrap(),
        "--run",
        run.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("no `grad_cos`"),
        "{stderr}"
    );
}
