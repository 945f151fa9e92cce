//! Shape plans: for one (sequences, seq), the activation buffers, uniform
//! parameters, bind groups and dispatch grids of every graph step, built
//! once through the kernels' launch specs and reused by every forward of
//! that shape; and the cache that keeps the most recently used ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use super::convert::stored_bytes;
use super::pipelines::{Forced, Pipelines};
use super::record::Dispatch;
use super::spec::attention::{self, AttentionBinds, AttnParams};
use super::spec::embeddings::{self, EmbParams, EmbeddingsBinds};
use super::spec::layernorm::{self, LayerNormBinds, LnParams};
use super::spec::linear::{LinearLaunch, LinearParams, LinearTiledBinds};
use super::spec::Launch;
use super::weights::{Resident, StepWeights};
use super::GpuContext;
use crate::device::DType;
use crate::error::{Error, Result};
use crate::graph::{Graph, Op, TensorId};
use crate::kernels::linear::LinearShape;

/// Storage type of every graph tensor: `storage`, except the inputs of
/// LayerNorm steps (the residual sums), which stay f32. BERT's residual
/// stream has outlier features (pre-LayerNorm values near 200 in
/// all-MiniLM-L6-v2), where f16's spacing of 0.125 would cost ~0.05 in
/// the normalised hidden state; in f32 they lose nothing.
pub(crate) fn tensor_dtypes(g: &Graph, storage: DType) -> Vec<DType> {
    let mut out = vec![storage; g.tensors.len()];
    for step in &g.steps {
        if let Op::LayerNorm { x, .. } = step.op {
            out[x.0] = DType::F32;
        }
    }
    out
}

/// What a plan is built from: the device, the pipelines, the graph and its
/// resident weights.
pub(crate) struct PlanSource<'a> {
    pub(crate) ctx: &'a GpuContext,
    pub(crate) pipes: &'a Pipelines,
    pub(crate) graph: &'a Graph,
    pub(crate) weights: &'a Resident,
    /// Storage type of each graph tensor ([`tensor_dtypes`]).
    pub(crate) tensor_dtype: &'a [DType],
}

/// Everything that depends on the batch shape.
pub(crate) struct Plan {
    pub(crate) ids: wgpu::Buffer,
    pub(crate) types: wgpu::Buffer,
    pub(crate) positions: wgpu::Buffer,
    pub(crate) mask: wgpu::Buffer,
    pub(crate) tensors: Vec<wgpu::Buffer>,
    /// In order; a split-k linear step has two.
    pub(crate) dispatches: Vec<Dispatch>,
    pub(crate) staging: wgpu::Buffer,
    _uniforms: Vec<wgpu::Buffer>,
    _scratch: wgpu::Buffer,
    /// Bytes of every buffer above.
    pub(crate) bytes: u64,
}

fn internal(module: &str) -> Error {
    Error::Gpu {
        context: module.to_string(),
        message: "internal: step and weights disagree".into(),
    }
}

impl Plan {
    /// The plan of `src` for `n_seq` sequences of `seq` tokens.
    pub(crate) fn build(src: &PlanSource<'_>, n_seq: usize, seq: usize) -> Result<Plan> {
        src.ctx
            .scoped("allocating activation buffers", || build(src, n_seq, seq))?
    }
}

/// [`Plan::build`] inside its error scope.
fn build(src: &PlanSource<'_>, n_seq: usize, seq: usize) -> Result<Plan> {
    let PlanSource {
        ctx,
        pipes,
        graph: g,
        weights,
        tensor_dtype,
    } = *src;
    let dev = &ctx.device;
    let tokens = n_seq * seq;
    let storage = |label: &str, bytes: u64, extra: wgpu::BufferUsages| -> Result<wgpu::Buffer> {
        ctx.check_size(label, bytes)?;
        Ok(dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).next_multiple_of(16),
            usage: wgpu::BufferUsages::STORAGE | extra,
            mapped_at_creation: false,
        }))
    };
    let input = wgpu::BufferUsages::COPY_DST;
    let ids = storage("input_ids", tokens as u64 * 4, input)?;
    let types = storage("token_type_ids", tokens as u64 * 4, input)?;
    let positions = storage("position_ids", tokens as u64 * 4, input)?;
    let mask = storage("attention_mask", tokens as u64 * 4, input)?;
    let mut tensors = Vec::with_capacity(g.tensors.len());
    let mut out_bytes = 0u64;
    for (i, t) in g.tensors.iter().enumerate() {
        let bytes = stored_bytes(tensor_dtype[i], g.rows(TensorId(i), n_seq, seq) * t.cols);
        let label = format!("activation `{}` ({n_seq} sequences × {seq} tokens)", t.name);
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
    // Linear launches first: split-k steps share one scratch buffer for
    // their partial sums (sized for the largest).
    let linear: Vec<Option<(LinearShape, LinearLaunch)>> = g
        .steps
        .iter()
        .zip(&weights.steps)
        .map(|(step, sw)| match (&step.op, sw) {
            (
                Op::Linear {
                    x,
                    cls_only,
                    act,
                    out,
                    ..
                },
                StepWeights::Linear { n, .. },
            ) => {
                let k = g.tensors[x.0].cols;
                let s = LinearShape {
                    m: g.rows(*out, n_seq, seq),
                    n: *n,
                    k,
                    x_row_stride: if *cls_only { seq * k } else { k },
                    act: *act,
                };
                let launch = pipes.linear_launch(
                    ctx,
                    Forced::default(),
                    tensor_dtype[out.0],
                    s.m,
                    s.n,
                    s.k,
                    s.x_row_stride,
                );
                Some((s, launch))
            }
            _ => None,
        })
        .collect();
    let scratch_elems = linear
        .iter()
        .flatten()
        .map(|(s, l)| l.partial_elems(s.m, s.n))
        .max()
        .unwrap_or(0);
    // The tiled kernels always bind it (untouched when not split). Not the
    // read-only dummy: one buffer cannot be bound read-only and read-write
    // in one dispatch.
    let scratch = storage(
        "split-k partial sums",
        scratch_elems as u64 * 4,
        wgpu::BufferUsages::empty(),
    )?;
    let uniform = |label: &str, params: &[u8]| {
        dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: params,
            usage: wgpu::BufferUsages::UNIFORM,
        })
    };
    let mut uniforms = Vec::with_capacity(g.steps.len());
    let mut dispatches = Vec::new();
    for (si, (step, sw)) in g.steps.iter().zip(&weights.steps).enumerate() {
        let t = |id: TensorId| &tensors[id.0];
        let launches: Vec<Launch> = match (&step.op, sw) {
            (
                Op::Embeddings { out, eps, .. },
                StepWeights::Embeddings {
                    word,
                    position,
                    token_type,
                    gamma,
                    beta,
                    rows,
                },
            ) => {
                let hidden = g.tensors[out.0].cols;
                let p = EmbParams::new(tokens, seq, hidden, *eps, *rows)?;
                uniforms.push(uniform(&step.module, bytemuck::bytes_of(&p)));
                let bufs = EmbeddingsBinds {
                    ids: &ids,
                    types: &types,
                    positions: &positions,
                    word,
                    position,
                    token_type,
                    gamma,
                    beta,
                    out: t(*out),
                    p: &uniforms[si],
                };
                vec![embeddings::launch(tokens, &bufs)]
            }
            (
                Op::Linear {
                    x, residual, out, ..
                },
                StepWeights::Linear { weight, bias, .. },
            ) => {
                let Some((s, launch)) = &linear[si] else {
                    return Err(internal(&step.module));
                };
                let p = LinearParams::new(s, residual.is_some(), launch)?;
                uniforms.push(uniform(&step.module, bytemuck::bytes_of(&p)));
                let bufs = LinearTiledBinds {
                    x: t(*x),
                    w: weight,
                    b: bias,
                    r: residual.map_or(&weights.dummy, t),
                    y: t(*out),
                    p: &uniforms[si],
                    part: &scratch,
                };
                launch.launches(&bufs)
            }
            (Op::Attention { qkv, out, heads }, StepWeights::Attention) => {
                let d = g.hidden / heads;
                let p = AttnParams::new(n_seq, seq, *heads, d)?;
                uniforms.push(uniform(&step.module, bytemuck::bytes_of(&p)));
                let bufs = AttentionBinds {
                    qkv: t(*qkv),
                    mask: &mask,
                    out: t(*out),
                    p: &uniforms[si],
                };
                let kernel = pipes.attention_kernel(ctx, Forced::default(), d);
                vec![attention::launch(kernel, [n_seq, seq, *heads, d], &bufs)]
            }
            (Op::LayerNorm { x, out, eps, .. }, StepWeights::LayerNorm { gamma, beta }) => {
                let rows = g.rows(*out, n_seq, seq);
                let p = LnParams::new(rows, g.tensors[out.0].cols, *eps, false)?;
                uniforms.push(uniform(&step.module, bytemuck::bytes_of(&p)));
                let bufs = LayerNormBinds {
                    x: t(*x),
                    r: &weights.dummy,
                    gamma,
                    beta,
                    out: t(*out),
                    p: &uniforms[si],
                };
                vec![layernorm::launch(rows, &bufs)]
            }
            _ => return Err(internal(&step.module)),
        };
        for launch in &launches {
            dispatches.push(Dispatch::new(ctx, pipes, si, &step.module, launch)?);
        }
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
}

/// Most shapes kept planned at once; beyond it the least recently used
/// plan is dropped (a server sees many shapes, a corpus job a few).
const MAX_PLANS: usize = 16;

/// Plans by (sequences, seq), each locked while a forward uses it, with
/// least-recently-used eviction (generic so the eviction can be tested
/// without a device).
pub(crate) struct PlanCache<T = Plan> {
    /// Each plan with the clock of its last use.
    plans: HashMap<(usize, usize), Cached<T>>,
    clock: u64,
}

/// A cached plan and the clock of its last use.
type Cached<T> = (Arc<Mutex<T>>, u64);

impl<T> Default for PlanCache<T> {
    fn default() -> Self {
        PlanCache {
            plans: HashMap::new(),
            clock: 0,
        }
    }
}

impl<T> PlanCache<T> {
    /// The plan of (n_seq, seq), built by `build` when not cached; true
    /// when it was built now.
    pub(crate) fn get_or_build(
        &mut self,
        key: (usize, usize),
        build: impl FnOnce() -> Result<T>,
    ) -> Result<(Arc<Mutex<T>>, bool)> {
        self.clock += 1;
        if let Some((plan, used)) = self.plans.get_mut(&key) {
            *used = self.clock;
            return Ok((plan.clone(), false));
        }
        let plan = Arc::new(Mutex::new(build()?));
        if self.plans.len() >= MAX_PLANS {
            let oldest = self.plans.iter().min_by_key(|(_, (_, used))| *used);
            if let Some(&k) = oldest.map(|(k, _)| k) {
                self.plans.remove(&k);
            }
        }
        self.plans.insert(key, (plan.clone(), self.clock));
        Ok((plan, true))
    }

    /// Every cached plan.
    pub(crate) fn plans(&self) -> impl Iterator<Item = &Arc<Mutex<T>>> {
        self.plans.values().map(|(p, _)| p)
    }

    /// Shapes cached now.
    pub(crate) fn shapes(&self) -> Vec<(usize, usize)> {
        let mut v: Vec<_> = self.plans.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::{PlanCache, MAX_PLANS};

    #[test]
    fn the_least_recently_used_plan_goes_first() {
        let mut cache = PlanCache::<usize>::default();
        for i in 0..MAX_PLANS {
            let (_, built) = cache.get_or_build((i, 8), || Ok(i)).unwrap();
            assert!(built);
        }
        // Shape 0 is used again, so shape 1 is now the oldest.
        let (p, built) = cache.get_or_build((0, 8), || Ok(99)).unwrap();
        assert!(!built);
        assert_eq!(*p.lock().unwrap(), 0);
        let (_, built) = cache
            .get_or_build((MAX_PLANS, 8), || Ok(MAX_PLANS))
            .unwrap();
        assert!(built);
        let shapes = cache.shapes();
        assert_eq!(shapes.len(), MAX_PLANS);
        assert!(shapes.contains(&(0, 8)));
        assert!(!shapes.contains(&(1, 8)), "{shapes:?}");
        assert!(shapes.contains(&(MAX_PLANS, 8)));
        // A failed build caches nothing and evicts nothing.
        let err = cache.get_or_build((500, 8), || Err(crate::error::Error::input("no")));
        assert!(err.is_err());
        assert_eq!(cache.shapes(), shapes);
    }
}
