//! Adam and AdamW with PyTorch's update, state that checkpoints, and the hypergradient signal.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use lrlab_runs::{OptimizerConfig, OptimizerKind};

use crate::error::{Result, TrainError};
use lrlab_kernels::{AdamUpdate, Param, Tracked, adam_update};

/// How a step's gradient `g_t` agrees with the previous step's direction `d_{t−1}`, over all
/// parameters: what hypergradient schedules read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Agreement {
    /// ⟨g_t, d_{t−1}⟩.
    pub dot: f64,
    /// ⟨g_t, d_{t−1}⟩ / (‖g_t‖ ‖d_{t−1}‖): NaN when either is zero.
    pub cos: f64,
}

/// A parameter by name.
struct Slot {
    name: String,
    var: Var,
}

/// Adam or AdamW over named parameters, computed as PyTorch's single-tensor implementation
/// (`step_size = lr / (1 − β₁ᵗ)`, `denom = √v / √(1 − β₂ᵗ) + ε`).
pub struct Adam {
    config: OptimizerConfig,
    slots: Vec<Slot>,
    /// Every parameter's first and second moments, flattened and laid end to end in the
    /// parameters' order, as the rows of one `(2, total)` tensor updated in place.
    moments: Tensor,
    /// The last update's direction, flattened over the parameters likewise (when tracked).
    direction: Option<Tensor>,
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
        let slots: Vec<Slot> = parameters
            .iter()
            .map(|(name, var)| Slot {
                name: name.clone(),
                var: var.clone(),
            })
            .collect();
        let total = slots.iter().map(|s| s.var.elem_count()).sum::<usize>();
        let (dtype, device) = match parameters.first() {
            Some((_, var)) => (var.dtype(), var.device().clone()),
            None => (DType::F32, Device::Cpu),
        };
        Ok(Self {
            config,
            slots,
            moments: Tensor::zeros((2, total), dtype, &device)?,
            direction: None,
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
        let group: Vec<Param> = self
            .slots
            .iter()
            .map(|slot| Param {
                theta: &slot.var,
                grad: grads.get(slot.var.as_tensor()),
            })
            .collect();
        let tracked = adam_update(&group, &self.moments, &update, self.track_direction)?;

        let Some(Tracked {
            gradient,
            direction,
        }) = tracked
        else {
            return Ok(None);
        };
        let previous = self.direction.replace(direction);
        let Some(previous) = previous else {
            return Ok(None);
        };
        let sums = [
            (&gradient * &previous)?.sum_all()?,
            gradient.sqr()?.sum_all()?,
            previous.sqr()?.sum_all()?,
        ];
        let [dot, gg, dd] = sums.map(|s| s.to_dtype(DType::F64).and_then(|s| s.to_scalar::<f64>()));
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
        let mut offset = 0;
        for slot in &self.slots {
            let n = slot.var.elem_count();
            // Only the parameter's elements: `copy` and `to_device` take the whole storage a
            // view reads from (the flat buffer), and a cast round trip through f64 is exact.
            let piece = |flat: &Tensor| -> Result<Tensor> {
                let values = flat.narrow(0, offset, n)?.reshape(slot.var.shape())?;
                let own = values.to_dtype(DType::F64)?.to_dtype(values.dtype())?;
                Ok(own.to_device(&Device::Cpu)?)
            };
            for (row, key) in ["m", "v"].into_iter().enumerate() {
                let moment = piece(&self.moments.get(row)?)?;
                state.push((format!("{key}.{}", slot.name), moment));
            }
            if let Some(d) = &self.direction {
                state.push((format!("d.{}", slot.name), piece(d)?));
            }
            offset += n;
        }
        Ok(state)
    }

    /// Restores moments, directions and the step count saved by [`Self::state`].
    pub fn restore(&mut self, mut state: HashMap<String, Tensor>, steps: u64) -> Result<()> {
        let (mut m, mut v, mut d) = (Vec::new(), Vec::new(), Vec::new());
        for slot in &self.slots {
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
                Ok(t.to_device(&device)?.flatten_all()?)
            };
            m.push(take(format!("m.{}", slot.name))?);
            v.push(take(format!("v.{}", slot.name))?);
            if has_direction {
                d.push(take(direction)?);
            }
        }
        if !d.is_empty() && d.len() != self.slots.len() {
            return Err(TrainError::Checkpoint {
                message: format!(
                    "the optimizer state has directions for {} of {} parameters: all or none",
                    d.len(),
                    self.slots.len()
                ),
            });
        }
        if !self.slots.is_empty() {
            let moments = Tensor::stack(&[Tensor::cat(&m, 0)?, Tensor::cat(&v, 0)?], 0)?;
            self.moments = moments.contiguous()?;
        }
        self.direction = match d.is_empty() {
            true => None,
            false => Some(Tensor::cat(&d, 0)?),
        };
        self.steps = steps;
        Ok(())
    }
}
