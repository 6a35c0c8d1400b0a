//! Cost of one `observe` (PyTorch's `scheduler.step()`) for every registered schedule's
//! examples, and of the check a study makes of every arm before training: resolving its lengths
//! and a dry run over the published CIFAR-10 plan (50 epochs × 1,407 steps, 70,350 steps: a
//! microsecond a step is 70 ms). A new schedule is timed here with no line written for it.

use criterion::{Criterion, criterion_group, criterion_main};
use lrlab_schedulers::{
    EpochEnd, Interval, Observation, Scheduler, SchedulerConfig, Span, StepEnd,
};
use std::hint::black_box;

/// Every registered schedule's examples, each named by its kind and its place among them.
fn examples() -> Vec<(String, SchedulerConfig)> {
    let mut named = Vec::new();
    let mut previous = ("", 0);
    for config in SchedulerConfig::examples() {
        let index = if previous.0 == config.kind() {
            previous.1 + 1
        } else {
            0
        };
        previous = (config.kind(), index);
        named.push((format!("{}/{index}", config.kind()), config));
    }
    named
}

fn observe_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("observe");
    for (name, config) in examples() {
        let mut scheduler = config.build(1e-3).expect("valid config");
        // Alternate values so that metric-driven schedules take their real branches.
        let mut tick = 0u64;
        let interval = scheduler.interval();
        group.bench_function(&name, |b| {
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
    let plan = Span::of_run(50, 1407);
    let mut group = c.benchmark_group("resolve_and_dry_run_50x1407");
    group.sample_size(20);
    for (name, config) in examples() {
        group.bench_function(&name, |b| {
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
