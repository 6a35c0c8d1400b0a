//! Synthetic studies written as the trainer writes them, through `lrlab-runs` (`run.json` with
//! the run's specification, `epochs.parquet`), for tests and the benchmark.

#![allow(dead_code)]

use std::path::Path;

use lrlab_runs::{
    AnalysisPlan, DataSettings, EpochRow, HubCommit, ModelSettings, OptimizerConfig, Resolved,
    RunDir, RunRecord, RunSpec, SplitSizes, Status, TrainPlan,
};
use serde_json::json;

/// The shape of a synthetic study.
pub struct Study<'a> {
    /// Experiment names.
    pub experiments: &'a [&'a str],
    /// Arms; the first three are recorded as baselines.
    pub arms: &'a [&'a str],
    /// Seeds per arm.
    pub seeds: u64,
    /// Epochs per run.
    pub epochs: u32,
    /// The recorded threshold.
    pub threshold: f64,
}

/// Who a synthetic run is, how far it got and how its study means to analyse it.
pub struct Synthetic<'a> {
    pub experiment: &'a str,
    pub arm: &'a str,
    pub seed: u64,
    /// The epochs its specification plans.
    pub planned: u32,
    pub status: Status,
    pub baselines: &'a [&'a str],
    pub threshold: f64,
}

/// The specification of a synthetic run: a narrow CIFAR-10 ResNet-18 planned for `epochs`
/// epochs, every arm a constant schedule at the published rate.
pub fn spec(experiment: &str, arm: &str, seed: u64, epochs: u32) -> RunSpec {
    RunSpec {
        experiment: experiment.into(),
        arm: arm.into(),
        seed,
        data: DataSettings {
            revision: "main".into(),
            val_fraction: 0.1,
            split_seed: 0,
            limit_train: None,
            limit_val: None,
            limit_test: None,
            max_len: None,
        },
        model: ModelSettings::Resnet18 { width: 8 },
        train: TrainPlan {
            epochs,
            ..TrainPlan::plan()
        },
        optimizer: OptimizerConfig::plan(),
        scheduler: serde_json::from_value(json!({ "kind": "constant" })).unwrap(),
        resolved: Resolved {
            dataset: HubCommit {
                repo: "uoft-cs/cifar10".into(),
                commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            },
            checkpoint: None,
            classes: 10,
            split_sizes: SplitSizes {
                train: 45_000,
                val: 5_000,
                test: 10_000,
            },
            steps_per_epoch: 1407,
        },
        lrlab_version: "0.1.0".into(),
    }
}

/// Writes one run: its `run.json` and the `epochs.parquet` of `curves`.
pub fn write_run(root: &Path, run: &Synthetic, curves: &[Row]) -> RunDir {
    write_spec(
        root,
        run,
        spec(run.experiment, run.arm, run.seed, run.planned),
        curves,
    )
}

/// Writes one run of specification `spec`.
pub fn write_spec(root: &Path, run: &Synthetic, spec: RunSpec, curves: &[Row]) -> RunDir {
    let dir = RunDir::in_layout(root, run.experiment, run.arm, run.seed);
    let analysis = AnalysisPlan {
        primary_metric: "test_acc_at_best_val".into(),
        threshold: run.threshold,
        baselines: run.baselines.iter().map(|b| b.to_string()).collect(),
        references: Vec::new(),
        tuning: None,
    };
    let mut record = RunRecord::start(spec, analysis, "cpu".into());
    record.epochs_done = curves.len() as u32;
    record.end(run.status, None);
    dir.write_record(&record).unwrap();
    if !curves.is_empty() {
        let rows: Vec<EpochRow> = curves
            .iter()
            .enumerate()
            .map(|(i, r)| EpochRow {
                epoch: i as u32 + 1,
                lr: r.lr,
                train_loss: r.train_loss,
                train_acc: r.train_acc,
                val_loss: r.val_loss,
                val_acc: r.val_acc,
                test_loss: Some(r.val_loss + 0.01),
                test_acc: Some(r.test_acc),
                epoch_seconds: 1.0,
                examples_per_second: 100.0,
            })
            .collect();
        dir.write_rows(&rows, &[]).unwrap();
    }
    dir
}

/// One epoch of a synthetic run.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub lr: f64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub test_acc: f64,
}

/// A deterministic noise in [−1, 1] from a few integers.
pub fn noise(a: u64, b: u64, c: u64) -> f64 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ c.wrapping_mul(0x1656_67B1_9E37_79F9);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// Learning curves that rise to `ceiling` at a pace set by `tau` epochs, with seeded noise.
pub fn curves(epochs: u32, ceiling: f64, tau: f64, arm: u64, seed: u64) -> Vec<Row> {
    (1..=epochs)
        .map(|e| {
            let e64 = f64::from(e);
            let val_acc =
                ceiling * (1.0 - (-e64 / tau).exp()) + 0.01 * noise(arm, seed, u64::from(e));
            let train_acc = (val_acc + 0.002 * e64).min(1.0);
            Row {
                lr: 1e-3 * 0.5f64.powi((e / 5) as i32),
                train_loss: 2.3 * (1.0 - train_acc) + 0.05,
                train_acc,
                val_loss: 2.3 * (1.0 - val_acc) + 0.08,
                val_acc,
                test_acc: val_acc - 0.005 + 0.004 * noise(seed, arm, u64::from(e) + 1000),
            }
        })
        .collect()
}

/// Writes a whole study of complete runs; arm i's curves rise to 0.86 + 0.01·i.
pub fn write_study(root: &Path, study: &Study) {
    let baselines = &study.arms[..study.arms.len().min(3)];
    for (x, experiment) in study.experiments.iter().enumerate() {
        for (i, arm) in study.arms.iter().enumerate() {
            for seed in 0..study.seeds {
                let ceiling = 0.86 + 0.01 * i as f64;
                let rows = curves(
                    study.epochs,
                    ceiling,
                    1.0 + i as f64 * 0.3,
                    (x * 100 + i) as u64,
                    seed,
                );
                let run = Synthetic {
                    experiment,
                    arm,
                    seed,
                    planned: study.epochs,
                    status: Status::Complete,
                    baselines,
                    threshold: study.threshold,
                };
                write_run(root, &run, &rows);
            }
        }
    }
}
