//! Right-censored times: epochs to a threshold that some runs never reach.

use statrs::distribution::{ContinuousCDF, Normal};

/// A time that is either observed (the event happened then) or censored (not by then).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Censored {
    /// The event time, or the last time watched.
    pub time: f64,
    /// Whether the event was observed at `time`.
    pub observed: bool,
}

/// The two-sample log-rank test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogRank {
    /// (O − E) / √V for the first sample: positive when it has more events than expected
    /// under no difference (its events come sooner).
    pub z: f64,
    /// Two-sided p-value, from the normal (χ²₁) approximation.
    pub p: f64,
}

/// The log-rank (Mantel–Cox) test of `x` against `y`, as scipy's `stats.logrank`; a run
/// censored at t is still at risk at t. `None` when no event was observed.
pub fn log_rank(x: &[Censored], y: &[Censored]) -> Option<LogRank> {
    let mut times: Vec<f64> = x
        .iter()
        .chain(y)
        .filter(|c| c.observed)
        .map(|c| c.time)
        .collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    let (mut observed_minus_expected, mut variance) = (0.0, 0.0);
    for &t in &times {
        let at_risk = |s: &[Censored]| s.iter().filter(|c| c.time >= t).count() as f64;
        let events = |s: &[Censored]| s.iter().filter(|c| c.observed && c.time == t).count() as f64;
        let (n1, n) = (at_risk(x), at_risk(x) + at_risk(y));
        let (d1, d) = (events(x), events(x) + events(y));
        observed_minus_expected += d1 - d * n1 / n;
        if n > 1.0 {
            variance += d * (n1 / n) * (1.0 - n1 / n) * (n - d) / (n - 1.0);
        }
    }
    if !super::positive(variance) {
        return None;
    }
    let z = observed_minus_expected / variance.sqrt();
    Some(LogRank {
        z,
        p: 2.0 * Normal::standard().sf(z.abs()),
    })
}

/// The Kaplan–Meier median: the first time the estimated share of runs still without the
/// event falls to one half or below; `None` if it never does.
pub fn kaplan_meier_median(sample: &[Censored]) -> Option<f64> {
    let mut times: Vec<f64> = sample
        .iter()
        .filter(|c| c.observed)
        .map(|c| c.time)
        .collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    let mut surviving = 1.0;
    for t in times {
        let at_risk = sample.iter().filter(|c| c.time >= t).count() as f64;
        let events = sample.iter().filter(|c| c.observed && c.time == t).count() as f64;
        surviving *= 1.0 - events / at_risk;
        if surviving <= 0.5 + 1e-12 {
            return Some(t);
        }
    }
    None
}
