//! Experiment files (`configs/<experiment>.toml`): typed and checked, with presets and the
//! command's flags written as overlays of the file's own keys, so that every value — wherever it
//! came from — is checked, and named, the same way.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use indexmap::IndexMap;
use lrlab_analysis::{Better, Metric};
use lrlab_runs::{
    AnalysisPlan, DataSettings, ModelSettings, OptimizerConfig, TrainPlan, Tuning, check_name,
};
use lrlab_schedulers::{Length, SchedulerConfig, WarmupConfig};
use serde::Deserialize;

/// One experiment: a task's data and model, the training plan, and the arms compared.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Its name, the folder of its runs.
    pub experiment: String,
    /// The metric the verdicts are drawn from, stated before any result (for `analyze`).
    /// Default `test_acc_at_best_val`: the accuracy of the model a user would deploy.
    #[serde(default = "primary_metric")]
    pub primary_metric: String,
    /// Validation accuracy that counts as converged (for `analyze`).
    pub threshold: f64,
    /// The arms the others are compared with (for `analyze`).
    pub baselines: Vec<String>,
    /// Arms reported apart, neither baselines nor arms under test (for `analyze`).
    #[serde(default)]
    pub references: Vec<String>,
    /// A warmup in front of every arm's schedule, so that arms differ by their schedules, not
    /// by warming up or not.
    #[serde(default)]
    pub warmup: Option<SharedWarmup>,
    /// The seeds each arm is trained with: initial weights, data order, augmentation, dropout.
    pub seeds: Vec<u64>,
    /// The data.
    pub data: DataSettings,
    /// The model.
    pub model: ModelSettings,
    /// The training plan shared by every arm.
    pub train: TrainPlan,
    /// The optimizer shared by every arm.
    pub optimizer: OptimizerConfig,
    /// The arms: a name and a schedule each, in the file's order. Lengths may be relative to
    /// the run (`"epochs"`, `"30%"`).
    pub arms: IndexMap<String, SchedulerConfig>,
    /// How `cargo xtask tune` searches: its budget and seed.
    #[serde(default)]
    pub tuning: Option<TuningPlan>,
    /// Each arm's search space for `cargo xtask tune` (`[tune.<arm>]`): keys of the arm's
    /// schedule (`inner.patience` for a nested one) and the values to draw from.
    #[serde(default)]
    pub tune: IndexMap<String, IndexMap<String, Space>>,
    /// Written by `cargo xtask tune` into the experiment file it writes: how the arms'
    /// settings were chosen.
    #[serde(default)]
    pub tuned: Option<Tuning>,
}

/// `[tuning]`: the search `cargo xtask tune` makes (its flags override both keys).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuningPlan {
    /// Settings offered to every arm, the arm as written among them.
    pub budget: u32,
    /// The seed settings are drawn with and trained on; not one of the study's seeds.
    pub seed: u64,
}

/// Where a key of a tuning space takes its values from.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Space {
    /// One of these values, each equally likely (numbers, lengths such as `"30%"`, names).
    Choice(Vec<toml::Value>),
    /// A number between two ends.
    Range(Range),
}

/// `{ low = …, high = … }`: a number uniform in [low, high]; with `log = true` its logarithm is
/// uniform; with `integer = true` it is a whole number.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// The lowest value.
    pub low: f64,
    /// The highest value.
    pub high: f64,
    /// Uniform in log space (both ends > 0).
    #[serde(default)]
    pub log: bool,
    /// Whole numbers only.
    #[serde(default)]
    pub integer: bool,
}

fn primary_metric() -> String {
    Metric::TestAccAtBestVal.key().to_owned()
}

/// The warmup every arm of an experiment starts with: a linear ramp of the rate from
/// `start_factor` × its base over `steps` optimizer steps, then the arm's schedule over the rest
/// of the run (lengths relative to the run are shares of what follows the warmup).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedWarmup {
    /// Its length in optimizer steps (a length: `"6%"` of the run); 0 for none.
    pub steps: Length,
    /// The factor of the base rate it starts from; in [0, 1]. Default 0.
    #[serde(default)]
    pub start_factor: f64,
}

/// Where an experiment's values came from: the file, the preset laid over it and the flags laid
/// over both; errors name it with the key.
#[derive(Clone, Debug)]
pub struct Origin {
    /// The experiment file.
    pub path: PathBuf,
    /// The preset applied.
    pub preset: String,
    /// The flags that set keys, as typed.
    pub flags: Vec<String>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (preset `{}`", self.path.display(), self.preset)?;
        if !self.flags.is_empty() {
            write!(f, "; {}", self.flags.join(" "))?;
        }
        f.write_str(")")
    }
}

impl Origin {
    /// An error about `key` of the experiment.
    pub fn error(&self, key: &str, message: impl fmt::Display) -> anyhow::Error {
        anyhow!("{self}: key `{key}`: {message}")
    }
}

/// Values the command's flags set, laid over the file and its preset.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `train.epochs`.
    pub epochs: Option<u32>,
    /// `seeds`.
    pub seeds: Option<Vec<u64>>,
    /// `train.dtype`.
    pub dtype: Option<lrlab_runs::Precision>,
    /// `train.tf32 = true`.
    pub tf32: bool,
}

impl Overrides {
    /// The overlay of the file's keys, and the flags as typed.
    fn overlay(&self) -> (toml::Table, Vec<String>) {
        let (mut root, mut train, mut flags) = (toml::Table::new(), toml::Table::new(), Vec::new());
        if let Some(epochs) = self.epochs {
            train.insert("epochs".into(), i64::from(epochs).into());
            flags.push(format!("--epochs {epochs}"));
        }
        if let Some(dtype) = self.dtype {
            train.insert("dtype".into(), dtype.name().into());
            flags.push(format!("--dtype {dtype}"));
        }
        if self.tf32 {
            train.insert("tf32".into(), true.into());
            flags.push("--tf32".into());
        }
        if let Some(seeds) = &self.seeds {
            let list: Vec<toml::Value> = seeds
                .iter()
                .map(|&s| i64::try_from(s).map_or_else(|_| s.to_string().into(), Into::into))
                .collect();
            root.insert("seeds".into(), list.into());
            let text: Vec<String> = seeds.iter().map(u64::to_string).collect();
            flags.push(format!("--seeds {}", text.join(",")));
        }
        if !train.is_empty() {
            root.insert("train".into(), train.into());
        }
        (root, flags)
    }
}

impl Experiment {
    /// Reads `path` with `[presets.<preset>]` and then `overrides` laid over it, and checks the
    /// experiment's own keys; errors name the file, the preset, the flags and the key.
    pub fn read(path: &Path, preset: &str, overrides: &Overrides) -> Result<(Self, Origin)> {
        let (root, origin) = Self::merged(path, preset, overrides)?;
        let experiment = Self::from_table(root, &origin)?;
        Ok((experiment, origin))
    }

    /// The file's table with `[presets.<preset>]` and `overrides` laid over it, not yet
    /// checked.
    pub fn merged(
        path: &Path,
        preset: &str,
        overrides: &Overrides,
    ) -> Result<(toml::Table, Origin)> {
        let (overlay, flags) = overrides.overlay();
        let origin = Origin {
            path: path.to_owned(),
            preset: preset.to_owned(),
            flags,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("cannot read the experiment file {}: {e}", path.display()))?;
        let mut root: toml::Table = toml::from_str(&text)
            .map_err(|e| anyhow!("{}: not valid TOML: {e}", path.display()))?;
        let presets = match root.remove("presets") {
            Some(toml::Value::Table(presets)) => presets,
            Some(_) => return Err(origin.error("presets", "must be a table of tables")),
            None => toml::Table::new(),
        };
        match presets.get(preset) {
            Some(toml::Value::Table(table)) => overlay_into(&mut root, table.clone()),
            Some(_) => return Err(origin.error(&format!("presets.{preset}"), "must be a table")),
            None => {
                let known: Vec<&str> = presets.keys().map(String::as_str).collect();
                return Err(anyhow!(
                    "{}: no preset `{preset}` (the file has: {})",
                    path.display(),
                    known.join(", ")
                ));
            }
        }
        overlay_into(&mut root, overlay);
        Ok((root, origin))
    }

    /// The experiment a merged table holds, its keys checked.
    pub fn from_table(root: toml::Table, origin: &Origin) -> Result<Self> {
        let experiment: Self = serde_path_to_error::deserialize(toml::Value::Table(root))
            .map_err(|e| origin.error(&e.path().to_string(), e.inner()))?;
        experiment.check(origin)?;
        Ok(experiment)
    }

    /// Checks the keys that concern the experiment as a whole; those of a run are checked with
    /// its specification.
    fn check(&self, origin: &Origin) -> Result<()> {
        let fail = |key: &str, message: String| Err(origin.error(key, message));
        check_name("experiment", &self.experiment).map_err(|e| origin.error(&e.key, e.message))?;
        if self.arms.is_empty() {
            return fail(
                "arms",
                "the experiment has no arm; add `[arms.NAME]` tables".into(),
            );
        }
        for name in self.arms.keys() {
            let key = format!("arms.{name}");
            check_name(&key, name).map_err(|e| origin.error(&e.key, e.message))?;
        }
        for baseline in &self.baselines {
            if !self.arms.contains_key(baseline) {
                return fail(
                    "baselines",
                    format!("`{baseline}` is not an arm of the file"),
                );
            }
        }
        for reference in &self.references {
            if !self.arms.contains_key(reference) || self.baselines.contains(reference) {
                return fail(
                    "references",
                    format!("`{reference}` must be an arm of the file and not a baseline"),
                );
            }
        }
        let primary = Metric::from_key(&self.primary_metric);
        if primary.is_none_or(|m| m.better() == Better::Neither) {
            let keys: Vec<&str> = Metric::ALL
                .into_iter()
                .filter(|m| m.better() != Better::Neither)
                .map(Metric::key)
                .collect();
            return fail(
                "primary_metric",
                format!(
                    "`{}` is not a metric with a better direction; one of: {}",
                    self.primary_metric,
                    keys.join(", ")
                ),
            );
        }
        if self.seeds.is_empty() {
            return fail("seeds", "at least one seed".into());
        }
        let repeated = (1..self.seeds.len()).find(|&i| self.seeds[..i].contains(&self.seeds[i]));
        if let Some(i) = repeated {
            return fail(
                "seeds",
                format!(
                    "seed {} is listed twice; each seed is one run of every arm",
                    self.seeds[i]
                ),
            );
        }
        if let Some(arm) = self.tune.keys().find(|arm| !self.arms.contains_key(*arm)) {
            return fail(
                &format!("tune.{arm}"),
                format!("`{arm}` is not an arm of the file; a search space belongs to an arm"),
            );
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return fail(
                "threshold",
                format!("{} must be a validation accuracy in [0, 1]", self.threshold),
            );
        }
        Ok(())
    }

    /// Checks that every arm of `--arms` is an arm of the file.
    pub fn check_arm_names(&self, arms: &[String], origin: &Origin) -> Result<()> {
        match arms.iter().find(|arm| !self.arms.contains_key(*arm)) {
            Some(unknown) => {
                let known: Vec<&str> = self.arms.keys().map(String::as_str).collect();
                Err(anyhow!(
                    "--arms: no arm `{unknown}` in {} (it has: {})",
                    origin.path.display(),
                    known.join(", ")
                ))
            }
            None => Ok(()),
        }
    }

    /// Keeps the arms of `arms` only (names checked by [`Self::check_arm_names`]). The
    /// analysis plan stays the file's: runs of one experiment trained by separate invocations
    /// record one plan, and the analysis keeps the arms that ran.
    pub fn retain_arms(&mut self, arms: &[String]) {
        self.arms.retain(|name, _| arms.contains(name));
    }

    /// The schedule of `arm`, behind the shared warmup when the experiment has one.
    pub fn schedule_of(&self, arm: &str) -> SchedulerConfig {
        let schedule = self.arms[arm].clone();
        match &self.warmup {
            Some(warmup) if warmup.steps != Length::Ticks(0) => {
                SchedulerConfig::Warmup(WarmupConfig {
                    start_factor: warmup.start_factor,
                    warmup_steps: Some(warmup.steps),
                    warmup_epochs: None,
                    inner: Box::new(schedule),
                })
            }
            _ => schedule,
        }
    }

    /// The key of the experiment file that `field` of [`Self::schedule_of`]`(arm)` comes from:
    /// the arm's own keys, or the shared warmup's.
    pub fn schedule_key(&self, arm: &str, field: &str) -> String {
        let wrapped = matches!(&self.warmup, Some(w) if w.steps != Length::Ticks(0));
        let own = |rest: &str| match rest {
            "" => format!("arms.{arm}"),
            rest => format!("arms.{arm}.{rest}"),
        };
        if !wrapped {
            return own(field);
        }
        match field {
            "inner" => own(""),
            "warmup_steps" => "warmup.steps".into(),
            "" => "warmup".into(),
            field => match field.strip_prefix("inner.") {
                Some(rest) => own(rest),
                None => format!("warmup.{field}"),
            },
        }
    }

    /// How the experiment asks to be analysed.
    pub fn analysis(&self) -> AnalysisPlan {
        AnalysisPlan {
            primary_metric: self.primary_metric.clone(),
            threshold: self.threshold,
            baselines: self.baselines.clone(),
            references: self.references.clone(),
            tuning: self.tuned.clone(),
        }
    }
}

/// Lays `overlay` over `base`: tables merge key by key, any other value replaces.
fn overlay_into(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(over)) => {
                overlay_into(inner, over)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Where a task's experiment file lives in a checkout: `configs/<task>.toml`.
pub fn default_relative(task: &str) -> PathBuf {
    Path::new("configs").join(format!("{task}.toml"))
}
