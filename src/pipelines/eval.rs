//! Evaluation of a labelled dataset: batches cut by the batcher's scheduler
//! ([`crate::batch::schedule`]: sorted by length, under a token budget) through
//! [`Model::forward_with_labels`], the mean loss, and the task's metric.
//!
//! - loss: the mean of the per-batch losses of [`Model::forward_with_labels`]
//!   weighted by the examples in each batch, as HF `Trainer.evaluate`'s
//!   `eval_loss`. Question answering: the mean over windows of
//!   (CE(start) + CE(end)) / 2, each window's softmax over its own tokens
//!   (the model's loss on a padded batch would count the padding, so this
//!   is its loss on each window alone: independent of the batch size).
//! - sequence classification: accuracy (argmax; multi-label: every label
//!   right at sigmoid ≥ 0.5); regression: mean squared error.
//! - token classification: seqeval entity precision / recall / F1 and token
//!   accuracy over the labelled sub-tokens (as `run_ner.py`).
//! - multiple choice: accuracy.
//! - question answering: SQuAD exact match and F1 of the pipeline's best
//!   answer against all gold answers (as `run_qa.py` + `squad` metric).

use std::path::Path;

use serde::ser::SerializeMap;
use serde::Serialize;

use super::choose::choice_encoding;
use super::qa::{qa_postprocess, QaOptions};
use super::{argmax, require_head, sigmoid, tokenizer};
use crate::batch::{schedule, BatchOptions, Shape};
use crate::config::{BertConfig, ProblemType};
use crate::datasets::{
    class_index, prepare_qa_spans, prepare_token_labels, Dataset, LabelValue, QaFeature,
};
use crate::error::{Error, Result};
use crate::graph::Head;
use crate::heads::{cross_entropy, Labels, IGNORE_INDEX};
use crate::inputs::Encoding;
use crate::metrics;
use crate::model::Model;
use crate::tokenize::{batch_encoding, Encoded};

/// Options for [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOptions {
    /// Examples (QA: windows) per forward pass at most.
    pub batch_size: usize,
    /// Padded tokens per forward pass; `None`: the device's default
    /// ([`crate::batch::default_max_tokens`]).
    pub batch_tokens: Option<usize>,
    /// Token classification: label (and score) every sub-token with its
    /// word's label, not only the first of each word.
    pub label_all_tokens: bool,
    /// Question answering: windows and answer selection.
    pub qa: QaOptions,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            batch_size: 16,
            batch_tokens: None,
            label_all_tokens: false,
            qa: QaOptions::default(),
        }
    }
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// `classification`, `token-classification`, `multiple-choice` or `question-answering`.
    pub task: &'static str,
    /// Examples evaluated.
    pub examples: usize,
    /// Sequences run (QA: windows; multiple choice: examples).
    pub sequences: usize,
    /// Mean loss.
    pub loss: f64,
    /// Metric name → value, in print order.
    pub metrics: Vec<(&'static str, f64)>,
}

impl EvalReport {
    /// The value of a metric.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

impl Serialize for EvalReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("task", self.task)?;
        m.serialize_entry("examples", &self.examples)?;
        m.serialize_entry("sequences", &self.sequences)?;
        m.serialize_entry("loss", &self.loss)?;
        for (k, v) in &self.metrics {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

fn row_err(path: &Path, row: usize, field: &str, message: impl Into<String>) -> Error {
    Error::Dataset {
        path: path.to_path_buf(),
        row,
        field: field.to_string(),
        message: message.into(),
    }
}

/// Indices cut into batches by the batcher's scheduler: sorted by (group,
/// length), at most `batch_size` sequences and the token budget each.
fn buckets(model: &Model, shapes: &[Shape], opts: &EvalOptions) -> Vec<Vec<usize>> {
    // Any padding: the loss (HF's mean of per-batch losses) depends on how
    // examples are batched, and `--batch-size` alone should decide that.
    let limits = BatchOptions {
        max_tokens: opts.batch_tokens,
        max_sequences: opts.batch_size.max(1),
        min_fill: Some(0.0),
        ..BatchOptions::default()
    }
    .limits(model);
    schedule::plan(shapes, limits)
}

/// One sequence of `len` tokens.
fn single(len: usize) -> Shape {
    Shape {
        sequences: 1,
        len,
        group: 0,
    }
}

/// Runs `model` over a labelled dataset. `path` names the file in errors;
/// `progress(done, total)` is called as batches finish.
pub fn evaluate(
    model: &Model,
    path: &Path,
    data: &Dataset,
    opts: &EvalOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<EvalReport> {
    if data.is_empty() {
        return Err(Error::input(format!(
            "{}: the dataset has no rows",
            path.display()
        )));
    }
    match data {
        Dataset::Classification(ex) => {
            require_head(model, Head::SequenceClassification, "classification")?;
            eval_classification(model, path, ex, opts, progress)
        }
        Dataset::TokenClassification(ex) => {
            require_head(model, Head::TokenClassification, "token classification")?;
            eval_tokens(model, path, ex, opts, progress)
        }
        Dataset::MultipleChoice(ex) => {
            require_head(model, Head::MultipleChoice, "multiple choice")?;
            eval_choice(model, path, ex, opts, progress)
        }
        Dataset::QuestionAnswering(ex) => {
            require_head(model, Head::QuestionAnswering, "question answering")?;
            eval_qa(model, path, ex, opts, progress)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ClsKind {
    Single,
    Multi,
    Regression,
}

fn cls_kind(cfg: &BertConfig, any_list: bool) -> ClsKind {
    match cfg.problem_type {
        Some(ProblemType::Regression) => ClsKind::Regression,
        Some(ProblemType::MultiLabel) => ClsKind::Multi,
        Some(ProblemType::SingleLabel) => ClsKind::Single,
        None if cfg.num_labels == 1 => ClsKind::Regression,
        None if any_list => ClsKind::Multi,
        None => ClsKind::Single,
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

fn eval_classification(
    model: &Model,
    path: &Path,
    ex: &[crate::datasets::TextExample],
    opts: &EvalOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<EvalReport> {
    let tok = tokenizer(model)?;
    let cfg = model.config();
    let any_list = ex
        .iter()
        .any(|e| matches!(e.label, Some(LabelValue::List(_))));
    let kind = cls_kind(cfg, any_list);
    let n = cfg.num_labels;
    // Resolve every label before running anything.
    let mut targets: Vec<Vec<f32>> = Vec::with_capacity(ex.len());
    let mut classes: Vec<i64> = Vec::with_capacity(ex.len());
    for e in ex {
        let Some(l) = &e.label else {
            return Err(row_err(
                path,
                e.line,
                "label",
                "missing (eval needs labelled rows)",
            ));
        };
        match kind {
            ClsKind::Single => {
                classes.push(class_index(cfg, l).map_err(|m| row_err(path, e.line, "label", m))?)
            }
            ClsKind::Multi => {
                targets.push(multi_hot(cfg, l).map_err(|m| row_err(path, e.line, "label", m))?)
            }
            ClsKind::Regression => targets.push(vec![match l {
                LabelValue::Number(f) => *f as f32,
                LabelValue::Index(i) => *i as f32,
                _ => {
                    return Err(row_err(
                        path,
                        e.line,
                        "label",
                        "a regression model needs a number",
                    ))
                }
            }]),
        }
    }
    let encs = ex
        .iter()
        .map(|e| tok.encode_one(&e.text, e.text_pair.as_deref()))
        .collect::<Result<Vec<_>>>()?;
    let total = ex.len() as u64;
    progress(0, total);
    let (mut loss_sum, mut done) = (0.0f64, 0u64);
    let mut correct = 0usize;
    let mut sq_err = 0.0f64;
    let shapes: Vec<Shape> = encs.iter().map(|e| single(e.len())).collect();
    for batch in buckets(model, &shapes, opts) {
        let refs: Vec<&Encoded> = batch.iter().map(|&i| &encs[i]).collect();
        let enc = batch_encoding(&refs, tok.pad_id())?;
        let labels = match kind {
            ClsKind::Single => Labels::Classes(batch.iter().map(|&i| classes[i]).collect()),
            _ => Labels::Floats(batch.iter().flat_map(|&i| targets[i].clone()).collect()),
        };
        let o = model.forward_with_labels(&enc, &labels)?;
        loss_sum += f64::from(o.loss.unwrap_or(f32::NAN)) * batch.len() as f64;
        let logits = o
            .logits
            .ok_or_else(|| Error::input("the model returned no logits"))?;
        for (row, &i) in logits.data.chunks_exact(n).zip(&batch) {
            match kind {
                ClsKind::Single => correct += usize::from(argmax(row) as i64 == classes[i]),
                ClsKind::Multi => {
                    let ok = row
                        .iter()
                        .zip(&targets[i])
                        .all(|(&x, &t)| (sigmoid(x) >= 0.5) == (t >= 0.5));
                    correct += usize::from(ok);
                }
                ClsKind::Regression => {
                    sq_err += (f64::from(row[0]) - f64::from(targets[i][0])).powi(2)
                }
            }
        }
        done += batch.len() as u64;
        progress(done, total);
    }
    let m = ex.len() as f64;
    let metrics = match kind {
        ClsKind::Regression => vec![("mse", sq_err / m)],
        _ => vec![("accuracy", correct as f64 / m)],
    };
    Ok(EvalReport {
        task: "classification",
        examples: ex.len(),
        sequences: ex.len(),
        loss: loss_sum / m,
        metrics,
    })
}

fn eval_tokens(
    model: &Model,
    path: &Path,
    ex: &[crate::datasets::TokenExample],
    opts: &EvalOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<EvalReport> {
    let tok = tokenizer(model)?;
    let cfg = model.config();
    let n = cfg.num_labels;
    let mut feats = Vec::with_capacity(ex.len());
    for e in ex {
        let Some(labels) = &e.labels else {
            return Err(row_err(
                path,
                e.line,
                "labels",
                "missing (eval needs labelled rows)",
            ));
        };
        let ids = labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                class_index(cfg, l).map_err(|m| row_err(path, e.line, &format!("labels[{i}]"), m))
            })
            .collect::<Result<Vec<_>>>()?;
        feats.push(prepare_token_labels(
            tok,
            &e.words,
            &ids,
            opts.label_all_tokens,
        )?);
    }
    let shapes: Vec<Shape> = feats.iter().map(|f| single(f.encoded.len())).collect();
    let total = ex.len() as u64;
    progress(0, total);
    let (mut loss_sum, mut done) = (0.0f64, 0u64);
    let mut gold_tags: Vec<Vec<String>> = vec![Vec::new(); ex.len()];
    let mut pred_tags: Vec<Vec<String>> = vec![Vec::new(); ex.len()];
    for batch in buckets(model, &shapes, opts) {
        let refs: Vec<&Encoded> = batch.iter().map(|&i| &feats[i].encoded).collect();
        let enc = batch_encoding(&refs, tok.pad_id())?;
        let mut labels = Vec::with_capacity(enc.batch * enc.seq);
        for &i in &batch {
            let l = &feats[i].labels;
            labels.extend_from_slice(l);
            labels.extend(std::iter::repeat_n(IGNORE_INDEX, enc.seq - l.len()));
        }
        let o = model.forward_with_labels(&enc, &Labels::Classes(labels))?;
        loss_sum += f64::from(o.loss.unwrap_or(f32::NAN)) * batch.len() as f64;
        let logits = o
            .logits
            .ok_or_else(|| Error::input("the model returned no logits"))?;
        for (b, &i) in batch.iter().enumerate() {
            for (t, &l) in feats[i].labels.iter().enumerate() {
                if l == IGNORE_INDEX {
                    continue;
                }
                let row = &logits.data[(b * enc.seq + t) * n..(b * enc.seq + t + 1) * n];
                gold_tags[i].push(cfg.label_name(l as usize));
                pred_tags[i].push(cfg.label_name(argmax(row)));
            }
        }
        done += batch.len() as u64;
        progress(done, total);
    }
    let scores = metrics::seqeval(&gold_tags, &pred_tags);
    let flat_gold: Vec<&String> = gold_tags.iter().flatten().collect();
    let flat_pred: Vec<&String> = pred_tags.iter().flatten().collect();
    Ok(EvalReport {
        task: "token-classification",
        examples: ex.len(),
        sequences: ex.len(),
        loss: loss_sum / ex.len() as f64,
        metrics: vec![
            ("precision", scores.precision),
            ("recall", scores.recall),
            ("f1", scores.f1),
            ("accuracy", metrics::accuracy(&flat_pred, &flat_gold)),
        ],
    })
}

/// Stacks (1, choices, seq_i) encodings with the same number of choices into
/// one (batch, choices, max seq) encoding.
fn stack_choices(parts: &[&Encoding], pad_id: u32) -> Result<Encoding> {
    let c = parts.first().and_then(|p| p.choices).unwrap_or(1);
    let seq = parts.iter().map(|p| p.seq).max().unwrap_or(0);
    let mut out = Encoding {
        input_ids: Vec::new(),
        attention_mask: Vec::new(),
        token_type_ids: Vec::new(),
        batch: parts.len(),
        choices: Some(c),
        seq,
    };
    for p in parts {
        if p.choices != Some(c) {
            return Err(Error::input(
                "examples in one batch have different numbers of options",
            ));
        }
        for r in 0..c {
            let row = r * p.seq..(r + 1) * p.seq;
            let pad = seq - p.seq;
            out.input_ids.extend_from_slice(&p.input_ids[row.clone()]);
            out.input_ids.extend(std::iter::repeat_n(pad_id, pad));
            out.attention_mask
                .extend_from_slice(&p.attention_mask[row.clone()]);
            out.attention_mask.extend(std::iter::repeat_n(0, pad));
            out.token_type_ids.extend_from_slice(&p.token_type_ids[row]);
            out.token_type_ids.extend(std::iter::repeat_n(0, pad));
        }
    }
    Ok(out)
}

fn eval_choice(
    model: &Model,
    path: &Path,
    ex: &[crate::datasets::ChoiceExample],
    opts: &EvalOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<EvalReport> {
    let tok = tokenizer(model)?;
    let mut encs = Vec::with_capacity(ex.len());
    let mut gold = Vec::with_capacity(ex.len());
    for e in ex {
        let Some(l) = e.label else {
            return Err(row_err(
                path,
                e.line,
                "label",
                "missing (eval needs labelled rows)",
            ));
        };
        gold.push(l as i64);
        encs.push(choice_encoding(
            tok,
            e.context.as_deref(),
            &e.question,
            &e.options,
        )?);
    }
    // A batch shares its number of options (the scheduler's group).
    let shapes: Vec<Shape> = encs
        .iter()
        .map(|e| Shape {
            sequences: e.choices.unwrap_or(1),
            len: e.seq,
            group: e.choices.unwrap_or(1) as u64,
        })
        .collect();
    let batches = buckets(model, &shapes, opts);
    let total = ex.len() as u64;
    progress(0, total);
    let (mut loss_sum, mut done, mut correct) = (0.0f64, 0u64, 0usize);
    for batch in batches {
        let parts: Vec<&Encoding> = batch.iter().map(|&i| &encs[i]).collect();
        let enc = stack_choices(&parts, tok.pad_id())?;
        let labels = Labels::Classes(batch.iter().map(|&i| gold[i]).collect());
        let o = model.forward_with_labels(&enc, &labels)?;
        loss_sum += f64::from(o.loss.unwrap_or(f32::NAN)) * batch.len() as f64;
        let logits = o
            .logits
            .ok_or_else(|| Error::input("the model returned no logits"))?;
        let c = enc.choices.unwrap_or(1);
        for (row, &i) in logits.data.chunks_exact(c).zip(&batch) {
            correct += usize::from(argmax(row) as i64 == gold[i]);
        }
        done += batch.len() as u64;
        progress(done, total);
    }
    Ok(EvalReport {
        task: "multiple-choice",
        examples: ex.len(),
        sequences: ex.len(),
        loss: loss_sum / ex.len() as f64,
        metrics: vec![("accuracy", correct as f64 / ex.len() as f64)],
    })
}

fn eval_qa(
    model: &Model,
    _path: &Path,
    ex: &[crate::datasets::QaExample],
    opts: &EvalOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<EvalReport> {
    let tok = tokenizer(model)?;
    let (max_len, stride) = opts.qa.window(model.config().max_position_embeddings)?;
    let mut feats: Vec<(usize, QaFeature)> = Vec::new();
    for (k, e) in ex.iter().enumerate() {
        let answer = e.answers.first().map(|a| (a.text.as_str(), a.start));
        for f in prepare_qa_spans(tok, &e.question, &e.context, answer, max_len, stride)? {
            feats.push((k, f));
        }
    }
    let shapes: Vec<Shape> = feats.iter().map(|(_, f)| single(f.encoded.len())).collect();
    let total = feats.len() as u64;
    progress(0, total);
    let (mut loss_sum, mut done) = (0.0f64, 0u64);
    let mut logits: Vec<(Vec<f32>, Vec<f32>)> = vec![(Vec::new(), Vec::new()); feats.len()];
    for batch in buckets(model, &shapes, opts) {
        let refs: Vec<&Encoded> = batch.iter().map(|&i| &feats[i].1.encoded).collect();
        let enc = batch_encoding(&refs, tok.pad_id())?;
        // The loss of each window over its own tokens: BertForQuestionAnswering's
        // loss on a padded batch would count padded positions in the softmax,
        // making it depend on the batch; this is its loss on the window alone.
        let o = model.forward(&enc)?;
        let (Some(s), Some(e)) = (o.start_logits, o.end_logits) else {
            return Err(Error::input("the model returned no start/end logits"));
        };
        for (b, &i) in batch.iter().enumerate() {
            let f = &feats[i].1;
            let len = f.encoded.len();
            let row = b * enc.seq;
            let (sl, el) = (&s.data[row..row + len], &e.data[row..row + len]);
            let ce = |l: &[f32], t: usize| -> Result<f64> {
                Ok(f64::from(cross_entropy(l, len, &[t as i64], IGNORE_INDEX)?))
            };
            loss_sum += (ce(sl, f.start_position)? + ce(el, f.end_position)?) / 2.0;
            logits[i] = (sl.to_vec(), el.to_vec());
        }
        done += batch.len() as u64;
        progress(done, total);
    }
    let best = QaOptions {
        top_k: 1,
        ..opts.qa.clone()
    };
    let mut pairs: Vec<(String, Vec<String>)> = Vec::with_capacity(ex.len());
    let mut first = 0usize;
    for (k, e) in ex.iter().enumerate() {
        let count = feats[first..].iter().take_while(|(j, _)| *j == k).count();
        let mine: Vec<usize> = (first..first + count).collect();
        first += count;
        let ws: Vec<&Encoded> = mine.iter().map(|&i| &feats[i].1.encoded).collect();
        let ls: Vec<(&[f32], &[f32])> = mine
            .iter()
            .map(|&i| (logits[i].0.as_slice(), logits[i].1.as_slice()))
            .collect();
        let pred = qa_postprocess(tok, &e.context, &ws, &ls, &best)
            .into_iter()
            .next()
            .map(|a| a.answer)
            .unwrap_or_default();
        let golds: Vec<String> = if e.answers.is_empty() {
            vec![String::new()]
        } else {
            e.answers.iter().map(|a| a.text.clone()).collect()
        };
        pairs.push((pred, golds));
    }
    let s = metrics::squad(&pairs);
    Ok(EvalReport {
        task: "question-answering",
        examples: ex.len(),
        sequences: feats.len(),
        loss: loss_sum / feats.len().max(1) as f64,
        metrics: vec![("exact_match", s.exact_match), ("f1", s.f1)],
    })
}
