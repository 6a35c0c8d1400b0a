//! Deterministic epochs of batches, assembled as candle tensors.

use crate::error::Result;
use crate::images::{CHANNELS, Crop, IMAGE_BYTES, Images, SIDE, write_normalised};
use crate::seed::rng;
use crate::text::Tokens;
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;

/// One batch, on a device.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Images `(B, 3, 32, 32)` f32, or token ids `(B, L)` u32.
    pub inputs: Tensor,
    /// For token batches, `(B, L)` u32: 1 for a real token, 0 for padding.
    pub attention_mask: Option<Tensor>,
    /// Class labels `(B,)` u32.
    pub labels: Tensor,
}

/// Augmentation of a training batch: the draws are a function of the seed, the epoch and the
/// example, so that every arm trained with a seed sees the same ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Augment {
    /// The training seed.
    pub seed: u64,
    /// The 1-based epoch.
    pub epoch: u64,
}

/// A split that can be served as batches.
pub trait Examples: Sync {
    /// The number of examples.
    fn len(&self) -> usize;

    /// Whether there is none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class of every example.
    fn labels(&self) -> &[u8];

    /// The examples at `indices` as a batch on `device`, augmented when `augment` is given
    /// and the data has an augmentation.
    fn batch(&self, indices: &[usize], augment: Option<Augment>, device: &Device) -> Result<Batch>;
}

fn labels_tensor(labels: &[u8], indices: &[usize], device: &Device) -> Result<Tensor> {
    let labels: Vec<u32> = indices.iter().map(|&i| u32::from(labels[i])).collect();
    Ok(Tensor::from_vec(labels, indices.len(), device)?)
}

impl Examples for Images {
    fn len(&self) -> usize {
        Images::len(self)
    }

    fn labels(&self) -> &[u8] {
        &self.labels
    }

    fn batch(&self, indices: &[usize], augment: Option<Augment>, device: &Device) -> Result<Batch> {
        let mut data = vec![0f32; indices.len() * IMAGE_BYTES];
        for (dst, &i) in data.chunks_exact_mut(IMAGE_BYTES).zip(indices) {
            let crop = augment.map_or(Crop::NONE, |a| Crop::draw(a.seed, a.epoch, i));
            write_normalised(self.image(i), crop, dst);
        }
        Ok(Batch {
            inputs: Tensor::from_vec(data, (indices.len(), CHANNELS, SIDE, SIDE), device)?,
            attention_mask: None,
            labels: labels_tensor(&self.labels, indices, device)?,
        })
    }
}

impl Examples for Tokens {
    fn len(&self) -> usize {
        Tokens::len(self)
    }

    fn labels(&self) -> &[u8] {
        &self.labels
    }

    fn batch(
        &self,
        indices: &[usize],
        _augment: Option<Augment>,
        device: &Device,
    ) -> Result<Batch> {
        let (n, l) = (indices.len(), self.max_len);
        let mut ids = Vec::with_capacity(n * l);
        let mut mask = Vec::with_capacity(n * l);
        for &i in indices {
            ids.extend_from_slice(self.sequence(i));
            mask.extend(self.attention(i).iter().map(|&m| u32::from(m)));
        }
        Ok(Batch {
            inputs: Tensor::from_vec(ids, (n, l), device)?,
            attention_mask: Some(Tensor::from_vec(mask, (n, l), device)?),
            labels: labels_tensor(&self.labels, indices, device)?,
        })
    }
}

/// The order in which an epoch visits `len` examples: a permutation drawn from `seed` and
/// `epoch` alone, so that every arm of a seed sees the same order, and a resumed run too.
pub fn epoch_order(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut rng(seed, &[0x0DE, epoch]));
    order
}

/// The batches of one epoch: `epoch_order` cut into `batch_size` pieces; the last, shorter
/// piece is kept when `keep_last`.
pub fn epoch_batches(
    len: usize,
    batch_size: usize,
    seed: u64,
    epoch: u64,
    keep_last: bool,
) -> Vec<Vec<usize>> {
    assert!(batch_size > 0, "batch_size must be ≥ 1");
    epoch_order(len, seed, epoch)
        .chunks(batch_size)
        .filter(|chunk| keep_last || chunk.len() == batch_size)
        .map(<[usize]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_permutations_fixed_by_seed_and_epoch() {
        let a = epoch_order(1000, 3, 1);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(1000, 3, 1));
        assert_ne!(a, epoch_order(1000, 3, 2));
        assert_ne!(a, epoch_order(1000, 4, 1));
    }

    #[test]
    fn the_last_partial_batch_is_kept_or_dropped() {
        let kept = epoch_batches(100, 32, 0, 1, true);
        assert_eq!(
            kept.iter().map(Vec::len).collect::<Vec<_>>(),
            [32, 32, 32, 4]
        );
        let dropped = epoch_batches(100, 32, 0, 1, false);
        assert_eq!(dropped.len(), 3);
        assert_eq!(dropped[..], kept[..3]);
    }

    #[test]
    fn image_batches_have_nchw_shape_and_u32_labels() {
        let images = Images {
            pixels: (0..3 * IMAGE_BYTES).map(|i| (i % 256) as u8).collect(),
            labels: vec![3, 1, 4],
        };
        let batch = images.batch(&[2, 0], None, &Device::Cpu).unwrap();
        assert_eq!(batch.inputs.dims(), [2, 3, 32, 32]);
        assert_eq!(batch.labels.to_vec1::<u32>().unwrap(), [4, 3]);
        let augmented = images
            .batch(&[2, 0], Some(Augment { seed: 1, epoch: 1 }), &Device::Cpu)
            .unwrap();
        assert_eq!(augmented.inputs.dims(), [2, 3, 32, 32]);
        let again = images
            .batch(&[2, 0], Some(Augment { seed: 1, epoch: 1 }), &Device::Cpu)
            .unwrap();
        let (a, b) = (
            augmented.inputs.flatten_all().unwrap(),
            again.inputs.flatten_all().unwrap(),
        );
        assert_eq!(a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
    }
}
