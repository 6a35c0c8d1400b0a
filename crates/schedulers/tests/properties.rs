//! Properties over random configurations of the shipped schedules and random training signals
//! (the conformance tests run every schedule's examples; these draw their parameters too): the
//! rate stays finite and within its bounds, and a scheduler saved and restored at any point
//! continues exactly; lengths relative to the run resolve to numbers of ticks once and for all,
//! and a configuration reports the clock its built schedule runs on.

#[allow(dead_code)] // the conformance tests use the rest
mod harness;

use harness::events;
use lrlab_schedulers::schedules::*;
use lrlab_schedulers::{Interval, Length, Rate, Scheduler, SchedulerConfig, Signal, Span};
use proptest::prelude::*;

const BASE_LR: f64 = 1e-3;

fn interval() -> impl Strategy<Value = Option<Interval>> {
    prop_oneof![
        Just(None),
        Just(Some(Interval::Step)),
        Just(Some(Interval::Epoch))
    ]
}

fn epoch_monitor() -> impl Strategy<Value = Signal> {
    prop_oneof![
        Just(Signal::ValLoss),
        Just(Signal::ValAcc),
        Just(Signal::TrainLoss),
        Just(Signal::TrainAcc),
        Just(Signal::BatchLoss),
    ]
}

fn threshold_mode() -> impl Strategy<Value = ThresholdMode> {
    prop_oneof![Just(ThresholdMode::Rel), Just(ThresholdMode::Abs)]
}

/// Schedules without children.
fn leaf() -> impl Strategy<Value = SchedulerConfig> {
    prop_oneof![
        (0.05..=1.0f64, 0..10u64, interval()).prop_map(|(factor, total_iters, interval)| {
            SchedulerConfig::Constant(ConstantConfig {
                factor,
                total_iters: total_iters.into(),
                interval,
            })
        }),
        (1..10u64, 0.01..=1.0f64, interval()).prop_map(|(step_size, gamma, interval)| {
            SchedulerConfig::Step(StepConfig {
                step_size: step_size.into(),
                gamma,
                interval,
            })
        }),
        (
            proptest::collection::btree_set(1..40u64, 0..5),
            0.01..=1.0f64,
            interval()
        )
            .prop_map(|(milestones, gamma, interval)| SchedulerConfig::MultiStep(
                MultiStepConfig {
                    milestones: milestones.into_iter().map(Length::from).collect(),
                    gamma,
                    interval
                }
            )),
        (0.5..=1.0f64, interval()).prop_map(|(gamma, interval)| {
            SchedulerConfig::Exponential(ExponentialConfig { gamma, interval })
        }),
        (1..60u64, 0.0..2e-3f64, interval()).prop_map(|(t_max, eta_min, interval)| {
            SchedulerConfig::Cosine(CosineConfig {
                t_max: t_max.into(),
                eta_min,
                interval,
            })
        }),
        (1..20u64, 1..4u64, 0.0..2e-3f64, interval()).prop_map(
            |(t_0, t_mult, eta_min, interval)| {
                SchedulerConfig::CosineWarmRestarts(CosineWarmRestartsConfig {
                    t_0: t_0.into(),
                    t_mult,
                    eta_min,
                    interval,
                })
            }
        ),
        (
            1e-4..1.0f64,
            2..200u64,
            0.0..1.0f64,
            any::<bool>(),
            any::<bool>(),
            1.5..100.0f64,
            2.0..1e5f64,
            interval()
        )
            .prop_map(
                |(
                    max_lr,
                    total_steps,
                    pct_start,
                    linear,
                    three_phase,
                    div_factor,
                    final_div_factor,
                    interval,
                )| {
                    SchedulerConfig::OneCycle(OneCycleConfig {
                        max_lr,
                        total_steps: total_steps.into(),
                        pct_start,
                        three_phase,
                        div_factor,
                        final_div_factor,
                        interval,
                        anneal_strategy: if linear { Anneal::Linear } else { Anneal::Cos },
                    })
                }
            ),
        (0.01..=1.0f64, 0.0..=1.0f64, 0..20u64, interval()).prop_map(
            |(start_factor, end_factor, total_iters, interval)| {
                SchedulerConfig::Linear(LinearConfig {
                    start_factor,
                    end_factor,
                    total_iters: total_iters.into(),
                    interval,
                })
            }
        ),
        (0..30u64, 0.0..4.0f64, interval()).prop_map(|(total_iters, power, interval)| {
            SchedulerConfig::Polynomial(PolynomialConfig {
                total_iters: total_iters.into(),
                power,
                interval,
            })
        }),
        (
            epoch_monitor(),
            0.0..0.99f64,
            0..5u64,
            0.0..0.2f64,
            threshold_mode(),
            0..3u64,
            0.0..1e-4f64
        )
            .prop_map(
                |(monitor, factor, patience, threshold, threshold_mode, cooldown, min_lr)| {
                    SchedulerConfig::Plateau(PlateauConfig {
                        monitor,
                        factor,
                        patience: patience.into(),
                        threshold,
                        threshold_mode,
                        cooldown: cooldown.into(),
                        min_lr: Rate::Absolute(min_lr),
                        ..Default::default()
                    })
                }
            ),
        (
            epoch_monitor(),
            0.3..0.99f64,
            0..4u64,
            threshold_mode(),
            0..3u64,
            0..3u64,
            0.0..1e-4f64,
            1e-3..0.1f64,
            any::<bool>(),
            1..6usize,
            1..5u64
        )
            .prop_map(
                |(
                    monitor,
                    factor,
                    patience,
                    threshold_mode,
                    cooldown,
                    warmup,
                    min_lr,
                    max_lr,
                    smooth,
                    window_size,
                    reset_start,
                )| {
                    SchedulerConfig::Greedy(GreedyConfig {
                        monitor,
                        mode: None,
                        factor,
                        patience: patience.into(),
                        threshold: 1e-4,
                        threshold_mode,
                        cooldown: cooldown.into(),
                        warmup: warmup.into(),
                        min_lr: Rate::Absolute(min_lr),
                        max_lr: Rate::Times(max_lr / BASE_LR),
                        eps: 1e-10,
                        smooth,
                        window_size,
                        reset_start,
                        interval: None,
                    })
                }
            ),
        (1e-6..0.5f64, 0.0..1e-4f64, 1e-3..0.1f64, any::<bool>()).prop_map(
            |(beta, min_lr, max_lr, additive)| {
                SchedulerConfig::Hypergradient(HypergradientConfig {
                    rule: if additive {
                        HypergradientRule::Additive
                    } else {
                        HypergradientRule::Multiplicative
                    },
                    beta: if additive { beta / 50.0 } else { beta },
                    min_lr: Rate::Times(min_lr / BASE_LR),
                    max_lr: Rate::Absolute(max_lr),
                    interval: None,
                })
            }
        ),
        (1.0..1.5f64, 0.1..1.0f64, 0.01..1.0f64, 0.0..0.9f64, 0..3u64).prop_map(
            |(growth, decay, spike_cut, slope_smoothing, cooldown)| {
                SchedulerConfig::TrendGap(TrendGapConfig {
                    growth,
                    decay,
                    spike_cut,
                    slope_smoothing,
                    cooldown: cooldown.into(),
                    ..Default::default()
                })
            }
        ),
    ]
}

/// Any schedule: a leaf, a warmup in front of one, or a sequence of them.
fn any_config() -> impl Strategy<Value = SchedulerConfig> {
    prop_oneof![
        3 => leaf(),
        1 => (leaf(), 0.0..=1.0f64, 1..8u64, any::<bool>()).prop_map(|(inner, start_factor, length, steps)| {
            SchedulerConfig::Warmup(WarmupConfig {
                start_factor,
                warmup_steps: steps.then_some(length.into()),
                warmup_epochs: (!steps).then_some(length.into()),
                inner: Box::new(inner),
            })
        }),
        1 => (proptest::collection::vec(leaf(), 1..4), 1..10u64).prop_map(|(schedulers, gap)| {
            let milestones = (1..schedulers.len() as u64).map(|i| Length::Ticks(i * gap)).collect();
            SchedulerConfig::Sequential(SequentialConfig {
                schedulers, milestones, interval: Some(Interval::Epoch),
            })
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rate_is_finite_and_within_bounds(config in any_config(), events in events()) {
        harness::rate_is_finite_and_within_bounds(&config, BASE_LR, &events)?;
    }

    #[test]
    fn restored_scheduler_continues_identically(
        config in any_config(), events in events(), cut in 0.0..1.0f64,
    ) {
        let at = (cut * events.len() as f64) as usize;
        harness::restores_and_continues_bit_for_bit(&config, BASE_LR, &events, at)?;
    }
}

/// The keys whose values are [`Length`]s.
const LENGTH_KEYS: [&str; 11] = [
    "total_iters",
    "step_size",
    "t_max",
    "t_0",
    "total_steps",
    "patience",
    "cooldown",
    "warmup",
    "warmup_steps",
    "warmup_epochs",
    "milestones",
];

/// `config` with some of its lengths written relative to the run, chosen by `draw`: a share
/// (milestones as increasing shares), or the whole run in the units of the schedule's clock.
fn relative(config: &SchedulerConfig, mut draw: impl FnMut() -> u64) -> SchedulerConfig {
    fn walk(value: &mut serde_json::Value, clock: &str, draw: &mut dyn FnMut() -> u64) {
        let Some(table) = value.as_object_mut() else {
            return;
        };
        for (key, value) in table.iter_mut() {
            if key == "milestones" && draw() % 2 == 0 {
                let n = value.as_array().map_or(0, Vec::len);
                let shares = (1..=n).map(|i| format!("{}%", 90 * i / (n + 1)));
                *value = shares.collect();
            } else if LENGTH_KEYS.contains(&key.as_str()) && value.is_u64() {
                *value = match draw() % 4 {
                    0 => format!("{}%", 1 + draw() % 150).into(),
                    1 if key == "warmup_steps" => "steps".into(),
                    1 if key == "warmup_epochs" => "epochs".into(),
                    1 => format!("{clock}s").into(),
                    _ => continue,
                };
            } else if key == "inner" || key == "scheduler" {
                let inner: SchedulerConfig = serde_json::from_value(value.clone()).unwrap();
                walk(value, &inner.clock().to_string(), draw);
            } else if let (true, Some(list)) = (key == "schedulers", value.as_array_mut()) {
                for item in list {
                    let inner: SchedulerConfig = serde_json::from_value(item.clone()).unwrap();
                    walk(item, &inner.clock().to_string(), draw);
                }
            }
        }
    }
    let mut value = serde_json::to_value(config).unwrap();
    walk(&mut value, &config.clock().to_string(), &mut draw);
    serde_json::from_value(value).unwrap()
}

/// Whether a configuration still holds a length relative to the run.
fn has_relative_lengths(config: &SchedulerConfig) -> bool {
    let text = serde_json::to_string(config).unwrap();
    text.contains('%') || text.contains("\"epochs\"") || text.contains("\"steps\"")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_clock_of_a_configuration_is_its_schedules(config in any_config()) {
        prop_assert_eq!(config.clock(), config.build(BASE_LR).unwrap().interval());
    }

    #[test]
    fn relative_lengths_resolve_once_to_a_schedule_that_runs(
        config in any_config(),
        seed in any::<u64>(),
        epochs in 1..60u64,
        steps_per_epoch in 1..40u64,
    ) {
        let mut state = seed;
        let config = relative(&config, || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            state >> 33
        });
        let span = Span::of_run(epochs, steps_per_epoch);
        match config.resolve(span) {
            Ok(resolved) => {
                prop_assert!(!has_relative_lengths(&resolved), "{resolved:?}");
                prop_assert_eq!(&resolved.resolve(span).unwrap(), &resolved);
                prop_assert_eq!(resolved.clock(), config.clock());
                resolved.dry_run(BASE_LR, span).unwrap();
            }
            // Shares that collide (milestones of a short run) or that leave no room: an error
            // naming a length key, never a panic.
            Err(err) => prop_assert!(
                LENGTH_KEYS.iter().any(|key| err.field.contains(key)),
                "{err} for {config:?}"
            ),
        }
        if has_relative_lengths(&config) {
            prop_assert!(config.build(BASE_LR).is_err());
        }
    }
}
