//! CIFAR-10 images: PNG decoding in parallel, normalisation, seeded crop-and-flip augmentation.

use crate::error::{DataError, Result};
use crate::rgb_png::{Scratch, decode_rgb8};
use crate::seed::derive;
use image::codecs::png::PngDecoder;
use image::{ColorType, ImageDecoder};
use rayon::prelude::*;
use std::io::Cursor;
use std::path::Path;

/// Height and width of an image.
pub const SIDE: usize = 32;
/// Colour channels.
pub const CHANNELS: usize = 3;
/// Bytes of one image (HWC, RGB).
pub const IMAGE_BYTES: usize = SIDE * SIDE * CHANNELS;
/// Zero padding around the image before the random crop (torchvision's `RandomCrop(32,
/// padding=4)`).
pub const PADDING: usize = 4;
/// Per-channel mean of CIFAR-10's training pixels in [0, 1], subtracted before training.
pub const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// Per-channel standard deviation of CIFAR-10's training pixels, divided by.
pub const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// Decoded images with their labels: `pixels` holds `len()` images of [`IMAGE_BYTES`] each,
/// row-major RGB (HWC) bytes as in the PNGs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Images {
    /// The pixels, image after image.
    pub pixels: Vec<u8>,
    /// The class of each image.
    pub labels: Vec<u8>,
}

impl Images {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Images {
        let mut pixels = Vec::with_capacity(indices.len() * IMAGE_BYTES);
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Images {
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// Decodes one 32×32 RGB PNG into `out` with the general decoder.
fn decode_png(bytes: &[u8], out: &mut [u8]) -> std::result::Result<(), String> {
    let decoder = PngDecoder::new(Cursor::new(bytes)).map_err(|e| format!("corrupt PNG: {e}"))?;
    let (width, height) = decoder.dimensions();
    let color = decoder.color_type();
    if (width, height, color) != (SIDE as u32, SIDE as u32, ColorType::Rgb8) {
        return Err(format!(
            "image is {width}×{height} {color:?}, expected 32×32×3 (Rgb8)"
        ));
    }
    decoder
        .read_image(out)
        .map_err(|e| format!("corrupt PNG: {e}"))
}

/// Decodes every PNG of `images` (row order) in parallel; errors name `path` and the row.
pub(crate) fn decode_all(path: &Path, images: &[&[u8]]) -> Result<Vec<u8>> {
    let mut pixels = vec![0u8; images.len() * IMAGE_BYTES];
    pixels
        .par_chunks_mut(IMAGE_BYTES)
        .zip(images.par_iter())
        .enumerate()
        .try_for_each_init(Scratch::new, |scratch, (row, (out, bytes))| {
            match decode_rgb8(bytes, SIDE, out, scratch) {
                Some(()) => Ok(()),
                None => decode_png(bytes, out),
            }
            .map_err(|m| DataError::row(path, row, format!("column `img`: {m}")))
        })?;
    Ok(pixels)
}

/// One random crop and flip, as torchvision's `RandomCrop(32, padding=4)` then
/// `RandomHorizontalFlip()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crop {
    /// Left edge of the crop in the padded image, 0 ..= 2·PADDING.
    pub dx: usize,
    /// Top edge of the crop in the padded image, 0 ..= 2·PADDING.
    pub dy: usize,
    /// Mirror left to right after cropping.
    pub flip: bool,
}

impl Crop {
    /// No augmentation: the centre crop, unflipped.
    pub const NONE: Crop = Crop {
        dx: PADDING,
        dy: PADDING,
        flip: false,
    };

    /// The draw for `example` in `epoch` under `seed`: a pure function of the three, so every
    /// arm of a seed sees the same augmentation, whatever the batch size or a resume.
    pub fn draw(seed: u64, epoch: u64, example: usize) -> Crop {
        let bits = derive(seed, &[0xA06, epoch, example as u64]);
        let span = 2 * PADDING as u64 + 1;
        Crop {
            dx: (bits % span) as usize,
            dy: ((bits >> 16) % span) as usize,
            flip: (bits >> 32) & 1 == 1,
        }
    }
}

/// Per channel, the normalised value of every byte: `(b / 255 − mean) / std`.
fn normalised_table() -> [[f32; 256]; CHANNELS] {
    let mut table = [[0.0; 256]; CHANNELS];
    for (c, row) in table.iter_mut().enumerate() {
        for (b, v) in row.iter_mut().enumerate() {
            *v = (b as f32 / 255.0 - MEAN[c]) / STD[c];
        }
    }
    table
}

/// Writes image `src` (HWC bytes) cropped by `crop` and normalised into `dst` (CHW floats).
/// Pixels that the crop takes from the padding are zero before normalisation, as in
/// torchvision.
pub fn write_normalised(src: &[u8], crop: Crop, dst: &mut [f32]) {
    static TABLE: std::sync::OnceLock<[[f32; 256]; CHANNELS]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(normalised_table);
    let plane = SIDE * SIDE;
    for y in 0..SIDE {
        let sy = (y + crop.dy).wrapping_sub(PADDING);
        for x in 0..SIDE {
            let cx = if crop.flip { SIDE - 1 - x } else { x };
            let sx = (cx + crop.dx).wrapping_sub(PADDING);
            let inside = sy < SIDE && sx < SIDE;
            for c in 0..CHANNELS {
                let byte = if inside {
                    src[(sy * SIDE + sx) * CHANNELS + c]
                } else {
                    0
                };
                dst[c * plane + y * SIDE + x] = table[c][byte as usize];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient_image() -> Vec<u8> {
        (0..IMAGE_BYTES).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn centre_crop_is_plain_normalisation() {
        let src = gradient_image();
        let mut dst = vec![0.0; IMAGE_BYTES];
        write_normalised(&src, Crop::NONE, &mut dst);
        for (i, &b) in src.iter().enumerate() {
            let (pixel, c) = (i / 3, i % 3);
            let expected = (b as f32 / 255.0 - MEAN[c]) / STD[c];
            assert_eq!(dst[c * 1024 + pixel], expected);
        }
    }

    #[test]
    fn crop_shifts_and_pads_with_zero_and_flip_mirrors() {
        let src = gradient_image();
        let mut dst = vec![0.0; IMAGE_BYTES];
        write_normalised(
            &src,
            Crop {
                dx: 0,
                dy: 0,
                flip: false,
            },
            &mut dst,
        );
        // Shifted by 4 down and right: the top-left 4×4 corner comes from the padding.
        assert_eq!(dst[0], -MEAN[0] / STD[0]);
        let mut centre = vec![0.0; IMAGE_BYTES];
        write_normalised(&src, Crop::NONE, &mut centre);
        assert_eq!(dst[4 * 32 + 4], centre[0]);
        let mut flipped = vec![0.0; IMAGE_BYTES];
        write_normalised(
            &src,
            Crop {
                flip: true,
                ..Crop::NONE
            },
            &mut flipped,
        );
        for y in 0..32 {
            for x in 0..32 {
                assert_eq!(flipped[y * 32 + x], centre[y * 32 + 31 - x]);
            }
        }
    }

    #[test]
    fn draws_are_deterministic_cover_the_range_and_differ_by_epoch() {
        let draws: Vec<Crop> = (0..2000).map(|i| Crop::draw(7, 1, i)).collect();
        assert_eq!(
            draws,
            (0..2000).map(|i| Crop::draw(7, 1, i)).collect::<Vec<_>>()
        );
        assert!(draws.iter().all(|c| c.dx <= 8 && c.dy <= 8));
        for v in 0..=8 {
            assert!(draws.iter().any(|c| c.dx == v) && draws.iter().any(|c| c.dy == v));
        }
        let flips = draws.iter().filter(|c| c.flip).count();
        assert!((900..1100).contains(&flips), "{flips}");
        assert_ne!(
            draws,
            (0..2000).map(|i| Crop::draw(7, 2, i)).collect::<Vec<_>>()
        );
    }
}
