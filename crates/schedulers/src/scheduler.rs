//! The [`Scheduler`] trait every schedule implements.

use crate::observation::{Interval, Observation, Signals};
use serde::{Deserialize, Serialize};

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
