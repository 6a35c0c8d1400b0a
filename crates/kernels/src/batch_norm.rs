//! Batch normalisation as one operation: in training, two passes over the input forward
//! (statistics, then the output) and two backward (two sums per channel, the input gradient;
//! the statistics are the forward pass's), where the composition of candle primitives makes a
//! dozen and allocates a tensor for each; in evaluation, one pass. What follows the
//! normalisation in a residual network (the shortcut's addition and the ReLU) runs in the same
//! pass, the ReLU's gradient mask read from the output in the backward pass, which saves those
//! operations their own passes each way and candle's accumulation of their gradients.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, D, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::math::lane_sum;
use super::{cpu_slice, serves_f32, with_cpu_slices};

/// The non-linearity at the end of an [`Epilogue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Nothing: the values themselves.
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
}

/// What follows a batch normalisation, in its pass: `activation(normalised + residual)`.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    /// Added to the normalised values (a residual block's shortcut): `f32`, of the input's
    /// shape. It receives the gradient of the sum.
    pub residual: Option<&'a Tensor>,
    /// Applied last.
    pub activation: Activation,
}

impl Epilogue<'_> {
    /// `activation` alone, no residual.
    pub fn activation(activation: Activation) -> Self {
        Epilogue {
            residual: None,
            activation,
        }
    }

    /// The epilogue as candle operations.
    fn apply_tensor(&self, t: Tensor) -> Result<Tensor> {
        let t = match self.residual {
            Some(residual) => (t + residual)?,
            None => t,
        };
        match self.activation {
            Activation::Identity => Ok(t),
            Activation::Relu => t.relu(),
        }
    }

    /// Whether the fused kernels serve this epilogue for input `x`.
    fn fused_for(&self, x: &Tensor) -> bool {
        serves_f32(x)
            && self
                .residual
                .is_none_or(|r| serves_f32(r) && r.shape() == x.shape())
    }
}

/// Batch normalisation's output in training mode and the batch's statistics.
#[derive(Clone, Debug)]
pub struct BatchNormalised {
    /// The normalised, scaled and shifted input with the epilogue applied, `f32`, of the
    /// input's shape.
    pub output: Tensor,
    /// Per channel, the batch's mean (`(C,)`, no gradient).
    pub mean: Tensor,
    /// Per channel, the batch's biased variance (`(C,)`, no gradient).
    pub variance: Tensor,
}

/// `epilogue((x − mean_c) / √(var_c + eps) · γ_c + β_c)` over `(N, C, H, W)` `f32` input `x`
/// with the batch's per-channel mean and biased variance, differentiable in `x`, `γ`, `β` (shape
/// `(C,)`) and the residual: one fused operation on the CPU, candle's composition elsewhere.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    epilogue: Epilogue,
) -> Result<BatchNormalised> {
    if !epilogue.fused_for(x) {
        return composed(x, gamma, beta, eps, epilogue);
    }
    let op = BatchNormTrain {
        eps,
        activation: epilogue.activation,
        batch_stats: Arc::default(),
    };
    let batch_stats = op.batch_stats.clone();
    let (x, affine) = (x.contiguous()?, Tensor::stack(&[gamma, beta], 0)?);
    let output = match epilogue.residual {
        Some(residual) => x.apply_op3(&affine, &residual.contiguous()?, op)?,
        None => x.apply_op2(&affine, op)?,
    };
    let (mean, variance) = batch_stats
        .lock()
        .expect("batch-norm statistics")
        .clone()
        .expect("the forward pass records its statistics");
    let (channels, device) = (mean.len(), x.device());
    Ok(BatchNormalised {
        output,
        mean: Tensor::from_vec(mean, channels, device)?,
        variance: Tensor::from_vec(variance, channels, device)?,
    })
}

/// [`batch_norm_train`] from candle's primitives, off the CPU.
fn composed(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    epilogue: Epilogue,
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
        output: epilogue.apply_tensor(normalised)?,
        mean: mean.detach().flatten_all()?,
        variance: variance.detach().flatten_all()?,
    })
}

/// `epilogue(x · scale_c + shift_c)` over `(N, C, H, W)` `f32` input: batch normalisation in
/// evaluation mode, with `scale = γ / √(running_var + eps)` and `shift = β − running_mean · scale`
/// (`(C,)` each). One pass on the CPU, which records no backward pass (gradients through it are
/// an error: evaluation needs none); candle's composition elsewhere.
pub fn batch_norm_eval(
    x: &Tensor,
    scale: &Tensor,
    shift: &Tensor,
    epilogue: Epilogue,
) -> Result<Tensor> {
    if !epilogue.fused_for(x) {
        let channels = (1, scale.elem_count(), 1, 1);
        let affine = x
            .broadcast_mul(&scale.reshape(channels)?)?
            .broadcast_add(&shift.reshape(channels)?)?;
        return epilogue.apply_tensor(affine);
    }
    let (x, affine) = (x.contiguous()?, Tensor::stack(&[scale, shift], 0)?);
    let op = ChannelAffine(epilogue.activation);
    match epilogue.residual {
        Some(residual) => x.apply_op3(&affine, &residual.contiguous()?, op),
        None => x.apply_op2(&affine, op),
    }
}

/// The slices of a fused batch norm's operands: the input with its geometry, the `(2, C)`
/// affine parameters (γ then β, or scale then shift) and the residual.
struct Operands<'a> {
    x: &'a [f32],
    layout: &'a Layout,
    affine: (&'a [f32], &'a [f32]),
    residual: Option<&'a [f32]>,
}

impl<'a> Operands<'a> {
    fn new(
        op: &str,
        (xs, xl): (&'a CpuStorage, &'a Layout),
        (a_s, al): (&'a CpuStorage, &'a Layout),
        residual: Option<(&'a CpuStorage, &'a Layout)>,
    ) -> Result<Self> {
        let x = cpu_slice::<f32>(op, xs, xl)?;
        let affine = cpu_slice::<f32>(op, a_s, al)?;
        let residual = match residual {
            Some((rs, rl)) => Some(cpu_slice::<f32>(op, rs, rl)?),
            None => None,
        };
        let (_, c, _) = geometry(xl)?;
        if affine.len() != 2 * c || residual.is_some_and(|r| r.len() != x.len()) {
            candle_core::bail!(
                "{op}: input {:?}, affine parameters {}, residual {:?} (expected 2·C and the \
                 input's size)",
                xl.dims(),
                affine.len(),
                residual.map(<[f32]>::len)
            );
        }
        Ok(Operands {
            x,
            layout: xl,
            affine: affine.split_at(c),
            residual,
        })
    }

    /// `activation(x · scale_c + shift_c + residual)` per element, with `scale`, `shift`
    /// computed per channel.
    fn map(
        &self,
        scale: &[f32],
        shift: &[f32],
        centre: Option<&[f32]>,
        activation: Activation,
    ) -> Result<Vec<f32>> {
        let (_, c, plane) = geometry(self.layout)?;
        let (x, residual) = (self.x, self.residual);
        let mut y = vec![0f32; x.len()];
        per_plane(&mut y, c, plane, |ch, at, out| {
            let (s, b, m) = (scale[ch], shift[ch], centre.map_or(0.0, |m| m[ch]));
            let x = &x[at..at + plane];
            match residual {
                None => {
                    for (o, &v) in out.iter_mut().zip(x) {
                        *o = activation.apply((v - m) * s + b);
                    }
                }
                Some(r) => {
                    for ((o, &v), &r) in out.iter_mut().zip(x).zip(&r[at..at + plane]) {
                        *o = activation.apply((v - m) * s + b + r);
                    }
                }
            }
        });
        Ok(y)
    }
}

/// Per channel, the mean and the biased variance of a batch.
type ChannelStats = (Vec<f32>, Vec<f32>);

/// The fused operation of [`batch_norm_train`] over `(x, [γ; β])` or `(x, [γ; β], residual)`;
/// the statistics of the forward pass are kept, for the running averages and for the backward
/// pass.
#[derive(Clone)]
struct BatchNormTrain {
    eps: f64,
    activation: Activation,
    /// Mean and biased variance per channel of the forward pass.
    batch_stats: Arc<Mutex<Option<ChannelStats>>>,
}

const TRAIN: &str = "lrlab-batch-norm";

impl BatchNormTrain {
    fn forward(&self, operands: &Operands) -> Result<(CpuStorage, Shape)> {
        let (gamma, beta) = operands.affine;
        let (mean, var) = channel_stats(operands.x, geometry(operands.layout)?);
        let scale: Vec<f32> = (0..gamma.len())
            .map(|ch| gamma[ch] / (var[ch] + self.eps as f32).sqrt())
            .collect();
        let y = operands.map(&scale, beta, Some(&mean), self.activation)?;
        *self.batch_stats.lock().expect("batch-norm statistics") = Some((mean, var));
        Ok((CpuStorage::F32(y), operands.layout.shape().clone()))
    }

    /// The gradients of the input, of `[γ; β]` and, when `residual`, of the residual.
    fn backward(
        &self,
        x: &Tensor,
        affine: &Tensor,
        y: &Tensor,
        grad: &Tensor,
        residual: bool,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let stats = self
            .batch_stats
            .lock()
            .expect("batch-norm statistics")
            .clone();
        let stats = stats.ok_or_else(|| {
            candle_core::Error::Msg("batch norm: backward pass without a forward pass".into())
        })?;
        let grad = grad.contiguous()?;
        let (xl, device) = (x.layout(), x.device());
        with_cpu_slices(TRAIN, [x, affine, &grad, y], |[x_values, affine, dy, y]| {
            // Where the ReLU cut the output, the gradient stops.
            let active = match self.activation {
                Activation::Identity => None,
                Activation::Relu => Some(y),
            };
            let gradient = Gradient { dy, active };
            let gamma = &affine[..affine.len() / 2];
            let grads = backward(x_values, xl, gamma, gradient, &stats, self.eps, residual)?;
            // The sum's gradient: the output's, cut where the ReLU did.
            let d_sum = match (residual, grads.cut) {
                (false, _) => None,
                (true, None) => Some(grad.clone()),
                (true, Some(cut)) => Some(Tensor::from_vec(cut, xl.shape(), device)?),
            };
            let affine = [grads.gamma, grads.beta].concat();
            Ok((
                Tensor::from_vec(grads.input, xl.shape(), device)?,
                Tensor::from_vec(affine, (2, gamma.len()), device)?,
                d_sum,
            ))
        })
    }
}

impl CustomOp2 for BatchNormTrain {
    fn name(&self) -> &'static str {
        TRAIN
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a_s: &CpuStorage,
        al: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward(&Operands::new(TRAIN, (xs, xl), (a_s, al), None)?)
    }

    fn bwd(
        &self,
        x: &Tensor,
        affine: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, d_affine, _) = self.backward(x, affine, y, grad, false)?;
        Ok((Some(dx), Some(d_affine)))
    }
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        TRAIN
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a_s: &CpuStorage,
        al: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward(&Operands::new(TRAIN, (xs, xl), (a_s, al), Some((rs, rl)))?)
    }

    fn bwd(
        &self,
        x: &Tensor,
        affine: &Tensor,
        _residual: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, d_affine, d_residual) = self.backward(x, affine, y, grad, true)?;
        Ok((Some(dx), Some(d_affine), d_residual))
    }
}

/// The fused operation of [`batch_norm_eval`] over `(x, [scale; shift])` or
/// `(x, [scale; shift], residual)`.
struct ChannelAffine(Activation);

const EVAL: &str = "lrlab-batch-norm-eval";

impl ChannelAffine {
    fn forward(&self, operands: &Operands) -> Result<(CpuStorage, Shape)> {
        let (scale, shift) = operands.affine;
        let y = operands.map(scale, shift, None, self.0)?;
        Ok((CpuStorage::F32(y), operands.layout.shape().clone()))
    }
}

impl CustomOp2 for ChannelAffine {
    fn name(&self) -> &'static str {
        EVAL
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a_s: &CpuStorage,
        al: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward(&Operands::new(EVAL, (xs, xl), (a_s, al), None)?)
    }
}

impl CustomOp3 for ChannelAffine {
    fn name(&self) -> &'static str {
        EVAL
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a_s: &CpuStorage,
        al: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward(&Operands::new(EVAL, (xs, xl), (a_s, al), Some((rs, rl)))?)
    }
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
            // Each plane in `f32` lanes, the planes added in `f64`.
            let sum: f64 = planes().map(|p| f64::from(lane_sum([p], |[v]| v))).sum();
            let mean = sum / count;
            let centre = mean as f32;
            let squares: f64 = planes()
                .map(|p| f64::from(lane_sum([p], |[v]| (v - centre) * (v - centre))))
                .sum();
            (mean as f32, (squares / count) as f32)
        })
        .unzip()
}

/// Writes `out[n, c, ·] = f(c, offset of (n, c, ·), out[n, c, ·])` one plane per task.
fn per_plane(out: &mut [f32], c: usize, plane: usize, f: impl Fn(usize, usize, &mut [f32]) + Sync) {
    out.par_chunks_mut(plane)
        .enumerate()
        .for_each(|(nc, o)| f(nc % c, nc * plane, o));
}

/// The gradient reaching a batch norm's output: `dy`, cut where the activated output `active`
/// is not positive (after a ReLU).
#[derive(Clone, Copy)]
struct Gradient<'a> {
    dy: &'a [f32],
    active: Option<&'a [f32]>,
}

impl Gradient<'_> {
    /// `Σ g` and `Σ g·(x − mean)` over the gradients `g` of the normalised values at
    /// `at..at + x.len()` and the inputs `x` there: one pass each over the plane (the second
    /// reads it from L1), in `f32` lanes; a plane is at most a few thousand elements, and the
    /// planes' sums are added in `f64`.
    fn sums(&self, at: usize, x: &[f32], mean: f32) -> (f32, f32) {
        let dy = &self.dy[at..at + x.len()];
        match self.active {
            Some(y) => {
                let inputs = [dy, &y[at..at + x.len()], x];
                let sum = lane_sum(inputs, |[g, y, _]| through_relu(g, y));
                let dot = lane_sum(inputs, |[g, y, v]| through_relu(g, y) * (v - mean));
                (sum, dot)
            }
            None => (
                lane_sum([dy], |[g]| g),
                lane_sum([dy, x], |[g, v]| g * (v - mean)),
            ),
        }
    }
}

/// Per channel, what turns a plane's gradient `g` and input `x` into the input's gradient:
/// `k·(g − mean_g − (x − mean)·slope)`.
#[derive(Clone, Copy)]
struct InputGradient {
    k: f32,
    mean_g: f32,
    mean: f32,
    slope: f32,
}

impl InputGradient {
    /// Writes the gradient of a plane of inputs `x` whose normalised values have gradient `g`.
    fn plane(self, out: &mut [f32], g: impl Iterator<Item = f32>, x: &[f32]) {
        let InputGradient {
            k,
            mean_g,
            mean,
            slope,
        } = self;
        for ((o, g), &v) in out.iter_mut().zip(g).zip(x) {
            *o = k * (g - mean_g - (v - mean) * slope);
        }
    }
}

/// The part of gradient `g` that passes back through a ReLU whose output was `y`: all of it
/// where the output is positive, none where it was cut to 0 (PyTorch's `threshold_backward`).
fn through_relu(g: f32, y: f32) -> f32 {
    if y > 0.0 { g } else { 0.0 }
}

/// The gradients of the input, γ and β, from the input, the forward pass's statistics and the
/// output's gradient; with `cut`, also the output's gradient cut where the ReLU was (the
/// residual's gradient), written in the same pass.
fn backward(
    x: &[f32],
    xl: &Layout,
    gamma: &[f32],
    dy: Gradient,
    (mean, var): &ChannelStats,
    eps: f64,
    cut: bool,
) -> Result<Gradients> {
    let (n, c, plane) = geometry(xl)?;
    let count = (n * plane) as f32;
    let invstd: Vec<f32> = var.iter().map(|v| 1.0 / (v + eps as f32).sqrt()).collect();
    let (dbeta, dgamma) = gradient_sums(x, (n, c, plane), dy, mean, &invstd);
    // dx = γ·invstd·(dy − Σdy/M − x̂·Σdy·x̂/M)
    let channels: Vec<InputGradient> = (0..c)
        .map(|ch| InputGradient {
            k: gamma[ch] * invstd[ch],
            mean_g: dbeta[ch] / count,
            mean: mean[ch],
            slope: invstd[ch] * dgamma[ch] / count,
        })
        .collect();
    let mut dx = vec![0f32; x.len()];
    let plane_of = |at: usize| at..at + plane;
    let cut = match (cut, dy.active) {
        (true, Some(y)) => {
            let mut cut = vec![0f32; x.len()];
            dx.par_chunks_mut(plane)
                .zip(cut.par_chunks_mut(plane))
                .enumerate()
                .for_each(|(nc, (out, cut))| {
                    let at = plane_of(nc * plane);
                    let (g, y) = (&dy.dy[at.clone()], &y[at.clone()]);
                    for ((cell, &g), &y) in cut.iter_mut().zip(g).zip(y) {
                        *cell = through_relu(g, y);
                    }
                    channels[nc % c].plane(out, cut.iter().copied(), &x[at]);
                });
            Some(cut)
        }
        _ => {
            per_plane(&mut dx, c, plane, |ch, at, out| {
                let (g, x) = (&dy.dy[plane_of(at)], &x[plane_of(at)]);
                match dy.active {
                    Some(y) => {
                        let y = &y[plane_of(at)];
                        let g = g.iter().zip(y).map(|(&g, &y)| through_relu(g, y));
                        channels[ch].plane(out, g, x);
                    }
                    None => channels[ch].plane(out, g.iter().copied(), x),
                }
            });
            None
        }
    };
    Ok(Gradients {
        input: dx,
        cut,
        gamma: dgamma,
        beta: dbeta,
    })
}

/// Per channel, `Σ dy` and `Σ dy·x̂` (the gradients of β and γ).
fn gradient_sums(
    x: &[f32],
    (n, c, plane): (usize, usize, usize),
    dy: Gradient,
    mean: &[f32],
    invstd: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut sum, mut dot) = (0f64, 0f64);
            for i in 0..n {
                let at = (i * c + ch) * plane;
                let (plane_sum, plane_dot) = dy.sums(at, &x[at..at + plane], mean[ch]);
                sum += f64::from(plane_sum);
                dot += f64::from(plane_dot);
            }
            (sum as f32, (dot as f32) * invstd[ch])
        })
        .unzip()
}

/// What [`backward`] computes.
struct Gradients {
    /// The input's gradient.
    input: Vec<f32>,
    /// The output's gradient cut where the ReLU was, when asked for.
    cut: Option<Vec<f32>>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relative_error as relative;
    use candle_core::{DType, Device, Var};

    #[test]
    fn fused_batch_norm_equals_the_composition_in_value_gradients_and_statistics() {
        let device = Device::Cpu;
        let cases = [
            ((4, 3, 5, 7), Activation::Identity, false),
            ((2, 8, 4, 4), Activation::Relu, false),
            ((7, 2, 1, 1), Activation::Relu, true),
            ((1, 5, 3, 2), Activation::Identity, true),
            ((3, 4, 6, 6), Activation::Relu, true),
        ];
        for ((n, c, h, w), activation, with_residual) in cases {
            // Off-centre inputs: a variance of a large mean is where one-pass sums go wrong.
            let x = Var::from_tensor(
                &(Tensor::randn(0f32, 2.0, (n, c, h, w), &device).unwrap() + 50.0).unwrap(),
            )
            .unwrap();
            let gamma = Var::randn(1f32, 0.5, c, &device).unwrap();
            let beta = Var::randn(0f32, 0.5, c, &device).unwrap();
            let r = Tensor::randn(0f32, 1.0, (n, c, h, w), &device).unwrap();
            let eps = 1e-5;
            let residual = Var::randn(0f32, 1.0, (n, c, h, w), &device).unwrap();
            let epilogue = Epilogue {
                residual: with_residual.then(|| residual.as_tensor()),
                activation,
            };
            let (x_, gamma_, beta_) = (x.as_tensor(), gamma.as_tensor(), beta.as_tensor());
            let fused = batch_norm_train(x_, gamma_, beta_, eps, epilogue).unwrap();
            let theirs = composed(x_, gamma_, beta_, eps, epilogue).unwrap().output;
            let ours = fused.output.clone();
            let what = format!("{n}×{c}×{h}×{w} {activation:?} residual {with_residual}");
            assert!(relative(&ours, &theirs) < 1e-4, "{what}: output");
            let grads = |y: &Tensor| (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let (g_ours, g_theirs) = (grads(&ours), grads(&theirs));
            let mut parts = vec![("x", &x), ("gamma", &gamma), ("beta", &beta)];
            if with_residual {
                parts.push(("residual", &residual));
            }
            for (part, var) in parts {
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
        let residual = Tensor::randn(0f32, 1.0, (3, 4, 5, 6), &device)?;
        for activation in [Activation::Identity, Activation::Relu] {
            for residual in [None, Some(&residual)] {
                let epilogue = Epilogue {
                    residual,
                    activation,
                };
                let ours = batch_norm_eval(&x, &scale, &shift, epilogue)?;
                let channels = (1, 4, 1, 1);
                let theirs = epilogue.apply_tensor(
                    x.broadcast_mul(&scale.reshape(channels)?)?
                        .broadcast_add(&shift.reshape(channels)?)?,
                )?;
                let what = format!("{activation:?}, residual {}", residual.is_some());
                assert!(relative(&ours, &theirs) < 1e-6, "{what}");
            }
        }
        let x = Var::from_tensor(&x)?;
        let relu = Epilogue::activation(Activation::Relu);
        let err = batch_norm_eval(x.as_tensor(), &scale, &shift, relu)?
            .sum_all()?
            .backward()
            .unwrap_err()
            .to_string();
        assert!(err.contains("lrlab-batch-norm-eval"), "{err}");
        Ok(())
    }
}
