//! The loop's overhead: one epoch of `train` (scheduler, metrics, atomic files, checkpoint)
//! against the bare steps it runs (batch assembly, forward, loss, backward, Adam), on the same
//! batches of the shared CIFAR-10 sample, with a narrow ResNet-18.
//!
//! ```text
//! cargo bench --profile dev -p lrlab-trainer --bench overhead
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use candle_core::{Device, ModuleT};
use candle_nn::loss::cross_entropy;
use criterion::{Criterion, criterion_group, criterion_main};
use lrlab_datasets::{Augment, Examples, Source, epoch_batches, load_cifar10};
use lrlab_models::{ResNet18, ResNetConfig};
use lrlab_runs::{ModelSettings, RunDir, TrainPlan};
use lrlab_trainer::{Adam, Data};

fn overhead(c: &mut Criterion) {
    let splits = load_cifar10(&common::hub(), &Source::cifar10(), &common::limits(256, 1)).unwrap();
    let device = Device::Cpu;
    let model = || {
        let config = ResNetConfig {
            width: 16,
            num_classes: 10,
        };
        ResNet18::new(config, 0, &device).unwrap()
    };
    let scheduler = toml::from_str("kind = \"plateau\"").unwrap();
    let plan = TrainPlan {
        epochs: 1,
        keep_best: true,
        ..TrainPlan::plan()
    };
    let spec = common::spec(
        &splits,
        ModelSettings::Resnet18 { width: 16 },
        scheduler,
        plan,
    );
    let mut group = c.benchmark_group("epoch_of_8_steps");
    group.sample_size(10);
    group.bench_function("bare_steps", |b| {
        b.iter(|| {
            let model = model();
            let mut adam = Adam::new(
                spec.optimizer.clone(),
                model.parameters().trainable(),
                false,
            )
            .unwrap();
            let augment = Some(Augment { seed: 0, epoch: 1 });
            for indices in epoch_batches(splits.train.len(), spec.train.batch_size, 0, 1, true) {
                let batch = splits.train.batch(&indices, augment, &device).unwrap();
                let logits = model.forward_t(&batch.inputs, true).unwrap();
                let loss = cross_entropy(&logits, &batch.labels).unwrap();
                adam.step(&loss.backward().unwrap(), 1e-3).unwrap();
            }
        })
    });
    let data = Data::from_splits(&splits, true);
    group.bench_function("train_one_epoch", |b| {
        b.iter(|| {
            let dir = tempfile::tempdir().unwrap();
            common::train_quietly(&model(), &data, &spec, &RunDir::new(dir.path()), None);
        })
    });
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
