//! Adam and AdamW with PyTorch's update, state that checkpoints, and the hypergradient signal.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use lrlab_runs::{OptimizerConfig, OptimizerKind};

use crate::error::{Result, TrainError};
use lrlab_kernels::{AdamUpdate, Tracked, adam_update};

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
    /// The first and second moments, flattened, as the rows of a `(2, n)` tensor, updated in
    /// place.
    moments: Var,
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
                    moments: Var::zeros((2, var.elem_count()), var.dtype(), var.device())?,
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
        let update = AdamUpdate {
            decoupled: kind == OptimizerKind::Adamw,
            lr,
            weight_decay,
            betas: (b1, b2),
            eps,
            step: self.steps,
        };
        let mut sums: Option<[Tensor; 3]> = None;
        for slot in &mut self.slots {
            let Some(grad) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let tracked = adam_update(
                &slot.var,
                grad,
                &slot.moments,
                &update,
                self.track_direction,
            )?;
            if let Some(Tracked {
                gradient,
                direction,
            }) = tracked
            {
                if let Some(previous) = &slot.direction {
                    let terms = [
                        (&gradient * previous)?.sum_all()?,
                        gradient.sqr()?.sum_all()?,
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
                slot.direction = Some(direction);
            }
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

    /// The moments (and directions) by name, `m.NAME`, `v.NAME`, `d.NAME`, on the CPU: copies,
    /// which later steps (updating the moments in place) leave as they are.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut state = Vec::with_capacity(3 * self.slots.len());
        for slot in &self.slots {
            for (row, key) in ["m", "v"].into_iter().enumerate() {
                let moment = slot.moments.get(row)?.reshape(slot.var.shape())?;
                state.push((
                    format!("{key}.{}", slot.name),
                    moment.to_device(&Device::Cpu)?.copy()?,
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
            slot.moments = Var::from_tensor(&Tensor::stack(&[m, v], 0)?)?;
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
