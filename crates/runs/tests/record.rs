//! The run record end to end: a directory written and read back, fingerprints and their
//! differences, the checks of a specification, and files that must be refused.

use std::fs;
use std::path::Path;

use lrlab_runs::{
    AnalysisPlan, DataSettings, EpochRow, HubCommit, ModelSettings, OptimizerConfig, Precision,
    Resolved, RunDir, RunRecord, RunSpec, SCHEMA, SplitSizes, Status, StepRow, TrainPlan,
    differences,
};
use lrlab_schedulers::SchedulerConfig;
use serde_json::{Value, json};

fn scheduler(toml: &str) -> SchedulerConfig {
    toml::from_str(toml).unwrap()
}

/// A smoke-sized CIFAR-10 run: 128 training images in batches of 32, 2 epochs, cosine.
fn spec() -> RunSpec {
    RunSpec {
        experiment: "cifar10".into(),
        arm: "cosine".into(),
        seed: 1,
        data: DataSettings {
            revision: "main".into(),
            val_fraction: 0.1,
            split_seed: 0,
            limit_train: Some(128),
            limit_val: Some(64),
            limit_test: None,
            max_len: None,
        },
        model: ModelSettings::Resnet18 { width: 8 },
        train: TrainPlan {
            epochs: 2,
            batch_size: 32,
            eval_batch_size: 256,
            augment: true,
            keep_best: true,
            dtype: Precision::F32,
            tf32: false,
        },
        optimizer: OptimizerConfig::plan(),
        scheduler: scheduler("kind = 'cosine'\nt_max = 2"),
        resolved: Resolved {
            dataset: HubCommit {
                repo: "uoft-cs/cifar10".into(),
                commit: Some("0b2714987fa478483af9968de7c934580d0bb9a2".into()),
            },
            checkpoint: None,
            classes: 10,
            split_sizes: SplitSizes {
                train: 128,
                val: 64,
                test: 500,
            },
            steps_per_epoch: 4,
        },
        lrlab_version: "0.1.0".into(),
    }
}

fn plan() -> AnalysisPlan {
    AnalysisPlan {
        primary_metric: "test_acc_at_best_val".into(),
        threshold: 0.85,
        baselines: vec!["constant".into(), "cosine".into()],
        references: Vec::new(),
        tuning: None,
    }
}

fn epoch_row(epoch: u32) -> EpochRow {
    EpochRow {
        epoch,
        lr: 1e-3 / f64::from(epoch),
        train_loss: 2.0,
        train_acc: 0.25,
        val_loss: 2.25,
        val_acc: 0.5,
        test_loss: None,
        test_acc: Some(0.125),
        epoch_seconds: 1.5,
        examples_per_second: 85.0,
    }
}

fn step_row(step: u64) -> StepRow {
    StepRow {
        step,
        epoch: 1,
        lr: 1e-3,
        loss: 2.5,
        grad_dot: (step > 1).then_some(-0.5),
        grad_cos: (step > 1).then_some(-0.25),
    }
}

fn error_of<T: std::fmt::Debug>(result: lrlab_runs::Result<T>) -> String {
    result.expect_err("an error").to_string()
}

#[test]
fn a_run_directory_reads_back_what_was_written() {
    let folder = tempfile::tempdir().unwrap();
    let dir = RunDir::in_layout(folder.path(), "cifar10", "cosine", 1);
    assert_eq!(dir.path(), folder.path().join("cifar10/cosine/seed-1"));
    assert_eq!(dir.read_record().unwrap(), None);
    assert_eq!(dir.read_epochs().unwrap(), Vec::new());

    let mut record = RunRecord::start(spec(), plan(), "cpu".into());
    assert_eq!(record.schema, SCHEMA);
    assert_eq!(record.status, Status::Running);
    dir.write_record(&record).unwrap();
    // The step that diverged keeps its loss, NaN included.
    let diverged = StepRow {
        loss: f64::NAN,
        ..step_row(3)
    };
    let (epochs, steps) = (
        vec![epoch_row(1), epoch_row(2)],
        vec![step_row(1), step_row(2), diverged],
    );
    dir.write_rows(&epochs, &steps).unwrap();
    record.end(Status::Complete, None);
    dir.write_record(&record).unwrap();

    assert_eq!(dir.read_record().unwrap(), Some(record));
    assert_eq!(dir.read_epochs().unwrap(), epochs);
    let read = dir.read_steps().unwrap();
    assert_eq!(read[..2], steps[..2]);
    assert!(read[2].loss.is_nan(), "NaN is kept, not nulled");
    let found = RunDir::find_under(folder.path()).unwrap();
    assert_eq!(found, vec![dir.clone()]);
    dir.discard().unwrap();
    assert!(!dir.path().exists());
}

#[test]
fn fingerprints_follow_every_setting_and_name_what_changed() {
    let base = spec();
    assert_eq!(base.fingerprint(), spec().fingerprint());
    assert_eq!(base.fingerprint().to_string().len(), 64);
    // Canonical form: a change to how specifications serialise changes every fingerprint and
    // orphans every recorded run. If this fails on purpose, raise SCHEMA.
    assert_eq!(
        base.fingerprint().short(),
        "fb4ffc808c6b",
        "the canonical form of a specification changed"
    );

    let mut longer = spec();
    longer.train.epochs = 50;
    longer.scheduler = scheduler("kind = 'cosine'\nt_max = 50");
    longer.optimizer.betas.1 = 0.99;
    assert_ne!(longer.fingerprint(), base.fingerprint());
    let found: Vec<String> = differences(&base, &longer)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "train.epochs: 2 → 50",
            "optimizer.betas[1]: 0.999 → 0.99",
            "scheduler.t_max: 2 → 50"
        ]
    );

    let mut other_kind = spec();
    other_kind.scheduler = scheduler("kind = 'step'\nstep_size = 1");
    other_kind.model = ModelSettings::Resnet18 { width: 64 };
    let found = differences(&base, &other_kind);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].key, "model.width");
    assert_eq!(found[1].key, "scheduler", "another kind differs as a whole");
    assert!(differences(&base, &spec()).is_empty());
}

/// A change that makes a specification faulty, with the key its error must name.
type Fault = (&'static str, fn(&mut RunSpec));

/// Checks `spec` and returns the key its error names.
fn failing_key(spec: &RunSpec) -> String {
    spec.check().map_or_else(|e| e.key, |()| "(none)".into())
}

#[test]
fn every_fault_of_a_specification_is_named_by_its_key() {
    spec().check().unwrap();
    let faults: Vec<Fault> = vec![
        ("train.epochs", |s| s.train.epochs = 0),
        ("train.batch_size", |s| s.train.batch_size = 0),
        ("train.eval_batch_size", |s| s.train.eval_batch_size = 0),
        ("arm", |s| s.arm = "../escape".into()),
        ("experiment", |s| s.experiment = String::new()),
        ("optimizer.lr", |s| s.optimizer.lr = -1e-3),
        ("optimizer.betas", |s| s.optimizer.betas = (0.9, 1.0)),
        ("data.val_fraction", |s| s.data.val_fraction = 1.0),
        ("data.limit_train", |s| s.data.limit_train = Some(5000)),
        ("data.limit_test", |s| s.resolved.split_sizes.test = 0),
        // `val_fraction = 0.999` leaves two training examples: less than one batch.
        ("data", |s| {
            (s.data.limit_train, s.resolved.split_sizes.train) = (None, 2)
        }),
        ("data", |s| {
            (s.data.limit_val, s.resolved.split_sizes.val) = (None, 2)
        }),
        ("model.width", |s| {
            s.model = ModelSettings::Resnet18 { width: 0 }
        }),
        ("resolved.steps_per_epoch", |s| {
            s.resolved.steps_per_epoch = 5
        }),
        ("scheduler.t_max", |s| {
            s.scheduler = scheduler("kind = 'cosine'\nt_max = 'epochs'")
        }),
        ("scheduler.step_size", |s| {
            s.scheduler = scheduler("kind = 'step'\nstep_size = 0")
        }),
        ("scheduler", |s| {
            s.scheduler = scheduler("kind = 'exponential'\ngamma = 1e300\ninterval = 'step'")
        }),
    ];
    for (key, fault) in faults {
        let mut faulty = spec();
        fault(&mut faulty);
        assert_eq!(failing_key(&faulty), key, "{key}");
    }
    let mut faulty = spec();
    faulty.data.limit_train = Some(5000);
    let message = faulty.check().unwrap_err().to_string();
    assert!(
        message.contains("5000") && message.contains("128"),
        "{message}"
    );
    let mut faulty = spec();
    (faulty.data.limit_train, faulty.resolved.split_sizes.train) = (None, 2);
    let message = faulty.check().unwrap_err().to_string();
    assert!(
        message.contains("training split has 2 examples, fewer than one batch of")
            && message.contains("`data.val_fraction`"),
        "{message}"
    );
}

/// Writes a record of `spec()` whose JSON `edit` changed, and reads it back.
fn read_edited(folder: &Path, edit: impl FnOnce(&mut Value)) -> String {
    let dir = RunDir::new(folder.join("run"));
    dir.write_record(&RunRecord::start(spec(), plan(), "cpu".into()))
        .unwrap();
    let path = dir.path().join("run.json");
    let mut value: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut value);
    fs::write(&path, value.to_string()).unwrap();
    error_of(dir.read_record())
}

#[test]
fn records_of_another_format_or_edited_by_hand_are_refused() {
    let folder = tempfile::tempdir().unwrap();
    let err = read_edited(folder.path(), |v| {
        v.as_object_mut().unwrap().remove("schema");
    });
    assert!(
        err.contains("run.json") && err.contains("no `schema`"),
        "{err}"
    );
    let err = read_edited(folder.path(), |v| v["schema"] = json!(99));
    assert!(
        err.contains("format 99") && err.contains("format 3"),
        "{err}"
    );
    let err = read_edited(folder.path(), |v| v["spec"]["train"]["epochs"] = json!(50));
    assert!(
        err.contains("fingerprint") && err.contains("edited"),
        "{err}"
    );
    let err = read_edited(folder.path(), |v| v["status"] = json!("done"));
    assert!(err.contains("key `status`"), "{err}");
    fs::write(folder.path().join("run/run.json"), "{ not json").unwrap();
    let err = error_of(RunDir::new(folder.path().join("run")).read_record());
    assert!(err.contains("not valid JSON"), "{err}");
}

#[test]
fn damaged_rows_are_named_by_file_column_and_row() {
    use polars::prelude::*;
    let folder = tempfile::tempdir().unwrap();
    let dir = RunDir::new(folder.path());
    dir.write_rows(&[epoch_row(1), epoch_row(2)], &[step_row(1)])
        .unwrap();
    let path = folder.path().join("epochs.parquet");
    let rewrite = |change: &dyn Fn(DataFrame) -> DataFrame| {
        let frame = ParquetReader::new(fs::File::open(&path).unwrap())
            .finish()
            .unwrap();
        let mut frame = change(frame);
        ParquetWriter::new(fs::File::create(&path).unwrap())
            .finish(&mut frame)
            .unwrap();
    };
    // Other integer types read as long as they fit.
    rewrite(&|mut f| {
        let wide = f.column("epoch").unwrap().cast(&DataType::Int64).unwrap();
        f.replace("epoch", wide).unwrap();
        f
    });
    assert_eq!(dir.read_epochs().unwrap().len(), 2);
    rewrite(&|mut f| {
        f.replace("epoch", Column::new("epoch".into(), [2i64, 1]))
            .unwrap();
        f
    });
    let err = error_of(dir.read_epochs());
    assert!(
        err.contains("epochs.parquet") && err.contains("from 2 to 1 at row 1"),
        "{err}"
    );
    rewrite(&|mut f| {
        f.replace("val_acc", Column::new("val_acc".into(), [Some(0.5), None]))
            .unwrap();
        f.replace("epoch", Column::new("epoch".into(), [1i64, 2]))
            .unwrap();
        f
    });
    let err = error_of(dir.read_epochs());
    assert!(err.contains("`val_acc` is null at row 1"), "{err}");
    // A NaN accuracy would be taken for a measurement (the best epoch, say): refused.
    for (column, bad) in [
        ("val_acc", f64::NAN),
        ("train_acc", 1.5),
        ("val_loss", f64::INFINITY),
    ] {
        rewrite(&|mut f| {
            f.replace(column, Column::new(column.into(), [0.5, bad]))
                .unwrap();
            f
        });
        let err = error_of(dir.read_epochs());
        assert!(
            err.contains(&format!("`{column}` is {bad} at row 1"))
                && err.contains("delete the run's folder"),
            "{err}"
        );
        rewrite(&|mut f| {
            f.replace(column, Column::new(column.into(), [0.5, 0.5]))
                .unwrap();
            f
        });
    }
    rewrite(&|f| f.drop("train_loss").unwrap());
    let err = error_of(dir.read_epochs());
    assert!(err.contains("no column `train_loss`"), "{err}");
}

#[test]
fn a_run_without_its_record_is_refused_by_the_finder() {
    let folder = tempfile::tempdir().unwrap();
    let dir = RunDir::in_layout(folder.path(), "imdb", "constant", 0);
    dir.write_rows(&[epoch_row(1)], &[]).unwrap();
    let err = error_of(RunDir::find_under(folder.path()));
    assert!(
        err.contains("seed-0/run.json") && err.contains("missing"),
        "{err}"
    );
}
