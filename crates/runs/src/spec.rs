//! What a run is: every setting that decides its numbers, each length resolved to a number, and
//! the checks that make a specification trainable.

use std::fmt;
use std::str::FromStr;

use lrlab_schedulers::{AnyScheduler, ConfigError, SchedulerConfig, Span};
use serde::{Deserialize, Serialize};

use crate::error::SpecError;
use crate::fingerprint::Fingerprint;

/// The type of a model's matrix products and convolutions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Single precision throughout.
    #[default]
    F32,
    /// bfloat16 products and convolutions over `f32` parameters, as PyTorch's autocast to bf16:
    /// the loss, the gradients and the optimizer's state stay `f32`.
    Bf16,
}

impl Precision {
    /// Every precision, in the order of their names in messages.
    pub const ALL: [Precision; 2] = [Precision::F32, Precision::Bf16];

    /// The name used in configuration files and on the command line: `f32` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown dtype `{s}`: use f32 or bf16"))
    }
}

/// Which Adam.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// `torch.optim.Adam`: weight decay added to the gradient (coupled L2).
    Adam,
    /// `torch.optim.AdamW`: weight decay applied to the weights, apart from the gradient.
    Adamw,
}

/// An optimizer's settings (the `[optimizer]` table of an experiment).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// `adam` or `adamw`.
    pub kind: OptimizerKind,
    /// The base learning rate, from which the scheduler starts.
    pub lr: f64,
    /// Weight decay (L2 for `adam`, decoupled for `adamw`).
    #[serde(default)]
    pub weight_decay: f64,
    /// Decay rates of the first and second moments.
    #[serde(default = "default_betas")]
    pub betas: (f64, f64),
    /// Added to the root of the second moment.
    #[serde(default = "default_eps")]
    pub eps: f64,
}

fn default_betas() -> (f64, f64) {
    (0.9, 0.999)
}

fn default_eps() -> f64 {
    1e-8
}

impl OptimizerConfig {
    /// The published plan: Adam, lr 1e-3, weight decay 1e-4, PyTorch's betas and eps.
    pub fn plan() -> Self {
        Self {
            kind: OptimizerKind::Adam,
            lr: 1e-3,
            weight_decay: 1e-4,
            betas: default_betas(),
            eps: default_eps(),
        }
    }

    /// Checks every field; an error names it as `optimizer.<field>`.
    pub fn check(&self) -> Result<(), SpecError> {
        let (b1, b2) = self.betas;
        check(self.lr.is_finite() && self.lr > 0.0, "optimizer.lr", || {
            format!("{} must be a positive number", self.lr)
        })?;
        check(
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            "optimizer.weight_decay",
            || format!("{} must be a finite number ≥ 0", self.weight_decay),
        )?;
        check(
            (0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2),
            "optimizer.betas",
            || format!("({b1}, {b2}): each must be in [0, 1)"),
        )?;
        check(
            self.eps.is_finite() && self.eps > 0.0,
            "optimizer.eps",
            || format!("{} must be a positive number", self.eps),
        )
    }
}

/// Where the examples come from and how they are split (the `[data]` table of an experiment).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    /// The revision (branch, tag or commit) of the dataset's Hub repository. Default `main`.
    #[serde(default = "main")]
    pub revision: String,
    /// Fraction of the training file held out for validation; in (0, 1).
    pub val_fraction: f64,
    /// Seed of the validation split, the same for every run of a study.
    pub split_seed: u64,
    /// A stratified cap on the training examples.
    #[serde(default)]
    pub limit_train: Option<usize>,
    /// A stratified cap on the validation examples.
    #[serde(default)]
    pub limit_val: Option<usize>,
    /// A stratified cap on the test examples.
    #[serde(default)]
    pub limit_test: Option<usize>,
    /// Text: tokens per example, special tokens included.
    #[serde(default)]
    pub max_len: Option<usize>,
}

fn main() -> String {
    "main".into()
}

impl DataSettings {
    /// Checks what can be checked before the data are loaded: a validation fraction in (0, 1),
    /// limits of at least one example, room for `[CLS]` and `[SEP]`. An error names the key as a
    /// path into the specification (`data.limit_train`).
    pub fn check(&self) -> Result<(), SpecError> {
        check(
            self.val_fraction > 0.0 && self.val_fraction < 1.0,
            "data.val_fraction",
            || format!("{} must lie in (0, 1)", self.val_fraction),
        )?;
        for (key, limit) in self.limits() {
            check(limit != Some(0), key, || {
                "0 examples: a limit must be at least 1 (remove it for the whole split)".into()
            })?;
        }
        check(self.max_len.is_none_or(|n| n >= 2), "data.max_len", || {
            "must leave room for the [CLS] and [SEP] tokens (≥ 2)".into()
        })
    }

    /// Checks that the splits as loaded, of `sizes`, met every limit and are not empty.
    pub fn check_sizes(&self, sizes: SplitSizes) -> Result<(), SpecError> {
        let splits = [
            ("training", sizes.train),
            ("validation", sizes.val),
            ("test", sizes.test),
        ];
        for ((key, limit), (split, size)) in self.limits().into_iter().zip(splits) {
            check(size > 0, key, || format!("the {split} split is empty"))?;
            check(limit.is_none_or(|limit| limit == size), key, || {
                format!(
                    "{} asks for more {split} examples than the split has ({size}); lower it or \
                     remove it",
                    limit.unwrap_or_default()
                )
            })?;
        }
        Ok(())
    }

    /// Each limit with its key.
    fn limits(&self) -> [(&'static str, Option<usize>); 3] {
        [
            ("data.limit_train", self.limit_train),
            ("data.limit_val", self.limit_val),
            ("data.limit_test", self.limit_test),
        ]
    }
}

/// The model of an experiment (the `[model]` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSettings {
    /// The CIFAR variant of ResNet-18.
    Resnet18 {
        /// Channels of the first stage (64: the published network).
        width: usize,
    },
    /// A BERT-family sequence classifier from a pretrained checkpoint.
    Bert {
        /// The Hub repository of the checkpoint, its config and its tokenizer.
        checkpoint: String,
        /// Its revision. Default `main`.
        #[serde(default = "main")]
        revision: String,
    },
}

/// The training plan (the `[train]` table of an experiment).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainPlan {
    /// Epochs to train; ≥ 1.
    pub epochs: u32,
    /// Training examples per optimizer step; the last, shorter batch of an epoch is kept.
    pub batch_size: usize,
    /// Examples per forward pass in evaluation.
    pub eval_batch_size: usize,
    /// Augment training batches (random crops and flips for images).
    pub augment: bool,
    /// Keep the weights of the best epoch by validation accuracy.
    pub keep_best: bool,
    /// The compute precision.
    #[serde(default)]
    pub dtype: Precision,
    /// On a CUDA GPU, `f32` products on the TF32 tensor cores (PyTorch's `allow_tf32`).
    #[serde(default)]
    pub tf32: bool,
}

impl TrainPlan {
    /// The published plan: 50 epochs in batches of 32, evaluation in batches of 256,
    /// augmentation on, no best checkpoint, `f32`.
    pub fn plan() -> Self {
        TrainPlan {
            epochs: 50,
            batch_size: 32,
            eval_batch_size: 256,
            augment: true,
            keep_best: false,
            dtype: Precision::F32,
            tf32: false,
        }
    }
}

/// A Hub repository at the commit a run read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubCommit {
    /// `owner/name`.
    pub repo: String,
    /// The commit the revision resolved to, where the cache records it.
    pub commit: Option<String>,
}

/// The number of examples in each split a run reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSizes {
    /// Training examples.
    pub train: usize,
    /// Validation examples.
    pub val: usize,
    /// Test examples.
    pub test: usize,
}

/// What the settings came to when the run was specified: the exact data and checkpoint, and the
/// sizes that follow from them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolved {
    /// The dataset.
    pub dataset: HubCommit,
    /// The pretrained checkpoint the model starts from, if any.
    pub checkpoint: Option<HubCommit>,
    /// Classes of the task.
    pub classes: usize,
    /// The splits' sizes, limits applied.
    pub split_sizes: SplitSizes,
    /// Optimizer steps per epoch: the training examples over the batch size, rounded up.
    pub steps_per_epoch: u64,
}

/// Everything that decides a run's numbers: who it is (experiment, arm, seed), its data, model,
/// plan, optimizer and schedule with every length resolved, and the lrlab version that trains
/// it. Two runs with equal specifications compute the same numbers (on the same device); the
/// [`Fingerprint`] of the specification is how a run directory proves what it holds.
///
/// Settings that cannot change a number — the output folder, progress display, sharding — are
/// not part of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// The experiment, the name of its folder.
    pub experiment: String,
    /// The arm, the name of its folder.
    pub arm: String,
    /// The seed of initial weights, data order, augmentation and dropout.
    pub seed: u64,
    /// The data.
    pub data: DataSettings,
    /// The model.
    pub model: ModelSettings,
    /// The training plan.
    pub train: TrainPlan,
    /// The optimizer, at the arm's base rate.
    pub optimizer: OptimizerConfig,
    /// The arm's schedule, every length a number of ticks.
    pub scheduler: SchedulerConfig,
    /// What the settings came to on the data.
    pub resolved: Resolved,
    /// The version of lrlab that trains the run.
    pub lrlab_version: String,
}

impl RunSpec {
    /// The run's stretch of training: its epochs of `steps_per_epoch` steps.
    pub fn span(&self) -> Span {
        Span::of_run(u64::from(self.train.epochs), self.resolved.steps_per_epoch)
    }

    /// The fingerprint of the specification.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self)
    }

    /// Checks that the run can be trained as specified: names that are folder names, settings
    /// in range, limits the splits could meet, steps per epoch that follow from the sizes, a
    /// valid optimizer, and a schedule that builds and keeps a finite rate through a dry run
    /// over the whole plan. An error names the key as a path into the specification.
    pub fn check(&self) -> Result<(), SpecError> {
        check_name("experiment", &self.experiment)?;
        check_name("arm", &self.arm)?;
        self.check_data()?;
        self.check_model()?;
        self.check_plan()?;
        self.optimizer.check()?;
        self.scheduler
            .dry_run(self.optimizer.lr, self.span())
            .map_err(scheduler_error)
    }

    /// The run's schedule, built at the optimizer's base rate.
    pub fn build_scheduler(&self) -> Result<AnyScheduler, SpecError> {
        self.scheduler
            .build(self.optimizer.lr)
            .map_err(scheduler_error)
    }

    fn check_data(&self) -> Result<(), SpecError> {
        self.data.check()?;
        self.data.check_sizes(self.resolved.split_sizes)
    }

    fn check_model(&self) -> Result<(), SpecError> {
        if let ModelSettings::Resnet18 { width } = self.model {
            check(width >= 1, "model.width", || format!("{width} must be ≥ 1"))?;
        }
        let classes = self.resolved.classes;
        check(classes >= 2, "resolved.classes", || {
            format!("{classes}: a classifier needs at least 2 classes")
        })
    }

    fn check_plan(&self) -> Result<(), SpecError> {
        let train = &self.train;
        check(train.epochs >= 1, "train.epochs", || {
            format!("{} must be ≥ 1", train.epochs)
        })?;
        check(train.batch_size >= 1, "train.batch_size", || {
            format!("{} must be ≥ 1", train.batch_size)
        })?;
        check(train.eval_batch_size >= 1, "train.eval_batch_size", || {
            format!("{} must be ≥ 1", train.eval_batch_size)
        })?;
        let sizes = self.resolved.split_sizes;
        for (split, size, limit) in [
            ("training", sizes.train, "data.limit_train"),
            ("validation", sizes.val, "data.limit_val"),
            ("test", sizes.test, "data.limit_test"),
        ] {
            check(size >= train.batch_size, "data", || {
                format!(
                    "the {split} split has {size} examples, fewer than one batch of {}: give it \
                     more (`data.val_fraction` is {}; `{limit}`) or lower `train.batch_size`",
                    train.batch_size, self.data.val_fraction
                )
            })?;
        }
        let expected = self.resolved.split_sizes.train.div_ceil(train.batch_size) as u64;
        check(
            self.resolved.steps_per_epoch == expected,
            "resolved.steps_per_epoch",
            || {
                format!(
                    "{} does not follow from {} training examples in batches of {} ({expected})",
                    self.resolved.steps_per_epoch,
                    self.resolved.split_sizes.train,
                    train.batch_size
                )
            },
        )
    }
}

/// A schedule's error as an error of the specification's `scheduler` key.
fn scheduler_error(e: ConfigError) -> SpecError {
    let key = match e.field.is_empty() {
        true => "scheduler".to_owned(),
        false => format!("scheduler.{}", e.field),
    };
    SpecError::new(key, e.message)
}

/// `Ok` when `ok`, otherwise an error about `key` whose message `message` builds.
fn check(ok: bool, key: &str, message: impl FnOnce() -> String) -> Result<(), SpecError> {
    match ok {
        true => Ok(()),
        false => Err(SpecError::new(key, message())),
    }
}

/// Checks that `name` can be a folder name of the run directory layout.
pub fn check_name(key: &str, name: &str) -> Result<(), SpecError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    check(ok, key, || match name.is_empty() {
        true => "is empty; it names a folder of the runs: give it letters, digits, `-` or `_`"
            .to_owned(),
        false => format!(
            "`{name}` names a folder of the runs, so it may hold letters, digits, `-` and `_` \
             only (no `/`, `.` or space)"
        ),
    })
}
