//! The loop end to end on the real samples of `../shared/hf-cache`: every scheduler kind on a
//! narrow ResNet-18 and on MiniLM, the rates recorded against the scheduler crate, exact resume,
//! divergence.

use std::path::{Path, PathBuf};

use candle_core::Device;
use lrlab_datasets::{
    Examples, Hub, Images, Limits, RepoRef, Source, SplitConfig, Splits, Tokens, load_cifar10,
    load_imdb, text_encoder,
};
use lrlab_models::{BertClassifier, BertConfig, Network, ResNet18, ResNetConfig};
use lrlab_schedulers::{EpochEnd, Observation, Scheduler, SchedulerConfig, StepEnd};
use lrlab_trainer::{
    Data, EpochRow, Options, Outcome, Progress, RunDir, RunLabel, Status, StepRow, TrainConfig,
    train,
};

const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";

fn hub() -> Hub {
    Hub::offline(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/hf-cache/hub"))
}

fn limits(train: usize, eval: usize) -> SplitConfig {
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

fn cifar() -> Splits<Images> {
    load_cifar10(&hub(), &Source::cifar10(), &limits(48, 32)).unwrap()
}

fn imdb() -> Splits<Tokens> {
    let hub = hub();
    let reviews = load_imdb(&hub, &Source::imdb(), &limits(16, 8)).unwrap();
    let encoder = text_encoder(&hub, &RepoRef::model(MINILM), 32).unwrap();
    Splits {
        train: encoder.encode(&reviews.train).unwrap(),
        val: encoder.encode(&reviews.val).unwrap(),
        test: encoder.encode(&reviews.test).unwrap(),
    }
}

fn resnet() -> ResNet18 {
    ResNet18::new(
        ResNetConfig {
            width: 4,
            num_classes: 10,
        },
        0,
        &Device::Cpu,
    )
    .unwrap()
}

fn minilm() -> BertClassifier {
    let hub = hub();
    let repo = RepoRef::model(MINILM);
    let config = BertConfig::from_file(&hub.file(&repo, "config.json").unwrap()).unwrap();
    let weights = hub.file(&repo, "model.safetensors").unwrap();
    BertClassifier::from_checkpoint(config, &[weights], 2, 0, &Device::Cpu)
        .unwrap()
        .0
}

fn config(scheduler: SchedulerConfig, epochs: u64, batch_size: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size,
        keep_best: true,
        ..TrainConfig::plan(scheduler)
    }
}

fn label(arm: &str) -> RunLabel {
    RunLabel {
        experiment: "test".into(),
        arm: arm.into(),
        config: serde_json::Value::Null,
        git_commit: None,
    }
}

/// Trains `model` into `run` on the CPU without progress output, stopping after `stop_after`.
fn train_quietly<E: Examples>(
    model: &impl Network,
    data: &Data<'_, E>,
    config: &TrainConfig,
    arm: &str,
    run: &RunDir,
    stop_after: Option<u64>,
) -> Outcome {
    let options = Options {
        stop_after,
        progress: Progress::Quiet,
    };
    train(model, data, config, &label(arm), run, &Device::Cpu, options).unwrap()
}

fn every_kind() -> Vec<SchedulerConfig> {
    #[derive(serde::Deserialize)]
    struct File {
        scheduler: Vec<SchedulerConfig>,
    }
    let text = include_str!("../../schedulers/tests/fixtures/representative.toml");
    toml::from_str::<File>(text).unwrap().scheduler
}

/// Replays the recorded observations through a fresh scheduler: every recorded rate must be the
/// scheduler crate's rate for that step.
fn assert_rates_follow_the_scheduler(config: &TrainConfig, epochs: &[EpochRow], steps: &[StepRow]) {
    let mut scheduler = config.scheduler.build(config.optimizer.lr).unwrap();
    let kind = config.scheduler.kind();
    for row in epochs {
        let epoch_steps: Vec<&StepRow> = steps.iter().filter(|s| s.epoch == row.epoch).collect();
        assert!(
            !epoch_steps.is_empty(),
            "{kind}: epoch {} has no steps",
            row.epoch
        );
        for s in &epoch_steps {
            assert_eq!(s.lr, scheduler.lr(), "{kind}: step {}", s.step);
            scheduler.observe(&Observation::Step(StepEnd {
                step: s.step as u64,
                epoch: s.epoch as u64,
                loss: Some(s.loss),
                grad_dot: s.grad_dot,
            }));
        }
        assert_eq!(
            row.lr,
            epoch_steps.last().unwrap().lr,
            "{kind}: epoch {}",
            row.epoch
        );
        scheduler.observe(&Observation::Epoch(EpochEnd {
            epoch: row.epoch as u64,
            step: epoch_steps.last().unwrap().step as u64,
            train_loss: Some(row.train_loss),
            train_acc: Some(row.train_acc),
            val_loss: Some(row.val_loss),
            val_acc: Some(row.val_acc),
        }));
    }
}

fn check_run<E: Examples>(
    model: &impl Network,
    data: &Data<'_, E>,
    config: &TrainConfig,
    dir: &Path,
) {
    let kind = config.scheduler.kind();
    let run = RunDir::new(dir.join(kind));
    let outcome = train_quietly(model, data, config, kind, &run, None);
    assert_eq!(outcome.status, Status::Complete, "{kind}");
    let info = run.info().unwrap().unwrap();
    assert_eq!(
        (info.status, info.epochs_done, info.arm.as_str()),
        (Status::Complete, 2, kind)
    );
    let (epochs, steps) = run.metrics().unwrap();
    assert_eq!(epochs, outcome.epochs, "{kind}");
    let per_epoch = data.train.len().div_ceil(config.batch_size);
    assert_eq!(
        epochs.iter().map(|r| r.epoch).collect::<Vec<_>>(),
        [1, 2],
        "{kind}"
    );
    assert_eq!(steps.len(), 2 * per_epoch, "{kind}");
    for row in &epochs {
        let rates = [row.train_acc, row.val_acc, row.test_acc.unwrap()];
        assert!(
            rates.iter().all(|a| (0.0..=1.0).contains(a)),
            "{kind}: {row:?}"
        );
        assert!(
            row.train_loss.is_finite() && row.val_loss.is_finite(),
            "{kind}: {row:?}"
        );
    }
    assert_rates_follow_the_scheduler(config, &epochs, &steps);
    for file in [
        "checkpoint/latest.json",
        "checkpoint/epoch-0002/weights.safetensors",
        "checkpoint/best.safetensors",
    ] {
        assert!(run.path().join(file).is_file(), "{kind}: no {file}");
    }
    assert!(
        !run.path().join("checkpoint/epoch-0001").exists(),
        "{kind}: stale checkpoint kept"
    );
}

#[test]
fn every_scheduler_kind_trains_a_narrow_resnet_and_records_its_rates() {
    let splits = cifar();
    let data = Data::from_splits(&splits, true);
    let dir = tempfile::tempdir().unwrap();
    for scheduler in every_kind() {
        check_run(&resnet(), &data, &config(scheduler, 2, 16), dir.path());
    }
}

#[test]
fn every_scheduler_kind_fine_tunes_minilm_and_records_its_rates() {
    let splits = imdb();
    let data = Data::from_splits(&splits, true);
    let dir = tempfile::tempdir().unwrap();
    for scheduler in every_kind() {
        check_run(&minilm(), &data, &config(scheduler, 2, 8), dir.path());
    }
}

fn constant() -> SchedulerConfig {
    toml::from_str(
        r#"kind = "constant"
factor = 1.0
total_iters = 0"#,
    )
    .unwrap()
}

#[test]
fn the_training_loss_falls() {
    let splits = cifar();
    let data = Data::from_splits(&splits, false);
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    let config = TrainConfig {
        augment: false,
        ..config(constant(), 5, 16)
    };
    let outcome = train_quietly(&resnet(), &data, &config, "constant", &run, None);
    let losses: Vec<f64> = outcome.epochs.iter().map(|r| r.train_loss).collect();
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
    assert!(losses[4] < 0.9 * losses[0], "{losses:?}");
}

/// Every recorded value of a run but the wall times.
fn timeless(run: &RunDir) -> (Vec<EpochRow>, Vec<StepRow>, Vec<u8>, Vec<u8>) {
    let (mut epochs, steps) = run.metrics().unwrap();
    for row in &mut epochs {
        row.epoch_seconds = 0.0;
        row.images_or_sequences_per_second = 0.0;
    }
    let read = |file: &str| std::fs::read(run.path().join("checkpoint").join(file)).unwrap();
    (
        epochs,
        steps,
        read("epoch-0003/weights.safetensors"),
        read("epoch-0003/optimizer.safetensors"),
    )
}

fn assert_resume_is_exact<E: Examples, M: Network>(
    new_model: impl Fn() -> M,
    data: &Data<'_, E>,
    config: &TrainConfig,
) {
    let dir = tempfile::tempdir().unwrap();
    let whole = RunDir::new(dir.path().join("whole"));
    train_quietly(&new_model(), data, config, "a", &whole, None);

    let parts = RunDir::new(dir.path().join("parts"));
    let first = train_quietly(&new_model(), data, config, "a", &parts, Some(1));
    assert_eq!((first.status, first.epochs_done), (Status::Running, 1));
    assert_eq!(parts.info().unwrap().unwrap().status, Status::Running);
    let rest = train_quietly(&new_model(), data, config, "a", &parts, None);
    assert_eq!((rest.status, rest.epochs_done), (Status::Complete, 3));
    assert_eq!(parts.info().unwrap().unwrap().resumed, 1);
    assert!(
        timeless(&parts) == timeless(&whole),
        "a resumed run differs from an uninterrupted one"
    );

    // A complete run is not trained again.
    let again = train_quietly(&new_model(), data, config, "a", &parts, None);
    assert_eq!((again.status, again.epochs.len()), (Status::Complete, 3));
}

#[test]
fn a_resumed_resnet_run_repeats_an_uninterrupted_one() {
    let splits = cifar();
    let data = Data::from_splits(&splits, true);
    let plateau = toml::from_str("kind = \"plateau\"\npatience = 0").unwrap();
    assert_resume_is_exact(resnet, &data, &config(plateau, 3, 16));
}

#[test]
fn a_resumed_minilm_run_repeats_an_uninterrupted_one() {
    let splits = imdb();
    let data = Data::from_splits(&splits, false);
    let hypergradient = toml::from_str("kind = \"hypergradient\"\nmax_lr = 0.01").unwrap();
    assert_resume_is_exact(minilm, &data, &config(hypergradient, 3, 8));
}

#[test]
fn a_diverging_run_ends_as_diverged_and_keeps_its_records() {
    let splits = cifar();
    let data = Data::from_splits(&splits, false);
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    let mut config = config(constant(), 50, 16);
    // Batch norm makes the network indifferent to the scale of its weights, so only a rate
    // that overflows f32 within a step or two makes the loss non-finite.
    config.optimizer.lr = 1e38;
    let outcome = train_quietly(&resnet(), &data, &config, "boom", &run, None);
    assert_eq!(outcome.status, Status::Diverged);
    let info = run.info().unwrap().unwrap();
    assert_eq!(info.status, Status::Diverged);
    assert!(info.message.unwrap().contains("non-finite loss"));
    let (epochs, steps) = run.metrics().unwrap();
    assert_eq!(epochs.len() as u64, info.epochs_done);
    assert!(!steps.last().unwrap().loss.is_finite());
    // A diverged run is not trained again.
    let again = train_quietly(&resnet(), &data, &config, "boom", &run, None);
    assert_eq!(again.status, Status::Diverged);
}
