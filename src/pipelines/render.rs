//! Human-readable tables and JSON lines for pipeline results (what the CLI
//! prints).

use serde::Serialize;

use super::eval::EvalReport;
use super::{Answer, Choice, Entity, LabelScore};

fn width<'a>(items: impl Iterator<Item = &'a str>, min: usize) -> usize {
    items.map(|s| s.chars().count()).max().unwrap_or(0).max(min)
}

fn pad(s: &str, w: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(w.saturating_sub(n)))
}

/// `text` then one `label  score` row per label.
pub fn classify_table(text: &str, labels: &[LabelScore]) -> String {
    let w = width(labels.iter().map(|l| l.label.as_str()), 5);
    let mut s = format!("{text:?}\n  {}  score\n", pad("label", w));
    for l in labels {
        s.push_str(&format!("  {}  {:.4}\n", pad(&l.label, w), l.score));
    }
    s
}

/// `text` then one `entity  type  score  span` row per entity.
pub fn entities_table(text: &str, entities: &[Entity]) -> String {
    let mut s = format!("{text:?}\n");
    if entities.is_empty() {
        s.push_str("  (no entities)\n");
        return s;
    }
    let ww = width(entities.iter().map(|e| e.word.as_str()), 6);
    let tw = width(entities.iter().map(|e| e.label.as_str()), 4);
    s.push_str(&format!(
        "  {}  {}  score   span\n",
        pad("entity", ww),
        pad("type", tw)
    ));
    for e in entities {
        let idx = e.index.map(|i| format!("  token {i}")).unwrap_or_default();
        s.push_str(&format!(
            "  {}  {}  {:.4}  {}..{}{idx}\n",
            pad(&e.word, ww),
            pad(&e.label, tw),
            e.score,
            e.start,
            e.end
        ));
    }
    s
}

/// Up to `radius` characters of context on each side of `start..end`, the
/// answer wrapped in `[brackets]`, `…` where the context was cut.
pub fn highlight(context: &str, start: usize, end: usize, radius: usize) -> String {
    let chars: Vec<char> = context.chars().collect();
    let (start, end) = (
        start.min(chars.len()),
        end.min(chars.len()).max(start.min(chars.len())),
    );
    let from = start.saturating_sub(radius);
    let to = (end + radius).min(chars.len());
    let mut s = String::new();
    if from > 0 {
        s.push('…');
    }
    s.extend(&chars[from..start]);
    s.push('[');
    s.extend(&chars[start..end]);
    s.push(']');
    s.extend(&chars[end..to]);
    if to < chars.len() {
        s.push('…');
    }
    s.replace('\n', " ")
}

/// The question, then each answer with its score, span and context.
pub fn answers_table(question: &str, context: &str, answers: &[Answer]) -> String {
    let mut s = format!("Q: {question}\n");
    if answers.is_empty() {
        s.push_str("  (no answer)\n");
    }
    for (i, a) in answers.iter().enumerate() {
        let shown = if a.answer.is_empty() {
            "(no answer)".to_string()
        } else {
            format!("{:?}", a.answer)
        };
        s.push_str(&format!(
            "  {}. {shown}  score {:.4}  chars {}..{}\n     {}\n",
            i + 1,
            a.score,
            a.start,
            a.end,
            highlight(context, a.start, a.end, 60)
        ));
    }
    s
}

/// The question, then every option with its score, the choice marked `*`.
pub fn choice_table(question: &str, options: &[String], c: &Choice) -> String {
    let w = width(options.iter().map(String::as_str), 6);
    let mut s = format!("Q: {question}\n     {}  score\n", pad("option", w));
    for (i, (o, sc)) in options.iter().zip(&c.scores).enumerate() {
        let mark = if i == c.choice { '*' } else { ' ' };
        s.push_str(&format!("  {mark} {i} {}  {sc:.4}\n", pad(o, w)));
    }
    s
}

/// The evaluation summary, one `name  value` row each.
pub fn eval_table(r: &EvalReport) -> String {
    let mut rows: Vec<(String, String)> = vec![
        ("task".into(), r.task.to_string()),
        ("examples".into(), r.examples.to_string()),
    ];
    if r.sequences != r.examples {
        rows.push(("windows".into(), r.sequences.to_string()));
    }
    rows.push(("loss".into(), format!("{:.6}", r.loss)));
    for (k, v) in &r.metrics {
        rows.push((k.to_string(), format!("{v:.6}")));
    }
    let w = width(rows.iter().map(|(k, _)| k.as_str()), 0);
    rows.iter()
        .map(|(k, v)| format!("{}  {v}\n", pad(k, w)))
        .collect()
}

fn to_line<T: Serialize>(v: &T) -> String {
    // Serialising plain structs of strings and numbers cannot fail; keep the
    // signature infallible with an empty object as the impossible fallback.
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

/// `{"text", "labels": [{"label", "score"}, ...]}` (one line, no newline).
pub fn classify_json(text: &str, labels: &[LabelScore]) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        text: &'a str,
        labels: &'a [LabelScore],
    }
    to_line(&Line { text, labels })
}

/// `{"text", "entities": [...]}` with HF's keys per entity.
pub fn entities_json(text: &str, entities: &[Entity]) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        text: &'a str,
        entities: &'a [Entity],
    }
    to_line(&Line { text, entities })
}

/// `{"question", "context", "answer": {"score", "start", "end", "answer"}}`
/// for `top_k` 1 (null when there is no answer), else `"answers": [...]`.
pub fn answers_json(question: &str, context: &str, answers: &[Answer], top_k: usize) -> String {
    #[derive(Serialize)]
    struct One<'a> {
        question: &'a str,
        context: &'a str,
        answer: Option<&'a Answer>,
    }
    #[derive(Serialize)]
    struct Many<'a> {
        question: &'a str,
        context: &'a str,
        answers: &'a [Answer],
    }
    if top_k == 1 {
        to_line(&One {
            question,
            context,
            answer: answers.first(),
        })
    } else {
        to_line(&Many {
            question,
            context,
            answers,
        })
    }
}

/// `{["context",] "question", "options", "choice", "option", "scores"}`.
pub fn choice_json(
    context: Option<&str>,
    question: &str,
    options: &[String],
    c: &Choice,
) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        context: Option<&'a str>,
        question: &'a str,
        options: &'a [String],
        choice: usize,
        option: &'a str,
        scores: &'a [f32],
    }
    to_line(&Line {
        context,
        question,
        options,
        choice: c.choice,
        option: &c.option,
        scores: &c.scores,
    })
}
