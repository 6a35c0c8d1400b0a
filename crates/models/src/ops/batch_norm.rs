//! Batch normalisation in training mode as one operation: two passes over the input forward
//! (statistics, then the normalised output) and two backward (two sums per channel, the input
//! gradient; the statistics are the forward pass's), where the composition of candle primitives
//! makes a dozen and allocates a tensor for each.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{NormGrads, cpu_slice, normalisation_backward};

/// Per channel, the mean and the biased variance of a batch.
pub(crate) type ChannelStats = (Vec<f32>, Vec<f32>);

/// `y = (x − mean_c) / √(var_c + eps) · γ_c + β_c` over `(N, C, H, W)` `f32` input with the batch's
/// per-channel mean and biased variance; the statistics of the forward pass are kept, for the
/// running averages and for the backward pass.
#[derive(Clone)]
pub(crate) struct BatchNormTrain {
    pub eps: f64,
    /// Mean and biased variance per channel of the forward pass.
    pub batch_stats: Arc<Mutex<Option<ChannelStats>>>,
}

/// `(N, C, plane)` of a 4-d layout.
fn geometry(layout: &Layout) -> Result<(usize, usize, usize)> {
    let (n, c, h, w) = layout.shape().dims4()?;
    Ok((n, c, h * w))
}

/// Per channel: the mean and the biased variance (two passes, for accuracy).
fn channel_stats(x: &[f32], (n, c, plane): (usize, usize, usize)) -> ChannelStats {
    let count = (n * plane) as f64;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = || (0..n).map(move |i| &x[(i * c + ch) * plane..][..plane]);
            let sum: f64 = planes()
                .map(|p| p.iter().map(|&v| f64::from(v)).sum::<f64>())
                .sum();
            let mean = sum / count;
            let squares: f64 = planes()
                .map(|p| {
                    p.iter()
                        .map(|&v| (f64::from(v) - mean).powi(2))
                        .sum::<f64>()
                })
                .sum();
            (mean as f32, (squares / count) as f32)
        })
        .unzip()
}

/// Writes `out[n, c, ·] = f(c, x[n, c, ·], other[n, c, ·])` one plane per task.
fn per_plane(out: &mut [f32], c: usize, plane: usize, f: impl Fn(usize, usize, &mut [f32]) + Sync) {
    out.par_chunks_mut(plane)
        .enumerate()
        .for_each(|(nc, o)| f(nc % c, nc * plane, o));
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "lrlab-batch-norm"
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
        let (x, gamma, beta) = (
            cpu_slice::<f32>(self.name(), xs, xl)?,
            cpu_slice::<f32>(self.name(), ws, wl)?,
            cpu_slice::<f32>(self.name(), bs, bl)?,
        );
        let (n, c, plane) = geometry(xl)?;
        let (mean, var) = channel_stats(x, (n, c, plane));
        let scale: Vec<f32> = (0..c)
            .map(|ch| gamma[ch] / (var[ch] + self.eps as f32).sqrt())
            .collect();
        let mut y = vec![0f32; x.len()];
        per_plane(&mut y, c, plane, |ch, at, out| {
            let (s, m, b) = (scale[ch], mean[ch], beta[ch]);
            for (o, &v) in out.iter_mut().zip(&x[at..at + plane]) {
                *o = (v - m) * s + b;
            }
        });
        *self.batch_stats.lock().expect("batch-norm statistics") = Some((mean, var));
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
        let stats = self
            .batch_stats
            .lock()
            .expect("batch-norm statistics")
            .clone();
        let stats = stats.ok_or_else(|| {
            candle_core::Error::Msg("batch norm: backward pass without a forward pass".into())
        })?;
        normalisation_backward(self.name(), x, gamma, grad, |x, layout, gamma, dy| {
            backward(x, layout, gamma, dy, &stats, self.eps)
        })
    }
}

/// The gradients of the input, γ and β, from the input, the forward pass's statistics and the
/// output's gradient.
fn backward(
    x: &[f32],
    xl: &Layout,
    gamma: &[f32],
    dy: &[f32],
    (mean, var): &ChannelStats,
    eps: f64,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let (n, c, plane) = geometry(xl)?;
    let count = (n * plane) as f32;
    let invstd: Vec<f32> = var.iter().map(|v| 1.0 / (v + eps as f32).sqrt()).collect();
    // Per channel: Σ dy and Σ dy·x̂.
    let (dbeta, dgamma): (Vec<f32>, Vec<f32>) = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut sum, mut dot) = (0f64, 0f64);
            for i in 0..n {
                let at = (i * c + ch) * plane;
                for (&g, &v) in dy[at..at + plane].iter().zip(&x[at..at + plane]) {
                    sum += f64::from(g);
                    dot += f64::from(g) * f64::from(v - mean[ch]);
                }
            }
            (sum as f32, (dot as f32) * invstd[ch])
        })
        .unzip();
    // dx = γ·invstd·(dy − Σdy/M − x̂·Σdy·x̂/M)
    let mut dx = vec![0f32; x.len()];
    per_plane(&mut dx, c, plane, |ch, at, out| {
        let k = gamma[ch] * invstd[ch];
        let (mean_dy, mean_dot) = (dbeta[ch] / count, dgamma[ch] / count);
        let (m, s) = (mean[ch], invstd[ch]);
        for ((o, &g), &v) in out
            .iter_mut()
            .zip(&dy[at..at + plane])
            .zip(&x[at..at + plane])
        {
            *o = k * (g - mean_dy - (v - m) * s * mean_dot);
        }
    });
    Ok((dx, dgamma, dbeta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::relative_error as relative;
    use candle_core::{DType, Device, Var};

    /// Batch norm from candle's primitives, as the layer computes it off the CPU.
    fn composed(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
        let c = gamma.elem_count();
        let mean = x.mean_keepdim(3)?.mean_keepdim(2)?.mean_keepdim(0)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred
            .sqr()?
            .mean_keepdim(3)?
            .mean_keepdim(2)?
            .mean_keepdim(0)?;
        centred
            .broadcast_div(&(var + eps)?.sqrt()?)?
            .broadcast_mul(&gamma.reshape((1, c, 1, 1))?)?
            .broadcast_add(&beta.reshape((1, c, 1, 1))?)
    }

    #[test]
    fn fused_batch_norm_equals_the_composition_in_value_gradients_and_statistics() {
        let device = Device::Cpu;
        for (n, c, h, w) in [(4, 3, 5, 7), (2, 8, 4, 4), (7, 2, 1, 1), (1, 5, 3, 2)] {
            // Off-centre inputs: a variance of a large mean is where one-pass sums go wrong.
            let x = Var::from_tensor(
                &(Tensor::randn(0f32, 2.0, (n, c, h, w), &device).unwrap() + 50.0).unwrap(),
            )
            .unwrap();
            let gamma = Var::randn(1f32, 0.5, c, &device).unwrap();
            let beta = Var::randn(0f32, 0.5, c, &device).unwrap();
            let r = Tensor::randn(0f32, 1.0, (n, c, h, w), &device).unwrap();
            let eps = 1e-5;
            let op = BatchNormTrain {
                eps,
                batch_stats: Arc::default(),
            };
            let stats = op.batch_stats.clone();
            let ours = x
                .as_tensor()
                .apply_op3(gamma.as_tensor(), beta.as_tensor(), op)
                .unwrap();
            let theirs = composed(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), eps).unwrap();
            let what = format!("{n}×{c}×{h}×{w}");
            assert!(relative(&ours, &theirs) < 1e-4, "{what}: output");
            let grads = |y: &Tensor| (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let (g_ours, g_theirs) = (grads(&ours), grads(&theirs));
            for (part, var) in [("x", &x), ("gamma", &gamma), ("beta", &beta)] {
                let a = g_ours.get(var.as_tensor()).unwrap();
                let b = g_theirs.get(var.as_tensor()).unwrap();
                let error = relative(a, b);
                assert!(
                    error < 1e-3,
                    "{what}: gradient of {part} differs by {error:e}"
                );
            }
            let (mean, var) = stats.lock().unwrap().take().unwrap();
            let x64 = x.as_tensor().to_dtype(DType::F64).unwrap();
            let channel_mean = |t: &Tensor| {
                let t = t.mean_keepdim(3).unwrap().mean_keepdim(2).unwrap();
                t.mean_keepdim(0).unwrap()
            };
            let expected_mean = channel_mean(&x64);
            let centred = x64.broadcast_sub(&expected_mean).unwrap();
            let expected_var = channel_mean(&centred.sqr().unwrap());
            for (part, ours, expected) in [
                ("mean", mean, expected_mean),
                ("variance", var, expected_var),
            ] {
                let expected = expected.flatten_all().unwrap().to_vec1::<f64>().unwrap();
                for (ch, (&a, e)) in ours.iter().zip(expected).enumerate() {
                    let error = (f64::from(a) - e).abs() / e.abs().max(1.0);
                    assert!(error < 1e-5, "{what}: {part} of channel {ch}: {a} vs {e}");
                }
            }
        }
    }
}
