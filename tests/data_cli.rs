//! `cargo xtask data` end to end on the real samples of `../shared/hf-cache`, offline, against
//! statistics computed in Python (`crates/datasets/scripts/python_reference.py`).

mod common;

use serde_json::Value;

/// `cargo xtask data <args>`'s JSON.
fn data(args: &[&str]) -> Value {
    common::json(&[&["data"], args].concat())
}

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/datasets/tests/fixtures/python_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(a: &Value, b: &Value, tolerance: f64) -> bool {
    (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= tolerance
}

#[test]
fn cifar10_summary() {
    let summary = data(&["cifar10", "--json"]);
    assert_eq!(summary["dataset"], "cifar10");
    for (split, n, per_class) in [("train", 1800, 180), ("val", 200, 20), ("test", 500, 50)] {
        assert_eq!(summary["splits"][split]["n"], n, "{split}");
        assert_eq!(
            summary["splits"][split]["label_counts"],
            serde_json::json!(vec![per_class; 10])
        );
    }
    let reference = &reference()["cifar10"];
    for key in ["pixel_mean", "pixel_std"] {
        for c in 0..3 {
            assert!(
                close(&summary[key][c], &reference[key][c], 1e-12),
                "{key}[{c}]"
            );
        }
    }
    let other = data(&["cifar10", "--json", "--val-fraction", "0.2", "--seed", "3"]);
    assert_eq!(other["splits"]["val"]["n"], 400);
    let table = common::xtask(&["data", "cifar10"]);
    assert!(!table.stdout.is_empty(), "a table without --json");
}

#[test]
fn imdb_summary() {
    let reference = &reference()["imdb"];
    let checkpoint = reference["checkpoint"].as_str().unwrap();
    let summary = data(&["imdb", "--json", "--checkpoint", checkpoint]);
    assert_eq!(summary["dataset"], "imdb");
    assert_eq!(
        summary["splits"]["train"]["label_counts"],
        serde_json::json!([450, 450])
    );
    assert_eq!(
        summary["splits"]["val"]["label_counts"],
        serde_json::json!([50, 50])
    );
    assert_eq!(
        summary["splits"]["test"]["label_counts"],
        serde_json::json!([250, 250])
    );
    assert_eq!(summary["tokens_max"], reference["tokens_max"]);
    assert!(close(
        &summary["tokens_mean"],
        &reference["tokens_mean"],
        1e-9
    ));
    assert!(close(
        &summary["truncated_fraction"],
        &reference["truncated_fraction"],
        1e-12
    ));
}

#[test]
fn a_checkpoint_missing_offline_is_named() {
    let err = common::failure(&["data", "imdb", "--json"]);
    assert!(
        err.contains("model google-bert/bert-base-uncased")
            && err.contains("`tokenizer.json` is not in the Hub cache")
            && err.contains("hf-cache/hub"),
        "{err}"
    );
}
