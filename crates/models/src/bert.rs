//! BERT for sequence classification, as transformers' `BertForSequenceClassification`: the
//! encoder of any BERT-family checkpoint, the pooler (dense + tanh on `[CLS]`), dropout and a
//! linear classifier, under transformers' tensor names.
//!
//! The configuration is candle-transformers' BERT [`Config`]; the layers are built here because
//! candle-transformers' BERT cannot be fine-tuned as it is: its layer norm is candle-nn's fused
//! kernel, which records no backward operation (gradients stop at every layer norm, so only a
//! head above the last one trains), and its dropout is the identity.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, IndexOp, Module, ModuleT, Result, Shape, Tensor};
use candle_nn::Embedding;
use candle_transformers::models::bert::{Config, HiddenAct};
use serde::Deserialize;

use crate::checkpoint::Checkpoint;
use crate::error::{self, ModelError};
use crate::layers::{Dropout, DropoutRng, LayerNorm, Linear, MaskSource, linear};
use crate::params::{Builder, Init, Parameters};
use crate::precision::Compute;

/// A BERT `config.json`: candle-transformers' [`Config`] and the attention dropout, which it
/// does not read.
#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    /// The encoder's shape, activation and hidden dropout.
    #[serde(flatten)]
    pub encoder: Config,
    /// Dropout on the attention probabilities (transformers' default 0.1).
    #[serde(default = "default_attention_dropout")]
    pub attention_probs_dropout_prob: f64,
}

fn default_attention_dropout() -> f64 {
    0.1
}

impl BertConfig {
    /// Reads a checkpoint's `config.json`.
    pub fn from_file(path: &Path) -> error::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_owned(),
            source,
        })?;
        let config: Self = serde_json::from_str(&text).map_err(|e| ModelError::Config {
            path: path.to_owned(),
            message: format!(
                "not a BERT configuration: {e} (expected transformers' BertConfig keys such as \
                 `hidden_size`, `num_hidden_layers`, `hidden_act` = gelu | gelu_approximate | relu)"
            ),
        })?;
        let encoder = &config.encoder;
        if encoder.num_attention_heads == 0
            || encoder.hidden_size % encoder.num_attention_heads != 0
        {
            return Err(ModelError::Config {
                path: path.to_owned(),
                message: format!(
                    "`hidden_size` {} is not a multiple of `num_attention_heads` {}",
                    encoder.hidden_size, encoder.num_attention_heads
                ),
            });
        }
        Ok(config)
    }

    /// Dropout before the classifier: `classifier_dropout`, or the hidden dropout when unset.
    fn classifier_dropout(&self) -> f64 {
        self.encoder
            .classifier_dropout
            .unwrap_or(self.encoder.hidden_dropout_prob)
    }
}

/// What loading a checkpoint into a [`BertClassifier`] did beyond copying tensors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Tensors the checkpoint lacked and that were drawn from the seed (a new classifier head,
    /// or a pooler when the checkpoint has none).
    pub fresh: Vec<String>,
    /// Checkpoint tensors the classifier does not use (a masked-LM head, `position_ids`).
    pub unused: Vec<String>,
}

const HINT: &str = "the checkpoint's config.json must be the one its weights were saved with";

/// Token, position and segment embeddings, summed, normalised and dropped out.
#[derive(Clone, Debug)]
struct Embeddings {
    word: Embedding,
    position: Tensor,
    token_type: Tensor,
    norm: LayerNorm,
    dropout: Dropout,
}

impl Embeddings {
    fn new(b: &mut Builder, config: &BertConfig, rng: &Arc<DropoutRng>) -> error::Result<Self> {
        let c = &config.encoder;
        let init = Init::Normal(c.initializer_range);
        let table = |b: &mut Builder, name: &str, rows| {
            b.trainable(
                &format!("bert.embeddings.{name}.weight"),
                &[rows, c.hidden_size],
                init,
                HINT,
            )
        };
        Ok(Self {
            word: Embedding::new(table(b, "word_embeddings", c.vocab_size)?, c.hidden_size),
            position: table(b, "position_embeddings", c.max_position_embeddings)?,
            token_type: table(b, "token_type_embeddings", c.type_vocab_size)?,
            norm: LayerNorm::new(
                b,
                "bert.embeddings.LayerNorm",
                c.hidden_size,
                c.layer_norm_eps,
                HINT,
            )?,
            dropout: Dropout::new(c.hidden_dropout_prob, rng),
        })
    }

    /// Embeds `(B, L)` token ids of one segment (token type 0) at positions `0..L`.
    fn forward_t(&self, input_ids: &Tensor, train: bool) -> Result<Tensor> {
        let (_, len) = input_ids.dims2()?;
        let positions = self.position.narrow(0, 0, len)?;
        let segment = self.token_type.i(0)?;
        let sum = self
            .word
            .forward(input_ids)?
            .broadcast_add(&positions)?
            .broadcast_add(&segment)?;
        self.dropout.forward_t(&self.norm.forward(&sum)?, train)
    }
}

/// One transformer layer: self-attention and the feed-forward block, each followed by dropout,
/// a residual connection and layer norm (post-norm, as BERT).
#[derive(Clone, Debug)]
struct EncoderLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_dropout: Dropout,
    attention_output: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    activation: HiddenAct,
    output: Linear,
    output_norm: LayerNorm,
    hidden_dropout: Dropout,
    heads: usize,
}

impl EncoderLayer {
    fn new(
        b: &mut Builder,
        index: usize,
        config: &BertConfig,
        rng: &Arc<DropoutRng>,
    ) -> error::Result<Self> {
        let c = &config.encoder;
        let init = Some(Init::Normal(c.initializer_range));
        let h = c.hidden_size;
        let name = |part: &str| format!("bert.encoder.layer.{index}.{part}");
        let mut dense = |part: &str, shape| linear(b, &name(part), shape, init, HINT);
        let query = dense("attention.self.query", (h, h))?;
        let key = dense("attention.self.key", (h, h))?;
        let value = dense("attention.self.value", (h, h))?;
        let attention_output = dense("attention.output.dense", (h, h))?;
        let intermediate = dense("intermediate.dense", (h, c.intermediate_size))?;
        let output = dense("output.dense", (c.intermediate_size, h))?;
        let eps = c.layer_norm_eps;
        Ok(Self {
            query,
            key,
            value,
            attention_dropout: Dropout::new(config.attention_probs_dropout_prob, rng),
            attention_output,
            attention_norm: LayerNorm::new(b, &name("attention.output.LayerNorm"), h, eps, HINT)?,
            intermediate,
            activation: c.hidden_act,
            output,
            output_norm: LayerNorm::new(b, &name("output.LayerNorm"), h, eps, HINT)?,
            hidden_dropout: Dropout::new(c.hidden_dropout_prob, rng),
            heads: c.num_attention_heads,
        })
    }

    /// `(B, L, H)` hidden states to the next layer's; `mask_bias` is `(B, 1, 1, L)`, 0 for real
    /// tokens and the most negative float for padding. The products run in the compute
    /// precision; scores, softmax, residuals and layer norms in `f32`, as autocast does.
    fn forward_t(&self, hidden: &Tensor, mask_bias: &Tensor, train: bool) -> Result<Tensor> {
        let (batch, len, width) = hidden.dims3()?;
        let query = self.query.forward(hidden)?;
        let key = self.key.forward(hidden)?;
        let value = self.value.forward(hidden)?;
        let scale = ((width / self.heads) as f64).powf(-0.5);
        let probabilities = Shape::from((batch, self.heads, len, len));
        let dropout = self
            .attention_dropout
            .mask(&probabilities, hidden.device(), train)?;
        let context = lrlab_kernels::attention(
            &query,
            &key,
            &value,
            self.heads,
            scale,
            mask_bias,
            dropout.as_ref(),
        )?;
        let attended = self.attention_output.forward(&context)?;
        let dropout = self
            .hidden_dropout
            .mask(attended.shape(), attended.device(), train)?;
        let attended = lrlab_kernels::residual_dropout(&attended, dropout.as_ref(), hidden)?;
        let attended = self.attention_norm.forward(&attended)?;
        let inner = match self.activation {
            HiddenAct::Gelu => self.intermediate.forward_gelu(&attended)?,
            HiddenAct::GeluApproximate => self.intermediate.forward(&attended)?.gelu()?,
            HiddenAct::Relu => self.intermediate.forward(&attended)?.relu()?,
        };
        let out = self.output.forward(&inner)?;
        let dropout = self.hidden_dropout.mask(out.shape(), out.device(), train)?;
        self.output_norm.forward(&lrlab_kernels::residual_dropout(
            &out,
            dropout.as_ref(),
            &attended,
        )?)
    }
}

/// transformers' `BertForSequenceClassification`. Input `(B, L)` token ids (u32), output
/// `(B, num_labels)` logits. Dropout (hidden, attention, classifier) is active when
/// `forward_t(.., true)`; its masks are a function of the model's seed and the step set by
/// [`set_dropout_stream`](Self::set_dropout_stream) (drawn on the host on the CPU, by the
/// device's own generator on a GPU).
#[derive(Clone, Debug)]
pub struct BertClassifier {
    config: BertConfig,
    embeddings: Embeddings,
    layers: Vec<EncoderLayer>,
    pooler: Linear,
    dropout: Dropout,
    classifier: Linear,
    rng: Arc<DropoutRng>,
    parameters: Parameters,
    compute: Compute,
}

impl BertClassifier {
    /// A BERT classifier with every weight drawn from `seed` as transformers initialises one
    /// (normal, std `initializer_range`; zero biases; unit layer norms): a model to train from
    /// scratch.
    pub fn new(
        config: BertConfig,
        num_labels: usize,
        seed: u64,
        device: &Device,
    ) -> error::Result<Self> {
        Ok(Self::build(config, num_labels, seed, Builder::fresh(seed, device))?.0)
    }

    /// Loads a BERT-family checkpoint (`files`: its `model.safetensors`, or the shards of a
    /// sharded one, or a base and a file of extra tensors laid over it) with `config`, and puts a
    /// `num_labels`-way classifier on top. Tensor names may carry the `bert.` (or the model
    /// type's) prefix or not, and old checkpoints' `LayerNorm.gamma`/`beta` are read as
    /// `weight`/`bias`. A classifier (and a pooler) the checkpoint lacks is drawn from `seed`
    /// as transformers initialises it (normal, std `initializer_range`; zero bias); `seed` also
    /// seeds the dropout masks.
    pub fn from_checkpoint(
        config: BertConfig,
        files: &[impl AsRef<Path>],
        num_labels: usize,
        seed: u64,
        device: &Device,
    ) -> error::Result<(Self, LoadReport)> {
        let prefix = config
            .encoder
            .model_type
            .clone()
            .unwrap_or_else(|| "bert".into());
        let checkpoint = Checkpoint::read(files, |name| transformers_name(name, &prefix))?;
        let fresh_allowed =
            |name: &str| name.starts_with("classifier.") || name.starts_with("bert.pooler.");
        let builder = Builder::from_checkpoint(checkpoint, fresh_allowed, seed, device);
        Self::build(config, num_labels, seed, builder)
    }

    fn build(
        config: BertConfig,
        num_labels: usize,
        seed: u64,
        mut b: Builder,
    ) -> error::Result<(Self, LoadReport)> {
        if num_labels == 0 {
            return Err(ModelError::Setting {
                field: "num_labels",
                message: "a classifier needs at least one label".into(),
            });
        }
        let rng = Arc::new(DropoutRng::new(seed, MaskSource::for_device(b.device())));
        let c = &config.encoder;
        let init = Some(Init::Normal(c.initializer_range));
        let embeddings = Embeddings::new(&mut b, &config, &rng)?;
        let layers = (0..c.num_hidden_layers)
            .map(|index| EncoderLayer::new(&mut b, index, &config, &rng))
            .collect::<error::Result<Vec<_>>>()?;
        let h = c.hidden_size;
        let pooler = linear(&mut b, "bert.pooler.dense", (h, h), init, HINT)?;
        let classifier_hint = "`num_labels` must match the checkpoint's classifier";
        let classifier = linear(&mut b, "classifier", (h, num_labels), init, classifier_hint)?;
        let compute = b.compute();
        let (parameters, fresh, unused, _) = b.finish();
        let model = Self {
            dropout: Dropout::new(config.classifier_dropout(), &rng),
            config,
            embeddings,
            layers,
            pooler,
            classifier,
            rng,
            parameters,
            compute,
        };
        Ok((model, LoadReport { fresh, unused }))
    }

    /// Logits for `(B, L)` token ids; `attention_mask` `(B, L)` is 1 for real tokens and 0 for
    /// padding (all ones when `None`). The logits are `f32` whatever the compute precision.
    pub fn forward_masked(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let mask_bias = match attention_mask {
            Some(mask) => mask_bias(mask)?,
            None => {
                let (batch, len) = input_ids.dims2()?;
                Tensor::zeros((batch, 1, 1, len), DType::F32, input_ids.device())?
            }
        };
        let mut hidden = self.embeddings.forward_t(input_ids, train)?;
        for layer in &self.layers {
            hidden = layer.forward_t(&hidden, &mask_bias, train)?;
        }
        let pooled = self.pooler.forward(&hidden.i((.., 0))?)?.tanh()?;
        self.classifier
            .forward(&self.dropout.forward_t(&pooled, train)?)?
            .to_dtype(DType::F32)
    }

    /// Starts dropout stream `stream` (for instance the optimizer step), so that the masks of a
    /// step depend on the seed and the step only, and a resumed run draws the same ones.
    pub fn set_dropout_stream(&self, stream: u64) {
        self.rng.set_stream(stream);
    }

    /// The configuration read from the checkpoint.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Its tensors by transformers name.
    pub fn parameters(&self) -> &Parameters {
        &self.parameters
    }

    /// Computes its products and convolutions in `dtype` from now on, one of
    /// [`COMPUTE_DTYPES`](crate::COMPUTE_DTYPES) (the parameters stay `f32`).
    pub fn set_compute_dtype(&self, dtype: DType) -> Result<()> {
        self.compute.set(dtype)
    }

    /// The type it computes its products and convolutions in.
    pub fn compute_dtype(&self) -> DType {
        self.compute.get()
    }
}

impl ModuleT for BertClassifier {
    /// Logits with the attention mask taken from the ids: padding is `pad_token_id`.
    fn forward_t(&self, input_ids: &Tensor, train: bool) -> Result<Tensor> {
        let mask = input_ids.ne(self.config.encoder.pad_token_id as u32)?;
        self.forward_masked(input_ids, Some(&mask), train)
    }
}

/// `(B, L)` 1/0 mask to the `(B, 1, 1, L)` additive bias of the attention scores.
fn mask_bias(mask: &Tensor) -> Result<Tensor> {
    let min = f64::from(f32::MIN);
    mask.to_dtype(DType::F32)?
        .affine(-min, min)?
        .unsqueeze(1)?
        .unsqueeze(1)
}

/// The classifier's name for a checkpoint tensor, or `None` for tensors it has no use for.
fn transformers_name(original: &str, model_type: &str) -> Option<String> {
    let bare = original
        .strip_prefix("bert.")
        .or_else(|| {
            original
                .strip_prefix(model_type)
                .and_then(|r| r.strip_prefix('.'))
        })
        .unwrap_or(original);
    let name = if bare.starts_with("embeddings.")
        || bare.starts_with("encoder.")
        || bare.starts_with("pooler.")
    {
        format!("bert.{bare}")
    } else if bare.starts_with("classifier.") {
        bare.to_owned()
    } else {
        return None;
    };
    if name.ends_with("position_ids") {
        return None;
    }
    let name = match name.rsplit_once('.') {
        Some((stem, "gamma")) if stem.ends_with("LayerNorm") => format!("{stem}.weight"),
        Some((stem, "beta")) if stem.ends_with("LayerNorm") => format!("{stem}.bias"),
        _ => name,
    };
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::transformers_name;

    #[test]
    fn checkpoint_names_map_to_transformers_names() {
        let cases = [
            (
                "embeddings.word_embeddings.weight",
                Some("bert.embeddings.word_embeddings.weight"),
            ),
            (
                "bert.encoder.layer.3.output.dense.bias",
                Some("bert.encoder.layer.3.output.dense.bias"),
            ),
            (
                "bert.embeddings.LayerNorm.gamma",
                Some("bert.embeddings.LayerNorm.weight"),
            ),
            (
                "encoder.layer.0.output.LayerNorm.beta",
                Some("bert.encoder.layer.0.output.LayerNorm.bias"),
            ),
            ("pooler.dense.weight", Some("bert.pooler.dense.weight")),
            ("classifier.weight", Some("classifier.weight")),
            (
                "mybert.encoder.layer.0.output.dense.bias",
                Some("bert.encoder.layer.0.output.dense.bias"),
            ),
            ("embeddings.position_ids", None),
            ("cls.predictions.bias", None),
        ];
        for (original, expected) in cases {
            assert_eq!(
                transformers_name(original, "mybert").as_deref(),
                expected,
                "{original}"
            );
        }
    }
}
