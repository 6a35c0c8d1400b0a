//! The [`Scheduler`] trait every schedule implements, and the [`ScheduleConfig`] trait of the
//! configurations that build them.

use crate::error::ConfigError;
use crate::length::Span;
use crate::observation::{Interval, Observation, Signals};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

/// Maps what a training loop observes to the learning rate of its next optimizer step.
///
/// A trainer reads [`lr`](Scheduler::lr) before each optimizer step and reports every event —
/// each finished step and each finished epoch — through [`observe`](Scheduler::observe). A
/// scheduler moves only on the events of its [`interval`](Scheduler::interval) and ignores the
/// rest, so a trainer never needs to know which kind of scheduler it drives.
///
/// The two-call protocol mirrors PyTorch: `lr()` before the step is the optimizer's
/// `param_group["lr"]`, and `observe` is `scheduler.step()` (with the metric, for
/// metric-driven schedules).
pub trait Scheduler {
    /// The learning rate for the next optimizer step.
    fn lr(&self) -> f64;

    /// The finest clock on which the learning rate can change.
    fn interval(&self) -> Interval;

    /// The signals this scheduler reads; observations must carry each of them.
    fn needs(&self) -> Signals {
        Signals::NONE
    }

    /// Reports an event and returns the learning rate for the next optimizer step.
    ///
    /// # Panics
    /// When the event lacks a signal listed by [`needs`](Scheduler::needs).
    fn observe(&mut self, observation: &Observation) -> f64;
}

/// A schedule driven by time alone: one tick per event of its clock, nothing else read.
///
/// Implement it for a schedule of your own and [`Scheduler`] comes with it. The standard
/// schedules (constant, step, cosine, …) are written this way.
pub trait Ticking {
    /// The clock the schedule ticks on, with the rate it gives now.
    fn clock(&self) -> &Clock;

    /// Advances one tick.
    fn tick(&mut self);
}

/// What every time-driven schedule keeps: the interval it ticks on and its current rate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    /// When the schedule ticks.
    pub interval: Interval,
    /// The learning rate for the next optimizer step.
    pub lr: f64,
}

impl<T: Ticking> Scheduler for T {
    fn lr(&self) -> f64 {
        self.clock().lr
    }

    fn interval(&self) -> Interval {
        self.clock().interval
    }

    fn observe(&mut self, observation: &Observation) -> f64 {
        if observation.interval() == self.clock().interval {
            self.tick();
        }
        self.clock().lr
    }
}

/// A schedule's configuration: everything registering a schedule takes besides its one line in
/// the registry (see [`SchedulerConfig`](crate::SchedulerConfig)).
///
/// Implement it next to the schedule, in the schedule's own file. `clock` and `resolve` say how
/// the configuration's lengths count; `bounds` is the schedule's contract on its rate and
/// `examples` the configurations that exercise it: the crate's conformance tests run every
/// registered schedule's examples against random training signals and hold each to its bounds,
/// and the benchmarks time them.
pub trait ScheduleConfig: Clone + Debug + PartialEq + Serialize + DeserializeOwned {
    /// The schedule this configuration builds.
    type Scheduler: Scheduler + Clone + Debug + PartialEq + Serialize + DeserializeOwned;

    /// The clock the schedule ticks on (for a composite schedule, the finest of its parts'):
    /// the one the built schedule's [`Scheduler::interval`] reports.
    fn clock(&self) -> Interval;

    /// The same configuration with every [`Length`](crate::Length) in ticks, for a schedule
    /// that runs over `span`.
    fn resolve(&self, span: Span) -> Result<Self, ConfigError>;

    /// Checks the configuration and builds the schedule for an optimizer whose initial learning
    /// rate is `base_lr`; every length must be a number of ticks.
    fn build(self, base_lr: f64) -> Result<Self::Scheduler, ConfigError>;

    /// The rates the built schedule may give, whatever it observes, for an initial rate
    /// `base_lr`.
    fn bounds(&self, base_lr: f64) -> RateBounds;

    /// A few configurations, together reaching every branch of the schedule (each must build
    /// with lengths in ticks and run at any base rate in [1e-4, 1]).
    fn examples() -> Vec<Self>;
}

/// The closed range of learning rates a schedule keeps to: its contract, checked by the
/// conformance tests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateBounds {
    /// The lowest rate it may give.
    pub low: f64,
    /// The highest rate it may give.
    pub high: f64,
}

impl RateBounds {
    /// From `low` to `high`.
    pub fn new(low: f64, high: f64) -> RateBounds {
        RateBounds { low, high }
    }

    /// From 0 to `high`: a schedule that only decays from its base rate, or that may fall to 0.
    pub fn up_to(high: f64) -> RateBounds {
        RateBounds { low: 0.0, high }
    }

    /// The smallest range holding both.
    pub fn union(self, other: RateBounds) -> RateBounds {
        RateBounds {
            low: self.low.min(other.low),
            high: self.high.max(other.high),
        }
    }

    /// Whether `lr` lies in the range, allowing either end a relative 1e-12 of rounding (a
    /// recursion such as PyTorch's may land an ulp past the end it aims at).
    pub fn contains(self, lr: f64) -> bool {
        lr >= self.low * (1.0 - 1e-12) && lr <= self.high * (1.0 + 1e-12)
    }
}
