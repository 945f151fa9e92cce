//! `linear`: `y = act(x · wᵀ + b) + r` (CPU twin
//! [`crate::kernels::linear::linear`]) in five GEMM variants — register
//! blocked (`linear.wgsl`, vec4 or scalar loads), 128 × 128 tiles
//! (`linear_tiled.wgsl`, `linear_tiled_prefetch.wgsl`), cooperative
//! matrices (`linear_coop.wgsl`) — plus split-k's second pass
//! (`splitk_reduce.wgsl`).

use super::{as_u32, bindings, ceil_div, element_grid, Binding, KernelKind, Launch, Preamble};
use crate::device::DType;
use crate::error::Result;
use crate::gpu::choice::{splitk_splits, GemmKernel};
use crate::gpu::options::TileChoice;
use crate::kernels::linear::LinearShape;

use bytemuck::{Pod, Zeroable};

/// Uniform parameters of every linear variant (WGSL `LinearParams`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct LinearParams {
    pub(crate) m: u32,
    pub(crate) n: u32,
    pub(crate) k: u32,
    pub(crate) x_row_stride: u32,
    pub(crate) act: u32,
    pub(crate) has_residual: u32,
    /// Split-k: k per split (a multiple of 16; ≥ k when not split).
    pub(crate) k_chunk: u32,
    /// Split-k: number of k splits (1 = not split).
    pub(crate) splits: u32,
}

impl LinearParams {
    /// The parameters of shape `s` run as `launch`.
    pub(crate) fn new(s: &LinearShape, has_residual: bool, launch: &LinearLaunch) -> Result<Self> {
        Ok(LinearParams {
            m: as_u32(s.m, "linear m")?,
            n: as_u32(s.n, "linear n")?,
            k: as_u32(s.k, "linear k")?,
            x_row_stride: as_u32(s.x_row_stride, "linear x_row_stride")?,
            act: s.act.code(),
            has_residual: u32::from(has_residual),
            k_chunk: as_u32(launch.k_chunk, "linear k_chunk")?,
            splits: as_u32(launch.splits, "linear splits")?,
        })
    }
}

bindings! {
    /// `linear.wgsl`, `linear_coop.wgsl`: x (m, x_row_stride), w (n, k),
    /// b (n) f32, r (m, n) (read when has_residual), y (m, n).
    LinearBinds { x: Read, w: Read, b: Read, r: Read, y: ReadWrite, p: Uniform }
}

bindings! {
    /// The tiled kernels: [`LinearBinds`] and `part`, the split-k partial
    /// sums (splits, m, n) f32 (bound, untouched, when not split). Also every
    /// buffer of a linear step, from which [`launches`] binds each pass.
    LinearTiledBinds { x: Read, w: Read, b: Read, r: Read, y: ReadWrite, p: Uniform, part: ReadWrite }
}

bindings! {
    /// `splitk_reduce.wgsl`: sums `part` over the splits, then bias,
    /// activation and residual into y.
    SplitKReduceBinds { part: Read, b: Read, r: Read, y: ReadWrite, p: Uniform }
}

/// A `linear` pipeline variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearVariant {
    /// `linear.wgsl`, vec4 loads.
    Vec4,
    /// `linear.wgsl`, scalar loads.
    Scalar,
    /// `linear_tiled.wgsl`.
    Tiled,
    /// `splitk_reduce.wgsl`.
    SplitKReduce,
    /// `linear_tiled_prefetch.wgsl` (the tiled contract, vec4 workgroup
    /// reads and register prefetch).
    TiledPrefetch,
    /// `linear_coop.wgsl` (cooperative matrices, f16 storage only).
    Coop,
}

impl LinearVariant {
    /// Every variant.
    pub const ALL: [LinearVariant; 6] = [
        LinearVariant::Vec4,
        LinearVariant::Scalar,
        LinearVariant::Tiled,
        LinearVariant::SplitKReduce,
        LinearVariant::TiledPrefetch,
        LinearVariant::Coop,
    ];

    /// A 128 × 128 workgroup-tile kernel (binds the split-k partial sums).
    pub fn is_tiled(self) -> bool {
        matches!(self, LinearVariant::Tiled | LinearVariant::TiledPrefetch)
    }

    /// Its bindings, in order.
    pub fn bindings(self) -> &'static [Binding] {
        match self {
            LinearVariant::Tiled | LinearVariant::TiledPrefetch => LinearTiledBinds::LAYOUT,
            LinearVariant::SplitKReduce => SplitKReduceBinds::LAYOUT,
            LinearVariant::Vec4 | LinearVariant::Scalar | LinearVariant::Coop => {
                LinearBinds::LAYOUT
            }
        }
    }
}

/// Workgroup shape of `linear.wgsl` (matches its `override` defaults); each
/// invocation computes a 4×4 block.
pub const LINEAR_WG: (u32, u32) = (8, 8);

/// Workgroup size of `splitk_reduce.wgsl` (outputs per workgroup).
pub const SPLITK_REDUCE_WG: u32 = 256;

/// How a linear layer runs: one dispatch, or for split-k two (the tiled
/// kernel writing partial sums, then `splitk_reduce.wgsl`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinearLaunch {
    /// The GEMM pipeline and its grid.
    pub(crate) kind: KernelKind,
    pub(crate) grid: [u32; 3],
    /// k per split and the number of splits (`LinearParams` fields).
    pub(crate) k_chunk: usize,
    pub(crate) splits: usize,
    /// The reduce pass, when split.
    pub(crate) reduce: Option<(KernelKind, [u32; 3])>,
}

impl LinearLaunch {
    /// f32 elements of the partial-sum buffer it needs (0 when not split).
    pub(crate) fn partial_elems(&self, m: usize, n: usize) -> usize {
        if self.reduce.is_some() {
            self.splits * m * n
        } else {
            0
        }
    }

    /// Its dispatches over the step's buffers `bufs`: the GEMM (the tiled
    /// kernels with the partial sums), then the reduce pass when split.
    pub(crate) fn launches<'a>(&self, bufs: &LinearTiledBinds<'a>) -> Vec<Launch<'a>> {
        let binds = match self.kind {
            KernelKind::Linear(v, _) if v.is_tiled() => bufs.in_order(),
            _ => LinearBinds {
                x: bufs.x,
                w: bufs.w,
                b: bufs.b,
                r: bufs.r,
                y: bufs.y,
                p: bufs.p,
            }
            .in_order(),
        };
        let mut out = vec![Launch {
            kind: self.kind,
            binds,
            grid: self.grid,
        }];
        if let Some((kind, grid)) = self.reduce {
            let binds = SplitKReduceBinds {
                part: bufs.part,
                b: bufs.b,
                r: bufs.r,
                y: bufs.y,
                p: bufs.p,
            };
            out.push(Launch {
                kind,
                binds: binds.in_order(),
                grid,
            });
        }
        out
    }
}

/// The launch of a linear layer with output type `out`: the register-blocked
/// kernel (vec4 or scalar loads), the tiled one, or tiled + split-k, as
/// [`crate::gpu::choose_gemm`] decided (`choice`; the tiled kernel needs
/// vec4 loads) with tile kernel `tile`, split-k into `splitk` splits when
/// given, and `linear.wgsl` in workgroups of `wg`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_launch(
    (choice, tile, splitk): (GemmKernel, TileChoice, Option<usize>),
    out: DType,
    m: usize,
    n: usize,
    k: usize,
    stride: usize,
    wg: (u32, u32),
) -> LinearLaunch {
    let tile = match tile {
        TileChoice::Plain => LinearVariant::Tiled,
        TileChoice::Prefetch => LinearVariant::TiledPrefetch,
    };
    let vec4 = Preamble::for_lengths(&[k, stride]) == Preamble::Vec4;
    let unsplit = |kind, grid| LinearLaunch {
        kind,
        grid,
        k_chunk: k.next_multiple_of(16).max(16),
        splits: 1,
        reduce: None,
    };
    let tiles = |z| [ceil_div(n, 128), ceil_div(m, 128), z];
    let tiled = KernelKind::Linear(tile, out);
    match (choice, vec4) {
        (GemmKernel::SplitK, true) => {
            let (splits, k_chunk) = splitk_splits(m, n, k, splitk);
            if splits <= 1 {
                return unsplit(tiled, tiles(1));
            }
            LinearLaunch {
                kind: tiled,
                grid: tiles(splits as u32),
                k_chunk,
                splits,
                reduce: Some((
                    KernelKind::Linear(LinearVariant::SplitKReduce, out),
                    element_grid(m * n, SPLITK_REDUCE_WG as usize),
                )),
            }
        }
        (GemmKernel::Tiled, true) => unsplit(tiled, tiles(1)),
        (GemmKernel::Coop(t), true) => unsplit(
            KernelKind::Linear(LinearVariant::Coop, out),
            [ceil_div(n, t as usize), ceil_div(m, t as usize), 1],
        ),
        (_, true) => unsplit(
            KernelKind::Linear(LinearVariant::Vec4, out),
            linear_grid(m, n, wg),
        ),
        (_, false) => unsplit(
            KernelKind::Linear(LinearVariant::Scalar, out),
            linear_grid(m, n, wg),
        ),
    }
}

/// Grid of `linear.wgsl` for an (m, n) output in workgroups of `wg`: one
/// 4×4 block per invocation.
pub(crate) fn linear_grid(m: usize, n: usize, wg: (u32, u32)) -> [u32; 3] {
    [
        ceil_div(n, 4 * wg.0 as usize),
        ceil_div(m, 4 * wg.1 as usize),
        1,
    ]
}
