//! Multiple choice: accuracy, with HF's loss.

use std::path::{Path, PathBuf};

use super::{unlabelled, EvalJob, EvalReport, Stats};
use crate::batch::{Job, Shape};
use crate::datasets::ChoiceExample;
use crate::error::{Error, Result};
use crate::graph::Head;
use crate::heads::Labels;
use crate::inputs::Encoding;
use crate::model::Model;
use crate::pipelines::{argmax, choice_encoding, require_head, tokenizer};
use crate::tokenize::BertTokenizer;

/// [`EvalJob`] for `*ForMultipleChoice`.
pub struct ChoiceEval<'a> {
    model: &'a Model,
    tok: &'a BertTokenizer,
    path: PathBuf,
}

impl<'a> ChoiceEval<'a> {
    /// For a multiple-choice `model`.
    pub fn new(model: &'a Model, path: &Path) -> Result<Self> {
        require_head(model, Head::MultipleChoice, "multiple choice")?;
        Ok(ChoiceEval {
            model,
            tok: tokenizer(model)?,
            path: path.to_path_buf(),
        })
    }
}

/// Stacks (1, choices, seq_i) encodings with the same number of choices into
/// one (batch, choices, max seq) encoding.
fn stack_choices(parts: &[&Encoding], pad_id: u32) -> Result<Encoding> {
    let c = parts.first().and_then(|p| p.choices).unwrap_or(1);
    let seq = parts.iter().map(|p| p.seq).max().unwrap_or(0);
    let mut out = Encoding {
        input_ids: Vec::new(),
        attention_mask: Vec::new(),
        token_type_ids: Vec::new(),
        batch: parts.len(),
        choices: Some(c),
        seq,
    };
    for p in parts {
        if p.choices != Some(c) {
            return Err(Error::input(
                "examples in one batch have different numbers of options",
            ));
        }
        for r in 0..c {
            let row = r * p.seq..(r + 1) * p.seq;
            let pad = seq - p.seq;
            out.input_ids.extend_from_slice(&p.input_ids[row.clone()]);
            out.input_ids.extend(std::iter::repeat_n(pad_id, pad));
            out.attention_mask
                .extend_from_slice(&p.attention_mask[row.clone()]);
            out.attention_mask.extend(std::iter::repeat_n(0, pad));
            out.token_type_ids.extend_from_slice(&p.token_type_ids[row]);
            out.token_type_ids.extend(std::iter::repeat_n(0, pad));
        }
    }
    Ok(out)
}

impl Job for ChoiceEval<'_> {
    type Input = ChoiceExample;
    /// (1, choices, seq) and the right option.
    type Item = (Encoding, i64);
    type Output = Stats;

    fn prepare(&self, e: ChoiceExample) -> Result<Self::Item> {
        let Some(l) = e.label else {
            return Err(unlabelled(&self.path, e.line, "label"));
        };
        let enc = choice_encoding(self.tok, e.context.as_deref(), &e.question, &e.options)?;
        Ok((enc, l as i64))
    }

    /// A batch shares its number of options (the scheduler's group).
    fn shape(&self, (e, _): &Self::Item) -> Shape {
        let c = e.choices.unwrap_or(1);
        Shape {
            sequences: c,
            len: e.seq,
            group: c as u64,
        }
    }

    fn run(&self, items: &[&Self::Item]) -> Result<Vec<Stats>> {
        let parts: Vec<&Encoding> = items.iter().map(|(e, _)| e).collect();
        let enc = stack_choices(&parts, self.tok.pad_id())?;
        let labels = Labels::Classes(items.iter().map(|(_, g)| *g).collect());
        let o = self.model.forward_with_labels(&enc, &labels)?;
        let loss = f64::from(o.loss.unwrap_or(f32::NAN));
        let logits = o.require_logits()?;
        let c = enc.choices.unwrap_or(1);
        Ok(logits
            .data
            .chunks_exact(c)
            .zip(items)
            .map(|(row, (_, g))| Stats {
                examples: 1,
                sequences: 1,
                loss_sum: loss,
                loss_terms: 1,
                correct: u64::from(argmax(row) as i64 == *g),
                ..Stats::default()
            })
            .collect())
    }
}

impl EvalJob for ChoiceEval<'_> {
    fn report(&self, t: &Stats) -> EvalReport {
        t.report("multiple-choice", vec![("accuracy", t.accuracy())])
    }
}
