//! The floating-point type a model computes in. Mixed precision as PyTorch's autocast does it:
//! parameters stay `f32` (the optimizer updates them and keeps its state in `f32`), matrix
//! products and convolutions run in the compute type, normalisations and softmax in `f32`, and
//! the logits come out in `f32` for the loss.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Result, Tensor};

/// The compute types a model supports: `f32`, and `bf16` products over `f32` parameters.
pub const COMPUTE_DTYPES: [DType; 2] = [DType::F32, DType::BF16];

/// A model's compute type, shared by all its layers, so that it can be switched after the model
/// is built (the trainer sets the run's).
#[derive(Clone, Debug, Default)]
pub(crate) struct Compute(Arc<AtomicBool>);

impl Compute {
    /// Switches every layer holding this handle to `dtype`, one of [`COMPUTE_DTYPES`].
    pub fn set(&self, dtype: DType) -> Result<()> {
        match dtype {
            DType::F32 | DType::BF16 => {
                self.0.store(dtype == DType::BF16, Ordering::Relaxed);
                Ok(())
            }
            other => Err(candle_core::Error::Msg(format!(
                "a model computes in f32 or bf16 (over f32 parameters), not {other:?}"
            ))),
        }
    }

    /// The current compute type.
    pub fn get(&self) -> DType {
        match self.0.load(Ordering::Relaxed) {
            false => DType::F32,
            true => DType::BF16,
        }
    }

    /// `t` in the compute type (itself when it already is).
    pub fn cast(&self, t: &Tensor) -> Result<Tensor> {
        t.to_dtype(self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_handle_switches_every_holder() {
        let compute = Compute::default();
        let layer = compute.clone();
        assert_eq!(layer.get(), DType::F32);
        compute.set(DType::BF16).unwrap();
        assert_eq!(layer.get(), DType::BF16);
    }

    #[test]
    fn only_the_supported_types_are_taken() {
        let compute = Compute::default();
        let err = compute.set(DType::F16).unwrap_err().to_string();
        assert!(err.contains("f32 or bf16") && err.contains("F16"), "{err}");
        assert_eq!(compute.get(), DType::F32);
    }
}
