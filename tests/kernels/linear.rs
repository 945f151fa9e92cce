//! The GEMM (`linear.wgsl`, the tiled, prefetching, split-k and
//! cooperative-matrix variants; `src/kernels/linear.rs` and the CPU
//! executor's packed GEMM): the twins against the naive f64 oracle, each
//! WGSL variant against the twin in f32 and f16 storage, and the coop
//! shader's naga check.

use std::time::Instant;

use bert_wgpu::gpu::{assemble_coop_shader, CoopConfig, GemmKernel, KernelHarness, LinearVariant};
use bert_wgpu::graph::Act;
use bert_wgpu::kernels::linear::{linear, linear_naive, LinearShape};
use bert_wgpu::kernels::linear_packed::{linear_packed, PackedWeight};
use bert_wgpu::DType;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::common::f16s;
use crate::common::gpu;
use crate::shaders::check;
use crate::support::{compare, compare_f16, uniform, ACTS};

// ---- CPU twins against the naive oracle ----

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

// ---- WGSL kernels against the twin, f32 ----

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
    let Some(h) = gpu::harness("linear_matches_twin_on_small_shapes", DType::F32) else {
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
    let Some(h) = gpu::harness("linear_matches_twin_on_large_shapes", DType::F32) else {
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
    let Some(mut h) = gpu::harness("linear_tiled_matches_twin", DType::F32) else {
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
    let Some(mut h) = gpu::harness("linear_splitk_matches_twin", DType::F32) else {
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
    let Some(h) = gpu::harness("linear_matches_twin_with_row_stride", DType::F32) else {
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

// ---- WGSL kernels against the twin, f16 storage ----

#[test]
fn f16_linear_matches_twin() {
    let Some(mut h) = gpu::harness("f16_linear_matches_twin", DType::F16) else {
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
        let b = uniform(&mut rng, n, -0.5, 0.5);
        let r = residual.then(|| f16s(&mut rng, m * n, -1.0, 1.0));
        let mut want = vec![0.0; m * n];
        linear(s, &x, &w, &b, r.as_deref(), &mut want);
        let got = h
            .linear(s, &x, &w, &b, r.as_deref())
            .unwrap_or_else(|e| panic!("f16 linear {s:?}: {e}"));
        compare_f16(
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
    let Some(mut h) = gpu::harness("f16_linear_with_f32_output_matches_twin", DType::F16) else {
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
        let b = uniform(&mut rng, n, -0.5, 0.5);
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

// ---- naga ----

/// The cooperative-matrix GEMM as the host assembles it for NVIDIA-like
/// (16 × 16 fragments, subgroups of 32) and lavapipe-like (8 × 8, 8)
/// adapters, with f16 and f32 output.
#[test]
fn linear_coop_validates_for_each_fragment_size() {
    let mut failures = Vec::new();
    for (frag, subgroup) in [(16, 32), (8, 8), (16, 64)] {
        for out in [DType::F16, DType::F32] {
            let source = assemble_coop_shader(out, CoopConfig { frag, subgroup });
            let label = format!("linear_coop.wgsl (F {frag}, SG {subgroup}, {out} output)");
            if let Err(msg) = check(&label, &source) {
                failures.push(msg);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
