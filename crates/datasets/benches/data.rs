//! Data throughput on the real samples of `../shared/hf-cache`: PNG decoding (the whole
//! training parquet), batch assembly, and IMDB tokenization.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lrlab_datasets::*;
use std::hint::black_box;
use std::path::PathBuf;

fn hub() -> Hub {
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/hf-cache/hub");
    Hub {
        cache,
        offline: true,
        endpoint: None,
        token: None,
    }
}

fn data(c: &mut Criterion) {
    let hub = hub();
    let cifar = hub
        .file(&Source::cifar10().repo, &Source::cifar10().train_file)
        .expect("cached");
    let images = read_images(&cifar).expect("readable");
    let mut group = c.benchmark_group("cifar10");
    group.sample_size(20);
    group.throughput(Throughput::Elements(images.len() as u64));
    group.bench_function("read_and_decode_train_parquet", |b| {
        b.iter(|| black_box(read_images(&cifar).expect("readable")))
    });
    let device = candle_core::Device::Cpu;
    let indices: Vec<usize> = (0..32).map(|i| i * 61 % 1000).collect();
    group.throughput(Throughput::Elements(32));
    group.bench_function("batch_of_32_augmented", |b| {
        b.iter(|| {
            black_box(
                images
                    .batch(&indices, Some(Augment { seed: 1, epoch: 3 }), &device)
                    .expect("batch"),
            )
        })
    });
    group.finish();

    let imdb = hub
        .file(&Source::imdb().repo, &Source::imdb().train_file)
        .expect("cached");
    let reviews = read_reviews(&imdb).expect("readable");
    let encoder = text_encoder(
        &hub,
        &RepoRef::model("sentence-transformers/all-MiniLM-L6-v2"),
        128,
    )
    .expect("tokenizer");
    let mut group = c.benchmark_group("imdb");
    group.sample_size(10);
    group.throughput(Throughput::Elements(reviews.len() as u64));
    group.bench_function("tokenize_train_parquet", |b| {
        b.iter(|| black_box(encoder.encode(&reviews).expect("tokens")))
    });
    let tokens = encoder.encode(&reviews).expect("tokens");
    group.throughput(Throughput::Elements(32));
    group.bench_function("batch_of_32", |b| {
        b.iter(|| black_box(tokens.batch(&indices, None, &device).expect("batch")))
    });
    group.finish();
}

criterion_group!(benches, data);
criterion_main!(benches);
