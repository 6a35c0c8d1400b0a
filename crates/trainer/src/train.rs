//! The training loop: epochs of shuffled batches, the scheduler's rate before every step, its
//! observations after every step and epoch, evaluation, rows and a checkpoint after every
//! epoch, and resume from the last one — for a run whose specification says all of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::loss::cross_entropy;
use lrlab_datasets::{Augment, Examples, Splits, epoch_batches};
use lrlab_models::Network;
use lrlab_runs::{
    AnalysisPlan, EpochRow, Precision, RunDir, RunRecord, RunSpec, Status, StepRow, differences,
};
use lrlab_schedulers::{AnyScheduler, EpochEnd, Observation, Scheduler, Signal, StepEnd};

use crate::checkpoint::{self, CheckpointState};
use crate::error::{Result, TrainError};
use crate::optim::Adam;
use crate::progress::Progress;

/// The splits a run reads: it trains on `train`, decides on `val`, reports `test`.
pub struct Data<'a, E: ?Sized> {
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

/// A run to train: what it is, how its study means to analyse it, and where it is written.
#[derive(Clone, Copy, Debug)]
pub struct Run<'a> {
    /// Its specification, checked and resolved.
    pub spec: &'a RunSpec,
    /// Its study's analysis plan, recorded beside the specification.
    pub analysis: &'a AnalysisPlan,
    /// Its directory.
    pub dir: &'a RunDir,
}

/// How a call to [`train`] ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Where the run stands.
    pub status: Status,
    /// Epochs finished.
    pub epochs_done: u32,
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

/// Scores `model` in evaluation mode on the first `n` examples (all when `None`), in order; an
/// error when that is no example at all.
pub fn evaluate<M: ModuleT + ?Sized, E: Examples + ?Sized>(
    model: &M,
    examples: &E,
    n: Option<usize>,
    batch_size: usize,
    device: &Device,
) -> Result<Score> {
    let n = n.map_or(examples.len(), |n| n.min(examples.len()));
    if n == 0 {
        return Err(TrainError::Config {
            field: "examples",
            message: "no example to score: a loss and an accuracy of nothing would read as 0"
                .into(),
        });
    }
    let indices: Vec<usize> = (0..n).collect();
    // Summed on the device in f64, in batch order (the values a host-side sum gives), so that
    // the host waits once, not once per batch.
    let mut loss_sum = Tensor::zeros((), DType::F64, device)?;
    let mut correct = Tensor::zeros((), DType::U32, device)?;
    for chunk in indices.chunks(batch_size.max(1)) {
        let batch = examples.batch(chunk, None, device)?;
        let logits = model.forward_t(&batch.inputs, false)?;
        let loss = cross_entropy(&logits, &batch.labels)?.detach();
        loss_sum = (loss_sum + (loss.to_dtype(DType::F64)? * chunk.len() as f64)?)?;
        correct = (correct + hits(&logits, &batch.labels)?)?;
    }
    let loss_sum = loss_sum.to_scalar::<f64>()?;
    let correct = f64::from(correct.to_scalar::<u32>()?);
    let n_f = n as f64;
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

/// A request to stop training early, shared with whoever makes it (a signal handler, another
/// thread): a run that sees it stops before its next optimizer step, keeps the checkpoint of
/// its last finished epoch, ends as `running` and resumes from there when trained again.
#[derive(Clone, Debug, Default)]
pub struct StopRequest(Arc<AtomicBool>);

impl StopRequest {
    /// A request not yet made.
    pub fn new() -> Self {
        Self::default()
    }

    /// The flag that makes the request when set (for instance by `signal-hook`).
    pub fn flag(&self) -> &Arc<AtomicBool> {
        &self.0
    }

    /// Makes the request.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the request has been made.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Options of a call to [`train`] that do not change its results.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Stop (status `running`, resumable) after this epoch: for tests of resume and for
    /// time-boxed jobs.
    pub stop_after: Option<u32>,
    /// Stop (status `running`, resumable) before the next step once this is requested: what
    /// `SIGTERM` asks of a job that a cluster scheduler is about to preempt or time out.
    pub stop: StopRequest,
    /// How progress is shown.
    pub progress: Progress,
    /// The git commit of the code, recorded where known.
    pub git_commit: Option<String>,
}

/// The candle type a model computes its products in for `precision`.
pub fn compute_dtype(precision: Precision) -> DType {
    match precision {
        Precision::F32 => DType::F32,
        Precision::Bf16 => DType::BF16,
    }
}

/// Trains `model` on `data` as `run.spec` says, writing `run.dir`; continues from the
/// directory's last checkpoint when it holds a partial run of the same specification, and
/// returns a finished one as it stands. A directory holding a run of another specification is
/// an error that names what differs. `model` must be in its initial state (built from the run's
/// seed): on resume its tensors are overwritten from the checkpoint.
pub fn train<M: Network + ?Sized, E: Examples + ?Sized>(
    model: &M,
    data: &Data<'_, E>,
    run: Run<'_>,
    device: &Device,
    options: &Options,
) -> Result<Outcome> {
    let spec = run.spec;
    spec.check()?;
    check_data(spec, data)?;
    let mut record = match run.dir.read_record()? {
        Some(record) if record.fingerprint != spec.fingerprint() => {
            return Err(TrainError::SpecChanged {
                folder: run.dir.path().to_owned(),
                differences: differences(&record.spec, spec),
            });
        }
        Some(record) if record.status.is_outcome() => return finished(run, record),
        Some(record) => record,
        None => RunRecord::start(spec.clone(), run.analysis.clone(), device_name(device)),
    };
    let mut session = Session::new(model, data, run, device, options)?;
    if session.resume()? {
        record.resumed += 1;
    }
    record.analysis = run.analysis.clone();
    record.device = device_name(device);
    record.git_commit = options.git_commit.clone().or(record.git_commit);
    record.epochs_done = session.state.epoch;
    record.end(Status::Running, None);
    run.dir.write_record(&record)?;
    let result = session.epochs();
    session.close(record, result)
}

/// The outcome of a run that already reached one, its analysis plan brought up to date.
fn finished(run: Run<'_>, mut record: RunRecord) -> Result<Outcome> {
    if record.analysis != *run.analysis {
        record.analysis = run.analysis.clone();
        run.dir.write_record(&record)?;
    }
    let mut epochs = run.dir.read_epochs()?;
    epochs.retain(|row| row.epoch <= record.epochs_done);
    Ok(Outcome {
        status: record.status,
        epochs_done: record.epochs_done,
        epochs,
    })
}

/// Checks that the data are those the specification was resolved for.
fn check_data<E: Examples + ?Sized>(spec: &RunSpec, data: &Data<'_, E>) -> Result<()> {
    let sizes = spec.resolved.split_sizes;
    let test = data.test.map_or(sizes.test, |t| t.len());
    let given = (data.train.len(), data.val.len(), test);
    if given != (sizes.train, sizes.val, sizes.test) {
        return Err(TrainError::Config {
            field: "data",
            message: format!(
                "the splits have {given:?} (train, val, test) examples, but the specification \
                 was resolved for {:?}",
                (sizes.train, sizes.val, sizes.test)
            ),
        });
    }
    Ok(())
}

/// Why a run ended as diverged: what was found not finite, and when.
#[derive(Clone, Debug, PartialEq)]
enum Divergence {
    /// A step's loss: nothing was updated by that step.
    Loss {
        /// The step (1-based).
        step: u64,
    },
    /// A parameter or buffer after an epoch's steps, though every loss was finite (an
    /// activation such as ReLU turns a NaN into 0 and hides it from the loss).
    Tensor {
        /// The epoch.
        epoch: u32,
        /// The tensor's name.
        name: String,
    },
    /// A split's loss when the epoch was evaluated.
    Evaluation {
        /// The epoch.
        epoch: u32,
        /// `validation` or `test`.
        split: &'static str,
    },
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Divergence::Loss { step } => write!(f, "non-finite loss at step {step}"),
            Divergence::Tensor { epoch, name } => write!(
                f,
                "non-finite values in `{name}` after epoch {epoch} (its losses were finite)"
            ),
            Divergence::Evaluation { epoch, split } => {
                write!(f, "non-finite {split} loss after epoch {epoch}")
            }
        }
    }
}

/// How an epoch's steps ended.
enum EpochSteps {
    /// Every step taken, the model finite.
    Trained(Trained),
    /// The model diverged.
    Diverged(DivergedEpoch),
    /// A [`StopRequest`] came before the epoch's last step: nothing of it is kept.
    Interrupted,
}

/// An epoch in which the model diverged: why, and the steps it took.
struct DivergedEpoch {
    divergence: Divergence,
    steps: Vec<StepRow>,
}

impl DivergedEpoch {
    fn new(divergence: Divergence, steps: Vec<StepRow>) -> Self {
        Self { divergence, steps }
    }
}

/// How a call's epochs ended.
#[derive(Clone, Debug, PartialEq)]
enum Ending {
    /// Every planned epoch trained.
    Complete,
    /// Stopped early as asked (after an epoch, or by a [`StopRequest`]); resumable.
    Stopped,
    /// Diverged; the run ends here.
    Diverged(Divergence),
}

/// The counters and records of a run in progress.
#[derive(Default)]
struct State {
    epoch: u32,
    step: u64,
    best: Option<(f64, u32)>,
    epochs: Vec<EpochRow>,
    steps: Vec<StepRow>,
}

/// One call of [`train`]: the run, its model and data, and the optimizer and scheduler driving
/// it.
struct Session<'a, M: ?Sized, E: ?Sized> {
    model: &'a M,
    data: &'a Data<'a, E>,
    spec: &'a RunSpec,
    dir: &'a RunDir,
    device: &'a Device,
    options: &'a Options,
    optimizer: Adam,
    scheduler: AnyScheduler,
    /// Whether the scheduler reads each step's loss: then it is read at once (the host waits
    /// for the device every step); otherwise the epoch's losses come back in one transfer at
    /// its end.
    reads_step_loss: bool,
    state: State,
}

/// One optimizer step: its row (the loss still `NaN` unless read at once), the batch's loss
/// on the device, and the number of its examples classified right (`None` when the loss was
/// read and is not finite: nothing was updated).
struct Stepped {
    row: StepRow,
    loss: Tensor,
    hits: Option<Tensor>,
}

impl<'a, M: Network + ?Sized, E: Examples + ?Sized> Session<'a, M, E> {
    /// A session of `run` from its first epoch: the model set to the run's precision, a fresh
    /// optimizer and schedule.
    fn new(
        model: &'a M,
        data: &'a Data<'a, E>,
        run: Run<'a>,
        device: &'a Device,
        options: &'a Options,
    ) -> Result<Self> {
        let spec = run.spec;
        model.set_compute_dtype(compute_dtype(spec.train.dtype))?;
        candle_core::cuda::set_gemm_reduced_precision_f32(spec.train.tf32);
        let scheduler = spec.build_scheduler()?;
        let reads_step_loss = scheduler.needs().contains(Signal::BatchLoss);
        let optimizer = Adam::new(
            spec.optimizer.clone(),
            model.parameters().trainable(),
            [Signal::GradDot, Signal::GradCos]
                .iter()
                .any(|s| scheduler.needs().contains(*s)),
        )?;
        Ok(Session {
            model,
            data,
            spec,
            dir: run.dir,
            device,
            options,
            optimizer,
            scheduler,
            reads_step_loss,
            state: State::default(),
        })
    }

    /// Records how the epochs ended in `record` and returns the outcome (or their error).
    fn close(self, mut record: RunRecord, result: Result<Ending>) -> Result<Outcome> {
        let (status, message) = match &result {
            Ok(Ending::Complete) => (Status::Complete, None),
            Ok(Ending::Stopped) => (Status::Running, None),
            Ok(Ending::Diverged(divergence)) => (Status::Diverged, Some(divergence.to_string())),
            Err(e) => (Status::Failed, Some(e.to_string())),
        };
        record.epochs_done = self.state.epoch;
        record.end(status, message);
        self.dir.write_record(&record)?;
        result?;
        Ok(Outcome {
            status,
            epochs_done: self.state.epoch,
            epochs: self.state.epochs,
        })
    }

    /// Restores the last checkpoint, if there is one: weights, moments, scheduler, counters and
    /// the rows up to its epoch (later rows were written after it; their epoch runs again).
    fn resume(&mut self) -> Result<bool> {
        let damaged = |cause: TrainError| TrainError::DamagedCheckpoint {
            folder: self.dir.checkpoint_folder(),
            cause: Box::new(cause),
        };
        let Some(checkpoint) = checkpoint::latest(self.dir).map_err(damaged)? else {
            return Ok(false);
        };
        let saved = self.restore(&checkpoint).map_err(damaged)?;
        let mut epochs = self.dir.read_epochs()?;
        epochs.retain(|row| row.epoch <= saved.epoch);
        let mut steps = self.dir.read_steps()?;
        steps.retain(|row| row.epoch <= saved.epoch);
        // The rows up to the checkpoint must all be there: a resumed run does not write them
        // again, and its record would lack them.
        let (rows_epoch, rows_step) = (
            epochs.last().map_or(0, |row| row.epoch),
            steps.last().map_or(0, |row| row.step),
        );
        if (rows_epoch, rows_step) != (saved.epoch, saved.step) {
            return Err(damaged(TrainError::Checkpoint {
                message: format!(
                    "it is of epoch {} (step {}), but the rows of {} end at epoch {rows_epoch} \
                     (step {rows_step}): the rows were deleted or damaged",
                    saved.epoch,
                    saved.step,
                    self.dir.path().display()
                ),
            }));
        }
        self.state = State {
            epoch: saved.epoch,
            step: saved.step,
            best: saved.best,
            epochs,
            steps,
        };
        Ok(true)
    }

    /// Sets the model, optimizer and scheduler to `checkpoint`'s and returns its state.
    fn restore(&mut self, checkpoint: &checkpoint::Checkpoint) -> Result<CheckpointState> {
        self.model.parameters().restore(&checkpoint.weights())?;
        let saved = checkpoint.state()?;
        let path = checkpoint.optimizer();
        let moments = candle_core::safetensors::load(&path, self.device)
            .map_err(|e| TrainError::file(&path, e))?;
        self.optimizer.restore(moments, saved.step)?;
        self.scheduler = saved.scheduler.clone();
        Ok(saved)
    }

    /// Trains the remaining epochs, until the last, a divergence, or the epoch to stop after.
    fn epochs(&mut self) -> Result<Ending> {
        let epochs = self.spec.train.epochs;
        while self.state.epoch < epochs {
            let epoch = self.state.epoch + 1;
            let started = Instant::now();
            let trained = match self.train_epoch(epoch)? {
                EpochSteps::Trained(trained) => trained,
                EpochSteps::Diverged(diverged) => return self.diverged(diverged),
                EpochSteps::Interrupted => return Ok(Ending::Stopped),
            };
            if let Some(diverged) = self.finish_epoch(epoch, started, trained)? {
                return self.diverged(diverged);
            }
            if self.options.stop_after == Some(epoch) && epoch < epochs {
                return Ok(Ending::Stopped);
            }
        }
        Ok(Ending::Complete)
    }

    /// Ends the run as diverged, writing the rows so far with the diverged epoch's steps (the
    /// epoch itself has no row).
    fn diverged(&mut self, diverged: DivergedEpoch) -> Result<Ending> {
        self.state.steps.extend(diverged.steps);
        self.dir.write_rows(&self.state.epochs, &self.state.steps)?;
        Ok(Ending::Diverged(diverged.divergence))
    }

    /// The optimizer steps of `epoch`; or why the model diverged during them (a step's loss, or
    /// a tensor once the steps are done); or that a stop was requested before one of them.
    fn train_epoch(&mut self, epoch: u32) -> Result<EpochSteps> {
        let plan = &self.spec.train;
        let seed = self.spec.seed;
        let batches = epoch_batches(
            self.data.train.len(),
            plan.batch_size,
            seed,
            u64::from(epoch),
            true,
        );
        let mut bar = self
            .options
            .progress
            .epoch(epoch, plan.epochs, batches.len());
        let augment = plan.augment.then_some(Augment {
            seed,
            epoch: u64::from(epoch),
        });
        let started = Instant::now();
        let mut lr = self.scheduler.lr();
        let mut correct = Tensor::zeros((), DType::U32, self.device)?;
        let mut new_steps = Vec::with_capacity(batches.len());
        let mut losses = Vec::with_capacity(batches.len());
        for indices in &batches {
            if self.options.stop.is_requested() {
                return Ok(EpochSteps::Interrupted);
            }
            let Stepped { row, loss, hits } = self.step(indices, epoch, augment)?;
            new_steps.push(row);
            losses.push(loss);
            let Some(hits) = hits else {
                let divergence = Divergence::Loss { step: row.step };
                return Ok(EpochSteps::Diverged(DivergedEpoch::new(
                    divergence, new_steps,
                )));
            };
            correct = (correct + hits)?;
            lr = row.lr;
            bar.step(self.reads_step_loss.then_some(row.loss), row.lr);
        }
        // The epoch's batch losses in one transfer from the device.
        let losses = Tensor::stack(&losses, 0)?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        for (row, loss) in new_steps.iter_mut().zip(losses) {
            row.loss = f64::from(loss);
        }
        if let Some(first) = new_steps.iter().position(|row| !row.loss.is_finite()) {
            // The steps after it updated the model with non-finite gradients; the run ends here.
            new_steps.truncate(first + 1);
            let divergence = Divergence::Loss {
                step: new_steps[first].step,
            };
            return Ok(EpochSteps::Diverged(DivergedEpoch::new(
                divergence, new_steps,
            )));
        }
        let loss_sum: f64 = new_steps
            .iter()
            .zip(&batches)
            .map(|(row, indices)| row.loss * indices.len() as f64)
            .sum();
        if let Some(name) = self.model.parameters().first_non_finite()? {
            let name = name.to_owned();
            let divergence = Divergence::Tensor { epoch, name };
            return Ok(EpochSteps::Diverged(DivergedEpoch::new(
                divergence, new_steps,
            )));
        }
        let seen = batches.iter().map(Vec::len).sum::<usize>() as f64;
        Ok(EpochSteps::Trained(Trained {
            lr,
            train_loss: loss_sum / seen,
            train_acc: f64::from(correct.to_scalar::<u32>()?) / seen,
            examples_per_second: seen / started.elapsed().as_secs_f64(),
            steps: new_steps,
            progress: bar,
        }))
    }

    /// One optimizer step on the training examples `indices` (see [`Stepped`]).
    fn step(&mut self, indices: &[usize], epoch: u32, augment: Option<Augment>) -> Result<Stepped> {
        let lr = self.scheduler.lr();
        self.model.set_random_stream(self.state.step);
        let batch = self.data.train.batch(indices, augment, self.device)?;
        let logits = self.model.forward_t(&batch.inputs, true)?;
        let loss = cross_entropy(&logits, &batch.labels)?;
        let read = match self.reads_step_loss {
            true => Some(f64::from(loss.to_scalar::<f32>()?)),
            false => None,
        };
        let mut row = StepRow {
            step: self.state.step + 1,
            epoch,
            lr,
            loss: read.unwrap_or(f64::NAN),
            grad_dot: None,
            grad_cos: None,
        };
        if read.is_some_and(|loss| !loss.is_finite()) {
            let loss = loss.detach();
            return Ok(Stepped {
                row,
                loss,
                hits: None,
            });
        }
        let grads = loss.backward()?;
        let hits = hits(&logits, &batch.labels)?;
        let agreement = self.optimizer.step(&grads, lr)?;
        row.grad_dot = agreement.map(|a| a.dot);
        row.grad_cos = agreement.map(|a| a.cos);
        self.state.step += 1;
        self.scheduler.observe(&Observation::Step(StepEnd {
            step: self.state.step,
            epoch: u64::from(epoch),
            loss: read,
            grad_dot: row.grad_dot,
            grad_cos: row.grad_cos,
        }));
        Ok(Stepped {
            row,
            loss: loss.detach(),
            hits: Some(hits),
        })
    }

    /// Evaluates after `epoch`, tells the scheduler, and writes the rows, the best weights and
    /// the checkpoint; or, when a split's loss is not finite, returns the diverged epoch.
    fn finish_epoch(
        &mut self,
        epoch: u32,
        started: Instant,
        trained: Trained,
    ) -> Result<Option<DivergedEpoch>> {
        let eval_batch = self.spec.train.eval_batch_size;
        let val = evaluate(self.model, self.data.val, None, eval_batch, self.device)?;
        let test = self
            .data
            .test
            .map(|t| evaluate(self.model, t, None, eval_batch, self.device))
            .transpose()?;
        let non_finite = [("validation", Some(val)), ("test", test)]
            .into_iter()
            .find(|(_, score)| score.is_some_and(|s| !s.loss.is_finite()));
        if let Some((split, _)) = non_finite {
            let divergence = Divergence::Evaluation { epoch, split };
            return Ok(Some(DivergedEpoch::new(divergence, trained.steps)));
        }
        self.scheduler.observe(&Observation::Epoch(EpochEnd {
            epoch: u64::from(epoch),
            step: self.state.step,
            train_loss: Some(trained.train_loss),
            train_acc: Some(trained.train_acc),
            val_loss: Some(val.loss),
            val_acc: Some(val.accuracy),
        }));
        let row = EpochRow {
            epoch,
            lr: trained.lr,
            train_loss: trained.train_loss,
            train_acc: trained.train_acc,
            val_loss: val.loss,
            val_acc: val.accuracy,
            test_loss: test.map(|t| t.loss),
            test_acc: test.map(|t| t.accuracy),
            epoch_seconds: started.elapsed().as_secs_f64(),
            examples_per_second: trained.examples_per_second,
        };
        trained.progress.finish(&row);
        self.state.epochs.push(row);
        self.state.steps.extend(trained.steps);
        self.state.epoch = epoch;
        self.dir.write_rows(&self.state.epochs, &self.state.steps)?;
        let weights = self.model.parameters().to_safetensors()?;
        let better = self.state.best.is_none_or(|(best, _)| val.accuracy > best);
        if self.spec.train.keep_best && better {
            self.state.best = Some((val.accuracy, epoch));
            checkpoint::write_best(self.dir, &weights)?;
        }
        self.write_checkpoint(&weights)?;
        Ok(None)
    }

    fn write_checkpoint(&self, weights: &[u8]) -> Result<()> {
        let moments = self.optimizer.state()?;
        let moments = safetensors::serialize(moments.iter().map(|(n, t)| (n.as_str(), t)), None)
            .map_err(|e| TrainError::Checkpoint {
                message: e.to_string(),
            })?;
        let saved = CheckpointState {
            epoch: self.state.epoch,
            step: self.state.step,
            scheduler: self.scheduler.clone(),
            best: self.state.best,
        };
        checkpoint::write(self.dir, &saved, weights, &moments)
    }
}

/// What an epoch's training steps gave.
struct Trained {
    /// The rate of the last step.
    lr: f64,
    train_loss: f64,
    train_acc: f64,
    examples_per_second: f64,
    steps: Vec<StepRow>,
    progress: crate::progress::EpochProgress,
}

/// `cpu` or `cuda:N`.
fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}
