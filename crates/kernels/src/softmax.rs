//! Softmax over the last dimension as one operation: one pass per row forward (max, exponentials
//! and sum, scale) and one backward (`dx = y ⊙ (dy − Σ dy ⊙ y)`), where the composition makes
//! five passes forward and five backward, each allocating a tensor the size of the attention
//! scores.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, D, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{cpu_slice, serves_f32};

/// Softmax over the last dimension, differentiable: one fused operation for `f32` on the CPU,
/// candle's composition elsewhere (the shift by the maximum held constant).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if serves_f32(x) {
        return x.contiguous()?.apply_op1(Softmax);
    }
    composed(x)
}

/// [`softmax_last_dim`] from candle's primitives, off the CPU.
fn composed(x: &Tensor) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    let exp = shifted.exp()?;
    exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)
}

/// The fused operation of [`softmax_last_dim`].
struct Softmax;

/// Its backward pass: `(y, dy)` → `dx`.
struct SoftmaxBackward;

fn row_length(layout: &Layout) -> Result<usize> {
    match layout.dims().last() {
        Some(&n) if n > 0 => Ok(n),
        _ => candle_core::bail!("softmax: empty last dimension"),
    }
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "lrlab-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_slice::<f32>(self.name(), storage, layout)?;
        let n = row_length(layout)?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .for_each(|(out, row)| {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for (o, &v) in out.iter_mut().zip(row) {
                    *o = (v - max).exp();
                    sum += *o;
                }
                let scale = 1.0 / sum;
                out.iter_mut().for_each(|o| *o *= scale);
            });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            y.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBackward)?,
        ))
    }
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "lrlab-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        ys: &CpuStorage,
        yl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, dy) = (
            cpu_slice::<f32>(self.name(), ys, yl)?,
            cpu_slice::<f32>(self.name(), gs, gl)?,
        );
        let n = row_length(yl)?;
        let mut dx = vec![0f32; y.len()];
        dx.par_chunks_mut(n)
            .zip(y.par_chunks(n).zip(dy.par_chunks(n)))
            .for_each(|(out, (y, dy))| {
                let dot: f32 = y.iter().zip(dy).map(|(a, b)| a * b).sum();
                for ((o, &y), &g) in out.iter_mut().zip(y).zip(dy) {
                    *o = y * (g - dot);
                }
            });
        Ok((CpuStorage::F32(dx), yl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relative_error;
    use candle_core::{Device, Var};

    #[test]
    fn fused_softmax_equals_the_composition_in_value_and_gradient() {
        let device = Device::Cpu;
        for shape in [vec![3, 7], vec![2, 4, 5, 9], vec![5, 1]] {
            let x =
                Var::from_tensor(&(Tensor::randn(0f32, 3.0, shape.as_slice(), &device).unwrap()))
                    .unwrap();
            let r = Tensor::randn(0f32, 1.0, shape.as_slice(), &device).unwrap();
            let ours = softmax_last_dim(x.as_tensor()).unwrap();
            let theirs = composed(x.as_tensor()).unwrap();
            let grad = |y: &Tensor| {
                let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
                grads.get(x.as_tensor()).unwrap().clone()
            };
            for (part, a, b) in [
                ("value", ours.clone(), theirs.clone()),
                ("gradient", grad(&ours), grad(&theirs)),
            ] {
                let error = relative_error(&a, &b);
                // f32 rounding of two formulas with cancellation in dx = y(dy − Σ dy·y).
                assert!(error < 1e-5, "{shape:?}: {part} differs by {error:e}");
            }
        }
    }
}
