//! Hypergradient descent on the learning rate (Baydin et al., ICLR 2018).

use crate::error::{ConfigError, lr_bounds, non_negative, only_clock, positive};
use crate::observation::{Interval, Observation, Signal, Signals};
use crate::scheduler::Scheduler;
use serde::{Deserialize, Serialize};

serde_defaults! {
    beta: f64 = 1e-7;
}

/// Configuration of [`Hypergradient`] (`kind = "hypergradient"`).
///
/// Baydin et al., "Online Learning Rate Adaptation with Hypergradient Descent" (ICLR 2018),
/// descend on the learning rate itself: the derivative of the loss at step `t` with respect to
/// the rate used at step `t − 1` is `−⟨g_t, d_{t−1}⟩`, where `d_{t−1}` is the direction the
/// optimizer stepped along (`θ_t = θ_{t−1} − η·d_{t−1}`: the gradient for SGD, `m̂/(√v̂+ε)` for
/// Adam). One gradient step on the rate gives, after every optimizer step,
///
/// ```text
/// η_t = clamp(η_{t−1} + β · ⟨g_t, d_{t−1}⟩,  min_lr,  max_lr)
/// ```
///
/// The rate grows while consecutive steps agree and shrinks when they oppose (overshooting).
/// The trainer supplies the dot product as [`StepEnd::grad_dot`](crate::StepEnd::grad_dot);
/// a step without it (the first one) or with a non-finite one leaves the rate unchanged. The
/// paper uses β = 1e-7 with Adam and 1e-3 with SGD; the dot product grows with the number of
/// parameters, so β needs tuning per model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HypergradientConfig {
    /// The hypergradient learning rate β; > 0. Default 1e-7 (the paper's value for Adam).
    #[serde(default = "beta")]
    pub beta: f64,
    /// Lower bound of the rate; ≥ 0. Default 0.
    #[serde(default)]
    pub min_lr: f64,
    /// Upper bound of the rate; > 0.
    pub max_lr: f64,
    /// Clock; only `step` is possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

lengths!(HypergradientConfig, clock = |_| Interval::Step, []);

/// Hypergradient descent; see [`HypergradientConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hypergradient {
    config: HypergradientConfig,
    lr: f64,
}

impl Hypergradient {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`, clamped
    /// to the bounds.
    pub fn new(config: HypergradientConfig, base_lr: f64) -> Result<Self, ConfigError> {
        positive("beta", config.beta)?;
        non_negative("min_lr", config.min_lr)?;
        positive("max_lr", config.max_lr)?;
        lr_bounds(config.min_lr, config.max_lr)?;
        only_clock(
            config.interval,
            Interval::Step,
            "the gradient dot product exists per optimizer step only",
        )?;
        Ok(Hypergradient {
            lr: base_lr.clamp(config.min_lr, config.max_lr),
            config,
        })
    }
}

impl Scheduler for Hypergradient {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn interval(&self) -> Interval {
        Interval::Step
    }

    fn needs(&self) -> Signals {
        Signals::of(Signal::GradDot)
    }

    fn observe(&mut self, observation: &Observation) -> f64 {
        if let Observation::Step(step) = observation {
            if let Some(dot) = step.grad_dot.filter(|d| d.is_finite()) {
                let moved = self.lr + self.config.beta * dot;
                self.lr = moved.clamp(self.config.min_lr, self.config.max_lr);
            }
        }
        self.lr
    }
}
