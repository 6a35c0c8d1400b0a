//! The floating-point type a model computes in. Mixed precision as PyTorch's autocast does it:
//! parameters stay `f32` (the optimizer updates them and keeps its state in `f32`), matrix
//! products and convolutions run in the compute type, normalisations and softmax in `f32`, and
//! the logits come out in `f32` for the loss.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};

/// The type of a model's matrix products and convolutions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Single precision throughout.
    #[default]
    F32,
    /// bfloat16 products and convolutions over `f32` parameters (autocast to bf16).
    Bf16,
}

impl Precision {
    /// Every precision, in the order of [`Precision::name`]s in messages.
    pub const ALL: [Precision; 2] = [Precision::F32, Precision::Bf16];

    /// The candle type of the products.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }

    /// The name used in configuration files and on the command line: `f32` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown dtype `{s}`: use f32 or bf16"))
    }
}

/// A model's compute precision, shared by all its layers, so that it can be switched after the
/// model is built (the trainer sets the run's).
#[derive(Clone, Debug, Default)]
pub(crate) struct Compute(Arc<AtomicU8>);

impl Compute {
    /// Switches every layer holding this handle to `precision`.
    pub fn set(&self, precision: Precision) {
        self.0.store(precision as u8, Ordering::Relaxed);
    }

    /// The current precision.
    pub fn get(&self) -> Precision {
        match self.0.load(Ordering::Relaxed) {
            0 => Precision::F32,
            _ => Precision::Bf16,
        }
    }

    /// `t` in the compute type (itself when it already is).
    pub fn cast(&self, t: &Tensor) -> Result<Tensor> {
        t.to_dtype(self.get().dtype())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_say_what_is_accepted() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>(), Ok(p));
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        }
        let err = "fp16".parse::<Precision>().unwrap_err();
        assert!(err.contains("fp16") && err.contains("bf16"), "{err}");
    }

    #[test]
    fn a_shared_handle_switches_every_holder() {
        let compute = Compute::default();
        let layer = compute.clone();
        assert_eq!(layer.get(), Precision::F32);
        compute.set(Precision::Bf16);
        assert_eq!(layer.get(), Precision::Bf16);
    }
}
