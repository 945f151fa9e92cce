//! CPU-only checks of the kernel twins (`src/kernels/*.rs`), which the GPU
//! kernels and the CPU executor are held to: the blocked GEMM against the
//! naive f64 oracle, activation spot values computed independently, the
//! attention mask edge cases, and LayerNorm against f64 with a large offset.
//!
//! Tolerance: |got − want| ≤ 1e-5 + 1e-4·|want| unless a test says why not.

mod common;

use bert_wgpu::graph::Act;
use bert_wgpu::kernels::act::{apply, TANH_CLAMP};
use bert_wgpu::kernels::additive_mask;
use bert_wgpu::kernels::attention::attention;
use bert_wgpu::kernels::embeddings::{embeddings, EmbeddingTables};
use bert_wgpu::kernels::layernorm::layer_norm;
use bert_wgpu::kernels::linear::{linear, linear_naive, LinearShape};
use bert_wgpu::kernels::linear_packed::{linear_packed, PackedWeight};
use common::layer_norm_f64;
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

fn uniform(rng: &mut StdRng, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// Checks every element against ATOL + RTOL·|want| + `extra`; panics naming
/// the worst element as (row, col) of a `cols`-wide matrix. Returns the max
/// |error|.
fn compare_with(what: &str, got: &[f32], want: &[f32], cols: usize, extra: f32) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: output length");
    let at = |i: usize| (i / cols.max(1), i % cols.max(1));
    let mut max_err = 0.0f32;
    let mut worst: Option<(f32, usize)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.is_finite(),
            "{what}: non-finite {g} at flat index {i} = (row, col) {:?}",
            at(i)
        );
        let err = (g - w).abs();
        max_err = max_err.max(err);
        let excess = err - (ATOL + RTOL * w.abs() + extra);
        if excess > 0.0 && worst.is_none_or(|(e, _)| excess > e) {
            worst = Some((excess, i));
        }
    }
    if let Some((_, i)) = worst {
        panic!(
            "{what}: worst at flat index {i} = (row, col) {:?}: got {}, want {}, |err| {:e} > {ATOL} + {RTOL}·|want| + {extra:e}; max |err| {max_err:e}",
            at(i),
            got[i],
            want[i],
            (got[i] - want[i]).abs()
        );
    }
    println!("{what}: max |err| {max_err:.3e}");
    max_err
}

fn compare(what: &str, got: &[f32], want: &[f32], cols: usize) -> f32 {
    compare_with(what, got, want, cols, 0.0)
}

type LinearFn<'a> = &'a dyn Fn(LinearShape, &[f32], &[f32], &[f32], Option<&[f32]>, &mut [f32]);

/// `f` against the naive oracle on `shapes` (m, n, k, x_row_stride), with
/// and without residual, cycling through every activation. `y` starts as
/// NaN so an element the kernel does not write fails.
fn check_linear(tag: &str, seed: u64, shapes: &[(usize, usize, usize, usize)], f: LinearFn) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut i = 0usize;
    for &(m, n, k, stride) in shapes {
        for residual in [false, true] {
            let act = ACTS[i % ACTS.len()];
            i += 1;
            let s = LinearShape {
                m,
                n,
                k,
                x_row_stride: stride,
                act,
            };
            let x = uniform(&mut rng, (m - 1) * stride + k, -1.0, 1.0);
            let w = uniform(&mut rng, n * k, -0.5, 0.5);
            let b = uniform(&mut rng, n, -0.5, 0.5);
            let r = residual.then(|| uniform(&mut rng, m * n, -1.0, 1.0));
            let mut got = vec![f32::NAN; m * n];
            let mut want = vec![0.0; m * n];
            f(s, &x, &w, &b, r.as_deref(), &mut got);
            linear_naive(s, &x, &w, &b, r.as_deref(), &mut want);
            compare(
                &format!("{tag} m={m} n={n} k={k} stride={stride} {act:?} residual={residual}"),
                &got,
                &want,
                n,
            );
        }
    }
    assert!(
        i >= ACTS.len() * 2,
        "every activation with and without residual"
    );
}

#[test]
fn linear_matches_naive_oracle() {
    // The last ones are large enough for the parallel GEMM path (m·n·k ≥ 2^18).
    let shapes = [
        (1, 1, 1, 1),
        (7, 33, 129, 129),
        (33, 7, 128, 128),
        (129, 129, 33, 33),
        (3, 384, 384, 7 * 384),
        (3, 33, 33, 5 * 33),
        (5, 33, 7, 9),
        (4, 9, 12, 13),
        (65, 96, 64, 64),
        (129, 130, 131, 131),
        (200, 300, 400, 400),
        (37, 1536, 384, 384),
    ];
    check_linear("linear", 0x0c0ffee, &shapes, &|s, x, w, b, r, y| {
        linear(s, x, w, b, r, y)
    });
}

/// The CPU executor's packed GEMM against the naive oracle: tile edges in
/// m (6-row tiles, 48-row blocks) and n (16-column panels), several k slices
/// (256 long), row strides, products small enough for the unpacked loop.
#[test]
fn packed_linear_matches_naive_oracle() {
    let shapes = [
        (1, 1, 1, 1),
        (7, 33, 129, 129),
        (33, 7, 384, 384),
        (129, 129, 33, 33),
        (3, 384, 384, 7 * 384),
        (384, 17, 512, 512),
        (49, 1536, 384, 384),
        (512, 384, 1536, 1536),
        (97, 48, 257, 300),
        (6, 16, 256, 256),
    ];
    check_linear("packed", 0x9ac4ed, &shapes, &|s, x, w, b, r, y| {
        linear_packed(s, x, &PackedWeight::new(w, s.n, s.k), b, r, y)
    });
}

/// Activations against f64 formulas written out here and published values.
#[test]
fn activation_spot_values() {
    let erf_gelu = |x: f64| 0.5 * x * (1.0 + libm::erf(x / 2f64.sqrt()));
    let tanh_gelu = |x: f64| {
        0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
    };
    let silu = |x: f64| x / (1.0 + (-x).exp());
    // Published values (scipy / torch, f64): Φ(1) = 0.8413447460685429.
    let close = |got: f32, want: f64, what: &str| {
        let err = (got as f64 - want).abs();
        assert!(
            err <= 1e-6 + 1e-5 * want.abs(),
            "{what}: got {got}, want {want} (|err| {err:e})"
        );
    };
    close(apply(Act::Gelu, 1.0), 0.841_344_746_068_542_9, "gelu(1)");
    close(apply(Act::Gelu, -3.0), -0.004_049_694_095_7, "gelu(-3)");
    close(
        apply(Act::GeluTanh, 1.0),
        0.841_191_990_607_477_2,
        "gelu_tanh(1)",
    );
    close(
        apply(Act::Gelu, 1.0),
        erf_gelu(1.0),
        "gelu(1) vs erf formula",
    );
    close(
        apply(Act::Gelu, -3.0),
        erf_gelu(-3.0),
        "gelu(-3) vs erf formula",
    );
    close(
        apply(Act::GeluTanh, 1.0),
        tanh_gelu(1.0),
        "gelu_tanh(1) vs formula",
    );
    let g = apply(Act::Gelu, -20.0);
    assert!(g <= 0.0 && g > -1e-30, "gelu(-20) = {g}");
    assert_eq!(apply(Act::Relu, -0.5), 0.0);
    assert_eq!(apply(Act::Relu, 0.75), 0.75);
    assert_eq!(apply(Act::Identity, -0.3), -0.3);
    let s = apply(Act::Silu, -100.0);
    assert!(s.is_finite() && s <= 0.0 && s > -1e-30, "silu(-100) = {s}");
    assert!(apply(Act::Silu, 100.0) == 100.0, "silu(100)");
    assert_eq!(apply(Act::Tanh, 1e30), 1.0, "tanh clamp");
    assert_eq!(apply(Act::Tanh, -1e30), -1.0, "tanh clamp");
    assert_eq!(apply(Act::Tanh, TANH_CLAMP), 1.0, "tanh(clamp) is 1 in f32");
    for act in [Act::Gelu, Act::GeluTanh, Act::Silu, Act::Tanh] {
        for x in [f32::MAX, f32::MIN, 1e30, -1e30, 88.0, -88.0, 1e-30, -1e-30] {
            let y = apply(act, x);
            assert!(!y.is_nan(), "{act:?}({x}) is NaN");
        }
    }
    // A dense grid against the f64 formulas.
    let mut worst = [0.0f64; 4];
    for i in -2000..=2000 {
        let x = i as f32 * 0.005 + 0.001;
        let xd = x as f64;
        let cases = [
            (Act::Gelu, erf_gelu(xd)),
            (Act::GeluTanh, tanh_gelu(xd)),
            (Act::Silu, silu(xd)),
            (Act::Tanh, xd.tanh()),
        ];
        for (j, (act, want)) in cases.into_iter().enumerate() {
            let got = apply(act, x) as f64;
            let err = (got - want).abs();
            worst[j] = worst[j].max(err);
            assert!(
                err <= ATOL as f64 + RTOL as f64 * want.abs(),
                "{act:?}({x}): got {got}, f64 formula {want}"
            );
        }
    }
    println!("activations on [-10, 10]: max |err| gelu {:.2e}, gelu_tanh {:.2e}, silu {:.2e}, tanh {:.2e}", worst[0], worst[1], worst[2], worst[3]);
}

#[test]
fn additive_mask_values() {
    assert_eq!(additive_mask(&[1, 0, 1]), vec![0.0, f32::MIN, 0.0]);
}

/// Naive f64 attention with the twin's contract.
fn attention_f64(
    qkv: &[f32],
    mask: &[f32],
    batch: usize,
    seq: usize,
    heads: usize,
    hidden: usize,
) -> Vec<f32> {
    let d = hidden / heads;
    let scale = 1.0 / (d as f64).sqrt();
    let at = |b: usize, s: usize, part: usize, h: usize, t: usize| {
        qkv[(b * seq + s) * 3 * hidden + part * hidden + h * d + t] as f64
    };
    let mut out = vec![0.0f32; batch * seq * hidden];
    for b in 0..batch {
        for h in 0..heads {
            for i in 0..seq {
                let scores: Vec<f64> = (0..seq)
                    .map(|j| {
                        let dot: f64 = (0..d).map(|t| at(b, i, 0, h, t) * at(b, j, 1, h, t)).sum();
                        dot * scale + mask[b * seq + j] as f64
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = w.iter().sum();
                for t in 0..d {
                    let v: f64 = (0..seq).map(|j| w[j] * at(b, j, 2, h, t)).sum();
                    out[(b * seq + i) * hidden + h * d + t] = (v / sum) as f32;
                }
            }
        }
    }
    out
}

#[test]
fn attention_matches_f64_and_fully_masked_rows_average_v() {
    let mut rng = StdRng::seed_from_u64(0xa7);
    for (batch, seq, heads, d) in [(1, 1, 1, 8), (2, 7, 3, 6), (3, 33, 2, 13), (2, 64, 2, 32)] {
        let hidden = heads * d;
        let tokens = batch * seq;
        let qkv = uniform(&mut rng, tokens * 3 * hidden, -1.0, 1.0);
        // Sequence 0: all attended; 1: trailing padding; last: fully masked.
        let mut m = vec![1u32; tokens];
        if batch > 1 {
            for s in seq / 2 + 1..seq {
                m[seq + s] = 0;
            }
            m[(batch - 1) * seq..].fill(0);
        }
        let mask = additive_mask(&m);
        let mut got = vec![0.0; tokens * hidden];
        attention(&qkv, &mask, batch, seq, heads, &mut got);
        let what = format!("attention batch={batch} seq={seq} heads={heads} d={d}");
        compare(
            &what,
            &got,
            &attention_f64(&qkv, &mask, batch, seq, heads, hidden),
            hidden,
        );
        if batch > 1 {
            let b = batch - 1;
            let mut want = Vec::with_capacity(seq * hidden);
            for _ in 0..seq {
                for c in 0..hidden {
                    let mean: f64 = (0..seq)
                        .map(|s| qkv[(b * seq + s) * 3 * hidden + 2 * hidden + c] as f64)
                        .sum::<f64>()
                        / seq as f64;
                    want.push(mean as f32);
                }
            }
            compare(
                &format!("{what}: fully masked sequence vs mean of V"),
                &got[b * seq * hidden..],
                &want,
                hidden,
            );
        }
    }
}

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
            let dyadic = |rng: &mut StdRng, offset: f32| -> Vec<f32> {
                (0..rows * cols)
                    .map(|_| offset + rng.random_range(-128i32..=128) as f32 / 128.0)
                    .collect()
            };
            let x = dyadic(&mut rng, 100.0);
            let r = residual.then(|| dyadic(&mut rng, 0.0));
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

#[test]
fn embeddings_match_f64() {
    let mut rng = StdRng::seed_from_u64(0xeb);
    let (vocab, max_pos, type_vocab, hidden) = (50usize, 64usize, 2usize, 33usize);
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
    let (batch, seq) = (3, 17);
    let ids: Vec<u32> = (0..batch * seq)
        .map(|_| rng.random_range(0..vocab as u32))
        .collect();
    let types: Vec<u32> = (0..batch * seq)
        .map(|_| rng.random_range(0..type_vocab as u32))
        .collect();
    // Any row of the table, in any order (RoBERTa's come from the ids).
    let positions: Vec<u32> = (0..batch * seq)
        .map(|_| rng.random_range(0..max_pos as u32))
        .collect();
    let mut got = vec![0.0; batch * seq * hidden];
    embeddings(&tables, &ids, &types, &positions, &mut got);
    let mut sums = Vec::with_capacity(got.len());
    for (t, (&id, &ty)) in ids.iter().zip(&types).enumerate() {
        let (id, ty, pos) = (id as usize, ty as usize, positions[t] as usize);
        for c in 0..hidden {
            sums.push(
                word[id * hidden + c] + token_type[ty * hidden + c] + position[pos * hidden + c],
            );
        }
    }
    let (want, _) = layer_norm_f64(&sums, None, &gamma, &beta, 1e-12);
    compare("embeddings batch=3 seq=17 hidden=33", &got, &want, hidden);
}
