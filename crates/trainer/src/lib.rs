//! The training loop of lrlab: any [`lrlab_models::Network`] on any
//! [`lrlab_datasets::Examples`], Adam or AdamW as PyTorch computes them, the learning rate from
//! any `lrlab-schedulers` schedule, for a run whose whole specification is an
//! [`lrlab_runs::RunSpec`]; per-epoch and per-step rows in its run directory (the format of
//! `lrlab-runs`), a checkpoint after every epoch and an exact resume.
//!
//! Everything random in a run — data order, augmentation, dropout — is a function of the seed and
//! the epoch or step, and the model's initial weights of the seed, so that arms trained with a
//! seed differ only by their schedules, and a resumed run repeats an uninterrupted one. A run
//! directory is only ever continued by the specification that started it: its fingerprint is
//! checked before anything is trained.

mod checkpoint;
mod device;
mod error;
mod optim;
mod progress;
mod train;

pub use device::DeviceChoice;
pub use error::{Result, TrainError};
pub use optim::{Adam, Agreement};
pub use progress::Progress;
pub use train::{Data, Options, Outcome, Run, Score, StopRequest, compute_dtype, evaluate, train};
