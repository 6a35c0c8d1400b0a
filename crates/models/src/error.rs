//! Errors of building, loading and saving models, each naming the file, the tensor and the fix.

use std::path::PathBuf;

/// Why a model could not be built, loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system reported.
        source: std::io::Error,
    },
    /// A model configuration file is not what was expected.
    #[error("{}: {message}", path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What was expected and what was found.
        message: String,
    },
    /// A checkpoint lacks a tensor the model needs.
    #[error(
        "{}: no tensor `{name}` (nor any of its accepted spellings); the checkpoint was made for \
         another architecture or size. {hint}",
        files_list(files)
    )]
    MissingTensor {
        /// The checkpoint files searched.
        files: Vec<PathBuf>,
        /// The model's name of the tensor.
        name: String,
        /// What to do about it.
        hint: String,
    },
    /// A checkpoint tensor has another shape than the model's.
    #[error(
        "{}: tensor `{name}` has shape {found:?} but the model expects {expected:?}; the \
         checkpoint was made with other settings ({hint})",
        file.display()
    )]
    ShapeMismatch {
        /// The checkpoint file holding the tensor.
        file: PathBuf,
        /// The tensor name in the file.
        name: String,
        /// The shape the model needs.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
        /// Which setting decides the shape.
        hint: String,
    },
    /// A checkpoint holds tensors the model does not have, in a strict load.
    #[error(
        "{}: {} tensor(s) the model does not have, e.g. `{}`; the checkpoint was made for \
         another architecture",
        files_list(files),
        names.len(),
        names.first().map(String::as_str).unwrap_or_default()
    )]
    UnexpectedTensors {
        /// The checkpoint files.
        files: Vec<PathBuf>,
        /// The names left over.
        names: Vec<String>,
    },
    /// A checkpoint file is not valid safetensors.
    #[error("{}: not a readable safetensors file: {message}", path.display())]
    BadCheckpoint {
        /// The file.
        path: PathBuf,
        /// What the reader reported.
        message: String,
    },
    /// A model setting cannot work.
    #[error("`{field}`: {message}")]
    Setting {
        /// The setting.
        field: &'static str,
        /// What was expected and what was found.
        message: String,
    },
}

fn files_list(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The result of model operations.
pub type Result<T> = std::result::Result<T, ModelError>;
