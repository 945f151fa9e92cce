//! Per-step GPU times of one forward from timestamp queries (`bench --profile`).

use super::record::record;
use super::runner::GpuExecutor;
use crate::error::{Error, Result};
use crate::inputs::Encoding;

/// One dispatch's GPU time from timestamp queries.
#[derive(Debug, Clone)]
pub struct StepTime {
    /// HF module the step implements.
    pub module: String,
    /// The pipeline that ran (which GEMM / attention variant).
    pub pipeline: super::KernelKind,
    /// GPU time, ms.
    pub ms: f64,
}

impl StepTime {
    /// Kernel family: linear, attention, layernorm, embeddings.
    pub fn kernel(&self) -> &'static str {
        self.pipeline.family()
    }
}

impl GpuExecutor {
    /// GPU time of every dispatch of one forward (a split-k linear step has
    /// two, both under its module), from timestamp queries written
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
        let (index, readback) = self.ctx.scoped("profiling the forward pass", || {
            let q = &self.ctx.queue;
            self.write_inputs(&plan, enc);
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
            record(&mut encoder, "bert profile", &plan.dispatches, Some(&set));
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
        Ok(plan
            .dispatches
            .iter()
            .enumerate()
            .map(|(i, d)| StepTime {
                module: self.graph.steps[d.step].module.clone(),
                pipeline: d.kind,
                ms: ticks[i + 1].saturating_sub(ticks[i]) as f64 * period_ns / 1e6,
            })
            .collect())
    }
}
