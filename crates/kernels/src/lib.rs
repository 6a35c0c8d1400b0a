//! Fused CPU operations for candle, each with its backward pass, where candle's composition of
//! primitives costs passes over memory, an allocation per pass, or a slow loop: convolution
//! (Winograd's F(4×4, 3×3) and F(2×2, 3×3) for ResNet's 3×3 layers), batch normalisation
//! (with the ReLU after it), layer normalisation, softmax (with attention's scale and mask),
//! GELU, dropout (alone or with the residual add after it), linear layers (alone or with the
//! GELU after them), self-attention's core (scores, softmax, dropout and context in one) and
//! Adam's update. Their elementary functions (`exp`, `erf`, sums) are written to vectorise
//! (`math.rs`).
//!
//! Each operation is one public function that chooses its path: the fused kernel where it
//! serves (the CPU, and the types it is written for), candle's composition of primitives
//! elsewhere (a CUDA GPU) — arranged for a GPU where that matters: the convolution's gradients
//! as convolutions (im2col and cuBLAS), Adam over a whole group of parameters at once. Callers
//! see one path; the tests hold every kernel to the composition, in values and in gradients.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! # fn main() -> candle_core::Result<()> {
//! let x = Tensor::new(&[[1f32, 2.0, 3.0]], &Device::Cpu)?;
//! let p = lrlab_kernels::softmax_last_dim(&x)?;
//! let total: f32 = p.sum_all()?.to_scalar()?;
//! assert!((total - 1.0).abs() < 1e-6);
//! # Ok(()) }
//! ```
//!
//! The one `unsafe` block of lrlab is here: the call into `gemm`'s matrix product
//! (`product.rs`), whose entry point takes pointers and strides.

mod adam;
mod attention;
mod batch_norm;
mod conv;
mod conv_products;
mod dropout;
mod gelu;
mod layer_norm;
mod linear;
mod math;
mod product;
mod softmax;
mod winograd;

pub use adam::{AdamUpdate, Param, Tracked, adam_update};
pub use attention::attention;
pub use batch_norm::{Activation, BatchNormalised, Epilogue, batch_norm_eval, batch_norm_train};
pub use conv::{ConvParams, conv2d};
pub use dropout::{DropoutMask, dropout, residual_dropout};
pub use gelu::gelu_erf;
pub use layer_norm::layer_norm;
pub use linear::{linear, linear_gelu};
pub use softmax::{attention_softmax, softmax_last_dim};

use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor, WithDType};
use rayon::prelude::*;

/// Whether the `f32` kernels (batch norm, layer norm, softmax) serve `x`: `f32` on the CPU.
pub(crate) fn serves_f32(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// Elements per parallel task of the element-wise kernels.
const ELEMENTWISE_CHUNK: usize = 1 << 14;

/// `f(x)` for every element, in parallel chunks.
pub(crate) fn par_map(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(x.par_chunks(ELEMENTWISE_CHUNK))
        .for_each(|(out, x)| {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = f(v);
            }
        });
    out
}

/// `f(a, b)` for every pair of elements, in parallel chunks.
pub(crate) fn par_zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0f32; a.len()];
    out.par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(a.par_chunks(ELEMENTWISE_CHUNK))
        .zip(b.par_chunks(ELEMENTWISE_CHUNK))
        .for_each(|((out, a), b)| {
            for ((o, &u), &v) in out.iter_mut().zip(a).zip(b) {
                *o = f(u, v);
            }
        });
    out
}

/// The element-wise sum of `parts` (each `len` long), added in their order. A parallel sum
/// must end this way: rayon's `reduce` and `fold` group the parts as its work-stealing split
/// them, so floating-point sums would change from one run to the next.
pub(crate) fn sum_in_order(parts: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut parts = parts.into_iter();
    let mut sum = parts.next().unwrap_or_else(|| vec![0.0; len]);
    for part in parts {
        add_onto(&mut sum, &part);
    }
    sum
}

/// `sum[i] += part[i]` for every element of two equally long slices.
pub(crate) fn add_onto(sum: &mut [f32], part: &[f32]) {
    assert_eq!(sum.len(), part.len(), "adding slices of unequal lengths");
    sum.iter_mut().zip(part).for_each(|(s, p)| *s += p);
}

/// The contiguous elements of type `T` of `storage` under `layout`, or an error naming
/// operation `op`.
pub(crate) fn cpu_slice<'a, T: WithDType>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> Result<&'a [T]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: inputs must be contiguous")))?;
    Ok(&storage.as_slice::<T>()?[start..end])
}

/// Runs `f` on the contiguous elements (of type `T`) of CPU tensors `tensors` (in a backward
/// pass, where candle hands over tensors rather than storages), or an error naming operation
/// `op`.
pub(crate) fn with_cpu_slices<const N: usize, T: WithDType, R>(
    op: &str,
    tensors: [&Tensor; N],
    f: impl FnOnce([&[T]; N]) -> Result<R>,
) -> Result<R> {
    let guards = tensors.map(|t| t.storage_and_layout());
    let mut slices: [&[T]; N] = [&[]; N];
    for (slice, (storage, layout)) in slices.iter_mut().zip(&guards) {
        let Storage::Cpu(storage) = &**storage else {
            candle_core::bail!("{op} backward: CPU tensors only");
        };
        *slice = cpu_slice::<T>(op, storage, layout)?;
    }
    f(slices)
}

/// The largest absolute difference over the largest magnitude of `expected`.
#[cfg(test)]
fn relative_error(actual: &Tensor, expected: &Tensor) -> f32 {
    let diff = (actual - expected)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    let scale = expected
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    diff.to_scalar::<f32>().unwrap() / scale.max(f32::MIN_POSITIVE)
}
