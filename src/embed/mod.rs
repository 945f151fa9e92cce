//! Sentence embeddings as sentence-transformers computes them.
//!
//! [`SentenceEmbedder::load`] reads a model folder (or Hub id) the way
//! `SentenceTransformer(...)` does: `modules.json` gives the chain
//! (Transformer → Pooling → Dense … → Normalize, [`modules`]), the
//! Transformer's `sentence_bert_config.json` its truncation length and
//! lowercasing, `config_sentence_transformers.json` the prompts. Without
//! `modules.json` an encoder is mean-pooled and L2-normalised.
//! [`SentenceEmbedder::encode`] is `SentenceTransformer.encode` (prompts,
//! `truncate_dim` as `dimensions`), run through the streaming batcher
//! ([`crate::batch`]).
//!
//! ```no_run
//! use bert_wgpu::embed::{EmbedderOptions, EncodeOptions, SentenceEmbedder};
//! # fn main() -> bert_wgpu::Result<()> {
//! let st = SentenceEmbedder::load(
//!     "sentence-transformers/all-MiniLM-L6-v2",
//!     &Default::default(),
//!     &EmbedderOptions::default(),
//! )?;
//! let v = st.encode(&["I love this movie!"], &EncodeOptions::default())?;
//! assert_eq!(v[0].len(), 384);
//! # Ok(()) }
//! ```

mod dense;
mod embedder;
pub mod modules;
mod pooling;

pub use dense::{Dense, DenseActivation};
pub use embedder::{
    Chain, EmbedItem, EmbedJob, EmbedderOptions, EncodeOptions, Prompt, SentenceEmbedder,
};
pub use pooling::{normalize, Pooling, PoolingConfig};

use crate::checkpoint::Tensor;
use crate::error::{Error, Result};
use crate::inputs::Encoding;

/// Pools `hidden` (sequences, seq, hidden) into (sequences, hidden) with one
/// mode over each sequence's attended tokens, then optionally L2-normalises.
pub fn pool(hidden: &Tensor, enc: &Encoding, pooling: Pooling, normalize: bool) -> Result<Tensor> {
    let [n, seq, h] = hidden.shape[..] else {
        return Err(Error::input(format!(
            "expected (batch, seq, hidden), got {:?}",
            hidden.shape
        )));
    };
    if enc.attention_mask.len() != n * seq {
        return Err(Error::input(format!(
            "attention_mask has {} values for hidden states of {n} × {seq}",
            enc.attention_mask.len()
        )));
    }
    let cfg = PoolingConfig::single(pooling);
    let mut out = Vec::with_capacity(n * h);
    for b in 0..n {
        let start = out.len();
        cfg.pool(
            &hidden.data[b * seq * h..(b + 1) * seq * h],
            &enc.attention_mask[b * seq..(b + 1) * seq],
            h,
            0,
            &mut out,
        );
        if normalize {
            pooling::normalize(&mut out[start..]);
        }
    }
    Tensor::new(vec![n, h], out)
}
