//! Errors of run records: a file that cannot be read or written, and a specification that
//! cannot be trained.

use std::path::{Path, PathBuf};

/// A setting of a run specification that cannot work, with its key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct SpecError {
    /// The key, as a dotted path into the specification (`train.epochs`, `scheduler.t_max`).
    pub key: String,
    /// What was expected and what was found.
    pub message: String,
}

impl SpecError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Why a run directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A file of the run directory, with what went wrong and, where there is one, the fix.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The specification cannot be trained.
    #[error(transparent)]
    Spec(#[from] SpecError),
}

impl RunError {
    /// An error about the file at `path`.
    pub fn file(path: &Path, message: impl std::fmt::Display) -> Self {
        RunError::File {
            path: path.to_owned(),
            message: message.to_string(),
        }
    }
}

/// The result of run-record operations.
pub type Result<T> = std::result::Result<T, RunError>;
