//! GEMM timing over BERT's projection shapes, on a [`KernelHarness`] or
//! the CPU executor's kernel: `bench --gemm`'s table and `tune`'s GEMM
//! candidates both time through here.

use std::time::Instant;

use crate::config::BertConfig;
use crate::error::Result;
use crate::gpu::KernelHarness;
use crate::kernels::act::Act;
use crate::kernels::linear::{linear, LinearShape};
use crate::synth::Rng;

/// One row of `bench --gemm`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GemmResult {
    /// Which BERT projection this shape is.
    pub name: &'static str,
    /// Rows (tokens).
    pub m: usize,
    /// Output features.
    pub n: usize,
    /// Input features.
    pub k: usize,
    /// Time per GEMM, ms.
    pub ms: f64,
    /// 2·m·n·k / time.
    pub gflops: f64,
    /// The kernel that ran (`cpu`, or the GPU pipeline, e.g.
    /// `Linear(Tiled, F32)`).
    pub kernel: String,
}

/// Times BERT's four projections of `cfg` at `tokens` rows on `harness`
/// (whatever GEMM it picks or is forced to), or on the CPU executor's
/// kernel when None.
pub(crate) fn time_projections(
    harness: Option<&KernelHarness>,
    cfg: &BertConfig,
    tokens: usize,
    reps: u32,
) -> Result<Vec<GemmResult>> {
    let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
    let shapes = [
        ("qkv", tokens, 3 * d, d),
        ("attention.output", tokens, d, d),
        ("intermediate", tokens, f, d),
        ("output", tokens, d, f),
    ];
    let mut rng = Rng(7);
    let mut out = Vec::new();
    for (name, m, n, k) in shapes {
        let x: Vec<f32> = (0..m * k).map(|_| rng.next_f32()).collect();
        let w: Vec<f32> = (0..n * k).map(|_| 0.05 * rng.next_f32()).collect();
        let b: Vec<f32> = (0..n).map(|_| rng.next_f32()).collect();
        let s = LinearShape {
            m,
            n,
            k,
            x_row_stride: k,
            act: Act::Identity,
        };
        let secs = match harness {
            Some(h) => h.time_linear(s, &x, &w, &b, reps)?,
            None => {
                let mut y = vec![0.0; m * n];
                linear(s, &x, &w, &b, None, &mut y);
                let mut times: Vec<f64> = (0..reps.max(1))
                    .map(|_| {
                        let t = Instant::now();
                        linear(s, &x, &w, &b, None, &mut y);
                        t.elapsed().as_secs_f64()
                    })
                    .collect();
                times.sort_by(f64::total_cmp);
                times[times.len() / 2]
            }
        };
        out.push(GemmResult {
            name,
            m,
            n,
            k,
            ms: secs * 1e3,
            gflops: 2.0 * (m * n * k) as f64 / secs.max(1e-12) / 1e9,
            kernel: match harness {
                Some(h) => format!("{:?}", h.linear_pipeline(m, n, k, k)),
                None => "cpu".into(),
            },
        });
    }
    Ok(out)
}
