//! IMDB reviews and their tokens, through a checkpoint's `tokenizer.json`.

use crate::error::{DataError, Result};
use std::path::{Path, PathBuf};
use tokenizers::{PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Reviews with their sentiment labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reviews {
    /// The review texts.
    pub texts: Vec<String>,
    /// 0 = negative, 1 = positive.
    pub labels: Vec<u8>,
}

impl Reviews {
    /// The number of reviews.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The reviews at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Reviews {
        Reviews {
            texts: indices.iter().map(|&i| self.texts[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// Token ids of reviews, each padded or truncated to `max_len`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tokens {
    /// `len() × max_len` token ids, review after review.
    pub ids: Vec<u32>,
    /// `len() × max_len` attention mask: 1 for a real token, 0 for padding.
    pub mask: Vec<u8>,
    /// The label of each review.
    pub labels: Vec<u8>,
    /// The sequence length.
    pub max_len: usize,
}

impl Tokens {
    /// The number of sequences.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The ids of sequence `i`.
    pub fn sequence(&self, i: usize) -> &[u32] {
        &self.ids[i * self.max_len..(i + 1) * self.max_len]
    }

    /// The attention mask of sequence `i`.
    pub fn attention(&self, i: usize) -> &[u8] {
        &self.mask[i * self.max_len..(i + 1) * self.max_len]
    }
}

/// A BERT-family tokenizer set to truncate and pad to exactly `max_len`, whatever its file
/// says.
pub struct TextEncoder {
    tokenizer: Tokenizer,
    plain: Tokenizer,
    path: PathBuf,
    max_len: usize,
}

impl TextEncoder {
    /// Loads `tokenizer.json` from `path`; the padding id is the file's, else `[PAD]`'s.
    pub fn from_file(path: &Path, max_len: usize) -> Result<TextEncoder> {
        if max_len < 2 {
            return Err(DataError::Config {
                field: "max_len",
                message: format!("must be ≥ 2 (room for [CLS] and [SEP]), got {max_len}"),
            });
        }
        let unreadable =
            |e: &dyn std::fmt::Display| DataError::file(path, format!("unreadable tokenizer: {e}"));
        let mut plain = Tokenizer::from_file(path).map_err(|e| unreadable(&e))?;
        let (pad_id, pad_token) = match plain.get_padding() {
            Some(p) => (p.pad_id, p.pad_token.clone()),
            None => match plain.token_to_id("[PAD]") {
                Some(id) => (id, "[PAD]".to_string()),
                None => {
                    return Err(DataError::file(
                        path,
                        "unreadable tokenizer: it sets no padding and has no [PAD] token",
                    ));
                }
            },
        };
        plain.with_padding(None);
        plain.with_truncation(None).map_err(|e| unreadable(&e))?;
        let mut tokenizer = plain.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| unreadable(&e))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(max_len),
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token,
        }));
        Ok(TextEncoder {
            tokenizer,
            plain,
            path: path.to_path_buf(),
            max_len,
        })
    }

    /// The sequence length every review is brought to.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Tokenizes every review, in parallel, with special tokens, truncated and padded.
    pub fn encode(&self, reviews: &Reviews) -> Result<Tokens> {
        let texts: Vec<&str> = reviews.texts.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch(texts, true)
            .map_err(|e| DataError::file(&self.path, format!("tokenizing failed: {e}")))?;
        let mut tokens = Tokens {
            ids: Vec::with_capacity(encodings.len() * self.max_len),
            mask: Vec::with_capacity(encodings.len() * self.max_len),
            labels: reviews.labels.clone(),
            max_len: self.max_len,
        };
        for encoding in &encodings {
            tokens.ids.extend_from_slice(encoding.get_ids());
            tokens
                .mask
                .extend(encoding.get_attention_mask().iter().map(|&m| m as u8));
        }
        Ok(tokens)
    }

    /// The number of tokens of each review with special tokens and without truncation.
    pub fn lengths(&self, reviews: &Reviews) -> Result<Vec<usize>> {
        let texts: Vec<&str> = reviews.texts.iter().map(String::as_str).collect();
        let encodings = self
            .plain
            .encode_batch(texts, true)
            .map_err(|e| DataError::file(&self.path, format!("tokenizing failed: {e}")))?;
        Ok(encodings.iter().map(|e| e.len()).collect())
    }
}
