//! The CPU executor: walks the [`Graph`] with the kernels' Rust twins. It is
//! the reference the GPU is tested against and the fallback without a GPU.

use std::collections::HashMap;

use crate::checkpoint::Tensor;
use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::graph::{Graph, Op, Output, TensorId};
use crate::inputs::Encoding;
use crate::kernels::linear_packed::{linear_packed, PackedWeight};
use crate::kernels::{self, attention, embeddings, layernorm, linear};
use crate::weights::Weights;

/// Weights laid out for the CPU: fused linears per step.
pub struct CpuExecutor {
    /// What `Encoding::validate` checks inputs against.
    cfg: BertConfig,
    graph: Graph,
    weights: Weights,
    /// step index → stacked (packed W, b) for `Op::Linear` steps
    linears: HashMap<usize, (PackedWeight, Vec<f32>)>,
    /// Log per-op-kind times (BERT_WGPU_PROFILE=1).
    profile: bool,
}

fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::Embeddings { .. } => "embeddings",
        Op::Linear { .. } => "linear",
        Op::Attention { .. } => "attention",
        Op::LayerNorm { .. } => "layernorm",
    }
}

impl CpuExecutor {
    /// Prepares `weights` (already validated against `graph.params`) for the
    /// graph `cfg` describes.
    pub fn new(cfg: &BertConfig, graph: Graph, weights: Weights) -> Result<Self> {
        let mut linears = HashMap::new();
        for (i, step) in graph.steps.iter().enumerate() {
            if let Op::Linear { modules, .. } = &step.op {
                let lw = weights.stacked_linear(modules)?;
                // Packed once here; the graph's weights stay (n, k).
                let packed = PackedWeight::new(&lw.weight, lw.out_features, lw.in_features);
                linears.insert(i, (packed, lw.bias));
            }
        }
        Ok(CpuExecutor {
            cfg: cfg.clone(),
            graph,
            weights,
            linears,
            profile: match std::env::var("BERT_WGPU_PROFILE").ok().as_deref() {
                None | Some("0") => false,
                Some("1") => true,
                Some(v) => {
                    return Err(Error::Setting {
                        name: "BERT_WGPU_PROFILE".into(),
                        value: v.into(),
                        allowed: "0|1".into(),
                    })
                }
            },
        })
    }

    /// The graph this executor runs.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Validates `enc`, runs the graph and returns the requested outputs as
    /// (rows, cols) tensors.
    pub fn run(&self, enc: &Encoding, wanted: &[Output]) -> Result<Vec<Tensor>> {
        // The kernels index the tables by these ids: check them first.
        enc.validate(&self.cfg)?;
        let g = &self.graph;
        let (n_seq, seq) = (enc.sequences(), enc.seq);
        // An output the graph lacks fails before any work.
        let outs = wanted
            .iter()
            .map(|&o| {
                g.output(o)
                    .ok_or_else(|| Error::input(format!("this model has no output `{o}`")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut bufs: Vec<Vec<f32>> = g
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| vec![0.0; g.rows(TensorId(i), n_seq, seq) * t.cols])
            .collect();
        let mask = kernels::additive_mask(&enc.attention_mask);
        let (types, positions) = g.embedding_inputs(enc);
        let mut profile = self.profile.then(Vec::new);
        for (i, step) in g.steps.iter().enumerate() {
            let started = std::time::Instant::now();
            match &step.op {
                Op::Embeddings {
                    out, tables, eps, ..
                } => {
                    let w = &self.weights;
                    let zero_row = vec![0.0; g.tensors[out.0].cols];
                    let tables = embeddings::EmbeddingTables {
                        word: w.get(&tables.word)?,
                        position: w.get(&tables.position)?,
                        token_type: match &tables.token_type {
                            Some(name) => w.get(name)?,
                            None => &zero_row,
                        },
                        gamma: w.get(&tables.gamma)?,
                        beta: w.get(&tables.beta)?,
                        eps: *eps,
                    };
                    embeddings::embeddings(
                        &tables,
                        &enc.input_ids,
                        &types,
                        &positions,
                        &mut bufs[out.0],
                    );
                }
                Op::Linear {
                    x,
                    cls_only,
                    act,
                    residual,
                    out,
                    ..
                } => {
                    let (w, bias) = self.linears.get(&i).ok_or_else(|| {
                        Error::Unsupported(format!(
                            "internal: no prepared weights for step {i} ({})",
                            step.module
                        ))
                    })?;
                    let k = g.tensors[x.0].cols;
                    let shape = linear::LinearShape {
                        m: g.rows(*out, n_seq, seq),
                        n: w.n,
                        k,
                        x_row_stride: if *cls_only { seq * k } else { k },
                        act: *act,
                    };
                    let mut y = std::mem::take(&mut bufs[out.0]);
                    linear_packed(
                        shape,
                        &bufs[x.0],
                        w,
                        bias,
                        residual.map(|r| bufs[r.0].as_slice()),
                        &mut y,
                    );
                    bufs[out.0] = y;
                }
                Op::Attention { qkv, out, heads } => {
                    let mut y = std::mem::take(&mut bufs[out.0]);
                    attention::attention(&bufs[qkv.0], &mask, n_seq, seq, *heads, &mut y);
                    bufs[out.0] = y;
                }
                Op::LayerNorm {
                    x,
                    out,
                    eps,
                    gamma,
                    beta,
                } => {
                    let gamma = self.weights.get(gamma)?;
                    let beta = self.weights.get(beta)?;
                    let mut y = std::mem::take(&mut bufs[out.0]);
                    layernorm::layer_norm(&bufs[x.0], None, gamma, beta, *eps, &mut y);
                    bufs[out.0] = y;
                }
            }
            if let Some(p) = profile.as_mut() {
                p.push((op_kind(&step.op), started.elapsed().as_secs_f64()));
            }
        }
        if let Some(p) = profile {
            let mut totals: Vec<(&str, f64)> = Vec::new();
            for (k, t) in p {
                match totals.iter_mut().find(|(n, _)| *n == k) {
                    Some(e) => e.1 += t,
                    None => totals.push((k, t)),
                }
            }
            let line: Vec<String> = totals
                .iter()
                .map(|(k, t)| format!("{k} {:.1} ms", t * 1e3))
                .collect();
            log::info!("cpu forward profile: {}", line.join(", "));
        }
        outs.into_iter()
            .map(|t| {
                let rows = g.rows(t, n_seq, seq);
                Tensor::new(
                    vec![rows, g.tensors[t.0].cols],
                    std::mem::take(&mut bufs[t.0]),
                )
            })
            .collect()
    }
}
