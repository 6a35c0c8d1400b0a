//! lrlab-datasets on the real samples of `../shared/hf-cache` (read in place, offline), against
//! reference values computed in Python (`scripts/python_reference.py`).

use lrlab_datasets::*;
use serde_json::Value;
use std::path::PathBuf;

/// The shared Hub cache, offline, whatever the environment says.
fn hub() -> Hub {
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/hf-cache/hub");
    assert!(
        cache.is_dir(),
        "the shared Hub cache is missing at {}",
        cache.display()
    );
    Hub::offline(cache)
}

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/python_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";

#[test]
fn cifar10_splits_are_stratified_and_pixels_match_python() {
    let splits = load_cifar10(&hub(), &Source::cifar10(), &SplitConfig::default()).unwrap();
    assert_eq!(
        (splits.train.len(), splits.val.len(), splits.test.len()),
        (1800, 200, 500)
    );
    assert_eq!(label_counts(&splits.train.labels, 10), [180; 10]);
    assert_eq!(label_counts(&splits.val.labels, 10), [20; 10]);
    assert_eq!(label_counts(&splits.test.labels, 10), [50; 10]);
    let (mean, std) = pixel_mean_std(&[&splits.train, &splits.val]);
    let reference = &reference()["cifar10"];
    for c in 0..3 {
        let (m, s) = (
            reference["pixel_mean"][c].as_f64().unwrap(),
            reference["pixel_std"][c].as_f64().unwrap(),
        );
        assert!(
            (mean[c] - m).abs() < 1e-12,
            "mean[{c}] {} vs numpy {m}",
            mean[c]
        );
        assert!(
            (std[c] - s).abs() < 1e-12,
            "std[{c}] {} vs numpy {s}",
            std[c]
        );
    }
}

#[test]
fn splits_are_fixed_by_their_seed_and_limits_stay_stratified() {
    let load = |config: &SplitConfig| load_cifar10(&hub(), &Source::cifar10(), config).unwrap();
    let a = load(&SplitConfig::default());
    let b = load(&SplitConfig::default());
    assert_eq!(a.val, b.val);
    assert_eq!(a.train, b.train);
    let other = load(&SplitConfig {
        seed: 1,
        ..Default::default()
    });
    assert_ne!(other.val, a.val);
    let limited = load(&SplitConfig {
        limit: Limits {
            train: Some(100),
            val: Some(20),
            test: Some(30),
        },
        ..Default::default()
    });
    assert_eq!(label_counts(&limited.train.labels, 10), [10; 10]);
    assert_eq!(label_counts(&limited.val.labels, 10), [2; 10]);
    assert_eq!(label_counts(&limited.test.labels, 10), [3; 10]);
    // A limited validation split is a subset of the full one: limits never move examples
    // between splits.
    for i in 0..limited.val.len() {
        let image = limited.val.image(i);
        assert!((0..a.val.len()).any(|j| a.val.image(j) == image));
    }
}

#[test]
fn imdb_splits_are_stratified() {
    let splits = load_imdb(&hub(), &Source::imdb(), &SplitConfig::default()).unwrap();
    assert_eq!(
        (splits.train.len(), splits.val.len(), splits.test.len()),
        (900, 100, 500)
    );
    assert_eq!(label_counts(&splits.train.labels, 2), [450, 450]);
    assert_eq!(label_counts(&splits.val.labels, 2), [50, 50]);
    assert_eq!(label_counts(&splits.test.labels, 2), [250, 250]);
}

fn imdb_train_file() -> Reviews {
    let path = hub()
        .file(&Source::imdb().repo, &Source::imdb().train_file)
        .unwrap();
    read_reviews(&path).unwrap()
}

#[test]
fn tokens_match_transformers_bert_tokenizer() {
    let reference = &reference()["imdb"];
    let reviews = imdb_train_file();
    let encoder = text_encoder(&hub(), &RepoRef::model(MINILM), 128).unwrap();
    for case in reference["encoded"].as_array().unwrap() {
        let row = case["row"].as_u64().unwrap() as usize;
        let tokens = encoder.encode(&reviews.select(&[row])).unwrap();
        let ids: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let mask: Vec<u8> = case["mask"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        assert_eq!(tokens.sequence(0), ids, "row {row}");
        assert_eq!(tokens.attention(0), mask, "row {row}");
    }
    let lengths = encoder.lengths(&reviews).unwrap();
    let (mean, max, truncated) = token_stats(&lengths, 128);
    assert_eq!(mean, reference["tokens_mean"].as_f64().unwrap());
    assert_eq!(max as u64, reference["tokens_max"].as_u64().unwrap());
    assert_eq!(truncated, reference["truncated_fraction"].as_f64().unwrap());
}

#[test]
fn max_len_overrides_the_tokenizer_files_own_truncation_and_padding() {
    // MiniLM's tokenizer.json truncates and pads to 128 by itself.
    let reviews = imdb_train_file().select(&(0..40).collect::<Vec<_>>());
    let short = text_encoder(&hub(), &RepoRef::model(MINILM), 64)
        .unwrap()
        .encode(&reviews)
        .unwrap();
    assert_eq!(short.ids.len(), 40 * 64);
    let long = text_encoder(&hub(), &RepoRef::model(MINILM), 256)
        .unwrap()
        .encode(&reviews)
        .unwrap();
    assert_eq!(long.ids.len(), 40 * 256);
    let real = |t: &Tokens, i: usize| t.attention(i).iter().filter(|&&m| m == 1).count();
    assert!(
        (0..40).any(|i| real(&long, i) > 128),
        "some reviews use more than 128 tokens"
    );
    for i in 0..40 {
        let seq = short.sequence(i);
        assert_eq!(seq[0], 101, "[CLS] first");
        if real(&short, i) == 64 {
            assert_eq!(seq[63], 102, "[SEP] last after truncation");
        } else {
            assert_eq!(seq[63], 0, "padded with [PAD]");
        }
    }
}

#[test]
fn batches_are_deterministic_and_shaped_for_the_models() {
    let config = SplitConfig {
        limit: Limits {
            train: Some(100),
            ..Default::default()
        },
        ..Default::default()
    };
    let splits = load_cifar10(&hub(), &Source::cifar10(), &config).unwrap();
    let device = candle_core::Device::Cpu;
    let epoch = epoch_batches(splits.train.len(), 32, 5, 1, true);
    assert_eq!(
        epoch,
        epoch_batches(splits.train.len(), 32, 5, 1, true),
        "same for every arm"
    );
    assert_eq!(
        epoch.iter().map(Vec::len).collect::<Vec<_>>(),
        [32, 32, 32, 4]
    );
    let augment = Some(Augment { seed: 5, epoch: 1 });
    let first = splits.train.batch(&epoch[0], augment, &device).unwrap();
    assert_eq!(first.inputs.dims(), [32, 3, 32, 32]);
    assert_eq!(first.labels.dims(), [32]);
    let again = splits.train.batch(&epoch[0], augment, &device).unwrap();
    let values = |b: &Batch| b.inputs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(values(&first), values(&again));
    let plain = splits.train.batch(&epoch[0], None, &device).unwrap();
    assert_ne!(
        values(&first),
        values(&plain),
        "augmentation changes pixels"
    );
    // Without augmentation the batch is the normalised image.
    let i = epoch[0][0];
    let mut expected = vec![0.0; IMAGE_BYTES];
    write_normalised(splits.train.image(i), Crop::NONE, &mut expected);
    assert_eq!(values(&plain)[..IMAGE_BYTES], expected[..]);

    let imdb = load_imdb(&hub(), &Source::imdb(), &SplitConfig::default()).unwrap();
    let tokens = text_encoder(&hub(), &RepoRef::model(MINILM), 128)
        .unwrap()
        .encode(&imdb.val)
        .unwrap();
    let batch = tokens.batch(&[0, 5, 7], None, &device).unwrap();
    assert_eq!(batch.inputs.dims(), [3, 128]);
    assert_eq!(batch.attention_mask.unwrap().dims(), [3, 128]);
}

#[test]
fn the_fast_png_path_decodes_exactly_as_the_general_decoder() {
    use image::ImageDecoder;
    use polars::prelude::{ParquetReader, SerReader};
    for file in [Source::cifar10().train_file, Source::cifar10().test_file] {
        let path = hub().file(&Source::cifar10().repo, &file).unwrap();
        let images = read_images(&path).unwrap();
        let frame = ParquetReader::new(std::fs::File::open(&path).unwrap())
            .finish()
            .unwrap();
        let column = frame
            .column("img")
            .unwrap()
            .struct_()
            .unwrap()
            .field_by_name("bytes")
            .unwrap();
        for (row, bytes) in column.binary().unwrap().iter().enumerate() {
            let decoder =
                image::codecs::png::PngDecoder::new(std::io::Cursor::new(bytes.unwrap())).unwrap();
            let mut expected = vec![0u8; IMAGE_BYTES];
            decoder.read_image(&mut expected).unwrap();
            assert_eq!(images.image(row), expected, "{file} row {row}");
        }
    }
}

#[test]
fn a_revision_resolves_to_the_commit_the_cache_records() {
    let hub = hub();
    let cifar = RepoRef::dataset("uoft-cs/cifar10");
    let refs = hub.cache.join("datasets--uoft-cs--cifar10/refs/main");
    let recorded = std::fs::read_to_string(refs).unwrap().trim().to_owned();
    assert_eq!(recorded.len(), 40, "{recorded}");
    assert_eq!(hub.commit(&cifar), Some(recorded.clone()));
    assert_eq!(hub.commit(&cifar.clone().at(&recorded)), Some(recorded));
    assert_eq!(hub.commit(&cifar.at("no-such-branch")), None);
    assert_eq!(hub.commit(&RepoRef::model("nobody/nothing")), None);
}
