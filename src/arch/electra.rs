//! `ElectraModel` (the discriminator) and its heads
//! (`modeling_electra.py`): BERT's embeddings at `embedding_size`,
//! projected to `hidden_size` by `embeddings_project` when they differ,
//! BERT's layers, no pooler.

use super::{bert, classification_head, dense, encoder, sequence_logits, token_head, BERT_LAYER};
use crate::config::BertConfig;
use crate::graph::{Act, Builder, Head, Output, Rows};

/// Sequence classification is `ElectraClassificationHead`:
/// `out_proj(gelu(dense(hidden[:, 0])))` under `classifier.` (HF fixes
/// exact gelu there). Multiple choice is `classifier(act(summary(hidden[:,
/// 0])))` through `sequence_summary` (`summary_activation`, gelu by default).
pub(super) fn build(b: &mut Builder, cfg: &BertConfig, head: Head) {
    let (e, h) = (cfg.embedding_size, cfg.hidden_size);
    let hidden = b.tensor("hidden_states", Rows::Tokens, h);
    if e == h {
        bert::embeddings(b, cfg, hidden);
    } else {
        let embedded = b.tensor("embeddings_output", Rows::Tokens, e);
        bert::embeddings(b, cfg, embedded);
        b.linear(
            "embeddings_project",
            embedded,
            false,
            &[("", h)],
            e,
            Act::Identity,
            None,
            hidden,
        );
    }
    encoder(b, cfg, &BERT_LAYER, hidden);
    b.output(Output::LastHiddenState, hidden);
    match head {
        Head::SequenceClassification => classification_head(b, cfg, hidden, Act::Gelu),
        Head::MultipleChoice => {
            let s = cfg.summary;
            let width = if s.proj_to_labels { cfg.num_labels } else { h };
            let act = s.activation.map_or(Act::Identity, Act::from);
            let module = "sequence_summary.summary";
            let x = dense(
                b,
                "summary",
                module,
                hidden,
                true,
                Rows::Sequences,
                h,
                width,
                act,
            );
            sequence_logits(b, "classifier", x, width, 1);
        }
        _ => {
            token_head(b, cfg, head, hidden);
        }
    }
}
