//! The statistics against scipy and statsmodels (fixture from `scripts/reference.py`).

use lrlab_analysis::stats::{self, Censored, Resampler};
use serde_json::Value;

fn fixture() -> Value {
    let text = include_str!("fixtures/stats_reference.json");
    serde_json::from_str(text).expect("fixture parses")
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

#[track_caller]
fn close(actual: f64, expected: &Value, tolerance: f64, what: &str) {
    let expected = expected
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: no reference"));
    let scale = expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tolerance * scale,
        "{what}: {actual} vs scipy's {expected} (off by {:e})",
        (actual - expected).abs()
    );
}

/// Every large resample count enumerates the small cases exactly.
const EXACT: Resampler = Resampler {
    resamples: 10_000,
    seed: 0,
};

#[test]
fn two_sample_tests_match_scipy() {
    let fixture = fixture();
    let cases = fixture["two_sample"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for (i, case) in cases.iter().enumerate() {
        let (a, b) = (floats(&case["a"]), floats(&case["b"]));
        let what = |test: &str| format!("case {i} ({a:?} vs {b:?}) {test}");
        match (stats::welch(&a, &b), case["welch"].is_null()) {
            (Some(w), false) => {
                close(w.t, &case["welch"]["t"], 1e-9, &what("Welch t"));
                close(w.df, &case["welch"]["df"], 1e-9, &what("Welch df"));
                close(w.p, &case["welch"]["p"], 1e-9, &what("Welch p"));
            }
            (None, true) => {}
            (ours, _) => panic!("{}: {ours:?} vs scipy's {}", what("Welch"), case["welch"]),
        }
        if let Some(reference) = case.get("paired") {
            match (stats::paired(&a, &b), reference.is_null()) {
                (Some(p), false) => {
                    close(p.t, &reference["t"], 1e-9, &what("paired t"));
                    close(p.p, &reference["p"], 1e-9, &what("paired p"));
                }
                (None, true) => {}
                (ours, _) => panic!("{}: {ours:?} vs scipy's {reference}", what("paired")),
            }
        }
        let mw = stats::mann_whitney(&a, &b).expect("non-empty samples");
        close(
            mw.u,
            &case["mann_whitney"]["u"],
            1e-9,
            &what("Mann–Whitney U"),
        );
        close(
            mw.p,
            &case["mann_whitney"]["p"],
            1e-9,
            &what("Mann–Whitney p"),
        );
        assert!(
            mw.min_p <= mw.p + 1e-12,
            "{}",
            what("smallest attainable p")
        );
        match (stats::hedges_g(&a, &b, 0.95), case["hedges"].is_null()) {
            (Some(h), false) => {
                close(h.g, &case["hedges"]["g"], 1e-9, &what("Hedges' g"));
                close(h.lo, &case["hedges"]["lo"], 1e-9, &what("Hedges' g low"));
                close(h.hi, &case["hedges"]["hi"], 1e-9, &what("Hedges' g high"));
            }
            (None, true) => {}
            (ours, _) => panic!("{}: {ours:?} vs {}", what("Hedges' g"), case["hedges"]),
        }
        // The reference integrates on a grid of 200,000 steps; ours is exact.
        close(
            stats::violation_ratio(&a, &b),
            &case["violation_ratio"],
            1e-4,
            &what("ASO violation ratio"),
        );
        if let Some(reference) = case.get("bootstrap_difference") {
            let (lo, hi) = EXACT.difference_interval(&a, &b, 0.95, "test");
            close(lo, &reference[0], 1e-12, &what("bootstrap difference low"));
            close(hi, &reference[1], 1e-12, &what("bootstrap difference high"));
        }
    }
}

#[test]
fn holm_matches_statsmodels() {
    // A missing p (null; NaN to statsmodels) stays missing, and still counts in the family.
    let optional = |v: &Value| v.as_array().unwrap().iter().map(Value::as_f64).collect();
    for family in fixture()["holm"].as_array().unwrap() {
        let p: Vec<Option<f64>> = optional(&family["p"]);
        let expected: Vec<Option<f64>> = optional(&family["adjusted"]);
        let adjusted = stats::holm(&p);
        assert_eq!(adjusted.len(), expected.len());
        for (ours, reference) in adjusted.iter().zip(&expected) {
            match (ours, reference) {
                (Some(ours), Some(reference)) => {
                    close(*ours, &Value::from(*reference), 1e-12, "Holm-adjusted p")
                }
                (ours, reference) => assert_eq!(ours, reference, "a missing p stays missing"),
            }
        }
    }
    assert!(
        fixture()["holm"].as_array().unwrap().iter().any(|f| f["p"]
            .as_array()
            .unwrap()
            .iter()
            .any(Value::is_null)),
        "a family with a missing p"
    );
}

#[test]
fn one_sample_intervals_match_scipy() {
    for case in fixture()["one_sample"].as_array().unwrap() {
        let x = floats(&case["x"]);
        if let Some(reference) = case.get("t_interval") {
            let (lo, hi) = stats::describe(&x, 0.95).t_interval.unwrap();
            close(lo, &reference[0], 1e-9, "t-interval low");
            close(hi, &reference[1], 1e-9, "t-interval high");
        }
        if let Some(reference) = case.get("bootstrap_mean") {
            let (lo, hi) = EXACT.mean_interval(&x, 0.95, "test");
            close(lo, &reference[0], 1e-12, "exact bootstrap low");
            close(hi, &reference[1], 1e-12, "exact bootstrap high");
        }
    }
}

fn censored(side: &Value) -> Vec<Censored> {
    floats(&side["time"])
        .into_iter()
        .zip(side["observed"].as_array().unwrap())
        .map(|(time, observed)| Censored {
            time,
            observed: observed.as_bool().unwrap(),
        })
        .collect()
}

#[test]
fn censored_times_match_scipy() {
    for case in fixture()["censored"].as_array().unwrap() {
        let (a, b) = (censored(&case["a"]), censored(&case["b"]));
        let test = stats::log_rank(&a, &b).unwrap();
        close(test.z, &case["logrank"]["z"], 1e-9, "log-rank z");
        close(test.p, &case["logrank"]["p"], 1e-9, "log-rank p");
        for (sample, reference) in [&a, &b]
            .into_iter()
            .zip(case["km_median"].as_array().unwrap())
        {
            assert_eq!(
                stats::kaplan_meier_median(sample),
                reference.as_f64(),
                "Kaplan–Meier median"
            );
        }
    }
}

#[test]
fn paired_tests_match_scipy_with_ties_and_zero_differences() {
    let fixture = fixture();
    let cases = fixture["paired"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for (i, case) in cases.iter().enumerate() {
        let (a, b) = (floats(&case["a"]), floats(&case["b"]));
        let what = |test: &str| format!("paired case {i} ({a:?} vs {b:?}) {test}");
        match (stats::paired(&a, &b), case["paired"].is_null()) {
            (Some(p), false) => {
                close(p.t, &case["paired"]["t"], 1e-9, &what("paired t"));
                close(p.p, &case["paired"]["p"], 1e-9, &what("paired p"));
            }
            (None, true) => {}
            (ours, _) => panic!("{}: {ours:?} vs {}", what("paired"), case["paired"]),
        }
        let flip = stats::sign_flip(&a, &b).expect("pairs");
        close(flip.p, &case["sign_flip_p"], 1e-12, &what("sign-flip p"));
        assert_eq!(
            flip.min_p,
            2.0 / 2f64.powi(a.len() as i32),
            "{}",
            what("floor")
        );
        assert!(flip.min_p <= flip.p, "{}", what("floor below p"));
    }
    // The study's shape: 3 pairs of one sign give the floor, 0.25 two-sided.
    let study = stats::sign_flip(&[0.91, 0.93, 0.92], &[0.89, 0.90, 0.905]).unwrap();
    assert_eq!((study.p, study.min_p), (0.25, 0.25));
    assert_eq!(stats::sign_flip(&[], &[]), None);
}

#[test]
fn detectable_differences_and_seeds_needed_match_scipy() {
    for case in fixture()["detectable_difference"].as_array().unwrap() {
        let (sd, alpha, power) = (
            case["sd"].as_f64().unwrap(),
            case["alpha"].as_f64().unwrap(),
            case["power"].as_f64().unwrap(),
        );
        let n = case["n"].as_u64().unwrap() as usize;
        let d = stats::detectable_difference(sd, n, alpha, power).unwrap();
        close(d, &case["difference"], 1e-9, "detectable difference");
        for (delta, key) in [(0.01, "0.01"), (0.005, "0.005")] {
            let needed = stats::pairs_needed(sd, delta, alpha, power, 1000);
            let want = case["pairs_needed"][key].as_u64().map(|n| n as usize);
            assert_eq!(needed, want, "pairs for {delta} at sd {sd}, alpha {alpha}");
        }
    }
    assert_eq!(stats::detectable_difference(0.01, 1, 0.05, 0.8), None);
}

#[test]
fn exact_mann_whitney_has_the_textbook_floor() {
    // 3 vs 3 without ties: 20 equally likely rank sets, the most extreme two-sided p = 2/20.
    let mw = stats::mann_whitney(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
    assert_eq!((mw.u, mw.p, mw.min_p), (0.0, 0.1, 0.1));
}

#[test]
fn drawn_bootstrap_is_seeded_and_close_to_the_exact_one() {
    let a: Vec<f64> = (0..12).map(|i| f64::from(i).sin()).collect();
    let drawn = Resampler {
        resamples: 20_000,
        seed: 7,
    };
    let first = drawn.mean_interval(&a, 0.95, "label");
    assert_eq!(
        first,
        drawn.mean_interval(&a, 0.95, "label"),
        "same seed and label"
    );
    assert_ne!(
        first,
        drawn.mean_interval(&a, 0.95, "other"),
        "labels pick streams"
    );
    // The percentile interval of the mean is near mean ± 1.96 σ/√n (σ with n in the
    // denominator, as the bootstrap sees it).
    let mean = stats::mean(&a);
    let sigma = (stats::variance(&a) * 11.0 / 12.0).sqrt() / 12f64.sqrt();
    assert!((first.0 - (mean - 1.96 * sigma)).abs() < 0.1 * sigma * 1.96 * 2.0);
    assert!((first.1 - (mean + 1.96 * sigma)).abs() < 0.1 * sigma * 1.96 * 2.0);
}

#[test]
fn aso_orders_clearly_separated_samples() {
    let better = [0.92, 0.93, 0.94];
    let worse = [0.80, 0.81, 0.82];
    assert_eq!(
        stats::aso_eps_min(&better, &worse, 0.05, &EXACT, "x"),
        Some(0.0)
    );
    assert_eq!(
        stats::aso_eps_min(&worse, &better, 0.05, &EXACT, "x"),
        Some(1.0)
    );
    let overlapping = stats::aso_eps_min(&[0.5, 0.7, 0.9], &[0.6, 0.7, 0.8], 0.05, &EXACT, "x")
        .expect("different samples");
    assert!(overlapping > 0.2 && overlapping <= 1.0, "{overlapping}");
    // One distribution (the same values in another order): no order, not "better".
    assert_eq!(stats::violation_ratio(&[0.5, 0.6], &[0.6, 0.5]), 0.0);
    assert_eq!(
        stats::aso_eps_min(&[0.5, 0.6], &[0.6, 0.5], 0.05, &EXACT, "x"),
        None
    );
    assert_eq!(stats::aso_eps_min(&[0.5], &[0.5], 0.05, &EXACT, "x"), None);
}
