//! The models on a CUDA GPU against the same models on the CPU: one training step's logits,
//! loss and gradients, in f32 and in bf16. Only with `--features cuda`, on a machine with a GPU
//! (`scripts/build-cuda.sh` builds this test; `scripts/gpu-check.sh` runs it there).
#![cfg(feature = "cuda")]

mod common;

use candle_core::{DType, Device, ModuleT, Tensor};
use common::{assert_same_step, seeded_normal, small_bert, small_ids, training_step};
use lrlab_models::{BertClassifier, Network, ResNet18, ResNetConfig};

/// cuBLAS and candle's CUDA kernels sum in other orders than the CPU's: f32 rounding.
const F32_VALUES: f64 = 1e-4;
const F32_GRADIENTS: f64 = 1e-3;
/// bf16 on the GPU against f32 on the CPU: the bounds of `tests/precision.rs` (PyTorch's own
/// bf16 error at these settings, and a little more).
const BF16_VALUES: f64 = 5e-2;

fn gpu() -> Device {
    Device::new_cuda(0).expect("these tests need a CUDA GPU")
}

fn compare<M: Network>(
    what: &str,
    build: impl Fn(&Device) -> M,
    inputs: &Tensor,
    classes: u32,
    bf16_gradients: f64,
) {
    let gpu = gpu();
    let on_cpu = training_step(&build(&Device::Cpu), inputs, classes);
    let model = build(&gpu);
    let gpu_inputs = inputs.to_device(&gpu).unwrap();
    let on_gpu = training_step(&model, &gpu_inputs, classes);
    assert_same_step(
        &format!("{what}, f32"),
        &on_gpu,
        &on_cpu,
        F32_VALUES,
        F32_GRADIENTS,
    );
    let model = build(&gpu);
    model.set_compute_dtype(DType::BF16).unwrap();
    let on_gpu = training_step(&model, &gpu_inputs, classes);
    assert_same_step(
        &format!("{what}, bf16"),
        &on_gpu,
        &on_cpu,
        BF16_VALUES,
        bf16_gradients,
    );
}

#[test]
fn resnet_on_the_gpu_computes_the_cpus_step() {
    let config = ResNetConfig {
        width: 16,
        num_classes: 10,
    };
    let images = seeded_normal(&[8, 3, 32, 32], 13);
    compare(
        "resnet18",
        |d| ResNet18::new(config, 7, d).unwrap(),
        &images,
        10,
        0.4,
    );
}

/// Without dropout: the GPU draws its masks from its own generator, so with dropout the two
/// steps differ by design (the masks' own test is below).
#[test]
fn bert_on_the_gpu_computes_the_cpus_step() {
    let ids = small_ids(4, 32, &Device::Cpu);
    compare("bert", |d| small_bert(9, 0.0, d), &ids, 2, 6e-2);
}

/// The GPU's dropout masks, drawn on the GPU: a function of (seed, step) alone — a fresh model
/// at step 5 computes what one that went through steps 0–4 computes — and different per step.
#[test]
fn gpu_dropout_masks_repeat_for_the_same_seed_and_step() {
    let gpu = gpu();
    let ids = small_ids(4, 32, &gpu);
    let logits = |model: &BertClassifier, step: u64| -> Vec<f32> {
        model.set_dropout_stream(step);
        let out = model.forward_t(&ids, true).unwrap();
        out.flatten_all().unwrap().to_vec1().unwrap()
    };
    let uninterrupted = small_bert(3, 0.3, &gpu);
    for step in 0..5 {
        logits(&uninterrupted, step);
    }
    let at_five = logits(&uninterrupted, 5);
    assert_eq!(at_five, logits(&small_bert(3, 0.3, &gpu), 5));
    assert_ne!(at_five, logits(&uninterrupted, 6));
    let evaluated = small_bert(3, 0.3, &gpu).forward_t(&ids, false).unwrap();
    assert_ne!(
        at_five,
        evaluated.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
}
