//! `cargo xtask analyze` end to end: a real (smoke) protocol trained on the shared samples,
//! then analysed into a report, tables, plots and JSON.

mod common;

use std::fs;

use common::{failure, json, xtask};

/// The fields the JSON of every comparison carries.
const FIELDS: [&str; 18] = [
    "experiment",
    "metric",
    "arm",
    "baseline",
    "n_arm",
    "n_baseline",
    "mean_arm",
    "mean_baseline",
    "welch_t",
    "welch_df",
    "welch_p",
    "paired_t",
    "paired_p",
    "mw_u",
    "mw_p",
    "hedges_g",
    "holm_p",
    "aso_eps_min",
];

#[test]
fn a_trained_protocol_analyses_into_a_report() {
    let folder = tempfile::tempdir().unwrap();
    let runs = folder.path().join("runs");
    let runs_arg = runs.to_str().unwrap();
    let trained = xtask(&[
        "experiment",
        "cifar10",
        "--preset",
        "smoke",
        "--arms",
        "constant,step,plateau",
        "--seeds",
        "0,1",
        "--out",
        runs_arg,
        "--device",
        "cpu",
    ]);
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );

    let reports = folder.path().join("reports");
    let comparisons = json(&[
        "analyze",
        "--runs",
        runs_arg,
        "--out",
        reports.to_str().unwrap(),
        "--json",
    ]);
    let comparisons = comparisons.as_array().unwrap();
    // plateau against the baselines that ran (the file's constant, step; cosine did not run).
    let metrics: std::collections::BTreeSet<&str> = comparisons
        .iter()
        .map(|c| c["metric"].as_str().unwrap())
        .collect();
    for metric in [
        "best_val_acc",
        "test_acc_at_best_val",
        "final_test_acc",
        "epochs_to_threshold",
        "final_loss_gap",
        "final_acc_gap",
        "val_acc_auc",
    ] {
        assert!(metrics.contains(metric), "{metric} compared");
    }
    assert_eq!(comparisons.len(), metrics.len() * 2);
    for c in comparisons {
        for field in FIELDS {
            assert!(c.get(field).is_some(), "{field} in {c}");
        }
        assert_eq!(
            (c["experiment"].as_str(), c["arm"].as_str()),
            (Some("cifar10"), Some("plateau"))
        );
        assert_eq!(
            (c["n_arm"].as_u64(), c["n_baseline"].as_u64()),
            (Some(2), Some(2))
        );
    }
    let report = fs::read_to_string(reports.join("cifar10/report.md")).unwrap();
    for needle in [
        "**plateau**",
        "Baselines: constant, step",
        "## Protocol",
        "| training | 2 epochs × 4 steps, batch 32, augmentation on, f32 |",
        "| model | ResNet-18, width 8, 10 classes |",
        "| step | `{\"kind\":\"step\",\"step_size\":1,\"gamma\":0.1}` |",
        // Two seeds: the bootstrap's caveat counts two values' resamples.
        "too narrow (2 values have 3 distinct resamples)",
    ] {
        assert!(report.contains(needle), "{needle}: {report}");
    }
    for plot in ["val_acc", "val_loss", "lr", "gap", "epochs_to_threshold"] {
        let png = fs::read(reports.join(format!("cifar10/{plot}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{plot}.png is a PNG");
        let svg = fs::read_to_string(reports.join(format!("cifar10/{plot}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("plateau"),
            "{plot}.svg has a legend"
        );
    }

    let message = failure(&[
        "analyze",
        "--runs",
        runs_arg,
        "--out",
        reports.to_str().unwrap(),
        "--baseline",
        "cosine",
    ]);
    assert!(
        message.contains("--baseline cosine") && message.contains("constant, plateau, step"),
        "{message}"
    );

    // A NaN validation accuracy is refused by file, column and row, not taken for the best.
    let damaged = lrlab_runs::RunDir::new(runs.join("cifar10/plateau/seed-0"));
    let (epochs, steps) = (
        damaged.read_epochs().unwrap(),
        damaged.read_steps().unwrap(),
    );
    let mut nan = epochs.clone();
    nan[1].val_acc = f64::NAN;
    damaged.write_rows(&nan, &steps).unwrap();
    let message = failure(&["analyze", "--runs", runs_arg]);
    assert!(
        message.contains("plateau/seed-0/epochs.parquet")
            && message.contains("`val_acc` is NaN at row 1"),
        "{message}"
    );
    damaged.write_rows(&epochs, &steps).unwrap();

    // A run written in another format is refused by name, not misread.
    let record = runs.join("cifar10/step/seed-1/run.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&record).unwrap()).unwrap();
    value["schema"] = 1.into();
    fs::write(&record, value.to_string()).unwrap();
    let message = failure(&["analyze", "--runs", runs_arg]);
    assert!(
        message.contains("step/seed-1/run.json") && message.contains("format 1"),
        "{message}"
    );
}

#[test]
fn a_missing_runs_folder_says_how_to_make_one() {
    let folder = tempfile::tempdir().unwrap();
    let missing = folder.path().join("runs");
    let message = failure(&["analyze", "--runs", missing.to_str().unwrap()]);
    assert!(
        message.contains("cargo xtask experiment") && message.contains("runs"),
        "{message}"
    );
}
