//! What an experiment's runs are, in words for the report: the settings every arm shares, and
//! each arm's own schedule.

use std::collections::BTreeMap;

use lrlab_runs::{ModelSettings, RunSpec};

use crate::runs::Run;

/// One setting of the protocol and its value, as the report prints them.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// What it is.
    pub name: &'static str,
    /// Its value.
    pub value: String,
}

/// One arm's own setting: its schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct ArmSettings {
    /// The arm.
    pub arm: String,
    /// Its schedule, every length in ticks, as compact JSON.
    pub schedule: String,
}

/// What an experiment's runs are.
#[derive(Clone, Debug, PartialEq)]
pub struct Protocol {
    /// The settings every arm shares (they were checked to be equal).
    pub shared: Vec<Setting>,
    /// Each arm's own, in the order of `arms`.
    pub arms: Vec<ArmSettings>,
}

impl Protocol {
    /// The protocol of the runs of `arms`, listed in the order `ordered`.
    pub(crate) fn of(ordered: &[String], arms: &BTreeMap<&str, Vec<&Run>>) -> Self {
        let first = |arm: &str| arms[arm][0].spec();
        let mut seeds: Vec<u64> = arms.values().flatten().map(|r| r.seed()).collect();
        seeds.sort_unstable();
        seeds.dedup();
        let shared = ordered
            .first()
            .map(|arm| shared_settings(first(arm), &seeds))
            .unwrap_or_default();
        Protocol {
            shared,
            arms: ordered
                .iter()
                .map(|arm| {
                    let spec = first(arm);
                    ArmSettings {
                        arm: arm.clone(),
                        schedule: serde_json::to_string(&spec.scheduler)
                            .expect("a schedule serialises"),
                    }
                })
                .collect(),
        }
    }
}

fn shared_settings(spec: &RunSpec, seeds: &[u64]) -> Vec<Setting> {
    let resolved = &spec.resolved;
    let at = |commit: &Option<String>| {
        commit
            .as_deref()
            .map_or(String::new(), |c| format!(" @ {}", &c[..c.len().min(12)]))
    };
    let sizes = resolved.split_sizes;
    let model = match &spec.model {
        ModelSettings::Resnet18 { width } => format!("ResNet-18, width {width}"),
        ModelSettings::Bert { checkpoint, .. } => {
            let commit = resolved.checkpoint.as_ref().and_then(|c| c.commit.clone());
            format!("BERT classifier from {checkpoint}{}", at(&commit))
        }
    };
    let train = &spec.train;
    let optimizer = &spec.optimizer;
    let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
    let setting = |name, value| Setting { name, value };
    vec![
        setting(
            "data",
            format!("{}{}", resolved.dataset.repo, at(&resolved.dataset.commit)),
        ),
        setting(
            "splits",
            format!(
                "{} train, {} validation (held out at {} with split seed {}), {} test",
                sizes.train, sizes.val, spec.data.val_fraction, spec.data.split_seed, sizes.test
            ),
        ),
        setting("model", format!("{model}, {} classes", resolved.classes)),
        setting(
            "training",
            format!(
                "{} epochs × {} steps, batch {}, augmentation {}, {}{}",
                train.epochs,
                resolved.steps_per_epoch,
                train.batch_size,
                if train.augment { "on" } else { "off" },
                train.dtype,
                if train.tf32 { ", TF32" } else { "" }
            ),
        ),
        setting(
            "optimizer",
            format!(
                "{:?} at lr {}, weight decay {}, betas ({}, {}), eps {:e}",
                optimizer.kind,
                optimizer.lr,
                optimizer.weight_decay,
                optimizer.betas.0,
                optimizer.betas.1,
                optimizer.eps
            ),
        ),
        setting("seeds", seeds.join(", ")),
        setting("lrlab", spec.lrlab_version.clone()),
    ]
}
