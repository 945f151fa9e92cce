//! The graph runner: weights uploaded once, pipelines built once, activation
//! buffers and bind groups planned once per (sequences, seq) and reused, and
//! a forward that is one command encoder, one submit, one readback.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::convert::{decode, stored_bytes};
use super::options::{GpuOptions, KernelChoices};
use super::pipelines::Pipelines;
use super::plan::{tensor_dtypes, Plan, PlanCache, PlanSource};
use super::record::record;
use super::spec::attention::MAX_HEAD_DIM;
use super::weights::Resident;
use super::GpuContext;
use crate::checkpoint::Tensor;
use crate::config::BertConfig;
use crate::device::DType;
use crate::error::{Error, Result};
use crate::graph::{Graph, Output};
use crate::inputs::Encoding;
use crate::kernels;
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
    pub(super) resident: Resident,
    pub(super) plans: Mutex<PlanCache>,
    pub(super) load_stats: LoadStats,
    /// Storage type of each graph tensor ([`tensor_dtypes`]).
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

impl GpuExecutor {
    /// Uploads `weights` for `graph` and prepares the pipelines (compiled
    /// by the first plan that needs each) with `opts`' kernel choices, used
    /// as given (resolve them first: [`GpuOptions::from_env`] or the model
    /// loader). With [`DType::F16`], weight matrices and embedding tables
    /// are stored as f16 (biases and LayerNorm γ/β stay f32), and so are
    /// activations. Only a [`TunePolicy`] of `first-use` or `auto` may
    /// measure the kernels here (once per adapter, when it has no tuning
    /// file; see [`super::tune::at_first_use`]).
    ///
    /// [`TunePolicy`]: super::TunePolicy
    pub fn new(
        ctx: GpuContext,
        cfg: &BertConfig,
        graph: Graph,
        weights: &Weights,
        opts: &GpuOptions,
    ) -> Result<Self> {
        let dtype = opts.dtype;
        let mut pipes = Pipelines::new(&ctx, dtype, opts.kernels, opts.tune)?;
        if cfg.head_dim() > MAX_HEAD_DIM {
            return Err(Error::Unsupported(format!(
                "attention head size {} (the GPU kernel supports up to {MAX_HEAD_DIM})",
                cfg.head_dim()
            )));
        }
        if pipes.tuning.is_none() {
            pipes.tuning = super::tune::at_first_use(&ctx, cfg, dtype, opts.tune, opts.progress);
        }
        let progress = opts.progress;
        let started = std::time::Instant::now();
        let resident = Resident::upload(&ctx, &graph, weights, dtype, progress)?;
        let load_stats = LoadStats {
            bytes: resident.bytes,
            seconds: started.elapsed().as_secs_f64(),
        };
        log::info!(
            "uploaded {:.1} MB of weights in {:.1} ms",
            load_stats.bytes as f64 / 1e6,
            load_stats.seconds * 1e3
        );
        Ok(GpuExecutor {
            tensor_dtype: tensor_dtypes(&graph, dtype),
            ctx,
            pipes,
            graph,
            cfg: cfg.clone(),
            resident,
            plans: Mutex::new(PlanCache::default()),
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

    /// The kernel choices this executor was made with (options and
    /// environment applied; the tuning file and built-in defaults decide
    /// what they leave open).
    pub fn kernel_choices(&self) -> KernelChoices {
        self.pipes.kernels
    }

    /// Whether an adapter tuning file informs its choices.
    pub fn tuned(&self) -> bool {
        self.pipes.tuning.is_some()
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
                .plans()
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
            record(&mut encoder, "bert", &plan.dispatches, None);
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
    /// The plan of (n_seq, seq), built now when not cached.
    pub(super) fn plan(&self, n_seq: usize, seq: usize) -> Result<Arc<Mutex<Plan>>> {
        let mut plans = self.plans.lock().map_err(|_| Error::Gpu {
            context: "plan cache".into(),
            message: "poisoned lock".into(),
        })?;
        let src = PlanSource {
            ctx: &self.ctx,
            pipes: &self.pipes,
            graph: &self.graph,
            weights: &self.resident,
            tensor_dtype: &self.tensor_dtype,
        };
        let (plan, built) = plans.get_or_build((n_seq, seq), || Plan::build(&src, n_seq, seq))?;
        if built {
            self.plans_built.fetch_add(1, Ordering::SeqCst);
        }
        Ok(plan)
    }

    /// The (sequences, seq) shapes planned now, sorted.
    pub fn planned_shapes(&self) -> Vec<(usize, usize)> {
        self.plans.lock().map(|p| p.shapes()).unwrap_or_default()
    }

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
