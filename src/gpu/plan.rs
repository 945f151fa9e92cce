//! Shape plans: for one (sequences, seq), the activation buffers, uniform
//! parameters, bind groups and dispatch grids of every graph step, built
//! once and reused by every forward of that shape. Also the parameter
//! structs and grids the kernel harness shares.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

use super::choice::{
    choose_attention, choose_gemm, splitk_splits, tile_variant, AttentionKernel, GemmKernel,
    ATTENTION_TILED_BQ,
};
use super::convert::stored_bytes;
pub(crate) use super::pipelines::KernelKind;
use super::pipelines::{linear_wg, LinearVariant, Preamble, ATTENTION_WG, SPLITK_REDUCE_WG};
use super::runner::GpuExecutor;
use crate::error::{Error, Result};
use crate::graph::{Graph, Op, TensorId};
use crate::model::DType;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct LinearParams {
    pub(crate) m: u32,
    pub(crate) n: u32,
    pub(crate) k: u32,
    pub(crate) x_row_stride: u32,
    pub(crate) act: u32,
    pub(crate) has_residual: u32,
    /// Split-k: k per split (a multiple of 16; ≥ k when not split).
    pub(crate) k_chunk: u32,
    /// Split-k: number of k splits (1 = not split).
    pub(crate) splits: u32,
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
pub(super) enum StepWeights {
    Embeddings {
        /// One zero row stands in for a missing token-type table.
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

/// Storage type of every graph tensor: `storage`, except the inputs of
/// LayerNorm steps (the residual sums), which stay f32. BERT's residual
/// stream has outlier features (pre-LayerNorm values near 200 in
/// all-MiniLM-L6-v2), where f16's spacing of 0.125 would cost ~0.05 in
/// the normalised hidden state; in f32 they lose nothing.
pub(super) fn tensor_dtypes(g: &Graph, storage: DType) -> Vec<DType> {
    let mut out = vec![storage; g.tensors.len()];
    for step in &g.steps {
        if let Op::LayerNorm { x, .. } = step.op {
            out[x.0] = DType::F32;
        }
    }
    out
}

/// One recorded dispatch of a plan.
pub(super) struct Dispatch {
    /// Index of the graph step it belongs to.
    pub(super) step: usize,
    pub(super) kind: KernelKind,
    pub(super) pipeline: wgpu::ComputePipeline,
    pub(super) bind_group: wgpu::BindGroup,
    pub(super) grid: [u32; 3],
}

/// A binding of one launch: a buffer, or the step's uniform parameters.
enum Bind<'a> {
    Buf(&'a wgpu::Buffer),
    Params,
}

/// One dispatch of a step, before its bind group exists.
struct Launch<'a> {
    kind: KernelKind,
    binds: Vec<Bind<'a>>,
    grid: [u32; 3],
}

/// Everything that depends on the batch shape.
pub(super) struct Plan {
    pub(super) ids: wgpu::Buffer,
    pub(super) types: wgpu::Buffer,
    pub(super) positions: wgpu::Buffer,
    pub(super) mask: wgpu::Buffer,
    pub(super) tensors: Vec<wgpu::Buffer>,
    /// (graph step, pipeline, bind group, grid) in order; a split-k linear
    /// step has two.
    pub(super) dispatches: Vec<Dispatch>,
    pub(super) staging: wgpu::Buffer,
    pub(super) _uniforms: Vec<wgpu::Buffer>,
    pub(super) _scratch: wgpu::Buffer,
    /// Bytes of every buffer above.
    pub(super) bytes: u64,
}

/// Plans by (sequences, seq); each locked while a forward uses it.
pub(super) type PlanCache = HashMap<(usize, usize), Arc<Mutex<Plan>>>;

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

/// How a linear layer runs: one dispatch, or for split-k two (the tiled
/// kernel writing partial sums, then `splitk_reduce.wgsl`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinearLaunch {
    /// The GEMM pipeline and its grid.
    pub(crate) kind: KernelKind,
    pub(crate) grid: [u32; 3],
    /// k per split and the number of splits (`LinearParams` fields).
    pub(crate) k_chunk: usize,
    pub(crate) splits: usize,
    /// The reduce pass, when split.
    pub(crate) reduce: Option<(KernelKind, [u32; 3])>,
}

impl LinearLaunch {
    /// f32 elements of the partial-sum buffer it needs (0 when not split).
    pub(crate) fn partial_elems(&self, m: usize, n: usize) -> usize {
        if self.reduce.is_some() {
            self.splits * m * n
        } else {
            0
        }
    }
}

/// The launch of a linear layer with output type `out`: the register-blocked
/// kernel (vec4 or scalar loads), the tiled one, or tiled + split-k, as
/// [`choose_gemm`] decided (`choice`; the tiled kernel needs vec4 loads).
pub(crate) fn linear_launch(
    choice: GemmKernel,
    tile: LinearVariant,
    out: DType,
    m: usize,
    n: usize,
    k: usize,
    stride: usize,
) -> LinearLaunch {
    let vec4 = Preamble::for_lengths(&[k, stride]) == Preamble::Vec4;
    let unsplit = |kind, grid| LinearLaunch {
        kind,
        grid,
        k_chunk: k.next_multiple_of(16).max(16),
        splits: 1,
        reduce: None,
    };
    let tiles = |z| [ceil_div(n, 128), ceil_div(m, 128), z];
    let tiled = KernelKind::Linear(tile, out);
    match (choice, vec4) {
        (GemmKernel::SplitK, true) => {
            let (splits, k_chunk) = splitk_splits(m, n, k);
            if splits <= 1 {
                return unsplit(tiled, tiles(1));
            }
            LinearLaunch {
                kind: tiled,
                grid: tiles(splits as u32),
                k_chunk,
                splits,
                reduce: Some((
                    KernelKind::Linear(LinearVariant::SplitKReduce, out),
                    element_grid(m * n, SPLITK_REDUCE_WG as usize),
                )),
            }
        }
        (GemmKernel::Tiled, true) => unsplit(tiled, tiles(1)),
        (GemmKernel::Coop(t), true) => unsplit(
            KernelKind::Linear(LinearVariant::Coop, out),
            [ceil_div(n, t as usize), ceil_div(m, t as usize), 1],
        ),
        (_, true) => unsplit(
            KernelKind::Linear(LinearVariant::Vec4, out),
            linear_grid(m, n),
        ),
        (_, false) => unsplit(
            KernelKind::Linear(LinearVariant::Scalar, out),
            linear_grid(m, n),
        ),
    }
}

/// Grid for one invocation per element in workgroups of `wg`, folding
/// workgroups past 65535 into y.
pub(crate) fn element_grid(elems: usize, wg: usize) -> [u32; 3] {
    row_grid(elems.div_ceil(wg))
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

/// Pipeline and grid of an attention step that `kernel` runs; the tiled
/// kernel needs a head size that is a multiple of 4 (otherwise the
/// one-query kernel runs), and the one-query kernel's load width follows
/// the head size.
pub(crate) fn attention_launch(
    kernel: AttentionKernel,
    batch: usize,
    seq: usize,
    heads: usize,
    head_dim: usize,
) -> (KernelKind, [u32; 3]) {
    let vec4 = Preamble::for_lengths(&[head_dim]) == Preamble::Vec4;
    match kernel {
        AttentionKernel::Tiled if vec4 => (
            KernelKind::AttentionTiled,
            [
                ceil_div(seq, ATTENTION_TILED_BQ as usize),
                heads as u32,
                batch as u32,
            ],
        ),
        _ if vec4 => (KernelKind::AttentionVec4, attention_grid(batch, seq, heads)),
        _ => (
            KernelKind::AttentionScalar,
            attention_grid(batch, seq, heads),
        ),
    }
}

impl GpuExecutor {
    pub(super) fn plan(&self, n_seq: usize, seq: usize) -> Result<Arc<Mutex<Plan>>> {
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
                let positions = storage("position_ids", tokens as u64 * 4, input)?;
                let mask = storage("attention_mask", tokens as u64 * 4, input)?;
                let tensor_dtype = &self.tensor_dtype;
                let mut tensors = Vec::with_capacity(g.tensors.len());
                let mut out_bytes = 0u64;
                for (i, t) in g.tensors.iter().enumerate() {
                    let bytes =
                        stored_bytes(tensor_dtype[i], g.rows(TensorId(i), n_seq, seq) * t.cols);
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
                // Linear launches first: split-k steps share one scratch
                // buffer for their partial sums (sized for the largest).
                let linear: Vec<Option<(LinearParams, LinearLaunch)>> = g
                    .steps
                    .iter()
                    .zip(&self.weights)
                    .map(|(step, sw)| match (&step.op, sw) {
                        (
                            Op::Linear {
                                x,
                                cls_only,
                                act,
                                residual,
                                out,
                                ..
                            },
                            StepWeights::Linear { n, .. },
                        ) => {
                            let k = g.tensors[x.0].cols;
                            let m = g.rows(*out, n_seq, seq);
                            let stride = if *cls_only { seq * k } else { k };
                            let choice = choose_gemm(
                                self.ctx.info.device_type,
                                self.pipes.coop,
                                self.pipes.tuning.as_ref(),
                                m,
                                *n,
                                k,
                                stride,
                            );
                            let tile = tile_variant(self.pipes.tuning.as_ref());
                            let launch =
                                linear_launch(choice, tile, tensor_dtype[out.0], m, *n, k, stride);
                            let p = LinearParams {
                                m: m as u32,
                                n: *n as u32,
                                k: k as u32,
                                x_row_stride: stride as u32,
                                act: act.code(),
                                has_residual: u32::from(residual.is_some()),
                                k_chunk: launch.k_chunk as u32,
                                splits: launch.splits as u32,
                            };
                            Some((p, launch))
                        }
                        _ => None,
                    })
                    .collect();
                let scratch_elems = linear
                    .iter()
                    .flatten()
                    .map(|(p, l)| l.partial_elems(p.m as usize, p.n as usize))
                    .max()
                    .unwrap_or(0);
                let scratch = storage(
                    "split-k partial sums",
                    scratch_elems as u64 * 4,
                    wgpu::BufferUsages::empty(),
                )?;
                let mut uniforms = Vec::new();
                let mut dispatches = Vec::new();
                for (si, (step, sw)) in g.steps.iter().zip(&self.weights).enumerate() {
                    let (params, launches): (Vec<u8>, Vec<Launch>) = match (&step.op, sw) {
                        (
                            Op::Embeddings { out, eps, .. },
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
                                hidden: g.tensors[out.0].cols as u32,
                                eps: *eps,
                                vocab: self.cfg.vocab_size as u32,
                                max_pos: self.cfg.max_position_embeddings as u32,
                                type_vocab: self.cfg.type_vocab_size.max(1) as u32,
                                _pad: 0,
                            };
                            let binds = [
                                &ids,
                                &types,
                                &positions,
                                word,
                                position,
                                token_type,
                                gamma,
                                beta,
                                &tensors[out.0],
                            ];
                            (
                                bytemuck::bytes_of(&p).to_vec(),
                                vec![Launch {
                                    kind: KernelKind::Embeddings,
                                    binds: buffers_then_params(&binds),
                                    grid: row_grid(tokens),
                                }],
                            )
                        }
                        (
                            Op::Linear {
                                x, residual, out, ..
                            },
                            StepWeights::Linear { weight, bias, .. },
                        ) => {
                            let Some((p, launch)) = linear[si] else {
                                return Err(internal(&step.module));
                            };
                            let r = residual.map_or(&self.dummy, |r| &tensors[r.0]);
                            let y = &tensors[out.0];
                            // The tiled kernel always binds a partial-sum
                            // buffer (untouched when not split). Not the
                            // read-only dummy: one buffer cannot be bound
                            // read-only and read-write in one dispatch.
                            let part = &scratch;
                            let mut launches = vec![Launch {
                                kind: launch.kind,
                                binds: match launch.kind {
                                    KernelKind::Linear(v, _) if v.is_tiled() => {
                                        let mut b = buffers_then_params(&[
                                            &tensors[x.0],
                                            weight,
                                            bias,
                                            r,
                                            y,
                                        ]);
                                        b.push(Bind::Buf(part));
                                        b
                                    }
                                    _ => buffers_then_params(&[&tensors[x.0], weight, bias, r, y]),
                                },
                                grid: launch.grid,
                            }];
                            if let Some((kind, grid)) = launch.reduce {
                                launches.push(Launch {
                                    kind,
                                    binds: buffers_then_params(&[&scratch, bias, r, y]),
                                    grid,
                                });
                            }
                            (bytemuck::bytes_of(&p).to_vec(), launches)
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
                            let choice = choose_attention(
                                self.pipes.tuning.as_ref(),
                                d,
                                self.ctx.limits.max_compute_workgroup_storage_size,
                            );
                            let (kind, grid) = attention_launch(choice, n_seq, seq, *heads, d);
                            (
                                bytemuck::bytes_of(&p).to_vec(),
                                vec![Launch {
                                    kind,
                                    binds: buffers_then_params(&[
                                        &tensors[qkv.0],
                                        &mask,
                                        &tensors[out.0],
                                    ]),
                                    grid,
                                }],
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
                                bytemuck::bytes_of(&p).to_vec(),
                                vec![Launch {
                                    kind: KernelKind::LayerNorm,
                                    binds: buffers_then_params(&[
                                        &tensors[x.0],
                                        &self.dummy,
                                        gamma,
                                        beta,
                                        &tensors[out.0],
                                    ]),
                                    grid: row_grid(rows),
                                }],
                            )
                        }
                        _ => return Err(internal(&step.module)),
                    };
                    let ubuf = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(&step.module),
                        contents: &params,
                        usage: wgpu::BufferUsages::UNIFORM,
                    });
                    for launch in launches {
                        let entries: Vec<wgpu::BindGroupEntry> = launch
                            .binds
                            .iter()
                            .enumerate()
                            .map(|(i, b)| wgpu::BindGroupEntry {
                                binding: i as u32,
                                resource: match b {
                                    Bind::Buf(buf) => buf.as_entire_binding(),
                                    Bind::Params => ubuf.as_entire_binding(),
                                },
                            })
                            .collect();
                        let kernel = self.pipes.get(&self.ctx, launch.kind)?;
                        let bind_group = dev.create_bind_group(&wgpu::BindGroupDescriptor {
                            label: Some(&step.module),
                            layout: &kernel.layout,
                            entries: &entries,
                        });
                        dispatches.push(Dispatch {
                            step: si,
                            kind: launch.kind,
                            pipeline: kernel.pipeline.clone(),
                            bind_group,
                            grid: launch.grid,
                        });
                    }
                    uniforms.push(ubuf);
                }
                let bytes = [&ids, &types, &positions, &mask, &staging, &scratch]
                    .into_iter()
                    .chain(&tensors)
                    .chain(&uniforms)
                    .map(|b| b.size())
                    .sum();
                Ok(Plan {
                    ids,
                    types,
                    positions,
                    mask,
                    tensors,
                    dispatches,
                    staging,
                    _uniforms: uniforms,
                    _scratch: scratch,
                    bytes,
                })
            })?
    }
}

/// Buffers bound 0.. in order, then the uniform.
fn buffers_then_params<'a>(bufs: &[&'a wgpu::Buffer]) -> Vec<Bind<'a>> {
    bufs.iter()
        .map(|b| Bind::Buf(b))
        .chain(std::iter::once(Bind::Params))
        .collect()
}

fn internal(module: &str) -> Error {
    Error::Gpu {
        context: module.to_string(),
        message: "internal: step and weights disagree".into(),
    }
}
