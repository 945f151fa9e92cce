//! Multiple choice: which option answers the question. transformers has no
//! pipeline for it; this is the seed's recipe — pair every option with the
//! question (and context), run them as one `(1, choices, seq)` batch through
//! `BertForMultipleChoice`, softmax over the options.

use serde::Serialize;

use super::jobs::ChooseJob;
use crate::batch::BatchOptions;
use crate::datasets::choice_pairs;
use crate::error::{Error, Result};
use crate::inputs::Encoding;
use crate::model::Model;
use crate::tokenize::BertTokenizer;

/// A question with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceInput {
    /// Optional passage: pairs become (context, question + " " + option).
    pub context: Option<String>,
    /// The question: pairs are (question, option) without a context.
    pub question: String,
    /// The options (at least one).
    pub options: Vec<String>,
}

/// Options for [`choose`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChooseOptions {}

/// The chosen option.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    /// Index of the best option.
    pub choice: usize,
    /// Its text.
    pub option: String,
    /// Softmax over the options' logits.
    pub scores: Vec<f32>,
    /// The raw logits, one per option.
    pub logits: Vec<f32>,
}

/// Tokenizes one example's pairs as a `(1, choices, seq)` encoding (padded to
/// the longest pair, longest-first truncation).
pub fn choice_encoding(
    tok: &BertTokenizer,
    context: Option<&str>,
    question: &str,
    options: &[String],
) -> Result<Encoding> {
    if options.is_empty() {
        return Err(Error::input("no options to choose from"));
    }
    let (firsts, seconds): (Vec<String>, Vec<String>) =
        choice_pairs(context, question, options).into_iter().unzip();
    let mut enc = tok.encode(&firsts, Some(&seconds))?;
    enc.batch = 1;
    enc.choices = Some(options.len());
    Ok(enc)
}

/// Picks the best option of each input.
pub fn choose(model: &Model, inputs: &[ChoiceInput], _opts: &ChooseOptions) -> Result<Vec<Choice>> {
    let job = ChooseJob::new(model)?;
    crate::batch::collect(&job, inputs.to_vec(), model, &BatchOptions::default())
}
