//! `RobertaModel` and its heads (`modeling_roberta.py`); XLM-RoBERTa and
//! CamemBERT are the same code in HF. BERT's layers and names; positions
//! come from the ids (`config.positions`); no pooler unless the checkpoint
//! has one or the head is multiple choice.

use super::{bert, classification_head, encoder, pooler, sequence_logits, token_head, BERT_LAYER};
use crate::config::BertConfig;
use crate::graph::{Act, Builder, Head, Output, Rows};

/// Sequence classification is `RobertaClassificationHead`:
/// `out_proj(tanh(dense(hidden[:, 0])))`, under `classifier.`. Multiple
/// choice is `classifier(pooler_output)`, as in BERT.
pub(super) fn build(b: &mut Builder, cfg: &BertConfig, head: Head, with_pooler: bool) {
    let h = cfg.hidden_size;
    let hidden = b.tensor("hidden_states", Rows::Tokens, h);
    bert::embeddings(b, cfg, hidden);
    encoder(b, cfg, &BERT_LAYER, hidden);
    b.output(Output::LastHiddenState, hidden);
    // HF builds these heads on `RobertaModel(add_pooling_layer=False)`.
    let headless_pooler = !matches!(
        head,
        Head::SequenceClassification | Head::TokenClassification | Head::QuestionAnswering
    );
    let pooled = ((with_pooler && headless_pooler) || head == Head::MultipleChoice)
        .then(|| pooler(b, h, hidden));
    match (head, pooled) {
        (Head::SequenceClassification, _) => classification_head(b, cfg, hidden, Act::Tanh),
        (Head::MultipleChoice, Some(pooled)) => sequence_logits(b, "classifier", pooled, h, 1),
        _ => {
            token_head(b, cfg, head, hidden);
        }
    }
}
