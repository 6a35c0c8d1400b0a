//! Writes lrlab's models and their outputs to a folder, for `scripts/reference.py` to load in
//! torchvision and transformers with `strict=True` and compare logits:
//!
//! ```text
//! cargo run -p lrlab-models --example export_for_pytorch -- DIR
//! ```
//!
//! - `resnet18.safetensors`: a fresh ResNet-18 (width 64, seed 1) after one training batch
//!   (so the running statistics are not the initial ones); `resnet18_io.safetensors`: an input
//!   batch and its evaluation-mode logits.
//! - `minilm/model.safetensors`: all-MiniLM-L6-v2 from the shared Hub cache with a fresh
//!   2-label head (seed 1), the whole `BertForSequenceClassification`; `minilm_io.safetensors`:
//!   token ids, attention mask and evaluation-mode logits.

use std::path::PathBuf;

use candle_core::{DType, Device, ModuleT, Tensor};
use lrlab_datasets::{Hub, RepoRef};
use lrlab_models::{BertClassifier, BertConfig, ResNet18, ResNetConfig};

const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: export_for_pytorch DIR")?,
    );
    std::fs::create_dir_all(dir.join("minilm"))?;
    let device = Device::Cpu;
    let save =
        |file: &str, tensors: Vec<(&str, Tensor)>| -> Result<(), Box<dyn std::error::Error>> {
            let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (*n, t)), None)?;
            std::fs::write(dir.join(file), bytes)?;
            Ok(())
        };

    let resnet = ResNet18::new(ResNetConfig::default(), 1, &device)?;
    let images = wave(&[4, 3, 32, 32], &device)?;
    resnet.forward_t(&images, true)?;
    let logits = resnet.forward_t(&images, false)?;
    std::fs::write(
        dir.join("resnet18.safetensors"),
        resnet.parameters().to_safetensors()?,
    )?;
    save(
        "resnet18_io.safetensors",
        vec![("input", images), ("logits", logits)],
    )?;

    let hub = Hub::from_env();
    let repo = RepoRef::model(MINILM);
    let config = BertConfig::from_file(&hub.file(&repo, "config.json")?)?;
    let weights = hub.file(&repo, "model.safetensors")?;
    let (bert, _) = BertClassifier::from_checkpoint(config, &[weights], 2, 1, &device)?;
    let ids: Vec<u32> = (0..2 * 12).map(|i| 1000 + (i * 7919) % 28000).collect();
    let ids = Tensor::from_vec(ids, (2, 12), &device)?;
    let mask = Tensor::from_vec(
        [[1u32; 12], [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]].concat(),
        (2, 12),
        &device,
    )?;
    let ids = (ids * &mask)?;
    let logits = bert.forward_masked(&ids, Some(&mask), false)?;
    std::fs::write(
        dir.join("minilm/model.safetensors"),
        bert.parameters().to_safetensors()?,
    )?;
    let as_i64 = |t: &Tensor| t.to_dtype(DType::I64);
    save(
        "minilm_io.safetensors",
        vec![
            ("input_ids", as_i64(&ids)?),
            ("attention_mask", as_i64(&mask)?),
            ("logits", logits),
        ],
    )?;
    println!("wrote {}", dir.display());
    Ok(())
}

/// A deterministic input without a random generator: `sin(0.37 i)`.
fn wave(shape: &[usize], device: &Device) -> candle_core::Result<Tensor> {
    let count = shape.iter().product::<usize>();
    let values: Vec<f32> = (0..count).map(|i| (0.37 * i as f32).sin()).collect();
    Tensor::from_vec(values, shape, device)
}
