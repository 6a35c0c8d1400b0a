//! One arm against one baseline on one metric: the paired tests by seed first, the unpaired
//! ones beside them as descriptions, and the family the comparison belongs to.

use serde::Serialize;

use crate::metrics::{Better, Metric, RunMetrics};
use crate::stats::{self, Censored, MwMethod};
use crate::study::Settings;

/// The seeds of an arm's counted runs and their metrics.
pub(crate) type SeedMetrics = [(u64, RunMetrics)];

/// Which multiplicity family a comparison belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Every arm under test against every baseline on the primary metric: the verdicts.
    Primary,
    /// Everything else (other metrics; reference arms): reported, corrected together.
    Secondary,
}

/// One arm against one baseline on one metric; statistics are arm minus baseline, `None`
/// where a test does not apply. The primary test is the paired t-test over the seeds both arms
/// ran (the log-rank test for the censored epochs to the threshold); Holm adjusts it over the
/// comparison's family.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The experiment.
    pub experiment: String,
    /// The metric's key.
    pub metric: &'static str,
    /// `primary` or `secondary`.
    pub family: Family,
    /// The arm.
    pub arm: String,
    /// The baseline arm.
    pub baseline: String,
    /// Runs of the arm with a value (epochs to threshold: counted runs, censored included).
    pub n_arm: usize,
    /// Runs of the baseline.
    pub n_baseline: usize,
    /// Diverged runs of the arm (counted, as failures).
    pub diverged_arm: usize,
    /// Diverged runs of the baseline.
    pub diverged_baseline: usize,
    /// The arm's mean (`None` with censoring).
    pub mean_arm: Option<f64>,
    /// The baseline's mean.
    pub mean_baseline: Option<f64>,
    /// Seeds run by both arms with a value: the pairs of the paired tests.
    pub n_pairs: usize,
    /// The mean of the paired differences.
    pub diff_paired: Option<f64>,
    /// The standard deviation of the paired differences.
    pub sd_paired: Option<f64>,
    /// The paired t over the pairs (scipy's `ttest_rel`); `None` when every pair differs by
    /// the same amount (scipy: ±inf with p = 0 for a non-zero difference, NaN for none), a
    /// spread of zero that says nothing about the spread a new seed would show.
    pub paired_t: Option<f64>,
    /// Its two-sided p.
    pub paired_p: Option<f64>,
    /// The exact sign-flip permutation test's two-sided p over the pairs.
    pub signflip_p: Option<f64>,
    /// The smallest p the sign-flip test can give with these pairs (0.25 with 3).
    pub signflip_min_p: Option<f64>,
    /// The primary test's p, Holm-adjusted over the comparison's family.
    pub holm_p: Option<f64>,
    /// The smallest true difference, in the metric's units, that the paired t-test detects
    /// with the study's power at the family's strictest Holm level, from the observed spread of
    /// the paired differences (`None` without a spread).
    pub mde: Option<f64>,
    /// Seeds needed to detect a one-point difference (0.01) likewise (accuracies only; `None`
    /// without a spread, or when more than [`MOST_SEEDS`] would be needed).
    pub seeds_for_1_point: Option<usize>,
    /// Seeds needed to detect a half-point difference (0.005).
    pub seeds_for_half_point: Option<usize>,
    /// Welch's t (unpaired; a description).
    pub welch_t: Option<f64>,
    /// Its degrees of freedom.
    pub welch_df: Option<f64>,
    /// Its two-sided p.
    pub welch_p: Option<f64>,
    /// Mann–Whitney U of the arm (unpaired; a description).
    pub mw_u: Option<f64>,
    /// Its two-sided p.
    pub mw_p: Option<f64>,
    /// The smallest p the test can give at these sizes.
    pub mw_min_p: Option<f64>,
    /// Exact or asymptotic.
    pub mw_method: Option<MwMethod>,
    /// Hedges' g.
    pub hedges_g: Option<f64>,
    /// Its interval's lower end.
    pub hedges_g_lo: Option<f64>,
    /// Its upper end.
    pub hedges_g_hi: Option<f64>,
    /// The difference of means.
    pub diff: Option<f64>,
    /// Its bootstrap interval's lower end.
    pub diff_boot_lo: Option<f64>,
    /// Its upper end.
    pub diff_boot_hi: Option<f64>,
    /// ASO's ε_min for "the arm is better" (in the metric's better direction), at the family's
    /// Bonferroni level; `None` for a metric with no better direction, or two samples of one
    /// distribution.
    pub aso_eps_min: Option<f64>,
    /// Log-rank z (epochs to threshold; positive: the arm reaches it sooner).
    pub logrank_z: Option<f64>,
    /// Its two-sided p.
    pub logrank_p: Option<f64>,
    /// Share of the arm's runs that reached the threshold (epochs to threshold only).
    pub reached_arm: Option<f64>,
    /// Share of the baseline's runs that reached it.
    pub reached_baseline: Option<f64>,
    /// The test Holm adjusts: `paired_t`, or `logrank` for epochs to threshold.
    pub primary_test: &'static str,
    /// Its unadjusted p.
    pub primary_p: Option<f64>,
}

/// A label for the random stream of a statistic, independent of analysis order.
pub(crate) fn label(experiment: &str, metric: Metric, arms: &[&str]) -> String {
    format!("{experiment}/{}/{}", metric.key(), arms.join("/"))
}

/// The runs' times to the threshold, censored where never reached.
pub(crate) fn times(runs: &SeedMetrics) -> Vec<Censored> {
    runs.iter()
        .map(|(_, m)| Censored {
            time: f64::from(m.epochs_to_threshold.epochs),
            observed: m.epochs_to_threshold.reached,
        })
        .collect()
}

/// What a comparison is between and where it stands.
pub(crate) struct Pairing<'a> {
    /// The experiment.
    pub experiment: &'a str,
    /// The metric.
    pub metric: Metric,
    /// The arm and its runs.
    pub arm: (&'a str, &'a SeedMetrics),
    /// The baseline and its runs.
    pub baseline: (&'a str, &'a SeedMetrics),
    /// Its family, and how many comparisons the family holds.
    pub family: (Family, usize),
}

/// The comparison of `pairing`; Holm's adjustment is the family's, made afterwards.
pub(crate) fn compare(pairing: &Pairing<'_>, settings: &Settings) -> Comparison {
    let Pairing {
        experiment,
        metric,
        arm: (arm, arm_runs),
        baseline: (baseline, base_runs),
        family: (family, family_size),
    } = *pairing;
    let values = |runs: &SeedMetrics| -> Vec<f64> {
        runs.iter().filter_map(|(_, m)| m.value(metric)).collect()
    };
    let (a, b) = (values(arm_runs), values(base_runs));
    let survival = metric == Metric::EpochsToThreshold;
    // Epochs to threshold are only numbers when every run reached it; otherwise only the
    // tests that respect censoring apply.
    let complete = !survival || (a.len() == arm_runs.len() && b.len() == base_runs.len());
    let numeric = complete && !a.is_empty() && !b.is_empty();
    let pairs = pairs(metric, arm_runs, base_runs);
    let (pa, pb): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    let differences: Vec<f64> = pairs.iter().map(|(x, y)| x - y).collect();
    let sd_paired =
        (numeric && differences.len() >= 2).then(|| stats::variance(&differences).sqrt());
    // The same difference in every seed: no spread to test against, and no power to compute.
    let spread = sd_paired.filter(|sd| *sd > 0.0);
    let paired = numeric.then(|| stats::paired(&pa, &pb)).flatten();
    let sign_flip = numeric.then(|| stats::sign_flip(&pa, &pb)).flatten();
    let welch = numeric.then(|| stats::welch(&a, &b)).flatten();
    let hedges = numeric
        .then(|| stats::hedges_g(&a, &b, settings.level))
        .flatten();
    let name = label(experiment, metric, &[arm, baseline]);
    let boot = numeric.then(|| {
        settings
            .resampler
            .difference_interval(&a, &b, settings.level, &name)
    });
    let censored = survival.then(|| (times(arm_runs), times(base_runs)));
    let mw = ranks(complete.then(|| (a.clone(), b.clone())), censored.as_ref())
        .and_then(|(x, y)| stats::mann_whitney(&x, &y));
    // Bonferroni over the family, for ASO's decisions and the detectable difference.
    let level = settings.alpha / family_size.max(1) as f64;
    let aso = direction(metric).filter(|_| numeric).and_then(|sign| {
        let oriented = |v: &[f64]| v.iter().map(|x| sign * x).collect::<Vec<_>>();
        stats::aso_eps_min(
            &oriented(&a),
            &oriented(&b),
            level,
            &settings.resampler,
            &format!("{name}/aso"),
        )
    });
    let detectable = |delta: f64| {
        let sd = spread?;
        (metric.is_accuracy() && !survival)
            .then(|| stats::pairs_needed(sd, delta, level, settings.power, MOST_SEEDS))
            .flatten()
    };
    let logrank = censored
        .as_ref()
        .and_then(|(ta, tb)| stats::log_rank(ta, tb));
    let reached = |runs: &SeedMetrics, with: &[f64]| {
        (survival && !runs.is_empty()).then(|| with.len() as f64 / runs.len() as f64)
    };
    let mean = |v: &[f64]| (complete && !v.is_empty()).then(|| stats::mean(v));
    let diverged = |runs: &SeedMetrics| runs.iter().filter(|(_, m)| m.diverged).count();
    let (primary_test, primary_p) = match survival {
        true => ("logrank", logrank.map(|l| l.p)),
        false => ("paired_t", paired.map(|p| p.p)),
    };
    Comparison {
        experiment: experiment.to_owned(),
        metric: metric.key(),
        family,
        arm: arm.to_owned(),
        baseline: baseline.to_owned(),
        n_arm: if survival { arm_runs.len() } else { a.len() },
        n_baseline: if survival { base_runs.len() } else { b.len() },
        diverged_arm: diverged(arm_runs),
        diverged_baseline: diverged(base_runs),
        mean_arm: mean(&a),
        mean_baseline: mean(&b),
        n_pairs: pairs.len(),
        diff_paired: (numeric && !differences.is_empty()).then(|| stats::mean(&differences)),
        sd_paired,
        paired_t: paired.map(|p| p.t),
        paired_p: paired.map(|p| p.p),
        signflip_p: sign_flip.map(|s| s.p),
        signflip_min_p: sign_flip.map(|s| s.min_p),
        holm_p: None,
        mde: spread
            .and_then(|sd| stats::detectable_difference(sd, pairs.len(), level, settings.power)),
        seeds_for_1_point: detectable(0.01),
        seeds_for_half_point: detectable(0.005),
        welch_t: welch.map(|w| w.t),
        welch_df: welch.map(|w| w.df),
        welch_p: welch.map(|w| w.p),
        mw_u: mw.map(|m| m.u),
        mw_p: mw.map(|m| m.p),
        mw_min_p: mw.map(|m| m.min_p),
        mw_method: mw.map(|m| m.method),
        hedges_g: hedges.map(|h| h.g),
        hedges_g_lo: hedges.map(|h| h.lo),
        hedges_g_hi: hedges.map(|h| h.hi),
        diff: numeric.then(|| stats::mean(&a) - stats::mean(&b)),
        diff_boot_lo: boot.map(|b| b.0),
        diff_boot_hi: boot.map(|b| b.1),
        aso_eps_min: aso,
        logrank_z: logrank.map(|l| l.z),
        logrank_p: logrank.map(|l| l.p),
        reached_arm: reached(arm_runs, &a),
        reached_baseline: reached(base_runs, &b),
        primary_test,
        primary_p,
    }
}

/// The most seeds a study is told it would need; beyond, "more than".
pub const MOST_SEEDS: usize = 1000;

/// +1 when larger values are better, −1 when smaller are, `None` for a description.
fn direction(metric: Metric) -> Option<f64> {
    match metric.better() {
        Better::Higher => Some(1.0),
        Better::Lower => Some(-1.0),
        Better::Neither => None,
    }
}

/// The metric of the seeds both arms ran, each with a value, in seed order.
fn pairs(metric: Metric, arm: &SeedMetrics, baseline: &SeedMetrics) -> Vec<(f64, f64)> {
    let mut pairs: Vec<(u64, f64, f64)> = arm
        .iter()
        .filter_map(|(seed, m)| {
            let other = baseline.iter().find(|(s, _)| s == seed)?;
            Some((*seed, m.value(metric)?, other.1.value(metric)?))
        })
        .collect();
    pairs.sort_by_key(|(seed, _, _)| *seed);
    pairs.into_iter().map(|(_, x, y)| (x, y)).collect()
}

/// The values Mann–Whitney ranks: the numbers themselves, or under censoring the times with
/// "not reached" ranked above every time — valid when every censored run was watched at least
/// as long as any run needed to reach the threshold.
fn ranks(
    numbers: Option<(Vec<f64>, Vec<f64>)>,
    censored: Option<&(Vec<Censored>, Vec<Censored>)>,
) -> Option<(Vec<f64>, Vec<f64>)> {
    if numbers.is_some() {
        return numbers;
    }
    let (ta, tb) = censored?;
    let pooled = || ta.iter().chain(tb);
    let last_event = pooled()
        .filter(|c| c.observed)
        .map(|c| c.time)
        .fold(f64::NEG_INFINITY, f64::max);
    let administrative = pooled().all(|c| c.observed || c.time >= last_event);
    let beyond = |c: &Censored| if c.observed { c.time } else { f64::INFINITY };
    administrative.then(|| {
        (
            ta.iter().map(beyond).collect(),
            tb.iter().map(beyond).collect(),
        )
    })
}

/// Holm's adjustment of every comparison's primary p, within its family; a comparison without
/// one (no spread, too few pairs) keeps none but still counts in its family's size.
pub(crate) fn adjust_families(comparisons: &mut [Comparison]) {
    for family in [Family::Primary, Family::Secondary] {
        let members: Vec<usize> = (0..comparisons.len())
            .filter(|&i| comparisons[i].family == family)
            .collect();
        let primary: Vec<Option<f64>> = members.iter().map(|&i| comparisons[i].primary_p).collect();
        for (&i, adjusted) in members.iter().zip(stats::holm(&primary)) {
            comparisons[i].holm_p = adjusted;
        }
    }
}
