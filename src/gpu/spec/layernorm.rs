//! `layernorm.wgsl`: `LN(x + r) · γ + β` per row, one workgroup per row
//! (CPU twin [`crate::kernels::layernorm::layer_norm`]).

use super::{as_u32, bindings, row_grid, KernelKind, Launch};
use crate::error::Result;

use bytemuck::{Pod, Zeroable};

/// Uniform parameters (WGSL `LnParams`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct LnParams {
    pub(crate) rows: u32,
    pub(crate) cols: u32,
    pub(crate) eps: f32,
    pub(crate) has_residual: u32,
}

impl LnParams {
    /// (rows, cols) with `eps`; r is read when `has_residual`.
    pub(crate) fn new(rows: usize, cols: usize, eps: f32, has_residual: bool) -> Result<Self> {
        Ok(LnParams {
            rows: as_u32(rows, "layer_norm rows")?,
            cols: as_u32(cols, "layer_norm cols")?,
            eps,
            has_residual: u32::from(has_residual),
        })
    }
}

bindings! {
    /// x (rows, cols) f32, r (rows, cols) f32, gamma and beta (cols) f32,
    /// out (rows, cols).
    LayerNormBinds { x: Read, r: Read, gamma: Read, beta: Read, out: ReadWrite, p: Uniform }
}

/// The dispatch over `rows` rows.
pub(crate) fn launch<'a>(rows: usize, bufs: &LayerNormBinds<'a>) -> Launch<'a> {
    Launch {
        kind: KernelKind::LayerNorm,
        binds: bufs.in_order(),
        grid: row_grid(rows),
    }
}
