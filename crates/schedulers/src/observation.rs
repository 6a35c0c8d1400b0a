//! What a training loop tells a scheduler: the events it reports and the signals they carry.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The clock a scheduler moves on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    /// After every optimizer step.
    Step,
    /// After every epoch (once validation has run).
    Epoch,
}

impl Interval {
    /// The finer of two clocks: a schedule with a part that moves per step moves per step.
    pub(crate) fn finer(self, other: Interval) -> Interval {
        if self == Interval::Step || other == Interval::Step {
            Interval::Step
        } else {
            Interval::Epoch
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Interval::Step => "step",
            Interval::Epoch => "epoch",
        })
    }
}

/// Reported after every optimizer step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepEnd {
    /// Optimizer steps completed so far, this one included (1 after the first step).
    pub step: u64,
    /// The 1-based epoch this step belongs to.
    pub epoch: u64,
    /// The loss of the step's batch, if the trainer reports it.
    pub loss: Option<f64>,
    /// ⟨g_t, d_{t−1}⟩: the dot product of this step's gradient with the previous step's descent
    /// direction `d` (the vector the optimizer subtracted, `θ ← θ − lr·d`; for SGD `d = g`).
    /// Positive when consecutive steps agree. `None` on the first step or when not computed.
    pub grad_dot: Option<f64>,
    /// cos(g_t, d_{t−1}) = ⟨g_t, d_{t−1}⟩ / (‖g_t‖ ‖d_{t−1}‖), in [−1, 1]: their agreement
    /// whatever the gradients' scale. `None` on the first step or when not computed.
    pub grad_cos: Option<f64>,
}

/// Reported at the end of every epoch, after validation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochEnd {
    /// The 1-based epoch just finished.
    pub epoch: u64,
    /// Optimizer steps completed so far.
    pub step: u64,
    /// Mean training loss over the epoch.
    pub train_loss: Option<f64>,
    /// Training accuracy over the epoch, in [0, 1].
    pub train_acc: Option<f64>,
    /// Validation loss at the end of the epoch.
    pub val_loss: Option<f64>,
    /// Validation accuracy at the end of the epoch, in [0, 1].
    pub val_acc: Option<f64>,
}

/// One event of a training loop, as a scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Observation {
    /// An optimizer step finished.
    Step(StepEnd),
    /// An epoch finished.
    Epoch(EpochEnd),
}

impl Observation {
    /// The clock this event ticks.
    pub fn interval(&self) -> Interval {
        match self {
            Observation::Step(_) => Interval::Step,
            Observation::Epoch(_) => Interval::Epoch,
        }
    }

    /// The value of `signal` carried by this event, if it carries it.
    pub fn get(&self, signal: Signal) -> Option<f64> {
        match (self, signal) {
            (Observation::Step(s), Signal::BatchLoss) => s.loss,
            (Observation::Step(s), Signal::GradDot) => s.grad_dot,
            (Observation::Step(s), Signal::GradCos) => s.grad_cos,
            (Observation::Epoch(e), Signal::TrainLoss) => e.train_loss,
            (Observation::Epoch(e), Signal::TrainAcc) => e.train_acc,
            (Observation::Epoch(e), Signal::ValLoss) => e.val_loss,
            (Observation::Epoch(e), Signal::ValAcc) => e.val_acc,
            _ => None,
        }
    }

    /// The value of `signal`, which the scheduler named `who` declared in its
    /// [`needs`](crate::Scheduler::needs).
    ///
    /// # Panics
    /// When the event lacks it: a trainer must supply every signal a scheduler needs.
    pub(crate) fn expect(&self, signal: Signal, who: &str) -> f64 {
        match self.get(signal) {
            Some(value) => value,
            None => panic!(
                "{who} needs `{signal}` at every {} end, but the observation has none; \
                 supply every signal listed by `Scheduler::needs`",
                signal.interval()
            ),
        }
    }
}

/// A quantity a scheduler may read from observations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// [`StepEnd::loss`].
    BatchLoss,
    /// [`StepEnd::grad_dot`].
    GradDot,
    /// [`StepEnd::grad_cos`].
    GradCos,
    /// [`EpochEnd::train_loss`].
    TrainLoss,
    /// [`EpochEnd::train_acc`].
    TrainAcc,
    /// [`EpochEnd::val_loss`].
    ValLoss,
    /// [`EpochEnd::val_acc`].
    ValAcc,
}

impl Signal {
    /// Every signal, in declaration order.
    pub const ALL: [Signal; 7] = [
        Signal::BatchLoss,
        Signal::GradDot,
        Signal::GradCos,
        Signal::TrainLoss,
        Signal::TrainAcc,
        Signal::ValLoss,
        Signal::ValAcc,
    ];

    /// The name used in configuration files and metric CSV headers.
    pub fn name(self) -> &'static str {
        match self {
            Signal::BatchLoss => "batch_loss",
            Signal::GradDot => "grad_dot",
            Signal::GradCos => "grad_cos",
            Signal::TrainLoss => "train_loss",
            Signal::TrainAcc => "train_acc",
            Signal::ValLoss => "val_loss",
            Signal::ValAcc => "val_acc",
        }
    }

    /// The event that carries this signal.
    pub fn interval(self) -> Interval {
        match self {
            Signal::BatchLoss | Signal::GradDot | Signal::GradCos => Interval::Step,
            _ => Interval::Epoch,
        }
    }

    /// Whether larger values are better (accuracies) rather than smaller (losses).
    pub fn higher_is_better(self) -> bool {
        matches!(self, Signal::TrainAcc | Signal::ValAcc)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Signal`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Signals(u8);

impl Signals {
    /// The empty set.
    pub const NONE: Signals = Signals(0);

    /// The set holding only `signal`.
    pub fn of(signal: Signal) -> Signals {
        Signals(signal.bit())
    }

    /// Both sets together.
    pub fn union(self, other: Signals) -> Signals {
        Signals(self.0 | other.0)
    }

    /// Whether `signal` is in the set.
    pub fn contains(self, signal: Signal) -> bool {
        self.0 & signal.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The signals in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Signal> {
        Signal::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Signal> for Signals {
    fn from_iter<I: IntoIterator<Item = Signal>>(iter: I) -> Self {
        iter.into_iter()
            .fold(Signals::NONE, |set, s| set.union(Signals::of(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_set_operations() {
        let set: Signals = [Signal::ValLoss, Signal::GradDot].into_iter().collect();
        assert!(set.contains(Signal::ValLoss) && set.contains(Signal::GradDot));
        assert!(!set.contains(Signal::TrainLoss));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [Signal::GradDot, Signal::ValLoss]
        );
        assert!(Signals::NONE.is_empty() && !set.is_empty());
    }

    #[test]
    fn observation_carries_only_its_own_signals() {
        let step = Observation::Step(StepEnd {
            loss: Some(0.5),
            ..Default::default()
        });
        assert_eq!(step.get(Signal::BatchLoss), Some(0.5));
        assert_eq!(step.get(Signal::ValLoss), None);
        assert_eq!(step.interval(), Interval::Step);
    }

    #[test]
    #[should_panic(expected = "plateau needs `val_loss` at every epoch end")]
    fn missing_signal_panics_with_its_name() {
        Observation::Epoch(EpochEnd::default()).expect(Signal::ValLoss, "plateau");
    }
}
