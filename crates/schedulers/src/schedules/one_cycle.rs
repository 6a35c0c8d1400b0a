//! The one-cycle policy (PyTorch's `OneCycleLR`, Smith & Topin 2017).

use crate::error::{ConfigError, at_least_one, ensure, in_range, positive};
use crate::length::Length;
use crate::observation::Interval;
use crate::scheduler::{Clock, RateBounds, ScheduleConfig, Ticking};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// How a phase of the cycle moves between its two rates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anneal {
    /// Half a cosine: `end + (start − end)/2 · (1 + cos(π·pct))`.
    #[default]
    Cos,
    /// A straight line: `start + (end − start)·pct`.
    Linear,
}

impl Anneal {
    fn between(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            Anneal::Cos => end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0),
            Anneal::Linear => (end - start) * pct + start,
        }
    }
}

serde_defaults! {
    pct_start: f64 = 0.3;
    div_factor: f64 = 25.0;
    final_div_factor: f64 = 1e4;
}

/// Configuration of [`OneCycle`] (`kind = "one_cycle"`), PyTorch's `OneCycleLR`.
///
/// The rate starts at `initial = max_lr / div_factor`, rises to `max_lr` over the first
/// `pct_start · total_steps − 1` ticks, then anneals to `min = initial / final_div_factor` at
/// tick `total_steps − 1`. With `three_phase`, it first comes back down to `initial` (symmetric
/// to the rise) and anneals to `min` in a third phase. Within a phase running from tick `a` to
/// tick `b` between rates `s` and `e`, with `pct = (t − a) / (b − a)`:
///
/// ```text
/// cos:    η_t = e + (s − e) / 2 · (1 + cos(π · pct))
/// linear: η_t = s + (e − s) · pct
/// ```
///
/// The base learning rate of the optimizer is ignored, as in PyTorch. Momentum is not cycled:
/// this crate schedules learning rates only.
///
/// The cycle's last rate, `min`, is the one of tick `total_steps − 1` — the last step of a run
/// of `total_steps` steps. From then on the rate stays at `min`. (PyTorch extrapolates the
/// last phase one tick further, to a rate no step uses — below `min`, even negative with
/// `linear` — and raises an error beyond.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneCycleConfig {
    /// The peak rate; > 0.
    pub max_lr: f64,
    /// Ticks in the cycle (a [`Length`]: `"steps"` for the whole run); ≥ 1.
    pub total_steps: Length,
    /// Fraction of the cycle spent rising; in [0, 1]. Default 0.3.
    #[serde(default = "pct_start")]
    pub pct_start: f64,
    /// `cos` or `linear`. Default `cos`.
    #[serde(default)]
    pub anneal_strategy: Anneal,
    /// `initial = max_lr / div_factor`; > 0. Default 25.
    #[serde(default = "div_factor")]
    pub div_factor: f64,
    /// `min = initial / final_div_factor`; > 0. Default 1e4.
    #[serde(default = "final_div_factor")]
    pub final_div_factor: f64,
    /// Come back to `initial` before the final annealing. Default false.
    #[serde(default)]
    pub three_phase: bool,
    /// Clock override; default `step`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

/// One phase of the cycle: it ends at tick `end` (inclusive) and runs from `from` to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Phase {
    end: f64,
    from: f64,
    to: f64,
}

/// The one-cycle policy; see [`OneCycleConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OneCycle {
    total_steps: u64,
    anneal_strategy: Anneal,
    clock: Clock,
    phases: Vec<Phase>,
    ticks: u64,
}

impl ScheduleConfig for OneCycleConfig {
    type Scheduler = OneCycle;

    lengths!(
        clock = |c| c.interval.unwrap_or(Interval::Step),
        [total_steps >= 1]
    );

    /// The rates come from `max_lr`, not from the optimizer's base rate.
    fn build(self, _base_lr: f64) -> Result<OneCycle, ConfigError> {
        OneCycle::new(self)
    }

    fn bounds(&self, _base_lr: f64) -> RateBounds {
        RateBounds::up_to(self.max_lr)
    }

    fn examples() -> Vec<Self> {
        let cycle = OneCycleConfig {
            max_lr: 0.01,
            total_steps: Length::Ticks(40),
            pct_start: pct_start(),
            anneal_strategy: Anneal::Cos,
            div_factor: div_factor(),
            final_div_factor: final_div_factor(),
            three_phase: false,
            interval: None,
        };
        vec![
            cycle.clone(),
            OneCycleConfig {
                total_steps: Length::Ticks(9),
                anneal_strategy: Anneal::Linear,
                three_phase: true,
                ..cycle
            },
        ]
    }
}

impl OneCycle {
    /// Builds the schedule; the optimizer's base learning rate plays no part.
    pub fn new(config: OneCycleConfig) -> Result<Self, ConfigError> {
        positive("max_lr", config.max_lr)?;
        let total_steps = config.total_steps.ticks("total_steps")?;
        at_least_one("total_steps", total_steps)?;
        in_range("pct_start", config.pct_start, 0.0, 1.0, false)?;
        positive("div_factor", config.div_factor)?;
        positive("final_div_factor", config.final_div_factor)?;
        let initial = config.max_lr / config.div_factor;
        let min = initial / config.final_div_factor;
        let (total, pct) = (total_steps as f64, config.pct_start);
        let rise_end = pct * total - 1.0;
        let phases = if config.three_phase {
            vec![
                Phase {
                    end: rise_end,
                    from: initial,
                    to: config.max_lr,
                },
                Phase {
                    end: 2.0 * pct * total - 2.0,
                    from: config.max_lr,
                    to: initial,
                },
                Phase {
                    end: total - 1.0,
                    from: initial,
                    to: min,
                },
            ]
        } else {
            vec![
                Phase {
                    end: rise_end,
                    from: initial,
                    to: config.max_lr,
                },
                Phase {
                    end: total - 1.0,
                    from: config.max_lr,
                    to: min,
                },
            ]
        };
        let mut start = 0.0;
        for phase in &phases {
            ensure(phase.end != start, "pct_start", || {
                format!(
                    "pct_start × total_steps = {} leaves a phase of the cycle without steps \
                     (PyTorch divides by zero there); choose another pct_start",
                    pct * total
                )
            })?;
            start = phase.end;
        }
        let mut schedule = OneCycle {
            total_steps,
            anneal_strategy: config.anneal_strategy,
            phases,
            ticks: 0,
            clock: Clock {
                interval: config.clock(),
                lr: initial,
            },
        };
        schedule.clock.lr = schedule.at(0);
        Ok(schedule)
    }

    /// The rate after `t` ticks (PyTorch's `get_lr` with `step_num = t`), held after the last
    /// step of the cycle.
    fn at(&self, t: u64) -> f64 {
        let t = t.min(self.total_steps - 1) as f64;
        let mut start = 0.0;
        let last = self.phases.len() - 1;
        for (i, phase) in self.phases.iter().enumerate() {
            if t <= phase.end || i == last {
                let pct = (t - start) / (phase.end - start);
                return self.anneal_strategy.between(phase.from, phase.to, pct);
            }
            start = phase.end;
        }
        unreachable!("the last phase always matches")
    }
}

impl Ticking for OneCycle {
    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn tick(&mut self) {
        self.ticks += 1;
        self.clock.lr = self.at(self.ticks);
    }
}
