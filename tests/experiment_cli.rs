//! `cargo xtask experiment` end to end: the smoke protocol of both experiments on the shared
//! Hub cache (two arms × two seeds), killed with SIGKILL mid-way and restarted, refused while
//! another process trains the same run.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::shared_home;
use lrlab_trainer::{RunDir, Status};

fn experiment(out: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .args(["experiment"])
        .args(args)
        .args([
            "--preset",
            "smoke",
            "--arms",
            "constant,cosine",
            "--seeds",
            "0,1",
            "--device",
            "cpu",
        ])
        .arg("--out")
        .arg(out)
        .env("HF_HOME", shared_home())
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_HUB_CACHE");
    command
}

/// Waits until `path` exists (the child must still be running).
fn wait_for(path: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !path.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the experiment ended before {}",
            path.display()
        );
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every run of the protocol is complete with epochs 1..=epochs, once each.
fn assert_protocol_complete(root: &Path, epochs: i64) {
    let mut first_losses = Vec::new();
    for seed in [0, 1] {
        for arm in ["constant", "cosine"] {
            let run = RunDir::new(root.join(arm).join(format!("seed-{seed}")));
            let info = run.info().unwrap().unwrap();
            assert_eq!(info.status, Status::Complete, "{arm} seed {seed}");
            let (rows, steps) = run.metrics().unwrap();
            let numbers: Vec<i64> = rows.iter().map(|r| r.epoch).collect();
            assert_eq!(
                numbers,
                (1..=epochs).collect::<Vec<_>>(),
                "{arm} seed {seed}"
            );
            let step_numbers: Vec<i64> = steps.iter().map(|s| s.step).collect();
            assert_eq!(
                step_numbers,
                (1..=steps.len() as i64).collect::<Vec<_>>(),
                "{arm} seed {seed}"
            );
            assert!(
                !run.path().join(".lock").exists(),
                "{arm} seed {seed}: lock left"
            );
            first_losses.push((seed, steps[0].loss));
        }
    }
    // Same seed: same initial weights and first batch, whatever the arm; another seed differs.
    assert_eq!(first_losses[0].1, first_losses[1].1, "{first_losses:?}");
    assert_eq!(first_losses[2].1, first_losses[3].1, "{first_losses:?}");
    assert_ne!(first_losses[0].1, first_losses[2].1, "{first_losses:?}");
}

#[test]
fn cifar10_smoke_protocol_survives_sigkill_and_refuses_a_second_process() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cifar10");
    let args = ["cifar10", "--epochs", "3"];
    let mut first = experiment(dir.path(), &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let run = root.join("constant/seed-0");
    wait_for(&run.join(".lock"), &mut first);

    let second = experiment(dir.path(), &args).output().unwrap();
    assert!(
        !second.status.success(),
        "a second process trained the same run"
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("is being trained by process"), "{stderr}");

    wait_for(&run.join("epochs.parquet"), &mut first);
    assert!(
        first.try_wait().unwrap().is_none(),
        "the protocol finished before it could be killed"
    );
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    // Killed mid-run, it leaves its lock behind; killed in the instant between two runs, none.
    let left_a_lock = ["constant", "cosine"]
        .iter()
        .flat_map(|arm| [0, 1].map(|seed| root.join(format!("{arm}/seed-{seed}/.lock"))))
        .any(|lock| lock.exists());

    let resumed = experiment(dir.path(), &args).output().unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert_eq!(stderr.contains("stale lock"), left_a_lock, "{stderr}");
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.contains(": complete,")).count(),
        4,
        "{stdout}"
    );
    assert_protocol_complete(&root, 3);
    assert!(RunDir::new(&run).info().unwrap().unwrap().resumed >= 1);

    // Run again: everything is complete and is skipped, not retrained.
    let again = experiment(dir.path(), &args).output().unwrap();
    assert!(again.status.success());
    assert_protocol_complete(&root, 3);
}

#[test]
fn imdb_smoke_protocol_completes() {
    let dir = tempfile::tempdir().unwrap();
    let output = experiment(dir.path(), &["imdb"]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_protocol_complete(&dir.path().join("imdb"), 2);
}

#[test]
fn configuration_errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/cifar10.toml"),
    )
    .unwrap();
    std::fs::write(&config, text.replace("factor = 0.5", "factor = \"half\"")).unwrap();
    let output = experiment(
        dir.path(),
        &["cifar10", "--config", config.to_str().unwrap()],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("bad.toml") && stderr.contains("arms.greedy"),
        "{stderr}"
    );
}
