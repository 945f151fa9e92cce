//! The task subcommands: inputs from arguments and `--data`, results as
//! tables or JSON lines. Everything is computed before anything is printed.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use bert_wgpu::datasets::{self, Dataset, Task};
use bert_wgpu::pipelines::{self, eval, render};
use bert_wgpu::{Error, Head};
use clap::Args;

use super::{load, ModelArgs};

/// Options every task subcommand takes.
#[derive(Args, Clone)]
pub struct TaskArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// One JSON line per input instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Inputs from a JSONL or CSV file (with a header row), after any
    /// given on the command line.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
}

fn print_all(lines: Vec<String>) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    for l in lines {
        w.write_all(l.as_bytes())?;
    }
    w.flush()?;
    Ok(())
}

fn rows(path: &Path) -> anyhow::Result<Vec<datasets::Row>> {
    Ok(datasets::read_rows(path)?)
}

/// The `text` of every row of a data file.
pub fn data_texts(path: &Path) -> anyhow::Result<Vec<String>> {
    let rows = rows(path)?;
    match datasets::parse_rows(path, &rows, Task::Classification)? {
        Dataset::Classification(ex) => Ok(ex.into_iter().map(|e| e.text).collect()),
        _ => Ok(Vec::new()),
    }
}

fn need_inputs(n: usize, what: &str) -> anyhow::Result<()> {
    if n == 0 {
        anyhow::bail!(Error::Input(format!(
            "no {what}: give them as arguments or with --data FILE"
        )));
    }
    Ok(())
}

pub fn classify(
    a: &TaskArgs,
    texts: Vec<String>,
    top_k: usize,
    function: Option<&str>,
) -> anyhow::Result<()> {
    let mut inputs: Vec<(String, Option<String>)> = texts.into_iter().map(|t| (t, None)).collect();
    if let Some(p) = &a.data {
        if let Dataset::Classification(ex) =
            datasets::parse_rows(p, &rows(p)?, Task::Classification)?
        {
            inputs.extend(ex.into_iter().map(|e| (e.text, e.text_pair)));
        }
    }
    need_inputs(inputs.len(), "texts")?;
    let opts = pipelines::ClassifyOptions {
        top_k: (top_k > 0).then_some(top_k),
        function_to_apply: function.map(str::parse).transpose()?,
        batch_size: a.batch_size,
    };
    let m = load(&a.model, Some(Head::SequenceClassification))?;
    let refs: Vec<(&str, Option<&str>)> = inputs
        .iter()
        .map(|(t, p)| (t.as_str(), p.as_deref()))
        .collect();
    let out = pipelines::classify_pairs(&m, &refs, &opts)?;
    let lines = inputs
        .iter()
        .zip(&out)
        .map(|((t, p), r)| {
            let shown = match p {
                Some(p) => format!("{t} | {p}"),
                None => t.clone(),
            };
            if a.json {
                format!("{}\n", render::classify_json(&shown, r))
            } else {
                render::classify_table(&shown, r)
            }
        })
        .collect();
    print_all(lines)
}

pub fn ner(a: &TaskArgs, mut texts: Vec<String>, aggregation: &str) -> anyhow::Result<()> {
    if let Some(p) = &a.data {
        let rows = rows(p)?;
        for r in &rows {
            // `text`, or `words` joined with spaces.
            let one = std::slice::from_ref(r);
            if r.fields.contains_key("text") && !r.fields.contains_key("words") {
                if let Dataset::Classification(ex) =
                    datasets::parse_rows(p, one, Task::Classification)?
                {
                    texts.extend(ex.into_iter().map(|e| e.text));
                }
            } else if let Dataset::TokenClassification(ex) =
                datasets::parse_rows(p, one, Task::TokenClassification)?
            {
                texts.extend(ex.into_iter().map(|e| e.words.join(" ")));
            }
        }
    }
    need_inputs(texts.len(), "texts")?;
    let opts = pipelines::NerOptions {
        aggregation: aggregation.parse()?,
        batch_size: a.batch_size,
        ..Default::default()
    };
    let m = load(&a.model, Some(Head::TokenClassification))?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let out = pipelines::ner(&m, &refs, &opts)?;
    let lines = texts
        .iter()
        .zip(&out)
        .map(|(t, r)| {
            if a.json {
                format!("{}\n", render::entities_json(t, r))
            } else {
                render::entities_table(t, r)
            }
        })
        .collect();
    print_all(lines)
}

pub fn qa(
    a: &TaskArgs,
    pairs: Vec<String>,
    question: Option<String>,
    context: Option<String>,
    opts: &pipelines::QaOptions,
) -> anyhow::Result<()> {
    let mut inputs = Vec::new();
    match (question, context) {
        (Some(q), Some(c)) => inputs.push(pipelines::QaInput::new(q, c)),
        (None, None) => {}
        _ => anyhow::bail!(Error::Input("give both --question and --context".into())),
    }
    if pairs.len() % 2 != 0 {
        anyhow::bail!(Error::Input(
            "positional inputs are QUESTION CONTEXT pairs: give an even number".into()
        ));
    }
    for p in pairs.chunks_exact(2) {
        inputs.push(pipelines::QaInput::new(p[0].clone(), p[1].clone()));
    }
    if let Some(p) = &a.data {
        if let Dataset::QuestionAnswering(ex) =
            datasets::parse_rows(p, &rows(p)?, Task::QuestionAnswering)?
        {
            inputs.extend(
                ex.into_iter()
                    .map(|e| pipelines::QaInput::new(e.question, e.context)),
            );
        }
    }
    need_inputs(inputs.len(), "questions")?;
    let m = load(&a.model, Some(Head::QuestionAnswering))?;
    let out = pipelines::qa(&m, &inputs, opts)?;
    let lines = inputs
        .iter()
        .zip(&out)
        .map(|(i, r)| {
            if a.json {
                format!(
                    "{}\n",
                    render::answers_json(&i.question, &i.context, r, opts.top_k)
                )
            } else {
                render::answers_table(&i.question, &i.context, r)
            }
        })
        .collect();
    print_all(lines)
}

pub fn choose(
    a: &TaskArgs,
    question: Option<String>,
    context: Option<String>,
    options: Vec<String>,
) -> anyhow::Result<()> {
    let mut inputs = Vec::new();
    match question {
        Some(q) => {
            if options.len() < 2 {
                anyhow::bail!(Error::Input(
                    "give at least two options: --option A --option B ...".into()
                ));
            }
            inputs.push(pipelines::ChoiceInput {
                context,
                question: q,
                options,
            });
        }
        None if !options.is_empty() || context.is_some() => {
            anyhow::bail!(Error::Input(
                "--option and --context need --question".into()
            ))
        }
        None => {}
    }
    if let Some(p) = &a.data {
        if let Dataset::MultipleChoice(ex) =
            datasets::parse_rows(p, &rows(p)?, Task::MultipleChoice)?
        {
            inputs.extend(ex.into_iter().map(|e| pipelines::ChoiceInput {
                context: e.context,
                question: e.question,
                options: e.options,
            }));
        }
    }
    need_inputs(inputs.len(), "questions")?;
    let m = load(&a.model, Some(Head::MultipleChoice))?;
    let out = pipelines::choose(&m, &inputs, &pipelines::ChooseOptions::default())?;
    let lines = inputs
        .iter()
        .zip(&out)
        .map(|(i, c)| {
            if a.json {
                format!(
                    "{}\n",
                    render::choice_json(i.context.as_deref(), &i.question, &i.options, c)
                )
            } else {
                render::choice_table(&i.question, &i.options, c)
            }
        })
        .collect();
    print_all(lines)
}

pub fn eval(a: &TaskArgs, kind: &str, label_all_tokens: bool) -> anyhow::Result<()> {
    let task: Task = kind.parse()?;
    let path = a
        .data
        .as_ref()
        .ok_or_else(|| Error::Input("eval needs --data FILE".into()))?;
    let data = datasets::read_dataset(path, task)?;
    let head = match task {
        Task::Classification => Head::SequenceClassification,
        Task::TokenClassification => Head::TokenClassification,
        Task::MultipleChoice => Head::MultipleChoice,
        Task::QuestionAnswering => Head::QuestionAnswering,
    };
    let m = load(&a.model, Some(head))?;
    let opts = eval::EvalOptions {
        batch_size: a.batch_size,
        label_all_tokens,
        qa: pipelines::QaOptions {
            batch_size: a.batch_size,
            ..Default::default()
        },
    };
    let bar = if !crate::show_progress() {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bar:40} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message(if task == Task::QuestionAnswering {
            "windows"
        } else {
            "examples"
        });
        b
    };
    let report = eval::evaluate(&m, path, &data, &opts, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .with_context(|| format!("evaluating {}", path.display()));
    bar.finish_and_clear();
    let report = report?;
    if a.json {
        print_all(vec![format!("{}\n", serde_json::to_string(&report)?)])
    } else {
        print_all(vec![render::eval_table(&report)])
    }
}
