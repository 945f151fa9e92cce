//! Model inputs as HF's tensors, and the checks that keep bad ids off the GPU.

use crate::config::BertConfig;
use crate::error::{Error, Result};

/// A batch of tokenized sequences: HF's `input_ids`, `attention_mask`,
/// `token_type_ids`, each (sequences, seq) row-major.
///
/// For multiple choice, `choices = Some(c)` and the rows are the flattened
/// (batch, choices) pairs: `sequences() = batch · c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// (sequences, seq)
    pub input_ids: Vec<u32>,
    /// (sequences, seq), 1 = attend, 0 = padding.
    pub attention_mask: Vec<u32>,
    /// (sequences, seq), segment ids.
    pub token_type_ids: Vec<u32>,
    /// Examples in the batch.
    pub batch: usize,
    /// Options per example (multiple choice only).
    pub choices: Option<usize>,
    /// Padded sequence length.
    pub seq: usize,
}

impl Encoding {
    /// A (batch, seq) encoding with every token attended and token type 0.
    pub fn from_ids(rows: &[Vec<u32>]) -> Result<Self> {
        let seq = rows.first().map_or(0, Vec::len);
        if rows.iter().any(|r| r.len() != seq) {
            return Err(Error::input("input_ids rows have different lengths"));
        }
        let n = rows.len() * seq;
        Ok(Encoding {
            input_ids: rows.concat(),
            attention_mask: vec![1; n],
            token_type_ids: vec![0; n],
            batch: rows.len(),
            choices: None,
            seq,
        })
    }

    /// Number of sequences the encoder runs: `batch · choices`.
    pub fn sequences(&self) -> usize {
        self.batch * self.choices.unwrap_or(1)
    }

    /// Number of token positions, padding included.
    pub fn tokens(&self) -> usize {
        self.sequences() * self.seq
    }

    /// Checks shapes and ranges against the model: ids < vocab_size, types <
    /// type_vocab_size (unless the model has no token types), mask ∈ {0, 1},
    /// 1 ≤ seq ≤ the positions the model has ([`BertConfig::max_tokens`]).
    pub fn validate(&self, cfg: &BertConfig) -> Result<()> {
        let n = self.tokens();
        if self.batch == 0 || self.choices == Some(0) {
            return Err(Error::input("empty batch"));
        }
        if self.seq == 0 {
            return Err(Error::input("empty sequence (seq = 0)"));
        }
        if self.seq > cfg.max_tokens() {
            return Err(Error::input(format!(
                "sequence length {} exceeds the {} positions of max_position_embeddings {}",
                self.seq,
                cfg.max_tokens(),
                cfg.max_position_embeddings
            )));
        }
        for (name, v) in [
            ("input_ids", &self.input_ids),
            ("attention_mask", &self.attention_mask),
            ("token_type_ids", &self.token_type_ids),
        ] {
            if v.len() != n {
                return Err(Error::input(format!(
                    "{name} has {} values, expected {n} ({} sequences × {})",
                    v.len(),
                    self.sequences(),
                    self.seq
                )));
            }
        }
        let check = |name: &str, v: &[u32], bound: usize| -> Result<()> {
            match v.iter().position(|&x| x as usize >= bound) {
                None => Ok(()),
                Some(i) => Err(Error::input(format!(
                    "{name}[{}][{}] = {} is out of range (must be < {bound})",
                    i / self.seq,
                    i % self.seq,
                    v[i]
                ))),
            }
        };
        check("input_ids", &self.input_ids, cfg.vocab_size)?;
        if cfg.has_token_types() {
            check("token_type_ids", &self.token_type_ids, cfg.type_vocab_size)?;
        }
        check("attention_mask", &self.attention_mask, 2)?;
        Ok(())
    }
}
