//! BERT-family embeddings:
//! `LN(word[ids] + token_type[types] + position[positions])`.
//! Twin of `shaders/embeddings.wgsl`.
//!
//! Contract: `ids`, `types`, `positions`: (batch, seq) u32, already
//! validated against the table sizes (positions are `arange(seq)` per row
//! for BERT, RoBERTa's are counted from the ids: `graph::position_ids`);
//! `word`: (vocab, hidden); `position`: (max_pos, hidden); `token_type`:
//! (type_vocab, hidden), a single zero row for models without token types;
//! `gamma`, `beta`: (hidden); `out`: (batch·seq, hidden).

use rayon::prelude::*;

use super::layernorm::normalize_row;

/// The WGSL source.
pub const WGSL: &str = include_str!("../../shaders/embeddings.wgsl");

/// The embedding tables and their LayerNorm.
pub struct EmbeddingTables<'a> {
    /// (vocab, hidden)
    pub word: &'a [f32],
    /// (max_pos, hidden)
    pub position: &'a [f32],
    /// (type_vocab, hidden)
    pub token_type: &'a [f32],
    /// (hidden)
    pub gamma: &'a [f32],
    /// (hidden)
    pub beta: &'a [f32],
    /// LayerNorm epsilon.
    pub eps: f32,
}

/// CPU twin.
pub fn embeddings(
    t: &EmbeddingTables,
    ids: &[u32],
    types: &[u32],
    positions: &[u32],
    out: &mut [f32],
) {
    let h = t.gamma.len();
    assert_eq!(ids.len(), types.len(), "ids/types shape");
    assert_eq!(ids.len(), positions.len(), "ids/positions shape");
    assert_eq!(out.len(), ids.len() * h, "out shape");
    out.par_chunks_mut(h).enumerate().for_each(|(tok, row)| {
        let (id, ty, pos) = (
            ids[tok] as usize,
            types[tok] as usize,
            positions[tok] as usize,
        );
        let w = &t.word[id * h..(id + 1) * h];
        let p = &t.position[pos * h..(pos + 1) * h];
        let ty = &t.token_type[ty * h..(ty + 1) * h];
        for i in 0..h {
            row[i] = w[i] + ty[i] + p[i];
        }
        normalize_row(row, t.gamma, t.beta, t.eps);
    });
}
