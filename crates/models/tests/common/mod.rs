//! Shared by the model tests: the real Hub cache, the fixtures and tolerance checks.

#![allow(dead_code)] // each test file uses its own part

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use lrlab_datasets::{Hub, RepoRef};
use lrlab_models::{BertClassifier, BertConfig, Network};

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

/// A two-layer BERT of random weights (hidden 64, 4 heads, vocabulary 1000) with dropout
/// `dropout` everywhere: the layers of the real one at a size every device test can afford,
/// with no file to read.
pub fn small_bert(seed: u64, dropout: f64, device: &Device) -> BertClassifier {
    let config: BertConfig = serde_json::from_value(serde_json::json!({
        "vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 128, "hidden_act": "gelu", "hidden_dropout_prob": dropout,
        "attention_probs_dropout_prob": dropout, "max_position_embeddings": 64, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0
    }))
    .unwrap();
    BertClassifier::new(config, 2, seed, device).unwrap()
}

/// `(batch, len)` token ids below 1000 with the last two of the first row padding.
pub fn small_ids(batch: usize, len: usize, device: &Device) -> Tensor {
    let ids: Vec<u32> = (0..batch * len)
        .map(|i| {
            if i == len - 1 || i == len - 2 {
                0
            } else {
                1 + (i as u32 * 7919) % 999
            }
        })
        .collect();
    Tensor::from_vec(ids, (batch, len), device).unwrap()
}

/// What one training step computes: logits, loss and every parameter's gradient (on the CPU).
pub struct Step {
    pub logits: Tensor,
    pub loss: Tensor,
    pub gradients: Vec<(String, Tensor)>,
}

/// A training-mode forward pass of `model` on `inputs`, cross-entropy against labels
/// `i mod classes`, and the backward pass; dropout stream 1.
pub fn training_step(model: &impl Network, inputs: &Tensor, classes: u32) -> Step {
    let batch = inputs.dim(0).unwrap() as u32;
    let labels = Tensor::new(
        (0..batch).map(|i| i % classes).collect::<Vec<_>>(),
        inputs.device(),
    );
    model.set_random_stream(1);
    let logits = model.forward_t(inputs, true).unwrap();
    assert_eq!(logits.dtype(), DType::F32, "logits must come out in f32");
    let loss = candle_nn::loss::cross_entropy(&logits, &labels.unwrap()).unwrap();
    let grads = loss.backward().unwrap();
    let gradients = model
        .parameters()
        .trainable()
        .iter()
        .map(|(name, var)| {
            assert_eq!(var.dtype(), DType::F32, "{name}: parameters stay f32");
            let grad = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient"));
            assert_eq!(grad.dtype(), DType::F32, "{name}: gradients are f32");
            (name.clone(), grad.to_device(&Device::Cpu).unwrap())
        })
        .collect();
    Step {
        logits: logits.to_device(&Device::Cpu).unwrap(),
        loss: loss.to_device(&Device::Cpu).unwrap(),
        gradients,
    }
}

/// ‖a − b‖ / ‖b‖ over every gradient together.
fn gradient_error(actual: &Step, expected: &Step) -> f64 {
    let squares = |t: Tensor| {
        t.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let (mut diff, mut norm) = (0.0, 0.0);
    for ((name, a), (other, b)) in actual.gradients.iter().zip(&expected.gradients) {
        assert_eq!(name, other);
        let a = a.to_dtype(DType::F64).unwrap();
        let b = b.to_dtype(DType::F64).unwrap();
        diff += squares((a - &b).unwrap());
        norm += squares(b);
    }
    (diff / norm).sqrt()
}

/// Asserts that two steps of the same model agree: logits and loss within `values`, the
/// gradients as one vector within `gradients` (relative errors).
pub fn assert_same_step(what: &str, actual: &Step, expected: &Step, values: f64, gradients: f64) {
    assert_close(
        &format!("{what}: logits"),
        &actual.logits,
        &expected.logits,
        values,
    );
    assert_close(
        &format!("{what}: loss"),
        &actual.loss,
        &expected.loss,
        values,
    );
    let error = gradient_error(actual, expected);
    assert!(
        error <= gradients,
        "{what}: gradients' relative error {error:.3e} > {gradients:e}"
    );
}

/// Standard normal values of `shape` drawn from `seed` (candle's CPU generator cannot be seeded).
pub fn seeded_normal(shape: &[usize], seed: u64) -> Tensor {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let count = shape.iter().product();
    let values: Vec<f32> = (0..count)
        .map(|_| rand_distr::StandardNormal.sample(&mut rng))
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}
