//! `cargo xtask evaluate` end to end on the real samples of `../shared/hf-cache`, offline,
//! against PyTorch's loss and accuracy on the same examples
//! (`crates/models/scripts/reference.py` writes `evaluate_expected.json`).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use common::{failure, shared_home};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/models/tests/fixtures")
        .join(name)
}

/// `cargo xtask evaluate <args>`'s JSON.
fn evaluate(args: &[&str]) -> Value {
    common::json(&[&["evaluate"], args].concat())
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("evaluate_expected.json")).unwrap())
        .unwrap()
}

fn assert_matches_pytorch(got: &Value, want: &Value) {
    assert_eq!(got["n"], want["n"]);
    assert_eq!(got["accuracy"], want["accuracy"], "{got} vs {want}");
    let (loss, torch) = (
        got["loss"].as_f64().unwrap(),
        want["loss"].as_f64().unwrap(),
    );
    assert!(
        (loss - torch).abs() <= 1e-4 * torch,
        "loss {loss} vs PyTorch {torch}"
    );
}

#[test]
fn cifar10_loss_and_accuracy_match_pytorch() {
    let want = &expected()["cifar10"];
    let weights = fixture(want["weights"].as_str().unwrap());
    let got = evaluate(&[
        "cifar10",
        "--weights",
        weights.to_str().unwrap(),
        "--limit",
        "64",
        "--batch-size",
        "24",
    ]);
    assert_matches_pytorch(&got, want);
}

/// MiniLM from the cache with the fixture's head: a whole classifier in one file, as a run
/// saves it.
fn minilm_classifier(dir: &Path, want: &Value) -> PathBuf {
    let checkpoint = want["checkpoint"].as_str().unwrap().replace('/', "--");
    let snapshots = shared_home().join(format!("hub/models--{checkpoint}/snapshots"));
    let snapshot = std::fs::read_dir(snapshots)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(snapshot.join("model.safetensors"), &Device::Cpu).unwrap();
    tensors.extend(
        candle_core::safetensors::load(fixture(want["head"].as_str().unwrap()), &Device::Cpu)
            .unwrap(),
    );
    let path = dir.join("classifier.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    path
}

/// `imdb --weights W --checkpoint C --limit N`, the checkpoint from the fixture.
fn imdb_args<'a>(weights: &'a Path, want: &'a Value, limit: &'a str) -> [&'a str; 7] {
    let weights = weights.to_str().unwrap();
    let checkpoint = want["checkpoint"].as_str().unwrap();
    [
        "imdb",
        "--weights",
        weights,
        "--checkpoint",
        checkpoint,
        "--limit",
        limit,
    ]
}

#[test]
fn imdb_loss_and_accuracy_match_pytorch() {
    let want = &expected()["imdb"];
    let dir = tempfile::tempdir().unwrap();
    let weights = minilm_classifier(dir.path(), want);
    let args = imdb_args(&weights, want, "16");
    assert_matches_pytorch(&evaluate(&args), want);
}

#[test]
fn a_base_checkpoint_without_a_head_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let want = &expected()["imdb"];
    let weights = minilm_classifier(dir.path(), want);
    let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    tensors.retain(|name, _| !name.starts_with("classifier."));
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let stderr = failure(&[&["evaluate"], &imdb_args(&weights, want, "2")[..]].concat());
    assert!(
        stderr.contains("classifier.weight") && stderr.contains("classifier.safetensors"),
        "{stderr}"
    );
}

#[test]
fn missing_weights_name_the_file() {
    let weights = "/nonexistent/model.safetensors";
    let stderr = failure(&["evaluate", "cifar10", "--weights", weights]);
    assert!(
        stderr.contains("/nonexistent/model.safetensors"),
        "{stderr}"
    );
}

/// The fixture's ResNet weights with `change` made to its tensors, saved in `dir`.
fn edited_resnet(dir: &Path, change: impl FnOnce(&mut HashMap<String, Tensor>)) -> PathBuf {
    let want = &expected()["cifar10"];
    let weights = fixture(want["weights"].as_str().unwrap());
    let mut tensors = candle_core::safetensors::load(weights, &Device::Cpu).unwrap();
    change(&mut tensors);
    let path = dir.join("edited.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    path
}

/// The stderr of `evaluate cifar10 --weights <weights>`, which must fail.
fn refused_on_cifar10(weights: &Path) -> String {
    failure(&[
        "evaluate",
        "cifar10",
        "--weights",
        weights.to_str().unwrap(),
    ])
}

#[test]
fn a_head_of_another_size_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for classes in [100, 5] {
        let weights = edited_resnet(dir.path(), |tensors| {
            let inputs = tensors["fc.weight"].dim(1).unwrap();
            let head = Tensor::zeros((classes, inputs), candle_core::DType::F32, &Device::Cpu);
            tensors.insert("fc.weight".into(), head.unwrap());
            let bias = Tensor::zeros(classes, candle_core::DType::F32, &Device::Cpu);
            tensors.insert("fc.bias".into(), bias.unwrap());
        });
        let stderr = refused_on_cifar10(&weights);
        assert!(
            stderr.contains("edited.safetensors")
                && stderr.contains(&format!("`fc.weight` has {classes} outputs"))
                && stderr.contains("cifar10 has 10 classes"),
            "{stderr}"
        );
    }
}

#[test]
fn weights_holding_a_nan_are_refused_though_relu_would_hide_it() {
    let dir = tempfile::tempdir().unwrap();
    let weights = edited_resnet(dir.path(), |tensors| {
        let conv1 = &tensors["conv1.weight"];
        let nan = Tensor::full(f32::NAN, conv1.dims(), &Device::Cpu).unwrap();
        tensors.insert("conv1.weight".into(), nan);
    });
    let stderr = refused_on_cifar10(&weights);
    assert!(
        stderr.contains("edited.safetensors")
            && stderr.contains("`conv1.weight` holds NaN")
            && stderr.contains("diverged"),
        "{stderr}"
    );
}

#[test]
fn nothing_to_evaluate_is_refused() {
    let weights = fixture(expected()["cifar10"]["weights"].as_str().unwrap());
    let weights = weights.to_str().unwrap();
    for flag in ["--limit", "--batch-size"] {
        let stderr = failure(&["evaluate", "cifar10", "--weights", weights, flag, "0"]);
        assert!(stderr.contains(&format!("'0' for '{flag}")), "{stderr}");
    }
}
