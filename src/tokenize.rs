//! `tokenizer.json` with HF Python's semantics, whatever padding/truncation
//! the file carries: `[CLS] a [SEP]` / `[CLS] a [SEP] b [SEP]`, token types
//! 0/1, pad to the longest in the batch, truncate longest-first to
//! `max_position_embeddings`.

use std::path::Path;

use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, TruncationDirection, TruncationParams,
    TruncationStrategy,
};

use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::inputs::Encoding;

/// A tokenizer configured for one model.
pub struct BertTokenizer {
    inner: tokenizers::Tokenizer,
    max_length: usize,
}

/// Tokens of one text as the tokenizer produced them, with byte offsets.
#[derive(Debug, Clone)]
pub struct TokenDetail {
    /// Token strings, special tokens included, padding excluded.
    pub tokens: Vec<String>,
    /// Byte spans into the original text (0, 0 for special tokens).
    pub offsets: Vec<(usize, usize)>,
    /// Which input each token came from (0 text, 1 pair), None for specials.
    pub sequence_ids: Vec<Option<usize>>,
    /// Word index within its sequence, None for specials.
    pub word_ids: Vec<Option<u32>>,
}

/// Special tokens `[CLS] a [SEP] b [SEP]` add at most.
const PAIR_SPECIALS: usize = 3;

impl BertTokenizer {
    /// Loads `tokenizer.json` and configures it for `cfg`.
    pub fn from_file(path: &Path, cfg: &BertConfig) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        Self::new(inner, cfg)
    }

    /// Configures a loaded tokenizer for `cfg`.
    pub fn new(mut inner: tokenizers::Tokenizer, cfg: &BertConfig) -> Result<Self> {
        let vocab = inner.get_vocab_size(true);
        if vocab > cfg.vocab_size {
            return Err(Error::Tokenizer(format!(
                "the tokenizer's vocabulary has {vocab} tokens but the model's embedding table has only {} rows (vocab_size)",
                cfg.vocab_size
            )));
        }
        let max_length = cfg.max_position_embeddings;
        if max_length <= PAIR_SPECIALS {
            return Err(Error::Tokenizer(format!(
                "max_position_embeddings {max_length} leaves no room for text after the special tokens"
            )));
        }
        let pad_token = inner
            .id_to_token(cfg.pad_token_id)
            .unwrap_or_else(|| "[PAD]".to_string());
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id: cfg.pad_token_id,
            pad_type_id: 0,
            pad_token,
        }));
        inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(BertTokenizer { inner, max_length })
    }

    /// The longest sequence produced (special tokens included).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The underlying `tokenizers` object.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Tokenizes a batch of texts, or of (text, pair) when `pairs` is given.
    pub fn encode(&self, texts: &[String], pairs: Option<&[String]>) -> Result<Encoding> {
        Ok(self.encode_detailed(texts, pairs)?.0)
    }

    /// Like [`encode`](Self::encode), also returning per-text token details.
    pub fn encode_detailed(
        &self,
        texts: &[String],
        pairs: Option<&[String]>,
    ) -> Result<(Encoding, Vec<TokenDetail>)> {
        if texts.is_empty() {
            return Err(Error::input("empty batch: no text"));
        }
        let encs = match pairs {
            Some(p) => {
                if p.len() != texts.len() {
                    return Err(Error::input(format!(
                        "{} texts but {} text_pair entries",
                        texts.len(),
                        p.len()
                    )));
                }
                let inputs: Vec<tokenizers::EncodeInput> = texts
                    .iter()
                    .zip(p)
                    .map(|(a, b)| (a.as_str(), b.as_str()).into())
                    .collect();
                self.inner.encode_batch(inputs, true)
            }
            None => {
                let inputs: Vec<tokenizers::EncodeInput> =
                    texts.iter().map(|t| t.as_str().into()).collect();
                self.inner.encode_batch(inputs, true)
            }
        }
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let seq = encs.first().map_or(0, |e| e.len());
        let mut out = Encoding {
            input_ids: Vec::with_capacity(seq * encs.len()),
            attention_mask: Vec::with_capacity(seq * encs.len()),
            token_type_ids: Vec::with_capacity(seq * encs.len()),
            batch: encs.len(),
            choices: None,
            seq,
        };
        let mut details = Vec::with_capacity(encs.len());
        for e in &encs {
            if e.len() != seq {
                return Err(Error::Tokenizer(
                    "padding produced rows of different lengths".into(),
                ));
            }
            out.input_ids.extend_from_slice(e.get_ids());
            out.attention_mask.extend_from_slice(e.get_attention_mask());
            out.token_type_ids.extend_from_slice(e.get_type_ids());
            let real = e.get_attention_mask().iter().filter(|&&m| m == 1).count();
            details.push(TokenDetail {
                tokens: e.get_tokens()[..real].to_vec(),
                offsets: e.get_offsets()[..real].to_vec(),
                sequence_ids: e.get_sequence_ids()[..real].to_vec(),
                word_ids: e.get_word_ids()[..real].to_vec(),
            });
        }
        Ok((out, details))
    }
}
