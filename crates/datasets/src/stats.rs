//! Summary statistics of loaded splits, for `cargo xtask data`.

use crate::images::{CHANNELS, Images};

/// Per-channel mean and standard deviation (population, ddof = 0) of the raw pixels scaled to
/// [0, 1], over all the given images; before normalisation and augmentation.
pub fn pixel_mean_std(sets: &[&Images]) -> ([f64; CHANNELS], [f64; CHANNELS]) {
    let mut sum = [0u64; CHANNELS];
    let mut squares = [0u64; CHANNELS];
    let mut count = 0u64;
    for images in sets {
        for pixel in images.pixels.chunks_exact(CHANNELS) {
            for c in 0..CHANNELS {
                let v = u64::from(pixel[c]);
                sum[c] += v;
                squares[c] += v * v;
            }
        }
        count += (images.pixels.len() / CHANNELS) as u64;
    }
    let n = u128::from(count.max(1));
    let mut mean = [0.0; CHANNELS];
    let mut std = [0.0; CHANNELS];
    for c in 0..CHANNELS {
        // Exact integers throughout: n²·variance = n·Σx² − (Σx)²; one rounding at the end.
        let (s, q) = (u128::from(sum[c]), u128::from(squares[c]));
        mean[c] = s as f64 / n as f64 / 255.0;
        std[c] = ((n * q - s * s) as f64).sqrt() / n as f64 / 255.0;
    }
    (mean, std)
}

/// Token counts: their mean, their maximum, and the fraction above `max_len`.
pub fn token_stats(lengths: &[usize], max_len: usize) -> (f64, usize, f64) {
    let n = lengths.len().max(1) as f64;
    let mean = lengths.iter().sum::<usize>() as f64 / n;
    let max = lengths.iter().copied().max().unwrap_or(0);
    let truncated = lengths.iter().filter(|&&l| l > max_len).count() as f64 / n;
    (mean, max, truncated)
}

/// How many examples of each class `labels` holds.
pub fn label_counts(labels: &[u8], classes: usize) -> Vec<usize> {
    let mut counts = vec![0; classes];
    for &l in labels {
        counts[l as usize] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_statistics_of_a_known_image() {
        // Two pixels: (0, 255, 51) and (255, 255, 153).
        let images = Images {
            pixels: vec![0, 255, 51, 255, 255, 153],
            labels: vec![0],
        };
        let (mean, std) = pixel_mean_std(&[&images]);
        assert_eq!(mean, [0.5, 1.0, 0.4]);
        assert!((std[0] - 0.5).abs() < 1e-15 && std[1] == 0.0 && (std[2] - 0.2).abs() < 1e-15);
    }

    #[test]
    fn token_statistics() {
        assert_eq!(token_stats(&[10, 200, 129, 128], 128), (116.75, 200, 0.5));
        assert_eq!(label_counts(&[1, 0, 1, 1], 2), [1, 3]);
    }
}
