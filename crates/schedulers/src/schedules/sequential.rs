//! Schedules one after another at milestones (PyTorch's `SequentialLR`).

use crate::error::{ConfigError, ensure};
use crate::observation::{Interval, Observation, Signals};
use crate::registry::{AnyScheduler, SchedulerConfig};
use crate::scheduler::Scheduler;
use crate::schedules::step::check_milestones;
use serde::{Deserialize, Serialize};

/// Configuration of [`Sequential`] (`kind = "sequential"`), PyTorch's `SequentialLR`.
///
/// `schedulers[0]` runs until tick `milestones[0]`, `schedulers[1]` until `milestones[1]`, and
/// so on. At its milestone a schedule starts fresh, at its own initial rate, and takes its
/// first tick at the tick after the milestone — as in PyTorch. Unlike PyTorch, metric-driven
/// schedules may take part.
///
/// Milestones count ticks of `interval`. When `interval` is not given, all schedules must run
/// on the same clock, which the sequence then uses.
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
    /// Ticks at which the next schedule takes over; one fewer than `schedulers`, strictly
    /// increasing.
    pub milestones: Vec<u64>,
    /// The clock the milestones count; default: the schedules' common clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
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
        check_milestones(&config.milestones)?;
        let schedulers = config
            .schedulers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.build(base_lr)
                    .map_err(|e| e.within(&format!("schedulers[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let interval = match config.interval {
            Some(interval) => interval,
            None => {
                let first = schedulers[0].interval();
                ensure(
                    schedulers.iter().all(|s| s.interval() == first),
                    "interval",
                    || {
                        "the schedules run on different clocks: say which one the milestones \
                     count (`interval = \"step\"` or `\"epoch\"`)"
                            .into()
                    },
                )?;
                first
            }
        };
        Ok(Sequential {
            milestones: config.milestones,
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
        if self
            .schedulers
            .iter()
            .any(|s| s.interval() == Interval::Step)
        {
            Interval::Step
        } else {
            self.interval
        }
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
