//! Safetensors checkpoints, one file or several shards, with their tensors renamed to a
//! model's names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::error::{ModelError, Result};

/// A tensor found in a checkpoint, with where it came from.
pub(crate) struct Found {
    /// The tensor, on the CPU.
    pub tensor: Tensor,
    /// The file it was read from.
    pub file: PathBuf,
    /// Its name in that file.
    pub original_name: String,
}

impl Found {
    /// The tensor, when it has `shape`; a shape error naming the file otherwise.
    pub(crate) fn with_shape(self, shape: &[usize], hint: &str) -> Result<Tensor> {
        if self.tensor.dims() != shape {
            return Err(ModelError::ShapeMismatch {
                file: self.file,
                name: self.original_name,
                expected: shape.to_vec(),
                found: self.tensor.dims().to_vec(),
                hint: hint.to_owned(),
            });
        }
        Ok(self.tensor)
    }
}

/// The tensors of one or more safetensors files, by the model's names.
pub(crate) struct Checkpoint {
    files: Vec<PathBuf>,
    tensors: HashMap<String, Found>,
    ignored: Vec<String>,
}

impl Checkpoint {
    /// Reads every tensor of `files` (one checkpoint, possibly sharded), naming each with
    /// `rename`, which returns `None` for tensors the model has no use for. A later file's
    /// tensor replaces an earlier one of the same name, so a small file of extra tensors can be
    /// laid over a base checkpoint.
    pub fn read(
        files: &[impl AsRef<Path>],
        rename: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut tensors = HashMap::new();
        let mut ignored = Vec::new();
        for file in files {
            let file = file.as_ref();
            let bytes = std::fs::read(file).map_err(|source| ModelError::Io {
                path: file.to_owned(),
                source,
            })?;
            let loaded =
                candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
                    ModelError::BadCheckpoint {
                        path: file.to_owned(),
                        message: e.to_string(),
                    }
                })?;
            for (original_name, tensor) in loaded {
                match rename(&original_name) {
                    Some(name) => {
                        let file = file.to_owned();
                        tensors.insert(
                            name,
                            Found {
                                tensor,
                                file,
                                original_name,
                            },
                        );
                    }
                    None => ignored.push(original_name),
                }
            }
        }
        let files = files.iter().map(|f| f.as_ref().to_owned()).collect();
        Ok(Self {
            files,
            tensors,
            ignored,
        })
    }

    /// The files read.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The shape of the tensor the model calls `name`, if the checkpoint has it.
    pub(crate) fn dims(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|f| f.tensor.dims())
    }

    /// Removes and returns the tensor the model calls `name`.
    pub(crate) fn take(&mut self, name: &str) -> Option<Found> {
        self.tensors.remove(name)
    }

    /// The original names of the tensors not taken or of no use to the model, sorted.
    pub(crate) fn unused(&self) -> Vec<String> {
        let left = self.tensors.values().map(|f| f.original_name.clone());
        let mut names: Vec<String> = left.chain(self.ignored.iter().cloned()).collect();
        names.sort();
        names
    }
}
