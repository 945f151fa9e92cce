//! The task pipelines as batcher [`Job`]s: how each input is tokenized,
//! how it batches, and how a batch's outputs become answers. The in-memory
//! pipeline functions and the CLI's `--data` streams both run these.

use super::choose::Choice;
use super::classify::{scores_from_logits, ClassifyOptions, LabelScore};
use super::ner::{entities_of, Entity, NerOptions};
use super::qa::{qa_postprocess, Answer, QaInput, QaOptions};
use super::{argmax, require_head, softmax, tokenizer, ChoiceInput};
use crate::batch::{Job, Shape};
use crate::datasets::choice_pairs;
use crate::error::{Error, Result};
use crate::graph::Head;
use crate::model::Model;
use crate::tokenize::{batch_encoding, BertTokenizer, Encoded};

fn one(len: usize) -> Shape {
    Shape {
        sequences: 1,
        len,
        group: 0,
    }
}

fn logits(model: &Model, enc: &crate::Encoding) -> Result<Vec<f32>> {
    Ok(model.logits(enc)?.data)
}

/// `text-classification` on (text, optional pair).
pub struct ClassifyJob<'a> {
    model: &'a Model,
    tok: &'a BertTokenizer,
    opts: ClassifyOptions,
}

impl<'a> ClassifyJob<'a> {
    /// For a sequence-classification `model`.
    pub fn new(model: &'a Model, opts: &ClassifyOptions) -> Result<Self> {
        require_head(model, Head::SequenceClassification, "classification")?;
        Ok(ClassifyJob {
            model,
            tok: tokenizer(model)?,
            opts: opts.clone(),
        })
    }
}

impl Job for ClassifyJob<'_> {
    type Input = (String, Option<String>);
    type Item = Encoded;
    type Output = Vec<LabelScore>;

    fn prepare(&self, (text, pair): Self::Input) -> Result<Encoded> {
        self.tok.encode_one(&text, pair.as_deref())
    }

    fn shape(&self, item: &Encoded) -> Shape {
        one(item.len())
    }

    fn run(&self, items: &[&Encoded]) -> Result<Vec<Vec<LabelScore>>> {
        let enc = batch_encoding(items, self.tok.pad_id())?;
        let cfg = self.model.config();
        Ok(logits(self.model, &enc)?
            .chunks_exact(cfg.num_labels)
            .map(|row| scores_from_logits(cfg, row, &self.opts))
            .collect())
    }
}

/// One input of [`NerJob`]: a text, or pre-split words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NerInput {
    /// Raw text; spans index it.
    Text(String),
    /// Words (`is_split_into_words`); spans index them joined by spaces.
    Words(Vec<String>),
}

/// `token-classification` (NER).
pub struct NerJob<'a> {
    model: &'a Model,
    tok: &'a BertTokenizer,
    opts: NerOptions,
}

impl<'a> NerJob<'a> {
    /// For a token-classification `model`.
    pub fn new(model: &'a Model, opts: &NerOptions) -> Result<Self> {
        require_head(model, Head::TokenClassification, "token classification")?;
        Ok(NerJob {
            model,
            tok: tokenizer(model)?,
            opts: opts.clone(),
        })
    }
}

impl Job for NerJob<'_> {
    type Input = NerInput;
    type Item = (NerInput, Encoded);
    type Output = Vec<Entity>;

    fn prepare(&self, input: NerInput) -> Result<Self::Item> {
        let e = match &input {
            NerInput::Text(t) => self.tok.encode_one(t, None)?,
            NerInput::Words(w) => self.tok.encode_words(w)?,
        };
        Ok((input, e))
    }

    fn shape(&self, item: &Self::Item) -> Shape {
        one(item.1.len())
    }

    fn run(&self, items: &[&Self::Item]) -> Result<Vec<Vec<Entity>>> {
        let encs: Vec<&Encoded> = items.iter().map(|(_, e)| e).collect();
        let enc = batch_encoding(&encs, self.tok.pad_id())?;
        let data = logits(self.model, &enc)?;
        let row = enc.seq * self.model.config().num_labels;
        items
            .iter()
            .enumerate()
            .map(|(b, (input, e))| {
                entities_of(
                    self.tok,
                    self.model.config(),
                    input,
                    e,
                    &data[b * row..(b + 1) * row],
                    &self.opts,
                )
            })
            .collect()
    }
}

/// `question-answering`: every window of a question's context runs in the
/// same forward pass.
pub struct QaJob<'a> {
    model: &'a Model,
    tok: &'a BertTokenizer,
    opts: QaOptions,
    window: (usize, usize),
}

impl<'a> QaJob<'a> {
    /// For a question-answering `model`.
    pub fn new(model: &'a Model, opts: &QaOptions) -> Result<Self> {
        require_head(model, Head::QuestionAnswering, "question answering")?;
        if opts.top_k == 0 {
            return Err(Error::input("top_k must be at least 1"));
        }
        if opts.max_answer_len == 0 {
            return Err(Error::input("max_answer_len must be at least 1"));
        }
        Ok(QaJob {
            model,
            tok: tokenizer(model)?,
            opts: opts.clone(),
            window: opts.window(model.config().max_tokens())?,
        })
    }
}

impl Job for QaJob<'_> {
    type Input = QaInput;
    type Item = (QaInput, Vec<Encoded>);
    type Output = Vec<Answer>;

    fn prepare(&self, input: QaInput) -> Result<Self::Item> {
        if input.question.is_empty() {
            return Err(Error::input("the question is empty"));
        }
        if input.context.is_empty() {
            return Err(Error::input("the context is empty"));
        }
        let (max_len, stride) = self.window;
        let w = self
            .tok
            .encode_windows(&input.question, &input.context, max_len, stride)?;
        Ok((input, w))
    }

    fn shape(&self, (_, w): &Self::Item) -> Shape {
        Shape {
            sequences: w.len(),
            len: w.iter().map(Encoded::len).max().unwrap_or(0),
            group: 0,
        }
    }

    fn run(&self, items: &[&Self::Item]) -> Result<Vec<Vec<Answer>>> {
        let all: Vec<&Encoded> = items.iter().flat_map(|(_, w)| w.iter()).collect();
        let enc = batch_encoding(&all, self.tok.pad_id())?;
        let (s, e) = self.model.span_logits(&enc)?;
        let mut row = 0usize;
        let mut out = Vec::with_capacity(items.len());
        for (input, windows) in items.iter().map(|(i, w)| (i, w)) {
            let mut ls: Vec<(&[f32], &[f32])> = Vec::with_capacity(windows.len());
            for w in windows {
                let at = row * enc.seq;
                ls.push((&s.data[at..at + w.len()], &e.data[at..at + w.len()]));
                row += 1;
            }
            let ws: Vec<&Encoded> = windows.iter().collect();
            out.push(qa_postprocess(
                self.tok,
                &input.context,
                &ws,
                &ls,
                &self.opts,
            ));
        }
        Ok(out)
    }
}

/// Multiple choice: examples with the same number of options share a
/// `(batch, choices, seq)` forward.
pub struct ChooseJob<'a> {
    model: &'a Model,
    tok: &'a BertTokenizer,
}

impl<'a> ChooseJob<'a> {
    /// For a multiple-choice `model`.
    pub fn new(model: &'a Model) -> Result<Self> {
        require_head(model, Head::MultipleChoice, "multiple choice")?;
        Ok(ChooseJob {
            model,
            tok: tokenizer(model)?,
        })
    }
}

impl Job for ChooseJob<'_> {
    type Input = ChoiceInput;
    type Item = (ChoiceInput, Vec<Encoded>);
    type Output = Choice;

    fn prepare(&self, input: ChoiceInput) -> Result<Self::Item> {
        if input.options.is_empty() {
            return Err(Error::input("no options to choose from"));
        }
        let pairs = choice_pairs(input.context.as_deref(), &input.question, &input.options)
            .into_iter()
            .map(|(a, b)| self.tok.encode_one(&a, Some(&b)))
            .collect::<Result<Vec<_>>>()?;
        Ok((input, pairs))
    }

    fn shape(&self, (i, pairs): &Self::Item) -> Shape {
        Shape {
            sequences: pairs.len(),
            len: pairs.iter().map(Encoded::len).max().unwrap_or(0),
            group: i.options.len() as u64,
        }
    }

    fn run(&self, items: &[&Self::Item]) -> Result<Vec<Choice>> {
        let all: Vec<&Encoded> = items.iter().flat_map(|(_, p)| p.iter()).collect();
        let mut enc = batch_encoding(&all, self.tok.pad_id())?;
        let c = items.first().map_or(1, |(i, _)| i.options.len());
        enc.batch = items.len();
        enc.choices = Some(c);
        let data = logits(self.model, &enc)?;
        Ok(items
            .iter()
            .zip(data.chunks_exact(c))
            .map(|((input, _), l)| {
                let choice = argmax(l);
                Choice {
                    choice,
                    option: input.options[choice].clone(),
                    scores: softmax(l),
                    logits: l.to_vec(),
                }
            })
            .collect())
    }
}
