//! Rows → typed examples per task ([`Dataset`]): labels as written
//! ([`LabelValue`]) and matched to a model's classes ([`class_index`]).

use std::path::Path;

use serde_json::Value;

use super::files::{bad, read_rows, Row};
use super::Task;
use crate::config::BertConfig;
use crate::error::{Error, Result};

use crate::infer::json_kind as kind;

/// A label as written in a dataset, before it is matched to a model.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelValue {
    /// A class index.
    Index(i64),
    /// A class name (`POS`, `B-PER`).
    Name(String),
    /// A real number (regression target, or a multi-hot entry).
    Number(f64),
    /// Several labels (multi-label classification).
    List(Vec<LabelValue>),
}

impl LabelValue {
    /// A JSON value; strings are names as written, except in CSV cells
    /// (`csv`), which may also hold numbers, lists and space-separated labels.
    fn from_json(v: &Value, csv: bool) -> std::result::Result<Self, String> {
        match v {
            Value::Number(n) => Ok(match n.as_i64() {
                Some(i) if !n.is_f64() => LabelValue::Index(i),
                _ => LabelValue::Number(n.as_f64().unwrap_or(f64::NAN)),
            }),
            Value::String(s) if csv => Ok(LabelValue::from_cell(s)),
            Value::String(s) => Ok(LabelValue::Name(s.clone())),
            Value::Array(items) => Ok(LabelValue::List(
                items
                    .iter()
                    .map(|i| LabelValue::from_json(i, csv))
                    .collect::<std::result::Result<_, _>>()?,
            )),
            other => Err(format!(
                "is {}, expected a label name, index or number",
                kind(other)
            )),
        }
    }

    /// A CSV cell: an integer, a number, a JSON list, space-separated
    /// labels, or a name.
    fn from_cell(s: &str) -> Self {
        let t = s.trim();
        if let Ok(i) = t.parse::<i64>() {
            return LabelValue::Index(i);
        }
        if let Ok(f) = t.parse::<f64>() {
            if f.is_finite() {
                return LabelValue::Number(f);
            }
        }
        if t.starts_with('[') {
            if let Ok(v) = serde_json::from_str::<Value>(t) {
                if let Ok(l) = LabelValue::from_json(&v, false) {
                    return l;
                }
            }
        }
        let parts: Vec<&str> = t.split_whitespace().collect();
        if parts.len() > 1 {
            return LabelValue::List(parts.into_iter().map(LabelValue::from_cell).collect());
        }
        LabelValue::Name(t.to_string())
    }
}

/// Resolves a class label against the model's `label2id` / `num_labels`.
pub fn class_index(cfg: &BertConfig, v: &LabelValue) -> std::result::Result<i64, String> {
    match v {
        LabelValue::Index(i) if *i >= 0 && (*i as usize) < cfg.num_labels => Ok(*i),
        LabelValue::Index(i) => Err(format!(
            "class index {i} is out of range for {} labels",
            cfg.num_labels
        )),
        LabelValue::Name(n) => cfg
            .label2id
            .get(n)
            .copied()
            .or_else(|| cfg.id2label.iter().find(|(_, v)| *v == n).map(|(k, _)| *k))
            .or_else(|| {
                n.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|&i| i < cfg.num_labels)
            })
            .map(|i| i as i64)
            .ok_or_else(|| {
                let names: Vec<String> = (0..cfg.num_labels).map(|i| cfg.label_name(i)).collect();
                format!(
                    "unknown label `{n}` (the model's labels: {})",
                    names.join(", ")
                )
            }),
        LabelValue::Number(f) => Err(format!("{f} is not a class index")),
        LabelValue::List(_) => Err("a list where one class was expected".into()),
    }
}

/// Sequence-classification example.
#[derive(Debug, Clone, PartialEq)]
pub struct TextExample {
    /// 1-based line in the file.
    pub line: usize,
    /// The text.
    pub text: String,
    /// Optional second text.
    pub text_pair: Option<String>,
    /// The label, when given.
    pub label: Option<LabelValue>,
}

/// Token-classification example.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenExample {
    /// 1-based line in the file.
    pub line: usize,
    /// The words.
    pub words: Vec<String>,
    /// One label per word, when given.
    pub labels: Option<Vec<LabelValue>>,
}

/// Multiple-choice example.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceExample {
    /// 1-based line in the file.
    pub line: usize,
    /// Optional context passage.
    pub context: Option<String>,
    /// The question.
    pub question: String,
    /// The options.
    pub options: Vec<String>,
    /// Index of the right option, when given.
    pub label: Option<usize>,
}

/// One gold answer of a question-answering example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoldAnswer {
    /// The answer text.
    pub text: String,
    /// Character index of the answer in the context.
    pub start: usize,
}

/// Question-answering (SQuAD-style) example.
#[derive(Debug, Clone, PartialEq)]
pub struct QaExample {
    /// 1-based line in the file.
    pub line: usize,
    /// The question.
    pub question: String,
    /// The context passage.
    pub context: String,
    /// Gold answers (the first is the training target); empty when none.
    pub answers: Vec<GoldAnswer>,
}

/// A parsed dataset of one task.
#[derive(Debug, Clone, PartialEq)]
pub enum Dataset {
    /// Sequence classification.
    Classification(Vec<TextExample>),
    /// Token classification.
    TokenClassification(Vec<TokenExample>),
    /// Multiple choice.
    MultipleChoice(Vec<ChoiceExample>),
    /// Question answering.
    QuestionAnswering(Vec<QaExample>),
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            Dataset::Classification(v) => v.len(),
            Dataset::TokenClassification(v) => v.len(),
            Dataset::MultipleChoice(v) => v.len(),
            Dataset::QuestionAnswering(v) => v.len(),
        }
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Field access for one row with errors that name file, line and field.
struct Fields<'a> {
    path: &'a Path,
    row: &'a Row,
}

impl Fields<'_> {
    fn err(&self, field: &str, msg: impl Into<String>) -> Error {
        bad(self.path, self.row.line, field, msg)
    }

    fn get(&self, field: &str) -> Option<&Value> {
        match self.row.fields.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if self.row.csv && s.is_empty() => None,
            Some(v) => Some(v),
        }
    }

    fn string(&self, field: &str) -> Result<String> {
        self.opt_string(field)?
            .ok_or_else(|| self.err(field, "missing"))
    }

    fn opt_string(&self, field: &str) -> Result<Option<String>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.err(field, format!("is {}, expected a string", kind(v)))),
        }
    }

    /// An array of strings: a JSON array, or a CSV cell holding a JSON
    /// array or space-separated items.
    fn list(&self, field: &str) -> Result<Option<Vec<Value>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a.clone())),
            Some(Value::String(s)) if self.row.csv => {
                let t = s.trim();
                if t.starts_with('[') {
                    match serde_json::from_str::<Value>(t) {
                        Ok(Value::Array(a)) => Ok(Some(a)),
                        _ => Err(self.err(field, "starts with `[` but is not a JSON array")),
                    }
                } else {
                    Ok(Some(
                        t.split_whitespace()
                            .map(|w| Value::String(w.to_string()))
                            .collect(),
                    ))
                }
            }
            Some(v) => Err(self.err(field, format!("is {}, expected an array", kind(v)))),
        }
    }

    fn strings(&self, field: &str) -> Result<Option<Vec<String>>> {
        let Some(items) = self.list(field)? else {
            return Ok(None);
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(self.err(
                    &format!("{field}[{i}]"),
                    format!("is {}, expected a string", kind(other)),
                )),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    fn label(&self, field: &str) -> Result<Option<LabelValue>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => {
                let l = LabelValue::from_json(v, self.row.csv).map_err(|m| self.err(field, m))?;
                if let LabelValue::Number(f) = l {
                    if !f.is_finite() {
                        return Err(self.err(field, "is not a finite number"));
                    }
                }
                Ok(Some(l))
            }
        }
    }

    fn index(&self, field: &str) -> Result<Option<i64>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .filter(|_| !n.is_f64())
                .map(Some)
                .ok_or_else(|| self.err(field, format!("{n} is not an integer"))),
            Some(Value::String(s)) if self.row.csv => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| self.err(field, format!("`{s}` is not an integer"))),
            Some(v) => Err(self.err(field, format!("is {}, expected an integer", kind(v)))),
        }
    }
}

/// Reads a dataset of `task` from a JSONL or CSV file.
pub fn read_dataset(path: &Path, task: Task) -> Result<Dataset> {
    let rows = read_rows(path)?;
    parse_rows(path, &rows, task)
}

/// Parses already-read rows as examples of `task`; `path` names the file in errors.
pub fn parse_rows(path: &Path, rows: &[Row], task: Task) -> Result<Dataset> {
    Ok(match task {
        Task::Classification => Dataset::Classification(
            rows.iter()
                .map(|r| text_example(path, r))
                .collect::<Result<_>>()?,
        ),
        Task::TokenClassification => Dataset::TokenClassification(
            rows.iter()
                .map(|r| token_example(path, r))
                .collect::<Result<_>>()?,
        ),
        Task::MultipleChoice => Dataset::MultipleChoice(
            rows.iter()
                .map(|r| choice_example(path, r))
                .collect::<Result<_>>()?,
        ),
        Task::QuestionAnswering => Dataset::QuestionAnswering(
            rows.iter()
                .map(|r| qa_example(path, r))
                .collect::<Result<_>>()?,
        ),
    })
}

/// One sequence-classification row (`text`, `text_pair`, `label`).
pub fn text_example(path: &Path, row: &Row) -> Result<TextExample> {
    let f = Fields { path, row };
    let text = f.string("text")?;
    Ok(TextExample {
        line: row.line,
        text,
        text_pair: f.opt_string("text_pair")?,
        label: f.label("label")?,
    })
}

/// One token-classification row (`words`, `labels`).
pub fn token_example(path: &Path, row: &Row) -> Result<TokenExample> {
    let f = Fields { path, row };
    let words = match f.strings("words")? {
        Some(w) => w,
        None => match f.opt_string("text")? {
            Some(t) => t.split_whitespace().map(str::to_string).collect(),
            None => return Err(f.err("words", "missing")),
        },
    };
    if words.is_empty() {
        return Err(f.err("words", "is empty"));
    }
    if let Some(i) = words.iter().position(|w| w.trim().is_empty()) {
        return Err(f.err(&format!("words[{i}]"), "is empty or whitespace"));
    }
    let labels = match f.list("labels")? {
        None => None,
        Some(items) => {
            let labels = items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let l = LabelValue::from_json(v, row.csv)
                        .map_err(|m| f.err(&format!("labels[{i}]"), m))?;
                    match l {
                        LabelValue::Index(_) | LabelValue::Name(_) => Ok(l),
                        _ => Err(f.err(
                            &format!("labels[{i}]"),
                            "expected a tag name or class index",
                        )),
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            if labels.len() != words.len() {
                return Err(f.err(
                    "labels",
                    format!("{} labels for {} words", labels.len(), words.len()),
                ));
            }
            Some(labels)
        }
    };
    Ok(TokenExample {
        line: row.line,
        words,
        labels,
    })
}

/// One multiple-choice row (`context`, `question`, `options`, `label`).
pub fn choice_example(path: &Path, row: &Row) -> Result<ChoiceExample> {
    let f = Fields { path, row };
    let question = f.string("question")?;
    let context = f.opt_string("context")?;
    let options = match f.get("options") {
        Some(Value::String(s)) if row.csv => match serde_json::from_str::<Vec<String>>(s) {
            Ok(v) => v,
            Err(e) => {
                return Err(f.err("options", format!("expected a JSON array of strings: {e}")))
            }
        },
        Some(_) => f.strings("options")?.unwrap_or_default(),
        None => {
            // option1, option2, ... (or option0, ...), in numeric order.
            let mut numbered: Vec<(u64, String)> = Vec::new();
            for k in row.fields.keys() {
                if let Some(n) = k.strip_prefix("option").and_then(|n| n.parse::<u64>().ok()) {
                    if let Some(v) = f.opt_string(k)? {
                        numbered.push((n, v));
                    }
                }
            }
            numbered.sort_by_key(|(n, _)| *n);
            numbered.into_iter().map(|(_, v)| v).collect()
        }
    };
    if options.len() < 2 {
        return Err(f.err(
            "options",
            format!(
                "{} options; give at least two (`options` or option1, option2, ...)",
                options.len()
            ),
        ));
    }
    let label_field = if f.get("label").is_some() {
        "label"
    } else {
        "answer"
    };
    let label = match f.index(label_field)? {
        None => None,
        Some(i) if i >= 0 && (i as usize) < options.len() => Some(i as usize),
        Some(i) => {
            return Err(f.err(
                label_field,
                format!(
                    "option index {i} is out of range for {} options",
                    options.len()
                ),
            ))
        }
    };
    Ok(ChoiceExample {
        line: row.line,
        context,
        question,
        options,
        label,
    })
}

/// One question-answering row (`question`, `context`, answers).
pub fn qa_example(path: &Path, row: &Row) -> Result<QaExample> {
    let f = Fields { path, row };
    let question = f.string("question")?;
    let context = f.string("context")?;
    if question.trim().is_empty() {
        return Err(f.err("question", "is empty"));
    }
    if context.trim().is_empty() {
        return Err(f.err("context", "is empty"));
    }
    let (texts, starts, tf, sf) = if let Some(a) = f.get("answers") {
        let a = match a {
            Value::String(s) if row.csv => serde_json::from_str::<Value>(s)
                .map_err(|e| f.err("answers", format!("invalid JSON: {e}")))?,
            v => v.clone(),
        };
        let Value::Object(obj) = &a else {
            return Err(f.err(
                "answers",
                format!(
                    "is {}, expected {{\"text\": [...], \"answer_start\": [...]}}",
                    kind(&a)
                ),
            ));
        };
        let texts: Vec<Value> = match obj.get("text") {
            Some(Value::Array(v)) => v.clone(),
            Some(v @ Value::String(_)) => vec![v.clone()],
            _ => return Err(f.err("answers.text", "missing or not an array")),
        };
        let starts: Vec<Value> = match obj.get("answer_start") {
            Some(Value::Array(v)) => v.clone(),
            Some(v @ Value::Number(_)) => vec![v.clone()],
            _ => return Err(f.err("answers.answer_start", "missing or not an array")),
        };
        (texts, starts, "answers.text", "answers.answer_start")
    } else {
        let texts = match f.get("answer_text") {
            None => Vec::new(),
            Some(Value::Array(v)) => v.clone(),
            Some(v @ Value::String(_))
                if row.csv && v.as_str().is_some_and(|s| s.trim_start().starts_with('[')) =>
            {
                match serde_json::from_str::<Value>(v.as_str().unwrap_or_default()) {
                    Ok(Value::Array(a)) => a,
                    _ => vec![v.clone()],
                }
            }
            Some(v) => vec![v.clone()],
        };
        let starts = match f.get("answer_start") {
            None => Vec::new(),
            Some(Value::Array(v)) => v.clone(),
            Some(Value::String(s)) if row.csv => {
                let t = s.trim();
                if t.starts_with('[') {
                    match serde_json::from_str::<Value>(t) {
                        Ok(Value::Array(a)) => a,
                        _ => {
                            return Err(
                                f.err("answer_start", "starts with `[` but is not a JSON array")
                            )
                        }
                    }
                } else {
                    vec![Value::String(t.to_string())]
                }
            }
            Some(v) => vec![v.clone()],
        };
        (texts, starts, "answer_text", "answer_start")
    };
    if texts.len() != starts.len() {
        return Err(f.err(
            sf,
            format!(
                "{} answer starts for {} answer texts",
                starts.len(),
                texts.len()
            ),
        ));
    }
    let n_chars = context.chars().count();
    let mut answers = Vec::new();
    for (i, (t, s)) in texts.iter().zip(&starts).enumerate() {
        let Value::String(text) = t else {
            return Err(f.err(tf, format!("answer {i} is {}, expected a string", kind(t))));
        };
        let start = match s {
            Value::Number(n) => n.as_u64().filter(|_| !n.is_f64()),
            Value::String(s) if row.csv => s.trim().parse::<u64>().ok(),
            _ => None,
        }
        .ok_or_else(|| f.err(sf, format!("answer {i}: {s} is not a non-negative integer")))?
            as usize;
        let len = text.chars().count();
        if start + len > n_chars {
            return Err(f.err(
                sf,
                format!(
                    "answer {i} (`{text}`) at character {start} runs past the end of the context ({n_chars} characters)"
                ),
            ));
        }
        let found: String = context.chars().skip(start).take(len).collect();
        if &found != text {
            return Err(f.err(
                sf,
                format!("the context has `{found}` at character {start}, not the answer `{text}`"),
            ));
        }
        answers.push(GoldAnswer {
            text: text.clone(),
            start,
        });
    }
    Ok(QaExample {
        line: row.line,
        question,
        context,
        answers,
    })
}
