//! sentence-transformers' `Pooling` module: token vectors → one sentence
//! vector, over the tokens whose attention mask is 1 (prompt tokens left out
//! when `include_prompt` is false). Several modes concatenate in the order
//! given.

use crate::error::{Error, Result};

/// One pooling mode, as sentence-transformers names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooling {
    /// The first attended token (`[CLS]`; with the prompt excluded, the
    /// first token after it).
    Cls,
    /// Element-wise maximum over attended tokens (`-inf` when none).
    Max,
    /// Mean over attended tokens (the count clamped at 1e-9).
    #[default]
    Mean,
    /// Sum over attended tokens divided by √count.
    MeanSqrtLen,
    /// Mean weighted by 1-based position.
    WeightedMean,
    /// The last attended token (zeros when none).
    LastToken,
}

impl Pooling {
    /// Every mode, in the order sentence-transformers' legacy
    /// `pooling_mode_*` flags concatenate.
    pub const ALL: [Pooling; 6] = [
        Pooling::Cls,
        Pooling::Max,
        Pooling::Mean,
        Pooling::MeanSqrtLen,
        Pooling::WeightedMean,
        Pooling::LastToken,
    ];

    /// sentence-transformers' name (`pooling_mode` value).
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Cls => "cls",
            Pooling::Max => "max",
            Pooling::Mean => "mean",
            Pooling::MeanSqrtLen => "mean_sqrt_len_tokens",
            Pooling::WeightedMean => "weightedmean",
            Pooling::LastToken => "lasttoken",
        }
    }

    /// The legacy `1_Pooling/config.json` flag of this mode.
    pub fn legacy_flag(self) -> &'static str {
        match self {
            Pooling::Cls => "pooling_mode_cls_token",
            Pooling::Max => "pooling_mode_max_tokens",
            Pooling::Mean => "pooling_mode_mean_tokens",
            Pooling::MeanSqrtLen => "pooling_mode_mean_sqrt_len_tokens",
            Pooling::WeightedMean => "pooling_mode_weightedmean_tokens",
            Pooling::LastToken => "pooling_mode_lasttoken",
        }
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cls" | "cls_token" => Ok(Pooling::Cls),
            "max" | "max_tokens" => Ok(Pooling::Max),
            "mean" | "mean_tokens" => Ok(Pooling::Mean),
            "mean_sqrt_len_tokens" | "mean_sqrt_len" => Ok(Pooling::MeanSqrtLen),
            "weightedmean" | "weightedmean_tokens" => Ok(Pooling::WeightedMean),
            "lasttoken" => Ok(Pooling::LastToken),
            o => Err(Error::input(format!(
                "unknown pooling `{o}` (expected cls, max, mean, mean_sqrt_len_tokens, weightedmean or lasttoken)"
            ))),
        }
    }
}

/// A `Pooling` module: its modes and whether prompt tokens take part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolingConfig {
    /// Modes, concatenated in this order.
    pub modes: Vec<Pooling>,
    /// Whether prompt tokens are pooled (sentence-transformers' default true).
    pub include_prompt: bool,
}

impl Default for PoolingConfig {
    fn default() -> Self {
        PoolingConfig {
            modes: vec![Pooling::Mean],
            include_prompt: true,
        }
    }
}

impl PoolingConfig {
    /// One mode, prompts included.
    pub fn single(mode: Pooling) -> Self {
        PoolingConfig {
            modes: vec![mode],
            include_prompt: true,
        }
    }

    /// Width of the pooled vector for token vectors of width `hidden`.
    pub fn output_dim(&self, hidden: usize) -> usize {
        self.modes.len() * hidden
    }

    /// Pools one sequence: `tokens` (seq, hidden) row-major, `mask` (seq)
    /// with 1 for real tokens, `prompt_len` the leading prompt tokens
    /// (`[CLS]` included) that `include_prompt = false` leaves out. Appends
    /// `output_dim(hidden)` values to `out`.
    pub fn pool(
        &self,
        tokens: &[f32],
        mask: &[u32],
        hidden: usize,
        prompt_len: usize,
        out: &mut Vec<f32>,
    ) {
        let seq = mask.len();
        debug_assert_eq!(tokens.len(), seq * hidden);
        // Left padding (none of ours, but the contract allows it): the
        // first attended position, as sentence-transformers' argmax.
        let pad = mask.iter().position(|&m| m != 0).unwrap_or(0);
        let excluded = if self.include_prompt {
            0
        } else {
            pad + prompt_len
        };
        let on = |s: usize| s >= excluded && mask[s] != 0;
        let row = |s: usize| &tokens[s * hidden..(s + 1) * hidden];
        for mode in &self.modes {
            match mode {
                Pooling::Cls => {
                    let first = (0..seq).find(|&s| on(s)).unwrap_or(0);
                    out.extend_from_slice(row(first));
                }
                Pooling::LastToken => match (0..seq).rev().find(|&s| on(s)) {
                    Some(last) => out.extend_from_slice(row(last)),
                    None => out.extend(std::iter::repeat_n(0.0, hidden)),
                },
                Pooling::Max => {
                    let start = out.len();
                    out.extend(std::iter::repeat_n(f32::NEG_INFINITY, hidden));
                    for s in (0..seq).filter(|&s| on(s)) {
                        for (o, v) in out[start..].iter_mut().zip(row(s)) {
                            *o = o.max(*v);
                        }
                    }
                }
                Pooling::Mean | Pooling::MeanSqrtLen | Pooling::WeightedMean => {
                    let mut acc = vec![0.0f64; hidden];
                    let mut weight = 0.0f64;
                    for s in (0..seq).filter(|&s| on(s)) {
                        // weightedmean: 1-based positions from the first
                        // attended token of the unmodified mask.
                        let w = if *mode == Pooling::WeightedMean {
                            (s + 1 - pad) as f64
                        } else {
                            1.0
                        };
                        weight += w;
                        for (a, v) in acc.iter_mut().zip(row(s)) {
                            *a += w * f64::from(*v);
                        }
                    }
                    let weight = weight.max(1e-9);
                    let denom = if *mode == Pooling::MeanSqrtLen {
                        weight.sqrt()
                    } else {
                        weight
                    };
                    out.extend(acc.iter().map(|a| (a / denom) as f32));
                }
            }
        }
    }
}

/// L2 normalisation as `torch.nn.functional.normalize` (norm clamped at 1e-12).
pub fn normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|x| f64::from(*x).powi(2))
        .sum::<f64>()
        .sqrt()
        .max(1e-12);
    for x in v.iter_mut() {
        *x = (f64::from(*x) / norm) as f32;
    }
}
