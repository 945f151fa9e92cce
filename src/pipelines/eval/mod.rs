//! Evaluation of a labelled dataset, streamed through the batcher: each
//! task is a [`Job`] whose output per example is its [`Stats`] (loss share,
//! counts), summed as results arrive, so memory stays flat in the dataset
//! size. The report is made from the sums.
//!
//! - loss: the mean of the per-batch losses of [`Model::forward_with_labels`]
//!   weighted by the examples in each batch, as HF `Trainer.evaluate`'s
//!   `eval_loss` (each example of a batch carries the batch's loss).
//!   Question answering: the mean over windows of (CE(start) + CE(end)) / 2,
//!   each window's softmax over its own tokens (the model's loss on a padded
//!   batch would count the padding, so this is its loss on each window
//!   alone: independent of the batch size).
//! - sequence classification: accuracy (argmax; multi-label: every label
//!   right at sigmoid ≥ 0.5); regression: mean squared error. As HF decides
//!   per batch from the labels' dtype, an example with a list label is
//!   multi-label, one with a class single-label, and the two never share a
//!   batch.
//! - token classification: seqeval entity precision / recall / F1 and token
//!   accuracy over the labelled sub-tokens (as `run_ner.py`); entities never
//!   cross examples, so per-example counts add up to seqeval's.
//! - multiple choice: accuracy.
//! - question answering: SQuAD exact match and F1 of the pipeline's best
//!   answer against all gold answers (as `run_qa.py` + `squad` metric).

mod choice;
mod classify;
mod qa;
mod tokens;

use std::path::Path;

use serde::ser::SerializeMap;
use serde::Serialize;

pub use choice::ChoiceEval;
pub use classify::ClassifyEval;
pub use qa::QaEval;
pub use tokens::TokensEval;

use super::qa::QaOptions;
use crate::batch::{self, BatchOptions, Job, Progress, Shape};
use crate::datasets::Dataset;
use crate::error::{Error, Result};
use crate::model::Model;

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

impl EvalOptions {
    /// The batcher's options. Any padding is allowed: the loss (HF's mean
    /// of per-batch losses) depends on how examples are batched, and
    /// `batch_size` alone should decide that.
    pub fn batch(&self) -> BatchOptions {
        BatchOptions {
            max_tokens: self.batch_tokens,
            max_sequences: self.batch_size.max(1),
            min_fill: Some(0.0),
            ..BatchOptions::default()
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

/// What one example (or, summed, a dataset) contributes to the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Examples.
    pub examples: u64,
    /// Sequences run (QA: windows).
    pub sequences: u64,
    /// Sum of loss terms, and how many terms (examples; QA: windows).
    pub loss_sum: f64,
    /// Terms in `loss_sum`.
    pub loss_terms: u64,
    /// Examples predicted right (classification, multiple choice).
    pub correct: u64,
    /// Squared error summed (regression).
    pub squared_error: f64,
    /// Gold, predicted and matching entities (token classification).
    pub entities: (u64, u64, u64),
    /// Labelled tokens predicted right, and labelled tokens.
    pub tokens: (u64, u64),
    /// SQuAD exact match and F1, summed over examples (each 0..1).
    pub squad: (f64, f64),
}

impl Stats {
    /// Adds `o` in.
    pub fn add(&mut self, o: &Stats) {
        self.examples += o.examples;
        self.sequences += o.sequences;
        self.loss_sum += o.loss_sum;
        self.loss_terms += o.loss_terms;
        self.correct += o.correct;
        self.squared_error += o.squared_error;
        self.entities.0 += o.entities.0;
        self.entities.1 += o.entities.1;
        self.entities.2 += o.entities.2;
        self.tokens.0 += o.tokens.0;
        self.tokens.1 += o.tokens.1;
        self.squad.0 += o.squad.0;
        self.squad.1 += o.squad.1;
    }

    fn report(&self, task: &'static str, metrics: Vec<(&'static str, f64)>) -> EvalReport {
        EvalReport {
            task,
            examples: self.examples as usize,
            sequences: self.sequences as usize,
            loss: self.loss_sum / self.loss_terms.max(1) as f64,
            metrics,
        }
    }

    /// `correct / examples`.
    fn accuracy(&self) -> f64 {
        self.correct as f64 / self.examples.max(1) as f64
    }
}

/// A task's evaluation on the batcher: one [`Stats`] per example, and the
/// report from their sum.
pub trait EvalJob: Job<Output = Stats> {
    /// The report of the summed stats.
    fn report(&self, total: &Stats) -> EvalReport;
}

/// Runs `job` over `examples` (`(line, example)`), summing as results
/// arrive; `progress` after every forward pass. An empty input is an error
/// naming `path`.
pub fn evaluate_stream<J, I>(
    job: &J,
    model: &Model,
    path: &Path,
    examples: I,
    opts: &EvalOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<EvalReport>
where
    J: EvalJob,
    I: Iterator<Item = Result<(usize, J::Input)>> + Send,
{
    let b = opts.batch();
    let mut total = Stats::default();
    batch::run(
        job,
        examples,
        b.limits(model),
        b.window,
        &mut |s| {
            total.add(&s);
            Ok(())
        },
        progress,
    )?;
    if total.examples == 0 {
        return Err(Error::input(format!(
            "{}: the dataset has no rows",
            path.display()
        )));
    }
    Ok(job.report(&total))
}

/// Runs `model` over an in-memory labelled dataset. `path` names the file
/// in errors; `progress(done, total)` is called as batches finish.
pub fn evaluate(
    model: &Model,
    path: &Path,
    data: &Dataset,
    opts: &EvalOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<EvalReport> {
    let total = data.len() as u64;
    let mut p = |x: &Progress| progress(x.inputs, total);
    fn lines<T: Clone>(v: &[T], line: impl Fn(&T) -> usize) -> Vec<Result<(usize, T)>> {
        v.iter().map(|e| Ok((line(e), e.clone()))).collect()
    }
    match data {
        Dataset::Classification(ex) => {
            let job = ClassifyEval::new(model, path)?;
            let it = lines(ex, |e| e.line).into_iter();
            evaluate_stream(&job, model, path, it, opts, &mut p)
        }
        Dataset::TokenClassification(ex) => {
            let job = TokensEval::new(model, path, opts.label_all_tokens)?;
            let it = lines(ex, |e| e.line).into_iter();
            evaluate_stream(&job, model, path, it, opts, &mut p)
        }
        Dataset::MultipleChoice(ex) => {
            let job = ChoiceEval::new(model, path)?;
            let it = lines(ex, |e| e.line).into_iter();
            evaluate_stream(&job, model, path, it, opts, &mut p)
        }
        Dataset::QuestionAnswering(ex) => {
            let job = QaEval::new(model, &opts.qa)?;
            let it = lines(ex, |e| e.line).into_iter();
            evaluate_stream(&job, model, path, it, opts, &mut p)
        }
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

/// The error of a row without its label.
fn unlabelled(path: &Path, row: usize, field: &str) -> Error {
    row_err(path, row, field, "missing (eval needs labelled rows)")
}

/// One sequence of `len` tokens in `group`.
fn single(len: usize, group: u64) -> Shape {
    Shape {
        sequences: 1,
        len,
        group,
    }
}
