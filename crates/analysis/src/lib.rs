//! # lrlab-analysis
//!
//! Answers the study's question from its run directories: does an adaptive learning-rate
//! schedule converge faster, over-fit less or end better than the standard ones?
//!
//! It reads run directories through `lrlab-runs` (`<experiment>/<arm>/seed-<k>/` with
//! `run.json` and `epochs.parquet`, the format documented there) and depends on no other lrlab
//! crate, so runs written by any tool in that format can be analysed. Runs are grouped by what
//! their specifications say they are: the seeds of an arm are pooled, and arms compared, only
//! when their specifications differ in nothing else (the schedule of an arm, the
//! seed of a run).
//!
//! ```no_run
//! use lrlab_analysis::{Settings, analyze, read_runs, write_report};
//! # fn main() -> lrlab_analysis::Result<()> {
//! let runs = read_runs(&["runs"])?;
//! let settings = Settings::default();
//! let analysis = analyze(&runs, &settings)?;
//! for experiment in &analysis.experiments {
//!     let folder = std::path::Path::new("reports").join(&experiment.name);
//!     write_report(experiment, &settings, &folder)?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! **The design** ([`Design`]) comes from the runs' records: a primary metric registered in
//! the experiment file before any run (default `test_acc_at_best_val`), the threshold, the
//! baselines, and reference arms reported apart; every other arm is under test.
//!
//! **Per run** ([`RunMetrics`]): best validation accuracy and its epoch, test accuracy there
//! and at the end, epochs to the threshold (right-censored when never reached), the
//! generalisation gaps (descriptions: neither sign is better), the area under the
//! validation-accuracy curve, and how the run fits ([`Fit`]: underfit, overfit, fits,
//! diverged). A diverged run counts as a failure: chance-level accuracies, and censored at its
//! planned end unless it reached the threshold first.
//!
//! **Per arm against each baseline** ([`Comparison`]): the paired t-test by seed (the seeds
//! share weights, data order, augmentation and dropout across arms) with the exact sign-flip
//! permutation test beside it; Holm's correction within a family — the *primary* family, every
//! arm under test against every baseline on the primary metric, gives the verdicts; every
//! other comparison forms the *secondary* family. The smallest detectable difference in the
//! metric's units and the seeds a 1- and a 0.5-point difference would need; unpaired
//! descriptions (Welch's t, the exact Mann–Whitney U, Hedges' g, a bootstrap interval), ASO
//! at the family's Bonferroni level, and for censored times the log-rank test.

mod compare;
mod design;
mod error;
mod metrics;
mod plots;
mod protocol;
mod report;
mod runs;
pub mod stats;
mod study;
mod tables;

pub use compare::{Comparison, Family, MOST_SEEDS};
pub use design::Design;
pub use error::{AnalysisError, Result};
pub use metrics::{Better, Context, Fit, LAST_EPOCHS, Metric, RISE, RunMetrics, TimeToThreshold};
pub use plots::draw_plots;
pub use protocol::{ArmSettings, Protocol, Setting};
pub use report::render;
pub use runs::{Curves, Run, Status, check_comparable, read_run, read_runs};
pub use stats::Resampler;
pub use study::{
    ASO_TAU, Analysis, ArmCurves, Experiment, Quantity, RunRow, Settings, Summary, analyze,
};
pub use tables::{frame, write_tables};

use std::path::{Path, PathBuf};

/// Writes an experiment's report into `folder`: `report.md`, the tables (`runs`, `summary`,
/// `comparisons` as CSV and parquet) and the plots (PNG and SVG); returns the files written.
pub fn write_report(
    experiment: &Experiment,
    settings: &Settings,
    folder: &Path,
) -> Result<Vec<PathBuf>> {
    let mut written = write_tables(experiment, folder)?;
    let plots = draw_plots(experiment, folder)?;
    for plot in &plots {
        written.push(folder.join(plot));
        written.push(folder.join(plot).with_extension("svg"));
    }
    let report = folder.join("report.md");
    tables::write_file(&report, render(experiment, settings, &plots).as_bytes())?;
    written.push(report);
    Ok(written)
}
