//! The model, described once. A [`Graph`] is a list of named steps over named
//! tensors, using HF's module names (`embeddings`, `encoder.layer.N.attention.self`,
//! ...) and weight keys. The CPU executor (`cpu.rs`) and the WebGPU executor
//! (`gpu/runner.rs`) both walk this same list.

use crate::config::{Activation, BertConfig};
use crate::error::{Error, Result};

/// Index of a tensor in [`Graph::tensors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TensorId(pub usize);

/// What a tensor's rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// One row per token: `batch · seq` rows.
    Tokens,
    /// One row per sequence: `batch` rows.
    Sequences,
}

/// An activation tensor: `(rows, cols)`, rows depending on the batch shape.
#[derive(Debug, Clone)]
pub struct TensorDef {
    /// Role name, for debugging and per-step dumps.
    pub name: &'static str,
    /// Row space.
    pub rows: Rows,
    /// Row width.
    pub cols: usize,
}

/// Elementwise function applied in a linear layer's epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// No activation.
    Identity,
    /// Exact erf GELU.
    Gelu,
    /// tanh-approximated GELU.
    GeluTanh,
    /// max(x, 0).
    Relu,
    /// x · sigmoid(x).
    Silu,
    /// tanh (pooler).
    Tanh,
}

impl Act {
    /// Code shared with the WGSL kernels (`shaders/common.wgsl`).
    pub fn code(self) -> u32 {
        match self {
            Act::Identity => 0,
            Act::Gelu => 1,
            Act::GeluTanh => 2,
            Act::Relu => 3,
            Act::Silu => 4,
            Act::Tanh => 5,
        }
    }
}

impl From<Activation> for Act {
    fn from(a: Activation) -> Self {
        match a {
            Activation::Gelu => Act::Gelu,
            Activation::GeluTanh => Act::GeluTanh,
            Activation::Relu => Act::Relu,
            Activation::Silu => Act::Silu,
        }
    }
}

/// One step of the model.
#[derive(Debug, Clone)]
pub enum Op {
    /// `LayerNorm(word[ids] + position[s] + token_type[types])` → `out` (tokens, hidden).
    /// Weights: `embeddings.{word,position,token_type}_embeddings.weight`,
    /// `embeddings.LayerNorm.{weight,bias}`.
    Embeddings {
        /// (tokens, hidden)
        out: TensorId,
    },
    /// `out = act(x · Wᵀ + b) (+ residual)` with HF's `(out, in)` weights.
    /// `modules` lists HF `nn.Linear` modules whose weights are stacked by rows
    /// (query, key, value fuse into one projection). With `cls_only`, output
    /// row `b` reads row `b · seq` of `x` (the `[CLS]` token of sequence `b`).
    Linear {
        /// Input, (rows_in, in_features).
        x: TensorId,
        /// Read only the first token of every sequence.
        cls_only: bool,
        /// HF module names, weights stacked in this order.
        modules: Vec<String>,
        /// Epilogue activation.
        act: Act,
        /// Added after the activation, same shape as `out`.
        residual: Option<TensorId>,
        /// Output, (rows, out_features).
        out: TensorId,
    },
    /// Multi-head self-attention `softmax(QKᵀ/√d + mask) · V` reading a fused
    /// `(tokens, 3·hidden)` QKV tensor, writing `(tokens, hidden)`.
    Attention {
        /// (tokens, 3 · hidden): query | key | value.
        qkv: TensorId,
        /// (tokens, hidden)
        out: TensorId,
        /// Number of heads.
        heads: usize,
    },
    /// `LayerNorm(x) · weight + bias` over rows, with `module`'s weights.
    LayerNorm {
        /// (rows, cols)
        x: TensorId,
        /// (rows, cols)
        out: TensorId,
        /// Epsilon from config.json.
        eps: f32,
    },
}

/// A step: the HF module it implements and the operation.
#[derive(Debug, Clone)]
pub struct Step {
    /// HF module path, e.g. `encoder.layer.3.attention.self`.
    pub module: String,
    /// What it computes.
    pub op: Op,
}

/// A weight the graph reads, with the shape config.json implies.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Canonical HF key, e.g. `encoder.layer.0.attention.self.query.weight`.
    pub name: String,
    /// Expected shape.
    pub shape: Vec<usize>,
}

/// The task head on top of the encoder, as HF's `BertFor*` classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// `BertModel`: hidden states and pooled output.
    Base,
    /// `BertForSequenceClassification`.
    SequenceClassification,
    /// `BertForTokenClassification`.
    TokenClassification,
    /// `BertForMultipleChoice`.
    MultipleChoice,
    /// `BertForQuestionAnswering`.
    QuestionAnswering,
}

impl Head {
    /// All heads, in CLI order.
    pub const ALL: [Head; 5] = [
        Head::Base,
        Head::SequenceClassification,
        Head::TokenClassification,
        Head::MultipleChoice,
        Head::QuestionAnswering,
    ];

    /// The CLI name (`base`, `sequence-classification`, ...).
    pub fn cli_name(self) -> &'static str {
        match self {
            Head::Base => "base",
            Head::SequenceClassification => "sequence-classification",
            Head::TokenClassification => "token-classification",
            Head::MultipleChoice => "multiple-choice",
            Head::QuestionAnswering => "question-answering",
        }
    }

    /// The HF class name.
    pub fn hf_class(self) -> &'static str {
        match self {
            Head::Base => "BertModel",
            Head::SequenceClassification => "BertForSequenceClassification",
            Head::TokenClassification => "BertForTokenClassification",
            Head::MultipleChoice => "BertForMultipleChoice",
            Head::QuestionAnswering => "BertForQuestionAnswering",
        }
    }

    /// Parses a CLI name.
    pub fn from_cli_name(name: &str) -> Result<Self> {
        Head::ALL
            .into_iter()
            .find(|h| h.cli_name() == name)
            .ok_or_else(|| {
                Error::input(format!(
                    "unknown head `{name}` (expected one of: base, sequence-classification, token-classification, multiple-choice, question-answering)"
                ))
            })
    }

    /// The head config.json's `architectures` names; `Base` when it names none
    /// we know (pre-training classes such as `BertForMaskedLM` run as `BertModel`).
    pub fn from_architectures(archs: &[String]) -> Self {
        archs
            .iter()
            .find_map(|a| Head::ALL.into_iter().find(|h| h.hf_class() == a))
            .unwrap_or(Head::Base)
    }

    /// Whether this head reads `pooler_output`.
    pub fn needs_pooler(self) -> bool {
        matches!(self, Head::SequenceClassification | Head::MultipleChoice)
    }
}

/// Output names a graph can produce.
pub mod outputs {
    /// (batch, seq, hidden)
    pub const LAST_HIDDEN_STATE: &str = "last_hidden_state";
    /// (batch, hidden)
    pub const POOLER_OUTPUT: &str = "pooler_output";
    /// (batch, num_labels), (batch, seq, num_labels) or (batch·choices, 1)
    pub const LOGITS: &str = "logits";
    /// (batch, seq, 2): start | end, split by the caller.
    pub const QA_LOGITS: &str = "qa_logits";
}

/// The whole model as steps over tensors.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Activation tensors. Slots are reused across layers; no step reads a
    /// tensor it writes.
    pub tensors: Vec<TensorDef>,
    /// Steps in execution order.
    pub steps: Vec<Step>,
    /// Named outputs.
    pub outputs: Vec<(&'static str, TensorId)>,
    /// Every weight the steps read.
    pub params: Vec<ParamSpec>,
    /// Hidden width.
    pub hidden: usize,
    /// The head.
    pub head: Head,
}

struct Builder {
    tensors: Vec<TensorDef>,
    steps: Vec<Step>,
    params: Vec<ParamSpec>,
}

impl Builder {
    fn tensor(&mut self, name: &'static str, rows: Rows, cols: usize) -> TensorId {
        self.tensors.push(TensorDef { name, rows, cols });
        TensorId(self.tensors.len() - 1)
    }
    fn param(&mut self, name: String, shape: Vec<usize>) {
        self.params.push(ParamSpec { name, shape });
    }
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &mut self,
        module: &str,
        x: TensorId,
        cls_only: bool,
        parts: &[(&str, usize)],
        in_features: usize,
        act: Act,
        residual: Option<TensorId>,
        out: TensorId,
    ) {
        let mut modules = Vec::new();
        for (sub, out_features) in parts {
            let name = if sub.is_empty() {
                module.to_string()
            } else {
                format!("{module}.{sub}")
            };
            self.param(format!("{name}.weight"), vec![*out_features, in_features]);
            self.param(format!("{name}.bias"), vec![*out_features]);
            modules.push(name);
        }
        self.steps.push(Step {
            module: module.to_string(),
            op: Op::Linear {
                x,
                cls_only,
                modules,
                act,
                residual,
                out,
            },
        });
    }
    fn layer_norm(&mut self, module: &str, x: TensorId, out: TensorId, cols: usize, eps: f32) {
        self.param(format!("{module}.weight"), vec![cols]);
        self.param(format!("{module}.bias"), vec![cols]);
        self.steps.push(Step {
            module: module.to_string(),
            op: Op::LayerNorm { x, out, eps },
        });
    }
}

impl Graph {
    /// Builds BERT plus `head`. `with_pooler` adds `pooler` (required by the
    /// classification and multiple-choice heads, optional for `Base`).
    pub fn bert(cfg: &BertConfig, head: Head, with_pooler: bool) -> Graph {
        let h = cfg.hidden_size;
        let eps = cfg.layer_norm_eps;
        let mut b = Builder {
            tensors: Vec::new(),
            steps: Vec::new(),
            params: Vec::new(),
        };
        let hidden = b.tensor("hidden_states", Rows::Tokens, h);
        let qkv = b.tensor("qkv", Rows::Tokens, 3 * h);
        let context = b.tensor("context", Rows::Tokens, h);
        let pre_norm = b.tensor("pre_norm", Rows::Tokens, h);
        let attn = b.tensor("attention_output", Rows::Tokens, h);
        let inter = b.tensor("intermediate", Rows::Tokens, cfg.intermediate_size);

        b.param(
            "embeddings.word_embeddings.weight".into(),
            vec![cfg.vocab_size, h],
        );
        b.param(
            "embeddings.position_embeddings.weight".into(),
            vec![cfg.max_position_embeddings, h],
        );
        b.param(
            "embeddings.token_type_embeddings.weight".into(),
            vec![cfg.type_vocab_size, h],
        );
        b.param("embeddings.LayerNorm.weight".into(), vec![h]);
        b.param("embeddings.LayerNorm.bias".into(), vec![h]);
        b.steps.push(Step {
            module: "embeddings".into(),
            op: Op::Embeddings { out: hidden },
        });

        for l in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            b.linear(
                &format!("{p}.attention.self"),
                hidden,
                false,
                &[("query", h), ("key", h), ("value", h)],
                h,
                Act::Identity,
                None,
                qkv,
            );
            b.steps.push(Step {
                module: format!("{p}.attention.self"),
                op: Op::Attention {
                    qkv,
                    out: context,
                    heads: cfg.num_attention_heads,
                },
            });
            b.linear(
                &format!("{p}.attention.output.dense"),
                context,
                false,
                &[("", h)],
                h,
                Act::Identity,
                Some(hidden),
                pre_norm,
            );
            b.layer_norm(
                &format!("{p}.attention.output.LayerNorm"),
                pre_norm,
                attn,
                h,
                eps,
            );
            b.linear(
                &format!("{p}.intermediate.dense"),
                attn,
                false,
                &[("", cfg.intermediate_size)],
                h,
                cfg.hidden_act.into(),
                None,
                inter,
            );
            b.linear(
                &format!("{p}.output.dense"),
                inter,
                false,
                &[("", h)],
                cfg.intermediate_size,
                Act::Identity,
                Some(attn),
                pre_norm,
            );
            b.layer_norm(&format!("{p}.output.LayerNorm"), pre_norm, hidden, h, eps);
        }

        let mut outs = vec![(outputs::LAST_HIDDEN_STATE, hidden)];
        let with_pooler = with_pooler || head.needs_pooler();
        let pooled = if with_pooler {
            let pooled = b.tensor("pooler_output", Rows::Sequences, h);
            b.linear(
                "pooler.dense",
                hidden,
                true,
                &[("", h)],
                h,
                Act::Tanh,
                None,
                pooled,
            );
            outs.push((outputs::POOLER_OUTPUT, pooled));
            Some(pooled)
        } else {
            None
        };
        match (head, pooled) {
            (Head::Base, _) => {}
            (Head::SequenceClassification | Head::MultipleChoice, Some(pooled)) => {
                let n = if head == Head::MultipleChoice {
                    1
                } else {
                    cfg.num_labels
                };
                let logits = b.tensor("logits", Rows::Sequences, n);
                b.linear(
                    "classifier",
                    pooled,
                    false,
                    &[("", n)],
                    h,
                    Act::Identity,
                    None,
                    logits,
                );
                outs.push((outputs::LOGITS, logits));
            }
            (Head::SequenceClassification | Head::MultipleChoice, None) => {
                unreachable!("with_pooler is forced for pooled heads")
            }
            (Head::TokenClassification, _) => {
                let n = cfg.num_labels;
                let logits = b.tensor("logits", Rows::Tokens, n);
                b.linear(
                    "classifier",
                    hidden,
                    false,
                    &[("", n)],
                    h,
                    Act::Identity,
                    None,
                    logits,
                );
                outs.push((outputs::LOGITS, logits));
            }
            (Head::QuestionAnswering, _) => {
                let logits = b.tensor("qa_logits", Rows::Tokens, 2);
                b.linear(
                    "qa_outputs",
                    hidden,
                    false,
                    &[("", 2)],
                    h,
                    Act::Identity,
                    None,
                    logits,
                );
                outs.push((outputs::QA_LOGITS, logits));
            }
        }
        Graph {
            tensors: b.tensors,
            steps: b.steps,
            outputs: outs,
            params: b.params,
            hidden: h,
            head,
        }
    }

    /// The tensor behind an output name.
    pub fn output(&self, name: &str) -> Option<TensorId> {
        self.outputs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
    }

    /// Number of rows of `t` for a `(batch, seq)` input.
    pub fn rows(&self, t: TensorId, batch: usize, seq: usize) -> usize {
        match self.tensors[t.0].rows {
            Rows::Tokens => batch * seq,
            Rows::Sequences => batch,
        }
    }
}
