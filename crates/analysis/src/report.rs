//! `report.md`: the pre-registered primary endpoint first, the verdicts drawn from it alone,
//! what the number of seeds can and cannot show, then everything else as secondary.

use std::fmt::Write;

use crate::compare::{Comparison, Family};
use crate::metrics::{Better, Fit, Metric, RISE};
use crate::stats::{SIGN_FLIP_MAX_PAIRS, multiset_count};
use crate::study::{ASO_TAU, Experiment, Settings, Summary};
use lrlab_runs::Tuning;

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

/// A difference of `metric`, in points for accuracies (0.01 = 1 point), with its sign.
fn difference(metric: Metric, value: Option<f64>) -> String {
    match (value, metric.is_accuracy()) {
        (None, _) => "—".to_owned(),
        (Some(v), true) => format!("{:+.2} points", 100.0 * v),
        (Some(v), false) => format!("{v:+.2}"),
    }
}

/// A size of `metric`'s differences, in points for accuracies.
fn size(metric: Metric, value: Option<f64>) -> String {
    match (value, metric.is_accuracy()) {
        (None, _) => "—".to_owned(),
        (Some(v), true) => format!("{:.2} points", 100.0 * v),
        (Some(v), false) => format!("{v:.2}"),
    }
}

/// Seeds a comparison would need: `—` where its differences have no spread to plan from.
fn seeds(comparison: &Comparison, value: Option<usize>) -> String {
    match (spread(comparison), value) {
        (None, _) => "—".to_owned(),
        (Some(_), Some(n)) => n.to_string(),
        (Some(_), None) => format!("> {}", crate::compare::MOST_SEEDS),
    }
}

/// The spread of a comparison's paired differences, where there is one.
fn spread(comparison: &Comparison) -> Option<f64> {
    comparison.sd_paired.filter(|sd| *sd > 0.0)
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

fn primary_family(experiment: &Experiment) -> impl Iterator<Item = &Comparison> {
    experiment
        .comparisons
        .iter()
        .filter(|c| c.family == Family::Primary)
}

fn family_size(experiment: &Experiment, family: Family) -> usize {
    experiment
        .comparisons
        .iter()
        .filter(|c| c.family == family)
        .count()
}

/// Appends a Markdown table.
fn table(out: &mut String, header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
}

/// What a comparison says, once corrected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// The arm is detectably better than the baseline.
    Better,
    /// Detectably worse.
    Worse,
    /// Detectably different on a metric with no better direction (a gap).
    Differs,
    /// Not detectably different.
    Undetected,
}

/// The verdict of a comparison at `alpha` on its Holm-adjusted p.
fn verdict(comparison: &Comparison, alpha: f64) -> Verdict {
    if !comparison.holm_p.is_some_and(|p| p < alpha) {
        return Verdict::Undetected;
    }
    let metric = Metric::from_key(comparison.metric).expect("a known metric");
    let sign = match metric {
        // More events than expected under no difference: the arm reaches it sooner.
        Metric::EpochsToThreshold => comparison.logrank_z.map(|z| -z),
        _ => comparison.diff_paired,
    };
    match (metric.better(), sign) {
        (Better::Neither, _) => Verdict::Differs,
        (_, None) => Verdict::Undetected,
        (Better::Higher, Some(d)) | (Better::Lower, Some(d)) => {
            let higher = d > 0.0;
            match higher == (metric.better() == Better::Higher) {
                true => Verdict::Better,
                false => Verdict::Worse,
            }
        }
    }
}

/// The Markdown report of one experiment; `plots` are the image files beside it.
pub fn render(experiment: &Experiment, settings: &Settings, plots: &[String]) -> String {
    let mut out = String::new();
    header(&mut out, experiment, settings);
    protocol(&mut out, experiment);
    verdicts(&mut out, experiment, settings);
    references(&mut out, experiment, settings);
    limits(&mut out, experiment, settings);
    fitting(&mut out, experiment);
    summary(&mut out, experiment, settings);
    convergence(&mut out, experiment);
    secondary(&mut out, experiment, settings);
    runs(&mut out, experiment);
    if !plots.is_empty() {
        let _ = writeln!(out, "\n## Plots\n");
        for plot in plots {
            let _ = writeln!(out, "![{plot}]({plot})\n");
        }
    }
    out
}

/// The title, the primary endpoint as registered before any result, and the runs counted.
fn header(out: &mut String, e: &Experiment, settings: &Settings) {
    let d = &e.design;
    let list = |arms: &[String]| match arms.is_empty() {
        true => "none".to_owned(),
        false => arms.join(", "),
    };
    let _ = writeln!(
        out,
        "# {}: adaptive learning-rate schedules against the standard ones\n",
        e.name
    );
    let _ = writeln!(
        out,
        "**Primary endpoint** (registered in the experiment file before any run): {} \
         (`{}`). The verdicts come from it alone: for every arm under test against every \
         baseline, the paired t-test over the seeds both ran (every seed shares initial weights, \
         data order, augmentation and dropout across arms), with Holm's correction over the {} \
         of that family at α = {}; the exact sign-flip permutation test is given beside it. \
         Every other metric is secondary, corrected as one family of its own.\n",
        d.primary.label(),
        d.primary.key(),
        match family_size(e, Family::Primary) {
            1 => "one comparison".to_owned(),
            n => format!("{n} comparisons"),
        },
        settings.alpha
    );
    let counted = e.runs.iter().filter(|r| r.counted).count();
    let _ = writeln!(
        out,
        "{} runs found, {counted} counted (complete, or diverged: a divergence counts as a \
         failure, at chance-level accuracy). Convergence threshold: validation accuracy ≥ {}. \
         Baselines: {}. Arms under test: {}. References (reported apart): {}.\n",
        e.runs.len(),
        d.threshold,
        list(&d.baselines),
        list(&d.tested),
        list(&d.references),
    );
    provenance(out, e);
    if !d.departures.is_empty() {
        let _ = writeln!(
            out,
            "**Departures from the registered plan** (chosen when analysing, not before the \
             runs): {}.\n",
            d.departures.join("; ")
        );
    }
    let left_out: Vec<String> = e
        .runs
        .iter()
        .filter(|r| !r.counted)
        .map(|r| {
            let epochs = r.metrics.map_or(0, |m| m.epochs);
            format!("{} seed {} ({}, {epochs} epochs)", r.arm, r.seed, r.status)
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
        .arms
        .iter()
        .filter_map(|arm| {
            let seeds: Vec<String> = e
                .runs
                .iter()
                .filter(|r| r.counted && &r.arm == arm && r.fit() == Some(Fit::Diverged))
                .map(|r| r.seed.to_string())
                .collect();
            (!seeds.is_empty()).then(|| format!("{arm} (seed {})", seeds.join(", ")))
        })
        .collect();
    if !diverged.is_empty() {
        let _ = writeln!(
            out,
            "Diverged, counted as failures: {}.\n",
            diverged.join("; ")
        );
    }
}

/// Appends which code and which device trained the runs: a run's specification leaves both
/// out, and either moves results from their last bits on, which the pairing of seeds across
/// arms would count as a difference between the arms.
fn provenance(out: &mut String, e: &Experiment) {
    let count = |keys: Vec<String>| {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for key in keys {
            *counts.entry(key).or_default() += 1;
        }
        counts
    };
    let commits = count(
        e.runs
            .iter()
            .map(|r| match &r.commit {
                Some(commit) => format!("`{}`", &commit[..commit.len().min(7)]),
                None => "an unknown commit".to_owned(),
            })
            .collect(),
    );
    let devices = count(e.runs.iter().map(|r| format!("`{}`", r.device)).collect());
    let list = |counts: &std::collections::BTreeMap<String, usize>| {
        let parts: Vec<String> = counts
            .iter()
            .map(|(key, n)| format!("{key} ({n} run{})", if *n == 1 { "" } else { "s" }))
            .collect();
        parts.join(", ")
    };
    if commits.len() <= 1 && devices.len() <= 1 {
        let _ = writeln!(
            out,
            "Trained by {} on {}.\n",
            list(&commits),
            list(&devices)
        );
        return;
    }
    let many = |n: usize, what: &str| match n {
        1 => format!("one {what}"),
        n => format!("{n} {what}s"),
    };
    let _ = writeln!(
        out,
        "**Trained by {} on {}**: {}; on {}. Another commit's kernels or another device's \
         arithmetic move results from their last bits on, and a paired comparison counts that \
         as a difference between arms: for a clean comparison, train every run with one commit \
         on one kind of device.\n",
        many(commits.len(), "commit"),
        many(devices.len(), "device"),
        list(&commits),
        list(&devices)
    );
}

/// Appends what the runs are: the settings every arm shares, and each arm's own.
fn protocol(out: &mut String, e: &Experiment) {
    let _ = writeln!(out, "## Protocol\n");
    let _ = writeln!(
        out,
        "What every arm shares (checked: runs that differ in anything but their arm's schedule, \
         or their seed, are refused):\n"
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
        &["arm", "schedule (lengths in ticks of its clock)"],
        e.protocol
            .arms
            .iter()
            .map(|a| vec![a.arm.clone(), format!("`{}`", a.schedule)]),
    );
    let _ = writeln!(out);
    if let Some(tuning) = &e.design.tuning {
        tuned(out, tuning);
    }
}

/// Appends how the arms' settings were tuned.
fn tuned(out: &mut String, tuning: &Tuning) {
    let _ = writeln!(
        out,
        "The arms' settings were tuned by `cargo xtask tune` on {}: every arm was offered the \
         same budget of {} settings (the arm as written, then draws from its search space), \
         each trained once on seed {} (none of the study's) and the one with the best \
         validation accuracy kept; the test split plays no part. The schedules above are the \
         chosen ones.\n",
        tuning.source, tuning.budget, tuning.seed
    );
    table(
        out,
        &["arm", "settings trained", "best validation accuracy"],
        tuning.arms.iter().map(|(arm, a)| {
            vec![
                arm.clone(),
                a.trials.to_string(),
                format!("{:.4}", a.val_acc),
            ]
        }),
    );
    let _ = writeln!(out);
}

/// One primary comparison in words.
fn said(c: &Comparison, metric: Metric) -> String {
    let floor = c
        .signflip_min_p
        .map_or(String::new(), |f| format!(", floor {}", p_value(Some(f))));
    let paired = match (c.paired_p, c.sd_paired, spread(c)) {
        (None, Some(_), None) => "— (the same difference in every seed)".to_owned(),
        (p, _, _) => p_value(p),
    };
    format!(
        "vs {}: paired difference {} over {} (paired t p = {paired}, Holm p = {}; \
         sign-flip p = {}{floor})",
        c.baseline,
        difference(metric, c.diff_paired),
        match c.n_pairs {
            1 => "one seed".to_owned(),
            n => format!("{n} seeds"),
        },
        p_value(c.holm_p),
        p_value(c.signflip_p)
    )
}

/// The verdicts: each arm under test against each baseline on the primary endpoint.
fn verdicts(out: &mut String, e: &Experiment, settings: &Settings) {
    let primary = e.design.primary;
    let _ = writeln!(out, "## Verdicts on the primary endpoint\n");
    if e.design.tested.is_empty() {
        let _ = writeln!(
            out,
            "No arm under test besides the baselines: nothing to judge.\n"
        );
        return;
    }
    for arm in &e.design.tested {
        let mut better = Vec::new();
        let mut worse = Vec::new();
        let mut undetected = Vec::new();
        let mut dominant = Vec::new();
        for c in primary_family(e).filter(|c| &c.arm == arm) {
            match verdict(c, settings.alpha) {
                Verdict::Better => better.push(said(c, primary)),
                Verdict::Worse => worse.push(said(c, primary)),
                _ => undetected.push(said(c, primary)),
            }
            if c.aso_eps_min.is_some_and(|eps| eps < ASO_TAU) {
                dominant.push(format!(
                    "{} (ε_min = {:.2})",
                    c.baseline,
                    c.aso_eps_min.unwrap_or_default()
                ));
            }
        }
        let part = |what: &str, items: &[String]| match items.is_empty() {
            true => String::new(),
            false => format!(" {what} {}.", items.join("; ")),
        };
        let s = summary_of(e, arm, primary);
        let _ = writeln!(
            out,
            "- **{arm}** ({}: mean {}, sd {}, n = {}, {} diverged):{}{}{}{}",
            primary.key(),
            number(s.mean),
            number(s.sd),
            s.n,
            s.n_diverged,
            part("**Better**", &better),
            part("**Worse**", &worse),
            part("No detectable difference", &undetected),
            part(
                "ASO, Bonferroni-corrected over the family, finds it almost stochastically \
                 better (ε_min < 0.2) than",
                &dominant
            ),
        );
    }
    let baselines: Vec<String> = e
        .design
        .baselines
        .iter()
        .map(|b| {
            let s = summary_of(e, b, primary);
            format!(
                "{b} {} (sd {}, {} diverged)",
                number(s.mean),
                number(s.sd),
                s.n_diverged
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "\nThe baselines' {}: {}.\n",
        primary.key(),
        baselines.join("; ")
    );
}

/// The reference arms, apart from the verdicts.
fn references(out: &mut String, e: &Experiment, settings: &Settings) {
    if e.design.references.is_empty() {
        return;
    }
    let primary = e.design.primary;
    let _ = writeln!(out, "## Reference arms\n");
    let _ = writeln!(
        out,
        "Reported for orientation, not judged: their comparisons with the baselines belong to \
         the secondary family.\n"
    );
    for arm in &e.design.references {
        let s = summary_of(e, arm, primary);
        let against: Vec<String> = comparisons_of(e, primary)
            .filter(|c| &c.arm == arm)
            .map(|c| {
                let note = match verdict(c, settings.alpha) {
                    Verdict::Better => " — better",
                    Verdict::Worse => " — worse",
                    _ => "",
                };
                format!("{}{note}", said(c, primary))
            })
            .collect();
        let _ = writeln!(
            out,
            "- **{arm}** ({}: mean {}, sd {}, n = {}): {}.",
            primary.key(),
            number(s.mean),
            number(s.sd),
            s.n,
            against.join("; ")
        );
    }
    let _ = writeln!(out);
}

/// What the number of seeds can and cannot show, in the primary metric's units.
fn limits(out: &mut String, e: &Experiment, settings: &Settings) {
    let primary = e.design.primary;
    let m = family_size(e, Family::Primary).max(1);
    let level = settings.alpha / m as f64;
    let _ = writeln!(out, "## What these runs can and cannot show\n");
    let _ = writeln!(
        out,
        "The smallest true difference each primary comparison detects with power {} at Holm's \
         strictest level α/m = {}/{m} = {} (two-sided paired t), from the observed spread of its \
         paired differences — and the seeds that a one-point and a half-point difference would \
         need at that spread:\n",
        settings.power,
        settings.alpha,
        p_value(Some(level))
    );
    table(
        out,
        &[
            "arm",
            "baseline",
            "pairs",
            "sd of paired differences",
            "detectable difference",
            "seeds for 1 point",
            "seeds for 0.5 point",
        ],
        primary_family(e).map(|c| {
            vec![
                c.arm.clone(),
                c.baseline.clone(),
                c.n_pairs.to_string(),
                match (c.sd_paired, spread(c)) {
                    (Some(_), None) => "0 (the same difference in every seed)".to_owned(),
                    (sd, _) => size(primary, sd),
                },
                size(primary, c.mde),
                seeds(c, c.seeds_for_1_point),
                seeds(c, c.seeds_for_half_point),
            ]
        }),
    );
    let pairs = primary_family(e).map(|c| c.n_pairs).min().unwrap_or(0);
    if (1..=SIGN_FLIP_MAX_PAIRS).contains(&pairs) {
        let floor = 2.0 / 2f64.powi(pairs as i32);
        let _ = writeln!(
            out,
            "\n- With {pairs} pairs the exact sign-flip test cannot give p below {} (2/2^{pairs}){}.",
            p_value(Some(floor)),
            if floor >= level {
                ", so on its own it can never be significant here"
            } else {
                ""
            }
        );
    }
    let untested = primary_family(e).filter(|c| c.primary_p.is_none()).count();
    if untested > 0 {
        let _ = writeln!(
            out,
            "- {untested} of the {m} primary comparisons have no paired t (the same difference \
             in every seed, or too few pairs): they are never called different, and they still \
             count among the {m} that Holm corrects for (as statsmodels' `multipletests` counts a \
             NaN)."
        );
    }
    let resamples = match pairs {
        0 => String::new(),
        n => format!(
            " ({n} values have {:.0} distinct resamples)",
            multiset_count(n)
        ),
    };
    let _ = writeln!(
        out,
        "- A difference smaller than the detectable one will usually read as \"no detectable \
         difference\": that is absence of evidence, not evidence of equality.\n\
         - Unpaired tests (Welch, Mann–Whitney) ignore the pairing by seed and are reported as \
         descriptions. Bootstrap intervals resample so few values that they are too \
         narrow{resamples}; Hedges' g intervals are large-sample approximations. ASO (ε_min, \
         τ = {ASO_TAU}) is decided at the family's Bonferroni level and estimates its own \
         spread from the same few runs: a screening signal.\n\
         - Epochs to the threshold are right-censored for runs that never reach it (a diverged \
         run is censored at its planned end): those comparisons use the log-rank test and the \
         share that reached it, not means.\n"
    );
}

/// Over- and under-fitting per arm: the gaps beside the accuracies, never "smaller is better".
fn fitting(out: &mut String, e: &Experiment) {
    let _ = writeln!(out, "## Over- and under-fitting\n");
    let _ = writeln!(
        out,
        "Gaps are train minus validation (accuracy) and validation minus train (loss): \
         descriptions, not scores — a model that learnt nothing has no gap. A run **underfits** \
         when both its training and validation accuracy end below the threshold ({}); it \
         **overfits** when its validation loss ends more than {:.0} % above its minimum while the \
         loss gap grew past its value there.\n",
        e.design.threshold,
        100.0 * RISE
    );
    let mean = |arm: &str, metric: Metric| number(summary_of(e, arm, metric).mean);
    table(
        out,
        &[
            "arm",
            "final train acc",
            "final val acc",
            "acc gap",
            "loss gap",
            "underfit",
            "overfit",
            "fits",
            "diverged",
        ],
        e.arms.iter().map(|arm| {
            let rows: Vec<_> = e
                .runs
                .iter()
                .filter(|r| r.counted && &r.arm == arm)
                .collect();
            let count = |fit: Fit| rows.iter().filter(|r| r.fit() == Some(fit)).count();
            let train: Vec<f64> = rows
                .iter()
                .filter_map(|r| r.metrics.map(|m| m.final_train_acc))
                .collect();
            let train_mean = (!train.is_empty()).then(|| crate::stats::mean(&train));
            vec![
                arm.clone(),
                number(train_mean),
                mean(arm, Metric::FinalValAcc),
                mean(arm, Metric::FinalAccGap),
                mean(arm, Metric::FinalLossGap),
                count(Fit::Underfit).to_string(),
                count(Fit::Overfit).to_string(),
                count(Fit::Fits).to_string(),
                count(Fit::Diverged).to_string(),
            ]
        }),
    );
    let _ = writeln!(out);
}

/// Per arm and metric: mean, spread, intervals, divergences.
fn summary(out: &mut String, e: &Experiment, settings: &Settings) {
    let level = settings.level * 100.0;
    let _ = writeln!(out, "## Per-arm summary ({level:.0}% intervals)\n");
    table(
        out,
        &[
            "metric",
            "arm",
            "n",
            "diverged",
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
                    s.n_diverged.to_string(),
                    number(s.mean),
                    number(s.sd),
                    interval(s.t_lo, s.t_hi),
                    interval(s.boot_lo, s.boot_hi),
                ]
            }),
    );
}

/// Epochs to the threshold per arm, censoring shown.
fn convergence(out: &mut String, e: &Experiment) {
    let _ = writeln!(
        out,
        "\n## Convergence: epochs to validation accuracy ≥ {}\n",
        e.design.threshold
    );
    table(
        out,
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
                    match t.reached {
                        true => t.epochs.to_string(),
                        false => format!(">{}", t.epochs),
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
}

/// Every comparison, the secondary family's adjusted within it, per metric.
fn secondary(out: &mut String, e: &Experiment, settings: &Settings) {
    let _ = writeln!(out, "\n## Every comparison (arm − baseline)\n");
    let _ = writeln!(
        out,
        "Holm p is adjusted within the comparison's family: the primary one ({} comparisons) \
         or the secondary one ({}, every other metric and the references). \"Holm\" marks the \
         primary test: the paired t, or the log-rank test for epochs to the threshold.\n",
        family_size(e, Family::Primary),
        family_size(e, Family::Secondary)
    );
    for metric in Metric::ALL {
        let rows: Vec<&Comparison> = comparisons_of(e, metric).collect();
        if rows.is_empty() {
            continue;
        }
        let better = match metric.better() {
            Better::Higher => "higher is better",
            Better::Lower => "lower is better",
            Better::Neither => "a description: neither direction is better",
        };
        let _ = writeln!(
            out,
            "### {} (`{}`, {better})\n",
            metric.label(),
            metric.key()
        );
        match metric {
            Metric::EpochsToThreshold => censored_table(out, &rows),
            _ => numeric_table(out, &rows, settings),
        }
        let _ = writeln!(out);
    }
}

fn censored_table(out: &mut String, rows: &[&Comparison]) {
    table(
        out,
        &[
            "arm",
            "baseline",
            "family",
            "reached (arm / baseline)",
            "log-rank z",
            "log-rank p",
            "Holm p",
            "MW U",
            "MW p",
        ],
        rows.iter().map(|c| {
            vec![
                c.arm.clone(),
                c.baseline.clone(),
                family_name(c.family),
                format!("{} / {}", number(c.reached_arm), number(c.reached_baseline)),
                number(c.logrank_z),
                p_value(c.logrank_p),
                p_value(c.holm_p),
                number(c.mw_u),
                p_value(c.mw_p),
            ]
        }),
    );
}

fn numeric_table(out: &mut String, rows: &[&Comparison], settings: &Settings) {
    table(
        out,
        &[
            "arm",
            "baseline",
            "family",
            "paired diff (pairs)",
            "paired t p",
            "sign-flip p",
            "Holm p",
            "verdict",
            "Welch p",
            "MW p",
            "Hedges' g [CI]",
            "ASO ε_min",
        ],
        rows.iter().map(|c| {
            let verdict = match verdict(c, settings.alpha) {
                Verdict::Better => "better",
                Verdict::Worse => "worse",
                Verdict::Differs => "differs",
                Verdict::Undetected => "—",
            };
            vec![
                c.arm.clone(),
                c.baseline.clone(),
                family_name(c.family),
                format!("{} ({})", number(c.diff_paired), c.n_pairs),
                p_value(c.paired_p),
                p_value(c.signflip_p),
                p_value(c.holm_p),
                verdict.to_owned(),
                p_value(c.welch_p),
                p_value(c.mw_p),
                format!(
                    "{} {}",
                    number(c.hedges_g),
                    interval(c.hedges_g_lo, c.hedges_g_hi)
                ),
                number(c.aso_eps_min),
            ]
        }),
    );
}

fn family_name(family: Family) -> String {
    match family {
        Family::Primary => "primary".into(),
        Family::Secondary => "secondary".into(),
    }
}

/// Every run with its headline numbers.
fn runs(out: &mut String, e: &Experiment) {
    let _ = writeln!(out, "## Runs\n");
    table(
        out,
        &[
            "arm",
            "seed",
            "status",
            "epochs",
            "best val acc (epoch)",
            "test acc at best val",
            "final test acc",
            "final train acc",
            "acc gap",
            "fit",
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
                number(m.map(|m| m.final_train_acc)),
                number(m.map(|m| m.final_acc_gap)),
                r.fit().map_or("—", Fit::name).to_owned(),
            ]
        }),
    );
}
