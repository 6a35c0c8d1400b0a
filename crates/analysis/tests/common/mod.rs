//! Synthetic studies written in the run-directory format of DESIGN.md (`run.json` +
//! `epochs.parquet`, as the trainer writes them), for tests and the benchmark.

#![allow(dead_code)]

use std::fs;
use std::path::Path;

use polars::prelude::*;
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

/// Who a synthetic run is and what its `run.json` records.
pub struct RunSpec<'a> {
    pub experiment: &'a str,
    pub arm: &'a str,
    pub seed: u64,
    pub status: &'a str,
    pub baselines: &'a [&'a str],
    pub threshold: f64,
}

/// Writes one run: its `run.json` and an `epochs.parquet` of `curves`.
pub fn write_run(root: &Path, spec: &RunSpec, curves: &[Row]) {
    let RunSpec {
        experiment,
        arm,
        seed,
        status,
        baselines,
        threshold,
    } = *spec;
    let folder = root.join(experiment).join(arm).join(format!("seed-{seed}"));
    fs::create_dir_all(&folder).unwrap();
    let info = json!({
        "experiment": experiment,
        "arm": arm,
        "seed": seed,
        "config": {
            "experiment": {"experiment": experiment, "threshold": threshold, "baselines": baselines},
            "train": {"epochs": curves.len()}
        },
        "device": "Cpu",
        "lrlab_version": "0.1.0",
        "git_commit": null,
        "status": status,
        "message": null,
        "epochs_done": curves.len(),
        "started": "2026-11-29T00:00:00Z",
        "finished": null,
        "resumed": 0
    });
    fs::write(
        folder.join("run.json"),
        serde_json::to_string_pretty(&info).unwrap(),
    )
    .unwrap();
    if curves.is_empty() {
        return;
    }
    let f = |get: fn(&Row) -> f64| curves.iter().map(get).collect::<Vec<f64>>();
    let mut frame = DataFrame::new_infer_height(vec![
        Column::new(
            "epoch".into(),
            (1..=curves.len() as i64).collect::<Vec<_>>(),
        ),
        Column::new("lr".into(), f(|r| r.lr)),
        Column::new("train_loss".into(), f(|r| r.train_loss)),
        Column::new("train_acc".into(), f(|r| r.train_acc)),
        Column::new("val_loss".into(), f(|r| r.val_loss)),
        Column::new("val_acc".into(), f(|r| r.val_acc)),
        Column::new(
            "test_loss".into(),
            curves
                .iter()
                .map(|r| Some(r.val_loss + 0.01))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "test_acc".into(),
            curves.iter().map(|r| Some(r.test_acc)).collect::<Vec<_>>(),
        ),
        Column::new("epoch_seconds".into(), vec![1.0; curves.len()]),
        Column::new(
            "images_or_sequences_per_second".into(),
            vec![100.0; curves.len()],
        ),
    ])
    .unwrap();
    // Uncompressed, as lrlab's trainer writes it.
    let file = fs::File::create(folder.join("epochs.parquet")).unwrap();
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Uncompressed)
        .finish(&mut frame)
        .unwrap();
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
                let spec = RunSpec {
                    experiment,
                    arm,
                    seed,
                    status: "complete",
                    baselines,
                    threshold: study.threshold,
                };
                write_run(root, &spec, &rows);
            }
        }
    }
}
