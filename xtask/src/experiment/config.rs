//! Experiment files (`configs/<experiment>.toml`): typed and checked, with presets written as
//! overlays of the file's own keys.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indexmap::IndexMap;
use lrlab_models::Precision;
use lrlab_schedulers::SchedulerConfig;
use lrlab_trainer::OptimizerConfig;
use serde::{Deserialize, Serialize};

/// One experiment: a dataset and model, the training plan, and the arms compared.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Its name, the folder of its runs.
    pub experiment: String,
    /// Validation accuracy that counts as converged (for `analyze`).
    pub threshold: f64,
    /// The arms the others are compared with (for `analyze`).
    pub baselines: Vec<String>,
    /// The data.
    pub data: DataSettings,
    /// The model.
    pub model: ModelSettings,
    /// The training plan shared by every arm.
    pub train: TrainSettings,
    /// The optimizer shared by every arm.
    pub optimizer: OptimizerConfig,
    /// The arms: a name and a schedule each, in the file's order.
    pub arms: IndexMap<String, SchedulerConfig>,
    /// The base learning rate of arms that do not start from `optimizer.lr` (a reference
    /// schedule published with its own rate).
    #[serde(default)]
    pub arm_lr: IndexMap<String, f64>,
}

/// Where the examples come from.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    /// Fraction of the training file held out for validation.
    pub val_fraction: f64,
    /// Seed of the validation split (the same for every run).
    pub split_seed: u64,
    /// Stratified caps of the splits.
    #[serde(default)]
    pub limit_train: Option<usize>,
    /// See `limit_train`.
    #[serde(default)]
    pub limit_val: Option<usize>,
    /// See `limit_train`.
    #[serde(default)]
    pub limit_test: Option<usize>,
    /// Text: tokens per example.
    #[serde(default)]
    pub max_len: Option<usize>,
}

/// The model of the experiment.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSettings {
    /// CIFAR ResNet-18.
    Resnet18 {
        /// Channels of the first stage (64: the published network).
        width: usize,
    },
    /// A BERT-family classifier.
    Bert {
        /// The Hub repository of the checkpoint, its config and tokenizer.
        checkpoint: String,
    },
}

/// The training plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// Epochs per run.
    pub epochs: u64,
    /// Examples per optimizer step.
    pub batch_size: usize,
    /// Examples per forward pass in evaluation.
    pub eval_batch_size: usize,
    /// The seeds each arm is trained with.
    pub seeds: Vec<u64>,
    /// Augment training images.
    pub augment: bool,
    /// Keep the best epoch's weights.
    pub keep_best: bool,
    /// The compute precision: `f32`, or `bf16` products over `f32` parameters.
    #[serde(default)]
    pub dtype: Precision,
    /// TF32 tensor cores for `f32` products on a CUDA GPU.
    #[serde(default)]
    pub tf32: bool,
}

impl Experiment {
    /// Reads `path` with the overlay `[presets.<preset>]` applied.
    pub fn read(path: &Path, preset: &str) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut root: toml::Table =
            toml::from_str(&text).with_context(|| format!("{}: not valid TOML", path.display()))?;
        let presets = match root.remove("presets") {
            Some(toml::Value::Table(presets)) => presets,
            Some(_) => bail!("{}: `presets` must be a table of tables", path.display()),
            None => toml::Table::new(),
        };
        match presets.get(preset) {
            Some(toml::Value::Table(overlay)) => overlay_into(&mut root, overlay.clone()),
            Some(_) => bail!("{}: `presets.{preset}` must be a table", path.display()),
            None => {
                let known: Vec<&str> = presets.keys().map(String::as_str).collect();
                bail!(
                    "{}: no preset `{preset}` (the file has: {})",
                    path.display(),
                    known.join(", ")
                )
            }
        }
        let experiment: Self =
            serde_path_to_error::deserialize(toml::Value::Table(root)).map_err(|e| {
                let key = e.path().to_string();
                anyhow::anyhow!(
                    "{}{}: key `{key}`: {}",
                    path.display(),
                    preset_note(preset),
                    e.inner()
                )
            })?;
        experiment.check(path)?;
        Ok(experiment)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let fail = |key: &str, message: String| {
            Err(anyhow::anyhow!(
                "{}: key `{key}`: {message}",
                path.display()
            ))
        };
        if self.arms.is_empty() {
            return fail(
                "arms",
                "the experiment has no arm; add `[arms.NAME]` tables".into(),
            );
        }
        for name in self.arms.keys() {
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return fail(
                    &format!("arms.{name}"),
                    "an arm's name is a folder name: letters, digits, `-`, `_`".into(),
                );
            }
        }
        for (arm, lr) in &self.arm_lr {
            if !self.arms.contains_key(arm) {
                return fail(
                    &format!("arm_lr.{arm}"),
                    format!("`{arm}` is not an arm of the file"),
                );
            }
            if !(lr.is_finite() && *lr > 0.0) {
                return fail(
                    &format!("arm_lr.{arm}"),
                    format!("{lr} must be a positive rate"),
                );
            }
        }
        for baseline in &self.baselines {
            if !self.arms.contains_key(baseline) {
                return fail(
                    "baselines",
                    format!("`{baseline}` is not an arm of the file"),
                );
            }
        }
        if self.train.seeds.is_empty() {
            return fail("train.seeds", "at least one seed".into());
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return fail(
                "threshold",
                format!("{} must be a validation accuracy in [0, 1]", self.threshold),
            );
        }
        Ok(())
    }
}

impl Experiment {
    /// The optimizer of `arm`: the shared one, at the arm's own base rate if it has one.
    pub fn optimizer_of(&self, arm: &str) -> lrlab_trainer::OptimizerConfig {
        let mut optimizer = self.optimizer.clone();
        if let Some(lr) = self.arm_lr.get(arm) {
            optimizer.lr = *lr;
        }
        optimizer
    }
}

fn preset_note(preset: &str) -> String {
    format!(" (with preset `{preset}`)")
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

/// `configs/<experiment>.toml` from the workspace root.
pub fn default_path(experiment: &str) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."));
    workspace.join("configs").join(format!("{experiment}.toml"))
}
