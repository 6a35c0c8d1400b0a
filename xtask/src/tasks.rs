//! The one place that knows the study's tasks: for each, its dataset on the Hub, its classes,
//! how its splits are loaded, and how its network is built — used by `data`, `evaluate`,
//! `experiment` and `speed` alike.

use std::path::Path;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use lrlab_datasets::{
    CIFAR10_CLASSES, Examples, Hub, IMDB_CLASSES, Images, Limits, RepoRef, Reviews, Source,
    SplitConfig, Splits, TextEncoder, Tokens, load_cifar10, load_imdb, text_encoder,
};
use lrlab_models::{BertClassifier, BertConfig, Network, ResNet18, ResNetConfig};
use lrlab_runs::{DataSettings, HubCommit, ModelSettings, SplitSizes};
use lrlab_trainer::Data;

/// Tokens per review when an experiment does not say.
const DEFAULT_MAX_LEN: usize = 128;

/// A task of the study: a dataset on the Hub and the family of networks that learns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Task {
    /// CIFAR-10 (`uoft-cs/cifar10`) with a ResNet-18.
    Cifar10,
    /// IMDB (`stanfordnlp/imdb`) with a BERT-family classifier.
    Imdb,
}

/// A network's shape without trained weights: what `speed` times.
pub enum Architecture {
    /// The CIFAR ResNet-18 of this width.
    Resnet18 {
        /// Channels of the first stage.
        width: usize,
    },
    /// A BERT classifier of this configuration, every weight drawn from the seed.
    Bert(Box<BertConfig>),
}

impl Task {
    /// Its name: the experiment folder and configuration file of the study.
    pub fn name(self) -> &'static str {
        match self {
            Task::Cifar10 => "cifar10",
            Task::Imdb => "imdb",
        }
    }

    /// Its classes.
    pub fn classes(self) -> usize {
        match self {
            Task::Cifar10 => CIFAR10_CLASSES.len(),
            Task::Imdb => IMDB_CLASSES.len(),
        }
    }

    /// Where its parquet files live, at `revision`.
    pub fn source(self, revision: &str) -> Source {
        let mut source = match self {
            Task::Cifar10 => Source::cifar10(),
            Task::Imdb => Source::imdb(),
        };
        source.repo = source.repo.at(revision);
        source
    }

    /// `data` with the task's defaults made explicit (text: 128 tokens), so that a run's
    /// specification records what it reads; `max_len` for images is an error.
    pub fn settle_data(self, mut data: DataSettings) -> Result<DataSettings> {
        match self {
            Task::Cifar10 if data.max_len.is_some() => {
                bail!("cifar10 has no text to cut; remove the key")
            }
            Task::Cifar10 => {}
            Task::Imdb => {
                data.max_len.get_or_insert(DEFAULT_MAX_LEN);
            }
        }
        Ok(data)
    }

    /// Checks that `model` is of the family that learns this task.
    pub fn check_model(self, model: &ModelSettings) -> Result<()> {
        match (self, model) {
            (Task::Cifar10, ModelSettings::Resnet18 { .. }) => Ok(()),
            (Task::Imdb, ModelSettings::Bert { .. }) => Ok(()),
            (Task::Cifar10, _) => bail!("cifar10 is learnt by `model.kind = \"resnet18\"`"),
            (Task::Imdb, _) => bail!("imdb is learnt by `model.kind = \"bert\"`"),
        }
    }

    /// Checks that an experiment of this task is not named as another task's, which would file
    /// its runs beside that task's (`experiment = "imdb"` in the CIFAR-10 file).
    pub fn check_experiment_name(self, name: &str) -> Result<()> {
        let other = <Task as clap::ValueEnum>::value_variants()
            .iter()
            .filter(|task| **task != self)
            .find(|task| {
                let other = task.name();
                name.strip_prefix(other)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '_']))
            });
        match other {
            Some(other) => bail!(
                "`{name}` would file these {} runs as {} ones; name the experiment after its \
                 task (e.g. `{}` or `{}-…`)",
                self.name(),
                other.name(),
                self.name(),
                self.name()
            ),
            None => Ok(()),
        }
    }

    /// The repository of the checkpoint `model` starts from, if any.
    pub fn checkpoint(model: &ModelSettings) -> Option<RepoRef> {
        match model {
            ModelSettings::Resnet18 { .. } => None,
            ModelSettings::Bert {
                checkpoint,
                revision,
            } => Some(RepoRef::model(checkpoint).at(revision)),
        }
    }

    /// Loads its splits as a run reads them — the validation split carved with the split seed,
    /// the limits applied, text tokenized to `data.max_len` (128 by default) with the tokenizer
    /// of `tokenizer`, which text needs.
    pub fn load(
        self,
        hub: &Hub,
        data: &DataSettings,
        tokenizer: Option<&RepoRef>,
    ) -> Result<Loaded> {
        let source = self.source(&data.revision);
        let config = SplitConfig {
            val_fraction: data.val_fraction,
            seed: data.split_seed,
            limit: Limits {
                train: data.limit_train,
                val: data.limit_val,
                test: data.limit_test,
            },
        };
        let splits = match self {
            Task::Cifar10 => TaskSplits::Images(load_cifar10(hub, &source, &config)?),
            Task::Imdb => {
                let tokenizer = tokenizer.context("imdb needs a tokenizer checkpoint")?;
                let reviews = load_imdb(hub, &source, &config)?;
                let max_len = data.max_len.unwrap_or(DEFAULT_MAX_LEN);
                let encoder = text_encoder(hub, tokenizer, max_len)?;
                let tokens = Splits {
                    train: encoder.encode(&reviews.train)?,
                    val: encoder.encode(&reviews.val)?,
                    test: encoder.encode(&reviews.test)?,
                };
                TaskSplits::Text(Box::new(TextSplits {
                    reviews,
                    tokens,
                    encoder,
                }))
            }
        };
        let dataset = HubCommit {
            repo: source.repo.id.clone(),
            commit: hub.commit(&source.repo),
        };
        Ok(Loaded { splits, dataset })
    }

    /// A network for this task with its initial weights from `seed`: a fresh ResNet-18, or the
    /// checkpoint's pretrained BERT with a fresh classifier head.
    pub fn network(
        self,
        hub: &Hub,
        model: &ModelSettings,
        seed: u64,
        device: &Device,
    ) -> Result<Box<dyn Network>> {
        self.check_model(model)?;
        match model {
            ModelSettings::Resnet18 { width } => {
                self.fresh_network(&Architecture::Resnet18 { width: *width }, seed, device)
            }
            ModelSettings::Bert {
                checkpoint,
                revision,
            } => {
                let repo = RepoRef::model(checkpoint).at(revision);
                let config = BertConfig::from_file(&hub.file(&repo, "config.json")?)?;
                let weights = hub.file(&repo, "model.safetensors")?;
                let (model, _) = BertClassifier::from_checkpoint(
                    config,
                    &[weights],
                    self.classes(),
                    seed,
                    device,
                )?;
                Ok(Box::new(model))
            }
        }
    }

    /// A network of `architecture` for this task, every weight drawn from `seed`.
    pub fn fresh_network(
        self,
        architecture: &Architecture,
        seed: u64,
        device: &Device,
    ) -> Result<Box<dyn Network>> {
        let num_classes = self.classes();
        Ok(match (self, architecture) {
            (Task::Cifar10, Architecture::Resnet18 { width }) => {
                let config = ResNetConfig {
                    width: *width,
                    num_classes,
                };
                Box::new(ResNet18::new(config, seed, device)?)
            }
            (Task::Imdb, Architecture::Bert(config)) => Box::new(BertClassifier::new(
                (**config).clone(),
                num_classes,
                seed,
                device,
            )?),
            _ => bail!("{} is not learnt by this architecture", self.name()),
        })
    }

    /// A trained network of this task from the safetensors file `weights` (lrlab's, torchvision's
    /// or transformers' names): a ResNet-18 whose width and classes the file gives, or a whole
    /// BERT classifier whose configuration is `checkpoint`'s.
    pub fn trained_network(
        self,
        hub: &Hub,
        weights: &Path,
        checkpoint: &RepoRef,
        device: &Device,
    ) -> Result<Box<dyn Network>> {
        let loading = || format!("loading the {} weights {}", self.name(), weights.display());
        let model: Box<dyn Network> = match self {
            Task::Cifar10 => {
                let model = ResNet18::load(&[weights], device).with_context(loading)?;
                let outputs = model.config().num_classes;
                if outputs != self.classes() {
                    bail!(
                        "{}: its classifier `fc.weight` has {outputs} outputs, but {} has {} \
                         classes: these weights are not a {} model; pass weights a {} run saved",
                        weights.display(),
                        self.name(),
                        self.classes(),
                        self.name(),
                        self.name()
                    );
                }
                Box::new(model)
            }
            Task::Imdb => {
                let config = BertConfig::from_file(&hub.file(checkpoint, "config.json")?)?;
                let (model, report) =
                    BertClassifier::from_checkpoint(config, &[weights], self.classes(), 0, device)
                        .with_context(loading)?;
                if !report.fresh.is_empty() {
                    bail!(
                        "{}: no `{}`: this is not a trained classifier (a base checkpoint has no \
                         head); pass the weights a run saved",
                        weights.display(),
                        report.fresh.join("`, `")
                    );
                }
                Box::new(model)
            }
        };
        if let Some(name) = model.parameters().first_non_finite()? {
            bail!(
                "{}: `{name}` holds NaN or infinite values: these are the weights of a diverged \
                 model (its scores would be meaningless; activations can hide a NaN); pass \
                 weights saved before the divergence",
                weights.display()
            );
        }
        Ok(model)
    }
}

/// A task's splits as loaded, each in its own type.
pub enum TaskSplits {
    /// CIFAR-10's decoded images.
    Images(Splits<Images>),
    /// IMDB's reviews and their tokens.
    Text(Box<TextSplits>),
}

/// A text task's splits, as text and as tokens.
pub struct TextSplits {
    /// The reviews as text.
    pub reviews: Splits<Reviews>,
    /// The same reviews tokenized.
    pub tokens: Splits<Tokens>,
    /// The tokenizer, set to the run's length.
    pub encoder: TextEncoder,
}

/// A task's data as a run reads it, and the dataset's commit.
pub struct Loaded {
    /// The splits.
    pub splits: TaskSplits,
    /// The dataset repository at the commit read.
    pub dataset: HubCommit,
}

impl Loaded {
    /// The splits as the examples a network trains on (images, or token ids).
    pub fn examples(&self) -> Splits<&dyn Examples> {
        fn view<E: Examples>(splits: &Splits<E>) -> Splits<&dyn Examples> {
            Splits {
                train: &splits.train,
                val: &splits.val,
                test: &splits.test,
            }
        }
        match &self.splits {
            TaskSplits::Images(images) => view(images),
            TaskSplits::Text(text) => view(&text.tokens),
        }
    }

    /// What a run reads: training, validation and, when `report_test`, test examples.
    pub fn data(&self, report_test: bool) -> Data<'_, dyn Examples + '_> {
        let Splits { train, val, test } = self.examples();
        Data {
            train,
            val,
            test: report_test.then_some(test),
        }
    }

    /// The sizes of the splits.
    pub fn sizes(&self) -> SplitSizes {
        let examples = self.examples();
        SplitSizes {
            train: examples.train.len(),
            val: examples.val.len(),
            test: examples.test.len(),
        }
    }
}
