//! Dataset files for the seed's four tasks, as JSON lines or CSV (with a
//! header row), and their preparation into model inputs the way the HF
//! example scripts do it.
//!
//! | task | JSONL keys | CSV columns |
//! |---|---|---|
//! | sequence classification | `text`, optional `text_pair`, `label` (name, index, number; multi-label: a list of names/indices, or `num_labels` 0/1 values = multi-hot) | `text`, `text_pair`, `label` (multi-label: names or indices separated by spaces, or a JSON list) |
//! | token classification | `words` (array), `labels` (array of BIO names or indices) | `words`, `labels`: space-separated |
//! | multiple choice | optional `context`, `question`, `options` (array), `label` (index) | `context`, `question`, `option1` … `optionN` (or `options` as a JSON array), `label` |
//! | question answering | `context`, `question`, `answer_text`, `answer_start` (character index; both may be arrays of alternatives), or SQuAD's `answers: {"text": [...], "answer_start": [...]}` | `context`, `question`, `answer_text`, `answer_start` |
//!
//! `label` may also be called `answer` in multiple-choice rows. Other
//! fields are ignored; empty lines of a JSONL file are skipped. Every malformed row is an
//! [`Error::Dataset`] naming the file, the 1-based line and the field.
//!
//! Preparation (as HF's token-classification and question-answering recipes):
//! [`align_word_labels`] (word labels → first sub-token, the rest -100),
//! [`qa_positions`] (character answer → token start/end in one window, or
//! the `[CLS]` index when the answer is not wholly inside), and
//! [`choice_pairs`] (the (first, second) text of every option).

mod examples;
mod files;
mod prepare;

pub use examples::*;
pub use files::*;
pub use prepare::*;

use crate::error::{Error, Result};

/// The four labelled tasks of the seed document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Text (+ pair) → class, classes or a number.
    Classification,
    /// Words → one BIO tag per word.
    TokenClassification,
    /// (context,) question, options → index of the right option.
    MultipleChoice,
    /// Context, question → answer span.
    QuestionAnswering,
}

impl std::str::FromStr for Task {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "classify" | "classification" | "text-classification" | "sequence-classification" => {
                Ok(Task::Classification)
            }
            "ner" | "token-classification" => Ok(Task::TokenClassification),
            "choose" | "multiple-choice" => Ok(Task::MultipleChoice),
            "qa" | "question-answering" => Ok(Task::QuestionAnswering),
            o => Err(Error::input(format!(
                "unknown task `{o}` (expected classify, ner, choose or qa)"
            ))),
        }
    }
}
