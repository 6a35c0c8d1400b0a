//! What a training loop needs of a model beyond its forward pass.

use candle_core::ModuleT;

use crate::bert::BertClassifier;
use crate::params::Parameters;
use crate::precision::Precision;
use crate::resnet::ResNet18;

/// A trainable classifier: `f32` logits from `forward_t`, its named tensors, its compute
/// precision and its random stream.
pub trait Network: ModuleT {
    /// The model's tensors: what an optimizer updates and a checkpoint saves.
    fn parameters(&self) -> &Parameters;

    /// Computes in `precision` from now on; parameters, logits and gradients stay `f32`.
    fn set_precision(&self, precision: Precision);

    /// The precision it computes in.
    fn precision(&self) -> Precision;

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

    fn set_precision(&self, precision: Precision) {
        ResNet18::set_precision(self, precision);
    }

    fn precision(&self) -> Precision {
        ResNet18::precision(self)
    }
}

impl Network for BertClassifier {
    fn parameters(&self) -> &Parameters {
        BertClassifier::parameters(self)
    }

    fn set_precision(&self, precision: Precision) {
        BertClassifier::set_precision(self, precision);
    }

    fn precision(&self) -> Precision {
        BertClassifier::precision(self)
    }

    fn set_random_stream(&self, step: u64) {
        self.set_dropout_stream(step);
    }
}
