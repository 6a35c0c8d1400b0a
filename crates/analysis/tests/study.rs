//! The analysis end to end on run directories written as the trainer writes them.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use polars::prelude::{ParquetReader, ParquetWriter, SerReader};

use common::{Study, Synthetic, curves, spec, write_run, write_spec, write_study};
use lrlab_analysis::{
    Analysis, AnalysisError, Context, Experiment, Family, Fit, Metric, RunMetrics, Settings,
    Status, analyze, read_runs, stats, write_report,
};

const ARMS: [&str; 5] = ["constant", "step", "cosine", "plateau", "trend_gap"];
const BASELINES: [&str; 3] = ["constant", "step", "cosine"];

fn study(root: &Path) {
    write_study(
        root,
        &Study {
            experiments: &["cifar10", "imdb"],
            arms: &ARMS,
            seeds: 3,
            epochs: 12,
            threshold: 0.85,
        },
    );
}

fn error_text(result: Result<impl std::fmt::Debug, AnalysisError>) -> String {
    result.expect_err("an error").to_string()
}

#[test]
fn a_study_becomes_tables_tests_and_plots() {
    let folder = tempfile::tempdir().unwrap();
    let runs_root = folder.path().join("runs");
    study(&runs_root);
    // A run cut short by a crash, and one that diverged after 4 epochs.
    write_run(
        &runs_root,
        &Synthetic {
            experiment: "cifar10",
            arm: "plateau",
            seed: 3,
            planned: 12,
            status: Status::Running,
            baselines: &BASELINES,
            threshold: 0.85,
        },
        &curves(5, 0.9, 3.0, 9, 3),
    );
    write_run(
        &runs_root,
        &Synthetic {
            experiment: "cifar10",
            arm: "trend_gap",
            seed: 3,
            planned: 12,
            status: Status::Diverged,
            baselines: &BASELINES,
            threshold: 0.85,
        },
        &curves(4, 0.9, 3.0, 9, 4),
    );

    let runs = read_runs(&[&runs_root]).unwrap();
    assert_eq!(runs.len(), 2 * 5 * 3 + 2);
    let analysis = analyze(&runs, &Settings::default()).unwrap();
    let names: Vec<&str> = analysis
        .experiments
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, ["cifar10", "imdb"]);
    let cifar = &analysis.experiments[0];
    assert_eq!(cifar.design.baselines, BASELINES);
    assert_eq!(cifar.design.tested, ["plateau", "trend_gap"]);
    assert_eq!(cifar.design.primary, Metric::TestAccAtBestVal);
    assert_eq!(
        cifar.arms,
        ["constant", "step", "cosine", "plateau", "trend_gap"]
    );
    assert_eq!(cifar.comparisons.len(), Metric::ALL.len() * 2 * 3);

    let running = cifar
        .runs
        .iter()
        .find(|r| r.status == Status::Running)
        .unwrap();
    assert!(!running.counted, "a crashed run does not count");
    let diverged = cifar
        .runs
        .iter()
        .find(|r| r.status == Status::Diverged)
        .unwrap();
    assert!(diverged.counted, "divergence is an outcome");

    // Every number of a comparison is the statistic of the per-run values.
    let values = |arm: &str| -> Vec<f64> {
        runs.iter()
            .filter(|r| r.experiment() == "cifar10" && r.arm() == arm && r.status().is_outcome())
            .map(|r| {
                let context = Context {
                    threshold: 0.85,
                    planned_epochs: 12,
                    chance: 0.1,
                    diverged: r.status() == Status::Diverged,
                };
                RunMetrics::of(&r.curves, &context).unwrap().best_val_acc
            })
            .collect()
    };
    let (arm, base) = (values("trend_gap"), values("step"));
    assert_eq!((arm.len(), base.len()), (4, 3));
    let c = cifar
        .comparisons
        .iter()
        .find(|c| c.metric == "best_val_acc" && c.arm == "trend_gap" && c.baseline == "step")
        .unwrap();
    let welch = stats::welch(&arm, &base).unwrap();
    assert_eq!(
        (c.welch_t, c.welch_df, c.welch_p),
        (Some(welch.t), Some(welch.df), Some(welch.p))
    );
    assert_eq!(c.n_pairs, 3, "seeds 0..3 pair; seed 3 has no partner");
    let paired = stats::paired(&arm[..3], &base).unwrap();
    assert_eq!((c.paired_t, c.paired_p), (Some(paired.t), Some(paired.p)));
    assert_eq!(
        c.signflip_p,
        Some(stats::sign_flip(&arm[..3], &base).unwrap().p)
    );
    assert_eq!(c.mw_u, Some(stats::mann_whitney(&arm, &base).unwrap().u));
    assert_eq!(c.mean_arm, Some(stats::mean(&arm)));
    assert_eq!(c.diverged_arm, 1, "trend_gap seed 3 diverged");
    assert_eq!(arm[3], 0.1, "a diverged run's accuracies are chance level");
    // The primary family: the arms under test against the baselines on the primary metric,
    // Holm over exactly those six paired t-tests.
    let primary: Vec<_> = cifar
        .comparisons
        .iter()
        .filter(|c| c.family == Family::Primary)
        .collect();
    assert_eq!(primary.len(), 2 * 3);
    assert!(primary.iter().all(|c| c.metric == "test_acc_at_best_val"));
    assert!(primary.iter().all(|c| c.primary_test == "paired_t"));
    let adjusted = stats::holm(&primary.iter().map(|c| c.paired_p).collect::<Vec<_>>());
    assert_eq!(
        primary.iter().map(|c| c.holm_p).collect::<Vec<_>>(),
        adjusted
    );
    assert!(primary.iter().all(|c| c.mde.is_some_and(|d| d > 0.0)));
    // Holm never lowers a p-value and is 1-capped.
    for c in &cifar.comparisons {
        if let (Some(raw), Some(holm)) = (c.primary_p, c.holm_p) {
            assert!(holm >= raw && holm <= 1.0);
        }
    }
    // The arms' curves rise to 0.86 + 0.01·i: the best reach the threshold, all within 12 epochs.
    let ett = cifar
        .comparisons
        .iter()
        .find(|c| {
            c.metric == "epochs_to_threshold" && c.arm == "plateau" && c.baseline == "constant"
        })
        .unwrap();
    assert!(ett.reached_arm.is_some() && ett.primary_test == "logrank");

    let out = folder.path().join("reports");
    let written = write_report(cifar, &Settings::default(), &out.join("cifar10")).unwrap();
    for name in [
        "report.md",
        "summary.csv",
        "summary.parquet",
        "comparisons.csv",
        "comparisons.parquet",
        "runs.csv",
        "val_acc.png",
        "val_acc.svg",
        "val_loss.png",
        "lr.svg",
        "gap.png",
        "epochs_to_threshold.png",
    ] {
        let path = out.join("cifar10").join(name);
        assert!(written.contains(&path), "{name} listed");
        assert!(fs::metadata(&path).unwrap().len() > 100, "{name} written");
    }
    let report = fs::read_to_string(out.join("cifar10/report.md")).unwrap();
    for needle in [
        "## Protocol",
        "| data | uoft-cs/cifar10 @ 0123456789ab |",
        "12 epochs × 1407 steps, batch 32",
        "| trend_gap | `{\"kind\":\"constant\",\"factor\":1.0,\"total_iters\":0}` |",
        "Adam at lr 0.001, weight decay",
        "eps 1e-8",
        "**Primary endpoint** (registered in the experiment file before any run): test \
         accuracy at the best-validation epoch (`test_acc_at_best_val`)",
        "Holm's correction over the 6 comparisons",
        "## Verdicts on the primary endpoint",
        "**plateau**",
        "**trend_gap**",
        "sign-flip p =",
        "floor 0.250",
        "detectable difference",
        "seeds for 1 point",
        "With 3 pairs the exact sign-flip test cannot give p below 0.250",
        "too narrow (3 values have 10 distinct resamples)",
        "plateau seed 3 (running, 5 epochs)",
        "Diverged, counted as failures: trend_gap (seed 3)",
        "## Over- and under-fitting",
        "val_acc.png",
    ] {
        assert!(
            report.contains(needle),
            "report lacks {needle:?}:\n{report}"
        );
    }
    let csv = fs::read_to_string(out.join("cifar10/comparisons.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    for field in [
        "experiment",
        "metric",
        "arm",
        "baseline",
        "welch_t",
        "holm_p",
        "aso_eps_min",
    ] {
        assert!(header.split(',').any(|h| h == field), "{field} in {header}");
    }
    assert_eq!(csv.lines().count(), 1 + cifar.comparisons.len());
}

#[test]
fn a_threshold_no_run_reaches_is_censored_not_averaged() {
    let folder = tempfile::tempdir().unwrap();
    study(folder.path());
    let settings = Settings {
        threshold: Some(0.885),
        ..Settings::default()
    };
    let analysis = analyze(&read_runs(&[folder.path().to_owned()]).unwrap(), &settings).unwrap();
    let cifar = &analysis.experiments[0];
    assert_eq!(cifar.design.threshold, 0.885);
    // constant rises to 0.86 and never reaches 0.885; trend_gap (0.90) mostly does.
    let c = cifar
        .comparisons
        .iter()
        .find(|c| {
            c.metric == "epochs_to_threshold" && c.arm == "trend_gap" && c.baseline == "constant"
        })
        .unwrap();
    assert_eq!(c.reached_baseline, Some(0.0));
    assert!(c.reached_arm.unwrap() > 0.0);
    assert_eq!(
        (c.welch_t, c.mean_baseline, c.hedges_g),
        (None, None, None),
        "no t-test on censored times"
    );
    assert!(
        c.logrank_p.is_some() && c.logrank_z.unwrap() > 0.0,
        "the arm reaches it sooner"
    );
    // Every constant run was watched to the end: "not reached" ranks above every time.
    assert!(c.mw_p.is_some());
    let summary = cifar
        .summary
        .iter()
        .find(|s| s.arm == "constant" && s.metric == "epochs_to_threshold")
        .unwrap();
    assert_eq!(
        (
            summary.n,
            summary.n_missing,
            summary.mean,
            summary.km_median
        ),
        (3, 3, None, None)
    );
}

#[test]
fn shards_in_two_folders_analyse_as_one_study() {
    let whole = tempfile::tempdir().unwrap();
    study(whole.path());
    let shards = tempfile::tempdir().unwrap();
    let (first, second) = (shards.path().join("a"), shards.path().join("b"));
    for (i, run) in read_runs(&[whole.path().to_owned()])
        .unwrap()
        .iter()
        .enumerate()
    {
        let target = if i % 2 == 0 { &first } else { &second };
        let relative = run.path.strip_prefix(whole.path()).unwrap();
        copy_dir(&run.path, &target.join(relative));
    }
    let settings = Settings::default();
    let one = analyze(&read_runs(&[whole.path().to_owned()]).unwrap(), &settings).unwrap();
    let two = analyze(
        &read_runs(&[first.clone(), second.clone()]).unwrap(),
        &settings,
    )
    .unwrap();
    let json = |a: &lrlab_analysis::Analysis| {
        serde_json::to_string(
            &a.experiments
                .iter()
                .flat_map(|e| &e.comparisons)
                .collect::<Vec<_>>(),
        )
        .unwrap()
    };
    assert_eq!(json(&one), json(&two));
    // The same run in two places is refused, naming both.
    copy_dir(&first.join("cifar10"), &second.join("again/cifar10"));
    let message = error_text(read_runs(&[first, second]));
    assert!(
        message.contains("in two places") && message.contains("again"),
        "{message}"
    );
}

fn copy_dir(from: &Path, to: &PathBuf) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn bad_input_is_named_with_its_fix() {
    let folder = tempfile::tempdir().unwrap();
    let root = folder.path().to_owned();
    let missing = error_text(read_runs(&[root.join("nowhere")]));
    assert!(
        missing.contains("nowhere") && missing.contains("--runs"),
        "{missing}"
    );

    study(&root);
    let run = root.join("cifar10/plateau/seed-1");
    // A column missing from epochs.parquet.
    let good = fs::read(run.join("epochs.parquet")).unwrap();
    write_run(
        &root,
        &Synthetic {
            experiment: "cifar10",
            arm: "plateau",
            seed: 1,
            planned: 12,
            status: Status::Complete,
            baselines: &BASELINES,
            threshold: 0.85,
        },
        &curves(3, 0.9, 3.0, 1, 1),
    );
    let mut frame = ParquetReader::new(fs::File::open(run.join("epochs.parquet")).unwrap())
        .finish()
        .unwrap();
    let _ = frame.drop_in_place("val_acc").unwrap();
    ParquetWriter::new(fs::File::create(run.join("epochs.parquet")).unwrap())
        .finish(&mut frame)
        .unwrap();
    let message = error_text(read_runs(&[&root]));
    assert!(
        message.contains("seed-1/epochs.parquet") && message.contains("no column `val_acc`"),
        "{message}"
    );
    fs::write(run.join("epochs.parquet"), &good).unwrap();

    // A run.json that is not JSON.
    let info = fs::read(run.join("run.json")).unwrap();
    fs::write(run.join("run.json"), b"{\"experiment\": ").unwrap();
    let message = error_text(read_runs(&[&root]));
    assert!(
        message.contains("seed-1/run.json") && message.contains("not valid JSON"),
        "{message}"
    );
    fs::write(run.join("run.json"), &info).unwrap();

    let runs = read_runs(&[&root]).unwrap();
    // An unknown baseline lists the arms there are.
    let settings = Settings {
        baselines: vec!["cosnie".into()],
        ..Settings::default()
    };
    let message = error_text(analyze(&runs, &settings));
    assert!(
        message.contains("--baseline cosnie") && message.contains("constant, cosine"),
        "{message}"
    );
    // Two thresholds recorded and none given.
    let mut two = runs.clone();
    two[0].record.analysis.threshold = 0.9;
    let message = error_text(analyze(&two, &Settings::default()));
    assert!(
        message.contains("threshold 0.9") && message.contains("--threshold"),
        "{message}"
    );
}

#[test]
fn a_run_without_its_record_is_refused_by_name() {
    let folder = tempfile::tempdir().unwrap();
    study(folder.path());
    let run = folder.path().join("imdb/cosine/seed-2");
    fs::remove_file(run.join("run.json")).unwrap();
    let message = error_text(read_runs(&[folder.path().to_owned()]));
    assert!(
        message.contains("imdb/cosine/seed-2/run.json") && message.contains("missing"),
        "{message}"
    );
}

/// A run of `arm` seed `seed` of the cifar10 study, planned for `planned` epochs, with `spec`
/// changed by `change`.
fn rewrite(root: &Path, arm: &str, seed: u64, change: impl FnOnce(&mut lrlab_runs::RunSpec)) {
    let run = Synthetic {
        experiment: "cifar10",
        arm,
        seed,
        planned: 12,
        status: Status::Complete,
        baselines: &BASELINES,
        threshold: 0.85,
    };
    let mut changed = spec("cifar10", arm, seed, 12);
    change(&mut changed);
    write_spec(root, &run, changed, &curves(12, 0.9, 3.0, 1, seed));
}

#[test]
fn seeds_of_an_arm_are_pooled_only_when_nothing_else_differs() {
    let folder = tempfile::tempdir().unwrap();
    study(folder.path());
    // A smoke run among full ones: fewer epochs, a narrower network.
    rewrite(folder.path(), "cosine", 1, |s| {
        s.train.epochs = 2;
        s.model = lrlab_runs::ModelSettings::Resnet18 { width: 4 };
    });
    let runs = read_runs(&[folder.path().to_owned()]).unwrap();
    let message = error_text(analyze(&runs, &Settings::default()));
    for needle in [
        "arm `cosine`",
        "cosine/seed-0",
        "cosine/seed-1",
        "model.width: 8 → 4",
        "train.epochs: 12 → 2",
        "cannot be pooled",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
}

#[test]
fn arms_are_compared_only_when_all_else_is_equal() {
    let folder = tempfile::tempdir().unwrap();
    study(folder.path());
    let cosine = || serde_json::from_value(serde_json::json!({"kind": "cosine", "t_max": 12}));
    // Another dataset commit and another base rate for every seed of one arm; its own
    // schedule is its own.
    for seed in 0..3 {
        rewrite(folder.path(), "trend_gap", seed, |s| {
            s.resolved.dataset.commit = Some("fedcba9876543210fedcba9876543210fedcba98".into());
            s.optimizer.lr = 3e-5;
            s.scheduler = cosine().unwrap();
        });
    }
    let runs = read_runs(&[folder.path().to_owned()]).unwrap();
    let message = error_text(analyze(&runs, &Settings::default()));
    for needle in [
        "arms `constant`",
        "`trend_gap`",
        "optimizer.lr: 0.001 → 0.00003",
        "resolved.dataset.commit",
        "all else equal",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
    assert!(
        !message.contains("scheduler"),
        "an arm's own schedule: {message}"
    );
    // Back to the study's commit and rate, the arm's own schedule is what it is.
    for seed in 0..3 {
        rewrite(folder.path(), "trend_gap", seed, |s| {
            s.scheduler = cosine().unwrap();
        });
    }
    let runs = read_runs(&[folder.path().to_owned()]).unwrap();
    let analysis = analyze(&runs, &Settings::default()).unwrap();
    let own = &analysis.experiments[0].protocol.arms;
    let trend_gap = own.iter().find(|a| a.arm == "trend_gap").unwrap();
    assert!(
        trend_gap.schedule.contains("\"t_max\":12"),
        "{}",
        trend_gap.schedule
    );
}

/// A cifar10 run of `arm` and `seed` with its own rows.
fn write_rows(root: &Path, arm: &str, seed: u64, status: Status, rows: &[common::Row]) {
    let run = Synthetic {
        experiment: "cifar10",
        arm,
        seed,
        planned: 12,
        status,
        baselines: &BASELINES,
        threshold: 0.85,
    };
    write_run(root, &run, rows);
}

/// The analysis of the study under `root`.
fn analysed(root: &Path, settings: &Settings) -> Analysis {
    analyze(&read_runs(&[root.to_owned()]).unwrap(), settings).unwrap()
}

/// The report of `experiment`, written under `root`.
fn report_of(experiment: &Experiment, settings: &Settings, root: &Path) -> String {
    let out = root.join("report");
    write_report(experiment, settings, &out).unwrap();
    fs::read_to_string(out.join("report.md")).unwrap()
}

/// The verdict line of `arm` in a report.
fn verdict_line<'a>(report: &'a str, arm: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with(&format!("- **{arm}**")))
        .unwrap_or_else(|| panic!("no verdict for {arm}:\n{report}"))
}

#[test]
fn an_arm_that_diverges_in_every_seed_loses_on_the_primary_endpoint() {
    let folder = tempfile::tempdir().unwrap();
    study(folder.path());
    // trend_gap had the best curves (0.90); now it diverges in epoch 3 of every seed, after
    // two good epochs.
    for seed in 0..3 {
        write_rows(
            folder.path(),
            "trend_gap",
            seed,
            Status::Diverged,
            &curves(2, 0.9, 3.0, 4, seed),
        );
    }
    let analysis = analysed(folder.path(), &Settings::default());
    let cifar = &analysis.experiments[0];
    for c in cifar
        .comparisons
        .iter()
        .filter(|c| c.family == Family::Primary && c.arm == "trend_gap")
    {
        assert_eq!((c.diverged_arm, c.diverged_baseline), (3, 0));
        assert!(c.diff_paired.unwrap() < -0.7, "chance against ~0.86: {c:?}");
        assert!(c.holm_p.unwrap() < 0.05, "{c:?}");
    }
    let report = report_of(cifar, &Settings::default(), folder.path());
    let line = verdict_line(&report, "trend_gap");
    assert!(
        line.contains("3 diverged") && line.contains("**Worse** vs constant"),
        "{line}"
    );
    assert!(!line.contains("**Better**"), "{line}");
}

#[test]
fn a_collapsed_model_is_not_called_better_for_its_small_gap() {
    let folder = tempfile::tempdir().unwrap();
    study(folder.path());
    // plateau's model collapses: it predicts one class, train ≈ val, no gap at all.
    let collapsed: Vec<common::Row> = (0..12)
        .map(|_| common::Row {
            lr: 1e-3,
            train_loss: 2.302,
            train_acc: 0.1,
            val_loss: 2.302,
            val_acc: 0.1,
            test_acc: 0.1,
        })
        .collect();
    for seed in 0..3 {
        write_rows(folder.path(), "plateau", seed, Status::Complete, &collapsed);
    }
    let analysis = analysed(folder.path(), &Settings::default());
    let cifar = &analysis.experiments[0];
    let plateau: Vec<_> = cifar.runs.iter().filter(|r| r.arm == "plateau").collect();
    assert!(plateau.iter().all(|r| r.fit() == Some(Fit::Underfit)));
    let report = report_of(cifar, &Settings::default(), folder.path());
    assert!(verdict_line(&report, "plateau").contains("**Worse**"));
    // Its gaps are the smallest, and may differ detectably: they are never "better".
    for gap in [
        "final_acc_gap",
        "final_loss_gap",
        "acc_gap_last5",
        "loss_gap_last5",
    ] {
        let section = report
            .split(&format!("(`{gap}`"))
            .nth(1)
            .and_then(|rest| rest.split("### ").next())
            .unwrap();
        for row in section.lines().filter(|l| l.starts_with("| plateau |")) {
            assert!(
                !row.contains("better") && !row.contains("worse"),
                "{gap}: {row}"
            );
        }
    }
    assert!(
        report.contains("| plateau | 0.1000 | 0.1000 | 0.0000 | 0.0000 | 3 | 0 | 0 | 0 |"),
        "the fitting table shows it underfit:\n{report}"
    );
}

#[test]
fn an_arm_identical_to_a_baseline_is_untestable_but_still_counted() {
    let folder = tempfile::tempdir().unwrap();
    study(folder.path());
    // plateau never fired: every seed's run is the constant run of that seed.
    for seed in 0..3 {
        write_rows(
            folder.path(),
            "plateau",
            seed,
            Status::Complete,
            &curves(12, 0.86, 1.0, 0, seed),
        );
    }
    let analysis = analysed(folder.path(), &Settings::default());
    let cifar = &analysis.experiments[0];
    let primary: Vec<_> = cifar
        .comparisons
        .iter()
        .filter(|c| c.family == Family::Primary)
        .collect();
    assert_eq!(primary.len(), 6, "2 arms under test × 3 baselines");
    let same = primary
        .iter()
        .find(|c| c.arm == "plateau" && c.baseline == "constant")
        .unwrap();
    assert_eq!((same.diff_paired, same.sd_paired), (Some(0.0), Some(0.0)));
    assert_eq!((same.paired_p, same.holm_p, same.mde), (None, None, None));
    assert_eq!((same.seeds_for_1_point, same.signflip_p), (None, Some(1.0)));
    assert_eq!(
        same.aso_eps_min, None,
        "one distribution: no order, not \"better\""
    );
    // The untestable comparison keeps its place in the family: the smallest p is multiplied
    // by all six.
    let smallest = primary
        .iter()
        .filter(|c| c.primary_p.is_some())
        .min_by(|a, b| a.primary_p.unwrap().total_cmp(&b.primary_p.unwrap()))
        .unwrap();
    assert_eq!(
        smallest.holm_p.unwrap(),
        (6.0 * smallest.primary_p.unwrap()).min(1.0)
    );
    let report = report_of(cifar, &Settings::default(), folder.path());
    assert!(
        verdict_line(&report, "plateau")
            .contains("paired t p = — (the same difference in every seed)"),
        "{report}"
    );
    assert!(
        report.contains(
            "| plateau | constant | 3 | 0 (the same difference in every seed) | — | — | — |"
        ),
        "{report}"
    );
    assert!(
        report.contains("they still count among the 6 that Holm corrects for"),
        "{report}"
    );
}

#[test]
fn choices_made_when_analysing_are_reported_as_departures_from_the_plan() {
    let folder = tempfile::tempdir().unwrap();
    study(folder.path());
    let as_registered = Settings {
        baselines: BASELINES.iter().map(|b| b.to_string()).collect(),
        threshold: Some(0.85),
        ..Settings::default()
    };
    let analysis = analysed(folder.path(), &as_registered);
    assert!(analysis.experiments[0].design.departures.is_empty());
    let departing = Settings {
        baselines: vec!["constant".into()],
        threshold: Some(0.5),
        ..Settings::default()
    };
    let analysis = analysed(folder.path(), &departing);
    let cifar = &analysis.experiments[0];
    assert_eq!(
        cifar.design.departures,
        [
            "threshold 0.5 (registered: 0.85)",
            r#"baselines ["constant"] (registered: ["constant", "step", "cosine"])"#
        ]
    );
    let report = report_of(cifar, &departing, folder.path());
    assert!(
        report.contains("**Departures from the registered plan** (chosen when analysing"),
        "{report}"
    );
}

#[test]
fn runs_trained_by_other_code_or_on_other_devices_are_flagged() {
    let folder = tempfile::tempdir().unwrap();
    let root = folder.path().join("runs");
    study(&root);
    let settings = Settings::default();
    let report = |name: &str| {
        let analysis = analysed(&root, &settings);
        report_of(
            &analysis.experiments[0],
            &settings,
            &folder.path().join(name),
        )
    };
    let one = report("one");
    assert!(
        one.contains("Trained by an unknown commit (15 runs) on `cpu` (15 runs)."),
        "{one}"
    );
    // One run retrained by another commit on a GPU: its specification is unchanged.
    let dir = lrlab_runs::RunDir::in_layout(&root, "cifar10", "cosine", 1);
    let mut record = dir.read_record().unwrap().expect("a record");
    record.git_commit = Some("0123456789abcdef".into());
    record.device = "cuda:0".into();
    dir.write_record(&record).unwrap();
    let mixed = report("mixed");
    assert!(
        mixed.contains(
            "**Trained by 2 commits on 2 devices**: `0123456` (1 run), an unknown commit \
             (14 runs); on `cpu` (14 runs), `cuda:0` (1 run)."
        ),
        "{mixed}"
    );
}
