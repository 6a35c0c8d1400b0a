//! What a training loop needs of a model beyond its forward pass.

use candle_core::ModuleT;

use crate::bert::BertClassifier;
use crate::params::Parameters;
use crate::resnet::ResNet18;

/// A trainable classifier: logits from `forward_t`, its named tensors, and its random stream.
pub trait Network: ModuleT {
    /// The model's tensors: what an optimizer updates and a checkpoint saves.
    fn parameters(&self) -> &Parameters;

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
}

impl Network for BertClassifier {
    fn parameters(&self) -> &Parameters {
        BertClassifier::parameters(self)
    }

    fn set_random_stream(&self, step: u64) {
        self.set_dropout_stream(step);
    }
}
