//! `embeddings.wgsl`: word + position + token-type rows, then LayerNorm,
//! one workgroup per token (CPU twin
//! [`crate::kernels::embeddings::embeddings`]).

use super::{as_u32, bindings, row_grid, KernelKind, Launch};
use crate::error::Result;

use bytemuck::{Pod, Zeroable};

/// Uniform parameters (WGSL `EmbParams`); the table sizes bound the ids.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct EmbParams {
    pub(crate) tokens: u32,
    pub(crate) seq: u32,
    pub(crate) hidden: u32,
    pub(crate) eps: f32,
    pub(crate) vocab: u32,
    pub(crate) max_pos: u32,
    pub(crate) type_vocab: u32,
    pub(crate) _pad: u32,
}

/// Rows of the three tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableRows {
    pub(crate) vocab: usize,
    pub(crate) max_pos: usize,
    pub(crate) type_vocab: usize,
}

impl EmbParams {
    /// `tokens` tokens in sequences of `seq`, rows of `hidden`, tables of
    /// `rows`.
    pub(crate) fn new(
        tokens: usize,
        seq: usize,
        hidden: usize,
        eps: f32,
        rows: TableRows,
    ) -> Result<Self> {
        Ok(EmbParams {
            tokens: as_u32(tokens, "embeddings tokens")?,
            seq: as_u32(seq, "embeddings seq")?,
            hidden: as_u32(hidden, "embeddings hidden")?,
            eps,
            vocab: as_u32(rows.vocab, "embeddings vocab")?,
            max_pos: as_u32(rows.max_pos, "embeddings max_pos")?,
            type_vocab: as_u32(rows.type_vocab, "embeddings type_vocab")?,
            _pad: 0,
        })
    }
}

bindings! {
    /// ids, types, positions (tokens) u32; word (vocab, hidden), position
    /// (max_pos, hidden), token_type (type_vocab, hidden); gamma, beta
    /// (hidden) f32; out (tokens, hidden).
    EmbeddingsBinds {
        ids: Read, types: Read, positions: Read, word: Read, position: Read,
        token_type: Read, gamma: Read, beta: Read, out: ReadWrite, p: Uniform,
    }
}

/// The dispatch over `tokens` tokens.
pub(crate) fn launch<'a>(tokens: usize, bufs: &EmbeddingsBinds<'a>) -> Launch<'a> {
    Launch {
        kind: KernelKind::Embeddings,
        binds: bufs.in_order(),
        grid: row_grid(tokens),
    }
}
