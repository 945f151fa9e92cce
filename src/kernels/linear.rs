//! `Y = act(X · Wᵀ + b) + R`, HF's `nn.Linear` with a fused epilogue.
//! Twin of `shaders/linear.wgsl`.
//!
//! Contract (both sides):
//! - `x`: rows `m`, row `i` starts at `i · x_row_stride`, `k` values (the
//!   stride lets the pooler read only each sequence's `[CLS]` row).
//! - `w`: (n, k) row-major, HF's `(out_features, in_features)`.
//! - `b`: (n). `residual`: (m, n) or none, added after the activation.
//! - `y`: (m, n).

use rayon::prelude::*;

use crate::kernels::act::{self, Act};

/// The WGSL source (register-blocked, no workgroup memory).
pub const WGSL: &str = include_str!("../../shaders/linear.wgsl");

/// The workgroup-memory tiled variant for real GPUs (same contract).
pub const WGSL_TILED: &str = include_str!("../../shaders/linear_tiled.wgsl");

/// The WGSL source of the tiled GEMM with vec4 workgroup reads and register
/// prefetch (same contract as [`WGSL_TILED`]).
pub const WGSL_TILED_PREFETCH: &str = include_str!("../../shaders/linear_tiled_prefetch.wgsl");

/// The WGSL source of the cooperative-matrix (tensor core) GEMM for f16
/// storage (assembled by `gpu::assemble_coop_shader`).
pub const WGSL_COOP: &str = include_str!("../../shaders/linear_coop.wgsl");

/// The WGSL source of the split-k second pass (sum of the splits, then the
/// epilogue); its twin is the whole of [`linear`].
pub const WGSL_SPLITK_REDUCE: &str = include_str!("../../shaders/splitk_reduce.wgsl");

/// Shapes and options of one linear call.
#[derive(Debug, Clone, Copy)]
pub struct LinearShape {
    /// Output rows.
    pub m: usize,
    /// Output columns (`out_features`).
    pub n: usize,
    /// Reduction length (`in_features`).
    pub k: usize,
    /// Distance between consecutive rows of `x`, in elements (≥ k).
    pub x_row_stride: usize,
    /// Epilogue activation.
    pub act: Act,
}

/// How a weight matrix is laid out in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// (n, k): HF's `(out_features, in_features)`, the kernels' contract.
    OutIn,
    /// (k, n): transposed once at load by the CPU executor; the `gemm`
    /// crate packs it faster (up to 2.5× on batch-1 shapes, measured).
    InOut,
}

/// CPU twin: blocked, multithreaded GEMM (`gemm` crate) then the epilogue.
pub fn linear(
    s: LinearShape,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    residual: Option<&[f32]>,
    y: &mut [f32],
) {
    linear_with_layout(s, x, w, WeightLayout::OutIn, b, residual, y)
}

/// [`linear`] with the weight in either layout.
pub fn linear_with_layout(
    s: LinearShape,
    x: &[f32],
    w: &[f32],
    layout: WeightLayout,
    b: &[f32],
    residual: Option<&[f32]>,
    y: &mut [f32],
) {
    let LinearShape {
        m,
        n,
        k,
        x_row_stride,
        act,
    } = s;
    assert!(x_row_stride >= k, "x_row_stride < k");
    assert!(
        m == 0 || x.len() >= (m - 1) * x_row_stride + k,
        "x too short"
    );
    assert_eq!(w.len(), n * k, "w shape");
    assert_eq!(b.len(), n, "b shape");
    assert_eq!(y.len(), m * n, "y shape");
    if let Some(r) = residual {
        assert_eq!(r.len(), m * n, "residual shape");
    }
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        y.fill(0.0);
    } else {
        let parallel = if m * n * k >= 1 << 18 {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        };
        // rhs[kk, j]: w[j·k + kk] for (n, k), w[kk·n + j] for (k, n).
        let (rhs_cs, rhs_rs) = match layout {
            WeightLayout::OutIn => (k as isize, 1),
            WeightLayout::InOut => (1, n as isize),
        };
        // SAFETY: the asserts above bound every index gemm touches: dst is
        // (m, n) row-major, lhs rows are x_row_stride apart with k columns,
        // rhs is (k, n) through the strides above, all inside w (n·k values).
        // read_dst = false: y = x·wᵀ, whatever y held.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                y.as_mut_ptr(),
                1,
                n as isize,
                false,
                x.as_ptr(),
                1,
                x_row_stride as isize,
                w.as_ptr(),
                rhs_cs,
                rhs_rs,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                parallel,
            );
        }
    }
    // One epilogue pass: bias, activation, residual.
    let rows_per_task = (8192 / n).max(1);
    y.par_chunks_mut(rows_per_task * n)
        .enumerate()
        .for_each(|(chunk, ys)| {
            let base = chunk * rows_per_task * n;
            let r = residual.map(|r| &r[base..base + ys.len()]);
            epilogue(act, ys, b, r);
        });
}

/// `y = act(y + b) + r` over rows of `b.len()`, with the activation chosen
/// once (not per element) and the loop compiled for AVX2 + FMA when the CPU
/// has them, so GELU's erf vectorises.
pub(crate) fn epilogue(act: Act, y: &mut [f32], b: &[f32], r: Option<&[f32]>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            unsafe { epilogue_avx2(act, y, b, r) };
            return;
        }
    }
    epilogue_generic(act, y, b, r);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn epilogue_avx2(act: Act, y: &mut [f32], b: &[f32], r: Option<&[f32]>) {
    epilogue_generic(act, y, b, r);
}

#[inline(always)]
fn epilogue_generic(act: Act, y: &mut [f32], b: &[f32], r: Option<&[f32]>) {
    match act {
        Act::Identity => epilogue_with(y, b, r, |v| v),
        Act::Gelu => epilogue_with(y, b, r, act::gelu_erf),
        Act::GeluTanh => epilogue_with(y, b, r, act::gelu_tanh),
        Act::Relu => epilogue_with(y, b, r, |v| v.max(0.0)),
        Act::Silu | Act::Tanh => epilogue_with(y, b, r, |v| act::apply(act, v)),
    }
}

#[inline(always)]
fn epilogue_with(y: &mut [f32], b: &[f32], r: Option<&[f32]>, f: impl Fn(f32) -> f32) {
    let n = b.len();
    match r {
        Some(r) => {
            for (row, rr) in y.chunks_exact_mut(n).zip(r.chunks_exact(n)) {
                for ((v, bj), rj) in row.iter_mut().zip(b).zip(rr) {
                    *v = f(*v + bj) + rj;
                }
            }
        }
        None => {
            for row in y.chunks_exact_mut(n) {
                for (v, bj) in row.iter_mut().zip(b) {
                    *v = f(*v + bj);
                }
            }
        }
    }
}

/// Transposes a row-major (rows, cols) matrix into (cols, rows).
pub fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

/// Naive triple loop with the same contract: the oracle for [`linear`] in tests.
pub fn linear_naive(
    s: LinearShape,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    residual: Option<&[f32]>,
    y: &mut [f32],
) {
    for i in 0..s.m {
        for j in 0..s.n {
            let mut acc = 0.0f64;
            for kk in 0..s.k {
                acc += x[i * s.x_row_stride + kk] as f64 * w[j * s.k + kk] as f64;
            }
            let mut v = act::apply(s.act, (acc + b[j] as f64) as f32);
            if let Some(r) = residual {
                v += r[i * s.n + j];
            }
            y[i * s.n + j] = v;
        }
    }
}
