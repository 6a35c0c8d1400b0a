//! The run record of lrlab: what a run *is* — its fully resolved, fingerprinted specification —
//! and what it *recorded*, in a directory that the trainer writes and the analysis reads. It is
//! the contract between the two: anything that writes this format can be analysed.
//!
//! ```no_run
//! use lrlab_runs::RunDir;
//! # fn main() -> lrlab_runs::Result<()> {
//! for run in RunDir::find_under("runs/cifar10".as_ref())? {
//!     let record = run.read_record()?.expect("found by its run.json");
//!     let epochs = run.read_epochs()?;
//!     let spec = &record.spec;
//!     println!(
//!         "{} seed {}: {} after {} of {} epochs (fingerprint {})",
//!         spec.arm,
//!         spec.seed,
//!         record.status,
//!         epochs.len(),
//!         spec.train.epochs,
//!         record.fingerprint.short()
//!     );
//! }
//! # Ok(()) }
//! ```
//!
//! # The run directory, format 3
//!
//! One run lives in `<out>/<experiment>/<arm>/seed-<seed>/` ([`RunDir::in_layout`]):
//!
//! | file | written by | content |
//! | --- | --- | --- |
//! | `run.json` | trainer, at the start and the end of every call | [`RunRecord`] |
//! | `epochs.parquet` | trainer, after every epoch | one [`EpochRow`] per finished epoch |
//! | `steps.parquet` | trainer, after every epoch | one [`StepRow`] per optimizer step |
//! | `checkpoint/` | trainer | what a resume needs (below) |
//! | `.lock` | `cargo xtask experiment` | the id of the process training the run |
//!
//! **`run.json`** is a JSON object with the fields of [`RunRecord`]: `schema` ([`SCHEMA`]: a
//! reader refuses any other, and a file without it), `fingerprint`, `spec` ([`RunSpec`]: the
//! experiment, arm and seed; `data`, `model`, `train` and `optimizer` as the experiment file's
//! tables; `scheduler` with every length a number of ticks; `resolved`, what those came to on
//! the data — dataset and checkpoint commits, split sizes, steps per epoch; `lrlab_version`),
//! `analysis` ([`AnalysisPlan`]: the primary metric, threshold, baselines and references, which
//! do not change the run), `status`
//! (`running`, `complete`, `diverged` or `failed`: [`Status`]), `message`, `epochs_done`,
//! `device`, `git_commit`, `started`, `finished` and `resumed`.
//!
//! The **fingerprint** is the SHA-256 of the specification's canonical JSON ([`Fingerprint`]). A
//! run is skipped or resumed only by an invocation whose specification has the same
//! fingerprint; a reader checks that the stored fingerprint is that of the stored
//! specification, so a hand-edited `run.json` is refused, not believed.
//!
//! **`epochs.parquet`** (uncompressed) has the columns of [`epoch_columns`]: `epoch` (`u32`,
//! 1-based, strictly increasing), `lr`, `train_loss`, `train_acc`, `val_loss`, `val_acc`,
//! `test_loss` and `test_acc` (null when no test set is measured), `epoch_seconds` and
//! `examples_per_second` (`f64`; every value finite and not negative, accuracies in [0, 1]: a
//! diverged epoch has no row). **`steps.parquet`** (zstd) has those of [`step_columns`]:
//! `step` (`u64`, 1-based), `epoch` (`u32`), `lr`, `loss`, `grad_dot` and `grad_cos` (null
//! unless the schedule reads the gradients' agreement). Readers accept any numeric type that
//! converts without loss.
//!
//! **`checkpoint/`** belongs to the trainer: `epoch-NNNN/` holds the weights
//! (`weights.safetensors`, the model's own tensor names), the optimizer's moments
//! (`optimizer.safetensors`) and `state.json` (epoch, step, the scheduler's whole state, the best
//! validation accuracy); `latest.json` (`{"epoch": N}`) points at the last complete one and is
//! written last; `best.safetensors` holds the weights of the best epoch by validation accuracy
//! when the plan keeps them. Analysis never reads it.
//!
//! Every file is written atomically ([`write_atomic`]: a temporary file, fsync, rename, fsync of
//! the folder), so a run killed at any instant leaves files that read. A resume continues from
//! the epoch of `latest.json` and drops the rows of any later epoch, which runs again.

mod dir;
mod error;
mod fingerprint;
mod record;
mod rows;
mod spec;

pub use dir::{CHECKPOINT_FOLDER, EPOCHS_FILE, RECORD_FILE, RunDir, STEPS_FILE, write_atomic};
pub use error::{Result, RunError, SpecError};
pub use fingerprint::{Difference, Fingerprint, differences};
pub use record::{AnalysisPlan, RunRecord, SCHEMA, Status, TunedArm, Tuning};
pub use rows::{EpochRow, StepRow, epoch_columns, step_columns};
pub use spec::{
    DataSettings, HubCommit, ModelSettings, OptimizerConfig, OptimizerKind, Precision, Resolved,
    RunSpec, SplitSizes, TrainPlan, check_name,
};
