//! Cost of one `observe` (PyTorch's `scheduler.step()`) for every schedule kind.

use criterion::{Criterion, criterion_group, criterion_main};
use lrlab_schedulers::{EpochEnd, Interval, Observation, Scheduler, SchedulerConfig, StepEnd};
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

criterion_group!(benches, observe_cost);
criterion_main!(benches);
