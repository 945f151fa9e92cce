//! The weights of every graph step, uploaded once into GPU buffers in the
//! storage type (matrices and embedding tables; biases, γ and β stay f32).

use super::convert::stored_bytes;
use super::spec::embeddings::TableRows;
use super::GpuContext;
use crate::device::DType;
use crate::error::{Error, Result};
use crate::graph::{Graph, Op};
use crate::weights::Weights;

/// Weights of one step, resident on the GPU.
pub(crate) enum StepWeights {
    Embeddings {
        /// One zero row stands in for a missing token-type table.
        word: wgpu::Buffer,
        position: wgpu::Buffer,
        token_type: wgpu::Buffer,
        gamma: wgpu::Buffer,
        beta: wgpu::Buffer,
        /// Rows of the three tables as uploaded (the kernel's id bounds).
        rows: TableRows,
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

/// Every step's weights and what uploading them took.
pub(crate) struct Resident {
    /// One per graph step.
    pub(crate) steps: Vec<StepWeights>,
    /// A small read-only buffer bound where a kernel reads nothing (no
    /// residual).
    pub(crate) dummy: wgpu::Buffer,
    /// Bytes written (after conversion to the storage type).
    pub(crate) bytes: u64,
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

impl Resident {
    /// Uploads `weights` for every step of `graph`: matrices and tables as
    /// `dtype`, vectors (bias, γ, β) as f32.
    pub(crate) fn upload(
        ctx: &GpuContext,
        graph: &Graph,
        weights: &Weights,
        dtype: DType,
        progress: bool,
    ) -> Result<Resident> {
        let total = std::cell::Cell::new(0u64);
        let bar = upload_bar(progress, graph.steps.len());
        let put = |dtype: DType, name: &str, parts: &[&[f32]]| -> Result<wgpu::Buffer> {
            let count: usize = parts.iter().map(|p| p.len()).sum();
            total.set(total.get() + stored_bytes(dtype, count));
            bar.set_message(format!("{:.0} MB", total.get() as f64 / 1e6));
            upload(ctx, dtype, name, parts)
        };
        let param = |dtype: DType, name: &str| -> Result<wgpu::Buffer> {
            put(dtype, name, &[weights.get(name)?])
        };
        let mut steps = Vec::with_capacity(graph.steps.len());
        for step in &graph.steps {
            steps.push(match &step.op {
                Op::Embeddings { tables, out, .. } => {
                    let hidden = graph.tensors[out.0].cols.max(1);
                    let rows_of =
                        |name: &str| -> Result<usize> { Ok(weights.get(name)?.len() / hidden) };
                    let zero_row = vec![0.0; hidden];
                    let (token_type, type_vocab) = match &tables.token_type {
                        Some(name) => (param(dtype, name)?, rows_of(name)?),
                        None => (put(dtype, "no token types", &[&zero_row])?, 1),
                    };
                    StepWeights::Embeddings {
                        word: param(dtype, &tables.word)?,
                        position: param(dtype, &tables.position)?,
                        token_type,
                        gamma: param(DType::F32, &tables.gamma)?,
                        beta: param(DType::F32, &tables.beta)?,
                        rows: TableRows {
                            vocab: rows_of(&tables.word)?,
                            max_pos: rows_of(&tables.position)?,
                            type_vocab,
                        },
                    }
                }
                Op::Linear { modules, .. } => {
                    let lw = weights.linear_parts(modules)?;
                    StepWeights::Linear {
                        weight: put(dtype, &format!("{}.weight", step.module), &lw.weights)?,
                        bias: put(DType::F32, &format!("{}.bias", step.module), &[&lw.bias])?,
                        n: lw.out_features,
                    }
                }
                Op::Attention { .. } => StepWeights::Attention,
                Op::LayerNorm { gamma, beta, .. } => StepWeights::LayerNorm {
                    gamma: param(DType::F32, gamma)?,
                    beta: param(DType::F32, beta)?,
                },
            });
            bar.inc(1);
        }
        bar.finish_and_clear();
        let dummy = upload(ctx, DType::F32, "dummy", &[&[0.0; 4]])?;
        Ok(Resident {
            steps,
            dummy,
            bytes: total.get(),
        })
    }
}
