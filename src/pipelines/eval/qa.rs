//! Extractive question answering: SQuAD exact match and F1 of the
//! pipeline's best answer, and the per-window loss.

use super::{EvalJob, EvalReport, Stats};
use crate::batch::{Job, Shape};
use crate::datasets::{prepare_qa_spans, QaExample, QaFeature};
use crate::error::Result;
use crate::graph::Head;
use crate::heads::{cross_entropy, IGNORE_INDEX};
use crate::metrics;
use crate::model::Model;
use crate::pipelines::{qa_postprocess, require_head, tokenizer, QaOptions};
use crate::tokenize::{batch_encoding, BertTokenizer, Encoded};

/// [`EvalJob`] for `*ForQuestionAnswering`.
pub struct QaEval<'a> {
    model: &'a Model,
    tok: &'a BertTokenizer,
    window: (usize, usize),
    best: QaOptions,
}

impl<'a> QaEval<'a> {
    /// For a question-answering `model`, windows and answers as `qa`.
    pub fn new(model: &'a Model, qa: &QaOptions) -> Result<Self> {
        require_head(model, Head::QuestionAnswering, "question answering")?;
        Ok(QaEval {
            model,
            tok: tokenizer(model)?,
            window: qa.window(model.config().max_tokens())?,
            best: QaOptions {
                top_k: 1,
                ..qa.clone()
            },
        })
    }
}

/// One example's windows with what scores it.
pub struct QaItem {
    windows: Vec<QaFeature>,
    context: String,
    golds: Vec<String>,
}

impl Job for QaEval<'_> {
    type Input = QaExample;
    type Item = QaItem;
    type Output = Stats;

    fn prepare(&self, e: QaExample) -> Result<QaItem> {
        let answer = e.answers.first().map(|a| (a.text.as_str(), a.start));
        let (max_len, stride) = self.window;
        let windows = prepare_qa_spans(self.tok, &e.question, &e.context, answer, max_len, stride)?;
        let golds = if e.answers.is_empty() {
            vec![String::new()]
        } else {
            e.answers.into_iter().map(|a| a.text).collect()
        };
        Ok(QaItem {
            windows,
            context: e.context,
            golds,
        })
    }

    fn shape(&self, it: &QaItem) -> Shape {
        Shape {
            sequences: it.windows.len(),
            len: it
                .windows
                .iter()
                .map(|w| w.encoded.len())
                .max()
                .unwrap_or(0),
            group: 0,
        }
    }

    fn run(&self, items: &[&QaItem]) -> Result<Vec<Stats>> {
        let refs: Vec<&Encoded> = items
            .iter()
            .flat_map(|it| it.windows.iter().map(|w| &w.encoded))
            .collect();
        let enc = batch_encoding(&refs, self.tok.pad_id())?;
        // The loss of each window over its own tokens: the model's loss on
        // a padded batch would count padded positions in the softmax.
        let (s, e) = self.model.span_logits(&enc)?;
        let mut out = Vec::with_capacity(items.len());
        let mut row = 0usize;
        for it in items {
            let mut st = Stats {
                examples: 1,
                sequences: it.windows.len() as u64,
                loss_terms: it.windows.len() as u64,
                ..Stats::default()
            };
            let mut ls: Vec<(&[f32], &[f32])> = Vec::with_capacity(it.windows.len());
            for w in &it.windows {
                let len = w.encoded.len();
                let at = row * enc.seq;
                let (sl, el) = (&s.data[at..at + len], &e.data[at..at + len]);
                let ce = |l: &[f32], t: usize| -> Result<f64> {
                    Ok(f64::from(cross_entropy(l, len, &[t as i64], IGNORE_INDEX)?))
                };
                st.loss_sum += (ce(sl, w.start_position)? + ce(el, w.end_position)?) / 2.0;
                ls.push((sl, el));
                row += 1;
            }
            let ws: Vec<&Encoded> = it.windows.iter().map(|w| &w.encoded).collect();
            let pred = qa_postprocess(self.tok, &it.context, &ws, &ls, &self.best)
                .into_iter()
                .next()
                .map(|a| a.answer)
                .unwrap_or_default();
            let sq = metrics::squad(&[(pred, it.golds.clone())]);
            st.squad = (sq.exact_match / 100.0, sq.f1 / 100.0);
            out.push(st);
        }
        Ok(out)
    }
}

impl EvalJob for QaEval<'_> {
    fn report(&self, t: &Stats) -> EvalReport {
        let n = t.examples.max(1) as f64;
        t.report(
            "question-answering",
            vec![
                ("exact_match", 100.0 * t.squad.0 / n),
                ("f1", 100.0 * t.squad.1 / n),
            ],
        )
    }
}
