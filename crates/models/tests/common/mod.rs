//! Shared by the model tests: the real Hub cache, the fixtures and tolerance checks.

#![allow(dead_code)] // each test file uses its own part

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use lrlab_datasets::{Hub, RepoRef};
use lrlab_models::{BertClassifier, BertConfig};

/// The checkpoint of the BERT tests, present in `../shared/hf-cache`.
pub const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The shared Hub cache, offline, whatever the environment says.
pub fn hub() -> Hub {
    Hub::offline(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/hf-cache/hub"))
}

/// A file of this crate's fixtures.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// MiniLM's `config.json` and `model.safetensors` in the shared cache.
pub fn minilm_files() -> (PathBuf, PathBuf) {
    let repo = RepoRef::model(MINILM);
    let hub = hub();
    (
        hub.file(&repo, "config.json").unwrap(),
        hub.file(&repo, "model.safetensors").unwrap(),
    )
}

/// MiniLM with a 2-label head: `extra` files are laid over the checkpoint; `dropout` false
/// sets every dropout probability to 0.
pub fn minilm(extra: &[PathBuf], dropout: bool, seed: u64) -> BertClassifier {
    let (config, weights) = minilm_files();
    let mut config = BertConfig::from_file(&config).unwrap();
    if !dropout {
        config.encoder.hidden_dropout_prob = 0.0;
        config.attention_probs_dropout_prob = 0.0;
    }
    let files: Vec<PathBuf> = std::iter::once(weights)
        .chain(extra.iter().cloned())
        .collect();
    BertClassifier::from_checkpoint(config, &files, 2, seed, &Device::Cpu)
        .unwrap()
        .0
}

/// The largest absolute difference relative to the largest magnitude of `expected`.
pub fn relative_error(actual: &Tensor, expected: &Tensor) -> f64 {
    let actual = actual.to_dtype(candle_core::DType::F64).unwrap();
    let expected = expected.to_dtype(candle_core::DType::F64).unwrap();
    let diff = (actual - &expected)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    let scale = expected.abs().unwrap().max_all().unwrap();
    diff.to_scalar::<f64>().unwrap() / scale.to_scalar::<f64>().unwrap().max(f64::MIN_POSITIVE)
}

/// Asserts `actual` is within `tolerance` of `expected`, relative to `expected`'s magnitude.
pub fn assert_close(what: &str, actual: &Tensor, expected: &Tensor, tolerance: f64) {
    assert_eq!(actual.dims(), expected.dims(), "{what}: shapes differ");
    let error = relative_error(actual, expected);
    assert!(
        error <= tolerance,
        "{what}: relative error {error:.3e} > {tolerance:e}"
    );
}
