//! `bert-wgpu bench`: forward-pass timing on either executor, with
//! throughput and achieved GFLOP/s, on a checkpoint or on a randomly
//! initialised model of a known shape (no download needed).

use std::collections::HashMap;
use std::time::Instant;

use crate::checkpoint::Tensor;
use crate::config::{Activation, BertConfig};
use crate::device::{DType, Device};
use crate::error::{Error, Result};
use crate::gpu::timing::time_projections;
use crate::graph::{Graph, Head};
use crate::inputs::Encoding;
use crate::model::Model;
use crate::synth::{gap, Rng};
use crate::weights::Weights;

pub use crate::gpu::timing::GemmResult;
pub use crate::synth::selfcheck_tolerance;

/// Known model shapes for `--config`.
pub fn preset(name: &str) -> Result<BertConfig> {
    let (layers, hidden, heads, inter) = match name {
        "bert-tiny" => (2, 128, 2, 512),
        "minilm-l6" | "all-minilm-l6-v2" => (6, 384, 12, 1536),
        "bert-base" => (12, 768, 12, 3072),
        "bert-large" => (24, 1024, 16, 4096),
        other => {
            return Err(Error::input(format!(
            "unknown --config `{other}` (expected bert-tiny, minilm-l6, bert-base or bert-large)"
        )))
        }
    };
    let json = format!(
        r#"{{"vocab_size": 30522, "hidden_size": {hidden}, "num_hidden_layers": {layers},
            "num_attention_heads": {heads}, "intermediate_size": {inter}, "hidden_act": "gelu",
            "max_position_embeddings": 512, "type_vocab_size": 2, "architectures": ["BertModel"]}}"#
    );
    let cfg = BertConfig::from_json_str(&json)?;
    debug_assert_eq!(cfg.hidden_act, Activation::Gelu);
    Ok(cfg)
}

/// A randomly initialised `BertModel` of shape `cfg` (weights ~ U(-0.05, 0.05),
/// LayerNorm weights near 1), stored as `dtype` on the GPU.
pub fn random_model(cfg: &BertConfig, device: Device, dtype: DType) -> Result<Model> {
    let opts = crate::model::LoadOptions {
        device,
        dtype,
        ..Default::default()
    };
    random_model_with(cfg, &opts)
}

/// [`random_model`] loaded with `opts` (device, storage type, kernel
/// choices, tuning policy).
pub fn random_model_with(cfg: &BertConfig, opts: &crate::model::LoadOptions) -> Result<Model> {
    let graph = Graph::build(cfg, Head::Base, true);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut tensors = HashMap::new();
    for p in &graph.params {
        let n: usize = p.shape.iter().product();
        let is_ln_weight = p.name.contains("LayerNorm.weight");
        let data: Vec<f32> = (0..n)
            .map(|_| {
                let r = rng.next_f32();
                if is_ln_weight {
                    1.0 + 0.1 * r
                } else {
                    0.05 * r
                }
            })
            .collect();
        tensors.insert(p.name.clone(), Tensor::new(p.shape.clone(), data)?);
    }
    let weights = Weights::from_tensors(tensors);
    Model::from_parts(cfg.clone(), graph, weights, None, opts)
}

/// FLOPs of one encoder forward: per layer 2·s·(4d² + 2·d·d_ff) + 4·s²·d,
/// times layers and batch (embeddings, LayerNorm and pooler not counted).
pub fn encoder_flops(cfg: &BertConfig, batch: usize, seq: usize) -> f64 {
    let (s, d, f) = (
        seq as f64,
        cfg.hidden_size as f64,
        cfg.intermediate_size as f64,
    );
    let per_layer = 2.0 * s * (4.0 * d * d + 2.0 * d * f) + 4.0 * s * s * d;
    per_layer * cfg.num_hidden_layers as f64 * batch as f64
}

/// One benchmark's results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    /// Device description.
    pub device: String,
    /// Sequences per forward.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// Timed forwards.
    pub iters: usize,
    /// Median forward time, ms.
    pub median_ms: f64,
    /// Fastest forward, ms.
    pub min_ms: f64,
    /// Slowest forward, ms.
    pub max_ms: f64,
    /// batch · seq / median.
    pub tokens_per_s: f64,
    /// Encoder FLOPs / median.
    pub gflops: f64,
    /// Queue submissions per forward (GPU only).
    pub submits_per_forward: Option<f64>,
    /// Readbacks per forward (GPU only).
    pub readbacks_per_forward: Option<f64>,
    /// Mean host time per forward until its submit: input checks, input
    /// writes, recording the dispatches (GPU only), ms.
    pub record_ms: Option<f64>,
    /// Mean time per forward from submit until the outputs are on the host:
    /// the GPU's work, the map and the conversion to f32 (GPU only), ms.
    pub wait_ms: Option<f64>,
    /// Model load (and weight upload) time, s.
    pub load_s: f64,
    /// Storage type of weights and activations (`f32`, `f16`).
    pub dtype: String,
    /// Bytes of weights uploaded to the GPU (GPU only).
    pub weight_bytes: Option<u64>,
    /// Weight upload rate, GB/s: conversion to the storage type and the
    /// copy into GPU buffers, not reading the checkpoint (GPU only).
    pub upload_gb_per_s: Option<f64>,
    /// GPU buffers held after the timed forwards: weights plus this shape's
    /// activations (GPU only; what this executor allocated, not the driver's
    /// own overhead).
    pub gpu_buffer_bytes: Option<u64>,
    /// Largest |hidden state − the f32 GPU executor's| on the bench input,
    /// when `dtype` is not f32 (filled by [`compare_dtypes`]).
    pub max_abs_diff_vs_f32: Option<f64>,
}

/// A (batch, seq) input of random in-vocabulary ids, all attended.
pub fn random_encoding(cfg: &BertConfig, batch: usize, seq: usize) -> Encoding {
    let mut rng = Rng(42);
    let span = cfg.vocab_size.saturating_sub(1) as f32;
    let ids: Vec<u32> = (0..batch * seq)
        .map(|_| ((rng.next_f32() + 1.0) * 0.5 * span) as u32)
        .collect();
    Encoding {
        attention_mask: vec![1; ids.len()],
        token_type_ids: vec![0; ids.len()],
        input_ids: ids,
        batch,
        choices: None,
        seq,
    }
}

/// The bench input: (batch, seq) ids starting with [CLS] (101), the rest
/// random ids from 1000 up, all attended.
fn bench_encoding(cfg: &BertConfig, batch: usize, seq: usize) -> Encoding {
    let mut rng = Rng(42);
    let ids: Vec<u32> = (0..batch * seq)
        .map(|i| {
            if i % seq == 0 {
                101
            } else {
                1000 + ((rng.next_f32() + 1.0) * 0.5 * (cfg.vocab_size.saturating_sub(1001)) as f32)
                    as u32
            }
        })
        .collect();
    Encoding {
        attention_mask: vec![1; ids.len()],
        token_type_ids: vec![0; ids.len()],
        input_ids: ids,
        batch,
        choices: None,
        seq,
    }
}

/// Times `iters` forwards after `warmup` untimed ones.
pub fn run(
    model: &Model,
    load_s: f64,
    batch: usize,
    seq: usize,
    warmup: usize,
    iters: usize,
) -> Result<BenchResult> {
    let cfg = model.config();
    if seq == 0 || seq > cfg.max_tokens() || batch == 0 || iters == 0 {
        return Err(Error::input(format!(
            "bench needs batch ≥ 1, iters ≥ 1 and 1 ≤ seq ≤ {}",
            cfg.max_tokens()
        )));
    }
    let enc = bench_encoding(cfg, batch, seq);
    for _ in 0..warmup {
        model.forward(&enc)?;
    }
    let before = model.gpu().map(|g| g.stats());
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        model.forward(&enc)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let after = model.gpu().map(|g| g.stats());
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let per = |f: fn(&crate::gpu::GpuStats) -> u64| match (&before, &after) {
        (Some(b), Some(a)) => Some((f(a) - f(b)) as f64 / iters as f64),
        _ => None,
    };
    Ok(BenchResult {
        device: model.device_name(),
        batch,
        seq,
        iters,
        median_ms: median,
        min_ms: times[0],
        max_ms: times[times.len() - 1],
        tokens_per_s: (batch * seq) as f64 / (median / 1e3),
        gflops: encoder_flops(cfg, batch, seq) / (median / 1e3) / 1e9,
        submits_per_forward: per(|s| s.submits),
        readbacks_per_forward: per(|s| s.readbacks),
        record_ms: per(|s| s.record_ns).map(|ns| ns / 1e6),
        wait_ms: per(|s| s.wait_ns).map(|ns| ns / 1e6),
        load_s,
        dtype: model.dtype().to_string(),
        weight_bytes: model.gpu().map(|g| g.load_stats().bytes),
        upload_gb_per_s: model.gpu().map(|g| {
            let l = g.load_stats();
            l.bytes as f64 / l.seconds.max(1e-9) / 1e9
        }),
        gpu_buffer_bytes: model.gpu().map(|g| g.allocated_bytes()),
        max_abs_diff_vs_f32: None,
    })
}

/// Largest |a − b| over the `last_hidden_state` of two models (the same
/// weights in different storage types) on the bench's (batch, seq) input.
pub fn compare_dtypes(a: &Model, b: &Model, batch: usize, seq: usize) -> Result<f64> {
    let enc = bench_encoding(a.config(), batch, seq);
    let ha = a.forward(&enc)?.last_hidden_state;
    let hb = b.forward(&enc)?.last_hidden_state;
    match (ha, hb) {
        (Some(x), Some(y)) if x.shape == y.shape => Ok(x
            .data
            .iter()
            .zip(&y.data)
            .map(|(p, q)| (p - q).abs() as f64)
            .fold(0.0, f64::max)),
        _ => Err(Error::input(
            "compare_dtypes: the models did not both return hidden states of one shape",
        )),
    }
}

/// The GEMM kernel alone over BERT's four projection shapes for `tokens`
/// rows, with `dtype` storage: the roofline reference on that device.
pub fn gemm_table(
    cfg: &BertConfig,
    tokens: usize,
    device: Device,
    dtype: DType,
    reps: u32,
) -> Result<Vec<GemmResult>> {
    let harness = match device {
        Device::Cpu if dtype == DType::F16 => {
            return Err(Error::Unsupported(
                "f16 GEMM on the CPU executor (use --device gpu)".into(),
            ))
        }
        Device::Cpu => None,
        Device::Gpu => Some(crate::gpu::KernelHarness::with_dtype(
            crate::gpu::GpuContext::new(true)?,
            dtype,
        )?),
        Device::Auto => crate::gpu::GpuContext::new(false)
            .ok()
            .map(|ctx| crate::gpu::KernelHarness::with_dtype(ctx, dtype))
            .transpose()?,
    };
    time_projections(harness.as_ref(), cfg, tokens, reps)
}

/// Runs the same random model of shape `cfg` on the CPU (f32) and on
/// `gpu_device` with storage type `dtype`, and returns the largest
/// |gpu − cpu| and the largest excess over [`selfcheck_tolerance`]
/// (positive means a mismatch), over pooled outputs and hidden states (for
/// f16, of attended positions only: padding rows drift further and nothing
/// reads them).
pub fn selfcheck(
    cfg: &BertConfig,
    gpu_device: Device,
    dtype: DType,
    batch: usize,
    seq: usize,
) -> Result<(f32, f32)> {
    let (atol, rtol) = selfcheck_tolerance(dtype);
    let cpu = random_model(cfg, Device::Cpu, DType::F32)?;
    let gpu = random_model(cfg, gpu_device, dtype)?;
    let mut enc = random_encoding(cfg, batch, seq);
    // Pad the last sequence to half length so masking is exercised too.
    if batch > 1 {
        for s in seq / 2..seq {
            enc.attention_mask[(batch - 1) * seq + s] = 0;
        }
    }
    let (a, b) = (cpu.forward(&enc)?, gpu.forward(&enc)?);
    let mut max_abs = 0.0f32;
    let mut max_excess = f32::NEG_INFINITY;
    let hidden = cfg.hidden_size;
    for (x, y, rows_masked) in [
        (
            &a.last_hidden_state,
            &b.last_hidden_state,
            dtype != DType::F32,
        ),
        (&a.pooler_output, &b.pooler_output, false),
    ] {
        if let (Some(x), Some(y)) = (x, y) {
            for (i, (c, g)) in x.data.iter().zip(&y.data).enumerate() {
                if rows_masked && enc.attention_mask.get(i / hidden) == Some(&0) {
                    continue;
                }
                let d = gap(*g, *c);
                max_abs = max_abs.max(d);
                max_excess = max_excess.max(d - (atol + rtol * c.abs()));
            }
        }
    }
    Ok((max_abs, max_excess))
}
