//! Sequence classification: accuracy (single- or multi-label) or the mean
//! squared error (regression), with HF's loss.

use std::path::{Path, PathBuf};

use super::{row_err, single, unlabelled, EvalJob, EvalReport, Stats};
use crate::batch::{Job, Shape};
use crate::config::{BertConfig, ProblemType};
use crate::datasets::{class_index, LabelValue, TextExample};
use crate::error::Result;
use crate::graph::Head;
use crate::heads::Labels;
use crate::model::Model;
use crate::pipelines::{argmax, require_head, sigmoid, tokenizer};
use crate::tokenize::{batch_encoding, BertTokenizer, Encoded};

/// What one example's label is, resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A class index (single-label).
    Class(i64),
    /// A multi-hot vector (multi-label).
    MultiHot(Vec<f32>),
    /// A number (regression).
    Value(f32),
}

impl Target {
    /// Batches share one kind of label (HF picks the loss per batch).
    fn group(&self) -> u64 {
        match self {
            Target::Class(_) => 0,
            Target::MultiHot(_) => 1,
            Target::Value(_) => 2,
        }
    }
}

/// [`EvalJob`] for `*ForSequenceClassification`.
pub struct ClassifyEval<'a> {
    model: &'a Model,
    tok: &'a BertTokenizer,
    path: PathBuf,
    regression: bool,
}

impl<'a> ClassifyEval<'a> {
    /// For a sequence-classification `model`; `path` names the file in errors.
    pub fn new(model: &'a Model, path: &Path) -> Result<Self> {
        require_head(model, Head::SequenceClassification, "classification")?;
        let cfg = model.config();
        let regression = match cfg.problem_type {
            Some(ProblemType::Regression) => true,
            Some(_) => false,
            None => cfg.num_labels == 1,
        };
        Ok(ClassifyEval {
            model,
            tok: tokenizer(model)?,
            path: path.to_path_buf(),
            regression,
        })
    }

    fn target(&self, l: &LabelValue) -> std::result::Result<Target, String> {
        let cfg = self.model.config();
        if self.regression {
            return match l {
                LabelValue::Number(f) => Ok(Target::Value(*f as f32)),
                LabelValue::Index(i) => Ok(Target::Value(*i as f32)),
                _ => Err("a regression model needs a number".into()),
            };
        }
        let multi =
            cfg.problem_type == Some(ProblemType::MultiLabel) || matches!(l, LabelValue::List(_));
        if multi {
            multi_hot(cfg, l).map(Target::MultiHot)
        } else {
            class_index(cfg, l).map(Target::Class)
        }
    }
}

fn multi_hot(cfg: &BertConfig, v: &LabelValue) -> std::result::Result<Vec<f32>, String> {
    let n = cfg.num_labels;
    let items: Vec<LabelValue> = match v {
        LabelValue::List(items) => items.clone(),
        other => vec![other.clone()],
    };
    // num_labels numbers, all 0 or 1 (or any floats): already multi-hot.
    let value = |i: &LabelValue| match i {
        LabelValue::Number(f) => Some(*f),
        LabelValue::Index(k) => Some(*k as f64),
        _ => None,
    };
    let floats = items.iter().any(|i| matches!(i, LabelValue::Number(_)));
    let binary = items
        .iter()
        .all(|i| matches!(value(i), Some(v) if v == 0.0 || v == 1.0));
    if items.len() == n && (floats || binary) {
        return items
            .iter()
            .map(|i| {
                value(i)
                    .map(|v| v as f32)
                    .ok_or_else(|| "mixed names and numbers".to_string())
            })
            .collect();
    }
    let mut hot = vec![0.0f32; n];
    for it in &items {
        let i = class_index(cfg, it)?;
        hot[i as usize] = 1.0;
    }
    Ok(hot)
}

impl Job for ClassifyEval<'_> {
    type Input = TextExample;
    type Item = (Encoded, Target);
    type Output = Stats;

    fn prepare(&self, e: TextExample) -> Result<Self::Item> {
        let Some(l) = &e.label else {
            return Err(unlabelled(&self.path, e.line, "label"));
        };
        let t = self
            .target(l)
            .map_err(|m| row_err(&self.path, e.line, "label", m))?;
        Ok((self.tok.encode_one(&e.text, e.text_pair.as_deref())?, t))
    }

    fn shape(&self, (enc, t): &Self::Item) -> Shape {
        single(enc.len(), t.group())
    }

    fn run(&self, items: &[&Self::Item]) -> Result<Vec<Stats>> {
        let refs: Vec<&Encoded> = items.iter().map(|(e, _)| e).collect();
        let enc = batch_encoding(&refs, self.tok.pad_id())?;
        let labels = match &items[0].1 {
            Target::Class(_) => Labels::Classes(
                items
                    .iter()
                    .map(|(_, t)| if let Target::Class(c) = t { *c } else { 0 })
                    .collect(),
            ),
            _ => Labels::Floats(
                items
                    .iter()
                    .flat_map(|(_, t)| match t {
                        Target::MultiHot(h) => h.clone(),
                        Target::Value(v) => vec![*v],
                        Target::Class(_) => Vec::new(),
                    })
                    .collect(),
            ),
        };
        let o = self.model.forward_with_labels(&enc, &labels)?;
        let loss = f64::from(o.loss.unwrap_or(f32::NAN));
        let n = self.model.config().num_labels;
        let logits = o.require_logits()?;
        Ok(logits
            .data
            .chunks_exact(n)
            .zip(items)
            .map(|(row, (_, t))| {
                let mut s = Stats {
                    examples: 1,
                    sequences: 1,
                    loss_sum: loss,
                    loss_terms: 1,
                    ..Stats::default()
                };
                match t {
                    Target::Class(c) => s.correct = u64::from(argmax(row) as i64 == *c),
                    Target::MultiHot(h) => {
                        s.correct = u64::from(
                            row.iter()
                                .zip(h)
                                .all(|(&x, &y)| (sigmoid(x) >= 0.5) == (y >= 0.5)),
                        )
                    }
                    Target::Value(v) => {
                        s.squared_error = (f64::from(row[0]) - f64::from(*v)).powi(2)
                    }
                }
                s
            })
            .collect())
    }
}

impl EvalJob for ClassifyEval<'_> {
    fn report(&self, t: &Stats) -> EvalReport {
        let metrics = if self.regression {
            vec![("mse", t.squared_error / t.examples.max(1) as f64)]
        } else {
            vec![("accuracy", t.accuracy())]
        };
        t.report("classification", metrics)
    }
}
