//! Schedules one after another at milestones (PyTorch's `SequentialLR`).

use crate::error::{ConfigError, ensure};
use crate::length::{Length, Span};
use crate::observation::{Interval, Observation, Signals};
use crate::schedules::{
    AnyScheduler, CosineConfig, LinearConfig, PlateauConfig, SchedulerConfig, StepConfig,
};
use crate::scheduler::{RateBounds, ScheduleConfig, Scheduler};
use crate::schedules::step::{milestone_ticks, resolve_milestones};
use serde::{Deserialize, Serialize};

/// Configuration of [`Sequential`] (`kind = "sequential"`), PyTorch's `SequentialLR`.
///
/// `schedulers[0]` runs until tick `milestones[0]`, `schedulers[1]` until `milestones[1]`, and
/// so on. At its milestone a schedule starts fresh, at its own initial rate, and takes its
/// first tick at the tick after the milestone — as in PyTorch. Unlike PyTorch, metric-driven
/// schedules may take part.
///
/// Milestones count ticks of `interval`. When `interval` is not given, all schedules must run
/// on the same clock, which the sequence then uses. Milestones may be relative to the run
/// ([`Length`]: `milestones = ["10%"]`), and the lengths of each schedule relative to the run
/// are shares of its own part of it, from its milestone to the next (or to the end).
///
/// ```toml
/// [scheduler]
/// kind = "sequential"
/// milestones = [5]
/// schedulers = [
///     { kind = "linear", start_factor = 0.1, total_iters = 5 },
///     { kind = "cosine", t_max = 45 },
/// ]
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequentialConfig {
    /// The schedules, in order; at least one.
    pub schedulers: Vec<SchedulerConfig>,
    /// Ticks at which the next schedule takes over ([`Length`]s); one fewer than
    /// `schedulers`, strictly increasing.
    pub milestones: Vec<Length>,
    /// The clock the milestones count; default: the schedules' common clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

impl SequentialConfig {
    /// The clock the milestones count: `interval`, else the schedules' common clock.
    fn milestone_clock(&self) -> Result<Interval, ConfigError> {
        if let Some(interval) = self.interval {
            return Ok(interval);
        }
        let mut clocks = self.schedulers.iter().map(SchedulerConfig::clock);
        let first = clocks.next().unwrap_or(Interval::Epoch);
        ensure(clocks.all(|c| c == first), "interval", || {
            "the schedules run on different clocks: say which one the milestones count \
             (`interval = \"step\"` or `\"epoch\"`)"
                .into()
        })?;
        Ok(first)
    }
}

impl ScheduleConfig for SequentialConfig {
    type Scheduler = Sequential;

    fn build(self, base_lr: f64) -> Result<Sequential, ConfigError> {
        Sequential::new(self, base_lr)
    }

    fn bounds(&self, base_lr: f64) -> RateBounds {
        let mut parts = self.schedulers.iter().map(|s| s.bounds(base_lr));
        let first = parts.next().unwrap_or(RateBounds::new(base_lr, base_lr));
        parts.fold(first, RateBounds::union)
    }

    fn examples() -> Vec<Self> {
        vec![
            SequentialConfig {
                schedulers: vec![
                    SchedulerConfig::Linear(LinearConfig {
                        start_factor: 0.2,
                        end_factor: 1.0,
                        total_iters: Length::Ticks(3),
                        interval: None,
                    }),
                    SchedulerConfig::Cosine(CosineConfig {
                        t_max: Length::Ticks(10),
                        eta_min: 0.0,
                        interval: None,
                    }),
                ],
                milestones: vec![Length::Ticks(3)],
                interval: None,
            },
            SequentialConfig {
                schedulers: vec![
                    SchedulerConfig::Step(StepConfig {
                        step_size: Length::Ticks(1),
                        gamma: 0.5,
                        interval: Some(Interval::Step),
                    }),
                    SchedulerConfig::Plateau(PlateauConfig {
                        patience: Length::Ticks(1),
                        ..Default::default()
                    }),
                ],
                milestones: vec![Length::Ticks(2)],
                interval: Some(Interval::Epoch),
            },
        ]
    }

    fn clock(&self) -> Interval {
        let milestones = self.interval.unwrap_or(Interval::Epoch);
        self.schedulers
            .iter()
            .fold(milestones, |clock, s| clock.finer(s.clock()))
    }

    fn resolve(&self, span: Span) -> Result<Self, ConfigError> {
        let clock = self.milestone_clock()?;
        let milestones = resolve_milestones(&self.milestones, span, clock)?;
        let ticks = milestone_ticks(&milestones)?;
        let schedulers = self
            .schedulers
            .iter()
            .enumerate()
            .map(|(i, schedule)| {
                let start = if i == 0 { 0 } else { ticks[i - 1] };
                let part = span.after(start, clock);
                let part = match ticks.get(i) {
                    Some(&end) => part.first(end - start, clock),
                    None => part,
                };
                schedule
                    .resolve(part)
                    .map_err(|e| e.within(&format!("schedulers[{i}]")))
            })
            .collect::<Result<_, _>>()?;
        Ok(SequentialConfig {
            schedulers,
            milestones,
            interval: self.interval,
        })
    }
}

/// Schedules in sequence; see [`SequentialConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sequential {
    milestones: Vec<u64>,
    interval: Interval,
    ticks: u64,
    active: usize,
    schedulers: Vec<AnyScheduler>,
}

impl Sequential {
    /// Builds the schedule for an optimizer whose initial learning rate is `base_lr`.
    pub fn new(config: SequentialConfig, base_lr: f64) -> Result<Self, ConfigError> {
        ensure(!config.schedulers.is_empty(), "schedulers", || {
            "must hold at least one schedule".into()
        })?;
        ensure(
            config.milestones.len() + 1 == config.schedulers.len(),
            "milestones",
            || {
                format!(
                    "must hold one fewer entry than `schedulers` ({}), got {}",
                    config.schedulers.len(),
                    config.milestones.len()
                )
            },
        )?;
        let milestones = milestone_ticks(&config.milestones)?;
        let interval = config.milestone_clock()?;
        let schedulers = config
            .schedulers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.build(base_lr)
                    .map_err(|e| e.within(&format!("schedulers[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Sequential {
            milestones,
            interval,
            ticks: 0,
            active: 0,
            schedulers,
        })
    }
}

impl Scheduler for Sequential {
    fn lr(&self) -> f64 {
        self.schedulers[self.active].lr()
    }

    fn interval(&self) -> Interval {
        self.schedulers
            .iter()
            .fold(self.interval, |clock, s| clock.finer(s.interval()))
    }

    fn needs(&self) -> Signals {
        self.schedulers
            .iter()
            .fold(Signals::NONE, |set, s| set.union(s.needs()))
    }

    fn observe(&mut self, observation: &Observation) -> f64 {
        if observation.interval() == self.interval {
            self.ticks += 1;
            if self.milestones.get(self.active) == Some(&self.ticks) {
                // The new schedule starts fresh at this tick, as PyTorch's `step(0)`.
                self.active += 1;
                return self.lr();
            }
        }
        self.schedulers[self.active].observe(observation)
    }
}
