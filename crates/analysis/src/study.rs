//! From runs to the answer: per-run metrics, per-arm summaries and every adaptive arm
//! compared with every baseline on every metric.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{AnalysisError, Result};
use crate::metrics::{Metric, RunMetrics};
use crate::protocol::Protocol;
use crate::runs::{Run, Status, by_experiment, check_comparable};
use crate::stats::{self, Censored, MwMethod, Resampler};

/// How to analyse.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The validation-accuracy threshold of convergence; `None`: each experiment's own, from
    /// `run.json` (`analysis.threshold`).
    pub threshold: Option<f64>,
    /// The baseline arms; empty: each experiment's own (`analysis.baselines` of `run.json`).
    pub baselines: Vec<String>,
    /// The confidence level of intervals (0.95).
    pub level: f64,
    /// The significance level of tests, of ASO's confidence and of the detectable effect (0.05).
    pub alpha: f64,
    /// The power at which the minimum detectable effect is stated (0.8).
    pub power: f64,
    /// The bootstrap.
    pub resampler: Resampler,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            threshold: None,
            baselines: Vec::new(),
            level: 0.95,
            alpha: 0.05,
            power: 0.8,
            resampler: Resampler {
                resamples: 10_000,
                seed: 0,
            },
        }
    }
}

/// The ε_min below which ASO calls an arm almost stochastically better (deep-significance's τ).
pub const ASO_TAU: f64 = 0.2;

/// The analysis of every experiment found.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// One per experiment, in name order.
    pub experiments: Vec<Experiment>,
}

/// The analysis of one experiment.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// Its name.
    pub name: String,
    /// The validation-accuracy threshold used.
    pub threshold: f64,
    /// The baseline arms.
    pub baselines: Vec<String>,
    /// Every arm: baselines first, then the others in name order.
    pub arms: Vec<String>,
    /// What the runs are: the settings every arm shares, and each arm's own.
    pub protocol: Protocol,
    /// Every run found, counted in the statistics or not.
    pub runs: Vec<RunRow>,
    /// Per arm and metric.
    pub summary: Vec<Summary>,
    /// Every other arm against every baseline, per metric.
    pub comparisons: Vec<Comparison>,
    /// Per arm, the mean curves over its counted runs.
    pub curves: Vec<ArmCurves>,
    /// The smallest difference, in standard deviations, a t-test detects at the study's sizes.
    pub minimum_detectable_effect: Option<f64>,
}

/// One run and what it achieved.
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    /// The experiment.
    pub experiment: String,
    /// The arm.
    pub arm: String,
    /// The seed.
    pub seed: u64,
    /// Where it stands.
    pub status: Status,
    /// Whether it counts in the statistics: its status is an outcome ([`Status::is_outcome`]:
    /// complete, or diverged with its finished epochs) and an epoch finished.
    pub counted: bool,
    /// Its metrics, if an epoch finished.
    pub metrics: Option<RunMetrics>,
}

/// One arm's distribution of one metric.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The experiment.
    pub experiment: String,
    /// The arm.
    pub arm: String,
    /// The metric's key.
    pub metric: &'static str,
    /// Counted runs.
    pub n: usize,
    /// Runs without a value: censored (threshold never reached) or no test set.
    pub n_missing: usize,
    /// The mean; `None` when a run is censored or none has a value.
    pub mean: Option<f64>,
    /// The standard deviation.
    pub sd: Option<f64>,
    /// The t-interval of the mean.
    pub t_lo: Option<f64>,
    /// Its upper end.
    pub t_hi: Option<f64>,
    /// The bootstrap percentile interval of the mean.
    pub boot_lo: Option<f64>,
    /// Its upper end.
    pub boot_hi: Option<f64>,
    /// The Kaplan–Meier median (epochs to threshold only).
    pub km_median: Option<f64>,
}

/// One arm against one baseline on one metric; statistics are arm minus baseline, `None`
/// where a test does not apply.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The experiment.
    pub experiment: String,
    /// The metric's key.
    pub metric: &'static str,
    /// The arm.
    pub arm: String,
    /// The baseline arm.
    pub baseline: String,
    /// Runs of the arm with a value (epochs to threshold: counted runs, censored included).
    pub n_arm: usize,
    /// Runs of the baseline.
    pub n_baseline: usize,
    /// The arm's mean (`None` with censoring).
    pub mean_arm: Option<f64>,
    /// The baseline's mean.
    pub mean_baseline: Option<f64>,
    /// Welch's t.
    pub welch_t: Option<f64>,
    /// Its degrees of freedom.
    pub welch_df: Option<f64>,
    /// Its two-sided p.
    pub welch_p: Option<f64>,
    /// The paired t over seeds run by both arms.
    pub paired_t: Option<f64>,
    /// Its two-sided p.
    pub paired_p: Option<f64>,
    /// Seeds run by both.
    pub n_pairs: usize,
    /// Mann–Whitney U of the arm.
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
    /// The primary test's p, Holm-adjusted over the experiment's comparisons on this metric.
    pub holm_p: Option<f64>,
    /// ASO's ε_min for "the arm is better" (in the metric's better direction).
    pub aso_eps_min: Option<f64>,
    /// Log-rank z (epochs to threshold; positive: the arm reaches it sooner).
    pub logrank_z: Option<f64>,
    /// Its two-sided p.
    pub logrank_p: Option<f64>,
    /// Share of the arm's runs that reached the threshold (epochs to threshold only).
    pub reached_arm: Option<f64>,
    /// Share of the baseline's runs that reached it.
    pub reached_baseline: Option<f64>,
    /// The test Holm adjusts: `welch`, or `logrank` for epochs to threshold.
    pub primary_test: &'static str,
    /// Its unadjusted p.
    pub primary_p: Option<f64>,
}

/// An arm's per-epoch means and ±1 standard-deviation bands over its counted runs.
#[derive(Clone, Debug)]
pub struct ArmCurves {
    /// The arm.
    pub arm: String,
    /// Per quantity, the points `(epoch, mean, mean − sd, mean + sd)`.
    pub bands: BTreeMap<Quantity, Vec<[f64; 4]>>,
}

/// A per-epoch quantity that is plotted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quantity {
    /// Validation accuracy.
    ValAcc,
    /// Validation loss.
    ValLoss,
    /// Learning rate.
    Lr,
    /// `val_loss − train_loss`.
    LossGap,
    /// `train_acc − val_acc`.
    AccGap,
}

impl Quantity {
    fn of(self, run: &Run, row: usize) -> f64 {
        let c = &run.curves;
        match self {
            Quantity::ValAcc => c.val_acc[row],
            Quantity::ValLoss => c.val_loss[row],
            Quantity::Lr => c.lr[row],
            Quantity::LossGap => c.val_loss[row] - c.train_loss[row],
            Quantity::AccGap => c.train_acc[row] - c.val_acc[row],
        }
    }

    const ALL: [Quantity; 5] = [
        Quantity::ValAcc,
        Quantity::ValLoss,
        Quantity::Lr,
        Quantity::LossGap,
        Quantity::AccGap,
    ];
}

/// Analyses runs (from [`crate::read_runs`]).
pub fn analyze(runs: &[Run], settings: &Settings) -> Result<Analysis> {
    if runs.is_empty() {
        return Err(AnalysisError::setting(
            "no runs found: the folders given hold no run.json or epochs.parquet",
        ));
    }
    let grouped = by_experiment(runs);
    let experiments = grouped
        .into_par_iter()
        .map(|(name, arms)| analyze_experiment(name, &arms, settings))
        .collect::<Result<Vec<_>>>()?;
    Ok(Analysis { experiments })
}

fn analyze_experiment(
    name: &str,
    arms: &BTreeMap<&str, Vec<&Run>>,
    settings: &Settings,
) -> Result<Experiment> {
    check_comparable(name, arms)?;
    let all: Vec<&Run> = arms.values().flatten().copied().collect();
    let threshold = resolve_threshold(name, &all, settings)?;
    let baselines = resolve_baselines(name, arms, &all, settings)?;
    let mut ordered: Vec<String> = baselines.clone();
    ordered.extend(
        arms.keys()
            .filter(|arm| !baselines.iter().any(|b| b == *arm))
            .map(|arm| arm.to_string()),
    );
    let runs: Vec<RunRow> = ordered
        .iter()
        .flat_map(|arm| &arms[arm.as_str()])
        .map(|run| {
            let metrics = RunMetrics::of(&run.curves, threshold);
            RunRow {
                experiment: name.to_owned(),
                arm: run.arm().to_owned(),
                seed: run.seed(),
                status: run.status(),
                counted: run.status().is_outcome() && metrics.is_some(),
                metrics,
            }
        })
        .collect();
    let counted = |arm: &str| -> Vec<(u64, RunMetrics)> {
        runs.iter()
            .filter(|r| r.counted && r.arm == arm)
            .map(|r| (r.seed, r.metrics.expect("counted runs have metrics")))
            .collect()
    };
    let per_arm: BTreeMap<&str, Vec<(u64, RunMetrics)>> = ordered
        .iter()
        .map(|arm| (arm.as_str(), counted(arm)))
        .collect();

    let mut summary = Vec::new();
    for arm in &ordered {
        for metric in Metric::ALL {
            summary.push(summarise(
                name,
                arm,
                metric,
                &per_arm[arm.as_str()],
                settings,
            ));
        }
    }
    let mut comparisons = Vec::new();
    for metric in Metric::ALL {
        let first = comparisons.len();
        for arm in ordered.iter().filter(|a| !baselines.contains(a)) {
            for baseline in &baselines {
                comparisons.push(compare(
                    name,
                    metric,
                    (arm, &per_arm[arm.as_str()]),
                    (baseline, &per_arm[baseline.as_str()]),
                    settings,
                ));
            }
        }
        let family = &mut comparisons[first..];
        let primary: Vec<Option<f64>> = family.iter().map(|c| c.primary_p).collect();
        for (comparison, adjusted) in family.iter_mut().zip(stats::holm(&primary)) {
            comparison.holm_p = adjusted;
        }
    }
    let curves = ordered
        .iter()
        .map(|arm| arm_curves(arm, &arms[arm.as_str()]))
        .collect();
    let sizes: Vec<usize> = per_arm.values().map(Vec::len).collect();
    let smallest = sizes.iter().copied().min().unwrap_or(0);
    Ok(Experiment {
        name: name.to_owned(),
        threshold,
        baselines,
        protocol: Protocol::of(&ordered, arms),
        arms: ordered,
        runs,
        summary,
        comparisons,
        curves,
        minimum_detectable_effect: stats::minimum_detectable_effect(
            smallest,
            smallest,
            settings.alpha,
            settings.power,
        ),
    })
}

fn resolve_threshold(name: &str, runs: &[&Run], settings: &Settings) -> Result<f64> {
    let threshold = match settings.threshold {
        Some(threshold) => threshold,
        None => {
            let mut recorded = runs.iter().map(|r| (r.record.analysis.threshold, r));
            let Some((threshold, first)) = recorded.next() else {
                return Err(AnalysisError::setting(format!(
                    "experiment `{name}` has no run; pass --threshold (a validation accuracy in \
                     [0, 1])"
                )));
            };
            if let Some((other, run)) = recorded.find(|(t, _)| *t != threshold) {
                return Err(AnalysisError::setting(format!(
                    "experiment `{name}`: {} records threshold {threshold} but {} records {other}; \
                     pass --threshold to choose one",
                    first.path.join("run.json").display(),
                    run.path.join("run.json").display()
                )));
            }
            threshold
        }
    };
    if !(0.0..=1.0).contains(&threshold) {
        return Err(AnalysisError::setting(format!(
            "threshold {threshold} is not a validation accuracy in [0, 1]"
        )));
    }
    Ok(threshold)
}

fn resolve_baselines(
    name: &str,
    arms: &BTreeMap<&str, Vec<&Run>>,
    runs: &[&Run],
    settings: &Settings,
) -> Result<Vec<String>> {
    let known = || arms.keys().copied().collect::<Vec<_>>().join(", ");
    if !settings.baselines.is_empty() {
        if let Some(missing) = settings
            .baselines
            .iter()
            .find(|b| !arms.contains_key(b.as_str()))
        {
            return Err(AnalysisError::setting(format!(
                "--baseline {missing}: experiment `{name}` has no such arm (it has: {})",
                known()
            )));
        }
        return Ok(settings.baselines.clone());
    }
    let first = runs.first().map(|r| (&r.record.analysis.baselines, r));
    if let (Some((baselines, first)), Some(other)) = (
        first,
        first.and_then(|(b, _)| runs.iter().find(|r| r.record.analysis.baselines != *b)),
    ) {
        return Err(AnalysisError::setting(format!(
            "experiment `{name}`: {} records baselines [{}] but {} records [{}]; pass \
             --baseline to choose",
            first.path.join("run.json").display(),
            baselines.join(", "),
            other.path.join("run.json").display(),
            other.record.analysis.baselines.join(", ")
        )));
    }
    let recorded: Vec<String> = first
        .map(|(b, _)| b.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|b| arms.contains_key(b.as_str()))
        .collect();
    if recorded.is_empty() {
        return Err(AnalysisError::setting(format!(
            "experiment `{name}`: no baseline arm among its runs (run.json's \
             `analysis.baselines` names none of: {}); pass --baseline ARM",
            known()
        )));
    }
    Ok(recorded)
}

fn label(experiment: &str, metric: Metric, arms: &[&str]) -> String {
    format!("{experiment}/{}/{}", metric.key(), arms.join("/"))
}

fn summarise(
    experiment: &str,
    arm: &str,
    metric: Metric,
    runs: &[(u64, RunMetrics)],
    settings: &Settings,
) -> Summary {
    let values: Vec<f64> = runs.iter().filter_map(|(_, m)| m.value(metric)).collect();
    let censored = metric == Metric::EpochsToThreshold && values.len() < runs.len();
    let usable = !values.is_empty() && !censored;
    let describe = usable.then(|| stats::describe(&values, settings.level));
    let boot = usable.then(|| {
        settings.resampler.mean_interval(
            &values,
            settings.level,
            &label(experiment, metric, &[arm]),
        )
    });
    let km_median = (metric == Metric::EpochsToThreshold)
        .then(|| stats::kaplan_meier_median(&times(runs)))
        .flatten();
    Summary {
        experiment: experiment.to_owned(),
        arm: arm.to_owned(),
        metric: metric.key(),
        n: runs.len(),
        n_missing: runs.len() - values.len(),
        mean: describe.map(|d| d.mean),
        sd: describe.and_then(|d| d.sd),
        t_lo: describe.and_then(|d| d.t_interval).map(|i| i.0),
        t_hi: describe.and_then(|d| d.t_interval).map(|i| i.1),
        boot_lo: boot.map(|b| b.0),
        boot_hi: boot.map(|b| b.1),
        km_median,
    }
}

fn times(runs: &[(u64, RunMetrics)]) -> Vec<Censored> {
    runs.iter()
        .map(|(_, m)| Censored {
            time: f64::from(m.epochs_to_threshold.epochs),
            observed: m.epochs_to_threshold.reached,
        })
        .collect()
}

fn compare(
    experiment: &str,
    metric: Metric,
    (arm, arm_runs): (&str, &[(u64, RunMetrics)]),
    (baseline, base_runs): (&str, &[(u64, RunMetrics)]),
    settings: &Settings,
) -> Comparison {
    let values = |runs: &[(u64, RunMetrics)]| -> Vec<f64> {
        runs.iter().filter_map(|(_, m)| m.value(metric)).collect()
    };
    let (a, b) = (values(arm_runs), values(base_runs));
    let survival = metric == Metric::EpochsToThreshold;
    // Epochs to threshold are only numbers when every run reached it; otherwise only the
    // tests that respect censoring apply.
    let complete = !survival || (a.len() == arm_runs.len() && b.len() == base_runs.len());
    let numeric = complete && !a.is_empty() && !b.is_empty();
    let pairs: Vec<(f64, f64)> = arm_runs
        .iter()
        .filter_map(|(seed, m)| {
            let other = base_runs.iter().find(|(s, _)| s == seed)?;
            Some((m.value(metric)?, other.1.value(metric)?))
        })
        .collect();
    let (pa, pb): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    let welch = numeric.then(|| stats::welch(&a, &b)).flatten();
    let paired = numeric.then(|| stats::paired(&pa, &pb)).flatten();
    let hedges = numeric
        .then(|| stats::hedges_g(&a, &b, settings.level))
        .flatten();
    let name = label(experiment, metric, &[arm, baseline]);
    let boot = numeric.then(|| {
        settings
            .resampler
            .difference_interval(&a, &b, settings.level, &name)
    });
    // Ranks stay meaningful under censoring when every censored run was watched at least as
    // long as any run needed to reach the threshold ("not reached" ranks above all times).
    let censored = survival.then(|| (times(arm_runs), times(base_runs)));
    let ranked: Option<(Vec<f64>, Vec<f64>)> = if complete {
        Some((a.clone(), b.clone()))
    } else {
        let (ta, tb) = censored
            .as_ref()
            .expect("only epochs to threshold are censored");
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
    };
    let mw = ranked.and_then(|(x, y)| stats::mann_whitney(&x, &y));
    let direction = if metric.higher_is_better() { 1.0 } else { -1.0 };
    let oriented = |v: &[f64]| v.iter().map(|x| direction * x).collect::<Vec<_>>();
    let aso = numeric.then(|| {
        stats::aso_eps_min(
            &oriented(&a),
            &oriented(&b),
            settings.alpha,
            &settings.resampler,
            &format!("{name}/aso"),
        )
    });
    let logrank = censored
        .as_ref()
        .and_then(|(ta, tb)| stats::log_rank(ta, tb));
    let reached = |runs: &[(u64, RunMetrics)], with: &[f64]| {
        (survival && !runs.is_empty()).then(|| with.len() as f64 / runs.len() as f64)
    };
    let mean = |v: &[f64]| (complete && !v.is_empty()).then(|| stats::mean(v));
    let (primary_test, primary_p) = if survival {
        ("logrank", logrank.map(|l| l.p))
    } else {
        ("welch", welch.map(|w| w.p))
    };
    Comparison {
        experiment: experiment.to_owned(),
        metric: metric.key(),
        arm: arm.to_owned(),
        baseline: baseline.to_owned(),
        n_arm: if survival { arm_runs.len() } else { a.len() },
        n_baseline: if survival { base_runs.len() } else { b.len() },
        mean_arm: mean(&a),
        mean_baseline: mean(&b),
        welch_t: welch.map(|w| w.t),
        welch_df: welch.map(|w| w.df),
        welch_p: welch.map(|w| w.p),
        paired_t: paired.map(|p| p.t),
        paired_p: paired.map(|p| p.p),
        n_pairs: pairs.len(),
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
        holm_p: None,
        aso_eps_min: aso,
        logrank_z: logrank.map(|l| l.z),
        logrank_p: logrank.map(|l| l.p),
        reached_arm: reached(arm_runs, &a),
        reached_baseline: reached(base_runs, &b),
        primary_test,
        primary_p,
    }
}

fn arm_curves(arm: &str, runs: &[&Run]) -> ArmCurves {
    let counted: Vec<&&Run> = runs
        .iter()
        .filter(|r| r.status().is_outcome() && !r.curves.is_empty())
        .collect();
    let mut epochs: Vec<u32> = counted
        .iter()
        .flat_map(|r| r.curves.epoch.iter().copied())
        .collect();
    epochs.sort_unstable();
    epochs.dedup();
    let mut bands = BTreeMap::new();
    for quantity in Quantity::ALL {
        let mut points = Vec::with_capacity(epochs.len());
        for &epoch in &epochs {
            let values: Vec<f64> = counted
                .iter()
                .filter_map(|r| {
                    let row = r.curves.epoch.binary_search(&epoch).ok()?;
                    Some(quantity.of(r, row))
                })
                .collect();
            let m = stats::mean(&values);
            let sd = if values.len() >= 2 {
                stats::variance(&values).sqrt()
            } else {
                0.0
            };
            points.push([f64::from(epoch), m, m - sd, m + sd]);
        }
        bands.insert(quantity, points);
    }
    ArmCurves {
        arm: arm.to_owned(),
        bands,
    }
}
