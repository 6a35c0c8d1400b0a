//! The bootstrap, exact where it can be, and the Almost Stochastic Order test built on it.

use std::borrow::Cow;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{mean, z_quantile};

/// Bootstrap settings: how many resamples and the seed they are drawn from.
///
/// When the bootstrap distribution has no more distinct resamples (multisets) than
/// `resamples` — every study of ≤ 5 seeds per arm — it is enumerated exactly, each multiset
/// weighted by its multinomial probability: the limit the drawn bootstrap tends to, with no
/// Monte-Carlo error. Otherwise `resamples` resamples are drawn from a ChaCha8 stream chosen
/// by the seed and a label of the statistic, so results do not depend on analysis order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resampler {
    /// Resamples drawn when the distribution is not enumerated (≥ 10,000 recommended).
    pub resamples: usize,
    /// The seed of every drawn resample.
    pub seed: u64,
}

/// A discrete distribution: values with weights summing to 1.
type Weighted = Vec<(f64, f64)>;

impl Resampler {
    /// The bootstrap distribution of `statistic` over the samples, each resampled with
    /// replacement at its own size (and handed over sorted); `label` picks the random stream.
    pub fn distribution(
        &self,
        samples: &[&[f64]],
        label: &str,
        mut statistic: impl FnMut(&[&[f64]]) -> f64,
    ) -> Weighted {
        let multisets: f64 = samples.iter().map(|s| multiset_count(s.len())).product();
        if multisets <= self.resamples as f64 {
            let lists: Vec<Vec<(Vec<f64>, f64)>> =
                samples.iter().map(|s| all_multisets(s)).collect();
            let mut out = Vec::with_capacity(multisets as usize);
            let mut resample: Vec<&[f64]> = Vec::with_capacity(samples.len());
            // An odometer over one multiset per sample.
            let mut choice = vec![0usize; lists.len()];
            loop {
                resample.clear();
                let mut weight = 1.0;
                for (list, &k) in lists.iter().zip(&choice) {
                    resample.push(&list[k].0);
                    weight *= list[k].1;
                }
                out.push((statistic(&resample), weight));
                let Some(wheel) = (0..choice.len())
                    .rev()
                    .find(|&w| choice[w] + 1 < lists[w].len())
                else {
                    return out;
                };
                choice[wheel] += 1;
                choice[wheel + 1..].fill(0);
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(fnv1a(label));
        let weight = 1.0 / self.resamples as f64;
        let mut drawn: Vec<Vec<f64>> = samples.iter().map(|s| vec![0.0; s.len()]).collect();
        let mut out = Vec::with_capacity(self.resamples);
        for _ in 0..self.resamples {
            for (target, source) in drawn.iter_mut().zip(samples) {
                for slot in target.iter_mut() {
                    *slot = source[rng.random_range(0..source.len())];
                }
                target.sort_unstable_by(f64::total_cmp);
            }
            let views: Vec<&[f64]> = drawn.iter().map(Vec::as_slice).collect();
            out.push((statistic(&views), weight));
        }
        out
    }

    /// The percentile interval of the mean at `level`.
    pub fn mean_interval(&self, values: &[f64], level: f64, label: &str) -> (f64, f64) {
        let distribution = self.distribution(&[values], label, |r| mean(r[0]));
        percentile_interval(distribution, level)
    }

    /// The percentile interval of the difference of means `a − b` at `level`, the two samples
    /// resampled independently.
    pub fn difference_interval(&self, a: &[f64], b: &[f64], level: f64, label: &str) -> (f64, f64) {
        let distribution = self.distribution(&[a, b], label, |r| mean(r[0]) - mean(r[1]));
        percentile_interval(distribution, level)
    }
}

/// The number of multisets of size n drawn from n values, C(2n − 1, n): the distinct resamples
/// a bootstrap of n values can draw.
pub fn multiset_count(n: usize) -> f64 {
    (0..n).fold(1.0, |acc, i| acc * (n + i) as f64 / (i + 1) as f64)
}

/// Every multiset of `sample.len()` values drawn from `sample`, sorted, with its probability
/// n! / (∏ cᵢ! · nⁿ) (cᵢ: how often the i-th value is drawn).
fn all_multisets(sample: &[f64]) -> Vec<(Vec<f64>, f64)> {
    let mut sorted = sample.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let n = sorted.len();
    let factorial = |k: usize| (1..=k).map(|r| r as f64).product::<f64>();
    let orderings = factorial(n) / (n as f64).powi(n as i32);
    let mut out = Vec::with_capacity(multiset_count(n) as usize);
    // Multisets as non-decreasing index sequences.
    let mut indices = vec![0usize; n];
    loop {
        let mut probability = orderings;
        let mut run = 1;
        for k in 1..=n {
            if k < n && indices[k] == indices[k - 1] {
                run += 1;
            } else {
                probability /= factorial(run);
                run = 1;
            }
        }
        out.push((indices.iter().map(|&i| sorted[i]).collect(), probability));
        let Some(position) = (0..n).rev().find(|&k| indices[k] + 1 < n) else {
            return out;
        };
        let value = indices[position] + 1;
        indices[position..].fill(value);
    }
}

/// The interval between the (1 − level)/2 and (1 + level)/2 quantiles of a discrete
/// distribution, each the smallest value whose cumulative weight reaches it.
fn percentile_interval(mut distribution: Weighted, level: f64) -> (f64, f64) {
    distribution.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let quantile = |p: f64| {
        let mut cumulative = 0.0;
        for &(value, weight) in &distribution {
            cumulative += weight;
            if cumulative >= p - 1e-12 {
                return value;
            }
        }
        distribution.last().expect("non-empty").0
    };
    (quantile((1.0 - level) / 2.0), quantile((1.0 + level) / 2.0))
}

/// FNV-1a: a hash of a label that no Rust release changes.
fn fnv1a(label: &str) -> u64 {
    label.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The values in increasing order, copied only if they are not already.
fn sorted(values: &[f64]) -> Cow<'_, [f64]> {
    if values.is_sorted_by(|p, q| p <= q) {
        Cow::Borrowed(values)
    } else {
        let mut copy = values.to_vec();
        copy.sort_unstable_by(f64::total_cmp);
        Cow::Owned(copy)
    }
}

/// The violation ratio ε_W₂(F, G) of Dror et al. (2019): the share of the squared
/// Wasserstein-2 distance between the empirical quantile functions of `a` and `b` where `a`'s
/// lies below `b`'s, ∫ (G⁻¹ − F⁻¹)₊² dt / ∫ (G⁻¹ − F⁻¹)² dt, integrated exactly over the
/// step functions. 0 when the distributions are equal (no violation of `a` ≥ `b`), as
/// deep-significance returns (with a warning of a division by zero).
pub fn violation_ratio(a: &[f64], b: &[f64]) -> f64 {
    let Areas { violation, total } = areas(a, b);
    if total == 0.0 { 0.0 } else { violation / total }
}

/// The two integrals of the violation ratio.
struct Areas {
    /// ∫ (G⁻¹ − F⁻¹)₊² dt.
    violation: f64,
    /// ∫ (G⁻¹ − F⁻¹)² dt, the squared Wasserstein-2 distance.
    total: f64,
}

fn areas(a: &[f64], b: &[f64]) -> Areas {
    let (a, b) = (sorted(a), sorted(b));
    let (n, m) = (a.len(), b.len());
    // The quantile function of a sample of n is the i-th order statistic on ((i−1)/n, i/n].
    let (mut i, mut j) = (0, 0);
    let (mut t, mut violation, mut total) = (0.0f64, 0.0f64, 0.0f64);
    while i < n && j < m {
        let next_a = (i + 1) as f64 / n as f64;
        let next_b = (j + 1) as f64 / m as f64;
        let end = next_a.min(next_b);
        let difference = b[j] - a[i];
        let squared = difference * difference * (end - t);
        total += squared;
        if difference > 0.0 {
            violation += squared;
        }
        t = end;
        // Advance whichever step ends here (both on a shared break point, by exact fractions).
        let (step_a, step_b) = ((i + 1) * m, (j + 1) * n);
        if step_a <= step_b {
            i += 1;
        }
        if step_b <= step_a {
            j += 1;
        }
    }
    Areas { violation, total }
}

/// ε_min of the Almost Stochastic Order test (Dror et al. 2019, as deep-significance computes
/// it with bootstrap samples the size of the data): the upper confidence bound
/// ε̂ + Φ⁻¹(1 − α) · sd*(ε) of the violation ratio, clipped to [0, 1], with sd* the
/// standard deviation of its bootstrap distribution. ε_min < τ (0.2 recommended) says `a` is almost
/// stochastically larger than `b`; ε_min(a, b) ≈ 1 − ε_min(b, a). `None` when the two samples
/// have the same distribution: no order to find, where the ratio's 0 would read as "better".
pub fn aso_eps_min(
    a: &[f64],
    b: &[f64],
    alpha: f64,
    resampler: &Resampler,
    label: &str,
) -> Option<f64> {
    if areas(a, b).total == 0.0 {
        return None;
    }
    let estimate = violation_ratio(a, b);
    let distribution = resampler.distribution(&[a, b], label, |r| violation_ratio(r[0], r[1]));
    let centre: f64 = distribution
        .iter()
        .map(|&(value, weight)| weight * value)
        .sum();
    let spread = distribution
        .iter()
        .map(|&(value, weight)| weight * (value - centre).powi(2))
        .sum::<f64>()
        .sqrt();
    Some((estimate + z_quantile(1.0 - alpha) * spread).clamp(0.0, 1.0))
}
