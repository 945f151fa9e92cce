//! `attention`: per-head `softmax(q·kᵀ·scale + mask)·v` over a fused QKV
//! (CPU twin [`crate::kernels::attention::attention`]): one query per
//! invocation (`attention.wgsl`, vec4 or scalar loads) or 16 queries per
//! workgroup sharing K/V tiles (`attention_tiled.wgsl`).

use super::{as_u32, bindings, ceil_div, KernelKind, Launch, Preamble};
use crate::error::Result;
use crate::gpu::choice::{AttentionKernel, ATTENTION_TILED_BQ};

use bytemuck::{Pod, Zeroable};

/// Largest attention head size the kernels support (`attention.wgsl`'s `MAX_D`).
pub const MAX_HEAD_DIM: usize = 128;

/// Workgroup size of `attention.wgsl` (queries per workgroup).
pub const ATTENTION_WG: u32 = 64;

/// Uniform parameters (WGSL `AttnParams`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct AttnParams {
    pub(crate) batch: u32,
    pub(crate) seq: u32,
    pub(crate) heads: u32,
    pub(crate) head_dim: u32,
    pub(crate) scale: f32,
    pub(crate) _pad: [u32; 3],
}

impl AttnParams {
    /// (batch, seq, heads) of head size `head_dim`, scaled by 1/√head_dim.
    pub(crate) fn new(batch: usize, seq: usize, heads: usize, head_dim: usize) -> Result<Self> {
        Ok(AttnParams {
            batch: as_u32(batch, "attention batch")?,
            seq: as_u32(seq, "attention seq")?,
            heads: as_u32(heads, "attention heads")?,
            head_dim: as_u32(head_dim, "attention head_dim")?,
            scale: 1.0 / (head_dim as f32).sqrt(),
            _pad: [0; 3],
        })
    }
}

bindings! {
    /// qkv (batch·seq, 3·hidden), mask (batch·seq) additive f32,
    /// out (batch·seq, hidden).
    AttentionBinds { qkv: Read, mask: Read, out: ReadWrite, p: Uniform }
}

/// Grid of `attention.wgsl`: (query blocks, heads, batch).
pub(crate) fn attention_grid(batch: usize, seq: usize, heads: usize) -> [u32; 3] {
    [
        ceil_div(seq, ATTENTION_WG as usize),
        heads as u32,
        batch as u32,
    ]
}

/// Pipeline and grid of an attention step that `kernel` runs; the tiled
/// kernel needs a head size that is a multiple of 4 (otherwise the
/// one-query kernel runs), and the one-query kernel's load width follows
/// the head size.
pub(crate) fn attention_launch(
    kernel: AttentionKernel,
    batch: usize,
    seq: usize,
    heads: usize,
    head_dim: usize,
) -> (KernelKind, [u32; 3]) {
    let vec4 = Preamble::for_lengths(&[head_dim]) == Preamble::Vec4;
    match kernel {
        AttentionKernel::Tiled if vec4 => (
            KernelKind::AttentionTiled,
            [
                ceil_div(seq, ATTENTION_TILED_BQ as usize),
                heads as u32,
                batch as u32,
            ],
        ),
        _ if vec4 => (KernelKind::AttentionVec4, attention_grid(batch, seq, heads)),
        _ => (
            KernelKind::AttentionScalar,
            attention_grid(batch, seq, heads),
        ),
    }
}

/// The dispatch of an attention step of (batch, seq, heads, head_dim)
/// over `bufs` with `kernel` (as [`attention_launch`] refines it).
pub(crate) fn launch<'a>(
    kernel: AttentionKernel,
    [batch, seq, heads, head_dim]: [usize; 4],
    bufs: &AttentionBinds<'a>,
) -> Launch<'a> {
    let (kind, grid) = attention_launch(kernel, batch, seq, heads, head_dim);
    Launch {
        kind,
        binds: bufs.in_order(),
        grid,
    }
}
