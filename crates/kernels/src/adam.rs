//! Adam's update of one parameter in place on the CPU: one pass writes the moments where they
//! are (reading θ, g, m and v), a second writes θ (reading θ, m and v), where the same formulas
//! as tensor operations make a dozen passes and a dozen parameter-sized allocations (the page
//! faults of which cost as much as the arithmetic). The arithmetic is the tensor path's, in the
//! same order and type, so the two agree bit for bit.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor, Var};
use rayon::prelude::*;

use super::serves_f32;

/// One step of Adam (coupled L2 decay) or AdamW (decoupled), as PyTorch's single-tensor
/// implementation computes it (`step_size = lr / (1 − β₁ᵗ)`, `denom = √v / √(1 − β₂ᵗ) + ε`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamUpdate {
    /// AdamW's decoupled decay rather than Adam's L2 term.
    pub decoupled: bool,
    /// The learning rate of this step.
    pub lr: f64,
    /// The decay (L2 for Adam, decoupled for AdamW).
    pub weight_decay: f64,
    /// β₁ and β₂.
    pub betas: (f64, f64),
    /// ε, added to the denominator.
    pub eps: f64,
    /// The step's number `t`, from 1.
    pub step: u64,
}

impl AdamUpdate {
    /// `lr / (1 − β₁ᵗ)`.
    fn step_size(&self) -> f64 {
        self.lr / self.bias_correction()
    }

    /// `1 − β₁ᵗ`.
    fn bias_correction(&self) -> f64 {
        1.0 - self.betas.0.powi(self.step as i32)
    }

    /// `√(1 − β₂ᵗ)`.
    fn root_correction(&self) -> f64 {
        (1.0 - self.betas.1.powi(self.step as i32)).sqrt()
    }
}

/// What a hypergradient schedule reads of a step, flattened.
#[derive(Clone, Debug)]
pub struct Tracked {
    /// The gradient the update used (with Adam's L2 term).
    pub gradient: Tensor,
    /// `d`, the direction stepped along: `θ_t = θ_{t−1} − lr·d`.
    pub direction: Tensor,
}

/// One step `update` of parameter `theta` with gradient `grad` and moments `moments` (`(2, n)`:
/// the first moment's row, then the second's; zeros before the first step), both updated in
/// place. Returns the step's gradient and direction when `track` asks for them. In place in two
/// fused passes for `f32` on the CPU unless `track`; candle's tensor operations otherwise,
/// which give the same bits.
pub fn adam_update(
    theta: &Var,
    grad: &Tensor,
    moments: &Var,
    update: &AdamUpdate,
    track: bool,
) -> Result<Option<Tracked>> {
    if track || !serves_f32(theta) {
        return composed(theta, grad, moments, update, track);
    }
    let constants = Constants::of(update);
    moments.inplace_op3(&grad.contiguous()?, theta, &MomentsUpdate(constants))?;
    theta
        .inplace_op2(moments, &ParameterUpdate(constants))
        .map(|()| None)
}

/// [`adam_update`] as tensor operations.
fn composed(
    parameter: &Var,
    grad: &Tensor,
    moments: &Var,
    update: &AdamUpdate,
    track: bool,
) -> Result<Option<Tracked>> {
    let AdamUpdate {
        decoupled,
        lr,
        weight_decay,
        betas: (b1, b2),
        eps,
        ..
    } = *update;
    let theta = &parameter.as_tensor().detach();
    let grad = match decoupled {
        false if weight_decay != 0.0 => (grad + (theta * weight_decay)?)?,
        _ => grad.clone(),
    };
    let shape = theta.shape();
    let m = ((moments.get(0)?.reshape(shape)? * b1)? + (&grad * (1.0 - b1))?)?;
    let v = ((moments.get(1)?.reshape(shape)? * b2)? + (grad.sqr()? * (1.0 - b2))?)?;
    let denom = ((v.sqrt()? / update.root_correction())? + eps)?;
    let step = (&m / denom)?;
    let decayed = match decoupled {
        true if weight_decay != 0.0 => (theta * (1.0 - lr * weight_decay))?,
        _ => theta.clone(),
    };
    let tracked = match track {
        // θ_t = θ_{t−1} − lr·d with d = step / (1 − β₁ᵗ) (+ wd·θ_{t−1} for AdamW).
        true => {
            let direction = (&step / update.bias_correction())?;
            let direction = match decoupled {
                true => (direction + (theta * weight_decay)?)?,
                false => direction,
            };
            Some(Tracked {
                gradient: grad,
                direction,
            })
        }
        false => None,
    };
    moments.set(&Tensor::stack(&[m.flatten_all()?, v.flatten_all()?], 0)?)?;
    parameter.set(&(decayed - (&step * update.step_size())?)?)?;
    Ok(tracked)
}
fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("adam update: non-contiguous input".into()))?;
    Ok(&storage.as_slice::<f32>()?[start..end])
}

fn contiguous_mut<'a>(storage: &'a mut CpuStorage, layout: &Layout) -> Result<&'a mut [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("adam update: non-contiguous state".into()))?;
    match storage {
        CpuStorage::F32(values) => Ok(&mut values[start..end]),
        other => candle_core::bail!("adam update: f32 state, not {:?}", other.dtype()),
    }
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// [`AdamUpdate`]'s constants in `f32`, each cast once from `f64` as candle's scalar operations
/// cast theirs.
#[derive(Clone, Copy)]
struct Constants {
    decoupled: bool,
    betas: (f32, f32),
    /// `1 − β₁`, `1 − β₂`.
    complements: (f32, f32),
    weight_decay: f32,
    eps: f32,
    step_size: f32,
    /// `1 / √(1 − β₂ᵗ)`: a division by a scalar as candle does it, a product with the
    /// reciprocal.
    inv_root: f32,
    /// `1 − lr · wd`, AdamW's decay factor.
    keep: f32,
}

impl Constants {
    fn of(u: &AdamUpdate) -> Self {
        Constants {
            decoupled: u.decoupled,
            betas: (u.betas.0 as f32, u.betas.1 as f32),
            complements: ((1.0 - u.betas.0) as f32, (1.0 - u.betas.1) as f32),
            weight_decay: u.weight_decay as f32,
            eps: u.eps as f32,
            step_size: u.step_size() as f32,
            inv_root: (1.0 / u.root_correction()) as f32,
            keep: (1.0 - u.lr * u.weight_decay) as f32,
        }
    }
}

/// The first pass: `(m, v) ← (β₁m + (1 − β₁)g, β₂v + (1 − β₂)g²)` in place over the `(2, n)`
/// moments, from `(g, θ)` (θ for Adam's L2 term).
struct MomentsUpdate(Constants);

/// The second pass: `θ ← decay(θ) − step_size · m / (√v / √(1 − β₂ᵗ) + ε)` in place, from the
/// updated moments.
struct ParameterUpdate(Constants);

impl InplaceOp3 for MomentsUpdate {
    fn name(&self) -> &'static str {
        "lrlab-adam-moments"
    }

    fn cpu_fwd(
        &self,
        moments: &mut CpuStorage,
        moments_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
        theta: &CpuStorage,
        theta_layout: &Layout,
    ) -> Result<()> {
        let grad = contiguous(grad, grad_layout)?;
        let theta = contiguous(theta, theta_layout)?;
        let moments = contiguous_mut(moments, moments_layout)?;
        let n = theta.len();
        if grad.len() != n || moments.len() != 2 * n {
            candle_core::bail!(
                "adam update: θ {n}, g {}, moments {}",
                grad.len(),
                moments.len()
            );
        }
        let Constants {
            decoupled,
            betas: (b1, b2),
            complements: (c1, c2),
            weight_decay: wd,
            ..
        } = self.0;
        let (m, v) = moments.split_at_mut(n);
        m.par_chunks_mut(CHUNK)
            .zip(v.par_chunks_mut(CHUNK))
            .zip(grad.par_chunks(CHUNK).zip(theta.par_chunks(CHUNK)))
            .for_each(|((m, v), (grad, theta))| {
                for i in 0..m.len() {
                    let g = match decoupled || wd == 0.0 {
                        true => grad[i],
                        false => grad[i] + theta[i] * wd,
                    };
                    m[i] = m[i] * b1 + g * c1;
                    v[i] = v[i] * b2 + g * g * c2;
                }
            });
        Ok(())
    }
}

impl InplaceOp2 for ParameterUpdate {
    fn name(&self) -> &'static str {
        "lrlab-adam-parameter"
    }

    fn cpu_fwd(
        &self,
        theta: &mut CpuStorage,
        theta_layout: &Layout,
        moments: &CpuStorage,
        moments_layout: &Layout,
    ) -> Result<()> {
        let moments = contiguous(moments, moments_layout)?;
        let theta = contiguous_mut(theta, theta_layout)?;
        let n = theta.len();
        if moments.len() != 2 * n {
            candle_core::bail!("adam update: θ {n}, moments {}", moments.len());
        }
        let Constants {
            decoupled,
            weight_decay: wd,
            eps,
            step_size,
            inv_root,
            keep,
            ..
        } = self.0;
        let (m, v) = moments.split_at(n);
        theta
            .par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(theta, (m, v))| {
                for i in 0..theta.len() {
                    let update = m[i] / (v[i].sqrt() * inv_root + eps);
                    let decayed = match decoupled && wd != 0.0 {
                        true => theta[i] * keep,
                        false => theta[i],
                    };
                    theta[i] = decayed - update * step_size;
                }
            });
        Ok(())
    }
}
