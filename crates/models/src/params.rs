//! What a model holds, under the names PyTorch gives it: trainable parameters, buffers (batch-norm
//! running statistics) and counters (`num_batches_tracked`), and how they are created — from a
//! checkpoint, or fresh from a seed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use candle_core::{DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};

use crate::checkpoint::Checkpoint;
use crate::error::{ModelError, Result};
use crate::precision::Compute;

/// Every tensor of a model by its PyTorch name, in the order the model creates them.
#[derive(Clone, Debug, Default)]
pub struct Parameters {
    trainable: Vec<(String, Var)>,
    buffers: Vec<(String, Var)>,
    counters: Vec<(String, Arc<AtomicI64>)>,
}

impl Parameters {
    /// The parameters an optimizer updates, with their names.
    pub fn trainable(&self) -> &[(String, Var)] {
        &self.trainable
    }

    /// The buffers (batch-norm running statistics) with their names: part of the model's
    /// state, moved by training but not by the optimizer.
    pub fn buffers(&self) -> &[(String, Var)] {
        &self.buffers
    }

    /// The number of trainable scalars (PyTorch's `sum(p.numel() for p in model.parameters())`).
    pub fn trainable_count(&self) -> usize {
        self.trainable.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Every tensor of the model as its `state_dict` would hold it: parameters, buffers and the
    /// counters as 0-dimensional `i64` tensors, on the CPU.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut state = Vec::with_capacity(self.len());
        for (name, var) in self.trainable.iter().chain(&self.buffers) {
            state.push((name.clone(), var.as_tensor().to_device(&Device::Cpu)?));
        }
        for (name, count) in &self.counters {
            let value = Tensor::new(count.load(Ordering::Relaxed), &Device::Cpu)?;
            state.push((name.clone(), value));
        }
        Ok(state)
    }

    /// The model's tensors as the bytes of a safetensors file, which PyTorch's
    /// `load_state_dict(..., strict=True)` and transformers' `from_pretrained` read as-is.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let state = self.state()?;
        safetensors::serialize(state.iter().map(|(n, t)| (n.as_str(), t)), None).map_err(|e| {
            ModelError::Setting {
                field: "weights",
                message: format!("cannot serialise the model: {e}"),
            }
        })
    }

    /// Sets every tensor to its value in the safetensors file `path` (one this model saved, with
    /// [`Self::to_safetensors`]): every name must be present with its shape.
    pub fn restore(&self, path: &Path) -> Result<()> {
        let mut checkpoint = Checkpoint::read(&[path], |name| Some(name.to_owned()))?;
        let hint = "the file was saved by another model";
        let mut take = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let found = checkpoint
                .take(name)
                .ok_or_else(|| ModelError::MissingTensor {
                    files: vec![path.to_owned()],
                    name: name.to_owned(),
                    hint: hint.into(),
                })?;
            found.with_shape(shape, hint)
        };
        for (name, var) in self.trainable.iter().chain(&self.buffers) {
            let value = take(name, var.dims())?;
            var.set(&value.to_dtype(var.dtype())?.to_device(var.device())?)?;
        }
        for (name, count) in &self.counters {
            let value = take(name, &[])?.to_dtype(DType::I64)?.to_scalar::<i64>()?;
            count.store(value, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The name of the first parameter or buffer holding a NaN or an infinity, if any: the
    /// check that sees a diverged model whatever its activations hide (a ReLU turns a NaN into
    /// 0, so a poisoned layer can leave the loss finite). One reduction per tensor and one
    /// read from the device for all of them.
    pub fn first_non_finite(&self) -> Result<Option<&str>> {
        let tensors: Vec<&(String, Var)> = self.trainable.iter().chain(&self.buffers).collect();
        if tensors.is_empty() {
            return Ok(None);
        }
        // 0·x is 0 for a finite x and NaN for a NaN or an infinity; a sum keeps the NaN.
        let sums = tensors
            .iter()
            .map(|(_, var)| {
                var.as_tensor()
                    .affine(0.0, 0.0)?
                    .sum_all()?
                    .to_dtype(DType::F32)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let sums = Tensor::stack(&sums, 0)?.to_vec1::<f32>()?;
        Ok(sums
            .iter()
            .position(|sum| !sum.is_finite())
            .map(|i| tensors[i].0.as_str()))
    }

    /// The number of named tensors.
    pub fn len(&self) -> usize {
        self.trainable.len() + self.buffers.len() + self.counters.len()
    }

    /// Whether the model holds no tensor at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a tensor is filled when it is created fresh.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Init {
    /// Every element the same value.
    Constant(f64),
    /// Uniform on `[-bound, bound]`.
    Uniform(f64),
    /// Normal with mean 0 and this standard deviation.
    Normal(f64),
}

/// Which tensors of a model may be created fresh when a checkpoint lacks them (a new
/// classification head), and which must be loaded.
pub(crate) type FreshAllowed = fn(&str) -> bool;

/// Creates a model's tensors, from a checkpoint where one is given, fresh from the seed
/// otherwise, and records them in a [`Parameters`].
pub(crate) struct Builder {
    checkpoint: Option<Checkpoint>,
    fresh_allowed: FreshAllowed,
    seed: u64,
    device: Device,
    params: Parameters,
    fresh: Vec<String>,
    compute: Compute,
}

impl Builder {
    /// A builder of fresh tensors drawn from `seed`.
    pub fn fresh(seed: u64, device: &Device) -> Self {
        Self {
            checkpoint: None,
            fresh_allowed: |_| true,
            seed,
            device: device.clone(),
            params: Parameters::default(),
            fresh: Vec::new(),
            compute: Compute::default(),
        }
    }

    /// A builder that loads every tensor from `checkpoint`, except those `fresh_allowed`
    /// accepts, which are drawn from `seed` when the checkpoint lacks them.
    pub fn from_checkpoint(
        checkpoint: Checkpoint,
        fresh_allowed: FreshAllowed,
        seed: u64,
        device: &Device,
    ) -> Self {
        Self {
            checkpoint: Some(checkpoint),
            fresh_allowed,
            ..Self::fresh(seed, device)
        }
    }

    /// The device the model's tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The compute precision of the model being built, shared by all its layers.
    pub fn compute(&self) -> Compute {
        self.compute.clone()
    }

    /// A trainable parameter.
    pub fn trainable(
        &mut self,
        name: &str,
        shape: &[usize],
        init: Init,
        hint: &str,
    ) -> Result<Tensor> {
        let var = self.var(name, shape, init, hint)?;
        let tensor = var.as_tensor().clone();
        self.params.trainable.push((name.to_owned(), var));
        Ok(tensor)
    }

    /// A buffer: state that moves in training but receives no gradient.
    pub fn buffer(&mut self, name: &str, shape: &[usize], init: Init, hint: &str) -> Result<Var> {
        let var = self.var(name, shape, init, hint)?;
        self.params.buffers.push((name.to_owned(), var.clone()));
        Ok(var)
    }

    /// An integer counter, such as batch norm's `num_batches_tracked`.
    pub fn counter(&mut self, name: &str, hint: &str) -> Result<Arc<AtomicI64>> {
        let value = match self.load(name, &[], hint)? {
            Some(t) => t.to_dtype(DType::I64)?.to_scalar::<i64>()?,
            None => 0,
        };
        let counter = Arc::new(AtomicI64::new(value));
        self.params
            .counters
            .push((name.to_owned(), counter.clone()));
        Ok(counter)
    }

    /// The tensors made, the names created fresh although a checkpoint was given, and the
    /// checkpoint's tensors that no part of the model used.
    pub fn finish(self) -> (Parameters, Vec<String>, Vec<String>, Option<Vec<PathBuf>>) {
        let (unused, files) = match self.checkpoint {
            Some(c) => (c.unused(), Some(c.files().to_vec())),
            None => (Vec::new(), None),
        };
        (self.params, self.fresh, unused, files)
    }

    fn var(&mut self, name: &str, shape: &[usize], init: Init, hint: &str) -> Result<Var> {
        let tensor = match self.load(name, shape, hint)? {
            Some(t) => t.to_dtype(DType::F32)?,
            None => self.draw(name, shape, init)?,
        };
        Ok(Var::from_tensor(&tensor)?)
    }

    /// The checkpoint's tensor `name`, checked against `shape`; `None` when it must be drawn.
    fn load(&mut self, name: &str, shape: &[usize], hint: &str) -> Result<Option<Tensor>> {
        let Some(checkpoint) = &mut self.checkpoint else {
            return Ok(None);
        };
        match checkpoint.take(name) {
            Some(found) => Ok(Some(
                found.with_shape(shape, hint)?.to_device(&self.device)?,
            )),
            None if (self.fresh_allowed)(name) => {
                self.fresh.push(name.to_owned());
                Ok(None)
            }
            None => Err(ModelError::MissingTensor {
                files: checkpoint.files().to_vec(),
                name: name.to_owned(),
                hint: hint.to_owned(),
            }),
        }
    }

    /// A fresh tensor: its values depend on the seed and the tensor's name only, so that a model
    /// is the same whatever was loaded around it.
    fn draw(&self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let count = shape.iter().product::<usize>();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ fnv1a(name.as_bytes()));
        let values: Vec<f32> = match init {
            Init::Constant(value) => vec![value as f32; count],
            Init::Uniform(bound) => {
                let uniform =
                    Uniform::new_inclusive(-bound, bound).map_err(|e| ModelError::Setting {
                        field: "init",
                        message: format!("{name}: {e}"),
                    })?;
                (0..count)
                    .map(|_| uniform.sample(&mut rng) as f32)
                    .collect()
            }
            Init::Normal(std) => (0..count)
                .map(|_| {
                    let z: f64 = StandardNormal.sample(&mut rng);
                    (std * z) as f32
                })
                .collect(),
        };
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?.to_device(&self.device)?)
    }
}

/// FNV-1a, a stable hash (unlike std's) to derive each tensor's stream from its name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
