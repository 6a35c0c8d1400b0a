//! Errors of a training run, each naming the file or setting at fault.

use std::path::PathBuf;

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A model could not be saved or restored.
    #[error(transparent)]
    Model(Box<lrlab_models::ModelError>),
    /// Data could not be loaded.
    #[error(transparent)]
    Data(Box<lrlab_datasets::DataError>),
    /// The run directory's record could not be read or written.
    #[error(transparent)]
    Record(#[from] lrlab_runs::RunError),
    /// The run's specification cannot be trained.
    #[error("the run's specification: {0}")]
    Spec(#[from] lrlab_runs::SpecError),
    /// The run directory holds a run of another specification.
    #[error(
        "{}: holds a run of another specification ({}); train into another folder, or discard \
         the run first",
        folder.display(),
        differences.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    SpecChanged {
        /// The run directory.
        folder: PathBuf,
        /// What differs, recorded → asked for.
        differences: Vec<lrlab_runs::Difference>,
    },
    /// A checkpoint file could not be read or written.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The run's last checkpoint cannot be restored.
    #[error(
        "{cause}; the run's checkpoint cannot be restored: delete {} to train the run again from \
         its first epoch",
        folder.display()
    )]
    DamagedCheckpoint {
        /// The run's checkpoint folder.
        folder: PathBuf,
        /// What could not be read.
        cause: Box<TrainError>,
    },
    /// A checkpoint does not fit the run.
    #[error("checkpoint: {message}")]
    Checkpoint {
        /// What does not fit.
        message: String,
    },
    /// A setting cannot work.
    #[error("`{field}`: {message}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What was expected and what was found.
        message: String,
    },
}

impl From<lrlab_models::ModelError> for TrainError {
    fn from(error: lrlab_models::ModelError) -> Self {
        TrainError::Model(Box::new(error))
    }
}

impl From<lrlab_datasets::DataError> for TrainError {
    fn from(error: lrlab_datasets::DataError) -> Self {
        TrainError::Data(Box::new(error))
    }
}

impl TrainError {
    /// A file error with its path.
    pub(crate) fn file(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        TrainError::File {
            path: path.to_owned(),
            message: message.to_string(),
        }
    }
}

/// The result of training operations.
pub type Result<T> = std::result::Result<T, TrainError>;
