//! lrlab's Adam and AdamW against PyTorch's over 10 steps with a changing learning rate
//! (`scripts/adam_reference.py`), and the hypergradient signal against its definition.

use candle_core::{Device, Tensor, Var};
use lrlab_runs::{OptimizerConfig, OptimizerKind};
use lrlab_trainer::Adam;
use serde_json::Value;

fn floats(v: &Value) -> Vec<f32> {
    serde_json::from_value(v.clone()).unwrap()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tolerance: f64) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (f64::from(*g), f64::from(*w));
        assert!(
            (g - w).abs() <= tolerance * w.abs().max(1e-3),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

/// Both implementations: the tensor operations (which also track directions, and run on any
/// device) and the fused single-pass update the CPU uses otherwise.
#[test]
fn adam_and_adamw_match_pytorch_step_by_step() {
    for track_direction in [true, false] {
        match_pytorch(track_direction);
    }
}

fn match_pytorch(track_direction: bool) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/adam_reference.json"
    );
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let device = Device::Cpu;
    for case in reference["cases"].as_array().unwrap() {
        let kind: OptimizerKind = serde_json::from_value(case["kind"].clone()).unwrap();
        let betas: (f64, f64) = serde_json::from_value(case["betas"].clone()).unwrap();
        let lrs: Vec<f64> = serde_json::from_value(case["lrs"].clone()).unwrap();
        let config = OptimizerConfig {
            kind,
            lr: lrs[0],
            weight_decay: case["weight_decay"].as_f64().unwrap(),
            betas,
            eps: case["eps"].as_f64().unwrap(),
        };
        let path = if track_direction {
            "tensor ops"
        } else {
            "fused"
        };
        let name = format!(
            "{kind:?} wd {} betas {betas:?} ({path})",
            config.weight_decay
        );
        let p = Var::from_vec(floats(&case["start"]["p"]), (4, 3), &device).unwrap();
        let q = Var::from_vec(floats(&case["start"]["q"]), 5, &device).unwrap();
        let a = Tensor::from_vec(floats(&case["a"]), (4, 3), &device).unwrap();
        let b = Tensor::from_vec(floats(&case["b"]), 5, &device).unwrap();
        let params = [("p".to_string(), p.clone()), ("q".to_string(), q.clone())];
        let mut adam = Adam::new(config, &params, track_direction).unwrap();
        let dots: Vec<f64> = serde_json::from_value(case["grad_dots"].clone()).unwrap();
        let cosines: Vec<f64> = serde_json::from_value(case["grad_cosines"].clone()).unwrap();
        for (t, lr) in lrs.iter().enumerate() {
            let loss = ((p.sin().unwrap() * &a).unwrap().sum_all().unwrap()
                + q.broadcast_sub(&b)
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap())
            .unwrap();
            let agreement = adam.step(&loss.backward().unwrap(), *lr).unwrap();
            let after = &case["after"][t];
            let got_p: Vec<f32> = p.flatten_all().unwrap().to_vec1().unwrap();
            assert_close(
                &format!("{name} step {} p", t + 1),
                &got_p,
                &floats(&after["p"]),
                1e-6,
            );
            assert_close(
                &format!("{name} step {} q", t + 1),
                &q.to_vec1().unwrap(),
                &floats(&after["q"]),
                1e-6,
            );
            match (t, agreement) {
                (_, None) if !track_direction => {}
                (0, None) => {}
                (t, Some(agreement)) if t > 0 => {
                    let (dot, want) = (agreement.dot, dots[t - 1]);
                    assert!(
                        (dot - want).abs() <= 1e-4 * want.abs().max(1e-2),
                        "{name} step {}: grad_dot {dot} vs {want}",
                        t + 1
                    );
                    let (cos, want) = (agreement.cos, cosines[t - 1]);
                    assert!(
                        (cos - want).abs() <= 1e-5,
                        "{name} step {}: grad_cos {cos} vs {want}",
                        t + 1
                    );
                }
                (t, agreement) => panic!("{name} step {}: {agreement:?}", t + 1),
            }
        }
        assert_eq!(adam.steps(), 10);
    }
}

#[test]
fn bad_settings_are_refused_with_the_key() {
    let config = |lr, betas| OptimizerConfig {
        lr,
        betas,
        ..OptimizerConfig::plan()
    };
    let var = Var::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
    let params = [("w".to_string(), var)];
    let error = Adam::new(config(-1.0, (0.9, 0.999)), &params, false)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("optimizer.lr"), "{error}");
    let error = Adam::new(config(1e-3, (0.9, 1.0)), &params, false)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("optimizer.betas"), "{error}");
}
