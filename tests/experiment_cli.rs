//! `cargo xtask experiment` end to end on the shared Hub cache: the smoke protocol of both
//! experiments (two arms × two seeds), killed with SIGKILL mid-way and restarted, refused while
//! another process trains the same run; and what makes a run trustworthy — a run is skipped or
//! resumed only under its own specification, every arm is checked before the first trains, and
//! lengths follow the run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::shared_home;
use lrlab_runs::{RunDir, RunRecord, Status};
use serde_json::Value;

/// `cargo xtask experiment <args>` in `cwd`, offline on the shared cache.
fn xtask_in(cwd: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .current_dir(cwd)
        .arg("experiment")
        .args(args)
        .env("HF_HOME", shared_home())
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_HUB_CACHE");
    command
}

/// The smoke protocol of two arms × two seeds on the CPU, into `out`.
fn experiment(out: &Path, args: &[&str]) -> Command {
    let mut command = xtask_in(out, args);
    command
        .args(["--preset", "smoke", "--arms", "constant,cosine"])
        .args(["--seeds", "0,1", "--device", "cpu"])
        .arg("--out")
        .arg(out);
    command
}

/// The stderr of a command that must fail.
fn failure(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "it succeeded: {stderr}");
    stderr
}

/// Checks that a command succeeded.
fn success(output: Output) -> Output {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
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

/// Waits until a run of the smoke protocol under `root` is being trained and has a checkpoint,
/// and returns its arm and seed.
fn wait_for_partial(root: &Path, child: &mut Child) -> (&'static str, u64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        for (arm, seed) in [
            ("constant", 0),
            ("cosine", 0),
            ("constant", 1),
            ("cosine", 1),
        ] {
            let run = root.join(arm).join(format!("seed-{seed}"));
            if run.join(".lock").exists() && run.join("checkpoint/latest.json").exists() {
                return (arm, seed);
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the protocol finished before it could be killed"
        );
        assert!(
            Instant::now() < deadline,
            "timed out waiting for a partial run"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The record of the run of `arm` and `seed` under `root` (`<out>/<experiment>`).
fn record(root: &Path, arm: &str, seed: u64) -> RunRecord {
    RunDir::new(root.join(arm).join(format!("seed-{seed}")))
        .read_record()
        .unwrap()
        .unwrap()
}

/// Every run of the protocol is complete with epochs 1..=epochs, once each.
fn assert_protocol_complete(root: &Path, epochs: u32) {
    let mut first_losses = Vec::new();
    for seed in [0, 1] {
        for arm in ["constant", "cosine"] {
            let run = RunDir::new(root.join(arm).join(format!("seed-{seed}")));
            let record = run.read_record().unwrap().unwrap();
            assert_eq!(record.status, Status::Complete, "{arm} seed {seed}");
            assert_eq!(record.spec.train.epochs, epochs, "{arm} seed {seed}");
            let (rows, steps) = (run.read_epochs().unwrap(), run.read_steps().unwrap());
            let numbers: Vec<u32> = rows.iter().map(|r| r.epoch).collect();
            assert_eq!(
                numbers,
                (1..=epochs).collect::<Vec<_>>(),
                "{arm} seed {seed}"
            );
            let step_numbers: Vec<u64> = steps.iter().map(|s| s.step).collect();
            assert_eq!(
                step_numbers,
                (1..=steps.len() as u64).collect::<Vec<_>>(),
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

    let stderr = failure(experiment(dir.path(), &args).output().unwrap());
    assert!(stderr.contains("is being trained by process"), "{stderr}");

    // Kill it the moment a run is part-way: locked, with a checkpoint.
    let partial = wait_for_partial(&root, &mut first);
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let (arm, seed) = partial;
    let was_partial = record(&root, arm, seed).status == Status::Running;
    // Killed mid-run, it leaves its lock behind; killed in the instant between two runs, none.
    let left_a_lock = ["constant", "cosine"]
        .iter()
        .flat_map(|arm| [0, 1].map(|seed| root.join(format!("{arm}/seed-{seed}/.lock"))))
        .any(|lock| lock.exists());

    let resumed = success(experiment(dir.path(), &args).output().unwrap());
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(stderr.contains("stale lock"), left_a_lock, "{stderr}");
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.contains(": complete,")).count(),
        4,
        "{stdout}"
    );
    assert_protocol_complete(&root, 3);
    if was_partial {
        assert!(record(&root, arm, seed).resumed >= 1, "{arm} seed {seed}");
    }

    // Run again: everything is complete and is skipped, not retrained.
    success(experiment(dir.path(), &args).output().unwrap());
    assert_protocol_complete(&root, 3);
}

/// The epochs of a run without their wall times.
fn timeless_epochs(run: &Path) -> Vec<lrlab_runs::EpochRow> {
    let mut rows = RunDir::new(run).read_epochs().unwrap();
    for row in &mut rows {
        row.epoch_seconds = 0.0;
        row.examples_per_second = 0.0;
    }
    rows
}

/// One run of the smoke protocol (constant, seed 0) for `epochs` epochs into `out`, from `cwd`.
fn one_run(cwd: &Path, out: &Path, epochs: &str) -> Command {
    let mut command = xtask_in(cwd, &["cifar10", "--arms", "constant", "--seeds", "0"]);
    command.args([
        "--epochs", epochs, "--preset", "smoke", "--device", "cpu", "--out",
    ]);
    command.arg(out);
    command
}

/// What a run computed: its epochs without their wall times, and its last weights.
fn computed(run: &Path) -> (Vec<lrlab_runs::EpochRow>, Vec<u8>) {
    let epochs = timeless_epochs(run);
    let last = format!("checkpoint/epoch-{:04}/weights.safetensors", epochs.len());
    (epochs, std::fs::read(run.join(last)).unwrap())
}

#[test]
fn a_run_repeats_bit_for_bit_in_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    for out in [&first, &second] {
        success(one_run(dir.path(), out, "3").output().unwrap());
    }
    let run = "cifar10/constant/seed-0";
    assert!(
        computed(&first.join(run)) == computed(&second.join(run)),
        "two processes trained the same run to different numbers"
    );
}

#[test]
fn sigterm_stops_before_the_next_step_keeping_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (stopped, whole) = (dir.path().join("stopped"), dir.path().join("whole"));
    let mut child = one_run(dir.path(), &stopped, "12")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = stopped.join("cifar10/constant/seed-0");
    wait_for(&run.join("checkpoint/latest.json"), &mut child);
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(128 + 15), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    let kept = record(&stopped.join("cifar10"), "constant", 0);
    assert_eq!(kept.status, Status::Running);
    assert!((1..12).contains(&kept.epochs_done), "{}", kept.epochs_done);
    assert!(
        stderr.contains(&format!(
            "kept its checkpoint of epoch {}",
            kept.epochs_done
        )),
        "{stderr}"
    );
    assert!(!run.join(".lock").exists(), "the lock outlived the process");
    assert_eq!(timeless_epochs(&run).len(), kept.epochs_done as usize);

    success(one_run(dir.path(), &stopped, "12").output().unwrap());
    let resumed = record(&stopped.join("cifar10"), "constant", 0);
    assert_eq!((resumed.status, resumed.resumed), (Status::Complete, 1));
    success(one_run(dir.path(), &whole, "12").output().unwrap());
    assert!(
        computed(&run) == computed(&whole.join("cifar10/constant/seed-0")),
        "the run stopped by SIGTERM and resumed differs from an uninterrupted one"
    );
}

#[test]
fn imdb_smoke_protocol_completes() {
    let dir = tempfile::tempdir().unwrap();
    success(experiment(dir.path(), &["imdb"]).output().unwrap());
    let root = dir.path().join("imdb");
    assert_protocol_complete(&root, 2);
    let record = record(&root, "cosine", 1);
    let spec = record.spec;
    // The shared warmup is in front of the arm: 6 % of 2 epochs × 4 steps rounds up to one step,
    // and the cosine anneals over what follows it (7 steps: 1.75 epochs, rounded to 2).
    let wrapped: lrlab_schedulers::SchedulerConfig = toml::from_str(
        "kind = 'warmup'\nwarmup_steps = 1\nstart_factor = 0.0\n\
         inner = { kind = 'cosine', t_max = 2, eta_min = 0.0 }",
    )
    .unwrap();
    assert_eq!(spec.scheduler, wrapped);
    assert_eq!(spec.optimizer.lr, 3e-5, "the study's fine-tuning rate");
    assert_eq!(record.analysis.references, ["hf-trainer"]);
    assert_eq!(record.analysis.primary_metric, "test_acc_at_best_val");
    let checkpoint = spec.resolved.checkpoint.unwrap();
    assert_eq!(checkpoint.repo, "sentence-transformers/all-MiniLM-L6-v2");
    assert!(
        checkpoint.commit.is_some(),
        "the checkpoint's commit is recorded"
    );
}

/// The PyTorch trace `name` of the schedulers' fixture: the rate after each tick.
fn pytorch_trace(name: &str) -> Vec<f64> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/schedulers/tests/fixtures/pytorch_traces.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let case = fixture["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no trace {name}"));
    case["lrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn smoke_then_full_never_reuses_a_smoke_run_and_lengths_follow_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    // The README's smoke command, then the published plan of one run, each with its default
    // folder.
    let smoke = ["cifar10", "--preset", "smoke", "--arms", "constant,cosine"];
    success(
        xtask_in(
            cwd,
            &[&smoke[..], &["--seeds", "0", "--device", "cpu"]].concat(),
        )
        .output()
        .unwrap(),
    );
    let smoke_root = cwd.join("runs-smoke/cifar10");
    let smoke_run = record(&smoke_root, "constant", 0);
    assert_eq!(smoke_run.spec.train.epochs, 2);

    let mut full = xtask_in(cwd, &["cifar10", "--arms", "constant", "--seeds", "0"])
        .args(["--device", "cpu"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let full_run = cwd.join("runs/cifar10/constant/seed-0/run.json");
    wait_for(&full_run, &mut full);
    full.kill().unwrap();
    full.wait().unwrap();
    let started = record(&cwd.join("runs/cifar10"), "constant", 0);
    assert_eq!(
        (started.spec.train.epochs, &started.spec.model),
        (50, &lrlab_runs::ModelSettings::Resnet18 { width: 64 })
    );
    assert_eq!(
        record(&smoke_root, "constant", 0),
        smoke_run,
        "the smoke run is untouched"
    );

    // Cosine over 4 epochs anneals over those 4: PyTorch's CosineAnnealingLR(T_max=4).
    let four = cwd.join("four");
    let args = [&smoke[..], &["--seeds", "0", "--epochs", "4", "--out"]].concat();
    success(
        xtask_in(cwd, &args)
            .arg(&four)
            .args(["--device", "cpu"])
            .output()
            .unwrap(),
    );
    let cosine = RunDir::new(four.join("cifar10/cosine/seed-0"));
    let rates: Vec<f64> = cosine.read_epochs().unwrap().iter().map(|r| r.lr).collect();
    let pytorch = pytorch_trace("cosine t_max=\"epochs\" over 4 epochs");
    assert_eq!(rates.len(), 4);
    for (epoch, (ours, theirs)) in rates.iter().zip(&pytorch).enumerate() {
        assert!(
            (ours - theirs).abs() <= 1e-12 * theirs.abs(),
            "epoch {}: {ours} vs torch {theirs}",
            epoch + 1
        );
    }
    assert_eq!(cosine.read_record().unwrap().unwrap().spec.scheduler, {
        toml::from_str("kind = 'cosine'\nt_max = 4\neta_min = 0.0").unwrap()
    });
}

/// A copy of `configs/cifar10.toml` in `dir` with `edit` applied to its text.
fn config_copy(dir: &Path, name: &str, edit: impl FnOnce(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/cifar10.toml"),
    )
    .unwrap();
    let path = dir.join(name);
    std::fs::write(&path, edit(text)).unwrap();
    path
}

#[test]
fn changed_settings_are_refused_with_what_changed_or_restart_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let run = |config: &Path, extra: &[&str]| {
        xtask_in(
            dir.path(),
            &["cifar10", "--preset", "smoke", "--arms", "constant,cosine"],
        )
        .args(["--seeds", "0", "--device", "cpu", "--config"])
        .arg(config)
        .arg("--out")
        .arg(&out)
        .args(extra)
        .output()
        .unwrap()
    };
    let original = config_copy(dir.path(), "original.toml", |t| t);
    success(run(&original, &[]));
    let root = out.join("cifar10");
    let before = record(&root, "cosine", 0);

    let changed = config_copy(dir.path(), "changed.toml", |t| {
        t.replace("lr = 1e-3", "lr = 2e-3")
            .replace("model.width = 8", "model.width = 16")
            .replace("t_max = \"epochs\"", "t_max = \"epochs\"\neta_min = 1e-5")
    });
    let stderr = failure(run(&changed, &[]));
    for needle in [
        "2 run(s)",
        "were trained under other settings",
        "nothing was trained",
        "constant/seed-0: model.width: 8 → 16; optimizer.lr: 0.001 → 0.002",
        "cosine/seed-0: model.width: 8 → 16; optimizer.lr: 0.001 → 0.002; scheduler.eta_min: \
         0.0 → 0.00001",
        "--out DIR",
        "--discard-changed",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    assert_eq!(
        record(&root, "cosine", 0),
        before,
        "a refused run is untouched"
    );
    let stderr = failure(run(&original, &["--epochs", "3"]));
    assert!(stderr.contains("train.epochs: 2 → 3"), "{stderr}");

    let restarted = success(run(&changed, &["--discard-changed"]));
    let stderr = String::from_utf8_lossy(&restarted.stderr);
    assert!(
        stderr.contains("discarded") && stderr.contains("cosine/seed-0"),
        "{stderr}"
    );
    let after = record(&root, "cosine", 0);
    assert_eq!(after.status, Status::Complete);
    assert_eq!(after.spec.optimizer.lr, 2e-3);
    assert_ne!(after.fingerprint, before.fingerprint);
    // The new runs are now the folder's: the changed settings skip them.
    let again = success(run(&changed, &[]));
    assert!(String::from_utf8_lossy(&again.stdout).contains("cosine seed 0: complete"));
    assert_eq!(
        record(&root, "cosine", 0).started,
        after.started,
        "skipped, not retrained"
    );
}

#[test]
fn a_bad_setting_fails_before_any_run_starts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let run = |config: &Path| {
        xtask_in(
            dir.path(),
            &["cifar10", "--preset", "smoke", "--device", "cpu"],
        )
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap()
    };
    // An unknown key, a value out of range, and a length in the wrong unit, each in the last
    // arm of the file; a primary endpoint with no better direction; and the cases below.
    let arm = "kind = \"trend_gap\"";
    for (name, (from, to), key, says) in [
        (
            "key.toml",
            (arm, "kind = \"trend_gap\"\ngrowht = 1.2"),
            "arms.trend_gap",
            "growht",
        ),
        (
            "value.toml",
            (arm, "kind = \"trend_gap\"\ngrowth = 0.5"),
            "arms.trend_gap.growth",
            "≥ 1",
        ),
        (
            "unit.toml",
            (arm, "kind = \"trend_gap\"\ncooldown = \"steps\""),
            "arms.trend_gap.cooldown",
            "\"epochs\"",
        ),
        (
            "primary.toml",
            ("= \"test_acc_at_best_val\"", "= \"final_acc_gap\""),
            "primary_metric",
            "not a metric with a better direction",
        ),
        // Names that would file the runs elsewhere: another task's, or outside `--out`.
        (
            "task.toml",
            ("experiment = \"cifar10\"", "experiment = \"imdb\""),
            "experiment",
            "would file these cifar10 runs as imdb ones",
        ),
        (
            "path.toml",
            (
                "experiment = \"cifar10\"",
                "experiment = \"/tmp/elsewhere\"",
            ),
            "experiment",
            "no `/`",
        ),
        (
            "empty.toml",
            ("experiment = \"cifar10\"", "experiment = \"\""),
            "experiment",
            "is empty",
        ),
        // A negative rate, named as the file's key, not as the schedule's base rate.
        (
            "rate.toml",
            ("lr = 1e-3", "lr = -1e-3"),
            "optimizer.lr",
            "must be a positive number",
        ),
        // A validation share that leaves the training split less than a batch.
        (
            "fraction.toml",
            ("data.limit_train = 128", "data.val_fraction = 0.999"),
            "data",
            "fewer than one batch of 32",
        ),
    ] {
        let config = config_copy(dir.path(), name, |t| t.replace(from, to));
        let stderr = failure(run(&config));
        assert!(
            stderr.contains(name) && stderr.contains(key) && stderr.contains(says),
            "{name}: {stderr}"
        );
        assert!(!out.exists(), "{name}: a run directory was created");
    }
    // The same seed twice would plan the same runs twice; no epoch at all, a run of nothing.
    for (flags, says) in [
        (["--seeds", "0,0"], "key `seeds`: seed 0 is listed twice"),
        (["--epochs", "0"], "key `train.epochs`: 0 must be ≥ 1"),
    ] {
        let args = [&["cifar10", "--preset", "smoke"][..], &flags].concat();
        let stderr = failure(
            xtask_in(dir.path(), &args)
                .arg("--out")
                .arg(&out)
                .output()
                .unwrap(),
        );
        let given = flags.join(" ");
        assert!(stderr.contains(&given) && stderr.contains(says), "{stderr}");
        assert!(!out.exists(), "{given}: a run directory was created");
    }
}

#[test]
fn a_run_of_another_format_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["cifar10"];
    success(experiment(dir.path(), &args).output().unwrap());
    let path = dir.path().join("cifar10/constant/seed-0/run.json");
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    value["schema"] = 1.into();
    std::fs::write(&path, value.to_string()).unwrap();
    let stderr = failure(experiment(dir.path(), &args).output().unwrap());
    assert!(
        stderr.contains("constant/seed-0/run.json")
            && stderr.contains("format 1")
            && stderr.contains("--discard-changed"),
        "{stderr}"
    );
}

#[test]
fn an_out_folder_that_cannot_hold_runs_is_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let below_a_file = file.join("runs");
    for (out, says) in [
        (file.as_path(), "a file, not a folder"),
        (below_a_file.as_path(), "cannot create the folder"),
        // A folder no one may write in, even root: /proc.
        (Path::new("/proc"), "cannot write in it"),
    ] {
        let stderr = failure(
            xtask_in(
                dir.path(),
                &["cifar10", "--preset", "smoke", "--seeds", "0"],
            )
            .arg("--out")
            .arg(out)
            .output()
            .unwrap(),
        );
        assert!(
            stderr.contains(&format!("--out {}: {says}", out.display()))
                && stderr.contains("a folder you can write"),
            "{stderr}"
        );
    }
}

#[test]
fn a_lock_left_behind_blocks_nothing_even_when_its_process_id_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("cifar10/constant/seed-0");
    std::fs::create_dir_all(&run).unwrap();
    // A killed trainer's lock, whose process id now belongs to a live process (init).
    std::fs::write(run.join(".lock"), "process 1 on this-host\n").unwrap();
    let args = [
        "cifar10", "--preset", "smoke", "--arms", "constant", "--seeds", "0",
    ];
    let output = success(
        xtask_in(dir.path(), &args)
            .arg("--out")
            .arg(dir.path())
            .output()
            .unwrap(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("taking over the stale lock") && stderr.contains("process 1 on this-host"),
        "{stderr}"
    );
    assert_eq!(
        record(&dir.path().join("cifar10"), "constant", 0).status,
        Status::Complete
    );
}

#[test]
fn the_experiment_file_is_found_where_the_program_runs_not_where_it_was_built() {
    let dir = tempfile::tempdir().unwrap();
    // The program moved out of its checkout, e.g. to a cluster node.
    let moved = dir.path().join("bin/xtask");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_xtask"), &moved).unwrap();
    let run_in = |cwd: &Path| {
        Command::new(&moved)
            .current_dir(cwd)
            .args([
                "experiment",
                "cifar10",
                "--preset",
                "smoke",
                "--arms",
                "constant",
            ])
            .args(["--seeds", "0", "--device", "cpu", "--out"])
            .arg(dir.path().join("runs"))
            .env("HF_HOME", shared_home())
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap()
    };
    let stderr = failure(run_in(dir.path()));
    assert!(
        stderr.contains("no configs/cifar10.toml") && stderr.contains("--config FILE"),
        "{stderr}"
    );
    // Run from another checkout (here a folder with its own configs), it reads that one's.
    let checkout = dir.path().join("checkout");
    std::fs::create_dir_all(checkout.join("configs/deeper")).unwrap();
    config_copy(&checkout.join("configs"), "cifar10.toml", |t| {
        t.replace("lr = 1e-3", "lr = 5e-4")
    });
    success(run_in(&checkout.join("configs/deeper")));
    let record = record(&dir.path().join("runs/cifar10"), "constant", 0);
    assert_eq!(record.spec.optimizer.lr, 5e-4);
}
