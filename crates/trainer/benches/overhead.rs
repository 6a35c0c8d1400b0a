//! The loop's overhead: one epoch of `train` (scheduler, metrics, atomic files, checkpoint)
//! against the bare steps it runs (batch assembly, forward, loss, backward, Adam), on the same
//! batches of the shared CIFAR-10 sample, with a narrow ResNet-18.
//!
//! ```text
//! cargo bench --profile dev -p lrlab-trainer --bench overhead
//! ```

use std::path::PathBuf;

use candle_core::{Device, ModuleT};
use candle_nn::loss::cross_entropy;
use criterion::{Criterion, criterion_group, criterion_main};
use lrlab_datasets::{
    Augment, Examples, Hub, Limits, Source, SplitConfig, epoch_batches, load_cifar10,
};
use lrlab_models::{ResNet18, ResNetConfig};
use lrlab_trainer::{Adam, Data, Options, Progress, RunDir, RunLabel, TrainConfig, train};

fn overhead(c: &mut Criterion) {
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/hf-cache/hub");
    let limit = Limits {
        train: Some(256),
        val: Some(1),
        test: Some(1),
    };
    let split = SplitConfig {
        limit,
        ..SplitConfig::default()
    };
    let splits = load_cifar10(&Hub::offline(cache), &Source::cifar10(), &split).unwrap();
    let device = Device::Cpu;
    let model = || {
        ResNet18::new(
            ResNetConfig {
                width: 16,
                num_classes: 10,
            },
            0,
            &device,
        )
        .unwrap()
    };
    let scheduler = toml::from_str("kind = \"plateau\"").unwrap();
    let config = TrainConfig {
        epochs: 1,
        keep_best: true,
        ..TrainConfig::plan(scheduler)
    };
    let mut group = c.benchmark_group("epoch_of_8_steps");
    group.sample_size(10);
    group.bench_function("bare_steps", |b| {
        b.iter(|| {
            let model = model();
            let mut adam = Adam::new(
                config.optimizer.clone(),
                model.parameters().trainable(),
                false,
            )
            .unwrap();
            let augment = Some(Augment { seed: 0, epoch: 1 });
            for indices in epoch_batches(splits.train.len(), config.batch_size, 0, 1, true) {
                let batch = splits.train.batch(&indices, augment, &device).unwrap();
                let logits = model.forward_t(&batch.inputs, true).unwrap();
                let loss = cross_entropy(&logits, &batch.labels).unwrap();
                adam.step(&loss.backward().unwrap(), 1e-3).unwrap();
            }
        })
    });
    let label = RunLabel {
        experiment: "bench".into(),
        arm: "plateau".into(),
        config: serde_json::Value::Null,
        git_commit: None,
    };
    let data = Data::from_splits(&splits, true);
    let options = Options {
        stop_after: None,
        progress: Progress::Quiet,
    };
    group.bench_function("train_one_epoch", |b| {
        b.iter(|| {
            let dir = tempfile::tempdir().unwrap();
            train(
                &model(),
                &data,
                &config,
                &label,
                &RunDir::new(dir.path()),
                &device,
                options,
            )
            .unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
