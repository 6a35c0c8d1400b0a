//! What a training loop needs of a model beyond its forward pass.

use candle_core::{DType, ModuleT, Result};

use crate::bert::BertClassifier;
use crate::params::Parameters;
use crate::resnet::ResNet18;

/// A trainable classifier: `f32` logits from `forward_t`, its named tensors, its compute
/// precision and its random stream.
pub trait Network: ModuleT {
    /// The model's tensors: what an optimizer updates and a checkpoint saves.
    fn parameters(&self) -> &Parameters;

    /// Computes its products and convolutions in `dtype` from now on, one of
    /// [`COMPUTE_DTYPES`](crate::COMPUTE_DTYPES); parameters, logits and gradients stay `f32`.
    fn set_compute_dtype(&self, dtype: DType) -> Result<()>;

    /// The type it computes its products and convolutions in.
    fn compute_dtype(&self) -> DType;

    /// Starts the random stream of step `step` (dropout masks), so that a step draws the same
    /// masks in an interrupted and resumed run as in an uninterrupted one. Models without
    /// randomness ignore it.
    fn set_random_stream(&self, step: u64) {
        let _ = step;
    }
}

impl Network for ResNet18 {
    fn parameters(&self) -> &Parameters {
        ResNet18::parameters(self)
    }

    fn set_compute_dtype(&self, dtype: DType) -> Result<()> {
        ResNet18::set_compute_dtype(self, dtype)
    }

    fn compute_dtype(&self) -> DType {
        ResNet18::compute_dtype(self)
    }
}

impl Network for BertClassifier {
    fn parameters(&self) -> &Parameters {
        BertClassifier::parameters(self)
    }

    fn set_compute_dtype(&self, dtype: DType) -> Result<()> {
        BertClassifier::set_compute_dtype(self, dtype)
    }

    fn compute_dtype(&self) -> DType {
        BertClassifier::compute_dtype(self)
    }

    fn set_random_stream(&self, step: u64) {
        self.set_dropout_stream(step);
    }
}
