//! Every kind of bad input gets an error that names the file, the row where there is one, and
//! what was wrong — and nothing panics. The broken files are written in a temporary folder.

use image::{ColorType, ImageEncoder, codecs::png::PngEncoder};
use lrlab_datasets::*;
use polars::prelude::*;
use std::path::{Path, PathBuf};

fn png(width: u32, height: u32, color: ColorType) -> Vec<u8> {
    let channels = color.channel_count() as usize;
    let pixels = vec![7u8; width as usize * height as usize * channels];
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(&pixels, width, height, color.into())
        .unwrap();
    out
}

fn write_parquet(path: &Path, columns: Vec<Column>) {
    let mut frame = DataFrame::new_infer_height(columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    ParquetWriter::new(file).finish(&mut frame).unwrap();
}

/// A CIFAR-style file: `img` struct{bytes, path} and `label`.
fn image_file(path: &Path, pngs: &[Vec<u8>], labels: Column) {
    let bytes: Vec<&[u8]> = pngs.iter().map(Vec::as_slice).collect();
    let n = bytes.len();
    let fields = [
        Series::new("bytes".into(), bytes),
        Series::full_null("path".into(), n, &DataType::String),
    ];
    let img = StructChunked::from_series("img".into(), n, fields.iter()).unwrap();
    write_parquet(path, vec![img.into_series().into(), labels]);
}

fn labels(values: &[i64]) -> Column {
    Column::new("label".into(), values)
}

fn message(result: Result<impl std::fmt::Debug>) -> String {
    result.expect_err("should be rejected").to_string()
}

/// Writes a (broken) file at the path it is given.
type Writer = Box<dyn Fn(&Path)>;

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.parquet");
    (dir, path)
}

#[test]
fn image_files() {
    let cases: Vec<(&str, Writer, &str)> = vec![
        (
            "missing column",
            Box::new(|p: &Path| write_parquet(p, vec![labels(&[0])])),
            "missing column `img` (found: label)",
        ),
        (
            "label is text",
            Box::new(|p: &Path| {
                image_file(
                    p,
                    &[png(32, 32, ColorType::Rgb8)],
                    Column::new("label".into(), &["cat"]),
                )
            }),
            "column `label`: expected an integer (int64), found str",
        ),
        (
            "img is not a struct",
            Box::new(|p: &Path| {
                write_parquet(p, vec![Column::new("img".into(), &["x"]), labels(&[0])])
            }),
            "column `img`: expected struct{bytes: binary, …}, found str",
        ),
        (
            "corrupt PNG",
            Box::new(|p: &Path| {
                image_file(
                    p,
                    &[png(32, 32, ColorType::Rgb8), b"\x89PNG garbage".to_vec()],
                    labels(&[0, 1]),
                )
            }),
            ", row 1: column `img`: corrupt PNG",
        ),
        (
            "wrong size",
            Box::new(|p: &Path| image_file(p, &[png(16, 16, ColorType::Rgb8)], labels(&[0]))),
            ", row 0: column `img`: image is 16×16 Rgb8, expected 32×32×3",
        ),
        (
            "wrong channels",
            Box::new(|p: &Path| image_file(p, &[png(32, 32, ColorType::Rgba8)], labels(&[0]))),
            ", row 0: column `img`: image is 32×32 Rgba8, expected 32×32×3",
        ),
        (
            "label out of range",
            Box::new(|p: &Path| {
                image_file(
                    p,
                    &vec![png(32, 32, ColorType::Rgb8); 3],
                    labels(&[0, 9, 10]),
                )
            }),
            ", row 2: column `label`: label 10 is out of range 0..9",
        ),
        (
            "null label",
            Box::new(|p: &Path| {
                image_file(
                    p,
                    &[png(32, 32, ColorType::Rgb8)],
                    Column::new("label".into(), &[None::<i64>]),
                )
            }),
            ", row 0: column `label` is null",
        ),
        (
            "not parquet",
            Box::new(|p: &Path| std::fs::write(p, b"hello").unwrap()),
            "not a readable parquet file",
        ),
    ];
    for (name, write, expected) in cases {
        let (_dir, path) = temp();
        write(&path);
        let err = message(read_images(&path));
        assert!(
            err.starts_with(&path.display().to_string()),
            "{name}: {err}"
        );
        assert!(err.contains(expected), "{name}: {err:?} lacks {expected:?}");
    }
    let (_dir, path) = temp();
    assert!(message(read_images(&path)).contains("cannot open"));
}

#[test]
fn review_files() {
    let (_dir, path) = temp();
    write_parquet(
        &path,
        vec![Column::new("text".into(), &[1i64, 2]), labels(&[0, 1])],
    );
    let err = message(read_reviews(&path));
    assert!(
        err.contains("column `text`: expected string, found i64"),
        "{err}"
    );
    write_parquet(
        &path,
        vec![
            Column::new("text".into(), &["good", "bad"]),
            labels(&[1, 2]),
        ],
    );
    let err = message(read_reviews(&path));
    assert!(
        err.contains("row 1: column `label`: label 2 is out of range 0..1"),
        "{err}"
    );
    write_parquet(
        &path,
        vec![Column::new("review".into(), &["good"]), labels(&[1])],
    );
    let err = message(read_reviews(&path));
    assert!(
        err.contains("missing column `text` (found: review, label)"),
        "{err}"
    );
}

#[test]
fn unreadable_tokenizer() {
    let (dir, _) = temp();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, "{ not json").unwrap();
    let err = message(TextEncoder::from_file(&path, 128).map(|_| ()));
    assert!(
        err.starts_with(&path.display().to_string()) && err.contains("unreadable tokenizer"),
        "{err}"
    );
    let err = message(TextEncoder::from_file(&dir.path().join("absent.json"), 128).map(|_| ()));
    assert!(err.contains("unreadable tokenizer"), "{err}");
}

/// A Hub cache in a temporary folder holding `files` for the CIFAR-10 repository.
fn cache_with(files: &[(&str, Writer)]) -> (tempfile::TempDir, Hub) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("datasets--uoft-cs--cifar10");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "abc123").unwrap();
    for (name, write) in files {
        let path = repo.join("snapshots/abc123").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write(&path);
    }
    let hub = Hub {
        cache: dir.path().to_path_buf(),
        offline: true,
        endpoint: None,
        token: None,
    };
    (dir, hub)
}

#[test]
fn empty_split_and_missing_file_offline() {
    let ten = |p: &Path| {
        image_file(
            p,
            &vec![png(32, 32, ColorType::Rgb8); 10],
            labels(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        )
    };
    let none = |p: &Path| image_file(p, &[], labels(&[]));
    let (_dir, hub) = cache_with(&[
        ("plain_text/train-00000-of-00001.parquet", Box::new(ten)),
        ("plain_text/test-00000-of-00001.parquet", Box::new(none)),
    ]);
    let err = message(load_cifar10(
        &hub,
        &Source::cifar10(),
        &SplitConfig::default(),
    ));
    assert!(
        err.contains("test-00000-of-00001.parquet: empty test split (0 rows"),
        "{err}"
    );
    let err = message(load_cifar10(
        &hub,
        &Source::cifar10(),
        &SplitConfig {
            val_fraction: 0.01,
            ..Default::default()
        },
    ));
    assert!(
        err.contains("train-00000-of-00001.parquet: empty val split (10 rows"),
        "{err}"
    );
    let err = message(load_cifar10(
        &hub,
        &Source::cifar10(),
        &SplitConfig {
            val_fraction: 1.5,
            ..Default::default()
        },
    ));
    assert!(
        err.contains("`val_fraction`: must lie in (0, 1), got 1.5"),
        "{err}"
    );

    let (_dir, hub) = cache_with(&[]);
    let err = message(load_cifar10(
        &hub,
        &Source::cifar10(),
        &SplitConfig::default(),
    ));
    for needle in [
        "dataset uoft-cs/cifar10 (revision main)",
        "`plain_text/train-00000-of-00001.parquet` is not in the Hub cache at",
        &hub.cache.display().to_string(),
        "HF_HUB_OFFLINE=1",
        "huggingface-cli download uoft-cs/cifar10 plain_text/train-00000-of-00001.parquet --repo-type dataset",
    ] {
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    }
}

#[test]
fn environment_variables_follow_huggingface_hub() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    let hub = Hub::from_vars(vars(&[("HF_HOME", "/data/hf"), ("HF_HUB_OFFLINE", "1")]));
    assert_eq!(hub.cache, PathBuf::from("/data/hf/hub"));
    assert!(hub.offline);
    let hub = Hub::from_vars(vars(&[
        ("HF_HOME", "/data/hf"),
        ("HF_HUB_CACHE", "/fast/cache"),
        ("HF_ENDPOINT", "https://mirror.example"),
        ("HF_TOKEN", "hf_abc"),
        ("HF_HUB_OFFLINE", "0"),
    ]));
    assert_eq!(hub.cache, PathBuf::from("/fast/cache"));
    assert!(!hub.offline);
    assert_eq!(hub.endpoint.as_deref(), Some("https://mirror.example"));
    assert_eq!(hub.token.as_deref(), Some("hf_abc"));
    for yes in ["1", "true", "YES", "on"] {
        let hub = Hub::from_vars(move |n: &str| (n == "HF_HUB_OFFLINE").then(|| yes.to_string()));
        assert!(hub.offline, "{yes}");
        assert!(
            hub.cache.ends_with("huggingface/hub"),
            "{}",
            hub.cache.display()
        );
    }
}

#[test]
fn a_commit_hash_revision_reads_its_snapshot() {
    let (_dir, hub) = cache_with(&[(
        "plain_text/a.parquet",
        Box::new(|p: &Path| std::fs::write(p, b"x").unwrap()),
    )]);
    let repo = Source::cifar10().repo;
    assert!(hub.file(&repo, "plain_text/a.parquet").is_ok());
    assert!(
        hub.file(&repo.clone().at("abc123"), "plain_text/a.parquet")
            .is_ok()
    );
    let err = message(hub.file(&repo.at("v2"), "plain_text/a.parquet"));
    assert!(err.contains("(revision v2)"), "{err}");
}
