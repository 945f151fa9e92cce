//! Row LayerNorm with an optional fused residual: `out = LN(x + r) · γ + β`.
//! Twin of `shaders/layernorm.wgsl`.
//!
//! Contract: `x`, `residual`, `out`: (rows, cols); `gamma`, `beta`: (cols).
//! Mean and biased variance in two passes over the row, f32.

use rayon::prelude::*;

/// The WGSL source.
pub const WGSL: &str = include_str!("../../shaders/layernorm.wgsl");

/// Normalises one row in place: `row = (row - mean) / √(var + eps) · γ + β`.
/// Sums accumulate in f64 so rows with a large common offset stay accurate.
#[inline]
pub fn normalize_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
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
    out.par_chunks_mut(cols).enumerate().for_each(|(r, row)| {
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
    });
}
