//! Hypergradient descent on the learning rate (Baydin et al., ICLR 2018).

use crate::error::{ConfigError, ensure, lr_bounds, non_negative, only_clock, positive};
use crate::observation::{Interval, Observation, Signal, Signals};
use crate::rate::Rate;
use crate::scheduler::{RateBounds, ScheduleConfig, Scheduler};
use serde::{Deserialize, Serialize};

serde_defaults! {
    multiplicative: HypergradientRule = HypergradientRule::Multiplicative;
    beta: f64 = DEFAULT_BETA;
    zero: Rate = Rate::Absolute(0.0);
}

/// Default β of the multiplicative rule: the rate moves by at most 0.1 % a step — a factor of
/// e over a thousand steps that all agree (or all oppose) — whatever the model and the rate.
pub const DEFAULT_BETA: f64 = 1e-3;

/// How the rate follows the hypergradient.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HypergradientRule {
    /// `η_t = η_{t−1} · (1 + β · cos(g_t, d_{t−1}))`: scale-free, β ∈ (0, 1).
    #[default]
    Multiplicative,
    /// `η_t = η_{t−1} + β · ⟨g_t, d_{t−1}⟩`: β must match the scale of the dot product.
    Additive,
}

/// Configuration of [`Hypergradient`] (`kind = "hypergradient"`).
///
/// Baydin et al., "Online Learning Rate Adaptation with Hypergradient Descent" (ICLR 2018),
/// descend on the learning rate itself: the derivative of the loss at step `t` with respect to
/// the rate used at step `t − 1` is `−⟨g_t, d_{t−1}⟩`, where `d_{t−1}` is the direction the
/// optimizer stepped along (`θ_t = θ_{t−1} − η·d_{t−1}`: the gradient for SGD, `m̂/(√v̂+ε)` for
/// Adam). The rate grows while consecutive steps agree and shrinks when they oppose
/// (overshooting). After every optimizer step:
///
/// ```text
/// multiplicative (default):  η_t = clamp(η_{t−1} · (1 + β · cos(g_t, d_{t−1})),  min_lr,  max_lr)
/// additive:                  η_t = clamp(η_{t−1} + β · ⟨g_t, d_{t−1}⟩,           min_lr,  max_lr)
/// ```
///
/// The multiplicative rule is the paper's normalised form (its final version): the cosine
/// between the step's gradient and the previous direction does not grow with the number of
/// parameters or the gradients' scale, so one β serves every model and every base rate. The
/// additive rule needs β matched to the dot product's scale (the paper uses 1e-7 with Adam
/// and 1e-3 with SGD), which changes with the model's size. The trainer supplies
/// [`StepEnd::grad_cos`](crate::StepEnd::grad_cos) or
/// [`StepEnd::grad_dot`](crate::StepEnd::grad_dot); a step without it (the first one) or with
/// a non-finite one leaves the rate unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HypergradientConfig {
    /// `multiplicative` (default) or `additive`.
    #[serde(default = "multiplicative")]
    pub rule: HypergradientRule,
    /// The hypergradient learning rate β; > 0, and < 1 for the multiplicative rule. Default
    /// [`DEFAULT_BETA`], for the multiplicative rule.
    #[serde(default = "beta")]
    pub beta: f64,
    /// Lower bound of the rate (a [`Rate`]: `"0.01x"` is a hundredth of the base rate); ≥ 0.
    /// Default 0.
    #[serde(default = "zero")]
    pub min_lr: Rate,
    /// Upper bound of the rate (a [`Rate`], e.g. `"10x"`); > 0.
    pub max_lr: Rate,
    /// Clock; only `step` is possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

impl ScheduleConfig for HypergradientConfig {
    type Scheduler = Hypergradient;

    lengths!(clock = |_| Interval::Step, []);

    fn build(self, base_lr: f64) -> Result<Hypergradient, ConfigError> {
        Hypergradient::new(self, base_lr)
    }

    fn bounds(&self, base_lr: f64) -> RateBounds {
        RateBounds::new(self.min_lr.of(base_lr), self.max_lr.of(base_lr))
    }

    fn examples() -> Vec<Self> {
        vec![
            HypergradientConfig {
                rule: HypergradientRule::Multiplicative,
                beta: 0.05,
                min_lr: Rate::Times(0.01),
                max_lr: Rate::Times(10.0),
                interval: None,
            },
            HypergradientConfig {
                rule: HypergradientRule::Additive,
                beta: 1e-4,
                min_lr: Rate::Absolute(0.0),
                max_lr: Rate::Times(2.0),
                interval: None,
            },
        ]
    }
}

/// Hypergradient descent; see [`HypergradientConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hypergradient {
    rule: HypergradientRule,
    beta: f64,
    min_lr: f64,
    max_lr: f64,
    lr: f64,
}

impl Hypergradient {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`, clamped
    /// to the bounds.
    pub fn new(config: HypergradientConfig, base_lr: f64) -> Result<Self, ConfigError> {
        positive("beta", config.beta)?;
        ensure(
            config.rule == HypergradientRule::Additive || config.beta < 1.0,
            "beta",
            || {
                format!(
                    "the multiplicative rule scales the rate by 1 ± β: β must be < 1, got {}",
                    config.beta
                )
            },
        )?;
        let (min_lr, max_lr) = (config.min_lr.of(base_lr), config.max_lr.of(base_lr));
        non_negative("min_lr", min_lr)?;
        positive("max_lr", max_lr)?;
        lr_bounds(min_lr, max_lr)?;
        only_clock(
            config.interval,
            Interval::Step,
            "the gradients' agreement exists per optimizer step only",
        )?;
        Ok(Hypergradient {
            rule: config.rule,
            beta: config.beta,
            min_lr,
            max_lr,
            lr: base_lr.clamp(min_lr, max_lr),
        })
    }

    fn signal(&self) -> Signal {
        match self.rule {
            HypergradientRule::Multiplicative => Signal::GradCos,
            HypergradientRule::Additive => Signal::GradDot,
        }
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
        Signals::of(self.signal())
    }

    fn observe(&mut self, observation: &Observation) -> f64 {
        let agreement = match observation {
            Observation::Step(_) => observation.get(self.signal()),
            Observation::Epoch(_) => None,
        };
        if let Some(agreement) = agreement.filter(|a| a.is_finite()) {
            let moved = match self.rule {
                HypergradientRule::Multiplicative => {
                    self.lr * (1.0 + self.beta * agreement.clamp(-1.0, 1.0))
                }
                HypergradientRule::Additive => self.lr + self.beta * agreement,
            };
            self.lr = moved.clamp(self.min_lr, self.max_lr);
        }
        self.lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::StepEnd;

    fn step(cos: Option<f64>, dot: Option<f64>) -> Observation {
        Observation::Step(StepEnd {
            grad_cos: cos,
            grad_dot: dot,
            ..StepEnd::default()
        })
    }

    fn config(rule: HypergradientRule, beta: f64) -> HypergradientConfig {
        HypergradientConfig {
            rule,
            beta,
            min_lr: Rate::Times(0.01),
            max_lr: Rate::Times(10.0),
            interval: None,
        }
    }

    #[test]
    fn the_multiplicative_rule_moves_by_beta_times_the_cosine_whatever_the_scale() {
        let cosines = [
            None,
            Some(1.0),
            Some(-0.5),
            Some(0.25),
            Some(f64::NAN),
            Some(3.0),
        ];
        let rates = |base_lr: f64| {
            let mut s = Hypergradient::new(config(HypergradientRule::Multiplicative, 0.1), base_lr)
                .unwrap();
            assert_eq!(s.needs(), Signals::of(Signal::GradCos));
            cosines
                .iter()
                .map(|&c| s.observe(&step(c, Some(1e9))) / base_lr)
                .collect::<Vec<_>>()
        };
        let factors = [1.0, 1.1, 1.1 * 0.95, 1.1 * 0.95 * 1.025];
        let (at_1e3, at_3e5) = (rates(1e-3), rates(3e-5));
        for (i, expected) in factors.iter().enumerate() {
            assert!((at_1e3[i] - expected).abs() < 1e-12, "{at_1e3:?}");
        }
        // A non-finite cosine changes nothing; one beyond [−1, 1] counts as ±1.
        assert_eq!(at_1e3[4], at_1e3[3]);
        assert!((at_1e3[5] - at_1e3[4] * 1.1).abs() < 1e-12);
        for (a, b) in at_1e3.iter().zip(&at_3e5) {
            assert!(
                (a - b).abs() < 1e-12,
                "the same relative path at any base rate"
            );
        }
    }

    #[test]
    fn the_additive_rule_adds_beta_times_the_dot_product_within_the_bounds() {
        let mut s = Hypergradient::new(config(HypergradientRule::Additive, 1e-6), 1e-3).unwrap();
        assert_eq!(s.needs(), Signals::of(Signal::GradDot));
        assert!((s.observe(&step(Some(1.0), Some(500.0))) - 1.5e-3).abs() < 1e-15);
        assert_eq!(s.observe(&step(None, Some(1e9))), 1e-2, "clamped at 10x");
        assert_eq!(s.observe(&step(None, Some(-1e9))), 1e-5, "clamped at 0.01x");
    }

    #[test]
    fn a_multiplicative_beta_of_one_or_more_is_refused() {
        let err =
            Hypergradient::new(config(HypergradientRule::Multiplicative, 1.0), 1e-3).unwrap_err();
        assert_eq!(err.field, "beta");
        assert!(Hypergradient::new(config(HypergradientRule::Additive, 1.0), 1e-3).is_ok());
    }
}
