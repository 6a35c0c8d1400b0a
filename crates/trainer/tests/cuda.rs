//! The training loop on a CUDA GPU against the CPU: two epochs of a narrow ResNet-18 on the
//! CIFAR-10 sample give the CPU's losses and accuracies in f32, and train in bf16. Only with
//! `--features cuda`, on a machine with a GPU, with `HF_HOME` pointing at a Hub cache holding
//! the CIFAR-10 sample (`scripts/gpu-check.sh` runs it so).
#![cfg(feature = "cuda")]

mod common;

use candle_core::Device;
use common::{limits, plan, resnet_on, resnet_settings, spec, train_on};
use lrlab_datasets::{Hub, Source, load_cifar10};
use lrlab_runs::{EpochRow, Precision, RunDir, Status};
use lrlab_trainer::Data;

fn run_on(device: &Device, dtype: Precision) -> Vec<EpochRow> {
    let splits = load_cifar10(&Hub::from_env(), &Source::cifar10(), &limits(64, 32)).unwrap();
    let scheduler = toml::from_str("kind = \"cosine\"\nt_max = 2").unwrap();
    let mut spec = spec(&splits, resnet_settings(), scheduler, plan(2, 16));
    spec.train.dtype = dtype;
    let dir = tempfile::tempdir().unwrap();
    let data = Data::from_splits(&splits, true);
    let run = RunDir::new(dir.path());
    let outcome = train_on(&resnet_on(device), &data, &spec, &run, device, None).unwrap();
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
