//! The training loop of lrlab: any [`lrlab_models::Network`] on any
//! [`lrlab_datasets::Examples`], Adam or AdamW as PyTorch computes them, the learning rate from
//! any `lrlab-schedulers` schedule, per-epoch and per-step metrics in the run directory of
//! DESIGN.md, a checkpoint after every epoch and an exact resume.
//!
//! Everything random in a run — data order, augmentation, dropout — is a function of the seed and
//! the epoch or step, and the model's initial weights of the seed, so that arms trained with a
//! seed differ only by their schedules, and a resumed run repeats an uninterrupted one.

mod device;
mod error;
mod fused;
mod optim;
mod progress;
mod run_dir;
mod train;

pub use device::DeviceChoice;
pub use error::{Result, TrainError};
pub use optim::{Adam, OptimizerConfig, OptimizerKind};
pub use progress::Progress;
pub use run_dir::{EpochRow, RunDir, RunInfo, Status, StepRow, write_atomic};
pub use train::{Data, Options, Outcome, RunLabel, Score, TrainConfig, evaluate, train};
