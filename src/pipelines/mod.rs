//! Task pipelines: from text to answers, as `transformers` 4.x pipelines
//! compute them.
//!
//! | function | HF pipeline | head |
//! |---|---|---|
//! | [`embed`] | (sentence-transformers pooling) | base |
//! | [`classify`] | `text-classification` | sequence classification |
//! | [`ner`] | `token-classification` (`aggregation_strategy`) | token classification |
//! | [`qa`] | `question-answering` | question answering |
//! | [`choose`] | (none in HF: softmax over `BertForMultipleChoice` logits) | multiple choice |
//!
//! Each takes a loaded [`Model`] and a slice of inputs and returns one
//! typed result per input. [`eval`] runs labelled datasets
//! ([`crate::datasets`]) and reports loss and the task's metric
//! ([`crate::metrics`]); [`render`] formats results as tables or JSON.
//!
//! ```no_run
//! use bert_wgpu::{pipelines, Device, LoadOptions, Model};
//! # fn main() -> bert_wgpu::Result<()> {
//! let opts = LoadOptions { device: Device::Cpu, ..Default::default() };
//! let model = Model::load("tests/fixtures/pipelines/qa", &opts)?;
//! let answers = pipelines::qa(
//!     &model,
//!     &[pipelines::QaInput::new("Where is the Eiffel Tower?", "The Eiffel Tower is in Paris.")],
//!     &pipelines::QaOptions::default(),
//! )?;
//! println!("{}", answers[0][0].answer);
//! # Ok(()) }
//! ```

mod choose;
mod classify;
pub mod eval;
mod jobs;
mod ner;
mod qa;
pub mod render;
mod rerank;

pub use choose::{choice_encoding, choose, Choice, ChoiceInput, ChooseOptions};
pub use classify::{
    classify, classify_pairs, default_function, scores_from_logits, ClassifyFunction,
    ClassifyOptions, LabelScore,
};
pub use jobs::{ChooseJob, ClassifyJob, NerInput, NerJob, QaJob};
pub use ner::{aggregate, ner, ner_words, Aggregation, Entity, NerOptions, PreEntity};
pub use qa::{qa, qa_postprocess, Answer, QaInput, QaOptions};
pub use rerank::{rank_scores, CrossEncoder, Ranked, RerankJob};

use crate::batch::BatchOptions;
use crate::embed::{Chain, EmbedderOptions, EncodeOptions, Pooling};
use crate::error::{Error, Result};
use crate::graph::Head;
use crate::model::Model;
use crate::tokenize::BertTokenizer;

/// The model's tokenizer, or an error saying text input needs one.
pub(crate) fn tokenizer(model: &Model) -> Result<&BertTokenizer> {
    model.tokenizer().ok_or_else(|| {
        Error::Tokenizer(
            "this checkpoint has no tokenizer.json, so text pipelines cannot run: add the model's tokenizer.json to its folder".into(),
        )
    })
}

/// Errors unless `model` runs `head`.
pub(crate) fn require_head(model: &Model, head: Head, what: &str) -> Result<()> {
    if model.head() == head {
        Ok(())
    } else {
        Err(Error::input(format!(
            "{what} needs a {} model ({}), but this model runs the {} head; load it with that head or pick a fitting checkpoint",
            head.hf_class(model.config().class_prefix()),
            head.cli_name(),
            model.head().cli_name()
        )))
    }
}

/// Softmax over one row, in f32 as numpy does it for the pipelines
/// (`exp(x - max) / sum`).
pub fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = row.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// Logistic sigmoid `1 / (1 + exp(-x))`.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Index of the first maximum (numpy's `argmax`); 0 for an empty row.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] || (row[best].is_nan() && !v.is_nan()) {
            best = i;
        }
    }
    best
}

/// Options for [`embed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedOptions {
    /// Mean or `[CLS]` pooling.
    pub pooling: Pooling,
    /// L2-normalise each vector.
    pub normalize: bool,
    /// Texts per forward pass at most (the batcher also keeps each under
    /// its token budget).
    pub batch_size: usize,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            pooling: Pooling::Mean,
            normalize: true,
            batch_size: 32,
        }
    }
}

/// Sentence embeddings (one vector per text): the encoder's
/// `last_hidden_state` pooled over real tokens, as sentence-transformers,
/// through the streaming batcher. Runs on any head (the encoder's hidden
/// states are always available). For a sentence-transformers folder
/// (`modules.json`, prompts, Dense layers) use
/// [`crate::embed::SentenceEmbedder`].
pub fn embed(model: &Model, texts: &[&str], opts: &EmbedOptions) -> Result<Vec<Vec<f32>>> {
    let chain = Chain::new(
        model,
        None,
        &EmbedderOptions {
            pooling: Some(opts.pooling),
            normalize: Some(opts.normalize),
            max_seq_length: None,
        },
    )?;
    let encode = EncodeOptions {
        batch: BatchOptions {
            max_sequences: opts.batch_size.max(1),
            ..BatchOptions::default()
        },
        ..EncodeOptions::default()
    };
    chain.encode(model, texts, &encode)
}

/// The encoder's last hidden state of one text: (tokens, hidden) rows and
/// the token strings, special tokens included.
pub fn hidden_states(model: &Model, text: &str) -> Result<(Vec<String>, Vec<Vec<f32>>)> {
    let tok = tokenizer(model)?;
    let e = tok.encode_one(text, None)?;
    let enc = crate::tokenize::batch_encoding(&[&e], tok.pad_id())?;
    let hidden = model.hidden_states(&enc)?;
    let h = hidden.shape[2];
    Ok((
        e.tokens.clone(),
        hidden.data.chunks_exact(h).map(<[f32]>::to_vec).collect(),
    ))
}
