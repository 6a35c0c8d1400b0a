//! Stratified, seeded splits: a validation set carved from train, and optional subsets.

use crate::error::{DataError, Result};
use crate::seed::rng;
use rand::seq::SliceRandom;

/// How the validation split is carved and how large each split may be.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitConfig {
    /// Fraction of the training file held out for validation; in (0, 1). Default 0.1.
    pub val_fraction: f64,
    /// Seed of the split, independent of the training seed. Default 0.
    pub seed: u64,
    /// Stratified caps on the size of each split (for presets and tests); none by default.
    pub limit: Limits,
}

/// Optional caps on the number of examples of each split.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// At most this many training examples.
    pub train: Option<usize>,
    /// At most this many validation examples.
    pub val: Option<usize>,
    /// At most this many test examples.
    pub test: Option<usize>,
}

impl std::fmt::Display for Limits {
    /// The limits set, as `, limits: train 128, val 64` (nothing when none is).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set: Vec<String> = [
            ("train", self.train),
            ("val", self.val),
            ("test", self.test),
        ]
        .into_iter()
        .filter_map(|(name, limit)| limit.map(|n| format!("{name} {n}")))
        .collect();
        match set.is_empty() {
            true => Ok(()),
            false => write!(f, ", limits: {}", set.join(", ")),
        }
    }
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            val_fraction: 0.1,
            seed: 0,
            limit: Limits::default(),
        }
    }
}

/// The three splits of a dataset.
#[derive(Clone, Debug)]
pub struct Splits<T> {
    /// Training examples (the training file less the validation split).
    pub train: T,
    /// Validation examples, carved from the training file.
    pub val: T,
    /// Test examples, from the test file, never used for decisions.
    pub test: T,
}

/// Streams of the split seed, so that carving and limiting draw independently.
const CARVE_STREAM: u64 = 1;
const LIMIT_STREAM: u64 = 2;

/// Picks `count` of the examples, stratified by label: each class gives its share of `count`
/// (largest remainders settle the rounding), chosen uniformly within the class.
/// Returns `(rest, picked)`, each in ascending order.
pub fn stratified_pick(
    labels: &[u8],
    classes: usize,
    count: usize,
    seed: u64,
    stream: u64,
) -> (Vec<usize>, Vec<usize>) {
    let total = labels.len();
    let count = count.min(total);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &label) in labels.iter().enumerate() {
        by_class[label as usize].push(i);
    }
    // Quotas by largest remainder: floor of each exact share, then one more to the classes
    // with the largest fractional parts (ties to the lower label).
    let exact: Vec<f64> = by_class
        .iter()
        .map(|members| count as f64 * members.len() as f64 / total.max(1) as f64)
        .collect();
    let mut quota: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..classes).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    let missing = count - quota.iter().sum::<usize>();
    let topped: Vec<usize> = order
        .into_iter()
        .filter(|&c| quota[c] < by_class[c].len())
        .take(missing)
        .collect();
    for class in topped {
        quota[class] += 1;
    }
    let mut rng = rng(seed, &[stream]);
    let (mut rest, mut picked) = (Vec::new(), Vec::new());
    for (members, &take) in by_class.iter_mut().zip(&quota) {
        members.shuffle(&mut rng);
        picked.extend_from_slice(&members[..take]);
        rest.extend_from_slice(&members[take..]);
    }
    rest.sort_unstable();
    picked.sort_unstable();
    (rest, picked)
}

/// Checks the configuration.
pub(crate) fn check(config: &SplitConfig) -> Result<()> {
    if !(config.val_fraction > 0.0 && config.val_fraction < 1.0) {
        return Err(DataError::Config {
            field: "val_fraction",
            message: format!("must lie in (0, 1), got {}", config.val_fraction),
        });
    }
    Ok(())
}

/// The indices of (train, val) in the training file.
pub(crate) fn carve(
    labels: &[u8],
    classes: usize,
    config: &SplitConfig,
) -> (Vec<usize>, Vec<usize>) {
    let val_count = (config.val_fraction * labels.len() as f64).round() as usize;
    let (train, val) = stratified_pick(labels, classes, val_count, config.seed, CARVE_STREAM);
    (
        limit(labels, classes, train, config.limit.train, config.seed, 0),
        limit(labels, classes, val, config.limit.val, config.seed, 1),
    )
}

/// The indices of the test split in the test file: all of them, or a stratified subset when
/// limited.
pub(crate) fn test(labels: &[u8], classes: usize, config: &SplitConfig) -> Vec<usize> {
    let all = (0..labels.len()).collect();
    limit(labels, classes, all, config.limit.test, config.seed, 2)
}

/// A stratified subset of `indices` of at most `cap` examples (split `which` of three).
fn limit(
    labels: &[u8],
    classes: usize,
    indices: Vec<usize>,
    cap: Option<usize>,
    seed: u64,
    which: u64,
) -> Vec<usize> {
    match cap {
        Some(cap) if cap < indices.len() => {
            let subset: Vec<u8> = indices.iter().map(|&i| labels[i]).collect();
            let (_, picked) =
                stratified_pick(&subset, classes, cap, seed, LIMIT_STREAM * 8 + which);
            picked.into_iter().map(|p| indices[p]).collect()
        }
        _ => indices,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(labels: &[u8], indices: &[usize], classes: usize) -> Vec<usize> {
        let mut c = vec![0; classes];
        for &i in indices {
            c[labels[i] as usize] += 1;
        }
        c
    }

    #[test]
    fn balanced_classes_split_exactly() {
        let labels: Vec<u8> = (0..50_000).map(|i| (i % 10) as u8).collect();
        let (train, val) = carve(&labels, 10, &SplitConfig::default());
        assert_eq!((train.len(), val.len()), (45_000, 5_000));
        assert_eq!(counts(&labels, &val, 10), vec![500; 10]);
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..50_000).collect::<Vec<_>>(), "a partition");
    }

    #[test]
    fn unbalanced_classes_keep_proportions_and_the_total() {
        let labels: Vec<u8> = (0..1003).map(|i| if i % 3 == 0 { 0 } else { 1 }).collect();
        let (rest, picked) = stratified_pick(&labels, 2, 101, 7, 1);
        assert_eq!(picked.len(), 101);
        assert_eq!(rest.len() + picked.len(), 1003);
        let c = counts(&labels, &picked, 2);
        assert!(c[0].abs_diff(34) <= 1 && c[1].abs_diff(67) <= 1, "{c:?}");
    }

    #[test]
    fn same_seed_same_split_other_seed_other_split() {
        let labels: Vec<u8> = (0..2000).map(|i| (i % 10) as u8).collect();
        let a = carve(&labels, 10, &SplitConfig::default());
        assert_eq!(a, carve(&labels, 10, &SplitConfig::default()));
        let b = carve(
            &labels,
            10,
            &SplitConfig {
                seed: 1,
                ..Default::default()
            },
        );
        assert_ne!(a.1, b.1);
    }

    #[test]
    fn limits_are_stratified_subsets() {
        let labels: Vec<u8> = (0..2000).map(|i| (i % 10) as u8).collect();
        let config = SplitConfig {
            limit: Limits {
                train: Some(300),
                val: Some(50),
                test: None,
            },
            ..Default::default()
        };
        let (train, val) = carve(&labels, 10, &config);
        assert_eq!(counts(&labels, &train, 10), vec![30; 10]);
        assert_eq!(counts(&labels, &val, 10), vec![5; 10]);
        let full = carve(&labels, 10, &SplitConfig::default());
        assert!(
            val.iter().all(|i| full.1.contains(i)),
            "limit never crosses splits"
        );
    }

    #[test]
    fn fraction_outside_the_open_interval_is_rejected() {
        for f in [0.0, 1.0, -0.1, f64::NAN] {
            let err = check(&SplitConfig {
                val_fraction: f,
                ..Default::default()
            })
            .unwrap_err();
            assert!(err.to_string().contains("val_fraction"), "{err}");
        }
    }
}
