//! Sentence embeddings: pooling of `last_hidden_state` over real tokens, as
//! sentence-transformers does (all-MiniLM-L6-v2: mean pooling + L2 norm).

use crate::checkpoint::Tensor;
use crate::error::{Error, Result};
use crate::inputs::Encoding;

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooling {
    /// Mean over tokens whose attention mask is 1.
    #[default]
    Mean,
    /// The `[CLS]` token's hidden state.
    Cls,
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            o => Err(Error::input(format!(
                "unknown pooling `{o}` (expected mean or cls)"
            ))),
        }
    }
}

/// Pools `hidden` (sequences, seq, hidden) into (sequences, hidden).
pub fn pool(hidden: &Tensor, enc: &Encoding, pooling: Pooling, normalize: bool) -> Result<Tensor> {
    let [n, seq, h] = hidden.shape[..] else {
        return Err(Error::input(format!(
            "expected (batch, seq, hidden), got {:?}",
            hidden.shape
        )));
    };
    let mut out = vec![0.0f32; n * h];
    for b in 0..n {
        let row = &mut out[b * h..(b + 1) * h];
        match pooling {
            Pooling::Cls => row.copy_from_slice(&hidden.data[b * seq * h..b * seq * h + h]),
            Pooling::Mean => {
                let mut acc = vec![0.0f64; h];
                let mut count = 0.0f64;
                for s in 0..seq {
                    if enc.attention_mask[b * seq + s] == 0 {
                        continue;
                    }
                    count += 1.0;
                    let t = &hidden.data[(b * seq + s) * h..(b * seq + s + 1) * h];
                    for (a, v) in acc.iter_mut().zip(t) {
                        *a += *v as f64;
                    }
                }
                // sentence-transformers clamps the count at 1e-9.
                let count = count.max(1e-9);
                for (o, a) in row.iter_mut().zip(&acc) {
                    *o = (*a / count) as f32;
                }
            }
        }
        if normalize {
            let norm = row
                .iter()
                .map(|v| (*v as f64).powi(2))
                .sum::<f64>()
                .sqrt()
                .max(1e-12);
            for v in row.iter_mut() {
                *v = (*v as f64 / norm) as f32;
            }
        }
    }
    Tensor::new(vec![n, h], out)
}
