//! LayerNorm (`layernorm.wgsl`, `src/kernels/layernorm.rs`): the twin and
//! the WGSL kernel against f64 with a large common offset (where a one-pass
//! variance fails), the kernel against the twin in f32 and f16 storage.

use std::time::Instant;

use bert_wgpu::kernels::layernorm::layer_norm;
use bert_wgpu::DType;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::common::gpu;
use crate::common::{f16s, layer_norm_f64};
use crate::support::{compare, compare_f16, compare_with, dyadic, uniform, ATOL, RTOL};

// ---- CPU twin against f64 ----

#[test]
fn layer_norm_with_large_offset_matches_f64() {
    let mut rng = StdRng::seed_from_u64(0x1a);
    for (rows, cols, residual) in [
        (3, 2, false),
        (7, 7, true),
        (5, 33, false),
        (4, 384, true),
        (3, 768, false),
    ] {
        let gamma = uniform(&mut rng, cols, 0.8, 1.2);
        let beta = uniform(&mut rng, cols, -0.2, 0.2);
        for eps in [1e-12f32, 1e-5] {
            // Values 100 + j/128: every f32 partial sum is exact, so the only
            // rounding left is the variance's; a one-pass E[x²] − E[x]²
            // variance would be ~1e-3 off here.
            let x = dyadic(&mut rng, rows * cols, 100.0);
            let r = residual.then(|| dyadic(&mut rng, rows * cols, 0.0));
            let mut got = vec![0.0; rows * cols];
            layer_norm(&x, r.as_deref(), &gamma, &beta, eps, &mut got);
            let (want, _) = layer_norm_f64(&x, r.as_deref(), &gamma, &beta, eps);
            compare(
                &format!("layer_norm rows={rows} cols={cols} residual={residual} eps={eps:e} offset=100 (exact sums)"),
                &got,
                &want,
                cols,
            );
            // Arbitrary values + 100: the f32 row sum rounds by up to ~√cols
            // half-ulps of 100 (sequential sum), which the output sees times
            // inv·|γ|; the bound adds 2√cols of those.
            let x: Vec<f32> = uniform(&mut rng, rows * cols, -1.0, 1.0)
                .into_iter()
                .map(|v| v + 100.0)
                .collect();
            let r = residual.then(|| uniform(&mut rng, rows * cols, -1.0, 1.0));
            layer_norm(&x, r.as_deref(), &gamma, &beta, eps, &mut got);
            let (want, max_inv) = layer_norm_f64(&x, r.as_deref(), &gamma, &beta, eps);
            let half_ulp = f32::EPSILON as f64 / 2.0 * 101.0;
            let extra = (2.0 * (cols as f64).sqrt() * half_ulp * max_inv * 1.2) as f32;
            compare_with(
                &format!("layer_norm rows={rows} cols={cols} residual={residual} eps={eps:e} offset=100 (arbitrary)"),
                &got,
                &want,
                cols,
                extra,
            );
        }
    }
}

// ---- WGSL kernel against the twin and f64, f32 ----

#[test]
fn layer_norm_matches_twin() {
    let Some(h) = gpu::harness("layer_norm_matches_twin", DType::F32) else {
        return;
    };
    let t = Instant::now();
    let mut rng = StdRng::seed_from_u64(0x1a7e);
    let mut worst = 0.0f32;
    let mut i = 0usize;
    for rows in [1, 7, 33] {
        for cols in [2, 7, 32, 33, 129, 384, 512, 768] {
            let residual = i % 2 == 1;
            let eps = if (i / 2) % 2 == 0 { 1e-12 } else { 1e-5 };
            i += 1;
            let gamma = uniform(&mut rng, cols, 0.8, 1.2);
            let beta = uniform(&mut rng, cols, -0.2, 0.2);
            for (offset, exact_sums) in [(0.0f32, false), (100.0, true)] {
                let (x, r) = if exact_sums {
                    let x = dyadic(&mut rng, rows * cols, offset);
                    (x, residual.then(|| dyadic(&mut rng, rows * cols, 0.0)))
                } else {
                    let x = uniform(&mut rng, rows * cols, -1.0, 1.0);
                    (
                        x,
                        residual.then(|| uniform(&mut rng, rows * cols, -1.0, 1.0)),
                    )
                };
                let mut want = vec![0.0; rows * cols];
                layer_norm(&x, r.as_deref(), &gamma, &beta, eps, &mut want);
                let got = h
                    .layer_norm(&x, r.as_deref(), &gamma, &beta, eps)
                    .unwrap_or_else(|e| panic!("layer_norm {rows}x{cols}: {e}"));
                let what = format!(
                    "layer_norm rows={rows} cols={cols} residual={residual} eps={eps:e} offset={offset}"
                );
                worst = worst.max(compare(&what, &got, &want, cols));
            }
        }
    }
    println!(
        "layer_norm: {} shapes, max |err| {worst:.3e}, {:.2} s",
        2 * i,
        t.elapsed().as_secs_f64()
    );
}

/// Arbitrary f32 inputs with a common offset of 100, against an f64
/// reference. Storing the mean (≈ 100) in f32 alone costs up to half an ulp
/// of 100, i.e. u·100·inv·|γ| at the output, so the bound adds a few of
/// those to the usual tolerance; a one-pass variance is ~100× further off.
#[test]
fn layer_norm_with_offset_matches_f64() {
    let Some(h) = gpu::harness("layer_norm_with_offset_matches_f64", DType::F32) else {
        return;
    };
    let t = Instant::now();
    let mut rng = StdRng::seed_from_u64(0x0ff5e7);
    let offset = 100.0f32;
    for (rows, cols, residual) in [
        (7, 7, false),
        (7, 33, true),
        (33, 129, false),
        (7, 384, true),
        (3, 768, false),
    ] {
        let x: Vec<f32> = uniform(&mut rng, rows * cols, -1.0, 1.0)
            .into_iter()
            .map(|v| v + offset)
            .collect();
        let r = residual.then(|| uniform(&mut rng, rows * cols, -1.0, 1.0));
        let gamma = uniform(&mut rng, cols, 0.8, 1.2);
        let beta = uniform(&mut rng, cols, -0.2, 0.2);
        let eps = 1e-12;
        let got = h
            .layer_norm(&x, r.as_deref(), &gamma, &beta, eps)
            .unwrap_or_else(|e| panic!("layer_norm {rows}x{cols}: {e}"));
        let (want, max_inv) = layer_norm_f64(&x, r.as_deref(), &gamma, &beta, eps);
        let half_ulp = (f32::EPSILON / 2.0) as f64 * offset as f64 * 1.01;
        let floor = (6.0 * half_ulp * max_inv * 1.2) as f32;
        let mut max_err = 0.0f32;
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let err = (g - w).abs();
            max_err = max_err.max(err);
            assert!(
                err <= ATOL + RTOL * w.abs() + floor,
                "layer_norm offset {offset} rows={rows} cols={cols}: (row, col) ({}, {}): got {g}, f64 {w}, |err| {err:e} > bound {:e}",
                i / cols,
                i % cols,
                ATOL + RTOL * w.abs() + floor
            );
        }
        println!(
            "layer_norm offset={offset} rows={rows} cols={cols} residual={residual} vs f64: max |err| {max_err:.3e} (bound adds {floor:.2e})"
        );
    }
    println!(
        "layer_norm offset vs f64: {:.2} s",
        t.elapsed().as_secs_f64()
    );
}

// ---- WGSL kernel against the twin, f16 storage ----

#[test]
fn f16_layer_norm_matches_twin() {
    let Some(h) = gpu::harness("f16_layer_norm_matches_twin", DType::F16) else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(0x1a7);
    for (rows, cols, residual) in [
        (1, 1, false),
        (7, 33, true),
        (33, 384, true),
        (3, 512, false),
    ] {
        let x = f16s(&mut rng, rows * cols, -3.0, 5.0);
        let r = residual.then(|| f16s(&mut rng, rows * cols, -1.0, 1.0));
        let gamma = uniform(&mut rng, cols, 0.5, 1.5);
        let beta = uniform(&mut rng, cols, -0.5, 0.5);
        let mut want = vec![0.0; rows * cols];
        layer_norm(&x, r.as_deref(), &gamma, &beta, 1e-12, &mut want);
        let got = h
            .layer_norm(&x, r.as_deref(), &gamma, &beta, 1e-12)
            .unwrap_or_else(|e| panic!("f16 layer_norm: {e}"));
        compare_f16(
            &format!("f16 layer_norm rows={rows} cols={cols} residual={residual}"),
            &got,
            &want,
            cols,
        );
    }
}
