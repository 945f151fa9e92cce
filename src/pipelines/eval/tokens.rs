//! Token classification: seqeval entity precision / recall / F1 and token
//! accuracy over the labelled sub-tokens, with HF's loss.

use std::path::{Path, PathBuf};

use super::{row_err, single, unlabelled, EvalJob, EvalReport, Stats};
use crate::batch::{Job, Shape};
use crate::datasets::{class_index, prepare_token_labels, TokenExample, TokenFeature};
use crate::error::Result;
use crate::graph::Head;
use crate::heads::{Labels, IGNORE_INDEX};
use crate::metrics;
use crate::model::Model;
use crate::pipelines::{argmax, require_head, tokenizer};
use crate::tokenize::{batch_encoding, BertTokenizer, Encoded};

/// [`EvalJob`] for `*ForTokenClassification`.
pub struct TokensEval<'a> {
    model: &'a Model,
    tok: &'a BertTokenizer,
    path: PathBuf,
    label_all_tokens: bool,
}

impl<'a> TokensEval<'a> {
    /// For a token-classification `model`; with `label_all_tokens` every
    /// sub-token carries (and is scored with) its word's label.
    pub fn new(model: &'a Model, path: &Path, label_all_tokens: bool) -> Result<Self> {
        require_head(model, Head::TokenClassification, "token classification")?;
        Ok(TokensEval {
            model,
            tok: tokenizer(model)?,
            path: path.to_path_buf(),
            label_all_tokens,
        })
    }
}

impl Job for TokensEval<'_> {
    type Input = TokenExample;
    type Item = TokenFeature;
    type Output = Stats;

    fn prepare(&self, e: TokenExample) -> Result<TokenFeature> {
        let Some(labels) = &e.labels else {
            return Err(unlabelled(&self.path, e.line, "labels"));
        };
        let cfg = self.model.config();
        let ids = labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                class_index(cfg, l)
                    .map_err(|m| row_err(&self.path, e.line, &format!("labels[{i}]"), m))
            })
            .collect::<Result<Vec<_>>>()?;
        prepare_token_labels(self.tok, &e.words, &ids, self.label_all_tokens)
    }

    fn shape(&self, f: &TokenFeature) -> Shape {
        single(f.encoded.len(), 0)
    }

    fn run(&self, items: &[&TokenFeature]) -> Result<Vec<Stats>> {
        let refs: Vec<&Encoded> = items.iter().map(|f| &f.encoded).collect();
        let enc = batch_encoding(&refs, self.tok.pad_id())?;
        let mut labels = Vec::with_capacity(enc.batch * enc.seq);
        for f in items {
            labels.extend_from_slice(&f.labels);
            labels.extend(std::iter::repeat_n(IGNORE_INDEX, enc.seq - f.labels.len()));
        }
        let o = self
            .model
            .forward_with_labels(&enc, &Labels::Classes(labels))?;
        let loss = f64::from(o.loss.unwrap_or(f32::NAN));
        let logits = o.require_logits()?;
        let cfg = self.model.config();
        let n = cfg.num_labels;
        Ok(items
            .iter()
            .enumerate()
            .map(|(b, f)| {
                let (mut gold, mut pred) = (Vec::new(), Vec::new());
                for (t, &l) in f.labels.iter().enumerate() {
                    if l == IGNORE_INDEX {
                        continue;
                    }
                    let row = &logits.data[(b * enc.seq + t) * n..(b * enc.seq + t + 1) * n];
                    gold.push(cfg.label_name(l as usize));
                    pred.push(cfg.label_name(argmax(row)));
                }
                let e = metrics::seqeval(std::slice::from_ref(&gold), std::slice::from_ref(&pred));
                let right = gold.iter().zip(&pred).filter(|(g, p)| g == p).count();
                Stats {
                    examples: 1,
                    sequences: 1,
                    loss_sum: loss,
                    loss_terms: 1,
                    entities: (e.gold as u64, e.predicted as u64, e.correct as u64),
                    tokens: (right as u64, gold.len() as u64),
                    ..Stats::default()
                }
            })
            .collect())
    }
}

impl EvalJob for TokensEval<'_> {
    fn report(&self, t: &Stats) -> EvalReport {
        let (gold, predicted, correct) = t.entities;
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = ratio(correct, predicted);
        let recall = ratio(correct, gold);
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        t.report(
            "token-classification",
            vec![
                ("precision", precision),
                ("recall", recall),
                ("f1", f1),
                ("accuracy", ratio(t.tokens.0, t.tokens.1)),
            ],
        )
    }
}
