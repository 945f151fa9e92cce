//! The graph runner: weights uploaded once, pipelines built once, activation
//! buffers and bind groups planned once per (sequences, seq) and reused, and
//! a forward that is one command encoder, one submit, one readback.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::convert::{decode, stored_bytes};
use super::pipelines::Pipelines;
use super::plan::{Plan, PlanCache, StepWeights};
use super::GpuContext;
use crate::checkpoint::Tensor;
use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::graph::{Graph, Op, Output};
use crate::inputs::Encoding;
use crate::kernels;
use crate::model::DType;
use crate::weights::Weights;

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
    /// Host time of forward passes until their submit (validation, inputs,
    /// recording the dispatches), ns, summed.
    pub record_ns: u64,
    /// Time from submit until the outputs are on the host (the GPU's work,
    /// the map and the conversion to f32), ns, summed.
    pub wait_ns: u64,
}

/// The WebGPU executor.
pub struct GpuExecutor {
    pub(super) ctx: GpuContext,
    pub(super) pipes: Pipelines,
    pub(super) graph: Graph,
    pub(super) cfg: BertConfig,
    pub(super) weights: Vec<StepWeights>,
    pub(super) dummy: wgpu::Buffer,
    pub(super) plans: Mutex<PlanCache>,
    pub(super) load_stats: LoadStats,
    /// Storage type of each graph tensor ([`super::plan::tensor_dtypes`]).
    pub(super) tensor_dtype: Vec<DType>,
    forwards: AtomicU64,
    submits: AtomicU64,
    readbacks: AtomicU64,
    pub(super) plans_built: AtomicU64,
    record_ns: AtomicU64,
    wait_ns: AtomicU64,
}

/// What uploading the weights took.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadStats {
    /// Bytes written into GPU buffers (after conversion to the storage type).
    pub bytes: u64,
    /// Wall time of the uploads (conversion included), seconds.
    pub seconds: f64,
}

/// A progress bar over `steps` graph steps on stderr, or a hidden one.
fn upload_bar(show: bool, steps: usize) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(steps as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "uploading weights {bar:40} {pos}/{len} steps {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Uploads host f32 `parts`, laid end to end, as `dtype` into one new
/// storage buffer (a fused linear's weights are several parts): each part
/// is converted and copied into the buffer's memory mapped at creation (no
/// staging buffer, no queue copy). In f32 that copy reads straight from
/// where the part lies (for a checkpoint read in place, the file's
/// mapping): the one copy of the load.
fn upload(ctx: &GpuContext, dtype: DType, name: &str, parts: &[&[f32]]) -> Result<wgpu::Buffer> {
    // f16 pads each encoded part to 4 bytes, so odd-length parts are joined
    // first (f16 has to be converted into new memory anyway).
    let joined;
    let parts = if dtype != DType::F32 && parts.len() > 1 {
        joined = parts.concat();
        &[joined.as_slice()][..]
    } else {
        parts
    };
    let count: usize = parts.iter().map(|p| p.len()).sum();
    let bytes = stored_bytes(dtype, count);
    ctx.check_size(name, bytes)?;
    ctx.scoped(
        &format!("uploading `{name}`"),
        || -> Result<wgpu::Buffer> {
            let buf = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(name),
                size: bytes.max(16).next_multiple_of(16),
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: true,
            });
            {
                let mut view = buf
                    .slice(..)
                    .get_mapped_range_mut()
                    .map_err(|e| Error::Gpu {
                        context: format!("uploading `{name}`"),
                        message: e.to_string(),
                    })?;
                let mut at = 0;
                for part in parts {
                    let encoded = super::convert::encode(dtype, name, part)?;
                    view.slice(at..at + encoded.len()).copy_from_slice(&encoded);
                    at += encoded.len();
                }
            }
            buf.unmap();
            Ok(buf)
        },
    )?
}

impl GpuExecutor {
    /// Uploads `weights` for `graph` and compiles the pipelines. With
    /// [`DType::F16`], weight matrices and embedding tables are stored as f16
    /// (biases and LayerNorm γ/β stay f32), and so are activations.
    pub fn new(
        ctx: GpuContext,
        cfg: &BertConfig,
        graph: Graph,
        weights: &Weights,
        dtype: DType,
        progress: bool,
    ) -> Result<Self> {
        // Compiled lazily, by the first plan that needs each.
        let mut pipes = Pipelines::new(&ctx, dtype)?;
        if cfg.head_dim() > 128 {
            return Err(Error::Unsupported(format!(
                "attention head size {} (the GPU kernel supports up to 128)",
                cfg.head_dim()
            )));
        }
        if pipes.tuning.is_none() {
            pipes.tuning = super::tune::at_first_use(&ctx, cfg, dtype, progress);
        }
        let started = std::time::Instant::now();
        let total = std::cell::Cell::new(0u64);
        let bar = upload_bar(progress, graph.steps.len());
        let put = |dtype: DType, name: &str, parts: &[&[f32]]| -> Result<wgpu::Buffer> {
            let count: usize = parts.iter().map(|p| p.len()).sum();
            total.set(total.get() + stored_bytes(dtype, count));
            bar.set_message(format!("{:.0} MB", total.get() as f64 / 1e6));
            upload(&ctx, dtype, name, parts)
        };
        // Matrices in the storage type; vectors (bias, γ, β) in f32.
        let param = |dtype: DType, name: &str| -> Result<wgpu::Buffer> {
            put(dtype, name, &[weights.get(name)?])
        };
        let mut step_weights = Vec::with_capacity(graph.steps.len());
        for step in &graph.steps {
            step_weights.push(match &step.op {
                Op::Embeddings { tables, out, .. } => StepWeights::Embeddings {
                    word: param(dtype, &tables.word)?,
                    position: param(dtype, &tables.position)?,
                    token_type: match &tables.token_type {
                        Some(name) => param(dtype, name)?,
                        None => put(
                            dtype,
                            "no token types",
                            &[&vec![0.0; graph.tensors[out.0].cols]],
                        )?,
                    },
                    gamma: param(DType::F32, &format!("{}.weight", tables.norm))?,
                    beta: param(DType::F32, &format!("{}.bias", tables.norm))?,
                },
                Op::Linear { modules, .. } => {
                    let lw = weights.linear_parts(modules)?;
                    StepWeights::Linear {
                        weight: put(dtype, &format!("{}.weight", step.module), &lw.weights)?,
                        bias: put(DType::F32, &format!("{}.bias", step.module), &[&lw.bias])?,
                        n: lw.out_features,
                    }
                }
                Op::Attention { .. } => StepWeights::Attention,
                Op::LayerNorm { .. } => StepWeights::LayerNorm {
                    gamma: param(DType::F32, &format!("{}.weight", step.module))?,
                    beta: param(DType::F32, &format!("{}.bias", step.module))?,
                },
            });
            bar.inc(1);
        }
        bar.finish_and_clear();
        let dummy = upload(&ctx, DType::F32, "dummy", &[&[0.0; 4]])?;
        let load_stats = LoadStats {
            bytes: total.get(),
            seconds: started.elapsed().as_secs_f64(),
        };
        log::info!(
            "uploaded {:.1} MB of weights in {:.1} ms",
            load_stats.bytes as f64 / 1e6,
            load_stats.seconds * 1e3
        );
        Ok(GpuExecutor {
            tensor_dtype: super::plan::tensor_dtypes(&graph, dtype),
            ctx,
            pipes,
            graph,
            cfg: cfg.clone(),
            weights: step_weights,
            dummy,
            plans: Mutex::new(HashMap::new()),
            load_stats,
            forwards: AtomicU64::new(0),
            submits: AtomicU64::new(0),
            readbacks: AtomicU64::new(0),
            plans_built: AtomicU64::new(0),
            record_ns: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
        })
    }

    /// Storage type of weights and activations.
    pub fn dtype(&self) -> DType {
        self.pipes.dtype
    }

    /// Bytes uploaded and time taken by [`Self::new`].
    pub fn load_stats(&self) -> LoadStats {
        self.load_stats
    }

    /// GPU memory this executor holds now: weights plus the activation,
    /// input, uniform and readback buffers of every cached shape plan.
    pub fn allocated_bytes(&self) -> u64 {
        let plans: u64 = match self.plans.lock() {
            Ok(plans) => plans
                .values()
                .map(|p| p.lock().map(|p| p.bytes).unwrap_or(0))
                .sum(),
            Err(_) => 0,
        };
        self.load_stats.bytes + plans
    }

    /// Adapter description.
    pub fn adapter_name(&self) -> String {
        self.ctx.describe()
    }

    /// The largest storage buffer one binding may hold, in bytes.
    pub fn max_binding_size(&self) -> u64 {
        self.context().limits.max_storage_buffer_binding_size
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
            record_ns: self.record_ns.load(Ordering::SeqCst),
            wait_ns: self.wait_ns.load(Ordering::SeqCst),
        }
    }

    /// Runs the graph; returns the requested outputs as (rows, cols) tensors.
    pub fn run(&self, enc: &Encoding, wanted: &[Output]) -> Result<Vec<Tensor>> {
        let started = std::time::Instant::now();
        enc.validate(&self.cfg)?;
        let g = &self.graph;
        let (n_seq, seq) = (enc.sequences(), enc.seq);
        let mut outs = Vec::with_capacity(wanted.len());
        for &o in wanted {
            let t = g
                .output(o)
                .ok_or_else(|| Error::input(format!("this model has no output `{o}`")))?;
            outs.push(t);
        }
        let plan = self.plan(n_seq, seq)?;
        let plan = plan.lock().map_err(|_| Error::Gpu {
            context: "plan".into(),
            message: "poisoned lock".into(),
        })?;
        let mut offsets = Vec::with_capacity(outs.len());
        let submission = self.ctx.scoped("recording the forward pass", || {
            let q = &self.ctx.queue;
            self.write_inputs(&plan, enc);
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
                for d in &plan.dispatches {
                    let [x, y, z] = d.grid;
                    pass.set_pipeline(&d.pipeline);
                    pass.set_bind_group(0, &d.bind_group, &[]);
                    pass.dispatch_workgroups(x, y, z);
                }
            }
            let mut off = 0u64;
            for t in &outs {
                let count = g.rows(*t, n_seq, seq) * g.tensors[t.0].cols;
                let dtype = self.tensor_dtype[t.0];
                let bytes = stored_bytes(dtype, count);
                encoder.copy_buffer_to_buffer(&plan.tensors[t.0], 0, &plan.staging, off, bytes);
                offsets.push((off, bytes, count, dtype));
                off += bytes;
            }
            (q.submit(Some(encoder.finish())), off)
        })?;
        let (index, total) = submission;
        let submitted = std::time::Instant::now();
        self.submits.fetch_add(1, Ordering::SeqCst);
        let raw =
            self.ctx
                .read_mapped(&plan.staging, total, index, "the forward pass", |view| {
                    offsets
                        .iter()
                        .map(|(off, bytes, count, dtype)| {
                            decode(
                                *dtype,
                                &view[*off as usize..(*off + *bytes) as usize],
                                *count,
                            )
                        })
                        .collect::<Vec<_>>()
                })?;
        self.readbacks.fetch_add(1, Ordering::SeqCst);
        let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.record_ns
            .fetch_add(nanos(submitted - started), Ordering::SeqCst);
        self.wait_ns
            .fetch_add(nanos(submitted.elapsed()), Ordering::SeqCst);
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

impl GpuExecutor {
    /// Queues the writes of `enc`'s ids, token types and additive mask into
    /// `plan`'s input buffers (they land before the next submit).
    pub(super) fn write_inputs(&self, plan: &Plan, enc: &Encoding) {
        let q = &self.ctx.queue;
        let mask = kernels::additive_mask(&enc.attention_mask);
        let (types, positions) = self.graph.embedding_inputs(enc);
        q.write_buffer(&plan.ids, 0, bytemuck::cast_slice(&enc.input_ids));
        q.write_buffer(&plan.types, 0, bytemuck::cast_slice(&types));
        q.write_buffer(&plan.positions, 0, bytemuck::cast_slice(&positions));
        q.write_buffer(&plan.mask, 0, bytemuck::cast_slice(&mask));
    }
}
