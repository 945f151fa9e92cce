//! Cross-encoder reranking, as sentence-transformers' `CrossEncoder`:
//! `BertForSequenceClassification` on (query, text) pairs, its logits
//! through the model's activation (sigmoid when `num_labels == 1` unless the
//! files name another), `predict` per pair and `rank` sorted by score.

use serde::Serialize;

use super::require_head;
use crate::batch::{self, BatchOptions, Job, Shape};
use crate::embed::modules::read_cross_encoder;
use crate::embed::DenseActivation;
use crate::error::Result;
use crate::graph::Head;
use crate::model::{LoadOptions, Model};
use crate::source::Repo;
use crate::tokenize::{BertTokenizer, Encoded, TokenizerOptions};

/// A cross-encoder: a sequence-classification model scoring text pairs.
pub struct CrossEncoder {
    model: Model,
    tokenizer: BertTokenizer,
    activation: DenseActivation,
}

/// One ranked text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    /// Index of the text among those ranked.
    pub corpus_id: usize,
    /// Its score.
    pub score: f32,
}

impl CrossEncoder {
    /// Loads `source` (folder or Hub id) with its sequence-classification
    /// head; `max_length` overrides the files' truncation length.
    pub fn load(source: &str, load: &LoadOptions, max_length: Option<usize>) -> Result<Self> {
        let repo = Repo::open(source, load.revision.as_deref(), load.progress)?;
        let ce = read_cross_encoder(&repo)?;
        let mut load = load.clone();
        load.head = Some(Head::SequenceClassification);
        let model = Model::load_files(&repo.model_files("")?, &load)?;
        let activation = match &ce.activation_fn {
            Some(path) => {
                DenseActivation::from_class_path(path, &repo.required("config.json", "")?)?
            }
            None if model.config().num_labels == 1 => DenseActivation::Sigmoid,
            None => DenseActivation::Identity,
        };
        let max =
            max_length.unwrap_or_else(|| ce.transformer.max_length(model.config().max_tokens()));
        let tok = TokenizerOptions {
            max_length: Some(max),
            lowercase: ce.transformer.do_lower_case,
        };
        Self::from_model(model, activation, &tok)
    }

    /// Wraps a loaded sequence-classification model; `tok` sets its
    /// truncation and lowercasing.
    pub fn from_model(
        model: Model,
        activation: DenseActivation,
        tok: &TokenizerOptions,
    ) -> Result<Self> {
        require_head(&model, Head::SequenceClassification, "reranking")?;
        let tokenizer = super::tokenizer(&model)?.reconfigured(model.config(), tok)?;
        Ok(CrossEncoder {
            model,
            tokenizer,
            activation,
        })
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The tokenizer (with the model's truncation and lowercasing).
    pub fn tokenizer(&self) -> &BertTokenizer {
        &self.tokenizer
    }

    /// The activation applied to the logits.
    pub fn activation(&self) -> DenseActivation {
        self.activation
    }

    /// Scores of each (query, text) pair: `num_labels` values after the
    /// activation, as `CrossEncoder.predict`.
    pub fn predict(&self, pairs: &[(&str, &str)], opts: &BatchOptions) -> Result<Vec<Vec<f32>>> {
        let inputs = pairs
            .iter()
            .map(|(q, t)| (q.to_string(), t.to_string()))
            .collect();
        batch::collect(&RerankJob { ce: self }, inputs, &self.model, opts)
    }

    /// `texts` ranked against `query`, best first, at most `top_k`, as
    /// `CrossEncoder.rank` (the first score of each pair; ties keep input
    /// order).
    pub fn rank(
        &self,
        query: &str,
        texts: &[&str],
        top_k: Option<usize>,
        opts: &BatchOptions,
    ) -> Result<Vec<Ranked>> {
        let pairs: Vec<(&str, &str)> = texts.iter().map(|t| (query, *t)).collect();
        let scores = self.predict(&pairs, opts)?;
        Ok(rank_scores(scores.iter().map(|s| s[0]).collect(), top_k))
    }
}

/// Scores sorted best first (stable), cut to `top_k`.
pub fn rank_scores(scores: Vec<f32>, top_k: Option<usize>) -> Vec<Ranked> {
    let mut out: Vec<Ranked> = scores
        .into_iter()
        .enumerate()
        .map(|(corpus_id, score)| Ranked { corpus_id, score })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    if let Some(k) = top_k {
        out.truncate(k);
    }
    out
}

/// [`CrossEncoder`] on the batcher: (query, text) in, scores out.
pub struct RerankJob<'a> {
    /// The model.
    pub ce: &'a CrossEncoder,
}

impl Job for RerankJob<'_> {
    type Input = (String, String);
    type Item = Encoded;
    type Output = Vec<f32>;

    fn prepare(&self, (query, text): (String, String)) -> Result<Encoded> {
        self.ce.tokenizer.encode_one(&query, Some(&text))
    }

    fn shape(&self, item: &Encoded) -> Shape {
        Shape {
            sequences: 1,
            len: item.len(),
            group: 0,
        }
    }

    fn run(&self, items: &[&Encoded]) -> Result<Vec<Vec<f32>>> {
        let enc = crate::tokenize::batch_encoding(items, self.ce.tokenizer.pad_id())?;
        let logits = self.ce.model.logits(&enc)?;
        let n = self.ce.model.config().num_labels;
        Ok(logits
            .data
            .chunks_exact(n)
            .map(|row| {
                row.iter()
                    .map(|&x| self.ce.activation.apply_f32(x))
                    .collect()
            })
            .collect())
    }
}
