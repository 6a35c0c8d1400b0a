//! The conformance tests: every registered schedule — shipped or new — run through the same
//! properties with no test written for it. The configurations are each schedule's own
//! [`examples`](lrlab_schedulers::ScheduleConfig::examples); the observations are random,
//! NaN and ±∞ included. A failure names the property and the schedule, and proptest shrinks the
//! observations to a minimal sequence that breaks it.
//!
//! The cost of a dry run (under a microsecond a step for every schedule) is measured by
//! `cargo bench -p lrlab-schedulers`, not asserted here: timings belong in benchmarks.

mod harness;

use harness::{base_lr, events};
use lrlab_schedulers::{Observation, SchedulerConfig, Span};
use proptest::prelude::*;

/// One registered schedule's example, by kind and position.
fn example() -> impl Strategy<Value = SchedulerConfig> {
    proptest::sample::select(SchedulerConfig::examples())
}

/// Observations, and a point among them.
fn events_and_cut() -> impl Strategy<Value = (Vec<Observation>, usize)> {
    events().prop_flat_map(|events| {
        let n = events.len();
        (Just(events), 0..=n)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn rate_is_finite_and_within_bounds(config in example(), lr in base_lr(), events in events()) {
        harness::rate_is_finite_and_within_bounds(&config, lr, &events)?;
    }

    #[test]
    fn a_save_restores_and_continues_bit_for_bit(
        config in example(), lr in base_lr(), (events, at) in events_and_cut(),
    ) {
        harness::restores_and_continues_bit_for_bit(&config, lr, &events, at)?;
    }

    #[test]
    fn the_rate_is_a_function_of_the_observations(
        config in example(), lr in base_lr(), events in events(),
    ) {
        harness::is_a_function_of_its_observations(&config, lr, &events)?;
    }

    #[test]
    fn reads_only_the_signals_of_needs(config in example(), lr in base_lr(), events in events()) {
        harness::reads_only_what_it_needs(&config, lr, &events)?;
    }
}

#[test]
fn every_kind_has_examples() {
    let examples = SchedulerConfig::examples();
    for kind in SchedulerConfig::KINDS {
        assert!(
            examples.iter().any(|e| e.kind() == *kind),
            "`{kind}` has no examples: its ScheduleConfig::examples() is empty"
        );
    }
}

#[test]
fn every_example_runs_a_50_epoch_plan() {
    let plan = Span::of_run(50, 100);
    for config in SchedulerConfig::examples() {
        let resolved = config.resolve(plan).unwrap();
        if let Err(err) = resolved.dry_run(1e-3, plan) {
            panic!("`{}` {config:?}: {err}", config.kind());
        }
    }
}
