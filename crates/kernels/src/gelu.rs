//! GELU (the exact, erf form) as one operation each way: candle computes the same forward pass
//! in one map but its backward as fourteen operations over the input (square, negate, halve,
//! exponentiate, scale, multiply, scale, erf, scale, shift, add, multiply, then the zeros and
//! the sum of the gradient's accumulation), each allocating a tensor of BERT's widest
//! activation.

use std::f32::consts::FRAC_1_SQRT_2;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use rayon::prelude::*;

use super::math::erf_and_gaussian;
use super::{ELEMENTWISE_CHUNK, cpu_slice, par_map, par_zip_map, serves_f32};

/// `1/√(2π)`, the standard normal density at 0.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// `x · Φ(x) = x/2 · (1 + erf(x/√2))`, differentiable: one fused operation for `f32` on the
/// CPU, with the vectorised `erf` of PyTorch's CPU kernels (within 7 · 10⁻⁷ of the exact one,
/// where candle's `gelu_erf` calls libm's per element); candle's `gelu_erf` elsewhere.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if serves_f32(x) {
        return x.contiguous()?.apply_op1(Gelu);
    }
    x.gelu_erf()
}

/// `(GELU(v), GELU′(v)) = (v·Φ(v), Φ(v) + v·φ(v))`: the slope's density is the Gaussian
/// factor `erf` computes anyway, so the pair costs little more than the value.
#[inline]
fn value_and_slope(v: f32) -> (f32, f32) {
    let (erf, gaussian) = erf_and_gaussian(v * FRAC_1_SQRT_2);
    let cdf = (erf + 1.) * 0.5;
    (cdf * v, cdf + v * (INV_SQRT_2PI * gaussian))
}

/// GELU of every element of `x`.
pub(crate) fn gelu(x: &[f32]) -> Vec<f32> {
    par_map(x, |v| value_and_slope(v).0)
}

/// GELU of every element of `x`, returned, while `x` is overwritten with GELU's slope there:
/// what a backward pass needs, in one pass and no second buffer.
pub(crate) fn gelu_keeping_slopes(x: &mut [f32]) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(x.par_chunks_mut(ELEMENTWISE_CHUNK))
        .for_each(|(out, x)| {
            for (o, v) in out.iter_mut().zip(x) {
                (*o, *v) = value_and_slope(*v);
            }
        });
    out
}

/// The gradient of GELU's input `x` from its output's, `dy`: `dy · (Φ(x) + x·φ(x))`.
pub(crate) fn gelu_gradient(x: &[f32], dy: &[f32]) -> Vec<f32> {
    par_zip_map(x, dy, |v, g| g * value_and_slope(v).1)
}

/// The gradient of GELU's input from its output's, `dy`, and the slopes
/// [`gelu_keeping_slopes`] left: one product per element.
pub(crate) fn gradient_from_slopes(slopes: &[f32], dy: &[f32]) -> Vec<f32> {
    par_zip_map(slopes, dy, |s, g| g * s)
}

/// The fused operation of [`gelu_erf`].
struct Gelu;

/// Its backward pass: `(x, dy)` → `dx = dy · (Φ(x) + x·φ(x))`.
struct GeluBackward;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "lrlab-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_slice::<f32>(self.name(), storage, layout)?;
        Ok((CpuStorage::F32(gelu(x)), layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            x.apply_op2_no_bwd(&grad.contiguous()?, &GeluBackward)?,
        ))
    }
}

impl CustomOp2 for GeluBackward {
    fn name(&self) -> &'static str {
        "lrlab-gelu-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, dy) = (
            cpu_slice::<f32>(self.name(), xs, xl)?,
            cpu_slice::<f32>(self.name(), gs, gl)?,
        );
        let dx = gelu_gradient(x, dy);
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relative_error;
    use candle_core::{Device, Var};

    #[test]
    fn fused_gelu_equals_candles_in_value_and_gradient() -> Result<()> {
        // Wide enough for both tails (Φ → 0 and Φ → 1) and more than one parallel chunk.
        let x = Var::from_tensor(&(Tensor::randn(0f32, 3.0, (5, 7000), &Device::Cpu)?))?;
        let r = Tensor::randn(0f32, 1.0, (5, 7000), &Device::Cpu)?;
        let ours = gelu_erf(x.as_tensor())?;
        let theirs = x.as_tensor().gelu_erf()?;
        // |Δy| ≤ |x|/2 · 7 · 10⁻⁷, relative to the largest |y| ≈ |x| of the sample.
        let error = relative_error(&ours, &theirs);
        assert!(error < 5e-7, "value differs by {error:e}");
        let grad = |y: &Tensor| -> Result<Tensor> {
            let grads = (y * &r)?.sum_all()?.backward()?;
            Ok(grads.get(x.as_tensor()).expect("a gradient").clone())
        };
        // candle's derivative rounds 1/√(2π) to 0.398942; ours is PyTorch's constant.
        let error = relative_error(&grad(&ours)?, &grad(&theirs)?);
        assert!(error < 1e-5, "gradient differs by {error:e}");
        Ok(())
    }
}
