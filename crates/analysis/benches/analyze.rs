//! A study of 10,000 runs × 50 epochs on disk, in the protocol's shape (7 arms × 3 seeds per
//! experiment, 477 experiments): reading the run directories, and the analysis (per-run metrics,
//! summaries, every comparison with its tests and bootstrap). Reports and plots are written per
//! experiment and are not part of it.

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use lrlab_analysis::{Settings, analyze, read_runs};

const ARMS: [&str; 7] = [
    "constant",
    "step",
    "cosine",
    "plateau",
    "greedy",
    "hypergradient",
    "trend_gap",
];

fn study(c: &mut Criterion) {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let names: Vec<String> = (0..477).map(|i| format!("experiment-{i:03}")).collect();
    let experiments: Vec<&str> = names.iter().map(String::as_str).collect();
    common::write_study(
        folder.path(),
        &common::Study {
            experiments: &experiments,
            arms: &ARMS,
            seeds: 3,
            epochs: 50,
            threshold: 0.85,
        },
    );
    let roots = vec![folder.path().to_owned()];
    let runs = read_runs(&roots).expect("the study reads");
    assert_eq!(runs.len(), 477 * 7 * 3);
    let settings = Settings::default();
    let mut group = c.benchmark_group("10017 runs x 50 epochs");
    group.sample_size(10);
    group.bench_function("read", |b| b.iter(|| read_runs(&roots).expect("reads")));
    group.bench_function("analyze", |b| {
        b.iter(|| analyze(&runs, &settings).expect("analyses"))
    });
    group.bench_function("read + analyze", |b| {
        b.iter(|| analyze(&read_runs(&roots).expect("reads"), &settings).expect("analyses"))
    });
    group.finish();
}

criterion_group!(benches, study);
criterion_main!(benches);
