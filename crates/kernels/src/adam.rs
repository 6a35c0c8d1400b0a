//! Adam's update of a group of parameters whose moments share one buffer. On the CPU, per
//! parameter in place: one pass writes the moments where they are (reading θ, g, m and v), a
//! second writes θ (reading θ, m and v), where the same formulas as tensor operations make a
//! dozen passes and a dozen parameter-sized allocations (the page faults of which cost as much
//! as the arithmetic). Elsewhere the formulas as tensor operations over the whole group at once.
//! The arithmetic is the same in both, in the same order and type, so they agree bit for bit.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor, Var};
use rayon::prelude::*;

use super::{cpu_slice, serves_f32};

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

/// One parameter of a group updated by [`adam_update`]: its value and, when it has one, its
/// gradient (a parameter without one is left as it is, with its moments, as PyTorch does).
#[derive(Clone, Copy, Debug)]
pub struct Param<'a> {
    /// The parameter.
    pub theta: &'a Var,
    /// Its gradient this step.
    pub grad: Option<&'a Tensor>,
}

/// One step `update` of a group of parameters whose moments are the columns of `moments`
/// (`(2, total)`: the first moments' row, then the second's, parameter after parameter in the
/// group's order; zeros before the first step), all updated in place. When `track`, returns the
/// step's gradient and direction, flattened over the group in the same order (a parameter
/// without a gradient contributes zeros to both).
///
/// On the CPU in `f32` without tracking: two fused in-place passes per parameter. Otherwise
/// (a GPU, or tracking) candle's tensor operations, over the whole group at once when every
/// parameter has a gradient, so that a GPU runs a dozen element-wise kernels a step rather than
/// a dozen per parameter (plus a copy per parameter in and out of the flat buffers); either way
/// the same bits.
pub fn adam_update(
    group: &[Param<'_>],
    moments: &Tensor,
    update: &AdamUpdate,
    track: bool,
) -> Result<Option<Tracked>> {
    let total: usize = group.iter().map(|p| p.theta.elem_count()).sum();
    if moments.dims() != [2, total] || !moments.is_contiguous() {
        candle_core::bail!(
            "adam update: moments {:?} for {total} parameters (expected (2, {total}), contiguous)",
            moments.dims()
        );
    }
    let fused = !track && group.iter().all(|p| serves_f32(p.theta));
    if fused {
        let constants = Constants::of(update);
        for (offset, param) in with_offsets(group) {
            let Some(grad) = param.grad else {
                continue;
            };
            let at = Columns { offset, total };
            moments.inplace_op3(
                &grad.contiguous()?,
                param.theta,
                &MomentsUpdate(constants, at),
            )?;
            param
                .theta
                .inplace_op2(moments, &ParameterUpdate(constants, at))?;
        }
        return Ok(None);
    }
    composed(group, moments, update, track)
}

/// Each parameter of `group` with the first of its columns in the moments.
fn with_offsets<'a, 'b>(group: &'a [Param<'b>]) -> impl Iterator<Item = (usize, &'a Param<'b>)> {
    group.iter().scan(0, |next, param| {
        let offset = *next;
        *next += param.theta.elem_count();
        Some((offset, param))
    })
}

/// Where a parameter's moments are in the `(2, total)` moments: columns `offset..offset + n`.
#[derive(Clone, Copy)]
struct Columns {
    offset: usize,
    total: usize,
}

/// [`adam_update`] as tensor operations: over the whole group at once when every parameter
/// has a gradient, else parameter by parameter.
fn composed(
    group: &[Param],
    moments: &Tensor,
    update: &AdamUpdate,
    track: bool,
) -> Result<Option<Tracked>> {
    let flat = |pick: &dyn Fn(&Param) -> Result<Tensor>| -> Result<Tensor> {
        let parts = group.iter().map(pick).collect::<Result<Vec<_>>>()?;
        Tensor::cat(&parts, 0)
    };
    if group.iter().all(|p| p.grad.is_some()) {
        let theta = flat(&|p| p.theta.as_tensor().detach().flatten_all())?;
        let grad = flat(&|p| p.grad.expect("every gradient").flatten_all())?;
        let (new_theta, new_moments, tracked) = step(&theta, &grad, moments, update, track)?;
        moments.slice_set(&new_moments, 0, 0)?;
        for (offset, param) in with_offsets(group) {
            let values = new_theta
                .narrow(0, offset, param.theta.elem_count())?
                .reshape(param.theta.shape())?;
            param.theta.set(&values)?;
        }
        return Ok(tracked);
    }
    let (mut gradients, mut directions) = (Vec::new(), Vec::new());
    for (offset, param) in with_offsets(group) {
        let theta = param.theta.as_tensor().detach().flatten_all()?;
        let Some(grad) = param.grad else {
            if track {
                let zeros = theta.zeros_like()?;
                gradients.push(zeros.clone());
                directions.push(zeros);
            }
            continue;
        };
        let own = moments
            .narrow(1, offset, theta.elem_count())?
            .contiguous()?;
        let (new_theta, new_moments, tracked) =
            step(&theta, &grad.flatten_all()?, &own, update, track)?;
        moments.slice_set(&new_moments, 1, offset)?;
        param.theta.set(&new_theta.reshape(param.theta.shape())?)?;
        if let Some(Tracked {
            gradient,
            direction,
        }) = tracked
        {
            gradients.push(gradient);
            directions.push(direction);
        }
    }
    Ok(match track {
        true => Some(Tracked {
            gradient: Tensor::cat(&gradients, 0)?,
            direction: Tensor::cat(&directions, 0)?,
        }),
        false => None,
    })
}

/// One step over flat `theta` and `grad` with `(2, n)` `moments`: the new parameter, the new
/// moments and, when `track`, the gradient used and the direction.
fn step(
    theta: &Tensor,
    grad: &Tensor,
    moments: &Tensor,
    update: &AdamUpdate,
    track: bool,
) -> Result<(Tensor, Tensor, Option<Tracked>)> {
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
    let m = ((moments.get(0)? * b1)? + (&grad * (1.0 - b1))?)?;
    let v = ((moments.get(1)? * b2)? + (grad.sqr()? * (1.0 - b2))?)?;
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
    let new_theta = (decayed - (&step * update.step_size())?)?;
    Ok((new_theta, Tensor::stack(&[m, v], 0)?, tracked))
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
struct MomentsUpdate(Constants, Columns);

/// The second pass: `θ ← decay(θ) − step_size · m / (√v / √(1 − β₂ᵗ) + ε)` in place, from the
/// updated moments.
struct ParameterUpdate(Constants, Columns);

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
        let grad = cpu_slice::<f32>(self.name(), grad, grad_layout)?;
        let theta = cpu_slice::<f32>(self.name(), theta, theta_layout)?;
        let moments = contiguous_mut(moments, moments_layout)?;
        let (n, Columns { offset, total }) = (theta.len(), self.1);
        if grad.len() != n || moments.len() != 2 * total || offset + n > total {
            candle_core::bail!(
                "adam update: θ {n} at {offset}, g {}, moments {} for {total}",
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
        let (m, v) = moments.split_at_mut(total);
        let (m, v) = (&mut m[offset..offset + n], &mut v[offset..offset + n]);
        m.par_chunks_mut(CHUNK)
            .zip(v.par_chunks_mut(CHUNK))
            .zip(grad.par_chunks(CHUNK).zip(theta.par_chunks(CHUNK)))
            .for_each(move |((m, v), (grad, theta))| {
                // Zipped, not indexed (no bounds checks), and the constants moved in (`move`)
                // rather than read through references the stores might alias: so the loop
                // vectorises.
                let moments = m.iter_mut().zip(v.iter_mut());
                for ((m, v), (&g, &theta)) in moments.zip(grad.iter().zip(theta)) {
                    let g = match decoupled || wd == 0.0 {
                        true => g,
                        false => g + theta * wd,
                    };
                    *m = *m * b1 + g * c1;
                    *v = *v * b2 + g * g * c2;
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
        let moments = cpu_slice::<f32>(self.name(), moments, moments_layout)?;
        let theta = contiguous_mut(theta, theta_layout)?;
        let (n, Columns { offset, total }) = (theta.len(), self.1);
        if moments.len() != 2 * total || offset + n > total {
            candle_core::bail!("adam update: θ {n} at {offset}, moments {}", moments.len());
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
        let (m, v) = moments.split_at(total);
        let (m, v) = (&m[offset..offset + n], &v[offset..offset + n]);
        theta
            .par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(move |(theta, (m, v))| {
                // As the moments' loop: zipped, constants moved in, vectorised.
                for (theta, (&m, &v)) in theta.iter_mut().zip(m.iter().zip(v)) {
                    let update = m / (v.sqrt() * inv_root + eps);
                    let decayed = match decoupled && wd != 0.0 {
                        true => *theta * keep,
                        false => *theta,
                    };
                    *theta = decayed - update * step_size;
                }
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    const SIZES: [usize; 3] = [5, 7, 3];

    /// A group's parameters, gradients and moments, drawn afresh (the same values each call).
    fn group() -> Result<(Vec<Var>, Vec<Tensor>, Tensor)> {
        let device = Device::Cpu;
        let draw = |n: usize, seed: f32| -> Result<Tensor> {
            let values: Vec<f32> = (0..n).map(|i| ((i as f32 + seed) * 0.37).sin()).collect();
            Tensor::from_vec(values, n, &device)
        };
        let vars = SIZES
            .iter()
            .enumerate()
            .map(|(i, &n)| Var::from_tensor(&draw(n, i as f32)?))
            .collect::<Result<Vec<_>>>()?;
        let grads = SIZES
            .iter()
            .enumerate()
            .map(|(i, &n)| draw(n, 10.0 + i as f32))
            .collect::<Result<Vec<_>>>()?;
        let total: usize = SIZES.iter().sum();
        let moments = (draw(2 * total, 20.0)?.abs()? * 0.01)?.reshape((2, total))?;
        Ok((vars, grads, moments))
    }

    /// Parameters and moments after `steps` updates with gradients `present` (by position).
    fn run(present: [bool; 3], track: bool, decoupled: bool) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
        let (vars, grads, moments) = group()?;
        let params: Vec<Param> = vars
            .iter()
            .zip(&grads)
            .zip(present)
            .map(|((theta, grad), present)| Param {
                theta,
                grad: present.then_some(grad),
            })
            .collect();
        for step in 1..=3 {
            let update = AdamUpdate {
                decoupled,
                lr: 1e-2,
                weight_decay: 1e-2,
                betas: (0.9, 0.999),
                eps: 1e-8,
                step,
            };
            adam_update(&params, &moments, &update, track)?;
        }
        let thetas = vars.iter().map(|v| v.to_vec1()).collect::<Result<_>>()?;
        Ok((thetas, moments.flatten_all()?.to_vec1()?))
    }

    #[test]
    fn fused_grouped_and_per_parameter_updates_agree_bit_for_bit() -> Result<()> {
        for decoupled in [false, true] {
            let all = [true; 3];
            let fused = run(all, false, decoupled)?;
            // Tracking takes the tensor path: over the whole group, or per parameter when one
            // has no gradient.
            assert_eq!(
                run(all, true, decoupled)?,
                fused,
                "grouped, AdamW {decoupled}"
            );
            let partial = [true, false, true];
            let (fused_thetas, fused_moments) = run(partial, false, decoupled)?;
            let (thetas, moments) = run(partial, true, decoupled)?;
            assert_eq!(thetas, fused_thetas, "per parameter, AdamW {decoupled}");
            assert_eq!(moments, fused_moments, "per parameter, AdamW {decoupled}");
            // The parameter without a gradient, and its moments, are as they were.
            let (vars, _, before) = group()?;
            assert_eq!(thetas[1], vars[1].to_vec1::<f32>()?);
            let before = before.flatten_all()?.to_vec1::<f32>()?;
            let total = SIZES.iter().sum::<usize>();
            for row in 0..2 {
                let columns = row * total + 5..row * total + 12;
                assert_eq!(moments[columns.clone()], before[columns]);
            }
            assert_ne!(thetas[0], vars[0].to_vec1::<f32>()?, "the others moved");
        }
        let err = adam_update(
            &[],
            &Tensor::zeros((2, 3), DType::F32, &Device::Cpu)?,
            &AdamUpdate {
                decoupled: false,
                lr: 1e-3,
                weight_decay: 0.0,
                betas: (0.9, 0.999),
                eps: 1e-8,
                step: 1,
            },
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("expected (2, 0)"), "{err}");
        Ok(())
    }
}
