//! The training loop on a CUDA GPU against the CPU: two epochs of a narrow ResNet-18 on the
//! CIFAR-10 sample give the CPU's losses and accuracies in f32, and train in bf16. Only with
//! `--features cuda`, on a machine with a GPU, with `HF_HOME` pointing at a Hub cache holding
//! the CIFAR-10 sample (`scripts/gpu-check.sh` runs it so).
#![cfg(feature = "cuda")]

use candle_core::Device;
use lrlab_datasets::{Hub, Limits, Source, SplitConfig, load_cifar10};
use lrlab_models::{Precision, ResNet18, ResNetConfig};
use lrlab_trainer::{
    Data, EpochRow, Options, Progress, RunDir, RunLabel, Status, TrainConfig, train,
};

fn run_on(device: &Device, dtype: Precision) -> Vec<EpochRow> {
    let split = SplitConfig {
        limit: Limits {
            train: Some(64),
            val: Some(32),
            test: Some(32),
        },
        ..SplitConfig::default()
    };
    let splits = load_cifar10(&Hub::from_env(), &Source::cifar10(), &split).unwrap();
    let config = ResNetConfig {
        width: 8,
        num_classes: 10,
    };
    let model = ResNet18::new(config, 0, device).unwrap();
    let scheduler = toml::from_str("kind = \"cosine\"\nt_max = 2").unwrap();
    let config = TrainConfig {
        epochs: 2,
        batch_size: 16,
        dtype,
        ..TrainConfig::plan(scheduler)
    };
    let label = RunLabel {
        experiment: "cuda".into(),
        arm: "cosine".into(),
        config: serde_json::Value::Null,
        git_commit: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        stop_after: None,
        progress: Progress::Quiet,
    };
    let data = Data::from_splits(&splits, true);
    let outcome = train(
        &model,
        &data,
        &config,
        &label,
        &RunDir::new(dir.path()),
        device,
        options,
    )
    .unwrap();
    assert_eq!(outcome.status, Status::Complete);
    outcome.epochs
}

#[test]
fn training_on_the_gpu_follows_the_cpu() {
    let gpu = Device::new_cuda(0).expect("this test needs a CUDA GPU");
    let cpu = run_on(&Device::Cpu, Precision::F32);
    let on_gpu = run_on(&gpu, Precision::F32);
    for (g, c) in on_gpu.iter().zip(&cpu) {
        // Eight steps of f32 rounding in other orders: the losses agree to ~1e-4.
        for (what, a, b) in [
            ("train_loss", g.train_loss, c.train_loss),
            ("val_loss", g.val_loss, c.val_loss),
        ] {
            assert!(
                (a - b).abs() <= 1e-3 * b.abs(),
                "epoch {}: {what} {a} vs {b}",
                c.epoch
            );
        }
        assert_eq!(g.lr, c.lr);
        // One example's prediction may flip on a near tie.
        assert!(
            (g.val_acc - c.val_acc).abs() <= 1.0 / 32.0 + 1e-9,
            "epoch {}",
            c.epoch
        );
    }
    let bf16 = run_on(&gpu, Precision::Bf16);
    for (g, c) in bf16.iter().zip(&cpu) {
        assert!(
            g.train_loss.is_finite() && (g.train_loss - c.train_loss).abs() <= 0.05 * c.train_loss
        );
    }
}
