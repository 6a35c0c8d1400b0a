//! The training loop: epochs of shuffled batches, the scheduler's rate before every step, its
//! observations after every step and epoch, evaluation, metrics and a checkpoint after every
//! epoch, and resume from the last one.

use std::time::{Instant, SystemTime};

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::loss::cross_entropy;
use lrlab_datasets::{Augment, Examples, Splits, epoch_batches};
use lrlab_models::{Network, Precision};
use lrlab_schedulers::{
    AnyScheduler, EpochEnd, Observation, Scheduler, SchedulerConfig, Signal, StepEnd,
};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::optim::{Adam, OptimizerConfig};
use crate::progress::Progress;
use crate::run_dir::{CheckpointState, EpochRow, RunDir, RunInfo, Status, StepRow};

/// Everything about a run but the model, the data and the device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Epochs to train.
    pub epochs: u64,
    /// Training examples per optimizer step (the last, shorter batch of an epoch is kept).
    pub batch_size: usize,
    /// Examples per forward pass in evaluation.
    pub eval_batch_size: usize,
    /// Seed of the data order, the augmentation and the dropout masks.
    pub seed: u64,
    /// Augment training batches (random crops and flips for images).
    pub augment: bool,
    /// Keep the weights of the best epoch by validation accuracy in `checkpoint/best.safetensors`.
    pub keep_best: bool,
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule.
    pub scheduler: SchedulerConfig,
    /// The model's compute precision: `f32`, or `bf16` products over `f32` parameters; the
    /// loss, the gradients and the optimizer's state are `f32` in both.
    #[serde(default)]
    pub dtype: Precision,
    /// On a CUDA GPU, `f32` products on the TF32 tensor cores (PyTorch's `allow_tf32`); no
    /// effect on the CPU. A process-wide setting of candle's, set by [`train`].
    #[serde(default)]
    pub tf32: bool,
}

impl TrainConfig {
    /// The published plan with `scheduler`: 50 epochs, batch 32, Adam at lr 1e-3 with weight
    /// decay 1e-4, augmentation on, seed 0, evaluation in batches of 256, no best checkpoint.
    pub fn plan(scheduler: SchedulerConfig) -> Self {
        Self {
            epochs: 50,
            batch_size: 32,
            eval_batch_size: 256,
            seed: 0,
            augment: true,
            keep_best: false,
            optimizer: OptimizerConfig::plan(),
            scheduler,
            dtype: Precision::F32,
            tf32: false,
        }
    }
}

/// The splits a run reads: it trains on `train`, decides on `val`, reports `test`.
pub struct Data<'a, E> {
    /// Training examples.
    pub train: &'a E,
    /// Validation examples, seen by the adaptive schedulers.
    pub val: &'a E,
    /// Test examples, evaluated after every epoch for the report only.
    pub test: Option<&'a E>,
}

impl<'a, E> Data<'a, E> {
    /// The three splits, the test split reported or not.
    pub fn from_splits(splits: &'a Splits<E>, report_test: bool) -> Self {
        Self {
            train: &splits.train,
            val: &splits.val,
            test: report_test.then_some(&splits.test),
        }
    }
}

/// Who the run is, for `run.json`.
#[derive(Clone, Debug)]
pub struct RunLabel {
    /// The experiment, e.g. `cifar10`.
    pub experiment: String,
    /// The arm, e.g. `cosine`.
    pub arm: String,
    /// The resolved configuration to record.
    pub config: serde_json::Value,
    /// The git commit of the code, where known.
    pub git_commit: Option<String>,
}

/// How a call to [`train`] ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Where the run stands.
    pub status: Status,
    /// Epochs finished.
    pub epochs_done: u64,
    /// Every epoch's row.
    pub epochs: Vec<EpochRow>,
}

/// Mean loss and accuracy on a split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// Examples scored.
    pub n: usize,
}

/// Scores `model` in evaluation mode on the first `n` examples (all when `None`), in order.
pub fn evaluate<M: ModuleT, E: Examples>(
    model: &M,
    examples: &E,
    n: Option<usize>,
    batch_size: usize,
    device: &Device,
) -> Result<Score> {
    let n = n.map_or(examples.len(), |n| n.min(examples.len()));
    let indices: Vec<usize> = (0..n).collect();
    let mut loss_sum = 0.0;
    let mut correct = Tensor::zeros((), DType::U32, device)?;
    for chunk in indices.chunks(batch_size.max(1)) {
        let batch = examples.batch(chunk, None, device)?;
        let logits = model.forward_t(&batch.inputs, false)?;
        let loss = cross_entropy(&logits, &batch.labels)?;
        loss_sum += f64::from(loss.to_scalar::<f32>()?) * chunk.len() as f64;
        correct = (correct + hits(&logits, &batch.labels)?)?;
    }
    let correct = f64::from(correct.to_scalar::<u32>()?);
    let n_f = n.max(1) as f64;
    Ok(Score {
        loss: loss_sum / n_f,
        accuracy: correct / n_f,
        n,
    })
}

/// The number of rows whose largest logit is the label, as a `u32` scalar on the device.
fn hits(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    logits
        .argmax(1)?
        .eq(labels)?
        .to_dtype(DType::U32)?
        .sum_all()
}

/// Options of a call to [`train`] that do not change its results.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Stop (status `running`, resumable) after this epoch: for tests of resume and for
    /// time-boxed jobs.
    pub stop_after: Option<u64>,
    /// How progress is shown.
    pub progress: Progress,
}

/// Trains `model` on `data` as `config` says, writing `run`; continues from `run`'s last
/// checkpoint when there is one, so that an interrupted run ends with the files of an
/// uninterrupted one. `model` must be in its initial state (built from the run's seed): on
/// resume its tensors are overwritten from the checkpoint.
pub fn train<M: Network, E: Examples>(
    model: &M,
    data: &Data<'_, E>,
    config: &TrainConfig,
    label: &RunLabel,
    run: &RunDir,
    device: &Device,
    options: Options,
) -> Result<Outcome> {
    check(config, data)?;
    model.set_precision(config.dtype);
    candle_core::cuda::set_gemm_reduced_precision_f32(config.tf32);
    let mut scheduler =
        config
            .scheduler
            .build(config.optimizer.lr)
            .map_err(|e| TrainError::Config {
                field: "scheduler",
                message: e.to_string(),
            })?;
    let track = scheduler.needs().contains(Signal::GradDot);
    let mut optimizer = Adam::new(
        config.optimizer.clone(),
        model.parameters().trainable(),
        track,
    )?;
    let mut state = State {
        epoch: 0,
        step: 0,
        best: None,
        epochs: Vec::new(),
        steps: Vec::new(),
    };
    let mut info = match run.info()? {
        Some(info) if info.status == Status::Complete || info.status == Status::Diverged => {
            let (epochs, _) = run.read_metrics(info.epochs_done)?;
            return Ok(Outcome {
                status: info.status,
                epochs_done: info.epochs_done,
                epochs,
            });
        }
        Some(mut info) => {
            if let Some((epoch, folder)) = run.latest_checkpoint()? {
                model
                    .parameters()
                    .restore(&folder.join("weights.safetensors"))?;
                let saved = read_json::<CheckpointState>(&folder.join("state.json"))?;
                let moments =
                    candle_core::safetensors::load(folder.join("optimizer.safetensors"), device)?;
                optimizer.restore(moments, saved.step)?;
                scheduler = saved.scheduler;
                let (epochs, steps) = run.read_metrics(epoch)?;
                state = State {
                    epoch,
                    step: saved.step,
                    best: saved.best,
                    epochs,
                    steps,
                };
                info.resumed += 1;
            }
            info.status = Status::Running;
            info.epochs_done = state.epoch;
            info.message = None;
            info.finished = None;
            info
        }
        None => RunInfo {
            experiment: label.experiment.clone(),
            arm: label.arm.clone(),
            seed: config.seed,
            config: label.config.clone(),
            device: device_name(device),
            lrlab_version: env!("CARGO_PKG_VERSION").into(),
            git_commit: label.git_commit.clone(),
            status: Status::Running,
            message: None,
            epochs_done: 0,
            started: now(),
            finished: None,
            resumed: 0,
        },
    };
    run.write_info(&info)?;
    let result = epochs(
        model,
        data,
        config,
        run,
        device,
        options,
        &mut optimizer,
        &mut scheduler,
        &mut state,
    );
    let status = match &result {
        Ok(status) => *status,
        Err(_) => Status::Failed,
    };
    info.status = status;
    info.epochs_done = state.epoch;
    info.message = match (&result, status) {
        (Err(e), _) => Some(e.to_string()),
        (_, Status::Diverged) => Some(format!("non-finite loss at step {}", state.step + 1)),
        _ => None,
    };
    if status != Status::Running {
        info.finished = Some(now());
    }
    run.write_info(&info)?;
    result?;
    Ok(Outcome {
        status,
        epochs_done: state.epoch,
        epochs: state.epochs,
    })
}

/// The counters and records of a run in progress.
struct State {
    epoch: u64,
    step: u64,
    best: Option<(f64, u64)>,
    epochs: Vec<EpochRow>,
    steps: Vec<StepRow>,
}

#[allow(clippy::too_many_arguments)]
fn epochs<M: Network, E: Examples>(
    model: &M,
    data: &Data<'_, E>,
    config: &TrainConfig,
    run: &RunDir,
    device: &Device,
    options: Options,
    optimizer: &mut Adam,
    scheduler: &mut AnyScheduler,
    state: &mut State,
) -> Result<Status> {
    let train = data.train;
    while state.epoch < config.epochs {
        let epoch = state.epoch + 1;
        let started = Instant::now();
        let batches = epoch_batches(train.len(), config.batch_size, config.seed, epoch, true);
        let mut bar = options.progress.epoch(epoch, config.epochs, batches.len());
        let augment = config.augment.then_some(Augment {
            seed: config.seed,
            epoch,
        });
        let (mut loss_sum, mut lr) = (0.0, scheduler.lr());
        let mut correct = Tensor::zeros((), DType::U32, device)?;
        let mut new_steps = Vec::with_capacity(batches.len());
        for indices in &batches {
            lr = scheduler.lr();
            model.set_random_stream(state.step);
            let batch = train.batch(indices, augment, device)?;
            let logits = model.forward_t(&batch.inputs, true)?;
            let loss = cross_entropy(&logits, &batch.labels)?;
            let loss_value = f64::from(loss.to_scalar::<f32>()?);
            let mut row = StepRow {
                step: state.step as i64 + 1,
                epoch: epoch as i64,
                lr,
                loss: loss_value,
                grad_dot: None,
            };
            if !loss_value.is_finite() {
                new_steps.push(row);
                state.steps.extend(new_steps);
                run.write_metrics(&state.epochs, &state.steps)?;
                return Ok(Status::Diverged);
            }
            let grads = loss.backward()?;
            correct = (correct + hits(&logits, &batch.labels)?)?;
            let grad_dot = optimizer.step(&grads, lr)?;
            row.grad_dot = grad_dot;
            new_steps.push(row);
            state.step += 1;
            loss_sum += loss_value * indices.len() as f64;
            scheduler.observe(&Observation::Step(StepEnd {
                step: state.step,
                epoch,
                loss: Some(loss_value),
                grad_dot,
            }));
            bar.step(loss_value, lr);
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let seen = batches.iter().map(Vec::len).sum::<usize>() as f64;
        let train_loss = loss_sum / seen;
        let train_acc = f64::from(correct.to_scalar::<u32>()?) / seen;
        let val = evaluate(model, data.val, None, config.eval_batch_size, device)?;
        let test = data
            .test
            .map(|t| evaluate(model, t, None, config.eval_batch_size, device))
            .transpose()?;
        scheduler.observe(&Observation::Epoch(EpochEnd {
            epoch,
            step: state.step,
            train_loss: Some(train_loss),
            train_acc: Some(train_acc),
            val_loss: Some(val.loss),
            val_acc: Some(val.accuracy),
        }));
        let row = EpochRow {
            epoch: epoch as i64,
            lr,
            train_loss,
            train_acc,
            val_loss: val.loss,
            val_acc: val.accuracy,
            test_loss: test.map(|t| t.loss),
            test_acc: test.map(|t| t.accuracy),
            epoch_seconds: started.elapsed().as_secs_f64(),
            images_or_sequences_per_second: seen / train_seconds,
        };
        bar.finish(&row);
        state.epochs.push(row);
        state.steps.extend(new_steps);
        state.epoch = epoch;
        run.write_metrics(&state.epochs, &state.steps)?;
        let weights = model.parameters().to_safetensors()?;
        if config.keep_best && state.best.is_none_or(|(best, _)| val.accuracy > best) {
            state.best = Some((val.accuracy, epoch));
            run.write_best(&weights)?;
        }
        let moments = optimizer.state()?;
        let moments = safetensors::serialize(moments.iter().map(|(n, t)| (n.as_str(), t)), None)
            .map_err(|e| TrainError::Checkpoint {
                message: e.to_string(),
            })?;
        let saved = CheckpointState {
            epoch,
            step: state.step,
            scheduler: scheduler.clone(),
            best: state.best,
        };
        run.write_checkpoint(&saved, &weights, &moments)?;
        if options.stop_after == Some(epoch) && epoch < config.epochs {
            return Ok(Status::Running);
        }
    }
    Ok(Status::Complete)
}

fn check<E: Examples>(config: &TrainConfig, data: &Data<'_, E>) -> Result<()> {
    let fail = |field, message: &str| {
        Err(TrainError::Config {
            field,
            message: message.into(),
        })
    };
    if config.batch_size == 0 || config.eval_batch_size == 0 {
        return fail("batch_size", "batch sizes must be at least 1");
    }
    if data.train.is_empty() || data.val.is_empty() {
        return fail(
            "data",
            "the training and validation splits must not be empty",
        );
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::file(path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::file(path, e))
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// `cpu` or `cuda:N`.
fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}
