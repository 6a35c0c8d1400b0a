//! Fused CPU kernels as candle custom operations, each with its backward pass: where candle's
//! composition of primitives costs passes over memory or a slow loop. Each is used only on the
//! CPU for the types it serves; elsewhere the layers keep candle's own operations, and the tests
//! hold every kernel to that composition (values and gradients).

pub(crate) mod batch_norm;
pub(crate) mod conv;
pub(crate) mod layer_norm;
pub(crate) mod softmax;

use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor, WithDType};

/// Whether the `f32` kernels (batch norm, layer norm, softmax) serve `x`: `f32` on the CPU.
pub(crate) fn serves_f32(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
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

/// Gradients `(dx, dγ, dβ)` of an `f32` normalisation with scale γ and shift β on the CPU:
/// `grads` receives the input with its layout, γ and the output's gradient as contiguous slices
/// and returns the three gradients' elements.
pub(crate) type NormGrads = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

/// Runs a normalisation's backward kernel `grads` (see [`NormGrads`]) for operation `op`.
pub(crate) fn normalisation_backward(
    op: &str,
    x: &Tensor,
    gamma: &Tensor,
    grad: &Tensor,
    grads: impl FnOnce(&[f32], &Layout, &[f32], &[f32]) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)>,
) -> Result<NormGrads> {
    let grad = grad.contiguous()?;
    let device = x.device().clone();
    let (xs, xl) = x.storage_and_layout();
    let (gs, gl) = grad.storage_and_layout();
    let (ws, wl) = gamma.storage_and_layout();
    let (Storage::Cpu(xs), Storage::Cpu(gs), Storage::Cpu(ws)) = (&*xs, &*gs, &*ws) else {
        candle_core::bail!("{op} backward: CPU tensors only");
    };
    let (x, dy, g) = (
        cpu_slice::<f32>(op, xs, xl)?,
        cpu_slice::<f32>(op, gs, gl)?,
        cpu_slice::<f32>(op, ws, wl)?,
    );
    let (dx, dgamma, dbeta) = grads(x, xl, g, dy)?;
    let channels = g.len();
    Ok((
        Some(Tensor::from_vec(dx, xl.shape(), &device)?),
        Some(Tensor::from_vec(dgamma, channels, &device)?),
        Some(Tensor::from_vec(dbeta, channels, &device)?),
    ))
}

/// The largest absolute difference over the largest magnitude of `expected`.
#[cfg(test)]
pub(crate) fn relative_error(actual: &Tensor, expected: &Tensor) -> f32 {
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
