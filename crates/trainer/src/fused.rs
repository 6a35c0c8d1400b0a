//! Adam's update of one parameter as a single pass on the CPU: read θ, g, m and v once, write
//! θ', m' and v' once, where the same formulas as tensor operations make a dozen passes and a
//! dozen parameter-sized allocations (the page faults of which cost as much as the arithmetic).
//! The arithmetic is the tensor path's, in the same order and type.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
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
        let (step_size, inv_root) = (self.step_size as f32, (1.0 / self.root_correction) as f32);
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
