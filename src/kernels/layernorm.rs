//! Row LayerNorm with an optional fused residual: `out = LN(x + r) · γ + β`.
//! Twin of `shaders/layernorm.wgsl`.
//!
//! Contract: `x`, `residual`, `out`: (rows, cols); `gamma`, `beta`: (cols).
//! Mean and biased variance in two passes over the row, f32.

use rayon::prelude::*;

/// The WGSL source.
pub const WGSL: &str = include_str!("../../shaders/layernorm.wgsl");

/// Normalises one row in place: `row = (row - mean) / √(var + eps) · γ + β`.
/// Sums accumulate in f64 so rows with a large common offset stay accurate,
/// over 8 independent lanes so the compiler vectorises them (compiled for
/// AVX2 when the CPU has it).
#[inline]
pub fn normalize_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            unsafe { normalize_row_avx2(row, gamma, beta, eps) };
            return;
        }
    }
    normalize_row_generic(row, gamma, beta, eps);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn normalize_row_avx2(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    normalize_row_generic(row, gamma, beta, eps);
}

/// Σ f(v) over `row` in f64, 8 lanes then the tail.
#[inline(always)]
fn sum_f64(row: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = row.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v as f64)).sum();
    for c in chunks {
        for i in 0..8 {
            lanes[i] += f(c[i] as f64);
        }
    }
    lanes.iter().sum::<f64>() + tail
}

#[inline(always)]
fn normalize_row_generic(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f64;
    let mean = sum_f64(row, |v| v) / n;
    let var = sum_f64(row, |v| (v - mean) * (v - mean)) / n;
    let inv = (1.0 / (var + eps as f64).sqrt()) as f32;
    let mean = mean as f32;
    for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) * inv * g + b;
    }
}

/// CPU twin.
pub fn layer_norm(
    x: &[f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    out: &mut [f32],
) {
    let cols = gamma.len();
    assert_eq!(beta.len(), cols, "beta shape");
    assert_eq!(x.len(), out.len(), "x/out shape");
    assert!(cols > 0 && x.len() % cols == 0, "x is not (rows, cols)");
    // Several rows per task: one row is too little work for a rayon task.
    let rows_per_task = (8192 / cols).max(1);
    out.par_chunks_mut(cols * rows_per_task)
        .enumerate()
        .for_each(|(t, rows)| {
            for (i, row) in rows.chunks_exact_mut(cols).enumerate() {
                let r = t * rows_per_task + i;
                let xr = &x[r * cols..(r + 1) * cols];
                match residual {
                    Some(res) => {
                        let rr = &res[r * cols..(r + 1) * cols];
                        for ((o, a), b) in row.iter_mut().zip(xr).zip(rr) {
                            *o = a + b;
                        }
                    }
                    None => row.copy_from_slice(xr),
                }
                normalize_row(row, gamma, beta, eps);
            }
        });
}
