//! Softmax over the last dimension as one operation: one pass per row forward (max, exponentials
//! and sum, scale) and one backward (`dx = y ⊙ (dy − Σ dy ⊙ y)`), where the composition makes
//! five passes forward and five backward, each allocating a tensor the size of the attention
//! scores. Attention's scaling of the scores and its padding mask ride in the same passes.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, D, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::math::{exp, lane_sum};
use super::{cpu_slice, serves_f32};

/// Softmax over the last dimension, differentiable: one fused operation for `f32` on the CPU,
/// candle's composition elsewhere (the shift by the maximum held constant).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if serves_f32(x) {
        return x.contiguous()?.apply_op1(Softmax { scale: 1.0 });
    }
    composed(x)
}

/// Attention's probabilities: the softmax over the last dimension of `scores · scale + bias`,
/// where `scores` is `(B, heads, queries, keys)` and `bias` (`(B, 1, 1, keys)`, a constant: it
/// gets no gradient) masks padded keys. Differentiable in `scores`: one fused operation for
/// `f32` on the CPU, candle's composition elsewhere, the same to rounding.
pub fn attention_softmax(scores: &Tensor, scale: f64, bias: &Tensor) -> Result<Tensor> {
    let (batch, _, _, keys) = scores.dims4()?;
    if serves_f32(scores) && bias.dims() == [batch, 1, 1, keys] && bias.dtype() == scores.dtype() {
        let op = Softmax {
            scale: scale as f32,
        };
        return scores
            .contiguous()?
            .apply_op2(&bias.contiguous()?.detach(), op);
    }
    composed(&(scores * scale)?.broadcast_add(&bias.detach())?)
}

/// [`softmax_last_dim`] from candle's primitives, off the CPU.
fn composed(x: &Tensor) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    let exp = shifted.exp()?;
    exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)
}

/// The fused operations of [`softmax_last_dim`] (one operand) and [`attention_softmax`] (the
/// scores and their bias), the scores multiplied by `scale` first.
struct Softmax {
    scale: f32,
}

/// Their backward pass: `(y, dy)` → `dx = scale · y ⊙ (dy − Σ dy ⊙ y)`.
struct SoftmaxBackward {
    scale: f32,
}

fn row_length(layout: &Layout) -> Result<usize> {
    match layout.dims().last() {
        Some(&n) if n > 0 => Ok(n),
        _ => candle_core::bail!("softmax: empty last dimension"),
    }
}

/// Softmax of `row` in place.
fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    row.iter_mut().for_each(|v| *v = exp(*v - max));
    let scale = 1.0 / lane_sum([row], |[v]| v);
    row.iter_mut().for_each(|v| *v *= scale);
}

/// Attention's probabilities in place of one row of scores: the softmax of
/// `row · scale + bias`, the scaling and the bias as candle composes them (an affine map
/// `x · scale + 0`, then the sum).
pub(crate) fn attention_softmax_row(row: &mut [f32], scale: f32, bias: &[f32]) {
    for (v, &b) in row.iter_mut().zip(bias) {
        *v = (*v * scale + 0.0) + b;
    }
    softmax_row(row);
}

/// The gradient of one row of a softmax's input scaled by `scale`, into `out`, from the
/// softmax's output `y` and its gradient `dy`: `scale · y ⊙ (dy − Σ dy ⊙ y)`.
pub(crate) fn softmax_row_gradient(y: &[f32], dy: &[f32], scale: f32, out: &mut [f32]) {
    let dot = lane_sum([y, dy], |[a, b]| a * b);
    for ((o, &y), &g) in out.iter_mut().zip(y).zip(dy) {
        // As candle composes it: the softmax's gradient, then the affine map's.
        *o = y * (g - dot) * scale + 0.0;
    }
}

impl Softmax {
    fn backward(&self, y: &Tensor, grad: &Tensor) -> Result<Tensor> {
        let op = SoftmaxBackward { scale: self.scale };
        y.apply_op2_no_bwd(&grad.contiguous()?, &op)
    }
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "lrlab-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_slice::<f32>(CustomOp1::name(self), storage, layout)?;
        let n = row_length(layout)?;
        let mut y = x.to_vec();
        y.par_chunks_mut(n).for_each(softmax_row);
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.backward(y, grad)?))
    }
}

impl CustomOp2 for Softmax {
    fn name(&self) -> &'static str {
        "lrlab-attention-softmax"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = CustomOp2::name(self);
        let (x, bias) = (
            cpu_slice::<f32>(name, xs, xl)?,
            cpu_slice::<f32>(name, bs, bl)?,
        );
        let n = row_length(xl)?;
        let rows_per_item = x.len() / bias.len().max(1);
        let mut y = x.to_vec();
        y.par_chunks_mut(n).enumerate().for_each(|(row, y)| {
            let bias = &bias[row / rows_per_item * n..][..n];
            attention_softmax_row(y, self.scale, bias);
        });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _bias: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(self.backward(y, grad)?), None))
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
            .for_each(|(out, (y, dy))| softmax_row_gradient(y, dy, self.scale, out));
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

    #[test]
    fn fused_attention_softmax_equals_the_composition_in_value_and_gradient() -> Result<()> {
        let device = Device::Cpu;
        let (batch, heads, queries, keys) = (3, 2, 4, 5);
        let x = Var::from_tensor(&Tensor::randn(
            0f32,
            3.0,
            (batch, heads, queries, keys),
            &device,
        )?)?;
        // Item 1 has its last two keys padded, the others none.
        let mut bias = vec![0f32; batch * keys];
        bias[keys + 3] = f32::MIN;
        bias[keys + 4] = f32::MIN;
        let bias = Tensor::from_vec(bias, (batch, 1, 1, keys), &device)?;
        let r = Tensor::randn(0f32, 1.0, x.shape(), &device)?;
        let scale = 0.125;
        let ours = attention_softmax(x.as_tensor(), scale, &bias)?;
        let theirs = composed(&(x.as_tensor() * scale)?.broadcast_add(&bias)?)?;
        let padded = ours.narrow(0, 1, 1)?.narrow(3, 3, 2)?;
        assert_eq!(padded.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
        let grad = |y: &Tensor| -> Result<Tensor> {
            let grads = (y * &r)?.sum_all()?.backward()?;
            Ok(grads.get(x.as_tensor()).expect("a gradient").clone())
        };
        for (part, a, b) in [
            ("value", ours.clone(), theirs.clone()),
            ("gradient", grad(&ours)?, grad(&theirs)?),
        ] {
            let error = relative_error(&a, &b);
            assert!(error < 1e-5, "{part} differs by {error:e}");
        }
        Ok(())
    }
}
