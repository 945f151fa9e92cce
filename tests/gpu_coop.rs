//! The cooperative-matrix (tensor core) GEMM, `linear_coop.wgsl`, for f16
//! storage: against its CPU twin on edge shapes, and a whole f16 forward
//! with `BERT_WGPU_GEMM=coop` against the CPU executor.
//!
//! It needs an adapter with f16 · f16 + f32 cooperative matrices and one
//! subgroup size: NVIDIA (16 × 16), or lavapipe from Mesa 26 (8 × 8), which
//! `scripts/test_mesa26.sh` runs this binary on inside a Debian
//! trixie-backports chroot (CI does). Debian 12's lavapipe has none: there
//! the tests print a NOTE and return, unless `BERT_WGPU_REQUIRE_COOP=1`
//! (set by that script), which makes a missing adapter feature a failure.
//! In a test binary of its own because `BERT_WGPU_GEMM` is process-wide.

mod common;

use bert_wgpu::bench;
use bert_wgpu::gpu::{GemmKernel, GpuContext, KernelHarness, KernelKind, LinearVariant};
use bert_wgpu::graph::Act;
use bert_wgpu::kernels::linear::{linear, LinearShape};
use bert_wgpu::{DType, Device};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// f16 storage: the tolerance of the other f16 kernel tests (the output's
/// own f16 rounding is 4.9e-4 relative).
const ATOL: f32 = 1e-4;
const RTOL: f32 = 1e-3;

fn require_coop() -> bool {
    std::env::var("BERT_WGPU_REQUIRE_COOP").is_ok_and(|v| v == "1")
}

/// A GPU context with cooperative matrices, or None (with a NOTE) when the
/// adapter has none and `BERT_WGPU_REQUIRE_COOP` is not 1.
fn coop_context(test: &str) -> Option<GpuContext> {
    let ctx = common::gpu::context_required_by(test, "BERT_WGPU_REQUIRE_COOP")?;
    match ctx.coop {
        Some(c) => {
            println!("{test}: {} with cooperative matrices {c:?}", ctx.describe());
            Some(ctx)
        }
        None if require_coop() => panic!(
            "{test}: {} has no f16 cooperative matrices (BERT_WGPU_REQUIRE_COOP=1)",
            ctx.describe()
        ),
        None => {
            println!(
                "NOTE: {test} not run: {} has no f16 cooperative matrices (scripts/test_mesa26.sh runs it on Mesa 26 lavapipe)",
                ctx.describe()
            );
            None
        }
    }
}

#[test]
fn coop_linear_matches_twin() {
    let Some(ctx) = coop_context("coop_linear_matches_twin") else {
        return;
    };
    let tile = 4 * ctx.coop.map_or(0, |c| c.frag);
    let mut h = KernelHarness::with_dtype(ctx, DType::F16).unwrap();
    h.force_gemm(Some(GemmKernel::Coop(tile)));
    let mut rng = StdRng::seed_from_u64(0xc00b);
    let mut worst = 0.0f32;
    // (m, n, k, row stride, act, residual): tails in every dimension around
    // the 32- and 64-row tiles and the 16- and 32-deep k slices; the pooler's
    // row stride; BERT-sized k.
    let cases = [
        (1, 1, 4, 4, Act::Identity, false),
        (7, 33, 12, 12, Act::Gelu, true),
        (33, 7, 20, 20, Act::Tanh, false),
        (64, 64, 32, 32, Act::Identity, false),
        (65, 129, 36, 36, Act::Relu, true),
        (129, 65, 128, 128, Act::GeluTanh, false),
        (130, 200, 388, 388, Act::Gelu, true),
        (33, 129, 1536, 1536, Act::Identity, true),
        (3, 40, 32, 5 * 32, Act::Tanh, false),
    ];
    for out in [DType::F16, DType::F32] {
        h.linear_output(Some(out));
        for (m, n, k, stride, act, residual) in cases {
            let s = LinearShape {
                m,
                n,
                k,
                x_row_stride: stride,
                act,
            };
            let x = common::f16s(&mut rng, (m - 1) * stride + k, -1.0, 1.0);
            let w = common::f16s(&mut rng, n * k, -0.5, 0.5);
            let b: Vec<f32> = (0..n).map(|_| rng.random_range(-0.5..0.5)).collect();
            let r = residual.then(|| common::f16s(&mut rng, m * n, -1.0, 1.0));
            let mut want = vec![0.0; m * n];
            linear(s, &x, &w, &b, r.as_deref(), &mut want);
            let got = h
                .linear(s, &x, &w, &b, r.as_deref())
                .unwrap_or_else(|e| panic!("coop linear {s:?}: {e}"));
            let what = format!("coop linear m={m} n={n} k={k} stride={stride} {act:?} residual={residual} out={out}");
            let mut max_err = 0.0f32;
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                let err = (g - w).abs();
                assert!(
                    g.is_finite() && err <= ATOL + RTOL * w.abs(),
                    "{what}: (row, col) ({}, {}) got {g} want {w} (|err| {err:.3e})",
                    i / n,
                    i % n
                );
                max_err = max_err.max(err);
            }
            println!("{what}: max |err| {max_err:.3e}");
            worst = worst.max(max_err);
        }
    }
    println!(
        "coop linear: {} cases × 2 outputs, worst {worst:.3e}",
        cases.len()
    );
}

/// A whole f16 forward with every linear on cooperative matrices, against
/// the CPU executor's f32 (the f16 fixture tolerance, 1e-2 + 1e-2·|want|).
#[test]
fn coop_forward_matches_the_cpu() {
    if coop_context("coop_forward_matches_the_cpu").is_none() {
        return;
    }
    std::env::set_var("BERT_WGPU_GEMM", "coop");
    for preset in ["bert-tiny", "minilm-l6"] {
        let cfg = bench::preset(preset).unwrap();
        let gpu = bench::random_model(&cfg, Device::Gpu, DType::F16).unwrap();
        let cpu = bench::random_model(&cfg, Device::Cpu, DType::F32).unwrap();
        let enc = bench::random_encoding(&cfg, 2, 33);
        common::compare_forwards(&format!("coop f16 {preset}"), &gpu, &cpu, &enc, 1e-2, 1e-2);
        // Every linear dispatch ran the cooperative-matrix kernel.
        match gpu.gpu().unwrap().profile(&enc) {
            Ok(steps) => {
                let linear: Vec<_> = steps.iter().filter(|s| s.kernel() == "linear").collect();
                assert!(!linear.is_empty());
                for s in &linear {
                    assert!(
                        matches!(s.pipeline, KernelKind::Linear(LinearVariant::Coop, _)),
                        "{preset} {}: ran {:?}",
                        s.module,
                        s.pipeline
                    );
                }
                println!(
                    "coop {preset}: {} linear dispatches, all cooperative",
                    linear.len()
                );
            }
            Err(bert_wgpu::Error::Unsupported(e)) => println!("NOTE: no profile: {e}"),
            Err(e) => panic!("profile: {e}"),
        }
    }
}

/// `bert-wgpu tune` in f16 on such an adapter checks the cooperative-matrix
/// GEMM against its CPU twin and times it among the candidates of both GEMM
/// decisions.
#[test]
fn tune_times_the_coop_gemm_in_f16() {
    if coop_context("tune_times_the_coop_gemm_in_f16").is_none() {
        return;
    }
    let cfg = bench::preset("bert-tiny").unwrap();
    let t = bert_wgpu::gpu::tune::measure(
        bert_wgpu::gpu::GpuContext::new(true).unwrap(),
        &cfg,
        "bert-tiny",
        DType::F16,
        2,
        33,
        1,
    )
    .unwrap();
    println!("{t:#?}");
    for decision in ["gemm_large", "gemm_small"] {
        assert!(
            t.times.iter().any(|x| x.decision == decision
                && x.variant == "coop"
                && x.rejected.is_none()
                && x.max_error.is_some_and(|e| e < 1e-2)
                && x.ms.is_some_and(f64::is_finite)),
            "{decision}: {:?}",
            t.times
        );
    }
}
