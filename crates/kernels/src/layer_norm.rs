//! Layer normalisation over the last dimension as one operation: one pass per row forward and
//! one backward, where the composition of primitives makes eight forward and about as many
//! backward, each allocating a tensor of the hidden states' size.

use candle_core::{CpuStorage, CustomOp3, D, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{cpu_slice, serves_f32, sum_in_order, with_cpu_slices};

/// `(x − mean) / √(var + eps) · γ + β` over the last dimension with the biased variance, as
/// PyTorch's `LayerNorm`, differentiable in `x`, `γ` and `β`: one fused operation for `f32` on
/// the CPU, candle's composition elsewhere.
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    if serves_f32(x) {
        return x.contiguous()?.apply_op3(gamma, beta, LayerNorm { eps });
    }
    composed(x, gamma, beta, eps)
}

/// [`layer_norm`] from candle's primitives, off the CPU.
fn composed(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred
        .broadcast_div(&(variance + eps)?.sqrt()?)?
        .broadcast_mul(gamma)?
        .broadcast_add(beta)
}

/// The fused operation of [`layer_norm`].
struct LayerNorm {
    eps: f64,
}

/// A row's mean and `1/√(var + eps)`.
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// The gradients `(dx, dγ, dβ)`.
type NormGrads = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

/// Rows per parallel task of the backward pass (each task sums its own γ and β gradients).
const ROWS: usize = 64;

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "lrlab-layer-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (x, gamma, beta) = (
            cpu_slice::<f32>(name, xs, xl)?,
            cpu_slice::<f32>(name, ws, wl)?,
            cpu_slice::<f32>(name, bs, bl)?,
        );
        let h = gamma.len();
        if h == 0 || x.len() % h != 0 || beta.len() != h {
            candle_core::bail!("layer norm: input {:?}, γ {h}, β {}", xl.dims(), beta.len());
        }
        let eps = self.eps as f32;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(h)
            .zip(x.par_chunks(h))
            .for_each(|(out, row)| {
                let (mean, invstd) = moments(row, eps);
                for (((o, &v), &g), &b) in out.iter_mut().zip(row).zip(gamma).zip(beta) {
                    *o = (v - mean) * invstd * g + b;
                }
            });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<NormGrads> {
        let grad = grad.contiguous()?;
        let (dx, dgamma, dbeta) =
            with_cpu_slices(self.name(), [x, gamma, &grad], |[x, gamma, dy]| {
                Ok(backward(x, gamma, dy, self.eps as f32))
            })?;
        let (device, channels) = (x.device(), gamma.elem_count());
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), device)?),
            Some(Tensor::from_vec(dgamma, channels, device)?),
            Some(Tensor::from_vec(dbeta, channels, device)?),
        ))
    }
}

/// `dx = invstd · (dy·γ − mean(dy·γ) − x̂ · mean(dy·γ·x̂))` per row; `dγ = Σ dy·x̂`, `dβ = Σ dy`
/// over the rows.
fn backward(x: &[f32], g: &[f32], dy: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let h = g.len();
    let n = h as f32;
    let mut dx = vec![0f32; x.len()];
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(ROWS * h)
        .zip(x.par_chunks(ROWS * h).zip(dy.par_chunks(ROWS * h)))
        .map(|(out, (x, dy))| {
            let (mut dgamma, mut dbeta) = (vec![0f32; h], vec![0f32; h]);
            for ((out, x), dy) in out.chunks_mut(h).zip(x.chunks(h)).zip(dy.chunks(h)) {
                let (mean, invstd) = moments(x, eps);
                let (mut sum, mut dot) = (0f32, 0f32);
                for i in 0..h {
                    let xhat = (x[i] - mean) * invstd;
                    let dyg = dy[i] * g[i];
                    sum += dyg;
                    dot += dyg * xhat;
                    dgamma[i] += dy[i] * xhat;
                    dbeta[i] += dy[i];
                }
                let (sum, dot) = (sum / n, dot / n);
                for i in 0..h {
                    let xhat = (x[i] - mean) * invstd;
                    out[i] = invstd * (dy[i] * g[i] - sum - xhat * dot);
                }
            }
            (dgamma, dbeta)
        })
        .collect();
    let (dgamma, dbeta): (Vec<_>, Vec<_>) = partials.into_iter().unzip();
    (dx, sum_in_order(dgamma, h), sum_in_order(dbeta, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relative_error as relative;
    use candle_core::{Device, Var};

    #[test]
    fn fused_layer_norm_equals_the_composition_in_value_and_gradients() {
        let device = Device::Cpu;
        // 130 rows: more than one task of the backward pass, the last one partial.
        for shape in [vec![130, 16], vec![2, 3, 7], vec![1, 1]] {
            let h = *shape.last().unwrap();
            let x = Var::from_tensor(
                &(Tensor::randn(0f32, 2.0, shape.as_slice(), &device).unwrap() + 3.0).unwrap(),
            )
            .unwrap();
            let gamma = Var::randn(1f32, 0.5, h, &device).unwrap();
            let beta = Var::randn(0f32, 0.5, h, &device).unwrap();
            let r = Tensor::randn(0f32, 1.0, shape.as_slice(), &device).unwrap();
            let eps = 1e-12;
            let (x_, gamma_, beta_) = (x.as_tensor(), gamma.as_tensor(), beta.as_tensor());
            let ours = layer_norm(x_, gamma_, beta_, eps).unwrap();
            let theirs = composed(x_, gamma_, beta_, eps).unwrap();
            let what = format!("{shape:?}");
            assert!(relative(&ours, &theirs) < 1e-5, "{what}: output");
            let grads = |y: &Tensor| (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let (g_ours, g_theirs) = (grads(&ours), grads(&theirs));
            for (part, var) in [("x", &x), ("gamma", &gamma), ("beta", &beta)] {
                let a = g_ours.get(var.as_tensor()).unwrap();
                let b = g_theirs.get(var.as_tensor()).unwrap();
                let error = relative(a, b);
                assert!(
                    error < 1e-4,
                    "{what}: gradient of {part} differs by {error:e}"
                );
            }
        }
    }
}
