//! The loop end to end on the real samples of `../shared/hf-cache`: every scheduler kind on a
//! narrow ResNet-18 and on MiniLM, the rates recorded against the scheduler crate, exact resume,
//! divergence, and run directories or data that do not match the specification.

mod common;

use std::path::Path;

use candle_core::Device;
use common::{
    cifar, imdb, minilm, minilm_settings, plan, quiet, resnet, resnet_settings, spec, train_on,
    train_quietly, train_with,
};
use lrlab_datasets::Examples;
use lrlab_models::Network;
use lrlab_runs::{EpochRow, RunDir, RunSpec, Status, StepRow};
use lrlab_schedulers::{EpochEnd, Observation, Scheduler, SchedulerConfig, StepEnd};
use lrlab_trainer::{Data, TrainError};

/// The first example of every registered schedule (the examples come grouped by kind).
fn every_kind() -> Vec<SchedulerConfig> {
    let mut examples = SchedulerConfig::examples();
    examples.dedup_by_key(|config| config.kind());
    examples
}

/// Replays the recorded observations through a fresh scheduler: every recorded rate must be the
/// scheduler crate's rate for that step.
fn assert_rates_follow_the_scheduler(spec: &RunSpec, epochs: &[EpochRow], steps: &[StepRow]) {
    let mut scheduler = spec.build_scheduler().unwrap();
    let kind = spec.scheduler.kind();
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
                step: s.step,
                epoch: u64::from(s.epoch),
                loss: Some(s.loss),
                grad_dot: s.grad_dot,
                grad_cos: s.grad_cos,
            }));
        }
        assert_eq!(
            row.lr,
            epoch_steps.last().unwrap().lr,
            "{kind}: epoch {}",
            row.epoch
        );
        scheduler.observe(&Observation::Epoch(EpochEnd {
            epoch: u64::from(row.epoch),
            step: epoch_steps.last().unwrap().step,
            train_loss: Some(row.train_loss),
            train_acc: Some(row.train_acc),
            val_loss: Some(row.val_loss),
            val_acc: Some(row.val_acc),
        }));
    }
}

fn check_run<E: Examples>(model: &impl Network, data: &Data<'_, E>, spec: &RunSpec, dir: &Path) {
    let kind = spec.scheduler.kind();
    let run = RunDir::new(dir.join(kind));
    let outcome = train_quietly(model, data, spec, &run, None);
    assert_eq!(outcome.status, Status::Complete, "{kind}");
    let record = run.read_record().unwrap().unwrap();
    assert_eq!(
        (record.status, record.epochs_done, record.spec.arm.as_str()),
        (Status::Complete, 2, kind)
    );
    assert_eq!(&record.spec, spec);
    let (epochs, steps) = (run.read_epochs().unwrap(), run.read_steps().unwrap());
    assert_eq!(epochs, outcome.epochs, "{kind}");
    let per_epoch = data.train.len().div_ceil(spec.train.batch_size);
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
    assert_rates_follow_the_scheduler(spec, &epochs, &steps);
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
        let spec = spec(&splits, resnet_settings(), scheduler, plan(2, 16));
        check_run(&resnet(), &data, &spec, dir.path());
    }
}

#[test]
fn every_scheduler_kind_fine_tunes_minilm_and_records_its_rates() {
    let splits = imdb();
    let data = Data::from_splits(&splits, true);
    let dir = tempfile::tempdir().unwrap();
    for scheduler in every_kind() {
        let spec = spec(&splits, minilm_settings(), scheduler, plan(2, 8));
        check_run(&minilm(), &data, &spec, dir.path());
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
    let mut spec = spec(&splits, resnet_settings(), constant(), plan(5, 16));
    spec.train.augment = false;
    let outcome = train_quietly(&resnet(), &data, &spec, &run, None);
    let losses: Vec<f64> = outcome.epochs.iter().map(|r| r.train_loss).collect();
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
    assert!(losses[4] < 0.9 * losses[0], "{losses:?}");
}

/// Every recorded value of a run but the wall times.
fn timeless(run: &RunDir) -> (Vec<EpochRow>, Vec<StepRow>, Vec<u8>, Vec<u8>) {
    let (mut epochs, steps) = (run.read_epochs().unwrap(), run.read_steps().unwrap());
    for row in &mut epochs {
        row.epoch_seconds = 0.0;
        row.examples_per_second = 0.0;
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
    spec: &RunSpec,
) {
    let dir = tempfile::tempdir().unwrap();
    let whole = RunDir::new(dir.path().join("whole"));
    train_quietly(&new_model(), data, spec, &whole, None);

    let parts = RunDir::new(dir.path().join("parts"));
    let first = train_quietly(&new_model(), data, spec, &parts, Some(1));
    assert_eq!((first.status, first.epochs_done), (Status::Running, 1));
    let record = |run: &RunDir| run.read_record().unwrap().unwrap();
    assert_eq!(record(&parts).status, Status::Running);

    // A stop requested (as by SIGTERM) before the next step: nothing trained, nothing lost.
    let stopping = quiet();
    stopping.stop.request();
    let on_disk = (parts.read_epochs().unwrap(), parts.read_steps().unwrap());
    let stopped = train_with(&new_model(), data, spec, &parts, &Device::Cpu, &stopping).unwrap();
    assert_eq!((stopped.status, stopped.epochs_done), (Status::Running, 1));
    assert_eq!(record(&parts).status, Status::Running);
    assert!((parts.read_epochs().unwrap(), parts.read_steps().unwrap()) == on_disk);

    let rest = train_quietly(&new_model(), data, spec, &parts, None);
    assert_eq!((rest.status, rest.epochs_done), (Status::Complete, 3));
    assert_eq!(record(&parts).resumed, 2);
    assert!(
        timeless(&parts) == timeless(&whole),
        "a resumed run differs from an uninterrupted one"
    );

    // A complete run is not trained again.
    let again = train_quietly(&new_model(), data, spec, &parts, None);
    assert_eq!((again.status, again.epochs.len()), (Status::Complete, 3));
}

#[test]
fn a_resumed_resnet_run_repeats_an_uninterrupted_one() {
    let splits = cifar();
    let data = Data::from_splits(&splits, true);
    let plateau = toml::from_str("kind = \"plateau\"\npatience = 0").unwrap();
    let spec = spec(&splits, resnet_settings(), plateau, plan(3, 16));
    assert_resume_is_exact(resnet, &data, &spec);
}

#[test]
fn a_resumed_minilm_run_repeats_an_uninterrupted_one() {
    let splits = imdb();
    let data = Data::from_splits(&splits, false);
    let hypergradient = toml::from_str("kind = \"hypergradient\"\nmax_lr = 0.01").unwrap();
    let spec = spec(&splits, minilm_settings(), hypergradient, plan(3, 8));
    assert_resume_is_exact(minilm, &data, &spec);
}

#[test]
fn a_diverging_run_ends_as_diverged_and_keeps_its_records() {
    let splits = cifar();
    let data = Data::from_splits(&splits, false);
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    let mut spec = spec(&splits, resnet_settings(), constant(), plan(50, 16));
    // Batch norm makes the network indifferent to the scale of its weights, so only a rate
    // that overflows f32 within a step or two makes the loss non-finite.
    spec.optimizer.lr = 1e38;
    let outcome = train_quietly(&resnet(), &data, &spec, &run, None);
    assert_eq!(outcome.status, Status::Diverged);
    let record = run.read_record().unwrap().unwrap();
    assert_eq!(record.status, Status::Diverged);
    assert!(record.message.unwrap().contains("non-finite loss"));
    let (epochs, steps) = (run.read_epochs().unwrap(), run.read_steps().unwrap());
    assert_eq!(epochs.len(), record.epochs_done as usize);
    // The epoch's losses come back at its end: the rows stop at the first non-finite one.
    let (last, before) = steps.split_last().unwrap();
    assert!(!last.loss.is_finite());
    assert!(before.iter().all(|row| row.loss.is_finite()));
    // A diverged run is not trained again.
    let again = train_quietly(&resnet(), &data, &spec, &run, None);
    assert_eq!(again.status, Status::Diverged);
}

#[test]
fn a_nan_weight_that_the_loss_cannot_see_ends_the_run_as_diverged() {
    let splits = cifar();
    let data = Data::from_splits(&splits, true);
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    let spec = spec(&splits, resnet_settings(), constant(), plan(3, 16));
    train_quietly(&resnet(), &data, &spec, &run, Some(1));
    // Mid-run, the first convolution turns to NaN (as a bad step could make it): the ReLUs
    // after it turn NaN into 0, so every later loss stays finite.
    let weights = run
        .checkpoint_folder()
        .join("epoch-0001/weights.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights, &candle_core::Device::Cpu).unwrap();
    let conv1 = &tensors["conv1.weight"];
    let poisoned = candle_core::Tensor::full(f32::NAN, conv1.dims(), conv1.device()).unwrap();
    tensors.insert("conv1.weight".into(), poisoned);
    candle_core::safetensors::save(&tensors, &weights).unwrap();

    let outcome = train_quietly(&resnet(), &data, &spec, &run, None);
    assert_eq!((outcome.status, outcome.epochs_done), (Status::Diverged, 1));
    let record = run.read_record().unwrap().unwrap();
    assert_eq!(
        record.message.as_deref(),
        Some("non-finite values in `conv1.weight` after epoch 2 (its losses were finite)")
    );
    let (epochs, steps) = (run.read_epochs().unwrap(), run.read_steps().unwrap());
    assert_eq!(epochs.len(), 1, "the diverged epoch has no row");
    let second: Vec<&StepRow> = steps.iter().filter(|s| s.epoch == 2).collect();
    assert!(!second.is_empty() && second.iter().all(|s| s.loss.is_finite()));
}

#[test]
fn a_damaged_checkpoint_is_named_with_the_way_to_restart() {
    let splits = cifar();
    let data = Data::from_splits(&splits, false);
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    let spec = spec(&splits, resnet_settings(), constant(), plan(2, 16));
    train_quietly(&resnet(), &data, &spec, &run, Some(1));
    let checkpoints = run.checkpoint_folder();
    let resume_error = || {
        train_on(
            &resnet(),
            &data,
            &spec,
            &run,
            &candle_core::Device::Cpu,
            None,
        )
        .unwrap_err()
        .to_string()
    };
    for file in ["weights.safetensors", "optimizer.safetensors", "state.json"] {
        let path = checkpoints.join("epoch-0001").join(file);
        let intact = std::fs::read(&path).unwrap();
        std::fs::write(&path, &intact[..intact.len() / 2]).unwrap();
        let err = resume_error();
        assert!(
            err.contains(file)
                && err.contains(&format!(
                    "delete {} to train the run again from its first epoch",
                    checkpoints.display()
                )),
            "{file}: {err}"
        );
        std::fs::write(&path, intact).unwrap();
    }
    // Rows deleted under a checkpoint: the resumed run would lack them.
    std::fs::remove_file(dir.path().join("steps.parquet")).unwrap();
    let err = resume_error();
    assert!(
        err.contains("the rows were deleted or damaged") && err.contains("to train the run again"),
        "{err}"
    );
    // As the message says: without its checkpoint the run starts again, and completes.
    std::fs::remove_dir_all(&checkpoints).unwrap();
    let outcome = train_quietly(&resnet(), &data, &spec, &run, None);
    assert_eq!((outcome.status, outcome.epochs_done), (Status::Complete, 2));
    assert_eq!(run.read_epochs().unwrap().len(), 2);
}

#[test]
fn a_run_directory_of_another_specification_is_refused_untouched() {
    let splits = cifar();
    let data = Data::from_splits(&splits, false);
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    let first = spec(&splits, resnet_settings(), constant(), plan(2, 16));
    train_quietly(&resnet(), &data, &first, &run, Some(1));
    let written = std::fs::read(dir.path().join("steps.parquet")).unwrap();

    let mut longer = first.clone();
    longer.train.epochs = 3;
    longer.optimizer.lr = 3e-4;
    let err = train_on(
        &resnet(),
        &data,
        &longer,
        &run,
        &candle_core::Device::Cpu,
        None,
    )
    .unwrap_err();
    let TrainError::SpecChanged { differences, .. } = &err else {
        panic!("{err}");
    };
    let keys: Vec<&str> = differences.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["train.epochs", "optimizer.lr"]);
    assert!(err.to_string().contains("train.epochs: 2 → 3"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("steps.parquet")).unwrap(),
        written
    );
    let record = run.read_record().unwrap().unwrap();
    assert_eq!((record.status, record.spec), (Status::Running, first));
}

#[test]
fn data_other_than_the_specifications_are_refused() {
    let splits = cifar();
    let data = Data::from_splits(&splits, true);
    let mut spec = spec(&splits, resnet_settings(), constant(), plan(1, 16));
    spec.resolved.split_sizes.val += 1;
    spec.data.limit_val = Some(spec.resolved.split_sizes.val);
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    let err = train_on(
        &resnet(),
        &data,
        &spec,
        &run,
        &candle_core::Device::Cpu,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("resolved for (48, 33, 32)"), "{err}");
    assert_eq!(run.read_record().unwrap(), None, "nothing is written");
}
