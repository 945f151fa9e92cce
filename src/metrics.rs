//! Task metrics, computed as the reference Python tools compute them:
//! accuracy; entity-level precision / recall / F1 over BIO tags as
//! `seqeval` (default mode, micro average); SQuAD v1.1 exact match and F1
//! with the official answer normalisation.

use std::collections::{BTreeSet, HashMap};

/// Fraction of positions where `pred == gold` (0 for empty input).
pub fn accuracy<T: PartialEq>(pred: &[T], gold: &[T]) -> f64 {
    let n = pred.len().min(gold.len());
    if n == 0 {
        return 0.0;
    }
    let ok = pred.iter().zip(gold).filter(|(p, g)| p == g).count();
    ok as f64 / n as f64
}

/// One entity chunk: type and inclusive token range, as seqeval's
/// `get_entities` returns `(type, begin, end)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Chunk {
    /// Entity type (`PER` for `B-PER`).
    pub kind: String,
    /// First tag index.
    pub start: usize,
    /// Last tag index (inclusive).
    pub end: usize,
}

fn split_tag(tag: &str) -> (char, String) {
    // seqeval: tag = chunk[0], type = chunk[2:] (prefix mode).
    let mut chars = tag.chars();
    let first = chars.next().unwrap_or('O');
    let kind: String = tag.chars().skip(2).collect();
    (first, kind)
}

fn end_of_chunk(prev_tag: char, tag: char, prev_type: &str, kind: &str) -> bool {
    matches!(prev_tag, 'E' | 'S')
        || (prev_tag == 'B' && matches!(tag, 'B' | 'S' | 'O'))
        || (prev_tag == 'I' && matches!(tag, 'B' | 'S' | 'O'))
        || (prev_tag != 'O' && prev_tag != '.' && prev_type != kind)
}

fn start_of_chunk(prev_tag: char, tag: char, prev_type: &str, kind: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (prev_tag == 'E' && matches!(tag, 'E' | 'I'))
        || (prev_tag == 'S' && matches!(tag, 'E' | 'I'))
        || (prev_tag == 'O' && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_type != kind)
}

/// Entity chunks of one tag sequence, exactly as `seqeval.metrics.sequence_labeling.get_entities`
/// (IOB1/IOB2/IOE/IOBES-tolerant, lenient: an `I-` after `O` or after another
/// type opens a new chunk).
pub fn get_entities<S: AsRef<str>>(tags: &[S]) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut prev_tag = 'O';
    let mut prev_type = String::new();
    let mut begin = 0usize;
    let padded = tags
        .iter()
        .map(|t| split_tag(t.as_ref()))
        .chain(std::iter::once(('O', String::new())));
    for (i, (tag, kind)) in padded.enumerate() {
        if end_of_chunk(prev_tag, tag, &prev_type, &kind) {
            chunks.push(Chunk {
                kind: prev_type.clone(),
                start: begin,
                end: i.saturating_sub(1),
            });
        }
        if start_of_chunk(prev_tag, tag, &prev_type, &kind) {
            begin = i;
        }
        prev_tag = tag;
        prev_type = kind;
    }
    chunks
}

/// Entity-level scores (seqeval micro average).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct EntityScores {
    /// correct / predicted (0 when nothing was predicted).
    pub precision: f64,
    /// correct / gold (0 when there are no gold entities).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Gold entities.
    pub gold: usize,
    /// Predicted entities.
    pub predicted: usize,
    /// Predicted entities equal (type, start, end) to a gold one.
    pub correct: usize,
}

/// seqeval's `precision_score`, `recall_score` and `f1_score` (default
/// mode, micro average) over sentences of tags. Sentences are joined with
/// an `O` between them, as seqeval does, so chunks never cross sentences.
pub fn seqeval<S: AsRef<str>>(gold: &[Vec<S>], pred: &[Vec<S>]) -> EntityScores {
    fn flat<S: AsRef<str>>(seqs: &[Vec<S>]) -> Vec<String> {
        let mut out = Vec::new();
        for s in seqs {
            out.extend(s.iter().map(|t| t.as_ref().to_string()));
            out.push("O".to_string());
        }
        out
    }
    let g: BTreeSet<Chunk> = get_entities(&flat(gold)).into_iter().collect();
    let p: BTreeSet<Chunk> = get_entities(&flat(pred)).into_iter().collect();
    let correct = g.intersection(&p).count();
    let precision = if p.is_empty() {
        0.0
    } else {
        correct as f64 / p.len() as f64
    };
    let recall = if g.is_empty() {
        0.0
    } else {
        correct as f64 / g.len() as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    EntityScores {
        precision,
        recall,
        f1,
        gold: g.len(),
        predicted: p.len(),
        correct,
    }
}

/// Python's `string.punctuation`.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

fn is_word_char(c: char) -> bool {
    // Python's `\w` for str patterns.
    c.is_alphanumeric() || c == '_'
}

/// The official SQuAD answer normalisation: lower case, remove ASCII
/// punctuation, remove the articles a/an/the (whole words), collapse
/// whitespace.
pub fn squad_normalize(s: &str) -> String {
    let lower = s.to_lowercase();
    let no_punc: String = lower
        .chars()
        .filter(|c| !PUNCTUATION.contains(*c))
        .collect();
    // re.sub(r"\b(a|an|the)\b", " ", text): an article matches only as a
    // whole run of word characters.
    let mut no_articles = String::with_capacity(no_punc.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if matches!(run.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in no_punc.chars() {
        if is_word_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut no_articles);
            no_articles.push(c);
        }
    }
    flush(&mut run, &mut no_articles);
    no_articles.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// SQuAD exact match of one prediction against one gold answer (0 or 1).
pub fn squad_exact(prediction: &str, gold: &str) -> f64 {
    f64::from(u8::from(
        squad_normalize(prediction) == squad_normalize(gold),
    ))
}

/// SQuAD token F1 of one prediction against one gold answer (v1.1: 0 when
/// nothing is shared, including when both are empty).
pub fn squad_f1(prediction: &str, gold: &str) -> f64 {
    let p = squad_normalize(prediction);
    let g = squad_normalize(gold);
    let pt: Vec<&str> = p.split_whitespace().collect();
    let gt: Vec<&str> = g.split_whitespace().collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &gt {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0usize;
    for t in &pt {
        if let Some(c) = counts.get_mut(t) {
            if *c > 0 {
                *c -= 1;
                same += 1;
            }
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / pt.len() as f64;
    let recall = same as f64 / gt.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// The best of `metric(prediction, gold)` over the gold answers (0 when
/// there are none), as the SQuAD script's `metric_max_over_ground_truths`.
pub fn max_over_golds<S: AsRef<str>>(
    metric: fn(&str, &str) -> f64,
    prediction: &str,
    golds: &[S],
) -> f64 {
    golds
        .iter()
        .map(|g| metric(prediction, g.as_ref()))
        .fold(0.0, f64::max)
}

/// SQuAD scores over a dataset, in percent as the official script prints.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct SquadScores {
    /// Mean exact match × 100.
    pub exact_match: f64,
    /// Mean F1 × 100.
    pub f1: f64,
}

/// SQuAD v1.1 `evaluate`: (prediction, gold answers) pairs → EM and F1 in
/// percent (0 for no pairs).
pub fn squad<S: AsRef<str>>(pairs: &[(String, Vec<S>)]) -> SquadScores {
    if pairs.is_empty() {
        return SquadScores::default();
    }
    let (mut em, mut f1) = (0.0, 0.0);
    for (p, golds) in pairs {
        em += max_over_golds(squad_exact, p, golds);
        f1 += max_over_golds(squad_f1, p, golds);
    }
    let n = pairs.len() as f64;
    SquadScores {
        exact_match: 100.0 * em / n,
        f1: 100.0 * f1 / n,
    }
}
