//! A NaN or an infinity anywhere in a model's tensors is found by name, though the activations
//! may hide it from the logits.

mod common;

use candle_core::{Device, Tensor};
use common::small_bert;
use lrlab_models::{Network, ResNet18, ResNetConfig};

/// Fills the tensor `name` of `model` with `value`.
fn poison(model: &impl Network, name: &str, value: f32) {
    let parameters = model.parameters();
    let (_, var) = parameters
        .trainable()
        .iter()
        .chain(parameters.buffers())
        .find(|(n, _)| n == name)
        .unwrap();
    var.set(&Tensor::full(value, var.dims(), &Device::Cpu).unwrap())
        .unwrap();
}

#[test]
fn a_poisoned_tensor_is_found_by_name() {
    let config = ResNetConfig {
        width: 4,
        num_classes: 10,
    };
    let resnet = || ResNet18::new(config, 0, &Device::Cpu).unwrap();
    let healthy = resnet();
    assert_eq!(healthy.parameters().first_non_finite().unwrap(), None);
    let stem = resnet();
    poison(&stem, "conv1.weight", f32::NAN);
    assert_eq!(
        stem.parameters().first_non_finite().unwrap(),
        Some("conv1.weight")
    );
    let statistics = resnet();
    poison(&statistics, "layer3.1.bn2.running_var", f32::INFINITY);
    assert_eq!(
        statistics.parameters().first_non_finite().unwrap(),
        Some("layer3.1.bn2.running_var")
    );
    let bert = small_bert(0, 0.1, &Device::Cpu);
    assert_eq!(bert.parameters().first_non_finite().unwrap(), None);
    poison(&bert, "classifier.bias", f32::NEG_INFINITY);
    assert_eq!(
        bert.parameters().first_non_finite().unwrap(),
        Some("classifier.bias")
    );
}
