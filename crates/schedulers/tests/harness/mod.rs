//! The properties every schedule must have, as checks over one configuration and one sequence of
//! observations: shared by the conformance tests (every registered schedule's examples) and the
//! property tests (random configurations of the shipped schedules). Each failure names its
//! property; proptest then shrinks the observations to a minimal sequence that breaks it.

use lrlab_schedulers::{
    AnyScheduler, EpochEnd, Observation, Scheduler, SchedulerConfig, Signal, StepEnd,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A base rate: mostly the study's, sometimes anything from 1e-4 to 1.
pub fn base_lr() -> impl Strategy<Value = f64> {
    prop_oneof![3 => Just(1e-3), 1 => 1e-4..=1.0f64]
}

/// A value of a training signal: mostly in `range`, sometimes NaN or ±∞.
fn wild(range: std::ops::Range<f64>) -> impl Strategy<Value = f64> {
    prop_oneof![
        30 => range,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
    ]
}

/// A training run's observations: a few steps, then an epoch's end, repeated; every signal
/// present, now and then NaN or infinite.
pub fn events() -> impl Strategy<Value = Vec<Observation>> {
    let step = (wild(0.0..3.0), wild(-5.0..5.0), wild(-1.0..1.0));
    let epoch = (
        wild(0.0..3.0),
        wild(0.0..1.0),
        wild(0.0..3.0),
        wild(0.0..1.0),
    );
    proptest::collection::vec((proptest::collection::vec(step, 1..5), epoch), 1..25).prop_map(
        |epochs| {
            let (mut step, mut out) = (0, Vec::new());
            for (e, (steps, (train_loss, train_acc, val_loss, val_acc))) in
                epochs.into_iter().enumerate()
            {
                let epoch = e as u64 + 1;
                for (loss, dot, cos) in steps {
                    step += 1;
                    out.push(Observation::Step(StepEnd {
                        step,
                        epoch,
                        loss: Some(loss),
                        grad_dot: Some(dot * 1e3),
                        grad_cos: Some(cos),
                    }));
                }
                out.push(Observation::Epoch(EpochEnd {
                    epoch,
                    step,
                    train_loss: Some(train_loss),
                    train_acc: Some(train_acc),
                    val_loss: Some(val_loss),
                    val_acc: Some(val_acc),
                }));
            }
            out
        },
    )
}

/// Builds the schedule; a configuration under test must build.
fn build(config: &SchedulerConfig, base_lr: f64) -> Result<AnyScheduler, TestCaseError> {
    config
        .build(base_lr)
        .map_err(|e| TestCaseError::fail(format!("`{}` does not build: {e}", config.kind())))
}

/// A failure of `property`.
fn broken(property: &str, detail: String) -> TestCaseError {
    TestCaseError::fail(format!("property `{property}` broken: {detail}"))
}

/// The rate is a finite number within the schedule's [`bounds`](SchedulerConfig::bounds)
/// before every event, and `observe` returns the rate that `lr` then gives.
pub fn rate_is_finite_and_within_bounds(
    config: &SchedulerConfig,
    base_lr: f64,
    events: &[Observation],
) -> Result<(), TestCaseError> {
    const PROPERTY: &str = "rate is finite and within bounds";
    let mut scheduler = build(config, base_lr)?;
    let bounds = config.bounds(base_lr);
    for (i, event) in events.iter().enumerate() {
        let lr = scheduler.lr();
        if !(lr.is_finite() && bounds.contains(lr)) {
            let detail = format!("after {i} observations the rate is {lr}, outside {bounds:?}");
            return Err(broken(PROPERTY, detail));
        }
        let returned = scheduler.observe(event);
        if returned.to_bits() != scheduler.lr().to_bits() {
            let detail = format!("observe returned {returned}, then lr() {}", scheduler.lr());
            return Err(broken(PROPERTY, detail));
        }
    }
    Ok(())
}

/// Saved after the first `at` events (serde, JSON) and restored, the schedule serializes the
/// same and continues bit for bit.
pub fn restores_and_continues_bit_for_bit(
    config: &SchedulerConfig,
    base_lr: f64,
    events: &[Observation],
    at: usize,
) -> Result<(), TestCaseError> {
    const PROPERTY: &str = "a save restores and continues bit for bit";
    let mut original = build(config, base_lr)?;
    for event in &events[..at] {
        original.observe(event);
    }
    let saved = serde_json::to_string(&original).unwrap();
    let mut restored: AnyScheduler = serde_json::from_str(&saved).map_err(|e| {
        broken(
            PROPERTY,
            format!("the saved state does not load: {e}\n{saved}"),
        )
    })?;
    for (i, event) in events[at..].iter().enumerate() {
        let (a, b) = (original.observe(event), restored.observe(event));
        if a.to_bits() != b.to_bits() {
            let detail = format!(
                "saved after {at} observations, restored gives {b} where the original gives \
                 {a}, {} observations later",
                i + 1
            );
            return Err(broken(PROPERTY, detail));
        }
    }
    let (a, b) = (
        serde_json::to_string(&original),
        serde_json::to_string(&restored),
    );
    if a.unwrap() != b.unwrap() {
        return Err(broken(PROPERTY, "the states differ at the end".into()));
    }
    Ok(())
}

/// Two schedules built alike and fed the same events give the same rates and end in the same
/// state: the rate is a function of what the schedule observed, nothing else.
pub fn is_a_function_of_its_observations(
    config: &SchedulerConfig,
    base_lr: f64,
    events: &[Observation],
) -> Result<(), TestCaseError> {
    const PROPERTY: &str = "the rate is a function of the observations";
    let (mut one, mut two) = (build(config, base_lr)?, build(config, base_lr)?);
    for (i, event) in events.iter().enumerate() {
        let (a, b) = (one.observe(event), two.observe(event));
        if a.to_bits() != b.to_bits() {
            let detail = format!("two copies give {a} and {b} after {} observations", i + 1);
            return Err(broken(PROPERTY, detail));
        }
    }
    // Debug, not `==`: a state holding NaN is not equal to itself.
    if format!("{one:?}") != format!("{two:?}") {
        return Err(broken(
            PROPERTY,
            "two copies end in different states".into(),
        ));
    }
    Ok(())
}

/// `event` without the signals outside `needs`.
fn only(event: &Observation, needs: lrlab_schedulers::Signals) -> Observation {
    let keep = |signal: Signal| event.get(signal).filter(|_| needs.contains(signal));
    match *event {
        Observation::Step(s) => Observation::Step(StepEnd {
            loss: keep(Signal::BatchLoss),
            grad_dot: keep(Signal::GradDot),
            grad_cos: keep(Signal::GradCos),
            ..s
        }),
        Observation::Epoch(e) => Observation::Epoch(EpochEnd {
            train_loss: keep(Signal::TrainLoss),
            train_acc: keep(Signal::TrainAcc),
            val_loss: keep(Signal::ValLoss),
            val_acc: keep(Signal::ValAcc),
            ..e
        }),
    }
}

/// Fed only the signals it declares in `needs`, the schedule gives the rates it gives when fed
/// every signal: it reads nothing else.
pub fn reads_only_what_it_needs(
    config: &SchedulerConfig,
    base_lr: f64,
    events: &[Observation],
) -> Result<(), TestCaseError> {
    const PROPERTY: &str = "reads only the signals of needs()";
    let (mut full, mut sparse) = (build(config, base_lr)?, build(config, base_lr)?);
    let needs = full.needs();
    for (i, event) in events.iter().enumerate() {
        let a = full.observe(event);
        let b = catch_unwind(AssertUnwindSafe(|| sparse.observe(&only(event, needs)))).map_err(
            |panic| {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                let detail = format!(
                    "needs() is {needs:?}, and observation {} without the other signals \
                     panics: {message}",
                    i + 1
                );
                broken(PROPERTY, detail)
            },
        )?;
        if a.to_bits() != b.to_bits() {
            let detail = format!(
                "needs() is {needs:?}, but without the other signals observation {} gives {b} \
                 instead of {a}",
                i + 1
            );
            return Err(broken(PROPERTY, detail));
        }
    }
    Ok(())
}
