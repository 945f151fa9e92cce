//! `token-classification` (NER): entities with character spans, with
//! transformers 4.x `TokenClassificationPipeline` semantics
//! (`gather_pre_entities`, `aggregate`, `aggregate_words`, `group_entities`).

use serde::ser::SerializeMap;
use serde::Serialize;

use super::jobs::{NerInput, NerJob};
use super::{argmax, softmax};
use crate::batch::BatchOptions;
use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::tokenize::{BertTokenizer, Encoded};

/// `aggregation_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggregation {
    /// One entity per token (keys `entity`, `score`, `index`, `word`, `start`, `end`).
    #[default]
    None,
    /// Group adjacent tokens with the same type (B-/I- rules).
    Simple,
    /// Word label = first sub-token's label; then grouped.
    First,
    /// Word label from the mean of its sub-tokens' scores; then grouped.
    Average,
    /// Word label from its sub-token with the highest score; then grouped.
    Max,
}

impl std::str::FromStr for Aggregation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Aggregation::None),
            "simple" => Ok(Aggregation::Simple),
            "first" => Ok(Aggregation::First),
            "average" => Ok(Aggregation::Average),
            "max" => Ok(Aggregation::Max),
            o => Err(Error::input(format!(
                "unknown aggregation `{o}` (expected none, simple, first, average or max)"
            ))),
        }
    }
}

/// Options for [`ner`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NerOptions {
    /// How tokens become entities.
    pub aggregation: Aggregation,
    /// Labels (or entity groups) left out of the result; HF's default is `["O"]`.
    pub ignore_labels: Vec<String>,
    /// Texts per forward pass at most (the batcher also keeps each under
    /// its token budget).
    pub batch_size: usize,
}

impl Default for NerOptions {
    fn default() -> Self {
        NerOptions {
            aggregation: Aggregation::None,
            ignore_labels: vec!["O".into()],
            batch_size: 16,
        }
    }
}

/// One entity. Without aggregation, one per token (`index` is the token's
/// position, `label` its class); with aggregation, a group (`index` is
/// `None`, `label` the entity type without `B-`/`I-`).
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// `entity` (no aggregation) or `entity_group`.
    pub label: String,
    /// Softmax score (mean over the group when aggregated).
    pub score: f32,
    /// Token index in the encoded sequence (no aggregation only).
    pub index: Option<usize>,
    /// The token, or the group's tokens decoded.
    pub word: String,
    /// Start character in the input text.
    pub start: usize,
    /// End character (exclusive) in the input text.
    pub end: usize,
}

impl Serialize for Entity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self.index {
            Some(i) => {
                m.serialize_entry("entity", &self.label)?;
                m.serialize_entry("score", &self.score)?;
                m.serialize_entry("index", &i)?;
            }
            None => {
                m.serialize_entry("entity_group", &self.label)?;
                m.serialize_entry("score", &self.score)?;
            }
        }
        m.serialize_entry("word", &self.word)?;
        m.serialize_entry("start", &self.start)?;
        m.serialize_entry("end", &self.end)?;
        m.end()
    }
}

/// One non-special token with its scores, as `gather_pre_entities` builds it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreEntity {
    /// The token string (the text itself for `[UNK]`).
    pub word: String,
    /// Softmax over the labels.
    pub scores: Vec<f32>,
    /// Start character.
    pub start: usize,
    /// End character.
    pub end: usize,
    /// Token index.
    pub index: usize,
    /// Whether this token continues the previous word.
    pub is_subword: bool,
}

/// Token-level entities of one encoded text from its logits (seq, labels).
fn gather_pre_entities(
    tok: &BertTokenizer,
    sentence_chars: &[char],
    enc: &Encoded,
    logits: &[f32],
    num_labels: usize,
) -> Vec<PreEntity> {
    let prefix = tok.continuing_subword_prefix();
    let unk = tok.unk_id();
    let mut out = Vec::new();
    for (idx, row) in logits.chunks_exact(num_labels).take(enc.len()).enumerate() {
        if enc.special_tokens_mask[idx] != 0 {
            continue;
        }
        let (start, end) = enc.offsets[idx];
        let (s, e) = (
            start.min(sentence_chars.len()),
            end.min(sentence_chars.len()),
        );
        let word_ref: String = sentence_chars[s..e.max(s)].iter().collect();
        let mut word = enc.tokens[idx].clone();
        let mut is_subword = if prefix.is_some() {
            word.chars().count() != word_ref.chars().count()
        } else {
            // HF's fallback heuristic for tokenizers without a subword prefix.
            start > 0
                && !sentence_chars[start.saturating_sub(1)..(start + 1).min(sentence_chars.len())]
                    .contains(&' ')
        };
        if Some(enc.ids[idx]) == unk {
            word = word_ref;
            is_subword = false;
        }
        out.push(PreEntity {
            word,
            scores: softmax(row),
            start,
            end,
            index: idx,
            is_subword,
        });
    }
    out
}

fn aggregate_word(
    tok: &BertTokenizer,
    cfg: &BertConfig,
    group: &[PreEntity],
    how: Aggregation,
) -> Result<Entity> {
    let words: Vec<String> = group.iter().map(|e| e.word.clone()).collect();
    let word = tok.tokens_to_string(&words)?;
    let (label, score) = match how {
        Aggregation::Max => {
            // max(entities, key=scores.max()): the first with the highest max.
            let mut best = &group[0];
            let mut best_max = best
                .scores
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            for e in &group[1..] {
                let m = e.scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                if m > best_max {
                    best = e;
                    best_max = m;
                }
            }
            let i = argmax(&best.scores);
            (cfg.label_name(i), best.scores[i])
        }
        Aggregation::Average => {
            let n = group[0].scores.len();
            let mean: Vec<f32> = (0..n)
                .map(|k| {
                    let vals: Vec<f32> = group
                        .iter()
                        .map(|e| e.scores[k])
                        .filter(|v| !v.is_nan())
                        .collect();
                    vals.iter().sum::<f32>() / vals.len() as f32
                })
                .collect();
            let i = argmax(&mean);
            (cfg.label_name(i), mean[i])
        }
        _ => {
            let s = &group[0].scores;
            let i = argmax(s);
            (cfg.label_name(i), s[i])
        }
    };
    Ok(Entity {
        label,
        score,
        index: None,
        word,
        start: group[0].start,
        end: group[group.len() - 1].end,
    })
}

fn get_tag(name: &str) -> (char, &str) {
    if let Some(t) = name.strip_prefix("B-") {
        ('B', t)
    } else if let Some(t) = name.strip_prefix("I-") {
        ('I', t)
    } else {
        ('I', name)
    }
}

fn group_sub_entities(tok: &BertTokenizer, group: &[Entity]) -> Result<Entity> {
    let first = &group[0].label;
    let kind = match first.split_once('-') {
        Some((_, rest)) => rest.to_string(),
        None => first.clone(),
    };
    let vals: Vec<f32> = group
        .iter()
        .map(|e| e.score)
        .filter(|v| !v.is_nan())
        .collect();
    let score = vals.iter().sum::<f32>() / vals.len() as f32;
    let tokens: Vec<String> = group.iter().map(|e| e.word.clone()).collect();
    Ok(Entity {
        label: kind,
        score,
        index: None,
        word: tok.tokens_to_string(&tokens)?,
        start: group[0].start,
        end: group[group.len() - 1].end,
    })
}

fn group_entities(tok: &BertTokenizer, entities: &[Entity]) -> Result<Vec<Entity>> {
    let mut groups = Vec::new();
    let mut current: Vec<Entity> = Vec::new();
    for e in entities {
        let Some(last) = current.last() else {
            current.push(e.clone());
            continue;
        };
        let (bi, tag) = get_tag(&e.label);
        let (_, last_tag) = get_tag(&last.label);
        if tag == last_tag && bi != 'B' {
            current.push(e.clone());
        } else {
            groups.push(group_sub_entities(tok, &current)?);
            current = vec![e.clone()];
        }
    }
    if !current.is_empty() {
        groups.push(group_sub_entities(tok, &current)?);
    }
    Ok(groups)
}

/// HF's `aggregate` followed by the `ignore_labels` filter: pre-entities of
/// one text → the pipeline's entities.
pub fn aggregate(
    tok: &BertTokenizer,
    cfg: &BertConfig,
    pre: &[PreEntity],
    opts: &NerOptions,
) -> Result<Vec<Entity>> {
    let entities: Vec<Entity> = match opts.aggregation {
        Aggregation::None | Aggregation::Simple => pre
            .iter()
            .map(|p| {
                let i = argmax(&p.scores);
                Entity {
                    label: cfg.label_name(i),
                    score: p.scores[i],
                    index: Some(p.index),
                    word: p.word.clone(),
                    start: p.start,
                    end: p.end,
                }
            })
            .collect(),
        how => {
            let mut words = Vec::new();
            let mut group: Vec<PreEntity> = Vec::new();
            for p in pre {
                if !group.is_empty() && !p.is_subword {
                    words.push(aggregate_word(tok, cfg, &group, how)?);
                    group.clear();
                }
                group.push(p.clone());
            }
            if !group.is_empty() {
                words.push(aggregate_word(tok, cfg, &group, how)?);
            }
            words
        }
    };
    let grouped = if opts.aggregation == Aggregation::None {
        entities
    } else {
        group_entities(tok, &entities)?
    };
    Ok(grouped
        .into_iter()
        .filter(|e| !opts.ignore_labels.contains(&e.label))
        .collect())
}

/// The entities of one input from its logits (seq, labels).
pub(crate) fn entities_of(
    tok: &BertTokenizer,
    cfg: &BertConfig,
    input: &NerInput,
    e: &Encoded,
    logits: &[f32],
    opts: &NerOptions,
) -> Result<Vec<Entity>> {
    let n = cfg.num_labels;
    let pre = match input {
        NerInput::Text(text) => {
            let chars: Vec<char> = text.chars().collect();
            gather_pre_entities(tok, &chars, e, logits, n)
        }
        NerInput::Words(ws) => {
            // Word offsets are within each word: shift them into the joined sentence.
            let mut starts = Vec::with_capacity(ws.len());
            let mut pos = 0usize;
            for w in ws {
                starts.push(pos);
                pos += w.chars().count() + 1;
            }
            let mut shifted = e.clone();
            for (i, off) in shifted.offsets.iter_mut().enumerate() {
                if let Some(w) = e.word_ids[i] {
                    let base = starts.get(w as usize).copied().unwrap_or(0);
                    *off = (off.0 + base, off.1 + base);
                }
            }
            let sentence: Vec<char> = ws.join(" ").chars().collect();
            gather_pre_entities(tok, &sentence, &shifted, logits, n)
        }
    };
    aggregate(tok, cfg, &pre, opts)
}

fn run_ner(model: &Model, inputs: Vec<NerInput>, opts: &NerOptions) -> Result<Vec<Vec<Entity>>> {
    let job = NerJob::new(model, opts)?;
    let batch = BatchOptions {
        max_sequences: opts.batch_size.max(1),
        ..BatchOptions::default()
    };
    crate::batch::collect(&job, inputs, model, &batch)
}

/// Finds entities in each text.
pub fn ner(model: &Model, texts: &[&str], opts: &NerOptions) -> Result<Vec<Vec<Entity>>> {
    run_ner(
        model,
        texts
            .iter()
            .map(|t| NerInput::Text(t.to_string()))
            .collect(),
        opts,
    )
}

/// Finds entities in pre-split words (HF's `is_split_into_words=True`):
/// the words are joined with single spaces, and `start`/`end` index that
/// joined sentence.
pub fn ner_words(
    model: &Model,
    words: &[Vec<String>],
    opts: &NerOptions,
) -> Result<Vec<Vec<Entity>>> {
    run_ner(
        model,
        words.iter().map(|w| NerInput::Words(w.clone())).collect(),
        opts,
    )
}
