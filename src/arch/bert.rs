//! `BertModel` and its heads (`modeling_bert.py`).

use super::{encoder, pooler, sequence_labels, sequence_logits, token_head, BERT_LAYER};
use crate::config::BertConfig;
use crate::graph::{Builder, Head, Output, Rows};

/// `embeddings` → `encoder.layer.N` → [`pooler`] → head. The sequence
/// heads read `pooler_output`: `classifier(pooler_output)`.
pub(super) fn build(b: &mut Builder, cfg: &BertConfig, head: Head, with_pooler: bool) {
    let h = cfg.hidden_size;
    let hidden = b.tensor("hidden_states", Rows::Tokens, h);
    embeddings(b, cfg, hidden);
    encoder(b, cfg, &BERT_LAYER, hidden);
    b.output(Output::LastHiddenState, hidden);
    let pooled_head = matches!(head, Head::SequenceClassification | Head::MultipleChoice);
    let pooled = (with_pooler || pooled_head).then(|| pooler(b, h, hidden));
    if let (true, Some(pooled)) = (pooled_head, pooled) {
        sequence_logits(b, "classifier", pooled, h, sequence_labels(cfg, head));
    }
    token_head(b, cfg, head, hidden);
}

/// BERT's embeddings (`embeddings.{word,position,token_type}_embeddings`,
/// `embeddings.LayerNorm`), shared with RoBERTa and ELECTRA, into `out`
/// (tokens, embedding_size).
pub(super) fn embeddings(b: &mut Builder, cfg: &BertConfig, out: crate::graph::TensorId) {
    b.embeddings(
        "embeddings",
        [
            "word_embeddings",
            "position_embeddings",
            "token_type_embeddings",
        ],
        "LayerNorm",
        (
            cfg.vocab_size,
            cfg.max_position_embeddings,
            cfg.type_vocab_size,
        ),
        cfg.embedding_size,
        cfg.layer_norm_eps,
        cfg.positions,
        out,
    );
}
