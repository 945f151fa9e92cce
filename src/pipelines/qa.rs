//! `question-answering`: extractive answers with transformers 4.x
//! `QuestionAnsweringPipeline` semantics (fast-tokenizer path): overlapping
//! windows (`truncation="only_second"`, `stride=doc_stride`), `p_mask` over
//! the question and special tokens with `[CLS]` kept, per-window softmax of
//! start and end logits, `decode_spans`, answers aligned to words and
//! merged by text.

use serde::Serialize;

use super::jobs::QaJob;
use crate::batch::BatchOptions;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::tokenize::{BertTokenizer, Encoded};

/// A question about a context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QaInput {
    /// The question.
    pub question: String,
    /// The passage to answer from.
    pub context: String,
}

impl QaInput {
    /// A (question, context) pair.
    pub fn new(question: impl Into<String>, context: impl Into<String>) -> Self {
        QaInput {
            question: question.into(),
            context: context.into(),
        }
    }
}

/// Options for [`qa`], with the pipeline's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QaOptions {
    /// Answers to return per question (fewer when there are fewer candidates).
    pub top_k: usize,
    /// Tokens per window; default `min(384, max_position_embeddings)`.
    pub max_seq_len: Option<usize>,
    /// Overlap between windows; default `min(max_seq_len / 2, 128)`.
    pub doc_stride: Option<usize>,
    /// Accepted for compatibility; like 4.x's fast-tokenizer path, unused.
    pub max_question_len: usize,
    /// Longest answer in tokens.
    pub max_answer_len: usize,
    /// Also offer the empty answer, scored by `[CLS]`.
    pub handle_impossible_answer: bool,
    /// Widen answers to whole words (4.x default true).
    pub align_to_words: bool,
    /// Windows per forward pass.
    pub batch_size: usize,
}

impl Default for QaOptions {
    fn default() -> Self {
        QaOptions {
            top_k: 1,
            max_seq_len: None,
            doc_stride: None,
            max_question_len: 64,
            max_answer_len: 15,
            handle_impossible_answer: false,
            align_to_words: true,
            batch_size: 16,
        }
    }
}

impl QaOptions {
    /// `(max_seq_len, doc_stride)` after defaults for a model whose
    /// positions stop at `max_positions`.
    pub fn window(&self, max_positions: usize) -> Result<(usize, usize)> {
        let max_seq_len = self.max_seq_len.unwrap_or(384.min(max_positions));
        let stride = self.doc_stride.unwrap_or((max_seq_len / 2).min(128));
        if stride > max_seq_len {
            return Err(Error::input(format!(
                "doc_stride ({stride}) is larger than max_seq_len ({max_seq_len})"
            )));
        }
        if max_seq_len > max_positions {
            return Err(Error::input(format!(
                "max_seq_len {max_seq_len} exceeds the {max_positions} positions the model has"
            )));
        }
        Ok((max_seq_len, stride))
    }
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// p(start) · p(end), summed over spans giving the same text.
    pub score: f64,
    /// Start character in the context.
    pub start: usize,
    /// End character (exclusive) in the context.
    pub end: usize,
    /// `context[start..end]`.
    pub answer: String,
}

/// Answers each question: up to `top_k` answers, best first.
pub fn qa(model: &Model, inputs: &[QaInput], opts: &QaOptions) -> Result<Vec<Vec<Answer>>> {
    let job = QaJob::new(model, opts)?;
    let batch = BatchOptions {
        max_sequences: opts.batch_size.max(1),
        ..BatchOptions::default()
    };
    crate::batch::collect(&job, inputs.to_vec(), model, &batch)
}

/// Softmax over the window with undesired tokens at -10000, as numpy
/// computes it in f32.
fn masked_softmax(logits: &[f32], desired: &[bool]) -> Vec<f32> {
    let masked: Vec<f32> = logits
        .iter()
        .zip(desired)
        .map(|(&l, &d)| if d { l } else { -10000.0 })
        .collect();
    let max = masked.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = masked.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// The pipeline's `postprocess` for one question: windows with their
/// (start, end) logits → answers, best first, at most `top_k`.
pub fn qa_postprocess(
    tok: &BertTokenizer,
    context: &str,
    windows: &[&Encoded],
    logits: &[(&[f32], &[f32])],
    opts: &QaOptions,
) -> Vec<Answer> {
    let cls = tok.cls_id();
    let chars: Vec<char> = context.chars().collect();
    // A span of the context, clamped as Python's context[s:e] is. The
    // offsets need it too: a "[CLS]" typed inside the question is unmasked
    // like the real one (as HF does), and its offsets are the question's.
    let clamp = |s: usize, e: usize| -> (usize, usize) {
        let e = e.min(chars.len());
        (s.min(e), e)
    };
    let mut min_null_score = 1_000_000f64;
    let mut answers: Vec<Answer> = Vec::new();
    let pre_topk = if opts.align_to_words {
        opts.top_k * 2 + 10
    } else {
        opts.top_k
    };
    for (w, (start_logits, end_logits)) in windows.iter().zip(logits) {
        let n = w.len().min(start_logits.len()).min(end_logits.len());
        // p_mask: 0 for context tokens and [CLS]; undesired = !(p_mask == 0).
        let desired: Vec<bool> = (0..n)
            .map(|i| w.sequence_ids[i] == Some(1) || Some(w.ids[i]) == cls)
            .collect();
        let mut ps = masked_softmax(&start_logits[..n], &desired);
        let mut pe = masked_softmax(&end_logits[..n], &desired);
        if opts.handle_impossible_answer && n > 0 {
            min_null_score = min_null_score.min(f64::from(ps[0] * pe[0]));
        }
        if n > 0 {
            ps[0] = 0.0;
            pe[0] = 0.0;
        }
        // decode_spans: candidates end >= start, end - start < max_answer_len,
        // best `pre_topk` of the whole (n × n) matrix, then both ends desired.
        let mut cands: Vec<(f32, usize, usize)> = Vec::new();
        for (s, &p_start) in ps.iter().enumerate() {
            let stop = n.min(s + opts.max_answer_len);
            for (e, &p_end) in pe.iter().enumerate().take(stop).skip(s) {
                cands.push((p_start * p_end, s, e));
            }
        }
        // Flat (row-major) order breaks ties, as argmax does.
        cands.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        cands.truncate(pre_topk);
        for (score, s, e) in cands {
            if !(desired[s] && desired[e]) {
                continue;
            }
            let (start, end) = indices(w, s, e, opts.align_to_words);
            let (start, end) = clamp(start, end);
            let target: String = chars[start..end].iter().collect();
            let lower = target.to_lowercase();
            match answers
                .iter_mut()
                .find(|a| a.answer.to_lowercase() == lower)
            {
                Some(a) => a.score += f64::from(score),
                None => answers.push(Answer {
                    score: f64::from(score),
                    start,
                    end,
                    answer: target,
                }),
            }
        }
    }
    if opts.handle_impossible_answer {
        answers.push(Answer {
            score: min_null_score,
            start: 0,
            end: 0,
            answer: String::new(),
        });
    }
    // Python's sorted(..., reverse=True) is stable.
    answers.sort_by(|a, b| b.score.total_cmp(&a.score));
    answers.truncate(opts.top_k);
    answers
}

/// `get_indices`: the character span of tokens s..=e, widened to whole
/// words; the raw token offsets when a token has no word (`[CLS]`).
fn indices(w: &Encoded, s: usize, e: usize, align: bool) -> (usize, usize) {
    if align {
        if let (Some(sw), Some(ew)) = (w.token_to_word(s), w.token_to_word(e)) {
            if let (Some(a), Some(b)) = (w.word_to_chars(sw, 1), w.word_to_chars(ew, 1)) {
                return (a.0, b.1);
            }
        }
    }
    (w.offsets[s].0, w.offsets[e].1)
}
