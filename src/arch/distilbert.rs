//! `DistilBertModel` and its heads (`modeling_distilbert.py`): no token
//! types, no pooler, layers under `transformer.layer.N` with their own
//! names; config.json's `dim`/`n_layers`/`hidden_dim` are read into the
//! BERT fields by `config.rs`.

use super::{dense, encoder, sequence_labels, sequence_logits, token_head, LayerNames};
use crate::config::BertConfig;
use crate::graph::{Act, Builder, Head, Output, Rows};

const LAYER: LayerNames = LayerNames {
    layers: "transformer.layer",
    attention: "attention",
    qkv: ["q_lin", "k_lin", "v_lin"],
    attention_output: "attention.out_lin",
    attention_norm: "sa_layer_norm",
    intermediate: "ffn.lin1",
    output: "ffn.lin2",
    output_norm: "output_layer_norm",
};

/// Sequence classification and multiple choice read the first token:
/// `classifier(relu(pre_classifier(hidden[:, 0])))`.
pub(super) fn build(b: &mut Builder, cfg: &BertConfig, head: Head) {
    let h = cfg.hidden_size;
    let hidden = b.tensor("hidden_states", Rows::Tokens, h);
    // Sinusoidal tables (`sinusoidal_pos_embds`) are stored in the
    // checkpoint like learned ones, and read from it the same way.
    b.embeddings(
        "embeddings",
        ["word_embeddings", "position_embeddings", ""],
        "LayerNorm",
        (cfg.vocab_size, cfg.max_position_embeddings, 0),
        h,
        cfg.layer_norm_eps,
        cfg.positions,
        hidden,
    );
    encoder(b, cfg, &LAYER, hidden);
    b.output(Output::LastHiddenState, hidden);
    if matches!(head, Head::SequenceClassification | Head::MultipleChoice) {
        let module = "pre_classifier";
        let x = dense(
            b,
            module,
            module,
            hidden,
            true,
            Rows::Sequences,
            h,
            h,
            Act::Relu,
        );
        sequence_logits(b, "classifier", x, h, sequence_labels(cfg, head));
    }
    token_head(b, cfg, head, hidden);
}
