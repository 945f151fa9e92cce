//! Examples → model inputs as HF's recipes prepare them: word labels
//! aligned to sub-tokens, character answers to token spans, options to
//! (first, second) text pairs.

use crate::config::BertConfig;
use crate::error::Result;
use crate::heads::IGNORE_INDEX;
use crate::tokenize::{BertTokenizer, Encoded};

/// Aligns word-level labels to sub-tokens as `run_ner.py`'s
/// `tokenize_and_align_labels`: special tokens get -100, the first token of
/// each word gets the word's label, the following tokens -100 — or, with
/// `label_all_tokens`, the word's label too, mapped through `b_to_i` when
/// given (`run_ner.py` turns `B-X` into `I-X`; `None` keeps labels as they are).
pub fn align_word_labels(
    word_ids: &[Option<u32>],
    word_labels: &[i64],
    label_all_tokens: bool,
    b_to_i: Option<&dyn Fn(i64) -> i64>,
) -> Vec<i64> {
    let mut out = Vec::with_capacity(word_ids.len());
    let mut prev: Option<u32> = None;
    for w in word_ids {
        let label = match w {
            None => IGNORE_INDEX,
            Some(w) => {
                let l = word_labels
                    .get(*w as usize)
                    .copied()
                    .unwrap_or(IGNORE_INDEX);
                if Some(*w) != prev {
                    l
                } else if label_all_tokens {
                    b_to_i.map_or(l, |f| if l == IGNORE_INDEX { l } else { f(l) })
                } else {
                    IGNORE_INDEX
                }
            }
        };
        out.push(label);
        prev = *w;
    }
    out
}

/// The `B-X` → `I-X` class map of a model's labels (identity for classes
/// without a matching `I-` label), as `run_ner.py`'s `b_to_i_label`.
pub fn b_to_i_map(cfg: &BertConfig) -> Vec<i64> {
    (0..cfg.num_labels)
        .map(|i| {
            let name = cfg.label_name(i);
            name.strip_prefix("B-")
                .and_then(|t| (0..cfg.num_labels).find(|&j| cfg.label_name(j) == format!("I-{t}")))
                .unwrap_or(i) as i64
        })
        .collect()
}

/// Word-split input and its sub-token labels.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenFeature {
    /// The encoded words.
    pub encoded: Encoded,
    /// One label per token (-100 where ignored).
    pub labels: Vec<i64>,
}

/// Tokenizes words and aligns their labels (class indices) to sub-tokens,
/// as HF's token-classification recipe: with `label_all_tokens` every
/// sub-token gets its word's label unchanged (use [`align_word_labels`]
/// with [`b_to_i_map`] for `run_ner.py`'s B-→I- variant).
pub fn prepare_token_labels(
    tok: &BertTokenizer,
    words: &[String],
    labels: &[i64],
    label_all_tokens: bool,
) -> Result<TokenFeature> {
    let encoded = tok.encode_words(words)?;
    let labels = align_word_labels(&encoded.word_ids, labels, label_all_tokens, None);
    Ok(TokenFeature { encoded, labels })
}

/// Token start/end of a character answer span `[start_char, end_char)` in
/// one window, as the HF course's `preprocess_training_examples` (and
/// `run_qa.py`): the `[CLS]` index for both when the answer is not wholly
/// inside the window's context tokens; `context_seq` is the sequence id of
/// the context (1 when the question comes first). The end is inclusive.
pub fn qa_positions(
    window: &Encoded,
    cls_id: Option<u32>,
    start_char: usize,
    end_char: usize,
    context_seq: usize,
) -> (usize, usize) {
    let cls_index = cls_id
        .and_then(|c| window.ids.iter().position(|&i| i == c))
        .unwrap_or(0);
    let seq = &window.sequence_ids;
    let offsets = &window.offsets;
    let Some(context_start) = seq.iter().position(|s| *s == Some(context_seq)) else {
        return (cls_index, cls_index);
    };
    let context_end = context_start
        + seq[context_start..]
            .iter()
            .take_while(|s| **s == Some(context_seq))
            .count()
        - 1;
    if offsets[context_start].0 > start_char || offsets[context_end].1 < end_char {
        return (cls_index, cls_index);
    }
    let mut idx = context_start;
    while idx <= context_end && offsets[idx].0 <= start_char {
        idx += 1;
    }
    let start = idx - 1;
    let mut idx = context_end as isize;
    while idx >= context_start as isize && offsets[idx as usize].1 >= end_char {
        idx -= 1;
    }
    (start, (idx + 1) as usize)
}

/// One question-answering training window with its target positions.
#[derive(Debug, Clone, PartialEq)]
pub struct QaFeature {
    /// The window (`[CLS] question [SEP] context slice [SEP]`).
    pub encoded: Encoded,
    /// Answer start token (the `[CLS]` index when not in this window).
    pub start_position: usize,
    /// Answer end token (inclusive; the `[CLS]` index when not in this window).
    pub end_position: usize,
}

/// Splits (question, context) into windows of `max_length` tokens
/// overlapping by `stride` (no padding) and labels each with the answer's
/// token span (the HF course's `preprocess_training_examples`). `answer` is (text, character
/// start); `None` labels every window with `[CLS]`.
pub fn prepare_qa_spans(
    tok: &BertTokenizer,
    question: &str,
    context: &str,
    answer: Option<(&str, usize)>,
    max_length: usize,
    stride: usize,
) -> Result<Vec<QaFeature>> {
    let windows = tok.encode_windows(question, context, max_length, stride)?;
    let cls = tok.cls_id();
    Ok(windows
        .into_iter()
        .map(|w| {
            let (s, e) = match answer {
                Some((text, start)) => {
                    qa_positions(&w, cls, start, start + text.chars().count(), 1)
                }
                None => {
                    let c = cls
                        .and_then(|c| w.ids.iter().position(|&i| i == c))
                        .unwrap_or(0);
                    (c, c)
                }
            };
            QaFeature {
                encoded: w,
                start_position: s,
                end_position: e,
            }
        })
        .collect())
}

/// The (first, second) texts of a multiple-choice example's options: with
/// a context, (context, question + " " + option); without, (question, option).
pub fn choice_pairs(
    context: Option<&str>,
    question: &str,
    options: &[String],
) -> Vec<(String, String)> {
    options
        .iter()
        .map(|o| match context {
            Some(c) => (c.to_string(), format!("{question} {o}")),
            None => (question.to_string(), o.clone()),
        })
        .collect()
}
