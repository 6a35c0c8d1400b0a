//! The Mann–Whitney U test: exact (ties included) for the sample sizes of a study, the normal
//! approximation beyond.

use statrs::distribution::{ContinuousCDF, Normal};

/// How the p-value was computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MwMethod {
    /// From the exact permutation distribution of U (ties at mid-ranks), as scipy's
    /// `mannwhitneyu(…, method="exact")`.
    Exact,
    /// From the normal approximation with tie and continuity corrections, as scipy's
    /// `method="asymptotic"`.
    Asymptotic,
}

/// The result of the test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample: the pairs (x, y) with x > y, ties counting ½.
    pub u: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// The smallest two-sided p-value these sample sizes and ties can give (0.1 at 3 vs 3).
    pub min_p: f64,
    /// How `p` was computed.
    pub method: MwMethod,
}

/// Above this many pooled values the exact distribution costs too much and the normal
/// approximation is good.
const EXACT_LIMIT: usize = 60;

/// The two-sided Mann–Whitney U test of `x` against `y`; `None` if either is empty.
pub fn mann_whitney(x: &[f64], y: &[f64]) -> Option<MannWhitney> {
    if x.is_empty() || y.is_empty() {
        return None;
    }
    let ranks = TiedRanks::of(x, y);
    let (n1, n2) = (x.len(), y.len());
    // Doubled ranks keep mid-ranks integral: U₁ = R₁ − n₁(n₁+1)/2.
    let u = (ranks.doubled_sum_x as f64 - (n1 * (n1 + 1)) as f64) / 2.0;
    if n1 + n2 > EXACT_LIMIT {
        return Some(asymptotic(u, n1, n2, &ranks.group_sizes));
    }
    let distribution = rank_sum_distribution(n1, &ranks);
    let total: f64 = distribution.iter().sum();
    let two_sided = |s: usize| {
        let below: f64 = distribution[..=s].iter().sum();
        let above: f64 = distribution[s..].iter().sum();
        (2.0 * below.min(above) / total).min(1.0)
    };
    let min_p = (0..distribution.len())
        .filter(|&s| distribution[s] > 0.0)
        .map(two_sided)
        .fold(1.0, f64::min);
    Some(MannWhitney {
        u,
        p: two_sided(ranks.doubled_sum_x),
        min_p,
        method: MwMethod::Exact,
    })
}

/// The pooled sample's tie groups in increasing order, each with its doubled mid-rank, and the
/// first sample's doubled rank sum.
struct TiedRanks {
    group_sizes: Vec<usize>,
    doubled_ranks: Vec<usize>,
    doubled_sum_x: usize,
}

impl TiedRanks {
    fn of(x: &[f64], y: &[f64]) -> Self {
        let mut pooled: Vec<(f64, bool)> = x
            .iter()
            .map(|&v| (v, true))
            .chain(y.iter().map(|&v| (v, false)))
            .collect();
        pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut ranks = TiedRanks {
            group_sizes: Vec::new(),
            doubled_ranks: Vec::new(),
            doubled_sum_x: 0,
        };
        let mut start = 0;
        while start < pooled.len() {
            let end = start + pooled[start..].partition_point(|p| p.0 == pooled[start].0);
            let size = end - start;
            // Positions start+1 ..= end share the mid-rank (start + 1 + end) / 2.
            let doubled = start + 1 + end;
            let in_x = pooled[start..end].iter().filter(|p| p.1).count();
            ranks.group_sizes.push(size);
            ranks.doubled_ranks.push(doubled);
            ranks.doubled_sum_x += in_x * doubled;
            start = end;
        }
        ranks
    }
}

/// For every doubled rank sum s, the number of ways to pick `n1` of the pooled values whose
/// doubled ranks add to s (the permutation distribution of R₁), by dynamic programming over
/// the tie groups: a group of size t contributes k values in C(t, k) ways.
fn rank_sum_distribution(n1: usize, ranks: &TiedRanks) -> Vec<f64> {
    let max_sum: usize = {
        let mut largest: Vec<usize> = ranks
            .group_sizes
            .iter()
            .zip(&ranks.doubled_ranks)
            .flat_map(|(&t, &r)| std::iter::repeat_n(r, t))
            .collect();
        largest.sort_unstable_by(|a, b| b.cmp(a));
        largest[..n1].iter().sum()
    };
    let width = max_sum + 1;
    // ways[k * width + s]: k values chosen so far with doubled rank sum s.
    let mut ways = vec![0.0f64; (n1 + 1) * width];
    ways[0] = 1.0;
    for (&size, &rank) in ranks.group_sizes.iter().zip(&ranks.doubled_ranks) {
        let mut next = vec![0.0f64; ways.len()];
        let mut choose = 1.0f64; // C(size, k)
        for k in 0..=size.min(n1) {
            for chosen in 0..=(n1 - k) {
                let row = &ways[chosen * width..(chosen + 1) * width];
                let shift = k * rank;
                let target = (chosen + k) * width;
                for (s, &count) in row.iter().enumerate() {
                    if count != 0.0 && s + shift < width {
                        next[target + s + shift] += count * choose;
                    }
                }
            }
            choose = choose * (size - k) as f64 / (k + 1) as f64;
        }
        ways = next;
    }
    ways[n1 * width..].to_vec()
}

fn asymptotic(u: f64, n1: usize, n2: usize, group_sizes: &[usize]) -> MannWhitney {
    let (a, b) = (n1 as f64, n2 as f64);
    let n = a + b;
    let ties: f64 = group_sizes.iter().map(|&t| (t * t * t - t) as f64).sum();
    let sd = (a * b / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)))).sqrt();
    let big_u = u.max(a * b - u);
    let z = (big_u - a * b / 2.0 - 0.5) / sd;
    let p = (2.0 * Normal::standard().sf(z)).min(1.0);
    let extreme = (a * b - a * b / 2.0 - 0.5) / sd;
    MannWhitney {
        u,
        p,
        min_p: (2.0 * Normal::standard().sf(extreme)).min(1.0),
        method: MwMethod::Asymptotic,
    }
}
