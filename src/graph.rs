//! The model, described once. A [`Graph`] is a list of named steps over named
//! tensors, using HF's module names (`embeddings`, `encoder.layer.N.attention.self`,
//! ...) and weight keys. The CPU executor (`cpu.rs`) and the WebGPU executor
//! (`gpu/runner.rs`) both walk this same list.

use std::borrow::Cow;

use crate::config::{BertConfig, Positions};
use crate::error::{Error, Result};
use crate::inputs::Encoding;

pub use crate::kernels::act::Act;

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

/// One step of the model.
#[derive(Debug, Clone)]
pub enum Op {
    /// `LayerNorm(word[ids] + token_type[types] + position[positions])` →
    /// `out` (tokens, width). Positions come from [`Graph::embedding_inputs`].
    Embeddings {
        /// (tokens, width)
        out: TensorId,
        /// The tables and LayerNorm this step reads.
        tables: EmbeddingNames,
        /// LayerNorm epsilon.
        eps: f32,
        /// How position ids are made.
        positions: Positions,
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
    /// `LayerNorm(x) · gamma + beta` over rows.
    LayerNorm {
        /// (rows, cols)
        x: TensorId,
        /// (rows, cols)
        out: TensorId,
        /// Epsilon from config.json.
        eps: f32,
        /// Weight keys of γ and β, (cols).
        gamma: String,
        /// (cols)
        beta: String,
    },
}

/// The weight keys of an embeddings step. Without a token-type table
/// (DistilBERT) the executors add a zero row, which changes no value.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingNames {
    /// (vocab, width)
    pub word: String,
    /// (max_pos, width)
    pub position: String,
    /// (type_vocab, width), when the model has token types.
    pub token_type: Option<String>,
    /// The LayerNorm's weight and bias: (width)
    pub gamma: String,
    /// (width)
    pub beta: String,
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

    /// What follows the family prefix in HF's class name
    /// (`Model`, `ForSequenceClassification`, ...).
    pub fn class_suffix(self) -> &'static str {
        match self {
            Head::Base => "Model",
            Head::SequenceClassification => "ForSequenceClassification",
            Head::TokenClassification => "ForTokenClassification",
            Head::MultipleChoice => "ForMultipleChoice",
            Head::QuestionAnswering => "ForQuestionAnswering",
        }
    }

    /// The HF class name for a family prefix: `hf_class("Roberta")` is
    /// `RobertaForSequenceClassification`.
    pub fn hf_class(self, prefix: &str) -> String {
        format!("{prefix}{}", self.class_suffix())
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

    /// The head config.json's `architectures` names, whatever the family
    /// prefix; `Base` when it names none we know (pre-training classes such
    /// as `BertForMaskedLM` or `ElectraForPreTraining` run as the base model).
    pub fn from_architectures(archs: &[String]) -> Self {
        archs
            .iter()
            .find_map(|a| {
                Head::ALL
                    .into_iter()
                    .find(|h| *h != Head::Base && a.ends_with(h.class_suffix()))
            })
            .unwrap_or(Head::Base)
    }
}

/// An output a graph can produce. Executors return each as a `(rows, cols)`
/// tensor, rows counted over the `sequences` of the input (`batch`, or
/// `batch · choices` for multiple choice); [`crate::Model`] reshapes them as
/// HF does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Output {
    /// `last_hidden_state`: (sequences · seq, hidden).
    LastHiddenState,
    /// `pooler_output`: (sequences, hidden).
    PoolerOutput,
    /// `logits`: (sequences, num_labels) for sequence classification,
    /// (sequences · seq, num_labels) for token classification,
    /// (batch · choices, 1) for multiple choice.
    Logits,
    /// `start_logits` and `end_logits` interleaved: (sequences · seq, 2).
    QaLogits,
}

impl Output {
    /// HF's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Output::LastHiddenState => "last_hidden_state",
            Output::PoolerOutput => "pooler_output",
            Output::Logits => "logits",
            Output::QaLogits => "start_logits/end_logits",
        }
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The whole model as steps over tensors.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Activation tensors. Slots are reused across layers; no step reads a
    /// tensor it writes.
    pub tensors: Vec<TensorDef>,
    /// Steps in execution order.
    pub steps: Vec<Step>,
    /// The outputs this graph produces and their tensors.
    pub outputs: Vec<(Output, TensorId)>,
    /// Every weight the steps read.
    pub params: Vec<ParamSpec>,
    /// Hidden width.
    pub hidden: usize,
    /// The head.
    pub head: Head,
    /// HF's class for this family and head (`RobertaForMultipleChoice`).
    pub class: String,
}

/// Appends tensors, steps and the weights they read; the architecture
/// files (`src/arch/`) describe their models with it.
pub(crate) struct Builder {
    tensors: Vec<TensorDef>,
    steps: Vec<Step>,
    params: Vec<ParamSpec>,
    outputs: Vec<(Output, TensorId)>,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Builder {
            tensors: Vec::new(),
            steps: Vec::new(),
            params: Vec::new(),
            outputs: Vec::new(),
        }
    }
    pub(crate) fn output(&mut self, output: Output, t: TensorId) {
        self.outputs.push((output, t));
    }
    pub(crate) fn finish(self, hidden: usize, head: Head, class: String) -> Graph {
        Graph {
            tensors: self.tensors,
            steps: self.steps,
            outputs: self.outputs,
            params: self.params,
            hidden,
            head,
            class,
        }
    }
    /// `module`'s embeddings: word, position and (optional) token-type
    /// tables of `vocab`, `max_pos` and `type_vocab` rows, and `norm`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn embeddings(
        &mut self,
        module: &str,
        names: [&str; 3],
        norm: &str,
        sizes: (usize, usize, usize),
        width: usize,
        eps: f32,
        positions: Positions,
        out: TensorId,
    ) {
        let key = |n: &str| format!("{module}.{n}.weight");
        let (vocab, max_pos, type_vocab) = sizes;
        let tables = EmbeddingNames {
            word: key(names[0]),
            position: key(names[1]),
            token_type: (type_vocab > 0).then(|| key(names[2])),
            gamma: format!("{module}.{norm}.weight"),
            beta: format!("{module}.{norm}.bias"),
        };
        self.param(tables.word.clone(), vec![vocab, width]);
        self.param(tables.position.clone(), vec![max_pos, width]);
        if let Some(t) = &tables.token_type {
            self.param(t.clone(), vec![type_vocab, width]);
        }
        self.param(tables.gamma.clone(), vec![width]);
        self.param(tables.beta.clone(), vec![width]);
        self.steps.push(Step {
            module: module.to_string(),
            op: Op::Embeddings {
                out,
                tables,
                eps,
                positions,
            },
        });
    }
    pub(crate) fn attention(&mut self, module: &str, qkv: TensorId, out: TensorId, heads: usize) {
        self.steps.push(Step {
            module: module.to_string(),
            op: Op::Attention { qkv, out, heads },
        });
    }
    pub(crate) fn tensor(&mut self, name: &'static str, rows: Rows, cols: usize) -> TensorId {
        self.tensors.push(TensorDef { name, rows, cols });
        TensorId(self.tensors.len() - 1)
    }
    pub(crate) fn param(&mut self, name: String, shape: Vec<usize>) {
        self.params.push(ParamSpec { name, shape });
    }
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn linear(
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
    pub(crate) fn layer_norm(
        &mut self,
        module: &str,
        x: TensorId,
        out: TensorId,
        cols: usize,
        eps: f32,
    ) {
        let (gamma, beta) = (format!("{module}.weight"), format!("{module}.bias"));
        self.param(gamma.clone(), vec![cols]);
        self.param(beta.clone(), vec![cols]);
        self.steps.push(Step {
            module: module.to_string(),
            op: Op::LayerNorm {
                x,
                out,
                eps,
                gamma,
                beta,
            },
        });
    }
}

impl Graph {
    /// Builds the model config.json describes (its `model_type`) plus
    /// `head`. `with_pooler` adds the pooler where the family has one and
    /// the checkpoint holds it (heads that read it add it anyway).
    pub fn build(cfg: &BertConfig, head: Head, with_pooler: bool) -> Graph {
        crate::arch::graph(cfg, head, with_pooler)
    }

    /// The token types and position ids the embeddings step reads for
    /// `enc`, each (sequences, seq): types as given (zeros for a model
    /// without token types), positions as the family makes them.
    pub fn embedding_inputs<'a>(&self, enc: &'a Encoding) -> (Cow<'a, [u32]>, Vec<u32>) {
        let Some((has_types, positions)) = self.steps.iter().find_map(|s| match &s.op {
            Op::Embeddings {
                tables, positions, ..
            } => Some((tables.token_type.is_some(), *positions)),
            _ => None,
        }) else {
            return (Cow::Borrowed(&[]), Vec::new());
        };
        let types = if has_types {
            Cow::Borrowed(enc.token_type_ids.as_slice())
        } else {
            Cow::Owned(vec![0; enc.input_ids.len()])
        };
        (types, position_ids(positions, &enc.input_ids, enc.seq))
    }

    /// The tensor behind an output, when the graph produces it.
    pub fn output(&self, output: Output) -> Option<TensorId> {
        self.outputs
            .iter()
            .find(|(o, _)| *o == output)
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

/// Position ids, (rows, seq), for `ids` (rows, seq). RoBERTa's follow HF's
/// `create_position_ids_from_input_ids`: real tokens count up from
/// `padding_idx + 1`, padding gets `padding_idx`.
pub fn position_ids(positions: Positions, ids: &[u32], seq: usize) -> Vec<u32> {
    match positions {
        Positions::Absolute => (0..ids.len()).map(|t| (t % seq.max(1)) as u32).collect(),
        Positions::FromIds { padding_idx } => ids
            .chunks(seq.max(1))
            .flat_map(|row| {
                let mut seen = padding_idx;
                row.iter().map(move |&id| {
                    if id == padding_idx {
                        padding_idx
                    } else {
                        seen += 1;
                        seen
                    }
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roberta_positions_count_real_tokens_after_padding_idx() {
        // HF: mask = ids != 1; (cumsum(mask) * mask) + 1
        let ids = [0, 5, 7, 2, 1, 1, 0, 9, 2, 1, 1, 1];
        let got = position_ids(Positions::FromIds { padding_idx: 1 }, &ids, 6);
        assert_eq!(got, [2, 3, 4, 5, 1, 1, 2, 3, 4, 1, 1, 1]);
        let bert = position_ids(Positions::Absolute, &ids, 6);
        assert_eq!(bert, [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn heads_are_read_from_any_family_class_name() {
        let h = |a: &str| Head::from_architectures(&[a.to_string()]);
        assert_eq!(
            h("XLMRobertaForSequenceClassification"),
            Head::SequenceClassification
        );
        assert_eq!(h("DistilBertForQuestionAnswering"), Head::QuestionAnswering);
        assert_eq!(h("ElectraForMultipleChoice"), Head::MultipleChoice);
        assert_eq!(
            h("CamembertForTokenClassification"),
            Head::TokenClassification
        );
        assert_eq!(h("ElectraForPreTraining"), Head::Base);
        assert_eq!(h("RobertaForMaskedLM"), Head::Base);
    }
}
