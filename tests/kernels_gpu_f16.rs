//! The f16 kernels (`--dtype f16`: f16 storage of activations and weight
//! matrices, f32 arithmetic) against their CPU twins. The twin runs in f32 on
//! inputs rounded to f16 exactly as the harness uploads them, so the only
//! difference left is the kernel's final rounding of its output to f16
//! (relative error ≤ 2⁻¹¹ ≈ 4.9e-4) plus f32 summation order: every element
//! must be within 1e-4 + 1e-3·|want|. Shapes include sizes that are not tile
//! multiples and both the vec4 and scalar variants.
//!
//! GPU policy as `kernels_gpu.rs`; an adapter without SHADER_F16 fails the
//! test (lavapipe, NVIDIA, AMD, Apple and Intel GPUs all have it).

mod common;

use bert_wgpu::gpu::{AttentionKernel, GemmKernel, GpuContext, KernelHarness, LinearVariant};
use bert_wgpu::graph::Act;
use bert_wgpu::kernels::additive_mask;
use bert_wgpu::kernels::attention::attention;
use bert_wgpu::kernels::embeddings::{embeddings, EmbeddingTables};
use bert_wgpu::kernels::layernorm::layer_norm;
use bert_wgpu::kernels::linear::{linear, LinearShape};
use bert_wgpu::DType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ATOL: f32 = 1e-4;
const RTOL: f32 = 1e-3;

/// The f16 harness, or None when no adapter exists and the policy allows it.
fn harness(test: &str) -> Option<KernelHarness> {
    let ctx = match GpuContext::new(true) {
        Ok(ctx) => ctx,
        Err(e) if common::allow_no_gpu() => {
            println!("NOTE: {test} not run: no GPU context ({e}); BERT_WGPU_ALLOW_NO_GPU=1");
            return None;
        }
        Err(e) => panic!("{test}: no GPU context ({e}); install mesa-vulkan-drivers"),
    };
    println!("{test}: adapter {}", ctx.describe());
    Some(
        KernelHarness::with_dtype(ctx, DType::F16)
            .unwrap_or_else(|e| panic!("{test}: compiling f16 kernels: {e}")),
    )
}

use common::f16s;

fn f32s(rng: &mut StdRng, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// Max |got − want|; panics naming the worst element outside the tolerance.
fn compare(what: &str, got: &[f32], want: &[f32], cols: usize) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: output length");
    let mut max_err = 0.0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        assert!(
            g.is_finite() && err <= ATOL + RTOL * w.abs(),
            "{what}: (row, col) ({}, {}) got {g} want {w} (|err| {err:.3e})",
            i / cols,
            i % cols
        );
        max_err = max_err.max(err);
    }
    println!("{what}: max |err| {max_err:.3e}");
    max_err
}

#[test]
fn f16_linear_matches_twin() {
    let Some(mut h) = harness("f16_linear_matches_twin") else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(0xf16);
    // (m, n, k, act, residual, forced kernel)
    let cases = [
        (1, 1, 1, Act::Identity, false, None),
        (7, 33, 129, Act::Gelu, true, None),
        (33, 7, 384, Act::GeluTanh, false, None),
        (129, 384, 64, Act::Gelu, true, Some(GemmKernel::Tiled)),
        (200, 130, 36, Act::Tanh, true, Some(GemmKernel::Tiled)),
        (512, 1, 33, Act::Relu, false, None),
        (7, 33, 388, Act::Gelu, true, Some(GemmKernel::SplitK)),
        (
            33,
            129,
            1536,
            Act::Identity,
            false,
            Some(GemmKernel::SplitK),
        ),
    ];
    let tiles = [LinearVariant::Tiled, LinearVariant::TiledPrefetch];
    for ((m, n, k, act, residual, force), tile) in cases
        .into_iter()
        .flat_map(|c| tiles.map(|t| (c, t)))
        .filter(|&(c, t)| c.5.is_some() || t == LinearVariant::Tiled)
    {
        h.force_gemm(force);
        h.force_tile(Some(tile));
        let s = LinearShape {
            m,
            n,
            k,
            x_row_stride: k,
            act,
        };
        let x = f16s(&mut rng, m * k, -1.0, 1.0);
        let w = f16s(&mut rng, n * k, -0.5, 0.5);
        let b = f32s(&mut rng, n, -0.5, 0.5);
        let r = residual.then(|| f16s(&mut rng, m * n, -1.0, 1.0));
        let mut want = vec![0.0; m * n];
        linear(s, &x, &w, &b, r.as_deref(), &mut want);
        let got = h
            .linear(s, &x, &w, &b, r.as_deref())
            .unwrap_or_else(|e| panic!("f16 linear {s:?}: {e}"));
        compare(
            &format!("f16 linear m={m} n={n} k={k} {act:?} residual={residual} {force:?} {tile:?}"),
            &got,
            &want,
            n,
        );
    }
}

/// The f32-output variant the runner uses for sums that feed a LayerNorm:
/// f16 inputs, f32 arithmetic and an f32 store, so the f32 kernel tolerance
/// (1e-5 + 1e-4·|want|) holds.
#[test]
fn f16_linear_with_f32_output_matches_twin() {
    let Some(mut h) = harness("f16_linear_with_f32_output_matches_twin") else {
        return;
    };
    h.linear_output(Some(DType::F32));
    let mut rng = StdRng::seed_from_u64(0xf32);
    for (m, n, k, force, tile) in [
        (7, 33, 129, None, LinearVariant::Tiled),
        (129, 384, 64, Some(GemmKernel::Tiled), LinearVariant::Tiled),
        (
            129,
            384,
            64,
            Some(GemmKernel::Tiled),
            LinearVariant::TiledPrefetch,
        ),
        (33, 7, 21, None, LinearVariant::Tiled),
    ] {
        h.force_gemm(force);
        h.force_tile(Some(tile));
        let s = LinearShape {
            m,
            n,
            k,
            x_row_stride: k,
            act: Act::Identity,
        };
        let x = f16s(&mut rng, m * k, -1.0, 1.0);
        let w = f16s(&mut rng, n * k, -0.5, 0.5);
        let b = f32s(&mut rng, n, -0.5, 0.5);
        // Residual sums of BERT's outlier size, where f16 output would lose 0.06.
        let r = f16s(&mut rng, m * n, -200.0, 200.0);
        let mut want = vec![0.0; m * n];
        linear(s, &x, &w, &b, Some(&r), &mut want);
        let got = h
            .linear(s, &x, &w, &b, Some(&r))
            .unwrap_or_else(|e| panic!("f16 linear f32-out {s:?}: {e}"));
        let mut max_err = 0.0f32;
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let err = (g - w).abs();
            assert!(
                err <= 1e-5 + 1e-4 * w.abs(),
                "f16 linear f32-out m={m} n={n} k={k}: ({}, {}) got {g} want {w}",
                i / n,
                i % n
            );
            max_err = max_err.max(err);
        }
        println!(
            "f16 linear f32-out m={m} n={n} k={k} {force:?} {tile:?}: max |err| {max_err:.3e}"
        );
    }
}

#[test]
fn f16_attention_matches_twin() {
    let Some(mut h) = harness("f16_attention_matches_twin") else {
        return;
    };
    for kernel in [AttentionKernel::Query, AttentionKernel::Tiled] {
        h.force_attention(Some(kernel));
        let mut rng = StdRng::seed_from_u64(0xa77);
        // (batch, seq, heads, hidden): head sizes 16, 32 (vec4) and 7
        // (scalar: the one-query kernel in both rounds).
        for (batch, seq, heads, hidden) in [
            (1, 1, 2, 32),
            (2, 33, 4, 64),
            (3, 7, 3, 21),
            (1, 129, 2, 32),
            (2, 40, 2, 64),
        ] {
            let tokens = batch * seq;
            let qkv = f16s(&mut rng, tokens * 3 * hidden, -2.0, 2.0);
            // Padding in every sequence but the first, never all of one.
            let mask: Vec<u32> = (0..tokens)
                .map(|t| u32::from(t < seq || t % seq < seq.div_ceil(2)))
                .collect();
            let mask_add = additive_mask(&mask);
            let mut want = vec![0.0; tokens * hidden];
            attention(&qkv, &mask_add, batch, seq, heads, &mut want);
            let got = h
                .attention(&qkv, &mask_add, batch, seq, heads, hidden)
                .unwrap_or_else(|e| panic!("f16 {kernel:?} attention: {e}"));
            compare(
                &format!(
                    "f16 {kernel:?} attention batch={batch} seq={seq} heads={heads} hidden={hidden}"
                ),
                &got,
                &want,
                hidden,
            );
        }
    }
}

#[test]
fn f16_layer_norm_matches_twin() {
    let Some(h) = harness("f16_layer_norm_matches_twin") else {
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
        let gamma = f32s(&mut rng, cols, 0.5, 1.5);
        let beta = f32s(&mut rng, cols, -0.5, 0.5);
        let mut want = vec![0.0; rows * cols];
        layer_norm(&x, r.as_deref(), &gamma, &beta, 1e-12, &mut want);
        let got = h
            .layer_norm(&x, r.as_deref(), &gamma, &beta, 1e-12)
            .unwrap_or_else(|e| panic!("f16 layer_norm: {e}"));
        compare(
            &format!("f16 layer_norm rows={rows} cols={cols} residual={residual}"),
            &got,
            &want,
            cols,
        );
    }
}

#[test]
fn f16_embeddings_match_twin() {
    let Some(h) = harness("f16_embeddings_match_twin") else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(0xe16);
    let (vocab, max_pos, type_vocab) = (50usize, 512usize, 2usize);
    for hidden in [7, 384] {
        let word = f16s(&mut rng, vocab * hidden, -1.0, 1.0);
        let position = f16s(&mut rng, max_pos * hidden, -0.5, 0.5);
        let token_type = f16s(&mut rng, type_vocab * hidden, -0.5, 0.5);
        let gamma = f32s(&mut rng, hidden, 0.8, 1.2);
        let beta = f32s(&mut rng, hidden, -0.2, 0.2);
        let tables = EmbeddingTables {
            word: &word,
            position: &position,
            token_type: &token_type,
            gamma: &gamma,
            beta: &beta,
            eps: 1e-12,
        };
        for (batch, seq) in [(1, 1), (2, 33), (1, 512)] {
            let tokens = batch * seq;
            let ids: Vec<u32> = (0..tokens)
                .map(|_| rng.random_range(0..vocab as u32))
                .collect();
            let types: Vec<u32> = (0..tokens)
                .map(|_| rng.random_range(0..type_vocab as u32))
                .collect();
            let positions: Vec<u32> = (0..tokens)
                .map(|_| rng.random_range(0..max_pos as u32))
                .collect();
            let mut want = vec![0.0; tokens * hidden];
            embeddings(&tables, &ids, &types, &positions, &mut want);
            let got = h
                .embeddings(&tables, &ids, &types, &positions, seq)
                .unwrap_or_else(|e| panic!("f16 embeddings: {e}"));
            compare(
                &format!("f16 embeddings hidden={hidden} batch={batch} seq={seq}"),
                &got,
                &want,
                hidden,
            );
        }
    }
}
