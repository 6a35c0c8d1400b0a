//! Adam's update of one parameter on the CPU as two passes in place, one over the moments and
//! one over the parameter, where the same formulas as tensor operations make a dozen passes and
//! a dozen parameter-sized allocations (the page faults of which cost as much as the
//! arithmetic; BERT-base's 110 M parameters and moments are 1.3 GB a step). The arithmetic is
//! the tensor path's, in the same order and type.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Result, Tensor};
use rayon::prelude::*;

/// One step of Adam (coupled L2 decay) or AdamW (decoupled) with the step's constants.
pub(crate) struct AdamUpdate {
    /// AdamW's decoupled decay rather than Adam's L2 term.
    pub decoupled: bool,
    pub lr: f64,
    pub weight_decay: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    /// `lr / (1 − β₁ᵗ)`.
    pub step_size: f64,
    /// `√(1 − β₂ᵗ)`.
    pub root_correction: f64,
}

/// Whether the fused update serves parameter `theta` (f32 on the CPU).
pub(crate) fn serves(theta: &Tensor) -> bool {
    theta.device().is_cpu() && theta.dtype() == DType::F32
}

/// The contiguous elements of `storage` under `layout`.
fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let (start, end) = offsets(layout)?;
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// The contiguous elements of `storage` under `layout`, to be written in place.
fn contiguous_mut<'a>(storage: &'a mut CpuStorage, layout: &Layout) -> Result<&'a mut [f32]> {
    let (start, end) = offsets(layout)?;
    match storage {
        CpuStorage::F32(values) => Ok(&mut values[start..end]),
        other => candle_core::bail!("adam update: f32 only, not {:?}", other.dtype()),
    }
}

fn offsets(layout: &Layout) -> Result<(usize, usize)> {
    layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("adam update: non-contiguous input".into()))
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// The step's constants in `f32`, each cast once, as candle's scalar operations cast theirs.
struct Constants {
    b1: f32,
    b2: f32,
    c1: f32,
    c2: f32,
    /// L2 decay added to the gradient (Adam's coupled decay), or 0.
    coupled: f32,
    eps: f32,
    step_size: f32,
    /// Division by `√(1 − β₂ᵗ)` as candle does it: a product with the reciprocal.
    inv_root: f32,
    /// `1 − lr·wd`, the decoupled decay's factor (1 without it).
    keep: f32,
}

impl AdamUpdate {
    fn constants(&self) -> Constants {
        let decays = self.weight_decay != 0.0;
        Constants {
            b1: self.betas.0 as f32,
            b2: self.betas.1 as f32,
            c1: (1.0 - self.betas.0) as f32,
            c2: (1.0 - self.betas.1) as f32,
            coupled: if self.decoupled {
                0.0
            } else {
                self.weight_decay as f32
            },
            eps: self.eps as f32,
            step_size: self.step_size as f32,
            inv_root: (1.0 / self.root_correction) as f32,
            keep: if self.decoupled && decays {
                (1.0 - self.lr * self.weight_decay) as f32
            } else {
                1.0
            },
        }
    }

    /// Updates `theta` (with gradient `grad`) and its `moments (2, n)`, both in place: one pass
    /// for the moments, one for the parameter, no allocation.
    pub fn apply(&self, theta: &Tensor, grad: &Tensor, moments: &Tensor) -> Result<()> {
        moments.inplace_op3(theta, grad, &MomentsPass(self.constants()))?;
        theta.inplace_op2(moments, &ParameterPass(self.constants()))
    }
}

/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²` with `g` (+ `wd·θ` for Adam) on `moments (2, n)`.
struct MomentsPass(Constants);

/// `θ ← θ·keep − step_size · m / (√v / √(1−β₂ᵗ) + ε)`.
struct ParameterPass(Constants);

impl InplaceOp3 for MomentsPass {
    fn name(&self) -> &'static str {
        "lrlab-adam-moments"
    }

    fn cpu_fwd(
        &self,
        moments: &mut CpuStorage,
        moments_layout: &Layout,
        theta: &CpuStorage,
        theta_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<()> {
        let theta = contiguous(theta, theta_layout)?;
        let grad = contiguous(grad, grad_layout)?;
        let moments = contiguous_mut(moments, moments_layout)?;
        let n = theta.len();
        if grad.len() != n || moments.len() != 2 * n {
            candle_core::bail!(
                "adam update: θ {n}, g {}, moments {}",
                grad.len(),
                moments.len()
            );
        }
        let c = &self.0;
        let (m, v) = moments.split_at_mut(n);
        m.par_chunks_mut(CHUNK)
            .zip(v.par_chunks_mut(CHUNK))
            .zip(theta.par_chunks(CHUNK).zip(grad.par_chunks(CHUNK)))
            .for_each(|((m, v), (theta, grad))| {
                for (((m, v), &t), &g) in m.iter_mut().zip(v).zip(theta).zip(grad) {
                    let g = if c.coupled == 0.0 {
                        g
                    } else {
                        g + t * c.coupled
                    };
                    *m = *m * c.b1 + g * c.c1;
                    *v = *v * c.b2 + g * g * c.c2;
                }
            });
        Ok(())
    }
}

impl InplaceOp2 for ParameterPass {
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
        let theta = contiguous_mut(theta, theta_layout)?;
        let moments = contiguous(moments, moments_layout)?;
        let n = theta.len();
        if moments.len() != 2 * n {
            candle_core::bail!("adam update: θ {n}, moments {}", moments.len());
        }
        let c = &self.0;
        let (m, v) = moments.split_at(n);
        theta
            .par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(theta, (m, v))| {
                for ((t, &m), &v) in theta.iter_mut().zip(m).zip(v) {
                    let update = m / (v.sqrt() * c.inv_root + c.eps);
                    let decayed = if c.keep == 1.0 { *t } else { *t * c.keep };
                    *t = decayed - update * c.step_size;
                }
            });
        Ok(())
    }
}
