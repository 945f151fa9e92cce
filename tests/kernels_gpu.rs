//! Every WGSL kernel against its CPU twin (`src/kernels/*.rs`) on random,
//! non-symmetric inputs and shapes that are not tile multiples, through
//! `gpu::KernelHarness` (the runner's pipelines, params and grids).
//!
//! Tolerance: |got − want| ≤ 1e-5 + 1e-4·|want| per element. The max error
//! per shape is printed (`cargo test --test kernels_gpu -- --nocapture`).
//!
//! GPU policy: no adapter fails the test, unless BERT_WGPU_ALLOW_NO_GPU=1
//! (and BERT_WGPU_REQUIRE_GPU is not 1), which prints a NOTE and returns.

mod common;

use common::layer_norm_f64;
use std::time::Instant;

use bert_wgpu::gpu::{AttentionKernel, GemmKernel, GpuContext, KernelHarness, LinearVariant};
use bert_wgpu::graph::Act;
use bert_wgpu::kernels::additive_mask;
use bert_wgpu::kernels::attention::attention;
use bert_wgpu::kernels::embeddings::{embeddings, EmbeddingTables};
use bert_wgpu::kernels::layernorm::layer_norm;
use bert_wgpu::kernels::linear::{linear, LinearShape};
use bert_wgpu::Error;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ATOL: f32 = 1e-5;
const RTOL: f32 = 1e-4;

const ACTS: [Act; 6] = [
    Act::Identity,
    Act::Gelu,
    Act::GeluTanh,
    Act::Relu,
    Act::Silu,
    Act::Tanh,
];

fn env_is(name: &str, value: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == value)
}

/// The harness on the best adapter (software allowed), or None when no GPU
/// is available and BERT_WGPU_ALLOW_NO_GPU=1 allows not running the test.
fn harness(test: &str) -> Option<KernelHarness> {
    let ctx = match GpuContext::new(true) {
        Ok(ctx) => ctx,
        Err(e) if env_is("BERT_WGPU_REQUIRE_GPU", "1") => {
            panic!("{test}: no GPU context ({e}) and BERT_WGPU_REQUIRE_GPU=1")
        }
        Err(e) if env_is("BERT_WGPU_ALLOW_NO_GPU", "1") => {
            println!("NOTE: {test} not run: no GPU context ({e}); BERT_WGPU_ALLOW_NO_GPU=1");
            return None;
        }
        Err(e) => panic!(
            "{test}: no GPU context ({e}). Install mesa-vulkan-drivers (lavapipe), or set BERT_WGPU_ALLOW_NO_GPU=1 to not run GPU tests"
        ),
    };
    println!("{test}: adapter {}", ctx.describe());
    Some(KernelHarness::new(ctx).unwrap_or_else(|e| panic!("{test}: compiling kernels: {e}")))
}

fn uniform(rng: &mut StdRng, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// Checks every element against ATOL + RTOL·|want|; panics naming the worst
/// element as (row, col) of a `cols`-wide matrix. Returns the max |error|.
fn compare(what: &str, got: &[f32], want: &[f32], cols: usize) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: output length");
    let at = |i: usize| (i / cols.max(1), i % cols.max(1));
    let mut max_err = (0.0f32, 0usize);
    let mut worst: Option<(f32, usize)> = None;
    let mut bad = 0usize;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.is_finite(),
            "{what}: non-finite {g} at flat index {i} = (row, col) {:?} (want {w})",
            at(i)
        );
        let err = (g - w).abs();
        if err > max_err.0 {
            max_err = (err, i);
        }
        let excess = err - (ATOL + RTOL * w.abs());
        if excess > 0.0 {
            bad += 1;
            if worst.is_none_or(|(e, _)| excess > e) {
                worst = Some((excess, i));
            }
        }
    }
    if let Some((_, i)) = worst {
        panic!(
            "{what}: {bad} of {} values exceed {ATOL} + {RTOL}·|want|; worst at flat index {i} = (row, col) {:?}: got {}, want {}, |err| {:e}; max |err| {:e} at (row, col) {:?}",
            got.len(),
            at(i),
            got[i],
            want[i],
            (got[i] - want[i]).abs(),
            max_err.0,
            at(max_err.1)
        );
    }
    println!("{what}: max |err| {:.3e}", max_err.0);
    max_err.0
}

struct LinearCase {
    s: LinearShape,
    residual: bool,
    /// Elements of x (≥ (m−1)·stride + k).
    x_len: usize,
}

fn run_linear(h: &KernelHarness, rng: &mut StdRng, c: &LinearCase) -> f32 {
    let s = c.s;
    let x = uniform(rng, c.x_len, -1.0, 1.0);
    let w = uniform(rng, s.n * s.k, -0.5, 0.5);
    let b = uniform(rng, s.n, -0.5, 0.5);
    let r = c.residual.then(|| uniform(rng, s.m * s.n, -1.0, 1.0));
    let mut want = vec![0.0; s.m * s.n];
    linear(s, &x, &w, &b, r.as_deref(), &mut want);
    let got = h
        .linear(s, &x, &w, &b, r.as_deref())
        .unwrap_or_else(|e| panic!("linear {s:?}: {e}"));
    let path = if s.k % 4 == 0 && s.x_row_stride % 4 == 0 {
        "vec4"
    } else {
        "scalar"
    };
    let what = format!(
        "linear m={} n={} k={} stride={} {:?} residual={} ({path})",
        s.m, s.n, s.k, s.x_row_stride, s.act, c.residual
    );
    compare(&what, &got, &want, s.n)
}

fn dense(m: usize, n: usize, k: usize, act: Act, residual: bool) -> LinearCase {
    LinearCase {
        s: LinearShape {
            m,
            n,
            k,
            x_row_stride: k,
            act,
        },
        residual,
        x_len: m * k,
    }
}

#[test]
fn linear_matches_twin_on_small_shapes() {
    let Some(h) = harness("linear_matches_twin_on_small_shapes") else {
        return;
    };
    let t = Instant::now();
    let mut rng = StdRng::seed_from_u64(0x11ea7);
    let mut worst = 0.0f32;
    let mut i = 0usize;
    for m in [1, 7, 33, 129] {
        for n in [1, 7, 33, 129] {
            for k in [1, 7, 33, 128, 129] {
                // Each activation with and without residual, cycling.
                let act = ACTS[i % ACTS.len()];
                let residual = (i / ACTS.len()) % 2 == 1;
                i += 1;
                worst = worst.max(run_linear(&h, &mut rng, &dense(m, n, k, act, residual)));
            }
        }
    }
    println!(
        "linear small: {i} shapes, max |err| {worst:.3e}, {:.2} s",
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn linear_matches_twin_on_large_shapes() {
    let Some(h) = harness("linear_matches_twin_on_large_shapes") else {
        return;
    };
    let t = Instant::now();
    let mut rng = StdRng::seed_from_u64(0xb16);
    let mut worst = 0.0f32;
    for c in [
        dense(384, 384, 384, Act::Identity, true),
        dense(512, 37, 512, Act::Gelu, false),
        dense(129, 1536, 384, Act::Gelu, false),
        dense(129, 384, 1536, Act::Identity, true),
        dense(33, 1152, 384, Act::Identity, false),
        dense(7, 512, 512, Act::Relu, true),
    ] {
        worst = worst.max(run_linear(&h, &mut rng, &c));
    }
    println!(
        "linear large: max |err| {worst:.3e}, {:.2} s",
        t.elapsed().as_secs_f64()
    );
}

/// The workgroup-memory tiled GEMMs (what hardware GPUs run: the plain one
/// and the prefetching one), forced on whatever adapter runs the tests,
/// against the same twin: edges in m, n and k (k a multiple of 4, as the
/// host guarantees), both tile sizes, the pooler's row stride, residual and
/// activations.
#[test]
fn linear_tiled_matches_twin() {
    let Some(mut h) = harness("linear_tiled_matches_twin") else {
        return;
    };
    let t = Instant::now();
    let mut rng = StdRng::seed_from_u64(0x7113d);
    let mut worst = 0.0f32;
    h.force_gemm(Some(GemmKernel::Tiled));
    for tile in [LinearVariant::Tiled, LinearVariant::TiledPrefetch] {
        h.force_tile(Some(tile));
        println!("tile kernel {tile:?}:");
        let mut cases = Vec::new();
        for (m, n, k) in [
            (1, 1, 4),
            (7, 33, 12),
            (33, 7, 20),
            (129, 129, 36),
            (130, 65, 128),
            (64, 128, 16),
            (257, 200, 96),
        ] {
            cases.push(dense(m, n, k, Act::Identity, false));
        }
        cases.push(dense(33, 129, 384, Act::Gelu, true));
        cases.push(dense(129, 33, 32, Act::Tanh, false));
        cases.push(dense(7, 384, 384, Act::Silu, true));
        // Pooler: 3 sequences of 5 tokens, only each first row read.
        cases.push(LinearCase {
            s: LinearShape {
                m: 3,
                n: 40,
                k: 32,
                x_row_stride: 5 * 32,
                act: Act::Tanh,
            },
            residual: false,
            x_len: 3 * 5 * 32,
        });
        for c in &cases {
            worst = worst.max(run_linear(&h, &mut rng, c));
        }
    }
    println!(
        "linear tiled: worst max |err| {worst:.3e}, {:.2?}",
        t.elapsed()
    );
}

/// The pooler's case: m sequences, only each [CLS] row read (stride seq·k).
/// Split-k (`BERT_WGPU_GEMM=splitk`): the tiled kernel over k-splits, then
/// `splitk_reduce.wgsl`. Shapes with 1 split (k < 256: the unsplit tiled
/// path), an uneven last split (k = 388: splits of 144, 144, 100), many
/// splits (k = 1536: 12) and tails in m and n.
#[test]
fn linear_splitk_matches_twin() {
    let Some(mut h) = harness("linear_splitk_matches_twin") else {
        return;
    };
    h.force_gemm(Some(GemmKernel::SplitK));
    let mut rng = StdRng::seed_from_u64(0x5b1);
    let mut worst = 0.0f32;
    for tile in [LinearVariant::Tiled, LinearVariant::TiledPrefetch] {
        h.force_tile(Some(tile));
        println!("tile kernel {tile:?}:");
        for (m, n, k, act, residual) in [
            (1, 7, 64, Act::Identity, false),
            (7, 33, 388, Act::Gelu, true),
            (33, 129, 1536, Act::GeluTanh, true),
            (129, 384, 768, Act::Tanh, false),
            (200, 130, 36, Act::Relu, true),
        ] {
            worst = worst.max(run_linear(&h, &mut rng, &dense(m, n, k, act, residual)));
        }
    }
    println!("linear split-k: max |err| {worst:.3e}");
}

#[test]
fn linear_matches_twin_with_row_stride() {
    let Some(h) = harness("linear_matches_twin_with_row_stride") else {
        return;
    };
    let t = Instant::now();
    let mut rng = StdRng::seed_from_u64(0x5a1de);
    let mut worst = 0.0f32;
    let mut cases = Vec::new();
    for (seq, k, n) in [(7, 384, 384), (5, 32, 33), (7, 33, 7), (3, 129, 129)] {
        for (act, residual) in [(Act::Tanh, false), (Act::Gelu, true)] {
            let m = 3;
            let stride = seq * k;
            // The pooler's buffer: all m·seq rows.
            cases.push(LinearCase {
                s: LinearShape {
                    m,
                    n,
                    k,
                    x_row_stride: stride,
                    act,
                },
                residual,
                x_len: m * seq * k,
            });
        }
    }
    // x exactly as long as the contract requires, and k % 4 == 0 with an odd
    // stride (scalar path).
    for (m, n, k, stride) in [(3, 9, 12, 40), (4, 9, 12, 13), (5, 33, 7, 9)] {
        cases.push(LinearCase {
            s: LinearShape {
                m,
                n,
                k,
                x_row_stride: stride,
                act: Act::Silu,
            },
            residual: false,
            x_len: (m - 1) * stride + k,
        });
    }
    for c in &cases {
        worst = worst.max(run_linear(&h, &mut rng, c));
    }
    println!(
        "linear strided: {} shapes, max |err| {worst:.3e}, {:.2} s",
        cases.len(),
        t.elapsed().as_secs_f64()
    );
}

/// Mask kinds for one attention case.
#[derive(Debug, Clone, Copy)]
enum MaskKind {
    /// Every key attended.
    Full,
    /// Sequence b keeps its first seq − b·(seq/4) − b keys (at least 1).
    Padded,
    /// Like Padded, and the last sequence is fully masked.
    PaddedWithEmpty,
}

fn attention_mask(kind: MaskKind, batch: usize, seq: usize) -> Vec<u32> {
    let mut mask = vec![1u32; batch * seq];
    if matches!(kind, MaskKind::Full) {
        return mask;
    }
    for b in 0..batch {
        let drop = (b * (seq / 4) + b).min(seq - 1);
        for s in seq - drop..seq {
            mask[b * seq + s] = 0;
        }
    }
    if matches!(kind, MaskKind::PaddedWithEmpty) {
        let b = batch - 1;
        mask[b * seq..(b + 1) * seq].fill(0);
    }
    mask
}

/// Runs the attention cases on `h` (whichever kernel it picks or is forced
/// to) against the twin; returns the largest error.
fn check_attention(h: &KernelHarness, label: &str) -> f32 {
    let t = Instant::now();
    let mut rng = StdRng::seed_from_u64(0xa77e);
    let mut worst = 0.0f32;
    use MaskKind::*;
    let cases = [
        // (batch, seq, heads, head_dim, mask)
        (1, 1, 2, 8, Full),
        (2, 1, 3, 32, PaddedWithEmpty),
        (2, 7, 3, 32, Padded),
        (3, 7, 2, 6, PaddedWithEmpty),
        (2, 33, 2, 64, Padded),
        (2, 33, 3, 13, PaddedWithEmpty),
        (2, 33, 1, 128, Padded),
        (2, 17, 2, 96, PaddedWithEmpty),
        (1, 129, 2, 32, Full),
        (2, 129, 2, 13, Padded),
        (2, 129, 4, 8, PaddedWithEmpty),
        (1, 384, 2, 64, Full),
        (1, 512, 2, 8, Full),
        (2, 512, 1, 6, Padded),
        (1, 40, 3, 4, Padded),
        (3, 16, 2, 20, Padded),
    ];
    for (batch, seq, heads, d, kind) in cases {
        let hidden = heads * d;
        let tokens = batch * seq;
        let qkv = uniform(&mut rng, tokens * 3 * hidden, -1.0, 1.0);
        let mask = additive_mask(&attention_mask(kind, batch, seq));
        let mut want = vec![0.0; tokens * hidden];
        attention(&qkv, &mask, batch, seq, heads, &mut want);
        let got = h
            .attention(&qkv, &mask, batch, seq, heads, hidden)
            .unwrap_or_else(|e| panic!("{label} attention {batch}x{seq} h{heads} d{d}: {e}"));
        let path = match (label, d % 4 == 0) {
            ("tiled", true) => "tiled",
            (_, true) => "one-query vec4",
            _ => "one-query scalar",
        };
        let what =
            format!("attention batch={batch} seq={seq} heads={heads} d={d} mask={kind:?} ({path})");
        worst = worst.max(compare(&what, &got, &want, hidden));
        if matches!(kind, PaddedWithEmpty) {
            // The fully masked sequence: every query gets the mean of V.
            let b = batch - 1;
            let mut mean = vec![0.0f64; hidden];
            for s in 0..seq {
                let row = (b * seq + s) * 3 * hidden + 2 * hidden;
                for (acc, v) in mean.iter_mut().zip(&qkv[row..row + hidden]) {
                    *acc += *v as f64 / seq as f64;
                }
            }
            let mean: Vec<f32> = mean.iter().map(|v| *v as f32).collect();
            let want_rows: Vec<f32> = (0..seq).flat_map(|_| mean.iter().copied()).collect();
            let rows = &got[b * seq * hidden..(b + 1) * seq * hidden];
            compare(
                &format!("{what}: fully masked sequence vs mean of V"),
                rows,
                &want_rows,
                hidden,
            );
        }
    }
    println!(
        "{label} attention: {} shapes, max |err| {worst:.3e}, {:.2} s",
        cases.len(),
        t.elapsed().as_secs_f64()
    );
    worst
}

#[test]
fn attention_matches_twin() {
    let Some(mut h) = harness("attention_matches_twin") else {
        return;
    };
    h.force_attention(Some(AttentionKernel::Query));
    check_attention(&h, "one-query");
}

/// The workgroup-tiled flash kernel (opt-in until measured on a real GPU):
/// head sizes that are multiples of 4 run it (96 = 24 vec4 columns, which
/// do not divide its 128 invocations; 20 = 5), the others the one-query
/// kernel. Key and query counts off its 16-blocks: 1, 7, 17, 33, 129, 384, 512.
#[test]
fn attention_tiled_matches_twin() {
    let Some(mut h) = harness("attention_tiled_matches_twin") else {
        return;
    };
    h.force_attention(Some(AttentionKernel::Tiled));
    check_attention(&h, "tiled");
}

/// `len` values `offset + j/128`, j uniform in [-128, 128]: with |offset| ≤
/// 100 every partial sum of ≤ 768 of them (and of x + r with r of the same
/// form) is exact in f32, so two correct two-pass LayerNorms agree to
/// rounding of the variance alone, while a one-pass E[x²] − E[x]² variance
/// still loses ~1e-3 relative at offset 100.
fn dyadic(rng: &mut StdRng, len: usize, offset: f32) -> Vec<f32> {
    (0..len)
        .map(|_| offset + rng.random_range(-128i32..=128) as f32 / 128.0)
        .collect()
}

#[test]
fn layer_norm_matches_twin() {
    let Some(h) = harness("layer_norm_matches_twin") else {
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
    let Some(h) = harness("layer_norm_with_offset_matches_f64") else {
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

#[test]
fn embeddings_match_twin() {
    let Some(h) = harness("embeddings_match_twin") else {
        return;
    };
    let t = Instant::now();
    let mut rng = StdRng::seed_from_u64(0xe5b);
    let (vocab, max_pos, type_vocab) = (50usize, 512usize, 2usize);
    let mut worst = 0.0f32;
    let mut shapes = 0;
    for hidden in [7, 32, 384] {
        let word = uniform(&mut rng, vocab * hidden, -1.0, 1.0);
        let position = uniform(&mut rng, max_pos * hidden, -0.5, 0.5);
        let token_type = uniform(&mut rng, type_vocab * hidden, -0.5, 0.5);
        let gamma = uniform(&mut rng, hidden, 0.8, 1.2);
        let beta = uniform(&mut rng, hidden, -0.2, 0.2);
        let tables = EmbeddingTables {
            word: &word,
            position: &position,
            token_type: &token_type,
            gamma: &gamma,
            beta: &beta,
            eps: 1e-12,
        };
        for (batch, seq) in [(1, 1), (3, 7), (2, 33), (1, 512)] {
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
                .unwrap_or_else(|e| panic!("embeddings {batch}x{seq} hidden {hidden}: {e}"));
            let what = format!("embeddings hidden={hidden} batch={batch} seq={seq}");
            worst = worst.max(compare(&what, &got, &want, hidden));
            shapes += 1;
        }
    }
    println!(
        "embeddings: {shapes} shapes, max |err| {worst:.3e}, {:.2} s",
        t.elapsed().as_secs_f64()
    );
}

/// Shape mismatches are input errors, not panics or GPU errors.
#[test]
fn harness_rejects_bad_arguments() {
    let Some(h) = harness("harness_rejects_bad_arguments") else {
        return;
    };
    let is_input = |r: bert_wgpu::Result<Vec<f32>>, what: &str| match r {
        Err(Error::Input(msg)) => println!("{what}: {msg}"),
        other => panic!("{what}: expected an input error, got {other:?}"),
    };
    let s = LinearShape {
        m: 2,
        n: 3,
        k: 4,
        x_row_stride: 4,
        act: Act::Identity,
    };
    let (x, w, b) = (vec![0.5; 8], vec![0.25; 12], vec![0.1; 3]);
    is_input(h.linear(s, &x[..7], &w, &b, None), "linear short x");
    is_input(h.linear(s, &x, &w[..11], &b, None), "linear short w");
    is_input(h.linear(s, &x, &w, &b[..2], None), "linear short b");
    is_input(
        h.linear(s, &x, &w, &b, Some(&[1.0; 5])),
        "linear short residual",
    );
    is_input(
        h.linear(
            LinearShape {
                x_row_stride: 3,
                ..s
            },
            &x,
            &w,
            &b,
            None,
        ),
        "linear stride < k",
    );
    let qkv = vec![0.5; 2 * 3 * 8];
    is_input(
        h.attention(&qkv, &[0.0; 2], 1, 2, 3, 8),
        "attention hidden % heads",
    );
    is_input(
        h.attention(&qkv[1..], &[0.0; 2], 1, 2, 2, 8),
        "attention short qkv",
    );
    is_input(
        h.attention(&qkv, &[0.0; 3], 1, 2, 2, 8),
        "attention long mask",
    );
    is_input(
        h.layer_norm(&[1.0; 7], None, &[1.0; 2], &[0.0; 2], 1e-5),
        "layer_norm ragged",
    );
    is_input(
        h.layer_norm(&[1.0; 4], None, &[1.0; 2], &[0.0; 3], 1e-5),
        "layer_norm beta",
    );
    is_input(
        h.layer_norm(&[1.0; 4], Some(&[1.0; 3]), &[1.0; 2], &[0.0; 2], 1e-5),
        "layer_norm residual",
    );
    let (word, pos, ty, g, bt) = (
        vec![0.5; 10],
        vec![0.25; 8],
        vec![0.1; 4],
        [1.0; 2],
        [0.0; 2],
    );
    let tables = EmbeddingTables {
        word: &word,
        position: &pos,
        token_type: &ty,
        gamma: &g,
        beta: &bt,
        eps: 1e-12,
    };
    let at = [0, 1];
    is_input(
        h.embeddings(&tables, &[5, 0], &[0, 0], &at, 2),
        "embeddings id",
    );
    is_input(
        h.embeddings(&tables, &[4, 0], &[0, 2], &at, 2),
        "embeddings type",
    );
    is_input(
        h.embeddings(&tables, &[0; 5], &[0; 5], &[0, 1, 2, 3, 4], 5),
        "embeddings position >= max_pos",
    );
    is_input(
        h.embeddings(&tables, &[0; 3], &[0; 3], &[0; 3], 2),
        "embeddings ragged",
    );
    is_input(
        h.embeddings(&tables, &[0; 2], &[0; 1], &at, 2),
        "embeddings types",
    );
    is_input(
        h.embeddings(&tables, &[0; 2], &[0; 2], &[0], 2),
        "embeddings positions",
    );
    // And a valid call still works afterwards.
    let y = h.linear(s, &x, &w, &b, None).expect("valid linear");
    assert_eq!(y.len(), 6);
}
