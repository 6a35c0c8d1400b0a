//! Fused CPU kernels as candle custom operations, each with its backward pass: where candle's
//! composition of primitives costs passes over memory or a slow loop. Each is used only on the
//! CPU for the types it serves; elsewhere the layers keep candle's own operations, and the tests
//! hold every kernel to that composition (values and gradients).

pub(crate) mod batch_norm;
pub(crate) mod im2col;
pub(crate) mod layer_norm;
pub(crate) mod softmax;
