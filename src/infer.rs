//! The `infer` JSON-lines interface: one input line is one batch, one output
//! line carries HF's output names. Parsing is strict: every problem is an
//! error naming the field, and nothing a user writes can panic.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::checkpoint::Tensor;
use crate::error::{Error, Result};
use crate::graph::Head;
use crate::heads::Labels;
use crate::inputs::Encoding;
use crate::model::{Model, Outputs};

/// One parsed input line.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The model inputs.
    pub encoding: Encoding,
    /// Labels, when the line has any.
    pub labels: Option<Labels>,
    /// Whether the inputs came from `text` (then they are echoed back).
    pub from_text: bool,
}

const KNOWN_KEYS: &[&str] = &[
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "text",
    "text_pair",
    "labels",
    "start_positions",
    "end_positions",
];

/// A nested JSON array of numbers: its shape and values, row-major.
struct Nested {
    shape: Vec<usize>,
    values: Vec<Value>,
}

fn nested(v: &Value, field: &str) -> std::result::Result<Nested, String> {
    fn walk(
        v: &Value,
        depth: usize,
        shape: &mut Vec<usize>,
        out: &mut Vec<Value>,
        path: &str,
    ) -> std::result::Result<(), String> {
        match v {
            Value::Array(items) => {
                if shape.len() == depth {
                    if !out.is_empty() {
                        return Err(format!(
                            "{path} is an array where a number was expected (ragged nesting)"
                        ));
                    }
                    shape.push(items.len());
                } else if depth > shape.len() || shape[depth] != items.len() {
                    return Err(format!(
                        "{path} has {} entries, but its siblings have {} (rows must all have the same length; pad them and use attention_mask)",
                        items.len(),
                        shape.get(depth).copied().unwrap_or(0)
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    walk(item, depth + 1, shape, out, &format!("{path}[{i}]"))?;
                }
                Ok(())
            }
            Value::Number(_) => {
                if depth != shape.len() {
                    return Err(format!(
                        "{path} is a number where an array was expected (ragged nesting)"
                    ));
                }
                out.push(v.clone());
                Ok(())
            }
            other => Err(format!("{path} is {}, expected a number", json_kind(other))),
        }
    }
    let mut shape = Vec::new();
    let mut values = Vec::new();
    walk(v, 0, &mut shape, &mut values, field)?;
    Ok(Nested { shape, values })
}

/// "a string", "an array", … for error messages about a JSON value.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn flat_index(shape: &[usize], mut i: usize) -> String {
    let mut idx = vec![0; shape.len()];
    for (d, s) in shape.iter().enumerate().rev() {
        if *s > 0 {
            idx[d] = i % s;
            i /= s;
        }
    }
    idx.iter().map(|i| format!("[{i}]")).collect()
}

fn as_u32s(n: &Nested, field: &str) -> std::result::Result<Vec<u32>, String> {
    n.values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(|| {
                    format!(
                        "{field}{} = {v} is not a non-negative 32-bit integer",
                        flat_index(&n.shape, i)
                    )
                })
        })
        .collect()
}

fn as_i64s(n: &Nested, field: &str) -> std::result::Result<Vec<i64>, String> {
    n.values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_i64().ok_or_else(|| {
                format!("{field}{} = {v} is not an integer", flat_index(&n.shape, i))
            })
        })
        .collect()
}

fn strings(v: &Value, field: &str) -> std::result::Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{field}[{i}] is {}, expected a string", json_kind(s)))
            })
            .collect(),
        other => Err(format!(
            "{field} is {}, expected a string or an array of strings",
            json_kind(other)
        )),
    }
}

/// Parses one input line for `model`. Errors are plain messages; the caller
/// adds the line number.
pub fn parse_request(line: &str, model: &Model) -> std::result::Result<Request, String> {
    // A UTF-8 byte-order mark (from some editors) is not part of the JSON.
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    let v: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = match v {
        Value::Object(o) => o,
        other => return Err(format!("expected a JSON object, got {}", json_kind(&other))),
    };
    if let Some(k) = obj.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown key `{k}` (expected some of: {})",
            KNOWN_KEYS.join(", ")
        ));
    }
    let head = model.head();
    let mc = head == Head::MultipleChoice;
    let (encoding, from_text) = match (obj.get("input_ids"), obj.get("text")) {
        (Some(_), Some(_)) => return Err("give either input_ids or text, not both".into()),
        (None, None) => return Err("missing input: expected `input_ids` or `text`".into()),
        (Some(ids), None) => (ids_encoding(ids, &obj, mc)?, false),
        (None, Some(text)) => (text_encoding(text, &obj, model, mc)?, true),
    };
    let labels = parse_labels(&obj, head, &encoding, model)?;
    Ok(Request {
        encoding,
        labels,
        from_text,
    })
}

fn ids_encoding(
    ids: &Value,
    obj: &Map<String, Value>,
    mc: bool,
) -> std::result::Result<Encoding, String> {
    if obj.contains_key("text_pair") {
        return Err("text_pair needs text, not input_ids".into());
    }
    let n = nested(ids, "input_ids")?;
    if n.shape.contains(&0) {
        return Err("empty batch: input_ids has a zero-length dimension".into());
    }
    let want_rank = if mc { 3 } else { 2 };
    if n.shape.len() != want_rank {
        return Err(if mc {
            format!(
                "multiple-choice input_ids must be 3-D [batch][choices][seq], got {}-D",
                n.shape.len()
            )
        } else {
            format!("input_ids must be 2-D [batch][seq], got {}-D (3-D input is for the multiple-choice head)", n.shape.len())
        });
    }
    let input_ids = as_u32s(&n, "input_ids")?;
    let total = input_ids.len();
    let side = |field: &str, default: u32| -> std::result::Result<Vec<u32>, String> {
        match obj.get(field) {
            None => Ok(vec![default; total]),
            Some(v) => {
                let m = nested(v, field)?;
                if m.shape != n.shape {
                    return Err(format!(
                        "{field} has shape {:?} but input_ids has shape {:?}",
                        m.shape, n.shape
                    ));
                }
                as_u32s(&m, field)
            }
        }
    };
    let attention_mask = side("attention_mask", 1)?;
    let token_type_ids = side("token_type_ids", 0)?;
    Ok(Encoding {
        input_ids,
        attention_mask,
        token_type_ids,
        batch: n.shape[0],
        choices: mc.then(|| n.shape[1]),
        seq: n.shape[want_rank - 1],
    })
}

fn text_encoding(
    text: &Value,
    obj: &Map<String, Value>,
    model: &Model,
    mc: bool,
) -> std::result::Result<Encoding, String> {
    for k in ["attention_mask", "token_type_ids"] {
        if obj.contains_key(k) {
            return Err(format!(
                "{k} is computed from text; give it only with input_ids"
            ));
        }
    }
    let texts = strings(text, "text")?;
    if texts.is_empty() {
        return Err("empty batch: text is []".into());
    }
    let tok = model.tokenizer().ok_or(
        "this checkpoint has no tokenizer.json, so text input is unavailable; send input_ids",
    )?;
    if mc {
        let pairs = obj
            .get("text_pair")
            .ok_or("multiple-choice text input needs text_pair: [[option, ...], ...]")?;
        let rows = match pairs {
            Value::Array(rows) if rows.len() == texts.len() => rows,
            _ => {
                return Err(format!(
                    "text_pair must be an array of {} arrays of options",
                    texts.len()
                ))
            }
        };
        let mut firsts = Vec::new();
        let mut seconds = Vec::new();
        let mut choices = None;
        for (i, row) in rows.iter().enumerate() {
            let opts = strings(row, &format!("text_pair[{i}]"))?;
            if *choices.get_or_insert(opts.len()) != opts.len() {
                return Err(format!(
                    "text_pair[{i}] has {} options, the first example has {}",
                    opts.len(),
                    choices.unwrap_or(0)
                ));
            }
            for o in opts {
                firsts.push(texts[i].clone());
                seconds.push(o);
            }
        }
        let c = choices.unwrap_or(0);
        if c == 0 {
            return Err("multiple-choice input has no options".into());
        }
        let mut enc = tok
            .encode(&firsts, Some(&seconds))
            .map_err(|e| e.to_string())?;
        enc.batch = texts.len();
        enc.choices = Some(c);
        return Ok(enc);
    }
    let pairs = match obj.get("text_pair") {
        None => None,
        Some(p) => Some(strings(p, "text_pair")?),
    };
    tok.encode(&texts, pairs.as_deref())
        .map_err(|e| e.to_string())
}

fn parse_labels(
    obj: &Map<String, Value>,
    head: Head,
    enc: &Encoding,
    model: &Model,
) -> std::result::Result<Option<Labels>, String> {
    let start = obj.get("start_positions");
    let end = obj.get("end_positions");
    let labels = obj.get("labels");
    if head == Head::QuestionAnswering {
        if labels.is_some() {
            return Err(
                "the question-answering head takes start_positions and end_positions, not labels"
                    .into(),
            );
        }
        return match (start, end) {
            (None, None) => Ok(None),
            (Some(s), Some(e)) => {
                let (s, e) = (nested(s, "start_positions")?, nested(e, "end_positions")?);
                for (n, f) in [(&s, "start_positions"), (&e, "end_positions")] {
                    if n.shape != [enc.batch] {
                        return Err(format!(
                            "{f} must be [batch] = [{}], got shape {:?}",
                            enc.batch, n.shape
                        ));
                    }
                }
                Ok(Some(Labels::Spans {
                    start: as_i64s(&s, "start_positions")?,
                    end: as_i64s(&e, "end_positions")?,
                }))
            }
            _ => Err("give both start_positions and end_positions".into()),
        };
    }
    if start.is_some() || end.is_some() {
        return Err(format!(
            "start_positions/end_positions are for the question-answering head, not {}",
            head.cli_name()
        ));
    }
    let Some(labels) = labels else {
        return Ok(None);
    };
    if head == Head::Base {
        return Err("the base model has no head, so labels cannot be used (choose --head)".into());
    }
    let n = nested(labels, "labels")?;
    let all_int = n.values.iter().all(|v| v.is_i64() || v.is_u64());
    let cfg = model.config();
    let (want, what): (Vec<usize>, &str) = match head {
        Head::TokenClassification => (vec![enc.batch, enc.seq], "[batch][seq]"),
        Head::SequenceClassification if n.shape.len() == 2 => {
            (vec![enc.batch, cfg.num_labels], "[batch][num_labels]")
        }
        _ => (vec![enc.batch], "[batch]"),
    };
    if n.shape != want {
        return Err(format!(
            "labels must be {what} = {want:?}, got shape {:?}",
            n.shape
        ));
    }
    let classes = |n: &Nested| -> std::result::Result<Vec<i64>, String> {
        let c = as_i64s(n, "labels")?;
        let bound = match head {
            Head::MultipleChoice => enc.choices.unwrap_or(1),
            _ => cfg.num_labels,
        };
        for (i, &v) in c.iter().enumerate() {
            let ok = (v >= 0 && (v as usize) < bound)
                || (v == -100 && head == Head::TokenClassification);
            if !ok {
                return Err(format!(
                    "labels{} = {v} is not a class index in [0, {bound})",
                    flat_index(&n.shape, i)
                ));
            }
        }
        Ok(c)
    };
    Ok(Some(match head {
        Head::TokenClassification | Head::MultipleChoice => {
            if !all_int {
                return Err("labels must be integers".into());
            }
            Labels::Classes(classes(&n)?)
        }
        _ => {
            let regression = cfg.num_labels == 1
                || cfg.problem_type == Some(crate::config::ProblemType::Regression);
            let multi = n.shape.len() == 2
                || cfg.problem_type == Some(crate::config::ProblemType::MultiLabel);
            if all_int && !regression && !multi {
                Labels::Classes(classes(&n)?)
            } else {
                let f: Vec<f32> = n
                    .values
                    .iter()
                    .map(|v| v.as_f64().unwrap_or(f64::NAN) as f32)
                    .collect();
                if f.iter().any(|x| !x.is_finite()) {
                    return Err("labels must be finite numbers".into());
                }
                Labels::Floats(f)
            }
        }
    }))
}

/// Appends a tensor as nested JSON arrays.
pub fn write_tensor(out: &mut String, t: &Tensor) {
    fn rec(out: &mut String, shape: &[usize], data: &[f32]) {
        out.push('[');
        if shape.len() <= 1 {
            let mut buf = ryu::Buffer::new();
            for (i, v) in data.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if v.is_finite() {
                    out.push_str(buf.format_finite(*v));
                } else {
                    out.push_str("null");
                }
            }
        } else {
            let step = data.len() / shape[0].max(1);
            for i in 0..shape[0] {
                if i > 0 {
                    out.push(',');
                }
                rec(out, &shape[1..], &data[i * step..(i + 1) * step]);
            }
        }
        out.push(']');
    }
    rec(out, &t.shape, &t.data);
}

fn write_ints(out: &mut String, rows: usize, seq: usize, v: &[u32]) {
    out.push('[');
    for r in 0..rows {
        if r > 0 {
            out.push(',');
        }
        out.push('[');
        for (i, x) in v[r * seq..(r + 1) * seq].iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{x}");
        }
        out.push(']');
    }
    out.push(']');
}

/// Renders outputs as one JSON object (no trailing newline).
pub fn render(outputs: &Outputs, req: &Request) -> String {
    let mut s = String::from("{");
    let mut first = true;
    let mut key = |s: &mut String, k: &str| {
        if !first {
            s.push(',');
        }
        first = false;
        let _ = write!(s, "\"{k}\":");
    };
    let tensors = [
        ("last_hidden_state", &outputs.last_hidden_state),
        ("pooler_output", &outputs.pooler_output),
        ("logits", &outputs.logits),
        ("start_logits", &outputs.start_logits),
        ("end_logits", &outputs.end_logits),
    ];
    for (name, t) in tensors {
        if let Some(t) = t {
            key(&mut s, name);
            write_tensor(&mut s, t);
        }
    }
    if let Some(loss) = outputs.loss {
        key(&mut s, "loss");
        if loss.is_finite() {
            s.push_str(ryu::Buffer::new().format_finite(loss));
        } else {
            s.push_str("null");
        }
    }
    if req.from_text {
        let e = &req.encoding;
        let rows = e.sequences();
        for (name, v) in [
            ("input_ids", &e.input_ids),
            ("attention_mask", &e.attention_mask),
            ("token_type_ids", &e.token_type_ids),
        ] {
            key(&mut s, name);
            write_ints(&mut s, rows, e.seq, v);
        }
    }
    s.push('}');
    s
}

/// Parses, runs and renders one line. Errors carry the 1-based line number.
pub fn run_line(model: &Model, line_no: usize, line: &str) -> Result<String> {
    use crate::batch::Job;
    let job = InferJob { model };
    let item = job.prepare((line_no, line.to_string()))?;
    Ok(job.run(&[&item])?.pop().unwrap_or_default())
}

/// The `infer` protocol on the batcher: each line is a batch already, so it
/// runs alone (its own group), but lines are read and tokenized a window
/// ahead of the model, and written in order.
pub struct InferJob<'a> {
    /// The model.
    pub model: &'a Model,
}

impl crate::batch::Job for InferJob<'_> {
    type Input = (usize, String);
    type Item = (usize, Request);
    type Output = String;

    fn prepare(&self, (line_no, line): (usize, String)) -> Result<(usize, Request)> {
        let req = parse_request(&line, self.model).map_err(|message| Error::Line {
            line: line_no,
            message,
        })?;
        Ok((line_no, req))
    }

    fn shape(&self, (line_no, req): &(usize, Request)) -> crate::batch::Shape {
        crate::batch::Shape {
            sequences: req.encoding.sequences(),
            len: req.encoding.seq,
            group: *line_no as u64,
        }
    }

    fn run(&self, items: &[&(usize, Request)]) -> Result<Vec<String>> {
        items
            .iter()
            .map(|(line_no, req)| {
                let out = self
                    .model
                    .forward_select(&req.encoding, req.labels.as_ref(), false)
                    .map_err(|e| match e {
                        Error::Input(m) | Error::Labels(m) | Error::Tokenizer(m) => Error::Line {
                            line: *line_no,
                            message: m,
                        },
                        other => other,
                    })?;
                Ok(render(&out, req))
            })
            .collect()
    }
}
