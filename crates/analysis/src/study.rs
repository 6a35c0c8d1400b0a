//! From runs to the answer: per-run metrics, per-arm summaries, and every arm under test
//! compared with every baseline — the primary endpoint for the verdicts, everything else as
//! secondary — each family corrected for its multiplicity.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::compare::{self, Comparison, Family, Pairing, SeedMetrics, adjust_families, label};
use crate::design::Design;
use crate::error::{AnalysisError, Result};
use crate::metrics::{Context, Fit, Metric, RunMetrics};
use crate::protocol::Protocol;
use crate::runs::{Run, Status, by_experiment, check_comparable};
use crate::stats::{self, Resampler};

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
    /// What it compares, and on what: the primary endpoint, the threshold, the baselines, the
    /// arms under test, the references.
    pub design: Design,
    /// Every arm: baselines, arms under test, references.
    pub arms: Vec<String>,
    /// What the runs are: the settings every arm shares, and each arm's own.
    pub protocol: Protocol,
    /// Every run found, counted in the statistics or not.
    pub runs: Vec<RunRow>,
    /// Per arm and metric.
    pub summary: Vec<Summary>,
    /// Every arm under test and every reference against every baseline, per metric.
    pub comparisons: Vec<Comparison>,
    /// Per arm, the mean curves over its counted runs.
    pub curves: Vec<ArmCurves>,
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
    /// The git commit of the code that last trained it, where known.
    pub commit: Option<String>,
    /// The device it last trained on (`cpu`, `cuda:N`).
    pub device: String,
}

impl RunRow {
    /// How the run fits its data at the end, if an epoch finished.
    pub fn fit(&self) -> Option<Fit> {
        self.metrics.map(|m| m.fit)
    }
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
    /// Counted runs that diverged (their accuracies count as chance level).
    pub n_diverged: usize,
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
    let design = Design::of(name, arms, settings)?;
    let ordered = design.arms();
    let runs: Vec<RunRow> = ordered
        .iter()
        .flat_map(|arm| &arms[arm.as_str()])
        .map(|run| run_row(name, run, design.threshold))
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
    let summary = ordered
        .iter()
        .flat_map(|arm| Metric::ALL.map(|metric| (arm, metric)))
        .map(|(arm, metric)| summarise(name, arm, metric, &per_arm[arm.as_str()], settings))
        .collect();
    let mut comparisons = comparisons(name, &design, &per_arm, settings);
    adjust_families(&mut comparisons);
    let curves = ordered
        .iter()
        .map(|arm| arm_curves(arm, &arms[arm.as_str()]))
        .collect();
    Ok(Experiment {
        name: name.to_owned(),
        protocol: Protocol::of(&ordered, arms),
        arms: ordered,
        design,
        runs,
        summary,
        comparisons,
        curves,
    })
}

/// A run's row: its metrics, read against its plan (a diverged run counts as a failure).
fn run_row(experiment: &str, run: &Run, threshold: f64) -> RunRow {
    let spec = run.spec();
    let context = Context {
        threshold,
        planned_epochs: spec.train.epochs,
        chance: 1.0 / spec.resolved.classes.max(1) as f64,
        diverged: run.status() == Status::Diverged,
    };
    let metrics = RunMetrics::of(&run.curves, &context);
    RunRow {
        experiment: experiment.to_owned(),
        arm: run.arm().to_owned(),
        seed: run.seed(),
        status: run.status(),
        counted: run.status().is_outcome() && metrics.is_some(),
        metrics,
        commit: run.record.git_commit.clone(),
        device: run.record.device.clone(),
    }
}

/// Every arm under test and every reference against every baseline on every metric: on the
/// primary metric the arms under test form the primary family, all else the secondary one.
fn comparisons(
    experiment: &str,
    design: &Design,
    per_arm: &BTreeMap<&str, Vec<(u64, RunMetrics)>>,
    settings: &Settings,
) -> Vec<Comparison> {
    let challengers: Vec<(&String, bool)> = design
        .tested
        .iter()
        .map(|arm| (arm, true))
        .chain(design.references.iter().map(|arm| (arm, false)))
        .collect();
    let pairs = challengers.len() * design.baselines.len();
    let primary_size = design.tested.len() * design.baselines.len();
    let family_of = |tested: bool, metric: Metric| match tested && metric == design.primary {
        true => (Family::Primary, primary_size),
        false => (Family::Secondary, pairs * Metric::ALL.len() - primary_size),
    };
    let jobs: Vec<(Metric, &String, bool, &String)> = Metric::ALL
        .into_iter()
        .flat_map(|metric| {
            challengers.iter().flat_map(move |&(arm, tested)| {
                design
                    .baselines
                    .iter()
                    .map(move |baseline| (metric, arm, tested, baseline))
            })
        })
        .collect();
    jobs.into_par_iter()
        .map(|(metric, arm, tested, baseline)| {
            let pairing = Pairing {
                experiment,
                metric,
                arm: (arm, &per_arm[arm.as_str()]),
                baseline: (baseline, &per_arm[baseline.as_str()]),
                family: family_of(tested, metric),
            };
            compare::compare(&pairing, settings)
        })
        .collect()
}

fn summarise(
    experiment: &str,
    arm: &str,
    metric: Metric,
    runs: &SeedMetrics,
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
        .then(|| stats::kaplan_meier_median(&compare::times(runs)))
        .flatten();
    Summary {
        experiment: experiment.to_owned(),
        arm: arm.to_owned(),
        metric: metric.key(),
        n: runs.len(),
        n_missing: runs.len() - values.len(),
        n_diverged: runs.iter().filter(|(_, m)| m.diverged).count(),
        mean: describe.map(|d| d.mean),
        sd: describe.and_then(|d| d.sd),
        t_lo: describe.and_then(|d| d.t_interval).map(|i| i.0),
        t_hi: describe.and_then(|d| d.t_interval).map(|i| i.1),
        boot_lo: boot.map(|b| b.0),
        boot_hi: boot.map(|b| b.1),
        km_median,
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
