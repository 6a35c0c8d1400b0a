//! The design of an experiment as its runs record it — the pre-registered primary endpoint, the
//! convergence threshold, the baselines, the references and so the arms under test — with the
//! analysis' overrides, and each disagreement between runs named.

use std::collections::BTreeMap;
use std::fmt::Debug;

use lrlab_runs::{AnalysisPlan, Tuning};

use crate::error::{AnalysisError, Result};
use crate::metrics::{Better, Metric};
use crate::runs::Run;
use crate::study::Settings;

/// What an experiment compares, and on what.
#[derive(Clone, Debug, PartialEq)]
pub struct Design {
    /// The metric the verdicts are drawn from, named in the experiment file before any run.
    pub primary: Metric,
    /// The validation accuracy of convergence.
    pub threshold: f64,
    /// The arms every other arm is compared with.
    pub baselines: Vec<String>,
    /// The arms under test: neither baselines nor references, in name order.
    pub tested: Vec<String>,
    /// Arms reported apart (compared with the baselines on secondary terms only).
    pub references: Vec<String>,
    /// Choices made when analysing that differ from the plan the runs registered (a baseline or
    /// threshold passed to analyze), each with what was registered; empty when none.
    pub departures: Vec<String>,
    /// How the arms' settings were tuned, when `cargo xtask tune` chose them.
    pub tuning: Option<Tuning>,
}

impl Design {
    /// Every arm: baselines, then the arms under test, then the references.
    pub fn arms(&self) -> Vec<String> {
        [&self.baselines, &self.tested, &self.references]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The design of experiment `name` from its runs' records and `settings`.
    pub(crate) fn of(
        name: &str,
        arms: &BTreeMap<&str, Vec<&Run>>,
        settings: &Settings,
    ) -> Result<Design> {
        let runs: Vec<&Run> = arms.values().flatten().copied().collect();
        let known = || arms.keys().copied().collect::<Vec<_>>().join(", ");
        let primary_key = recorded(name, &runs, "primary_metric", |p| p.primary_metric.clone())?;
        let primary = Metric::from_key(&primary_key)
            .filter(|m| m.better() != Better::Neither)
            .ok_or_else(|| {
                AnalysisError::setting(format!(
                    "experiment `{name}`: its runs record the primary metric `{primary_key}`, \
                     which is not a metric with a better direction"
                ))
            })?;
        let mut departures = Vec::new();
        let threshold = match settings.threshold {
            Some(threshold) => {
                let registered = recorded(name, &runs, "threshold", |p| p.threshold);
                departures.extend(departure("threshold", &threshold, registered));
                threshold
            }
            None => recorded(name, &runs, "threshold", |p| p.threshold)?,
        };
        if !(0.0..=1.0).contains(&threshold) {
            return Err(AnalysisError::setting(format!(
                "threshold {threshold} is not a validation accuracy in [0, 1]"
            )));
        }
        let baselines = match settings.baselines.is_empty() {
            false => {
                let given = &settings.baselines;
                if let Some(missing) = given.iter().find(|b| !arms.contains_key(b.as_str())) {
                    return Err(AnalysisError::setting(format!(
                        "--baseline {missing}: experiment `{name}` has no such arm (it has: {})",
                        known()
                    )));
                }
                let registered = recorded(name, &runs, "baselines", |p| p.baselines.clone());
                departures.extend(departure(
                    "baselines",
                    given,
                    registered.map(|r| present(r, arms)),
                ));
                given.clone()
            }
            true => present(
                recorded(name, &runs, "baselines", |p| p.baselines.clone())?,
                arms,
            ),
        };
        if baselines.is_empty() {
            return Err(AnalysisError::setting(format!(
                "experiment `{name}`: no baseline arm among its runs (run.json's \
                 `analysis.baselines` names none of: {}); pass --baseline ARM",
                known()
            )));
        }
        let references: Vec<String> = present(
            recorded(name, &runs, "references", |p| p.references.clone())?,
            arms,
        )
        .into_iter()
        .filter(|r| !baselines.contains(r))
        .collect();
        let tested = arms
            .keys()
            .map(|arm| arm.to_string())
            .filter(|arm| !baselines.contains(arm) && !references.contains(arm))
            .collect();
        let tuning = recorded(name, &runs, "tuning", |p| p.tuning.clone())?;
        Ok(Design {
            primary,
            threshold,
            baselines,
            tested,
            references,
            departures,
            tuning,
        })
    }
}

/// An analysis choice `given` for `key` that departs from the one the runs registered, in
/// words; `None` where they agree.
fn departure<T: PartialEq + Debug>(key: &str, given: &T, registered: Result<T>) -> Option<String> {
    match registered {
        Ok(registered) if registered == *given => None,
        Ok(registered) => Some(format!("{key} {given:?} (registered: {registered:?})")),
        Err(_) => Some(format!(
            "{key} {given:?} (the runs registered different ones)"
        )),
    }
}

/// The arms of `names` that have runs, in the order given.
fn present(names: Vec<String>, arms: &BTreeMap<&str, Vec<&Run>>) -> Vec<String> {
    names
        .into_iter()
        .filter(|a| arms.contains_key(a.as_str()))
        .collect()
}

/// The value of `key` of the analysis plan every run records; runs that disagree are an error
/// naming two of them.
fn recorded<T: PartialEq + Debug>(
    name: &str,
    runs: &[&Run],
    key: &str,
    get: impl Fn(&AnalysisPlan) -> T,
) -> Result<T> {
    let Some(first) = runs.first() else {
        return Err(AnalysisError::setting(format!(
            "experiment `{name}` has no run"
        )));
    };
    let value = get(&first.record.analysis);
    match runs.iter().find(|r| get(&r.record.analysis) != value) {
        None => Ok(value),
        Some(other) => Err(AnalysisError::setting(format!(
            "experiment `{name}`: {} records {key} {value:?} but {} records {:?}; the runs of \
             one experiment share one analysis plan: rerun `cargo xtask experiment` on them (it \
             brings every run's plan up to date), or pass the choice to analyze where it has a \
             flag (--threshold, --baseline)",
            first.path.join("run.json").display(),
            other.path.join("run.json").display(),
            get(&other.record.analysis)
        ))),
    }
}
