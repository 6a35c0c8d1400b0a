//! Batch normalisation in training mode as one operation: two passes over the input forward
//! (statistics, then the normalised output) and two backward (two sums per channel, the input
//! gradient; the statistics are the forward pass's), where the composition of candle primitives
//! makes a dozen and allocates a tensor for each. A ReLU after the normalisation is applied in
//! the same pass, and its gradient mask read from the output in the backward pass, which saves
//! candle's ReLU its own pass each way and the three of its gradient.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, D, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::{NormGrads, cpu_slice, normalisation_backward, serves_f32};

/// What follows a normalisation, applied in its pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Nothing: the normalised values themselves.
    Identity,
    /// `max(0, ·)`.
    Relu,
}

impl Activation {
    fn apply(self, v: f32) -> f32 {
        match self {
            Activation::Identity => v,
            Activation::Relu => v.max(0.0),
        }
    }

    fn apply_tensor(self, t: Tensor) -> Result<Tensor> {
        match self {
            Activation::Identity => Ok(t),
            Activation::Relu => t.relu(),
        }
    }
}

/// Batch normalisation's output in training mode and the batch's statistics.
#[derive(Clone, Debug)]
pub struct BatchNormalised {
    /// The normalised, scaled, shifted and activated input, `f32`, of the input's shape.
    pub output: Tensor,
    /// Per channel, the batch's mean (`(C,)`, no gradient).
    pub mean: Tensor,
    /// Per channel, the batch's biased variance (`(C,)`, no gradient).
    pub variance: Tensor,
}

/// `activation((x − mean_c) / √(var_c + eps) · γ_c + β_c)` over `(N, C, H, W)` `f32` input `x`
/// with the batch's per-channel mean and biased variance, differentiable in `x`, `γ` and `β`
/// (shape `(C,)`): one fused operation on the CPU, candle's composition elsewhere.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    activation: Activation,
) -> Result<BatchNormalised> {
    if serves_f32(x) {
        let op = BatchNormTrain {
            eps,
            activation,
            batch_stats: Arc::default(),
        };
        let batch_stats = op.batch_stats.clone();
        let output = x.contiguous()?.apply_op3(gamma, beta, op)?;
        let (mean, variance) = batch_stats
            .lock()
            .expect("batch-norm statistics")
            .clone()
            .expect("the forward pass records its statistics");
        let (channels, device) = (mean.len(), x.device());
        return Ok(BatchNormalised {
            output,
            mean: Tensor::from_vec(mean, channels, device)?,
            variance: Tensor::from_vec(variance, channels, device)?,
        });
    }
    composed(x, gamma, beta, eps, activation)
}

/// [`batch_norm_train`] from candle's primitives, off the CPU.
fn composed(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    activation: Activation,
) -> Result<BatchNormalised> {
    let channels = (1, gamma.elem_count(), 1, 1);
    // One dimension at a time, the contiguous one first: candle reduces a last dimension far
    // faster than several strided ones at once.
    let channel_mean = |t: &Tensor| t.mean_keepdim(D::Minus1)?.mean_keepdim(2)?.mean_keepdim(0);
    let mean = channel_mean(x)?;
    let centred = x.broadcast_sub(&mean)?;
    let variance = channel_mean(&centred.sqr()?)?;
    let normalised = centred
        .broadcast_div(&(&variance + eps)?.sqrt()?)?
        .broadcast_mul(&gamma.reshape(channels)?)?
        .broadcast_add(&beta.reshape(channels)?)?;
    Ok(BatchNormalised {
        output: activation.apply_tensor(normalised)?,
        mean: mean.detach().flatten_all()?,
        variance: variance.detach().flatten_all()?,
    })
}

/// `activation(x · scale_c + shift_c)` over `(N, C, H, W)` `f32` input: batch normalisation in
/// evaluation mode, with `scale = γ / √(running_var + eps)` and `shift = β − running_mean · scale`
/// (`(C,)` each). One pass on the CPU, which records no backward pass (gradients through it are
/// an error: evaluation needs none); candle's composition elsewhere.
pub fn batch_norm_eval(
    x: &Tensor,
    scale: &Tensor,
    shift: &Tensor,
    activation: Activation,
) -> Result<Tensor> {
    if serves_f32(x) {
        return x
            .contiguous()?
            .apply_op3(scale, shift, ChannelAffine(activation));
    }
    let channels = (1, scale.elem_count(), 1, 1);
    let affine = x
        .broadcast_mul(&scale.reshape(channels)?)?
        .broadcast_add(&shift.reshape(channels)?)?;
    activation.apply_tensor(affine)
}

/// The fused operation of [`batch_norm_eval`].
struct ChannelAffine(Activation);

impl CustomOp3 for ChannelAffine {
    fn name(&self) -> &'static str {
        "lrlab-batch-norm-eval"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ss: &CpuStorage,
        sl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, scale, shift) = (
            cpu_slice::<f32>(self.name(), xs, xl)?,
            cpu_slice::<f32>(self.name(), ss, sl)?,
            cpu_slice::<f32>(self.name(), bs, bl)?,
        );
        let (_, c, plane) = geometry(xl)?;
        if scale.len() != c || shift.len() != c {
            candle_core::bail!(
                "batch norm: input {:?}, scale {}, shift {}",
                xl.dims(),
                scale.len(),
                shift.len()
            );
        }
        let mut y = vec![0f32; x.len()];
        per_plane(&mut y, c, plane, |ch, at, out| {
            let (s, b) = (scale[ch], shift[ch]);
            for (o, &v) in out.iter_mut().zip(&x[at..at + plane]) {
                *o = self.0.apply(v * s + b);
            }
        });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }
}

/// Per channel, the mean and the biased variance of a batch.
type ChannelStats = (Vec<f32>, Vec<f32>);

/// The fused operation of [`batch_norm_train`]; the statistics of the forward pass are kept, for
/// the running averages and for the backward pass.
#[derive(Clone)]
struct BatchNormTrain {
    eps: f64,
    activation: Activation,
    /// Mean and biased variance per channel of the forward pass.
    batch_stats: Arc<Mutex<Option<ChannelStats>>>,
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
        let activation = self.activation;
        per_plane(&mut y, c, plane, |ch, at, out| {
            let (s, m, b) = (scale[ch], mean[ch], beta[ch]);
            for (o, &v) in out.iter_mut().zip(&x[at..at + plane]) {
                *o = activation.apply((v - m) * s + b);
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
        y: &Tensor,
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
        let (ys, yl) = y.storage_and_layout();
        let Storage::Cpu(ys) = &*ys else {
            candle_core::bail!("batch norm backward: CPU tensors only");
        };
        // Where the ReLU cut the output, the gradient stops.
        let active = match self.activation {
            Activation::Identity => None,
            Activation::Relu => Some(cpu_slice::<f32>(self.name(), ys, yl)?),
        };
        normalisation_backward(self.name(), x, gamma, grad, |x, layout, gamma, dy| {
            backward(x, layout, gamma, Gradient { dy, active }, &stats, self.eps)
        })
    }
}

/// The gradient reaching a batch norm's output: `dy`, cut where the activated output `active`
/// is not positive (after a ReLU).
#[derive(Clone, Copy)]
struct Gradient<'a> {
    dy: &'a [f32],
    active: Option<&'a [f32]>,
}

impl Gradient<'_> {
    /// The gradient of the normalised values over `at..at + len`.
    fn plane(&self, at: usize, len: usize) -> impl Iterator<Item = f32> + '_ {
        let dy = self.dy[at..at + len].iter();
        let active = self.active.map(|y| &y[at..at + len]);
        dy.enumerate().map(move |(i, &g)| match active {
            Some(y) if y[i] <= 0.0 => 0.0,
            _ => g,
        })
    }
}

/// The gradients of the input, γ and β, from the input, the forward pass's statistics and the
/// output's gradient.
fn backward(
    x: &[f32],
    xl: &Layout,
    gamma: &[f32],
    dy: Gradient,
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
                for (g, &v) in dy.plane(at, plane).zip(&x[at..at + plane]) {
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
        for ((o, g), &v) in out
            .iter_mut()
            .zip(dy.plane(at, plane))
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
    use crate::relative_error as relative;
    use candle_core::{DType, Device, Var};

    #[test]
    fn fused_batch_norm_equals_the_composition_in_value_gradients_and_statistics() {
        let device = Device::Cpu;
        let cases = [(4, 3, 5, 7), (2, 8, 4, 4), (7, 2, 1, 1), (1, 5, 3, 2)];
        for ((n, c, h, w), activation) in cases.into_iter().zip([
            Activation::Identity,
            Activation::Relu,
            Activation::Relu,
            Activation::Identity,
        ]) {
            // Off-centre inputs: a variance of a large mean is where one-pass sums go wrong.
            let x = Var::from_tensor(
                &(Tensor::randn(0f32, 2.0, (n, c, h, w), &device).unwrap() + 50.0).unwrap(),
            )
            .unwrap();
            let gamma = Var::randn(1f32, 0.5, c, &device).unwrap();
            let beta = Var::randn(0f32, 0.5, c, &device).unwrap();
            let r = Tensor::randn(0f32, 1.0, (n, c, h, w), &device).unwrap();
            let eps = 1e-5;
            let (x_, gamma_, beta_) = (x.as_tensor(), gamma.as_tensor(), beta.as_tensor());
            let fused = batch_norm_train(x_, gamma_, beta_, eps, activation).unwrap();
            let theirs = composed(x_, gamma_, beta_, eps, activation).unwrap().output;
            let ours = fused.output.clone();
            let what = format!("{n}×{c}×{h}×{w} {activation:?}");
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
            let mean = fused.mean.to_vec1::<f32>().unwrap();
            let var = fused.variance.to_vec1::<f32>().unwrap();
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

    #[test]
    fn fused_evaluation_equals_the_composition() -> Result<()> {
        let device = Device::Cpu;
        let x = Tensor::randn(0f32, 2.0, (3, 4, 5, 6), &device)?;
        let scale = Tensor::randn(1f32, 0.5, 4, &device)?;
        let shift = Tensor::randn(0f32, 0.5, 4, &device)?;
        for activation in [Activation::Identity, Activation::Relu] {
            let ours = batch_norm_eval(&x, &scale, &shift, activation)?;
            let channels = (1, 4, 1, 1);
            let theirs = activation.apply_tensor(
                x.broadcast_mul(&scale.reshape(channels)?)?
                    .broadcast_add(&shift.reshape(channels)?)?,
            )?;
            assert!(relative(&ours, &theirs) < 1e-6, "{activation:?}");
        }
        let x = Var::from_tensor(&x)?;
        let err = batch_norm_eval(x.as_tensor(), &scale, &shift, Activation::Relu)?
            .sum_all()?
            .backward()
            .unwrap_err()
            .to_string();
        assert!(err.contains("lrlab-batch-norm-eval"), "{err}");
        Ok(())
    }
}
