//! bf16 mixed precision against f32 on the CPU: the same step within bfloat16's rounding, with
//! parameters, logits and gradients staying f32, and a switch back to f32 undoing it exactly.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{
    Step, assert_same_step, relative_error, seeded_normal, small_bert, small_ids, training_step,
};
use lrlab_models::{Network, ResNet18, ResNetConfig};

/// bfloat16 keeps 8 significant bits (2⁻⁹ ≈ 2e-3 relative rounding per operation). PyTorch's
/// autocast to bf16, against its own f32, differs by 0.017–0.021 in the logits and by 0.28 in
/// ResNet-18's gradient vector at initialisation (the gradient through 20 batch norms cancels
/// much), 0.008 in a small BERT's (`scripts/bf16_error.py`); the bounds allow lrlab as much and a
/// little more (lrlab's logits: 0.02–0.031 over random inputs). A lost gradient or a broken cast
/// gives an error near 1.
const VALUES: f64 = 5e-2;
const RESNET_GRADIENTS: f64 = 0.4;
const BERT_GRADIENTS: f64 = 6e-2;

fn check(what: &str, model: &impl Network, inputs: &Tensor, classes: u32, gradients: f64) {
    assert_eq!(
        model.compute_dtype(),
        DType::F32,
        "{what}: models start in f32"
    );
    let f32_step: Step = training_step(model, inputs, classes);
    model.set_compute_dtype(DType::BF16).unwrap();
    let bf16_step = training_step(model, inputs, classes);
    assert_same_step(what, &bf16_step, &f32_step, VALUES, gradients);
    let logits_differ = relative_error(&bf16_step.logits, &f32_step.logits);
    assert!(logits_differ > 0.0, "{what}: bf16 computed nothing in bf16");
    model.set_compute_dtype(DType::F32).unwrap();
    let again = training_step(model, inputs, classes);
    assert_same_step(what, &again, &f32_step, 0.0, 0.0);
}

#[test]
fn resnet_in_bf16_follows_f32() {
    let device = Device::Cpu;
    let config = ResNetConfig {
        width: 8,
        num_classes: 10,
    };
    let model = ResNet18::new(config, 3, &device).unwrap();
    let images = seeded_normal(&[4, 3, 32, 32], 11);
    check("resnet18", &model, &images, 10, RESNET_GRADIENTS);
}

#[test]
fn bert_in_bf16_follows_f32_with_dropout_and_padding() {
    let device = Device::Cpu;
    let model = small_bert(5, 0.1, &device);
    check(
        "bert",
        &model,
        &small_ids(4, 16, &device),
        2,
        BERT_GRADIENTS,
    );
}
