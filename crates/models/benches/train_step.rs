//! One training step (forward, cross-entropy, backward, AdamW update) of each model at batch 32,
//! on the CPU. `scripts/torch_train_step.py` times the same steps in PyTorch for the ratio:
//!
//! ```text
//! cargo bench --profile dev -p lrlab-models --bench train_step
//! python3 crates/models/scripts/torch_train_step.py
//! ```

use std::path::PathBuf;

use candle_core::{Device, ModuleT, Tensor, Var};
use candle_nn::loss::cross_entropy;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use criterion::{Criterion, criterion_group, criterion_main};
use lrlab_datasets::{Hub, RepoRef};
use lrlab_models::{BertClassifier, BertConfig, Parameters, ResNet18, ResNetConfig};

const BATCH: usize = 32;
const MAX_LEN: usize = 128;

/// Times `model`'s training step on `inputs` with labels `0, 1, …, classes − 1, 0, …`.
fn bench_step(
    c: &mut Criterion,
    name: &str,
    model: &impl ModuleT,
    parameters: &Parameters,
    inputs: &Tensor,
    classes: u32,
) {
    let vars: Vec<Var> = parameters
        .trainable()
        .iter()
        .map(|(_, v)| v.clone())
        .collect();
    let params = ParamsAdamW {
        lr: 1e-3,
        weight_decay: 1e-4,
        ..Default::default()
    };
    let mut adam = AdamW::new(vars, params).unwrap();
    let labels: Vec<u32> = (0..BATCH as u32).map(|i| i % classes).collect();
    let labels = Tensor::new(labels, inputs.device()).unwrap();
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    group.bench_function(name, |b| {
        b.iter(|| {
            let loss = cross_entropy(&model.forward_t(inputs, true).unwrap(), &labels).unwrap();
            adam.backward_step(&loss).unwrap();
        })
    });
    group.finish();
}

fn resnet(c: &mut Criterion) {
    let device = Device::Cpu;
    let model = ResNet18::new(ResNetConfig::default(), 0, &device).unwrap();
    let images = Tensor::randn(0f32, 1.0, (BATCH, 3, 32, 32), &device).unwrap();
    let name = "resnet18_cifar_batch32";
    bench_step(c, name, &model, model.parameters(), &images, 10);
}

fn minilm(c: &mut Criterion) {
    let device = Device::Cpu;
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/hf-cache/hub");
    let hub = Hub::offline(cache);
    let repo = RepoRef::model("sentence-transformers/all-MiniLM-L6-v2");
    let config = BertConfig::from_file(&hub.file(&repo, "config.json").unwrap()).unwrap();
    let weights = hub.file(&repo, "model.safetensors").unwrap();
    let (model, _) = BertClassifier::from_checkpoint(config, &[weights], 2, 0, &device).unwrap();
    let ids: Vec<u32> = (0..BATCH * MAX_LEN)
        .map(|i| 1000 + (i as u32 * 7919) % 28000)
        .collect();
    let ids = Tensor::from_vec(ids, (BATCH, MAX_LEN), &device).unwrap();
    let name = "minilm_l6_batch32_len128";
    bench_step(c, name, &model, model.parameters(), &ids, 2);
}

criterion_group!(benches, resnet, minilm);
criterion_main!(benches);
