//! Adam and AdamW with PyTorch's update, state that checkpoints, and the hypergradient signal.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use lrlab_runs::{OptimizerConfig, OptimizerKind};

use crate::error::{Result, TrainError};
use crate::fused;

/// How a step's gradient `g_t` agrees with the previous step's direction `d_{t−1}`, over all
/// parameters: what hypergradient schedules read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Agreement {
    /// ⟨g_t, d_{t−1}⟩.
    pub dot: f64,
    /// ⟨g_t, d_{t−1}⟩ / (‖g_t‖ ‖d_{t−1}‖): NaN when either is zero.
    pub cos: f64,
}

/// One parameter with its moments and the direction of its last update.
struct Slot {
    name: String,
    var: Var,
    /// The first and second moments, flattened, as the rows of a `(2, n)` tensor (a view into
    /// the last fused update's output on the CPU).
    moments: Tensor,
    direction: Option<Tensor>,
}

/// Adam or AdamW over named parameters, computed as PyTorch's single-tensor implementation
/// (`step_size = lr / (1 − β₁ᵗ)`, `denom = √v / √(1 − β₂ᵗ) + ε`).
pub struct Adam {
    config: OptimizerConfig,
    slots: Vec<Slot>,
    steps: u64,
    track_direction: bool,
}

impl Adam {
    /// An optimizer for `parameters` with zero moments; `track_direction` keeps each update's
    /// direction so that [`Self::step`] can return ⟨g_t, d_{t−1}⟩ (for the hypergradient
    /// scheduler; it costs one more copy of the parameters).
    pub fn new(
        config: OptimizerConfig,
        parameters: &[(String, Var)],
        track_direction: bool,
    ) -> Result<Self> {
        config.check()?;
        let slots = parameters
            .iter()
            .map(|(name, var)| {
                Ok(Slot {
                    name: name.clone(),
                    var: var.clone(),
                    moments: Tensor::zeros((2, var.elem_count()), var.dtype(), var.device())?,
                    direction: None,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            config,
            slots,
            steps: 0,
            track_direction,
        })
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Updates every parameter that has a gradient in `grads` with learning rate `lr`. Returns
    /// the agreement of `g_t` with `d_{t−1}` over all parameters when directions are tracked and
    /// a previous step exists, where `g_t` is the gradient the update uses (with the L2 term for
    /// `adam`) and `d` the direction stepped along (`θ ← θ − lr·d`).
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<Option<Agreement>> {
        self.steps += 1;
        let OptimizerConfig {
            kind,
            weight_decay,
            betas: (b1, b2),
            eps,
            ..
        } = self.config;
        let t = self.steps as i32;
        let step_size = lr / (1.0 - b1.powi(t));
        let root_correction = (1.0 - b2.powi(t)).sqrt();
        let mut sums: Option<[Tensor; 3]> = None;
        for slot in &mut self.slots {
            let Some(grad) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let theta = slot.var.as_tensor().detach();
            if !self.track_direction && fused::serves(&theta) {
                let update = fused::AdamUpdate {
                    decoupled: kind == OptimizerKind::Adamw,
                    lr,
                    weight_decay,
                    betas: (b1, b2),
                    eps,
                    step_size,
                    root_correction,
                };
                let out = theta.apply_op3_no_bwd(&grad.contiguous()?, &slot.moments, &update)?;
                slot.var.set(&out.get(0)?.reshape(theta.shape())?)?;
                slot.moments = out.narrow(0, 1, 2)?;
                continue;
            }
            let grad = match kind {
                OptimizerKind::Adam if weight_decay != 0.0 => (grad + (&theta * weight_decay)?)?,
                _ => grad.clone(),
            };
            if let Some(previous) = &slot.direction {
                let terms = [
                    (&grad * previous)?.sum_all()?,
                    grad.sqr()?.sum_all()?,
                    previous.sqr()?.sum_all()?,
                ];
                sums = Some(match sums {
                    Some([a, b, c]) => {
                        let [x, y, z] = terms;
                        [(a + x)?, (b + y)?, (c + z)?]
                    }
                    None => terms,
                });
            }
            let shape = theta.shape();
            let m = ((slot.moments.get(0)?.reshape(shape)? * b1)? + (&grad * (1.0 - b1))?)?;
            let v = ((slot.moments.get(1)?.reshape(shape)? * b2)? + (grad.sqr()? * (1.0 - b2))?)?;
            let denom = ((v.sqrt()? / root_correction)? + eps)?;
            let update = (&m / denom)?;
            slot.moments = Tensor::stack(&[m.flatten_all()?, v.flatten_all()?], 0)?;
            let decayed = match kind {
                OptimizerKind::Adamw if weight_decay != 0.0 => {
                    (&theta * (1.0 - lr * weight_decay))?
                }
                _ => theta.clone(),
            };
            if self.track_direction {
                // θ_t = θ_{t−1} − lr·d with d = update / (1 − β₁ᵗ) (+ wd·θ_{t−1} for AdamW);
                // computed before the update, since `theta` shares the parameter's storage.
                let direction = (&update / (1.0 - b1.powi(t)))?;
                slot.direction = Some(match kind {
                    OptimizerKind::Adamw => (direction + (&theta * weight_decay)?)?,
                    OptimizerKind::Adam => direction,
                });
            }
            slot.var.set(&(decayed - (&update * step_size)?)?)?;
        }
        let Some(sums) = sums else {
            return Ok(None);
        };
        let [dot, gg, dd] = sums.map(|s| {
            s.to_dtype(candle_core::DType::F64)
                .and_then(|s| s.to_scalar::<f64>())
        });
        let (dot, norms) = (dot?, (gg? * dd?).sqrt());
        Ok(Some(Agreement {
            dot,
            cos: dot / norms,
        }))
    }

    /// The moments (and directions) by name, `m.NAME`, `v.NAME`, `d.NAME`, on the CPU.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut state = Vec::with_capacity(3 * self.slots.len());
        for slot in &self.slots {
            for (row, key) in ["m", "v"].into_iter().enumerate() {
                let moment = slot.moments.get(row)?.reshape(slot.var.shape())?;
                state.push((
                    format!("{key}.{}", slot.name),
                    moment.to_device(&Device::Cpu)?,
                ));
            }
            if let Some(d) = &slot.direction {
                state.push((format!("d.{}", slot.name), d.to_device(&Device::Cpu)?));
            }
        }
        Ok(state)
    }

    /// Restores moments, directions and the step count saved by [`Self::state`].
    pub fn restore(&mut self, mut state: HashMap<String, Tensor>, steps: u64) -> Result<()> {
        for slot in &mut self.slots {
            let device = slot.var.device().clone();
            let direction = format!("d.{}", slot.name);
            let has_direction = state.contains_key(&direction);
            let mut take = |key: String| -> Result<Tensor> {
                let t = state.remove(&key).ok_or_else(|| TrainError::Checkpoint {
                    message: format!("the optimizer state has no `{key}`"),
                })?;
                if t.dims() != slot.var.dims() {
                    return Err(TrainError::Checkpoint {
                        message: format!(
                            "`{key}` has shape {:?}, the parameter {:?}",
                            t.dims(),
                            slot.var.dims()
                        ),
                    });
                }
                Ok(t.to_device(&device)?)
            };
            let m = take(format!("m.{}", slot.name))?.flatten_all()?;
            let v = take(format!("v.{}", slot.name))?.flatten_all()?;
            slot.moments = Tensor::stack(&[m, v], 0)?;
            slot.direction = if has_direction {
                Some(take(direction)?)
            } else {
                None
            };
        }
        self.steps = steps;
        Ok(())
    }
}
