//! Cost of one `observe` (PyTorch's `scheduler.step()`) for every schedule kind, and of the
//! check a study makes of every arm before training: resolving its lengths and a dry run over
//! the published CIFAR-10 plan (50 epochs × 1,407 steps).

use criterion::{Criterion, criterion_group, criterion_main};
use lrlab_schedulers::{
    EpochEnd, Interval, Observation, Scheduler, SchedulerConfig, Span, StepEnd,
};
use serde::Deserialize;
use std::hint::black_box;

#[derive(Deserialize)]
struct Representative {
    scheduler: Vec<SchedulerConfig>,
}

fn observe_cost(c: &mut Criterion) {
    let text = include_str!("../tests/fixtures/representative.toml");
    let configs = toml::from_str::<Representative>(text)
        .expect("valid fixture")
        .scheduler;
    let mut group = c.benchmark_group("observe");
    for config in configs {
        let mut scheduler = config.build(1e-3).expect("valid config");
        // Alternate values so that metric-driven schedules take their real branches.
        let mut tick = 0u64;
        let interval = scheduler.interval();
        group.bench_function(config.kind(), |b| {
            b.iter(|| {
                tick += 1;
                let wobble = (tick % 7) as f64 * 0.01;
                let observation = match interval {
                    Interval::Step => Observation::Step(StepEnd {
                        step: tick,
                        epoch: 1,
                        loss: Some(1.0 - wobble),
                        grad_dot: Some(0.5 - wobble * 10.0),
                        grad_cos: Some(0.5 - wobble * 10.0),
                    }),
                    Interval::Epoch => Observation::Epoch(EpochEnd {
                        epoch: tick,
                        step: tick,
                        train_loss: Some(0.9 - wobble),
                        train_acc: Some(0.5 + wobble),
                        val_loss: Some(1.0 - wobble),
                        val_acc: Some(0.5 + wobble),
                    }),
                };
                black_box(scheduler.observe(black_box(&observation)))
            })
        });
    }
    group.finish();
}

fn check_cost(c: &mut Criterion) {
    let text = include_str!("../tests/fixtures/representative.toml");
    let configs = toml::from_str::<Representative>(text)
        .expect("valid fixture")
        .scheduler;
    let plan = Span::of_run(50, 1407);
    let mut group = c.benchmark_group("resolve_and_dry_run_50x1407");
    group.sample_size(20);
    for config in configs {
        group.bench_function(config.kind(), |b| {
            b.iter(|| {
                let resolved = black_box(&config).resolve(plan).expect("resolves");
                resolved.dry_run(1e-3, plan).expect("runs")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, observe_cost, check_cost);
criterion_main!(benches);
