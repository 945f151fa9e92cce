//! `text-classification`: labels and scores for each text.

use serde::Serialize;

use super::jobs::ClassifyJob;
use super::{sigmoid, softmax};
use crate::batch::BatchOptions;
use crate::config::{BertConfig, ProblemType};
use crate::error::{Error, Result};
use crate::model::Model;

/// How logits become scores (`function_to_apply`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassifyFunction {
    /// Raw logits.
    None,
    /// Softmax over the labels.
    Softmax,
    /// Sigmoid of each logit.
    Sigmoid,
}

impl std::str::FromStr for ClassifyFunction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(ClassifyFunction::None),
            "softmax" => Ok(ClassifyFunction::Softmax),
            "sigmoid" => Ok(ClassifyFunction::Sigmoid),
            o => Err(Error::input(format!(
                "unknown function_to_apply `{o}` (expected none, softmax or sigmoid)"
            ))),
        }
    }
}

/// The function transformers 4.x applies when none is given:
/// `problem_type` regression → none; multi-label, or a single label →
/// sigmoid; otherwise softmax.
pub fn default_function(cfg: &BertConfig) -> ClassifyFunction {
    match cfg.problem_type {
        Some(ProblemType::Regression) => ClassifyFunction::None,
        Some(ProblemType::MultiLabel) => ClassifyFunction::Sigmoid,
        _ if cfg.num_labels == 1 => ClassifyFunction::Sigmoid,
        _ => ClassifyFunction::Softmax,
    }
}

/// Options for [`classify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifyOptions {
    /// Keep the best `k` labels; `None` keeps all (sorted by score).
    pub top_k: Option<usize>,
    /// Override the default score function.
    pub function_to_apply: Option<ClassifyFunction>,
    /// Texts per forward pass at most (the batcher also keeps each under
    /// its token budget).
    pub batch_size: usize,
}

impl Default for ClassifyOptions {
    fn default() -> Self {
        ClassifyOptions {
            top_k: Some(1),
            function_to_apply: None,
            batch_size: 16,
        }
    }
}

/// One label with its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelScore {
    /// The label's name (`id2label`, else `LABEL_i`).
    pub label: String,
    /// Its score under the chosen function.
    pub score: f32,
}

/// Scores of one row of logits, sorted by score (descending, ties in
/// label order) and cut to `top_k`.
pub fn scores_from_logits(
    cfg: &BertConfig,
    logits: &[f32],
    opts: &ClassifyOptions,
) -> Vec<LabelScore> {
    let f = opts
        .function_to_apply
        .unwrap_or_else(|| default_function(cfg));
    let scores: Vec<f32> = match f {
        ClassifyFunction::None => logits.to_vec(),
        ClassifyFunction::Softmax => softmax(logits),
        ClassifyFunction::Sigmoid => logits.iter().map(|&x| sigmoid(x)).collect(),
    };
    let mut out: Vec<LabelScore> = scores
        .into_iter()
        .enumerate()
        .map(|(i, score)| LabelScore {
            label: cfg.label_name(i),
            score,
        })
        .collect();
    // Stable: equal scores keep label order, as Python's sort.
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    if let Some(k) = opts.top_k {
        out.truncate(k);
    }
    out
}

/// Classifies texts: for each, its labels sorted by score.
pub fn classify(
    model: &Model,
    texts: &[&str],
    opts: &ClassifyOptions,
) -> Result<Vec<Vec<LabelScore>>> {
    let pairs: Vec<(&str, Option<&str>)> = texts.iter().map(|t| (*t, None)).collect();
    classify_pairs(model, &pairs, opts)
}

/// Classifies texts with optional second segments (`{"text", "text_pair"}`).
pub fn classify_pairs(
    model: &Model,
    inputs: &[(&str, Option<&str>)],
    opts: &ClassifyOptions,
) -> Result<Vec<Vec<LabelScore>>> {
    let job = ClassifyJob::new(model, opts)?;
    let batch = BatchOptions {
        max_sequences: opts.batch_size.max(1),
        ..BatchOptions::default()
    };
    let owned = inputs
        .iter()
        .map(|(t, p)| (t.to_string(), p.map(str::to_string)))
        .collect();
    crate::batch::collect(&job, owned, model, &batch)
}
