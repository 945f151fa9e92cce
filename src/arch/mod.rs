//! One file per architecture of the BERT family: each describes its model
//! as a [`Graph`] in HF's module names, from the same ops, for the same two
//! executors. What they share (the encoder layer, the heads' linears) is
//! here.
//!
//! Adding an architecture: a file here with its `graph` function, its
//! `model_type` in `config.rs` (`MODEL_TYPES`), and its `base_model_prefix`
//! in [`PREFIXES`].

use crate::config::{BertConfig, Family};
use crate::graph::{Act, Builder, Graph, Head, Output, Rows, TensorId};

mod bert;
mod distilbert;
mod electra;
mod roberta;

/// HF's `base_model_prefix` of each family: head checkpoints store the
/// encoder under it (`roberta.encoder.layer.0…`), base checkpoints without.
/// XLM-RoBERTa and CamemBERT use `roberta`, as in HF.
pub const PREFIXES: [&str; 4] = ["bert.", "roberta.", "distilbert.", "electra."];

/// The graph of `cfg`'s family with `head`.
pub(crate) fn graph(cfg: &BertConfig, head: Head, with_pooler: bool) -> Graph {
    let class = head.hf_class(cfg.class_prefix());
    let mut b = Builder::new();
    match cfg.family {
        Family::Bert => bert::build(&mut b, cfg, head, with_pooler),
        Family::Roberta => roberta::build(&mut b, cfg, head, with_pooler),
        Family::DistilBert => distilbert::build(&mut b, cfg, head),
        Family::Electra => electra::build(&mut b, cfg, head),
    }
    b.finish(cfg.hidden_size, head, class)
}

/// The module names inside one encoder layer, relative to
/// `{layers}.{N}`.
pub(crate) struct LayerNames {
    /// `encoder.layer` or `transformer.layer`.
    pub layers: &'static str,
    /// The attention module the fused QKV projection and attention step
    /// are named after (`attention.self`).
    pub attention: &'static str,
    /// The query, key and value linears, relative to `attention`.
    pub qkv: [&'static str; 3],
    /// Attention output projection (`attention.output.dense`).
    pub attention_output: &'static str,
    /// LayerNorm after attention (`attention.output.LayerNorm`).
    pub attention_norm: &'static str,
    /// Feed-forward up projection (`intermediate.dense`).
    pub intermediate: &'static str,
    /// Feed-forward down projection (`output.dense`).
    pub output: &'static str,
    /// LayerNorm after the feed-forward (`output.LayerNorm`).
    pub output_norm: &'static str,
}

/// BERT's names, which RoBERTa and ELECTRA share.
pub(crate) const BERT_LAYER: LayerNames = LayerNames {
    layers: "encoder.layer",
    attention: "attention.self",
    qkv: ["query", "key", "value"],
    attention_output: "attention.output.dense",
    attention_norm: "attention.output.LayerNorm",
    intermediate: "intermediate.dense",
    output: "output.dense",
    output_norm: "output.LayerNorm",
};

/// Post-LayerNorm transformer layers over `hidden` (tokens, hidden_size),
/// which holds the last layer's output at the end.
pub(crate) fn encoder(b: &mut Builder, cfg: &BertConfig, names: &LayerNames, hidden: TensorId) {
    let h = cfg.hidden_size;
    let i = cfg.intermediate_size;
    let eps = cfg.layer_norm_eps;
    let qkv = b.tensor("qkv", Rows::Tokens, 3 * h);
    let context = b.tensor("context", Rows::Tokens, h);
    let pre_norm = b.tensor("pre_norm", Rows::Tokens, h);
    let attn = b.tensor("attention_output", Rows::Tokens, h);
    let inter = b.tensor("intermediate", Rows::Tokens, i);
    let [q, k, v] = names.qkv;
    for l in 0..cfg.num_hidden_layers {
        let p = format!("{}.{l}", names.layers);
        let at = |rel: &str| format!("{p}.{rel}");
        let attention = at(names.attention);
        let parts = [(q, h), (k, h), (v, h)];
        b.linear(
            &attention,
            hidden,
            false,
            &parts,
            h,
            Act::Identity,
            None,
            qkv,
        );
        b.attention(&attention, qkv, context, cfg.num_attention_heads);
        let dense = at(names.attention_output);
        b.linear(
            &dense,
            context,
            false,
            &[("", h)],
            h,
            Act::Identity,
            Some(hidden),
            pre_norm,
        );
        b.layer_norm(&at(names.attention_norm), pre_norm, attn, h, eps);
        let up = at(names.intermediate);
        b.linear(
            &up,
            attn,
            false,
            &[("", i)],
            h,
            cfg.hidden_act.into(),
            None,
            inter,
        );
        let down = at(names.output);
        b.linear(
            &down,
            inter,
            false,
            &[("", h)],
            i,
            Act::Identity,
            Some(attn),
            pre_norm,
        );
        b.layer_norm(&at(names.output_norm), pre_norm, hidden, h, eps);
    }
}

/// `module`: one `nn.Linear(in_features, n)` over `x` (every row, or with
/// `cls_only` the first token of each sequence) into a new tensor.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dense(
    b: &mut Builder,
    name: &'static str,
    module: &str,
    x: TensorId,
    cls_only: bool,
    rows: Rows,
    in_features: usize,
    n: usize,
    act: Act,
) -> TensorId {
    let out = b.tensor(name, rows, n);
    b.linear(module, x, cls_only, &[("", n)], in_features, act, None, out);
    out
}

/// BERT's pooler: `tanh(pooler.dense(hidden[:, 0]))`, as `pooler_output`.
pub(crate) fn pooler(b: &mut Builder, h: usize, hidden: TensorId) -> TensorId {
    let pooled = dense(
        b,
        "pooler_output",
        "pooler.dense",
        hidden,
        true,
        Rows::Sequences,
        h,
        h,
        Act::Tanh,
    );
    b.output(Output::PoolerOutput, pooled);
    pooled
}

/// `module` (`nn.Linear(in_features, n)`) over the rows of `x`, one per
/// sequence, as the `logits` output.
pub(crate) fn sequence_logits(
    b: &mut Builder,
    module: &str,
    x: TensorId,
    in_features: usize,
    n: usize,
) {
    let logits = dense(
        b,
        "logits",
        module,
        x,
        false,
        Rows::Sequences,
        in_features,
        n,
        Act::Identity,
    );
    b.output(Output::Logits, logits);
}

/// RoBERTa's and ELECTRA's `*ClassificationHead` under `classifier.`:
/// `out_proj(act(dense(hidden[:, 0])))`.
pub(crate) fn classification_head(b: &mut Builder, cfg: &BertConfig, hidden: TensorId, act: Act) {
    let h = cfg.hidden_size;
    let x = dense(
        b,
        "classifier_hidden",
        "classifier.dense",
        hidden,
        true,
        Rows::Sequences,
        h,
        h,
        act,
    );
    sequence_logits(b, "classifier.out_proj", x, h, cfg.num_labels);
}

/// Logits width of a sequence-level head: one score per choice for
/// multiple choice, else `num_labels`.
pub(crate) fn sequence_labels(cfg: &BertConfig, head: Head) -> usize {
    if head == Head::MultipleChoice {
        1
    } else {
        cfg.num_labels
    }
}

/// The heads every family writes the same way over the last hidden state:
/// token classification (`classifier`) and question answering
/// (`qa_outputs`). Returns false for the others.
pub(crate) fn token_head(b: &mut Builder, cfg: &BertConfig, head: Head, hidden: TensorId) -> bool {
    let h = cfg.hidden_size;
    match head {
        Head::TokenClassification => {
            let n = cfg.num_labels;
            let logits = dense(
                b,
                "logits",
                "classifier",
                hidden,
                false,
                Rows::Tokens,
                h,
                n,
                Act::Identity,
            );
            b.output(Output::Logits, logits);
            true
        }
        Head::QuestionAnswering => {
            let logits = dense(
                b,
                "qa_logits",
                "qa_outputs",
                hidden,
                false,
                Rows::Tokens,
                h,
                2,
                Act::Identity,
            );
            b.output(Output::QaLogits, logits);
            true
        }
        _ => false,
    }
}
