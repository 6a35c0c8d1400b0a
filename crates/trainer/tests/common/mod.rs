//! What the trainer's tests and benchmark share: the real samples of `../shared/hf-cache`, the
//! models trained on them, and run specifications for them.

#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::Device;
use lrlab_datasets::{
    Examples, Hub, Images, Limits, RepoRef, Source, SplitConfig, Splits, Tokens, load_cifar10,
    load_imdb, text_encoder,
};
use lrlab_models::{BertClassifier, BertConfig, Network, ResNet18, ResNetConfig};
use lrlab_runs::{
    AnalysisPlan, DataSettings, HubCommit, ModelSettings, OptimizerConfig, Resolved, RunDir,
    RunSpec, SplitSizes, TrainPlan,
};
use lrlab_schedulers::SchedulerConfig;
use lrlab_trainer::{Data, Options, Outcome, Progress, Run, StopRequest, train};

pub const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The shared sample cache, read in place.
pub fn hub() -> Hub {
    Hub::offline(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/hf-cache/hub"))
}

/// Splits capped at `train` training and `eval` validation and test examples.
pub fn limits(train: usize, eval: usize) -> SplitConfig {
    let limit = Limits {
        train: Some(train),
        val: Some(eval),
        test: Some(eval),
    };
    SplitConfig {
        limit,
        ..SplitConfig::default()
    }
}

/// 48 training images, 32 for validation and test.
pub fn cifar() -> Splits<Images> {
    load_cifar10(&hub(), &Source::cifar10(), &limits(48, 32)).unwrap()
}

/// 16 training reviews, 8 for validation and test, 32 tokens each.
pub fn imdb() -> Splits<Tokens> {
    let hub = hub();
    let reviews = load_imdb(&hub, &Source::imdb(), &limits(16, 8)).unwrap();
    let encoder = text_encoder(&hub, &RepoRef::model(MINILM), 32).unwrap();
    Splits {
        train: encoder.encode(&reviews.train).unwrap(),
        val: encoder.encode(&reviews.val).unwrap(),
        test: encoder.encode(&reviews.test).unwrap(),
    }
}

/// A ResNet-18 of width 4 from seed 0 on `device`.
pub fn resnet_on(device: &Device) -> ResNet18 {
    let config = ResNetConfig {
        width: 4,
        num_classes: 10,
    };
    ResNet18::new(config, 0, device).unwrap()
}

/// A ResNet-18 of width 4 from seed 0 on the CPU.
pub fn resnet() -> ResNet18 {
    resnet_on(&Device::Cpu)
}

/// MiniLM from the cache with a fresh two-class head from seed 0.
pub fn minilm() -> BertClassifier {
    let hub = hub();
    let repo = RepoRef::model(MINILM);
    let config = BertConfig::from_file(&hub.file(&repo, "config.json").unwrap()).unwrap();
    let weights = hub.file(&repo, "model.safetensors").unwrap();
    BertClassifier::from_checkpoint(config, &[weights], 2, 0, &Device::Cpu)
        .unwrap()
        .0
}

/// `epochs` epochs of batches of `batch_size`, keeping the best weights; the published plan
/// otherwise.
pub fn plan(epochs: u32, batch_size: usize) -> TrainPlan {
    TrainPlan {
        epochs,
        batch_size,
        keep_best: true,
        ..TrainPlan::plan()
    }
}

/// The specification of a run of `scheduler` (its kind is the arm) on `splits` with `train`,
/// Adam at the published settings, for the ResNet-18 of [`resnet`] or the MiniLM of [`minilm`].
pub fn spec<E: Examples>(
    splits: &Splits<E>,
    model: ModelSettings,
    scheduler: SchedulerConfig,
    train: TrainPlan,
) -> RunSpec {
    let (dataset, classes, max_len) = match model {
        ModelSettings::Resnet18 { .. } => ("uoft-cs/cifar10", 10, None),
        ModelSettings::Bert { .. } => ("stanfordnlp/imdb", 2, Some(32)),
    };
    let sizes = SplitSizes {
        train: splits.train.len(),
        val: splits.val.len(),
        test: splits.test.len(),
    };
    RunSpec {
        experiment: "test".into(),
        arm: scheduler.kind().into(),
        seed: 0,
        data: DataSettings {
            revision: "main".into(),
            val_fraction: 0.1,
            split_seed: 0,
            limit_train: Some(sizes.train),
            limit_val: Some(sizes.val),
            limit_test: Some(sizes.test),
            max_len,
        },
        resolved: Resolved {
            dataset: HubCommit {
                repo: dataset.into(),
                commit: None,
            },
            checkpoint: None,
            classes,
            split_sizes: sizes,
            steps_per_epoch: sizes.train.div_ceil(train.batch_size) as u64,
        },
        model,
        train,
        optimizer: OptimizerConfig::plan(),
        scheduler,
        lrlab_version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// The model settings of [`resnet`].
pub fn resnet_settings() -> ModelSettings {
    ModelSettings::Resnet18 { width: 4 }
}

/// The model settings of [`minilm`].
pub fn minilm_settings() -> ModelSettings {
    ModelSettings::Bert {
        checkpoint: MINILM.into(),
        revision: "main".into(),
    }
}

/// An analysis plan.
pub fn analysis() -> AnalysisPlan {
    AnalysisPlan {
        primary_metric: "test_acc_at_best_val".into(),
        threshold: 0.5,
        baselines: vec!["constant".into()],
        references: Vec::new(),
        tuning: None,
    }
}

/// Trains `model` as `spec` says into `dir` on `device` without progress output, stopping
/// after `stop_after`.
pub fn train_on<E: Examples>(
    model: &impl Network,
    data: &Data<'_, E>,
    spec: &RunSpec,
    dir: &RunDir,
    device: &Device,
    stop_after: Option<u32>,
) -> lrlab_trainer::Result<Outcome> {
    let options = Options {
        stop_after,
        ..quiet()
    };
    train_with(model, data, spec, dir, device, &options)
}

/// Options without progress output, stopping only at the end.
pub fn quiet() -> Options {
    Options {
        stop_after: None,
        stop: StopRequest::new(),
        progress: Progress::Quiet,
        git_commit: None,
    }
}

/// Trains `model` as `spec` says into `dir` on `device` with `options`.
pub fn train_with<E: Examples>(
    model: &impl Network,
    data: &Data<'_, E>,
    spec: &RunSpec,
    dir: &RunDir,
    device: &Device,
    options: &Options,
) -> lrlab_trainer::Result<Outcome> {
    let analysis = analysis();
    let run = Run {
        spec,
        analysis: &analysis,
        dir,
    };
    train(model, data, run, device, options)
}

/// [`train_on`] the CPU, which must succeed.
pub fn train_quietly<E: Examples>(
    model: &impl Network,
    data: &Data<'_, E>,
    spec: &RunSpec,
    dir: &RunDir,
    stop_after: Option<u32>,
) -> Outcome {
    train_on(model, data, spec, dir, &Device::Cpu, stop_after).unwrap()
}
