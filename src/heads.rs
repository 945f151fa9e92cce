//! Task heads' outputs and losses, exactly as `modeling_bert.py` defines them.
//! The head's linear layer runs on the executor (it is part of the graph);
//! only the small logits come back, and the losses are computed here.

use crate::config::{BertConfig, ProblemType};
use crate::error::{Error, Result};
use crate::graph::Head;

/// Labels for one batch, in the form each head expects.
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    /// Class indices, one per example (sequence classification, multiple
    /// choice) or per token (token classification; -100 is ignored).
    Classes(Vec<i64>),
    /// Float targets: regression values (batch) or multi-hot rows
    /// (batch · num_labels).
    Floats(Vec<f32>),
    /// Question answering spans, one start and end position per example.
    Spans {
        /// Start token index per example.
        start: Vec<i64>,
        /// End token index per example.
        end: Vec<i64>,
    },
}

/// Index HF's cross-entropy ignores.
pub const IGNORE_INDEX: i64 = -100;

/// Cross-entropy of `logits` (rows, classes) against `targets`, mean over the
/// rows whose target is not `ignore`. Out-of-range targets are an error.
pub fn cross_entropy(logits: &[f32], classes: usize, targets: &[i64], ignore: i64) -> Result<f32> {
    let mut total = 0.0f64;
    let mut count = 0usize;
    for (row, &t) in logits.chunks_exact(classes).zip(targets) {
        if t == ignore {
            continue;
        }
        if t < 0 || t as usize >= classes {
            return Err(Error::Labels(format!(
                "class index {t} is out of range for {classes} classes"
            )));
        }
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let lse = max
            + row
                .iter()
                .map(|&v| (v as f64 - max).exp())
                .sum::<f64>()
                .ln();
        total += lse - row[t as usize] as f64;
        count += 1;
    }
    // torch returns NaN for a mean over no elements.
    Ok((total / count as f64) as f32)
}

/// Mean squared error.
pub fn mse(pred: &[f32], target: &[f32]) -> f32 {
    let s: f64 = pred
        .iter()
        .zip(target)
        .map(|(&p, &t)| (p as f64 - t as f64).powi(2))
        .sum();
    (s / pred.len() as f64) as f32
}

/// Binary cross-entropy with logits, mean over all elements.
pub fn bce_with_logits(logits: &[f32], target: &[f32]) -> f32 {
    let s: f64 = logits
        .iter()
        .zip(target)
        .map(|(&x, &y)| {
            let (x, y) = (x as f64, y as f64);
            x.max(0.0) - x * y + (-x.abs()).exp().ln_1p()
        })
        .sum();
    (s / logits.len() as f64) as f32
}

/// The loss of `head` given its logits and labels.
///
/// - sequence classification: `problem_type` from config.json, else as HF
///   infers it (1 label → MSE, integer labels → cross-entropy, floats → BCE).
/// - token classification: cross-entropy over tokens, -100 ignored.
/// - multiple choice: cross-entropy over choices.
/// - question answering: (CE(start) + CE(end)) / 2, positions clamped to
///   [0, seq] with `seq` ignored.
pub fn loss(
    cfg: &BertConfig,
    head: Head,
    labels: &Labels,
    logits: &[f32],
    end_logits: Option<&[f32]>,
    batch: usize,
    width: usize,
) -> Result<f32> {
    let shape_err = |what: &str, got: usize, want: usize| {
        Err(Error::Labels(format!(
            "{what}: got {got} values, expected {want}"
        )))
    };
    match (head, labels) {
        (Head::Base, _) => Err(Error::Labels(
            "the base model has no head, so labels cannot be used".into(),
        )),
        (Head::SequenceClassification, labels) => {
            let n = cfg.num_labels;
            let problem = cfg.problem_type.unwrap_or(match labels {
                _ if n == 1 => ProblemType::Regression,
                Labels::Classes(_) => ProblemType::SingleLabel,
                _ => ProblemType::MultiLabel,
            });
            match (problem, labels) {
                (ProblemType::Regression, Labels::Classes(c)) => {
                    let f: Vec<f32> = c.iter().map(|&v| v as f32).collect();
                    loss(cfg, head, &Labels::Floats(f), logits, None, batch, width)
                }
                (ProblemType::Regression, Labels::Floats(t)) => {
                    if t.len() != batch * n {
                        return shape_err("regression labels", t.len(), batch * n);
                    }
                    Ok(mse(logits, t))
                }
                (ProblemType::SingleLabel, Labels::Classes(c)) => {
                    if c.len() != batch {
                        return shape_err("labels", c.len(), batch);
                    }
                    cross_entropy(logits, n, c, IGNORE_INDEX)
                }
                (ProblemType::MultiLabel, Labels::Floats(t)) => {
                    if t.len() != batch * n {
                        return shape_err(
                            "multi-label labels ([batch][num_labels])",
                            t.len(),
                            batch * n,
                        );
                    }
                    Ok(bce_with_logits(logits, t))
                }
                (ProblemType::MultiLabel, Labels::Classes(c)) => {
                    let f: Vec<f32> = c.iter().map(|&v| v as f32).collect();
                    loss(cfg, head, &Labels::Floats(f), logits, None, batch, width)
                }
                (p, l) => Err(Error::Labels(format!(
                    "labels {} do not fit problem_type {p:?}",
                    kind(l)
                ))),
            }
        }
        (Head::TokenClassification, Labels::Classes(c)) => {
            if c.len() != batch * width {
                return shape_err("token labels ([batch][seq])", c.len(), batch * width);
            }
            cross_entropy(logits, cfg.num_labels, c, IGNORE_INDEX)
        }
        (Head::MultipleChoice, Labels::Classes(c)) => {
            if c.len() != batch {
                return shape_err("labels", c.len(), batch);
            }
            cross_entropy(logits, width, c, IGNORE_INDEX)
        }
        (Head::QuestionAnswering, Labels::Spans { start, end }) => {
            if start.len() != batch || end.len() != batch {
                return shape_err("start/end positions", start.len().min(end.len()), batch);
            }
            let end_logits = end_logits.ok_or_else(|| Error::Labels("no end logits".into()))?;
            let seq = width as i64;
            let clamp = |v: &[i64]| -> Vec<i64> { v.iter().map(|&p| p.clamp(0, seq)).collect() };
            let s = cross_entropy(logits, width, &clamp(start), seq)?;
            let e = cross_entropy(end_logits, width, &clamp(end), seq)?;
            Ok((s + e) / 2.0)
        }
        (h, l) => Err(Error::Labels(format!(
            "{} labels do not fit the {} head",
            kind(l),
            h.cli_name()
        ))),
    }
}

fn kind(l: &Labels) -> &'static str {
    match l {
        Labels::Classes(_) => "integer",
        Labels::Floats(_) => "float",
        Labels::Spans { .. } => "span",
    }
}
