//! lrlab's models against torchvision and transformers: tensor names and shapes, parameter
//! counts, logits, losses, gradients and batch-norm statistics from `scripts/reference.py`.

mod common;

use std::collections::BTreeMap;

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::loss::cross_entropy;
use common::{assert_close, fixture, minilm};
use lrlab_models::{BertClassifier, BertConfig, Parameters, ResNet18, ResNetConfig};
use serde_json::Value;

const LOGITS: f64 = 1e-4;
const GRADIENTS: f64 = 1e-3;

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn names_and_shapes(parameters: &Parameters) -> BTreeMap<String, Vec<usize>> {
    let state = parameters.state().unwrap();
    state
        .into_iter()
        .map(|(n, t)| (n, t.dims().to_vec()))
        .collect()
}

fn expected_names(entry: &Value) -> BTreeMap<String, Vec<usize>> {
    let pairs = entry["state_dict"].as_array().unwrap();
    pairs
        .iter()
        .map(|p| {
            let shape = p[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize);
            (p[0].as_str().unwrap().to_owned(), shape.collect())
        })
        .collect()
}

#[test]
fn resnet18_has_torchvisions_names_shapes_and_parameter_count() {
    let names = json("names.json");
    let model = ResNet18::new(ResNetConfig::default(), 0, &Device::Cpu).unwrap();
    assert_eq!(
        names_and_shapes(model.parameters()),
        expected_names(&names["resnet18"])
    );
    assert_eq!(model.parameters().trainable_count(), 11_173_962);
    assert_eq!(names["resnet18"]["trainable"], 11_173_962);
}

#[test]
fn bert_classifier_has_transformers_names_shapes_and_parameter_counts() {
    let names = json("names.json");
    let model = minilm(&[], true, 0);
    let entry = &names["minilm_classifier"];
    assert_eq!(names_and_shapes(model.parameters()), expected_names(entry));
    assert_eq!(
        model.parameters().trainable_count() as u64,
        entry["trainable"].as_u64().unwrap()
    );

    // bert-base-uncased's shape (candle-transformers' default config), drawn fresh.
    let config = BertConfig {
        encoder: Default::default(),
        attention_probs_dropout_prob: 0.1,
    };
    let base = BertClassifier::new(config, 2, 0, &Device::Cpu).unwrap();
    let head = 768 * 2 + 2;
    assert_eq!(base.parameters().trainable_count() - head, 109_482_240);
    assert_eq!(names["bert_base_uncased_encoder"]["trainable"], 109_482_240);
}

/// Every trainable parameter's gradient of `loss`, by name.
fn gradients(parameters: &Parameters, loss: &Tensor) -> BTreeMap<String, Tensor> {
    let grads = loss.backward().unwrap();
    parameters
        .trainable()
        .iter()
        .map(|(name, var)| {
            let grad = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient"));
            (name.clone(), grad.clone())
        })
        .collect()
}

#[test]
fn resnet18_matches_torchvision_in_evaluation_and_training() {
    let device = Device::Cpu;
    let expected =
        candle_core::safetensors::load(fixture("resnet_w4_expected.safetensors"), &device).unwrap();
    let model = ResNet18::load(&[fixture("resnet_w4.safetensors")], &device).unwrap();
    assert_eq!(
        model.config(),
        ResNetConfig {
            width: 4,
            num_classes: 10
        }
    );
    let images = &expected["input"];
    let labels = expected["labels"].to_dtype(DType::U32).unwrap();
    let before = names_and_values(model.parameters());

    let logits = model.forward_t(images, false).unwrap();
    assert_close("eval logits", &logits, &expected["logits_eval"], LOGITS);
    assert_eq!(
        names_and_values(model.parameters()),
        before,
        "evaluation moved the statistics"
    );

    let logits = model.forward_t(images, true).unwrap();
    assert_close("train logits", &logits, &expected["logits_train"], LOGITS);
    let loss = cross_entropy(&logits, &labels).unwrap();
    assert_close("loss", &loss, &expected["loss"], LOGITS);
    let grads = gradients(model.parameters(), &loss);
    assert_eq!(grads.len(), 62);
    for (name, grad) in &grads {
        assert_close(
            &format!("grad {name}"),
            grad,
            &expected[&format!("grad.{name}")],
            GRADIENTS,
        );
    }
    for (name, value) in model.parameters().state().unwrap() {
        if let Some(after) = expected.get(&format!("after.{name}")) {
            if name.ends_with("num_batches_tracked") {
                assert_eq!(value.to_scalar::<i64>().unwrap(), 4, "{name}");
                assert_eq!(after.to_scalar::<i64>().unwrap(), 4, "{name}");
            } else {
                assert_close(&name, &value, after, LOGITS);
            }
        }
    }
}

fn names_and_values(parameters: &Parameters) -> Vec<(String, Vec<f64>)> {
    let state = parameters.state().unwrap();
    let flat = |t: Tensor| {
        t.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    state.into_iter().map(|(n, t)| (n, flat(t))).collect()
}

fn ids(value: &Value, dtype: DType) -> Tensor {
    let rows: Vec<Vec<u32>> = serde_json::from_value(value.clone()).unwrap();
    let (b, l) = (rows.len(), rows[0].len());
    Tensor::from_vec(rows.concat(), (b, l), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn matrix(value: &Value) -> Tensor {
    let rows: Vec<Vec<f32>> = serde_json::from_value(value.clone()).unwrap();
    let (b, l) = (rows.len(), rows[0].len());
    Tensor::from_vec(rows.concat(), (b, l), &Device::Cpu).unwrap()
}

#[test]
fn bert_classifier_matches_transformers_in_evaluation_and_training() {
    let expected = json("minilm_expected.json");
    let model = minilm(&[fixture("minilm_head.safetensors")], false, 0);
    let input_ids = ids(&expected["input_ids"], DType::U32);
    let mask = ids(&expected["attention_mask"], DType::U32);
    let labels = Tensor::new(
        serde_json::from_value::<Vec<u32>>(expected["labels"].clone()).unwrap(),
        &Device::Cpu,
    )
    .unwrap();

    let logits = model
        .forward_masked(&input_ids, Some(&mask), false)
        .unwrap();
    assert_close(
        "eval logits",
        &logits,
        &matrix(&expected["logits_eval"]),
        LOGITS,
    );
    // The mask derived from the padding id gives the same logits.
    let from_ids = model.forward_t(&input_ids, false).unwrap();
    assert_close("logits, mask from ids", &from_ids, &logits, 1e-6);

    let logits = model.forward_masked(&input_ids, Some(&mask), true).unwrap();
    assert_close(
        "train logits",
        &logits,
        &matrix(&expected["logits_train"]),
        LOGITS,
    );
    let loss = cross_entropy(&logits, &labels).unwrap();
    let torch_loss = expected["loss"].as_f64().unwrap();
    let loss_value = f64::from(loss.to_scalar::<f32>().unwrap());
    assert!(
        (loss_value - torch_loss).abs() <= LOGITS * torch_loss.abs(),
        "{loss_value} vs {torch_loss}"
    );

    let grads = gradients(model.parameters(), &loss);
    let reference = expected["grads"].as_object().unwrap();
    assert_eq!(grads.len(), reference.len());
    // A gradient that is zero in exact arithmetic (the attention key bias: adding it shifts a
    // query's scores by a constant, which softmax ignores) is rounding noise in both tools;
    // such tensors are compared at the scale of the largest gradient norm.
    let floor = reference
        .values()
        .map(|s| s["norm"].as_f64().unwrap())
        .fold(0.0, f64::max)
        * 1e-6;
    for (name, summary) in reference {
        let grad = grads[name]
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        let norm = grad
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .sqrt()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let torch_norm = summary["norm"].as_f64().unwrap();
        let tolerance = GRADIENTS * torch_norm.max(floor);
        assert!(
            (norm - torch_norm).abs() <= tolerance,
            "{name}: norm {norm} vs {torch_norm}"
        );
        let scale = summary["max_abs"].as_f64().unwrap().max(floor);
        let values = grad.to_vec1::<f64>().unwrap();
        let index = summary["index"].as_array().unwrap();
        for (i, want) in index.iter().zip(summary["value"].as_array().unwrap()) {
            let (i, want) = (i.as_u64().unwrap() as usize, want.as_f64().unwrap());
            let got = values[i];
            assert!(
                (got - want).abs() <= GRADIENTS * scale,
                "{name}[{i}]: {got} vs {want} (max |g| {scale})"
            );
        }
    }
}

/// The names of the trainable parameters whose gradient is zero everywhere (or absent).
fn without_gradient(parameters: &Parameters, loss: &Tensor) -> Vec<String> {
    let grads = loss.backward().unwrap();
    parameters
        .trainable()
        .iter()
        .filter(|(_, var)| {
            grads.get(var.as_tensor()).is_none_or(|g| {
                g.abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    == 0.0
            })
        })
        .map(|(name, _)| name.clone())
        .collect()
}

#[test]
fn every_parameter_receives_a_gradient() {
    let device = Device::Cpu;
    let resnet = ResNet18::new(
        ResNetConfig {
            width: 8,
            num_classes: 10,
        },
        3,
        &device,
    )
    .unwrap();
    let images = Tensor::randn(0f32, 1.0, (4, 3, 32, 32), &device).unwrap();
    let labels = Tensor::new(&[0u32, 1, 2, 3], &device).unwrap();
    let loss = cross_entropy(&resnet.forward_t(&images, true).unwrap(), &labels).unwrap();
    assert_eq!(
        without_gradient(resnet.parameters(), &loss),
        Vec::<String>::new()
    );
    assert_eq!(resnet.parameters().trainable().len(), 62);

    let bert = minilm(&[], true, 3);
    let input_ids = Tensor::new(
        &[
            [101u32, 2023, 3185, 2001, 2307, 102, 0, 0],
            [101, 6659, 102, 0, 0, 0, 0, 0],
        ],
        &device,
    )
    .unwrap();
    let labels = Tensor::new(&[1u32, 0], &device).unwrap();
    let loss = cross_entropy(&bert.forward_t(&input_ids, true).unwrap(), &labels).unwrap();
    assert_eq!(
        without_gradient(bert.parameters(), &loss),
        Vec::<String>::new()
    );
    assert_eq!(bert.parameters().trainable().len(), 6 * 16 + 5 + 2 + 2);
}

#[test]
fn dropout_is_seeded_active_in_training_and_off_in_evaluation() {
    let model = minilm(&[], true, 5);
    let input_ids = Tensor::new(&[[101u32, 2023, 3185, 2001, 2307, 102]], &Device::Cpu).unwrap();
    let run = |stream: u64, train: bool| -> Vec<f32> {
        model.set_dropout_stream(stream);
        model
            .forward_t(&input_ids, train)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    assert_eq!(run(0, false), run(1, false), "evaluation must not drop");
    assert_eq!(
        run(7, true),
        run(7, true),
        "the same stream must draw the same masks"
    );
    assert_ne!(
        run(7, true),
        run(8, true),
        "another stream must draw other masks"
    );
    assert_ne!(run(7, true), run(7, false), "training must drop");
}
