//! Configuration: every key of a `[scheduler]` table is checked, and a bad one is named.

use lrlab_schedulers::{Interval, Length, Scheduler, SchedulerConfig, Span};

fn parse(text: &str) -> Result<SchedulerConfig, toml::de::Error> {
    toml::from_str(text)
}

/// The field and message of the error that building `text` gives.
fn rejection(text: &str) -> (String, String) {
    let config = parse(text).unwrap_or_else(|e| panic!("{text} should parse: {e}"));
    let err = config.build(1e-3).expect_err("should be rejected");
    assert!(err.to_string().starts_with(&format!("`{}`", err.field)));
    (err.field, err.message)
}

#[test]
fn invalid_values_name_their_field() {
    let cases = [
        ("kind = 'step'\nstep_size = 2\ngamma = 0.0", "gamma", "> 0"),
        ("kind = 'step'\nstep_size = 0", "step_size", "≥ 1"),
        ("kind = 'exponential'\ngamma = -0.5", "gamma", "got -0.5"),
        ("kind = 'cosine'\nt_max = 0", "t_max", "≥ 1"),
        (
            "kind = 'cosine'\nt_max = 5\neta_min = -1.0",
            "eta_min",
            "≥ 0",
        ),
        (
            "kind = 'multistep'\nmilestones = [3, 2]",
            "milestones",
            "strictly increasing",
        ),
        (
            "kind = 'multistep'\nmilestones = [2, 2]",
            "milestones",
            "strictly increasing",
        ),
        (
            "kind = 'multistep'\nmilestones = [0, 2]",
            "milestones",
            "≥ 1",
        ),
        ("kind = 'constant'\nfactor = 0.0", "factor", "(0, 1]"),
        (
            "kind = 'linear'\nstart_factor = 1.5",
            "start_factor",
            "(0, 1]",
        ),
        (
            "kind = 'cosine_warm_restarts'\nt_0 = 2\nt_mult = 0",
            "t_mult",
            "≥ 1",
        ),
        (
            "kind = 'one_cycle'\nmax_lr = 0.1\ntotal_steps = 10\npct_start = 0.1",
            "pct_start",
            "zero",
        ),
        (
            "kind = 'one_cycle'\nmax_lr = 0.1\ntotal_steps = 10\npct_start = 1.5",
            "pct_start",
            "[0, 1]",
        ),
        ("kind = 'plateau'\nfactor = 1.0", "factor", "[0, 1)"),
        (
            "kind = 'plateau'\nmonitor = 'grad_dot'",
            "monitor",
            "grad_dot",
        ),
        (
            "kind = 'plateau'\nmonitor = 'val_loss'\ninterval = 'step'",
            "interval",
            "batch_loss",
        ),
        (
            "kind = 'greedy'\nmin_lr = 0.1\nmax_lr = 0.01",
            "min_lr",
            "must not exceed max_lr",
        ),
        ("kind = 'greedy'\nfactor = 1.2", "factor", "(0, 1)"),
        (
            "kind = 'hypergradient'\nmax_lr = 0.1\ninterval = 'epoch'",
            "interval",
            "per optimizer step",
        ),
        (
            "kind = 'hypergradient'\nmax_lr = 0.1\nmin_lr = 1.0",
            "min_lr",
            "max_lr",
        ),
        (
            "kind = 'trend_gap'\nspike_ratio = 1.0",
            "spike_ratio",
            "> 1",
        ),
        (
            "kind = 'trend_gap'\nstall_tolerance = 0.5",
            "stall_tolerance",
            "improve_tolerance",
        ),
        (
            "kind = 'trend_gap'\nmin_lr = 1.0\nmax_lr = 0.5",
            "min_lr",
            "max_lr",
        ),
        (
            "kind = 'warmup'\ninner = { kind = 'constant' }",
            "warmup_steps",
            "exactly one",
        ),
        (
            "kind = 'warmup'\nwarmup_steps = 1\nwarmup_epochs = 1\ninner = { kind = 'constant' }",
            "warmup_steps",
            "exactly one",
        ),
        (
            "kind = 'warmup'\nwarmup_epochs = 0\ninner = { kind = 'constant' }",
            "warmup_epochs",
            "≥ 1",
        ),
        (
            "kind = 'warmup'\nwarmup_steps = 10\ninner = { kind = 'step', step_size = 1, gamma = 0 }",
            "inner.gamma",
            "> 0",
        ),
        (
            "kind = 'sequential'\nmilestones = [2]\nschedulers = [{ kind = 'constant' }, { kind = 'cosine', t_max = 0 }]",
            "schedulers[1].t_max",
            "≥ 1",
        ),
        (
            "kind = 'sequential'\nmilestones = [2, 4]\nschedulers = [{ kind = 'constant' }, { kind = 'constant' }]",
            "milestones",
            "one fewer",
        ),
        (
            "kind = 'sequential'\nmilestones = [2]\nschedulers = [{ kind = 'constant', interval = 'step' }, { kind = 'constant' }]",
            "interval",
            "different clocks",
        ),
        (
            "kind = 'sequential'\nmilestones = []\nschedulers = []",
            "schedulers",
            "at least one",
        ),
    ];
    for (text, field, needle) in cases {
        let (got_field, message) = rejection(text);
        assert_eq!(got_field, field, "{text}");
        assert!(
            message.contains(needle),
            "{text}: {message:?} lacks {needle:?}"
        );
    }
}

#[test]
fn unknown_keys_and_kinds_are_parse_errors_that_name_them() {
    let err = parse("kind = 'cosine'\nt_max = 5\ntmax = 3")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `tmax`"), "{err}");
    let err = parse("kind = 'cosine'\nt_max = 5\nt_max2 = 1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("t_max2"), "{err}");
    let err = parse("kind = 'cosinus'\nt_max = 5")
        .unwrap_err()
        .to_string();
    assert!(err.contains("cosinus") && err.contains("cosine"), "{err}");
    let err = parse("kind = 'step'").unwrap_err().to_string();
    assert!(err.contains("step_size"), "{err}");
    let err = parse("kind = 'step'\nstep_size = -2")
        .unwrap_err()
        .to_string();
    assert!(err.contains("-2"), "{err}");
}

#[test]
fn defaults_follow_pytorch_and_intervals_resolve() {
    let plateau = parse("kind = 'plateau'").unwrap();
    let SchedulerConfig::Plateau(p) = &plateau else {
        panic!()
    };
    assert_eq!(
        (p.factor, p.patience, p.threshold, p.eps),
        (0.1, Length::Ticks(10), 1e-4, 1e-8)
    );
    assert_eq!(plateau.build(1e-3).unwrap().interval(), Interval::Epoch);
    let batch = parse("kind = 'plateau'\nmonitor = 'batch_loss'").unwrap();
    assert_eq!(batch.build(1e-3).unwrap().interval(), Interval::Step);
    let one_cycle = parse("kind = 'one_cycle'\nmax_lr = 0.1\ntotal_steps = 100").unwrap();
    assert_eq!(one_cycle.build(1e-3).unwrap().interval(), Interval::Step);
    let warm =
        parse("kind = 'warmup'\nwarmup_steps = 3\nscheduler = { kind = 'cosine', t_max = 4 }")
            .unwrap();
    assert_eq!(warm.build(1e-3).unwrap().interval(), Interval::Step);
    let constant = parse("kind = 'constant'").unwrap().build(0.02).unwrap();
    assert_eq!(
        constant.lr(),
        0.02,
        "a bare constant is the constant baseline"
    );
}

#[test]
fn every_kind_is_named_in_the_registry() {
    assert_eq!(SchedulerConfig::KINDS.len(), 15);
    for kind in SchedulerConfig::KINDS {
        let err = parse(&format!("kind = '{kind}'\nbogus = 1"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bogus") || err.contains("missing field"),
            "{kind}: {err}"
        );
    }
}

#[test]
fn a_negative_or_non_finite_base_rate_is_rejected() {
    let config = parse("kind = 'constant'").unwrap();
    assert_eq!(config.build(-1.0).unwrap_err().field, "base_lr");
    assert_eq!(config.build(f64::NAN).unwrap_err().field, "base_lr");
}

#[test]
fn a_warmup_that_takes_the_whole_run_is_refused_by_its_own_key() {
    let warmup =
        parse("kind = 'warmup'\nwarmup_steps = '200%'\n[inner]\nkind = 'step'\nstep_size = '30%'")
            .unwrap();
    let err = warmup.resolve(Span::of_run(2, 4)).unwrap_err();
    assert_eq!(err.field, "warmup_steps", "{err}");
    assert!(
        err.message
            .contains("16 steps of warmup take the whole run (8 steps)"),
        "{err}"
    );
    // Leaving one step for the schedule is enough.
    let short =
        parse("kind = 'warmup'\nwarmup_steps = 7\n[inner]\nkind = 'cosine'\nt_max = 'steps'\ninterval = 'step'")
            .unwrap();
    let resolved = short.resolve(Span::of_run(2, 4));
    assert!(resolved.is_ok(), "{resolved:?}");
}
