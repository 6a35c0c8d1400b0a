//! Errors of the analysis, each naming the file or setting at fault and the fix.

use std::path::PathBuf;

/// Why runs could not be read or a report written.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// A file of a run directory, or of the report, is unreadable or unwritable.
    #[error("{}: {message}", path.display())]
    File {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong, and what to do about it.
        message: String,
    },
    /// A run directory cannot be read.
    #[error(transparent)]
    Run(#[from] lrlab_runs::RunError),
    /// A setting cannot work with the runs found.
    #[error("{message}")]
    Setting {
        /// What does not fit, and what to pass instead.
        message: String,
    },
}

impl AnalysisError {
    /// A file error with its path.
    pub(crate) fn file(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        AnalysisError::File {
            path: path.into(),
            message: message.to_string(),
        }
    }

    /// A setting error.
    pub(crate) fn setting(message: impl std::fmt::Display) -> Self {
        AnalysisError::Setting {
            message: message.to_string(),
        }
    }
}

/// The result of analysis operations.
pub type Result<T> = std::result::Result<T, AnalysisError>;
