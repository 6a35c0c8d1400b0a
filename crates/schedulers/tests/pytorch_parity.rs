//! Every PyTorch schedule against traces recorded from PyTorch itself, and GreedyLR against
//! the transformers implementation (`scripts/pytorch_traces.py`): the same learning rate after
//! every tick, to 1e-12 relative.
//! Cases with lengths relative to the run are resolved against their run first, and compared
//! with PyTorch given the numbers of ticks those lengths stand for.

use lrlab_schedulers::{
    EpochEnd, Interval, Observation, Scheduler, SchedulerConfig, Span, StepEnd,
};
use serde::Deserialize;
use serde_json::Value;

const TOLERANCE: f64 = 1e-12;

#[derive(Deserialize)]
struct Fixture {
    torch: String,
    transformers: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    config: Value,
    base_lr: f64,
    lrs: Vec<f64>,
    #[serde(default)]
    metrics: Vec<Value>,
    /// The run that relative lengths are shares of.
    run: Option<Run>,
}

#[derive(Deserialize)]
struct Run {
    epochs: u64,
    steps_per_epoch: u64,
}

fn metric(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().expect("a float"),
        Value::String(s) => s.parse().expect("nan, inf or -inf"),
        other => panic!("unexpected metric {other}"),
    }
}

/// The event of `interval` at tick `tick`, carrying `value` in every signal.
fn event(interval: Interval, tick: u64, value: Option<f64>) -> Observation {
    match interval {
        Interval::Step => Observation::Step(StepEnd {
            step: tick,
            epoch: 1,
            loss: value,
            ..StepEnd::default()
        }),
        Interval::Epoch => Observation::Epoch(EpochEnd {
            epoch: tick,
            step: tick,
            train_loss: value,
            train_acc: value,
            val_loss: value,
            val_acc: value,
        }),
    }
}

fn relative_error(ours: f64, theirs: f64) -> f64 {
    if ours == theirs {
        0.0
    } else {
        (ours - theirs).abs() / ours.abs().max(theirs.abs())
    }
}

#[test]
fn every_schedule_matches_pytorch() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pytorch_traces.json"
    );
    let fixture: Fixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut values, mut exact, mut worst) = (0usize, 0usize, (0.0f64, String::new()));
    let mut failures = Vec::new();
    for case in &fixture.cases {
        let mut config: SchedulerConfig = serde_json::from_value(case.config.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        if let Some(run) = &case.run {
            let span = Span::of_run(run.epochs, run.steps_per_epoch);
            config = config
                .resolve(span)
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        }
        let mut scheduler = config.build(case.base_lr).unwrap();
        let interval = scheduler.interval();
        for (tick, &expected) in case.lrs.iter().enumerate() {
            let ours = scheduler.lr();
            let error = relative_error(ours, expected);
            values += 1;
            exact += usize::from(ours.to_bits() == expected.to_bits());
            if error > worst.0 {
                worst = (error, format!("{} at tick {tick}", case.name));
            }
            if error > TOLERANCE {
                failures.push(format!(
                    "{} at tick {tick}: {ours} vs torch {expected}",
                    case.name
                ));
                break;
            }
            if tick + 1 == case.lrs.len() {
                break;
            }
            let value = case.metrics.get(tick).map(metric);
            scheduler.observe(&event(interval, tick as u64 + 1, value));
        }
    }
    println!(
        "{} cases, {values} values from torch {} and transformers {}: {exact} bit-identical, \
         worst relative error {:e} ({})",
        fixture.cases.len(),
        fixture.torch,
        fixture.transformers,
        worst.0,
        worst.1
    );
    assert!(fixture.cases.len() > 500, "the fixture lost cases");
    assert!(
        failures.is_empty(),
        "{} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn fixture_covers_every_reference_schedule() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pytorch_traces.json"
    );
    let fixture: Fixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for kind in [
        "constant",
        "step",
        "multistep",
        "exponential",
        "cosine",
        "cosine_warm_restarts",
        "one_cycle",
        "linear",
        "polynomial",
        "sequential",
        "warmup",
        "plateau",
        "greedy",
    ] {
        assert!(
            fixture.cases.iter().any(|c| c.config["kind"] == kind),
            "no reference trace of {kind}"
        );
    }
    let relative = fixture.cases.iter().filter(|c| c.run.is_some()).count();
    assert!(relative >= 7, "{relative} traces of relative lengths");
}
