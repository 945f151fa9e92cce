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

use super::act;
use crate::graph::Act;

/// The WGSL source (register-blocked, no workgroup memory).
pub const WGSL: &str = include_str!("../../shaders/linear.wgsl");

/// The workgroup-memory tiled variant for real GPUs (same contract).
pub const WGSL_TILED: &str = include_str!("../../shaders/linear_tiled.wgsl");

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

/// CPU twin: blocked, multithreaded GEMM (`gemm` crate) then the epilogue.
pub fn linear(
    s: LinearShape,
    x: &[f32],
    w: &[f32],
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
    // Start from the bias so the GEMM accumulates onto it: y = 1·y + 1·(x·wᵀ).
    for row in y.chunks_exact_mut(n) {
        row.copy_from_slice(b);
    }
    let parallel = if m * n * k >= 1 << 18 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above bound every index gemm touches: dst is (m, n)
    // row-major, lhs rows are x_row_stride apart with k columns, rhs[kk, j] =
    // w[j·k + kk] is (k, n) with row stride 1 and column stride k.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            y.as_mut_ptr(),
            1,
            n as isize,
            true,
            x.as_ptr(),
            1,
            x_row_stride as isize,
            w.as_ptr(),
            k as isize,
            1,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallel,
        );
    }
    if act == Act::Identity && residual.is_none() {
        return;
    }
    let rows_per_task = (4096 / n).max(1);
    y.par_chunks_mut(rows_per_task * n)
        .enumerate()
        .for_each(|(chunk, ys)| {
            let base = chunk * rows_per_task * n;
            for (i, v) in ys.iter_mut().enumerate() {
                *v = act::apply(act, *v);
                if let Some(r) = residual {
                    *v += r[base + i];
                }
            }
        });
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
