//! The two datasets of the study, as published on the Hub, loaded into splits.

use crate::error::{DataError, Result};
use crate::hub::{Hub, RepoRef};
use crate::images::{Images, decode_all};
use crate::split::{self, SplitConfig, Splits};
use crate::table::Table;
use crate::text::{Reviews, TextEncoder};
use std::path::Path;

/// CIFAR-10's class names, by label.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
/// IMDB's class names, by label.
pub const IMDB_CLASSES: [&str; 2] = ["neg", "pos"];
/// The default checkpoint whose tokenizer IMDB is tokenized with.
pub const DEFAULT_CHECKPOINT: &str = "google-bert/bert-base-uncased";

/// Where a dataset's parquet files live on the Hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The dataset repository and revision.
    pub repo: RepoRef,
    /// The training file inside it.
    pub train_file: String,
    /// The test file inside it.
    pub test_file: String,
}

impl Source {
    fn plain_text(id: &str) -> Source {
        Source {
            repo: RepoRef::dataset(id),
            train_file: "plain_text/train-00000-of-00001.parquet".into(),
            test_file: "plain_text/test-00000-of-00001.parquet".into(),
        }
    }

    /// `uoft-cs/cifar10`, config `plain_text`.
    pub fn cifar10() -> Source {
        Source::plain_text("uoft-cs/cifar10")
    }

    /// `stanfordnlp/imdb`, config `plain_text`.
    pub fn imdb() -> Source {
        Source::plain_text("stanfordnlp/imdb")
    }
}

/// Loads a dataset's two files, carves validation from train, applies the limits. `read` turns
/// a file into examples of type `T`, `labels` and `select` look into them.
fn load<T>(
    hub: &Hub,
    source: &Source,
    config: &SplitConfig,
    classes: usize,
    read: impl Fn(&Path) -> Result<T>,
    labels: impl Fn(&T) -> &[u8],
    select: impl Fn(&T, &[usize]) -> T,
) -> Result<Splits<T>> {
    split::check(config)?;
    let train_path = hub.file(&source.repo, &source.train_file)?;
    let test_path = hub.file(&source.repo, &source.test_file)?;
    let (train_file, test_file) = (read(&train_path)?, read(&test_path)?);
    let (train, val) = split::carve(labels(&train_file), classes, config);
    let test = split::test(labels(&test_file), classes, config);
    for (name, indices, path, file) in [
        ("train", &train, &train_path, &train_file),
        ("val", &val, &train_path, &train_file),
        ("test", &test, &test_path, &test_file),
    ] {
        if indices.is_empty() {
            return Err(DataError::file(
                path,
                format!(
                    "empty {name} split ({} rows in the file, val_fraction {}{}): hold out \
                     another fraction, or fill the file",
                    labels(file).len(),
                    config.val_fraction,
                    config.limit
                ),
            ));
        }
    }
    Ok(Splits {
        train: select(&train_file, &train),
        val: select(&train_file, &val),
        test: select(&test_file, &test),
    })
}

/// Reads a CIFAR-10 parquet file: `img` struct{bytes: PNG} and `label` int64 in 0..10.
pub fn read_images(path: &Path) -> Result<Images> {
    let table = Table::read(path, &["img", "label"])?;
    let labels = table.labels("label", CIFAR10_CLASSES.len())?;
    let column = table.struct_binary("img", "bytes")?;
    let pngs = table.non_null("img.bytes", column.iter())?;
    let pixels = decode_all(table.path(), &pngs)?;
    Ok(Images { pixels, labels })
}

/// Reads an IMDB parquet file: `text` string and `label` int64 in 0..2.
pub fn read_reviews(path: &Path) -> Result<Reviews> {
    let table = Table::read(path, &["text", "label"])?;
    Ok(Reviews {
        labels: table.labels("label", IMDB_CLASSES.len())?,
        texts: table
            .strings("text")?
            .into_iter()
            .map(str::to_owned)
            .collect(),
    })
}

/// CIFAR-10's splits, decoded.
pub fn load_cifar10(hub: &Hub, source: &Source, config: &SplitConfig) -> Result<Splits<Images>> {
    load(
        hub,
        source,
        config,
        CIFAR10_CLASSES.len(),
        read_images,
        |i| &i.labels,
        Images::select,
    )
}

/// IMDB's splits, as text.
pub fn load_imdb(hub: &Hub, source: &Source, config: &SplitConfig) -> Result<Splits<Reviews>> {
    load(
        hub,
        source,
        config,
        IMDB_CLASSES.len(),
        read_reviews,
        |r| &r.labels,
        Reviews::select,
    )
}

/// The tokenizer of `checkpoint` (its `tokenizer.json`), set to `max_len`.
pub fn text_encoder(hub: &Hub, checkpoint: &RepoRef, max_len: usize) -> Result<TextEncoder> {
    TextEncoder::from_file(&hub.file(checkpoint, "tokenizer.json")?, max_len)
}
