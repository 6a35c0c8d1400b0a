//! A fast path for the one PNG layout CIFAR-10 uses: 8-bit RGB, not interlaced.
//!
//! The general decoder (`png`, through `image`) builds a fresh inflater with its tables for
//! every image, which costs ~70 µs on a 32×32 image here — most of the decoding time. This
//! path reuses one inflater per thread (`miniz_oxide`) and unfilters the scanlines itself.
//! Anything it does not handle, or finds malformed, goes to the general decoder, which then
//! decides; so it changes speed, not results (tested against the general decoder on every
//! sample image).

use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};

const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
const BYTES_PER_PIXEL: usize = 3;

/// Buffers reused from one image to the next on a thread.
pub(crate) struct Scratch {
    inflater: Box<DecompressorOxide>,
    compressed: Vec<u8>,
    filtered: Vec<u8>,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            inflater: Box::default(),
            compressed: Vec::new(),
            filtered: Vec::new(),
        }
    }
}

fn be32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?))
}

/// Decodes `bytes` into `out` (`side × side × 3` bytes) if it is an 8-bit RGB, non-interlaced
/// PNG of that size; `None` otherwise, or when anything is malformed.
pub(crate) fn decode_rgb8(
    bytes: &[u8],
    side: usize,
    out: &mut [u8],
    scratch: &mut Scratch,
) -> Option<()> {
    let mut rest = bytes.strip_prefix(SIGNATURE)?;
    scratch.compressed.clear();
    let mut header_ok = false;
    loop {
        let length = be32(rest)? as usize;
        let kind = rest.get(4..8)?;
        let data = rest.get(8..8 + length)?;
        rest = rest.get(8 + length + 4..)?; // skip the CRC
        match kind {
            b"IHDR" => {
                let (width, height) = (be32(data)? as usize, be32(data.get(4..)?)? as usize);
                // bit depth 8, colour type 2 (RGB), compression 0, filter 0, interlace 0
                header_ok = width == side && height == side && data.get(8..13)? == [8, 2, 0, 0, 0];
                if !header_ok {
                    return None;
                }
            }
            b"IDAT" if header_ok => scratch.compressed.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
    }
    let stride = side * BYTES_PER_PIXEL;
    scratch.filtered.resize(side * (stride + 1), 0);
    scratch.inflater.init();
    let flags = inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER
        | inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF
        | inflate_flags::TINFL_FLAG_COMPUTE_ADLER32;
    let (status, _, written) = decompress(
        &mut scratch.inflater,
        &scratch.compressed,
        &mut scratch.filtered,
        0,
        flags,
    );
    if status != TINFLStatus::Done || written != scratch.filtered.len() {
        return None;
    }
    for (y, line) in scratch.filtered.chunks_exact(stride + 1).enumerate() {
        let (filter, line) = (line[0], &line[1..]);
        let (done, current) = out.split_at_mut(y * stride);
        let current = &mut current[..stride];
        let previous = (y > 0).then(|| &done[(y - 1) * stride..]);
        unfilter(filter, line, previous, current)?;
    }
    Some(())
}

/// Reverses the PNG filter `filter` of one scanline into `current`.
fn unfilter(filter: u8, line: &[u8], previous: Option<&[u8]>, current: &mut [u8]) -> Option<()> {
    let up = |i: usize| previous.map_or(0, |p| p[i]);
    for i in 0..line.len() {
        let left = if i >= BYTES_PER_PIXEL {
            current[i - BYTES_PER_PIXEL]
        } else {
            0
        };
        let predicted = match filter {
            0 => 0,
            1 => left,
            2 => up(i),
            3 => ((u16::from(left) + u16::from(up(i))) / 2) as u8,
            4 => {
                let upper_left = if i >= BYTES_PER_PIXEL {
                    up(i - BYTES_PER_PIXEL)
                } else {
                    0
                };
                paeth(left, up(i), upper_left)
            }
            _ => return None,
        };
        current[i] = line[i].wrapping_add(predicted);
    }
    Some(())
}

/// The Paeth predictor of the PNG specification.
fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};

    fn encoded(pixels: &[u8], side: u32, filter: FilterType) -> Vec<u8> {
        let mut out = Vec::new();
        PngEncoder::new_with_quality(&mut out, CompressionType::Default, filter)
            .write_image(pixels, side, side, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    #[test]
    fn every_filter_decodes_on_the_fast_path() {
        let pixels: Vec<u8> = (0..32 * 32 * 3)
            .map(|i| ((i * 7) ^ (i >> 5)) as u8)
            .collect();
        let mut scratch = Scratch::new();
        for filter in [
            FilterType::NoFilter,
            FilterType::Sub,
            FilterType::Up,
            FilterType::Avg,
            FilterType::Paeth,
            FilterType::Adaptive,
        ] {
            let mut out = vec![0u8; pixels.len()];
            decode_rgb8(&encoded(&pixels, 32, filter), 32, &mut out, &mut scratch)
                .unwrap_or_else(|| panic!("{filter:?} left the fast path"));
            assert_eq!(out, pixels, "{filter:?}");
        }
    }

    #[test]
    fn other_layouts_and_damage_leave_the_fast_path() {
        let mut scratch = Scratch::new();
        let mut out = vec![0u8; 32 * 32 * 3];
        let small = encoded(&[9u8; 16 * 16 * 3], 16, FilterType::Sub);
        assert!(decode_rgb8(&small, 32, &mut out, &mut scratch).is_none());
        let mut damaged = encoded(&[9u8; 32 * 32 * 3], 32, FilterType::Sub);
        let middle = damaged.len() / 2;
        damaged.truncate(middle);
        assert!(decode_rgb8(&damaged, 32, &mut out, &mut scratch).is_none());
        assert!(decode_rgb8(b"not a png", 32, &mut out, &mut scratch).is_none());
    }
}
