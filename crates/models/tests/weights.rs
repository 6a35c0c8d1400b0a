//! Saving and loading: lrlab's files load back unchanged, checkpoints with a missing head get a
//! fresh one, and broken files are refused with an error naming the file, the tensor and the fix.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, ModuleT, Tensor};
use common::{fixture, minilm, minilm_files};
use lrlab_models::{BertClassifier, BertConfig, ModelError, ResNet18, ResNetConfig};

fn write(path: &Path, tensors: &HashMap<String, Tensor>) {
    candle_core::safetensors::save(tensors, path).unwrap();
}

fn resnet_w4() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("resnet_w4.safetensors"), &Device::Cpu).unwrap()
}

fn state(model: &ResNet18) -> Vec<(String, Vec<f32>)> {
    let flat = |t: Tensor| {
        t.to_dtype(candle_core::DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    model
        .parameters()
        .state()
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, flat(t)))
        .collect()
}

/// Evaluation-mode logits, flat.
fn logits(model: &impl ModuleT, input: &Tensor) -> Vec<f32> {
    let logits = model.forward_t(input, false).unwrap();
    logits.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn a_saved_resnet_loads_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::Cpu;
    let model = ResNet18::new(
        ResNetConfig {
            width: 8,
            num_classes: 7,
        },
        11,
        &device,
    )
    .unwrap();
    let images = Tensor::randn(0f32, 1.0, (2, 3, 32, 32), &device).unwrap();
    model.forward_t(&images, true).unwrap();
    let path = dir.path().join("resnet.safetensors");
    std::fs::write(&path, model.parameters().to_safetensors().unwrap()).unwrap();
    let loaded = ResNet18::load(&[&path], &device).unwrap();
    assert_eq!(loaded.config(), model.config());
    assert_eq!(state(&loaded), state(&model));
    assert_eq!(logits(&loaded, &images), logits(&model, &images));
}

#[test]
fn fresh_resnets_depend_on_the_seed_only() {
    let device = Device::Cpu;
    let config = ResNetConfig {
        width: 4,
        num_classes: 10,
    };
    let a = ResNet18::new(config, 1, &device).unwrap();
    assert_eq!(
        state(&a),
        state(&ResNet18::new(config, 1, &device).unwrap())
    );
    assert_ne!(
        state(&a),
        state(&ResNet18::new(config, 2, &device).unwrap())
    );
}

#[test]
fn a_checkpoint_without_a_head_gets_a_seeded_one_and_a_saved_classifier_loads_whole() {
    let (config, weights) = minilm_files();
    let load = |files: &[&Path], seed| {
        BertClassifier::from_checkpoint(
            BertConfig::from_file(&config).unwrap(),
            files,
            2,
            seed,
            &Device::Cpu,
        )
        .unwrap()
    };
    let (model, report) = load(&[&weights], 4);
    assert_eq!(report.fresh, ["classifier.weight", "classifier.bias"]);
    assert_eq!(report.unused, ["embeddings.position_ids"]);
    let head = |m: &BertClassifier| {
        let state = m.parameters().state().unwrap();
        let w = &state
            .iter()
            .find(|(n, _)| n == "classifier.weight")
            .unwrap()
            .1;
        w.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    assert_eq!(head(&model), head(&load(&[&weights], 4).0));
    assert_ne!(head(&model), head(&load(&[&weights], 5).0));

    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("model.safetensors");
    std::fs::write(&saved, model.parameters().to_safetensors().unwrap()).unwrap();
    let (again, report) = load(&[&saved], 9);
    assert!(
        report.fresh.is_empty() && report.unused.is_empty(),
        "{report:?}"
    );
    let ids = Tensor::new(&[[101u32, 2307, 3185, 102]], &Device::Cpu).unwrap();
    assert_eq!(logits(&again, &ids), logits(&model, &ids));
}

fn load_error(tensors: HashMap<String, Tensor>) -> (String, ModelError) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.safetensors");
    write(&path, &tensors);
    let error = ResNet18::load(&[&path], &Device::Cpu).unwrap_err();
    (error.to_string(), error)
}

#[test]
fn broken_resnet_checkpoints_are_refused_with_the_file_and_the_tensor() {
    let mut missing = resnet_w4();
    missing.remove("layer3.1.bn2.running_var");
    let (message, error) = load_error(missing);
    assert!(
        matches!(error, ModelError::MissingTensor { .. }),
        "{message}"
    );
    assert!(
        message.contains("broken.safetensors") && message.contains("layer3.1.bn2.running_var"),
        "{message}"
    );

    let mut reshaped = resnet_w4();
    reshaped.insert(
        "layer2.0.conv1.weight".into(),
        Tensor::zeros((8, 4, 5, 5), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let (message, error) = load_error(reshaped);
    assert!(
        matches!(error, ModelError::ShapeMismatch { .. }),
        "{message}"
    );
    assert!(
        message.contains("layer2.0.conv1.weight")
            && message.contains("[8, 4, 5, 5]")
            && message.contains("[8, 4, 3, 3]"),
        "{message}"
    );

    let mut extra = resnet_w4();
    extra.insert(
        "fc2.weight".into(),
        Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let (message, error) = load_error(extra);
    assert!(
        matches!(error, ModelError::UnexpectedTensors { .. }),
        "{message}"
    );
    assert!(message.contains("fc2.weight"), "{message}");

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    let message = ResNet18::load(&[&junk], &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("junk.safetensors") && message.contains("safetensors"),
        "{message}"
    );
    let absent = dir.path().join("absent.safetensors");
    let message = ResNet18::load(&[&absent], &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(message.contains("absent.safetensors"), "{message}");
}

#[test]
fn bad_bert_configs_and_heads_are_refused_with_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"hidden_size": 384}"#).unwrap();
    let message = BertConfig::from_file(&config).unwrap_err().to_string();
    assert!(
        message.contains("config.json") && message.contains("vocab_size"),
        "{message}"
    );

    let (minilm_config, _) = minilm_files();
    let text = std::fs::read_to_string(minilm_config)
        .unwrap()
        .replace("\"num_attention_heads\": 12", "\"num_attention_heads\": 5");
    std::fs::write(&config, text).unwrap();
    let message = BertConfig::from_file(&config).unwrap_err().to_string();
    assert!(message.contains("num_attention_heads"), "{message}");

    // A saved 2-label classifier read as a 3-label one.
    let model = minilm(&[], false, 0);
    let saved = dir.path().join("model.safetensors");
    std::fs::write(&saved, model.parameters().to_safetensors().unwrap()).unwrap();
    let config = model.config().clone();
    let error = BertClassifier::from_checkpoint(config, &[&saved], 3, 0, &Device::Cpu).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("classifier.weight") && message.contains("num_labels"),
        "{message}"
    );
}
