//! The graph runner: weights uploaded once, pipelines built once, activation
//! buffers and bind groups planned once per (sequences, seq) and reused, and
//! a forward that is one command encoder, one submit, one readback.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

use super::context::f32s_from_le;
use super::pipelines::{
    choose_gemm, linear_wg, GemmKernel, Kernel, Pipelines, Preamble, ATTENTION_WG,
};
use super::GpuContext;
use crate::checkpoint::Tensor;
use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::graph::{Graph, Op, TensorId};
use crate::inputs::Encoding;
use crate::kernels;
use crate::weights::Weights;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct LinearParams {
    pub(crate) m: u32,
    pub(crate) n: u32,
    pub(crate) k: u32,
    pub(crate) x_row_stride: u32,
    pub(crate) act: u32,
    pub(crate) has_residual: u32,
    pub(crate) _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct AttnParams {
    pub(crate) batch: u32,
    pub(crate) seq: u32,
    pub(crate) heads: u32,
    pub(crate) head_dim: u32,
    pub(crate) scale: f32,
    pub(crate) _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct LnParams {
    pub(crate) rows: u32,
    pub(crate) cols: u32,
    pub(crate) eps: f32,
    pub(crate) has_residual: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct EmbParams {
    pub(crate) tokens: u32,
    pub(crate) seq: u32,
    pub(crate) hidden: u32,
    pub(crate) eps: f32,
    pub(crate) vocab: u32,
    pub(crate) max_pos: u32,
    pub(crate) type_vocab: u32,
    pub(crate) _pad: u32,
}

/// Weights of one step, resident on the GPU.
enum StepWeights {
    Embeddings {
        word: wgpu::Buffer,
        position: wgpu::Buffer,
        token_type: wgpu::Buffer,
        gamma: wgpu::Buffer,
        beta: wgpu::Buffer,
    },
    Linear {
        weight: wgpu::Buffer,
        bias: wgpu::Buffer,
        n: usize,
    },
    Attention,
    LayerNorm {
        gamma: wgpu::Buffer,
        beta: wgpu::Buffer,
    },
}

#[derive(Clone, Copy)]
enum KernelKind {
    LinearVec4,
    LinearScalar,
    LinearTiled,
    AttentionVec4,
    AttentionScalar,
    LayerNorm,
    Embeddings,
}

/// Everything that depends on the batch shape.
struct Plan {
    ids: wgpu::Buffer,
    types: wgpu::Buffer,
    mask: wgpu::Buffer,
    tensors: Vec<wgpu::Buffer>,
    dispatches: Vec<(KernelKind, wgpu::BindGroup, [u32; 3])>,
    staging: wgpu::Buffer,
    _uniforms: Vec<wgpu::Buffer>,
}

/// Plans by (sequences, seq); each locked while a forward uses it.
type PlanCache = HashMap<(usize, usize), Arc<Mutex<Plan>>>;

/// Counters the tests and the bench read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpuStats {
    /// Forward passes run.
    pub forwards: u64,
    /// Queue submissions.
    pub submits: u64,
    /// Buffer readbacks (map_async of a staging buffer).
    pub readbacks: u64,
    /// Shape plans built (activation buffers + bind groups).
    pub plans_built: u64,
}

/// The WebGPU executor.
pub struct GpuExecutor {
    ctx: GpuContext,
    pipes: Pipelines,
    graph: Graph,
    cfg: BertConfig,
    weights: Vec<StepWeights>,
    dummy: wgpu::Buffer,
    plans: Mutex<PlanCache>,
    forwards: AtomicU64,
    submits: AtomicU64,
    readbacks: AtomicU64,
    plans_built: AtomicU64,
}

/// Most shapes kept planned at once; beyond it the cache is cleared.
const MAX_PLANS: usize = 16;

pub(crate) fn ceil_div(a: usize, b: usize) -> u32 {
    a.div_ceil(b) as u32
}

/// Grid for one-workgroup-per-row kernels, folding rows past 65535 into y.
pub(crate) fn row_grid(rows: usize) -> [u32; 3] {
    let x = rows.clamp(1, 65535);
    [x as u32, ceil_div(rows, x), 1]
}

/// The pipeline and grid of a linear layer: the register-blocked kernel
/// (vec4 or scalar loads) or a tiled one, as [`choose_gemm`] decides.
pub(crate) fn linear_dispatch(
    pipes: &Pipelines,
    choice: GemmKernel,
    m: usize,
    n: usize,
    k: usize,
    stride: usize,
) -> (&Kernel, [u32; 3]) {
    // The tiled kernel loads vec4s only.
    let vec4 = Preamble::for_lengths(&[k, stride]) == Preamble::Vec4;
    let choice = if vec4 { choice } else { GemmKernel::Register };
    match choice {
        GemmKernel::Tiled => (&pipes.linear_tiled, [ceil_div(n, 128), ceil_div(m, 128), 1]),
        GemmKernel::Register => match Preamble::for_lengths(&[k, stride]) {
            Preamble::Vec4 => (&pipes.linear_vec4, linear_grid(m, n)),
            Preamble::Scalar => (&pipes.linear_scalar, linear_grid(m, n)),
        },
    }
}

/// Grid of `linear.wgsl` for an (m, n) output: one 4×4 block per invocation.
pub(crate) fn linear_grid(m: usize, n: usize) -> [u32; 3] {
    [
        ceil_div(n, 4 * linear_wg().0 as usize),
        ceil_div(m, 4 * linear_wg().1 as usize),
        1,
    ]
}

/// Grid of `attention.wgsl`: (query blocks, heads, batch).
pub(crate) fn attention_grid(batch: usize, seq: usize, heads: usize) -> [u32; 3] {
    [
        ceil_div(seq, ATTENTION_WG as usize),
        heads as u32,
        batch as u32,
    ]
}

impl GpuExecutor {
    /// Uploads `weights` for `graph` and compiles the pipelines.
    pub fn new(ctx: GpuContext, cfg: &BertConfig, graph: Graph, weights: &Weights) -> Result<Self> {
        let pipes = Pipelines::new(&ctx)?;
        if cfg.head_dim() > 128 {
            return Err(Error::Unsupported(format!(
                "attention head size {} (the GPU kernel supports up to 128)",
                cfg.head_dim()
            )));
        }
        let upload = |name: &str, data: &[f32]| -> Result<wgpu::Buffer> {
            let bytes = (data.len() * 4) as u64;
            ctx.check_size(name, bytes)?;
            ctx.scoped(&format!("uploading `{name}`"), || {
                ctx.device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(name),
                        contents: bytemuck::cast_slice(data),
                        usage: wgpu::BufferUsages::STORAGE,
                    })
            })
        };
        let param = |name: &str| -> Result<wgpu::Buffer> { upload(name, weights.get(name)?) };
        let mut step_weights = Vec::with_capacity(graph.steps.len());
        for step in &graph.steps {
            step_weights.push(match &step.op {
                Op::Embeddings { .. } => StepWeights::Embeddings {
                    word: param("embeddings.word_embeddings.weight")?,
                    position: param("embeddings.position_embeddings.weight")?,
                    token_type: param("embeddings.token_type_embeddings.weight")?,
                    gamma: param("embeddings.LayerNorm.weight")?,
                    beta: param("embeddings.LayerNorm.bias")?,
                },
                Op::Linear { modules, .. } => {
                    let lw = weights.stacked_linear(modules)?;
                    StepWeights::Linear {
                        weight: upload(&format!("{}.weight", step.module), &lw.weight)?,
                        bias: upload(&format!("{}.bias", step.module), &lw.bias)?,
                        n: lw.out_features,
                    }
                }
                Op::Attention { .. } => StepWeights::Attention,
                Op::LayerNorm { .. } => StepWeights::LayerNorm {
                    gamma: param(&format!("{}.weight", step.module))?,
                    beta: param(&format!("{}.bias", step.module))?,
                },
            });
        }
        let dummy = upload("dummy", &[0.0; 4])?;
        Ok(GpuExecutor {
            ctx,
            pipes,
            graph,
            cfg: cfg.clone(),
            weights: step_weights,
            dummy,
            plans: Mutex::new(HashMap::new()),
            forwards: AtomicU64::new(0),
            submits: AtomicU64::new(0),
            readbacks: AtomicU64::new(0),
            plans_built: AtomicU64::new(0),
        })
    }

    /// Adapter description.
    pub fn adapter_name(&self) -> String {
        self.ctx.describe()
    }

    /// The device context.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Counters since load.
    pub fn stats(&self) -> GpuStats {
        GpuStats {
            forwards: self.forwards.load(Ordering::SeqCst),
            submits: self.submits.load(Ordering::SeqCst),
            readbacks: self.readbacks.load(Ordering::SeqCst),
            plans_built: self.plans_built.load(Ordering::SeqCst),
        }
    }

    fn kernel(&self, k: KernelKind) -> &Kernel {
        match k {
            KernelKind::LinearVec4 => &self.pipes.linear_vec4,
            KernelKind::LinearScalar => &self.pipes.linear_scalar,
            KernelKind::LinearTiled => &self.pipes.linear_tiled,
            KernelKind::AttentionVec4 => &self.pipes.attention_vec4,
            KernelKind::AttentionScalar => &self.pipes.attention_scalar,
            KernelKind::LayerNorm => &self.pipes.layernorm,
            KernelKind::Embeddings => &self.pipes.embeddings,
        }
    }

    fn plan(&self, n_seq: usize, seq: usize) -> Result<Arc<Mutex<Plan>>> {
        let mut plans = self.plans.lock().map_err(|_| Error::Gpu {
            context: "plan cache".into(),
            message: "poisoned lock".into(),
        })?;
        if let Some(p) = plans.get(&(n_seq, seq)) {
            return Ok(p.clone());
        }
        let plan = Arc::new(Mutex::new(self.build_plan(n_seq, seq)?));
        if plans.len() >= MAX_PLANS {
            plans.clear();
        }
        plans.insert((n_seq, seq), plan.clone());
        self.plans_built.fetch_add(1, Ordering::SeqCst);
        Ok(plan)
    }

    fn build_plan(&self, n_seq: usize, seq: usize) -> Result<Plan> {
        let g = &self.graph;
        let dev = &self.ctx.device;
        let tokens = n_seq * seq;
        let storage =
            |label: &str, bytes: u64, extra: wgpu::BufferUsages| -> Result<wgpu::Buffer> {
                self.ctx.check_size(label, bytes)?;
                Ok(dev.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: bytes.max(16).next_multiple_of(16),
                    usage: wgpu::BufferUsages::STORAGE | extra,
                    mapped_at_creation: false,
                }))
            };
        self.ctx
            .scoped("allocating activation buffers", || -> Result<Plan> {
                let input = wgpu::BufferUsages::COPY_DST;
                let ids = storage("input_ids", tokens as u64 * 4, input)?;
                let types = storage("token_type_ids", tokens as u64 * 4, input)?;
                let mask = storage("attention_mask", tokens as u64 * 4, input)?;
                let mut tensors = Vec::with_capacity(g.tensors.len());
                let mut out_bytes = 0u64;
                for (i, t) in g.tensors.iter().enumerate() {
                    let bytes = (g.rows(TensorId(i), n_seq, seq) * t.cols * 4) as u64;
                    let label =
                        format!("activation `{}` ({n_seq} sequences × {seq} tokens)", t.name);
                    tensors.push(storage(&label, bytes, wgpu::BufferUsages::COPY_SRC)?);
                    if g.outputs.iter().any(|(_, o)| o.0 == i) {
                        out_bytes += bytes;
                    }
                }
                let staging = dev.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size: out_bytes.max(16).next_multiple_of(16),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let mut uniforms = Vec::new();
                let mut dispatches = Vec::new();
                for (step, sw) in g.steps.iter().zip(&self.weights) {
                    let (kind, params, buffers, grid): (
                        KernelKind,
                        Vec<u8>,
                        Vec<&wgpu::Buffer>,
                        [u32; 3],
                    ) = match (&step.op, sw) {
                        (
                            Op::Embeddings { out },
                            StepWeights::Embeddings {
                                word,
                                position,
                                token_type,
                                gamma,
                                beta,
                            },
                        ) => {
                            let p = EmbParams {
                                tokens: tokens as u32,
                                seq: seq as u32,
                                hidden: g.hidden as u32,
                                eps: self.cfg.layer_norm_eps,
                                vocab: self.cfg.vocab_size as u32,
                                max_pos: self.cfg.max_position_embeddings as u32,
                                type_vocab: self.cfg.type_vocab_size as u32,
                                _pad: 0,
                            };
                            (
                                KernelKind::Embeddings,
                                bytemuck::bytes_of(&p).to_vec(),
                                vec![
                                    &ids,
                                    &types,
                                    word,
                                    position,
                                    token_type,
                                    gamma,
                                    beta,
                                    &tensors[out.0],
                                ],
                                row_grid(tokens),
                            )
                        }
                        (
                            Op::Linear {
                                x,
                                cls_only,
                                act,
                                residual,
                                out,
                                ..
                            },
                            StepWeights::Linear { weight, bias, n },
                        ) => {
                            let k = g.tensors[x.0].cols;
                            let m = g.rows(*out, n_seq, seq);
                            let stride = if *cls_only { seq * k } else { k };
                            let p = LinearParams {
                                m: m as u32,
                                n: *n as u32,
                                k: k as u32,
                                x_row_stride: stride as u32,
                                act: act.code(),
                                has_residual: u32::from(residual.is_some()),
                                _pad: [0; 2],
                            };
                            let choice = choose_gemm(self.ctx.info.device_type, m, *n, k, stride);
                            let kind = match choice {
                                GemmKernel::Tiled => KernelKind::LinearTiled,
                                GemmKernel::Register => match Preamble::for_lengths(&[k, stride]) {
                                    Preamble::Vec4 => KernelKind::LinearVec4,
                                    Preamble::Scalar => KernelKind::LinearScalar,
                                },
                            };
                            let r = residual.map_or(&self.dummy, |r| &tensors[r.0]);
                            let grid = linear_dispatch(&self.pipes, choice, m, *n, k, stride).1;
                            (
                                kind,
                                bytemuck::bytes_of(&p).to_vec(),
                                vec![&tensors[x.0], weight, bias, r, &tensors[out.0]],
                                grid,
                            )
                        }
                        (Op::Attention { qkv, out, heads }, StepWeights::Attention) => {
                            let d = g.hidden / heads;
                            let p = AttnParams {
                                batch: n_seq as u32,
                                seq: seq as u32,
                                heads: *heads as u32,
                                head_dim: d as u32,
                                scale: 1.0 / (d as f32).sqrt(),
                                _pad: [0; 3],
                            };
                            let kind = match Preamble::for_lengths(&[d]) {
                                Preamble::Vec4 => KernelKind::AttentionVec4,
                                Preamble::Scalar => KernelKind::AttentionScalar,
                            };
                            let grid = attention_grid(n_seq, seq, *heads);
                            (
                                kind,
                                bytemuck::bytes_of(&p).to_vec(),
                                vec![&tensors[qkv.0], &mask, &tensors[out.0]],
                                grid,
                            )
                        }
                        (Op::LayerNorm { x, out, eps }, StepWeights::LayerNorm { gamma, beta }) => {
                            let rows = g.rows(*out, n_seq, seq);
                            let p = LnParams {
                                rows: rows as u32,
                                cols: g.tensors[out.0].cols as u32,
                                eps: *eps,
                                has_residual: 0,
                            };
                            (
                                KernelKind::LayerNorm,
                                bytemuck::bytes_of(&p).to_vec(),
                                vec![&tensors[x.0], &self.dummy, gamma, beta, &tensors[out.0]],
                                row_grid(rows),
                            )
                        }
                        _ => {
                            return Err(Error::Gpu {
                                context: step.module.clone(),
                                message: "internal: step and weights disagree".into(),
                            })
                        }
                    };
                    let ubuf = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(&step.module),
                        contents: &params,
                        usage: wgpu::BufferUsages::UNIFORM,
                    });
                    let mut entries: Vec<wgpu::BindGroupEntry> = buffers
                        .iter()
                        .enumerate()
                        .map(|(i, b)| wgpu::BindGroupEntry {
                            binding: i as u32,
                            resource: b.as_entire_binding(),
                        })
                        .collect();
                    entries.push(wgpu::BindGroupEntry {
                        binding: buffers.len() as u32,
                        resource: ubuf.as_entire_binding(),
                    });
                    let bg = dev.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(&step.module),
                        layout: &self.kernel(kind).layout,
                        entries: &entries,
                    });
                    uniforms.push(ubuf);
                    dispatches.push((kind, bg, grid));
                }
                Ok(Plan {
                    ids,
                    types,
                    mask,
                    tensors,
                    dispatches,
                    staging,
                    _uniforms: uniforms,
                })
            })?
    }

    /// Runs the graph; returns the requested outputs as (rows, cols) tensors.
    pub fn run(&self, enc: &Encoding, wanted: &[&str]) -> Result<Vec<Tensor>> {
        enc.validate(&self.cfg)?;
        let g = &self.graph;
        let (n_seq, seq) = (enc.sequences(), enc.seq);
        let mut outs = Vec::with_capacity(wanted.len());
        for name in wanted {
            let t = g
                .output(name)
                .ok_or_else(|| Error::input(format!("this model has no output `{name}`")))?;
            outs.push(t);
        }
        let plan = self.plan(n_seq, seq)?;
        let plan = plan.lock().map_err(|_| Error::Gpu {
            context: "plan".into(),
            message: "poisoned lock".into(),
        })?;
        let mask: Vec<f32> = kernels::additive_mask(&enc.attention_mask);
        let mut offsets = Vec::with_capacity(outs.len());
        let submission = self.ctx.scoped("recording the forward pass", || {
            let q = &self.ctx.queue;
            q.write_buffer(&plan.ids, 0, bytemuck::cast_slice(&enc.input_ids));
            q.write_buffer(&plan.types, 0, bytemuck::cast_slice(&enc.token_type_ids));
            q.write_buffer(&plan.mask, 0, bytemuck::cast_slice(&mask));
            let mut encoder =
                self.ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("forward"),
                    });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("bert"),
                    timestamp_writes: None,
                });
                for (kind, bg, [x, y, z]) in &plan.dispatches {
                    pass.set_pipeline(&self.kernel(*kind).pipeline);
                    pass.set_bind_group(0, bg, &[]);
                    pass.dispatch_workgroups(*x, *y, *z);
                }
            }
            let mut off = 0u64;
            for t in &outs {
                let bytes = (g.rows(*t, n_seq, seq) * g.tensors[t.0].cols * 4) as u64;
                encoder.copy_buffer_to_buffer(&plan.tensors[t.0], 0, &plan.staging, off, bytes);
                offsets.push((off, bytes));
                off += bytes;
            }
            (q.submit(Some(encoder.finish())), off)
        })?;
        let (index, total) = submission;
        self.submits.fetch_add(1, Ordering::SeqCst);
        let raw =
            self.ctx
                .read_mapped(&plan.staging, total, index, "the forward pass", |view| {
                    offsets
                        .iter()
                        .map(|(off, bytes)| {
                            f32s_from_le(&view[*off as usize..(*off + *bytes) as usize])
                        })
                        .collect::<Vec<_>>()
                })?;
        self.readbacks.fetch_add(1, Ordering::SeqCst);
        let mut result = Vec::with_capacity(outs.len());
        for (t, data) in outs.iter().zip(raw) {
            result.push(Tensor::new(
                vec![g.rows(*t, n_seq, seq), g.tensors[t.0].cols],
                data,
            )?);
        }
        self.forwards.fetch_add(1, Ordering::SeqCst);
        Ok(result)
    }
}

/// One step's GPU time from timestamp queries.
#[derive(Debug, Clone)]
pub struct StepTime {
    /// HF module the step implements.
    pub module: String,
    /// Kernel family: linear, attention, layernorm, embeddings.
    pub kernel: &'static str,
    /// GPU time, ms.
    pub ms: f64,
}

impl KernelKind {
    fn family(self) -> &'static str {
        match self {
            KernelKind::LinearVec4 | KernelKind::LinearScalar | KernelKind::LinearTiled => "linear",
            KernelKind::AttentionVec4 | KernelKind::AttentionScalar => "attention",
            KernelKind::LayerNorm => "layernorm",
            KernelKind::Embeddings => "embeddings",
        }
    }
}

impl GpuExecutor {
    /// Per-step GPU times of one forward, from timestamp queries written
    /// between dispatches (needs `TIMESTAMP_QUERY_INSIDE_PASSES`). A profiling
    /// run reads back the timestamps, so it is separate from [`Self::run`].
    pub fn profile(&self, enc: &Encoding) -> Result<Vec<StepTime>> {
        let needed =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        if !self.ctx.features.contains(needed) {
            return Err(Error::Unsupported(format!(
                "{} has no timestamp queries inside passes",
                self.ctx.describe()
            )));
        }
        enc.validate(&self.cfg)?;
        let plan = self.plan(enc.sequences(), enc.seq)?;
        let plan = plan.lock().map_err(|_| Error::Gpu {
            context: "plan".into(),
            message: "poisoned lock".into(),
        })?;
        let count = plan.dispatches.len() as u32 + 1;
        let bytes = count as u64 * 8;
        let dev = &self.ctx.device;
        let mask = kernels::additive_mask(&enc.attention_mask);
        let (index, readback) = self.ctx.scoped("profiling the forward pass", || {
            let q = &self.ctx.queue;
            q.write_buffer(&plan.ids, 0, bytemuck::cast_slice(&enc.input_ids));
            q.write_buffer(&plan.types, 0, bytemuck::cast_slice(&enc.token_type_ids));
            q.write_buffer(&plan.mask, 0, bytemuck::cast_slice(&mask));
            let set = dev.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profile"),
                ty: wgpu::QueryType::Timestamp,
                count,
            });
            let resolve = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let readback = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("profile"),
            });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("bert profile"),
                    timestamp_writes: None,
                });
                for (i, (kind, bg, [x, y, z])) in plan.dispatches.iter().enumerate() {
                    pass.write_timestamp(&set, i as u32);
                    pass.set_pipeline(&self.kernel(*kind).pipeline);
                    pass.set_bind_group(0, bg, &[]);
                    pass.dispatch_workgroups(*x, *y, *z);
                }
                pass.write_timestamp(&set, count - 1);
            }
            encoder.resolve_query_set(&set, 0..count, &resolve, 0);
            encoder.copy_buffer_to_buffer(&resolve, 0, &readback, 0, bytes);
            (q.submit(Some(encoder.finish())), readback)
        })?;
        let ticks: Vec<u64> =
            self.ctx
                .read_mapped(&readback, bytes, index, "profiling", |view| {
                    view.chunks_exact(8)
                        .map(|c| {
                            u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                        })
                        .collect()
                })?;
        let period_ns = self.ctx.queue.get_timestamp_period() as f64;
        Ok(self
            .graph
            .steps
            .iter()
            .zip(&plan.dispatches)
            .enumerate()
            .map(|(i, (step, (kind, _, _)))| StepTime {
                module: step.module.clone(),
                kernel: kind.family(),
                ms: ticks[i + 1].saturating_sub(ticks[i]) as f64 * period_ns / 1e6,
            })
            .collect())
    }
}
