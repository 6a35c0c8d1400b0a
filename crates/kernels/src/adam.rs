//! Adam's update of one parameter as a single pass on the CPU: read θ, g, m and v once, write
//! θ', m' and v' once, where the same formulas as tensor operations make a dozen passes and a
//! dozen parameter-sized allocations (the page faults of which cost as much as the arithmetic).
//! The arithmetic is the tensor path's, in the same order and type, so the two agree bit for
//! bit.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
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

/// A parameter after one step.
#[derive(Clone, Debug)]
pub struct AdamOutput {
    /// The updated parameter, of the parameter's shape.
    pub theta: Tensor,
    /// The updated moments, `(2, n)`: the first moment's row, then the second's.
    pub moments: Tensor,
    /// What [`adam_update`] was asked to track.
    pub tracked: Option<Tracked>,
}

/// What a hypergradient schedule reads of a step, flattened.
#[derive(Clone, Debug)]
pub struct Tracked {
    /// The gradient the update used (with Adam's L2 term).
    pub gradient: Tensor,
    /// `d`, the direction stepped along: `θ_t = θ_{t−1} − lr·d`.
    pub direction: Tensor,
}

/// Parameter `theta` after one step `update` with gradient `grad` and moments `(2, n)` (zeros
/// before the first step): one fused pass for `f32` on the CPU unless `track` asks for the
/// step's gradient and direction; candle's tensor operations otherwise, which give the same
/// bits.
pub fn adam_update(
    theta: &Tensor,
    grad: &Tensor,
    moments: &Tensor,
    update: &AdamUpdate,
    track: bool,
) -> Result<AdamOutput> {
    let theta = theta.detach();
    if track || !serves_f32(&theta) {
        return composed(&theta, grad, moments, update, track);
    }
    let out = theta.apply_op3_no_bwd(&grad.contiguous()?, moments, update)?;
    Ok(AdamOutput {
        theta: out.get(0)?.reshape(theta.shape())?,
        moments: out.narrow(0, 1, 2)?,
        tracked: None,
    })
}

/// [`adam_update`] as tensor operations.
fn composed(
    theta: &Tensor,
    grad: &Tensor,
    moments: &Tensor,
    update: &AdamUpdate,
    track: bool,
) -> Result<AdamOutput> {
    let AdamUpdate {
        decoupled,
        lr,
        weight_decay,
        betas: (b1, b2),
        eps,
        ..
    } = *update;
    let grad = match decoupled {
        false if weight_decay != 0.0 => (grad + (theta * weight_decay)?)?,
        _ => grad.clone(),
    };
    let shape = theta.shape();
    let m = ((moments.get(0)?.reshape(shape)? * b1)? + (&grad * (1.0 - b1))?)?;
    let v = ((moments.get(1)?.reshape(shape)? * b2)? + (grad.sqr()? * (1.0 - b2))?)?;
    let denom = ((v.sqrt()? / update.root_correction())? + eps)?;
    let step = (&m / denom)?;
    let moments = Tensor::stack(&[m.flatten_all()?, v.flatten_all()?], 0)?;
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
    Ok(AdamOutput {
        theta: (decayed - (&step * update.step_size())?)?,
        moments,
        tracked,
    })
}

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("adam update: non-contiguous input".into()))?;
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

impl CustomOp3 for AdamUpdate {
    fn name(&self) -> &'static str {
        "lrlab-adam-update"
    }

    /// `(θ, g, moments (2, n))` → `(3, n)`: θ', m', v'.
    fn cpu_fwd(
        &self,
        theta: &CpuStorage,
        theta_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
        moments: &CpuStorage,
        moments_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let theta = contiguous(theta, theta_layout)?;
        let grad = contiguous(grad, grad_layout)?;
        let moments = contiguous(moments, moments_layout)?;
        let n = theta.len();
        if grad.len() != n || moments.len() != 2 * n {
            candle_core::bail!(
                "adam update: θ {n}, g {}, moments {}",
                grad.len(),
                moments.len()
            );
        }
        let (m, v) = moments.split_at(n);
        // Each constant from f64 to f32 once, as candle's scalar operations cast theirs.
        let (b1, b2) = (self.betas.0 as f32, self.betas.1 as f32);
        let (c1, c2) = ((1.0 - self.betas.0) as f32, (1.0 - self.betas.1) as f32);
        let (wd, eps) = (self.weight_decay as f32, self.eps as f32);
        // Division by a scalar as candle does it: a product with the reciprocal.
        let (step_size, inv_root) = (
            self.step_size() as f32,
            (1.0 / self.root_correction()) as f32,
        );
        let keep = (1.0 - self.lr * self.weight_decay) as f32;
        let mut out = vec![0f32; 3 * n];
        let (new_theta, rest) = out.split_at_mut(n);
        let (new_m, new_v) = rest.split_at_mut(n);
        new_theta
            .par_chunks_mut(CHUNK)
            .zip(new_m.par_chunks_mut(CHUNK))
            .zip(new_v.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(chunk, ((t_out, m_out), v_out))| {
                let at = chunk * CHUNK;
                for i in 0..t_out.len() {
                    let (t, g) = (theta[at + i], grad[at + i]);
                    let g = if self.decoupled || wd == 0.0 {
                        g
                    } else {
                        g + t * wd
                    };
                    let m = m[at + i] * b1 + g * c1;
                    let v = v[at + i] * b2 + g * g * c2;
                    let update = m / (v.sqrt() * inv_root + eps);
                    let decayed = if self.decoupled && wd != 0.0 {
                        t * keep
                    } else {
                        t
                    };
                    t_out[i] = decayed - update * step_size;
                    m_out[i] = m;
                    v_out[i] = v;
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((3, n))))
    }
}
