//! Errors of loading data, each naming the file, the row where there is one, and the fix.

use std::path::PathBuf;

/// Why data could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file is not in the Hub cache and downloading is not allowed.
    #[error(
        "{kind} {repo} (revision {revision}): `{file}` is not in the Hub cache at {}, and \
         HF_HUB_OFFLINE=1 forbids downloading it. Fill the cache on a machine with network \
         access (run the same command there without HF_HUB_OFFLINE, or `huggingface-cli download \
         {repo} {file}{}`) and point HF_HOME or HF_HUB_CACHE at it",
        cache.display(),
        if *kind == "dataset" { " --repo-type dataset" } else { "" }
    )]
    NotCached {
        /// `dataset` or `model`.
        kind: &'static str,
        /// The repository id.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The file inside the repository.
        file: String,
        /// The cache folder searched.
        cache: PathBuf,
    },
    /// Downloading from the Hub failed.
    #[error("{kind} {repo}: cannot download `{file}` from {endpoint}: {message}")]
    Download {
        /// `dataset` or `model`.
        kind: &'static str,
        /// The repository id.
        repo: String,
        /// The file inside the repository.
        file: String,
        /// The Hub endpoint used.
        endpoint: String,
        /// What the client reported.
        message: String,
    },
    /// A file holds something other than what was expected.
    #[error("{}{}: {message}", path.display(), row.map(|r| format!(", row {r}")).unwrap_or_default())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The 0-based row, where one is at fault.
        row: Option<usize>,
        /// What was expected and what was found.
        message: String,
    },
    /// A configuration value cannot work.
    #[error("`{field}`: {message}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What was expected and what was found.
        message: String,
    },
    /// A tensor could not be built.
    #[error("building a batch: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl DataError {
    /// An error about the whole of `path`.
    pub(crate) fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::Invalid {
            path: path.into(),
            row: None,
            message: message.into(),
        }
    }

    /// An error about row `row` of `path`.
    pub(crate) fn row(path: impl Into<PathBuf>, row: usize, message: impl Into<String>) -> Self {
        DataError::Invalid {
            path: path.into(),
            row: Some(row),
            message: message.into(),
        }
    }
}

/// The result of loading data.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
