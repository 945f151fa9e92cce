//! Which kernel runs each step: the GEMM (register, tiled, split-k,
//! cooperative matrices) and its tile kernel, and the attention kernel.
//! Each choice is, in order: the executor's [`KernelChoices`] (its
//! `LoadOptions` field or `BERT_WGPU_*` variable, resolved once by
//! [`super::options`]), the adapter's tuning file (`bert-wgpu tune`), the
//! built-in default for the adapter type.

use super::options::{AttentionChoice, GemmChoice, KernelChoices, TileChoice};
use crate::gpu::Tuning;

/// Which GEMM kernel runs a linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmKernel {
    /// `linear.wgsl`: 4 × 4 outputs per invocation, no workgroup memory (any
    /// sizes; best on software adapters, where barriers are expensive).
    Register,
    /// `linear_tiled.wgsl`: 128 × 128 tiles staged in workgroup memory,
    /// 8 × 8 outputs per invocation (needs k and the row stride to be
    /// multiples of 4).
    Tiled,
    /// `linear_tiled.wgsl` with k split across workgroups, then
    /// `splitk_reduce.wgsl` (bias, activation, residual): more workgroups
    /// for small m (see [`splitk_splits`]). Opt-in (`BERT_WGPU_GEMM=splitk`)
    /// until measured on a real GPU.
    SplitK,
    /// `linear_coop.wgsl`: cooperative-matrix (tensor core) products of f16
    /// storage with f32 accumulation, in square output tiles of this many
    /// rows (4 fragments). Opt-in (`BERT_WGPU_GEMM=coop`) until measured on
    /// a real GPU; needs [`crate::gpu::CoopConfig`].
    Coop(u32),
}

/// Workgroups split-k aims for (an H200 has 132 SMs).
const SPLITK_TARGET_GROUPS: usize = 128;

/// (splits, k_chunk) of a split-k (m, n, k) GEMM: enough splits for
/// 128 workgroups over the 128 × 128 tiles, each split
/// at least 128 deep; k_chunk a multiple of the kernel's BK = 16.
/// `forced` (`KernelChoices::splitk`) asks for that many splits.
pub fn splitk_splits(m: usize, n: usize, k: usize, forced: Option<usize>) -> (usize, usize) {
    let tiles = m.div_ceil(128) * n.div_ceil(128);
    let forced = forced.filter(|&v| v >= 1);
    let want = forced.unwrap_or_else(|| {
        SPLITK_TARGET_GROUPS
            .div_ceil(tiles.max(1))
            .min((k / 128).max(1))
    });
    let k_chunk = k.div_ceil(want.max(1)).next_multiple_of(16).max(16);
    (k.div_ceil(k_chunk).max(1), k_chunk)
}

/// Which attention kernel runs a self-attention step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKernel {
    /// `attention.wgsl`: one query per invocation, no workgroup memory (any
    /// head size ≤ 128; best on software adapters).
    Query,
    /// `attention_tiled.wgsl`: 16 queries per workgroup sharing 16-key K/V
    /// blocks through workgroup memory (head size a multiple of 4).
    /// Opt-in (`BERT_WGPU_ATTENTION=tiled`) until measured on a real GPU.
    Tiled,
}

/// Workgroup memory `attention_tiled.wgsl` declares, in bytes: Q, K and V
/// tiles of 16 × 33 vec4<f32>, 16 × 16 scores and three per-row f32 arrays.
/// `tests/kernels/shaders.rs` checks it against the shader.
pub const ATTENTION_TILED_SHARED_BYTES: u32 = 3 * 16 * 33 * 16 + 16 * 16 * 4 + 3 * 16 * 4;

/// Queries per workgroup of `attention_tiled.wgsl` (its `BQ`).
pub const ATTENTION_TILED_BQ: u32 = 16;

/// Picks the attention kernel for head size `head_dim` on an adapter whose
/// workgroup memory limit is `shared_limit` bytes: `choices.attention`,
/// else the adapter's tuning file, else the one-query kernel on every
/// adapter until the tiled one is measured on a real GPU (on lavapipe,
/// where barriers are expensive, it is 4.6× slower). The tiled kernel still
/// needs vec4 heads and the workgroup memory.
pub fn choose_attention(
    choices: &KernelChoices,
    tuning: Option<&Tuning>,
    head_dim: usize,
    shared_limit: u32,
) -> AttentionKernel {
    let mode = choices
        .attention
        .or_else(|| tuning.and_then(|t| t.attention.parse().ok()));
    let tiled = mode == Some(AttentionChoice::Tiled);
    if tiled && head_dim % 4 == 0 && shared_limit >= ATTENTION_TILED_SHARED_BYTES {
        AttentionKernel::Tiled
    } else {
        AttentionKernel::Query
    }
}

/// Picks the GEMM kernel for an (m, n, k) linear whose input rows are
/// `x_row_stride` apart. `choices.gemm` overrides the adapter's tuning file (`tuning`: its `gemm_large` or
/// `gemm_small` by the tile count), which overrides the adapter-based default
/// (tiled on hardware GPUs, register on CPU adapters); `coop` needs `coop`
/// (f16 storage on an adapter with cooperative matrices, else it is ignored).
#[allow(clippy::too_many_arguments)]
pub fn choose_gemm(
    choices: &KernelChoices,
    device_type: wgpu::DeviceType,
    coop: Option<crate::gpu::CoopConfig>,
    tuning: Option<&Tuning>,
    m: usize,
    n: usize,
    k: usize,
    x_row_stride: usize,
) -> GemmKernel {
    // The tiled kernels load vec4s along k.
    let vec4 = k % 4 == 0 && x_row_stride % 4 == 0;
    // Enough 128 × 128 tiles to fill a device.
    let large = m.div_ceil(128) * n.div_ceil(128) >= 64;
    let mode = choices
        .gemm
        .or_else(|| {
            let t = tuning?;
            if large { &t.gemm_large } else { &t.gemm_small }
                .parse()
                .ok()
        })
        .unwrap_or(GemmChoice::Auto);
    if let (Some(c), true, GemmChoice::Coop) = (coop, vec4, mode) {
        return GemmKernel::Coop(4 * c.frag);
    }
    let tiled = match mode {
        GemmChoice::Register => false,
        GemmChoice::Tiled | GemmChoice::SplitK => true,
        GemmChoice::Auto | GemmChoice::Coop => device_type != wgpu::DeviceType::Cpu,
    };
    if !tiled || !vec4 {
        return GemmKernel::Register;
    }
    if mode == GemmChoice::SplitK {
        return GemmKernel::SplitK;
    }
    // 128 × 128 tiles only pay when there are enough of them to fill the
    // device; small GEMMs (batch 1) keep the finer-grained register kernel.
    if mode == GemmChoice::Tiled || large {
        GemmKernel::Tiled
    } else {
        GemmKernel::Register
    }
}

/// Which 128 × 128 tile kernel [`GemmKernel::Tiled`] and
/// [`GemmKernel::SplitK`] run: `choices.tile`, else what the adapter's
/// tuning file chose, else `linear_tiled.wgsl` (`linear_tiled_prefetch.wgsl`
/// is opt-in until measured on a real GPU).
pub fn tile_variant(choices: &KernelChoices, tuning: Option<&Tuning>) -> TileChoice {
    choices
        .tile
        .or_else(|| tuning.and_then(|t| t.tile.parse().ok()))
        .unwrap_or(TileChoice::Plain)
}
