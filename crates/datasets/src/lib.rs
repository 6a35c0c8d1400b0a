//! CIFAR-10 and IMDB from the Hugging Face Hub: real parquet files, seeded stratified splits,
//! and deterministic batches as candle tensors.
//!
//! ```no_run
//! use lrlab_datasets::{Augment, Examples, Hub, SplitConfig, Source, epoch_batches, load_cifar10};
//! # fn main() -> Result<(), lrlab_datasets::DataError> {
//! // HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE are honoured.
//! let hub = Hub::from_env();
//! let splits = load_cifar10(&hub, &Source::cifar10(), &SplitConfig::default())?;
//! assert_eq!((splits.train.len(), splits.val.len()), (45_000, 5_000));
//! let device = candle_core::Device::Cpu;
//! for indices in epoch_batches(splits.train.len(), 32, /* seed */ 0, /* epoch */ 1, true) {
//!     let batch = splits.train.batch(&indices, Some(Augment { seed: 0, epoch: 1 }), &device)?;
//!     assert_eq!(batch.inputs.dims()[1..], [3, 32, 32]);
//! }
//! # Ok(()) }
//! ```
//!
//! Everything that draws randomness — the validation split, the limits, the epoch order, the
//! augmentation — is a pure function of its seed and indices (ChaCha8 and SplitMix64), so the
//! same seed gives the same data in every arm of a study, on every machine, after a resume.

mod batch;
mod error;
mod hub;
mod images;
mod rgb_png;
mod seed;
mod sources;
mod split;
mod stats;
mod table;
mod text;

pub use batch::{Augment, Batch, Examples, epoch_batches, epoch_order};
pub use error::{DataError, Result};
pub use hub::{Hub, RepoKind, RepoRef};
pub use images::{CHANNELS, Crop, IMAGE_BYTES, Images, MEAN, PADDING, SIDE, STD, write_normalised};
pub use sources::{
    CIFAR10_CLASSES, DEFAULT_CHECKPOINT, IMDB_CLASSES, Source, load_cifar10, load_imdb,
    read_images, read_reviews, text_encoder,
};
pub use split::{Limits, SplitConfig, Splits, stratified_pick};
pub use stats::{label_counts, pixel_mean_std, token_stats};
pub use text::{Reviews, TextEncoder, Tokens};
