//! `report.md`: the answer in words and tables, with what the sample size allows one to say.

use std::fmt::Write;

use crate::metrics::Metric;
use crate::study::{ASO_TAU, Comparison, Experiment, Settings, Summary};

/// The metrics a verdict speaks of, in the order it names them.
const VERDICT_METRICS: [Metric; 6] = [
    Metric::FinalTestAcc,
    Metric::TestAccAtBestVal,
    Metric::BestValAcc,
    Metric::EpochsToThreshold,
    Metric::ValAccAuc,
    Metric::FinalAccGap,
];

fn number(value: Option<f64>) -> String {
    match value {
        None => "—".to_owned(),
        Some(v) if v.is_nan() => "—".to_owned(),
        Some(v) if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e4) => format!("{v:.3e}"),
        Some(v) => format!("{v:.4}"),
    }
}

fn p_value(value: Option<f64>) -> String {
    match value {
        None => "—".to_owned(),
        Some(p) if p < 1e-4 => format!("{p:.1e}"),
        Some(p) => format!("{p:.3}"),
    }
}

fn interval(lo: Option<f64>, hi: Option<f64>) -> String {
    match (lo, hi) {
        (Some(lo), Some(hi)) => format!("[{}, {}]", number(Some(lo)), number(Some(hi))),
        _ => "—".to_owned(),
    }
}

fn summary_of<'a>(experiment: &'a Experiment, arm: &str, metric: Metric) -> &'a Summary {
    experiment
        .summary
        .iter()
        .find(|s| s.arm == arm && s.metric == metric.key())
        .expect("every arm has every metric")
}

fn comparisons_of(experiment: &Experiment, metric: Metric) -> impl Iterator<Item = &Comparison> {
    experiment
        .comparisons
        .iter()
        .filter(move |c| c.metric == metric.key())
}

fn metric_of(key: &str) -> Metric {
    Metric::ALL
        .into_iter()
        .find(|m| m.key() == key)
        .expect("a known metric")
}

/// Appends a Markdown table.
fn table(out: &mut String, header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
}

/// Appends what the runs are: the settings every arm shares, and each arm's own.
fn protocol(out: &mut String, e: &Experiment) {
    let _ = writeln!(out, "## Protocol\n");
    let _ = writeln!(
        out,
        "What every arm shares (checked: runs that differ in anything but their arm's schedule \
         and base rate, or their seed, are refused):\n"
    );
    table(
        out,
        &["setting", "value"],
        e.protocol
            .shared
            .iter()
            .map(|s| vec![s.name.to_owned(), s.value.clone()]),
    );
    let _ = writeln!(out);
    table(
        out,
        &[
            "arm",
            "base rate",
            "schedule (lengths in ticks of its clock)",
        ],
        e.protocol
            .arms
            .iter()
            .map(|a| vec![a.arm.clone(), a.lr.to_string(), format!("`{}`", a.schedule)]),
    );
    let _ = writeln!(out);
}

/// Whether a comparison favours the arm: +1 better, −1 worse, 0 not detectably different.
fn verdict(comparison: &Comparison, alpha: f64) -> i8 {
    if !comparison.holm_p.is_some_and(|p| p < alpha) {
        return 0;
    }
    let metric = metric_of(comparison.metric);
    let favours_arm = if metric == Metric::EpochsToThreshold {
        // More events than expected under no difference: the arm reaches it sooner.
        comparison.logrank_z.map(|z| z > 0.0)
    } else {
        comparison
            .diff
            .map(|d| (d > 0.0) == metric.higher_is_better())
    };
    match favours_arm {
        Some(true) => 1,
        Some(false) => -1,
        None => 0,
    }
}

/// The Markdown report of one experiment; `plots` are the image files beside it.
pub fn render(experiment: &Experiment, settings: &Settings, plots: &[String]) -> String {
    let mut out = String::new();
    let e = experiment;
    let adaptive: Vec<&String> = e.arms.iter().filter(|a| !e.baselines.contains(a)).collect();
    let counted = e.runs.iter().filter(|r| r.counted).count();
    let level = settings.level * 100.0;
    let _ = writeln!(
        out,
        "# {}: adaptive learning-rate schedules against the standard ones\n",
        e.name
    );
    let _ = writeln!(
        out,
        "{} runs found, {counted} counted (complete, or diverged with their finished epochs). \
         Convergence threshold: validation accuracy ≥ {}. Baselines: {}. Adaptive arms: {}.\n",
        e.runs.len(),
        e.threshold,
        e.baselines.join(", "),
        if adaptive.is_empty() {
            "none".to_owned()
        } else {
            adaptive
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    let left_out: Vec<String> = e
        .runs
        .iter()
        .filter(|r| !r.counted)
        .map(|r| {
            let epochs = r.metrics.map_or(0, |m| m.epochs);
            format!(
                "{} seed {} ({}, {epochs} epochs)",
                r.arm,
                r.seed,
                r.status.name()
            )
        })
        .collect();
    if !left_out.is_empty() {
        let _ = writeln!(
            out,
            "Not counted (still running, failed, or no finished epoch): {}.\n",
            left_out.join("; ")
        );
    }
    let diverged: Vec<String> = e
        .runs
        .iter()
        .filter(|r| r.status == crate::runs::Status::Diverged)
        .map(|r| format!("{} seed {}", r.arm, r.seed))
        .collect();
    if !diverged.is_empty() {
        let _ = writeln!(
            out,
            "Diverged (counted with the metrics of their last finished epoch): {}.\n",
            diverged.join("; ")
        );
    }

    protocol(&mut out, e);
    let _ = writeln!(out, "## Verdicts\n");
    let _ = writeln!(
        out,
        "Significant means Holm-adjusted p < {} (Welch's t-test; the log-rank test for epochs to \
         the threshold), over each metric's {} comparisons.\n",
        settings.alpha,
        adaptive.len() * e.baselines.len()
    );
    for arm in &adaptive {
        let mut better = Vec::new();
        let mut worse = Vec::new();
        let mut dominant = Vec::new();
        for metric in VERDICT_METRICS {
            for c in comparisons_of(e, metric).filter(|c| &c.arm == *arm) {
                let said = format!(
                    "{} vs {} (Holm p = {})",
                    metric.label(),
                    c.baseline,
                    p_value(c.holm_p)
                );
                match verdict(c, settings.alpha) {
                    1 => better.push(said),
                    -1 => worse.push(said),
                    _ => {}
                }
                if c.aso_eps_min.is_some_and(|eps| eps < ASO_TAU) {
                    dominant.push(format!(
                        "{} vs {} (ε_min = {:.2})",
                        metric.label(),
                        c.baseline,
                        c.aso_eps_min.unwrap_or_default()
                    ));
                }
            }
        }
        let headline = match (better.is_empty(), worse.is_empty()) {
            (true, true) => {
                "no difference from any baseline is detectable on any metric.".to_owned()
            }
            (false, true) => format!("better on {}.", better.join("; ")),
            (true, false) => format!("worse on {}.", worse.join("; ")),
            (false, false) => format!(
                "better on {}; worse on {}.",
                better.join("; "),
                worse.join("; ")
            ),
        };
        let test = summary_of(e, arm, Metric::FinalTestAcc);
        let estimate = match test.mean {
            Some(mean) => format!(
                " Its final test accuracy is {} (sd {}, n = {}); the baselines': {}.",
                number(Some(mean)),
                number(test.sd),
                test.n,
                e.baselines
                    .iter()
                    .map(|b| format!(
                        "{} {}",
                        b,
                        number(summary_of(e, b, Metric::FinalTestAcc).mean)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        };
        let aso = if dominant.is_empty() {
            String::new()
        } else {
            format!(
                " ASO finds it almost stochastically better (ε_min < {ASO_TAU}) on {}.",
                dominant.join("; ")
            )
        };
        let _ = writeln!(out, "- **{arm}**: {headline}{estimate}{aso}");
    }
    if adaptive.is_empty() {
        let _ = writeln!(out, "No arm besides the baselines: nothing to judge.");
    }

    let seeds = e
        .runs
        .iter()
        .filter(|r| r.counted)
        .map(|r| r.seed)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let _ = writeln!(out, "\n## What these runs can and cannot show\n");
    let min_p = e
        .comparisons
        .iter()
        .filter(|c| c.metric == Metric::BestValAcc.key())
        .filter_map(|c| c.mw_min_p)
        .fold(None, |acc: Option<f64>, p| {
            Some(acc.map_or(p, |a| a.min(p)))
        });
    let _ = writeln!(
        out,
        "- {seeds} seed(s) per arm. A two-sided t-test at α = {} with power {} detects only a \
         true difference of **{} standard deviations** or more (minimum detectable effect); \
         smaller real effects will usually look like \"no difference\".",
        settings.alpha,
        settings.power,
        e.minimum_detectable_effect
            .map_or("—".to_owned(), |d| format!("{d:.2}"))
    );
    if let Some(p) = min_p {
        let _ = writeln!(
            out,
            "- The exact Mann–Whitney test cannot give p below **{}** at these sizes{}.",
            p_value(Some(p)),
            if p >= settings.alpha {
                ", so it can never be significant here"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "- Bootstrap intervals resample so few values that they are too narrow: with 3 values \
         there are only 10 distinct resamples. Hedges' g intervals are a large-sample \
         approximation. Read both as descriptions, not guarantees.\n\
         - ASO (ε_min, τ = {ASO_TAU}) estimates its own spread from the same few runs; with \
         3 seeds it is a screening signal. Epochs to the threshold are right-censored for runs \
         that never reach it: those comparisons use the log-rank test and report the share that \
         reached it, not means."
    );

    let _ = writeln!(out, "\n## Per-arm summary ({level:.0}% intervals)\n");
    table(
        &mut out,
        &[
            "metric",
            "arm",
            "n",
            "mean",
            "sd",
            "t-interval",
            "bootstrap interval",
        ],
        Metric::ALL
            .into_iter()
            .filter(|m| *m != Metric::EpochsToThreshold)
            .flat_map(|metric| e.arms.iter().map(move |arm| (metric, arm)))
            .map(|(metric, arm)| {
                let s = summary_of(e, arm, metric);
                vec![
                    metric.key().to_owned(),
                    arm.clone(),
                    (s.n - s.n_missing).to_string(),
                    number(s.mean),
                    number(s.sd),
                    interval(s.t_lo, s.t_hi),
                    interval(s.boot_lo, s.boot_hi),
                ]
            }),
    );

    let _ = writeln!(
        out,
        "\n## Convergence: epochs to validation accuracy ≥ {}\n",
        e.threshold
    );
    table(
        &mut out,
        &[
            "arm",
            "reached",
            "Kaplan–Meier median",
            "mean (all reached)",
            "per seed",
        ],
        e.arms.iter().map(|arm| {
            let s = summary_of(e, arm, Metric::EpochsToThreshold);
            let per_seed: Vec<String> = e
                .runs
                .iter()
                .filter(|r| r.counted && &r.arm == arm)
                .filter_map(|r| r.metrics)
                .map(|m| {
                    let t = m.epochs_to_threshold;
                    if t.reached {
                        t.epochs.to_string()
                    } else {
                        format!(">{}", t.epochs)
                    }
                })
                .collect();
            vec![
                arm.clone(),
                format!("{}/{}", s.n - s.n_missing, s.n),
                s.km_median
                    .map_or("not reached".to_owned(), |m| format!("{m}")),
                number(s.mean),
                per_seed.join(", "),
            ]
        }),
    );

    let _ = writeln!(out, "\n## Comparisons (arm − baseline)\n");
    for metric in Metric::ALL {
        let rows: Vec<&Comparison> = comparisons_of(e, metric).collect();
        if rows.is_empty() {
            continue;
        }
        let better = if metric.higher_is_better() {
            "higher"
        } else {
            "lower"
        };
        let _ = writeln!(
            out,
            "### {} (`{}`, {better} is better)\n",
            metric.label(),
            metric.key()
        );
        if metric == Metric::EpochsToThreshold {
            table(
                &mut out,
                &[
                    "arm",
                    "baseline",
                    "reached (arm / baseline)",
                    "log-rank z",
                    "log-rank p",
                    "Holm p",
                    "MW U",
                    "MW p",
                    "diff",
                    "Welch p",
                ],
                rows.iter().map(|c| {
                    vec![
                        c.arm.clone(),
                        c.baseline.clone(),
                        format!("{} / {}", number(c.reached_arm), number(c.reached_baseline)),
                        number(c.logrank_z),
                        p_value(c.logrank_p),
                        p_value(c.holm_p),
                        number(c.mw_u),
                        p_value(c.mw_p),
                        number(c.diff),
                        p_value(c.welch_p),
                    ]
                }),
            );
        } else {
            table(
                &mut out,
                &[
                    "arm",
                    "baseline",
                    "diff [bootstrap]",
                    "Hedges' g [CI]",
                    "Welch t (df)",
                    "Welch p",
                    "paired p",
                    "MW U (p)",
                    "Holm p",
                    "ASO ε_min",
                ],
                rows.iter().map(|c| {
                    vec![
                        c.arm.clone(),
                        c.baseline.clone(),
                        format!(
                            "{} {}",
                            number(c.diff),
                            interval(c.diff_boot_lo, c.diff_boot_hi)
                        ),
                        format!(
                            "{} {}",
                            number(c.hedges_g),
                            interval(c.hedges_g_lo, c.hedges_g_hi)
                        ),
                        format!("{} ({})", number(c.welch_t), number(c.welch_df)),
                        p_value(c.welch_p),
                        p_value(c.paired_p),
                        format!("{} ({})", number(c.mw_u), p_value(c.mw_p)),
                        p_value(c.holm_p),
                        number(c.aso_eps_min),
                    ]
                }),
            );
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "## Runs\n");
    table(
        &mut out,
        &[
            "arm",
            "seed",
            "status",
            "epochs",
            "best val acc (epoch)",
            "test acc at best val",
            "final test acc",
            "loss gap",
            "acc gap",
        ],
        e.runs.iter().map(|r| {
            let m = r.metrics;
            vec![
                r.arm.clone(),
                r.seed.to_string(),
                r.status.name().to_owned(),
                m.map_or(0, |m| m.epochs).to_string(),
                m.map_or("—".to_owned(), |m| {
                    format!("{} ({})", number(Some(m.best_val_acc)), m.best_val_epoch)
                }),
                number(m.and_then(|m| m.test_acc_at_best_val)),
                number(m.and_then(|m| m.final_test_acc)),
                number(m.map(|m| m.final_loss_gap)),
                number(m.map(|m| m.final_acc_gap)),
            ]
        }),
    );
    if !plots.is_empty() {
        let _ = writeln!(out, "\n## Plots\n");
        for plot in plots {
            let _ = writeln!(out, "![{plot}]({plot})\n");
        }
    }
    out
}
