//! The task subcommands: inputs from arguments and `--data`, results as
//! tables or JSON lines, streamed through the batcher (results are printed
//! in input order as each window of inputs completes).

use std::io::Write;

use anyhow::Context;
use bert_wgpu::batch::Job;
use bert_wgpu::datasets::{self, Task};
use bert_wgpu::pipelines::{self, eval, render};
use bert_wgpu::{Error, Head};
use clap::Args;

use super::stream::{self, out_err, DataArgs, Inputs};
use super::{load, ModelArgs};

/// Options every task subcommand takes.
#[derive(Args, Clone)]
pub struct TaskArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// One JSON line per input instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

fn print_out(a: &TaskArgs, text: &str) -> anyhow::Result<()> {
    let mut out = stream::text_out(a.data.output.as_deref())?;
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn need_inputs(n: usize, what: &str) -> anyhow::Result<()> {
    if n == 0 {
        anyhow::bail!(Error::Input(format!(
            "no {what}: give them as arguments or with --data FILE"
        )));
    }
    Ok(())
}

/// Runs `job` over `inputs`, printing each result with `show(input, output)`
/// as its window completes. The inputs are kept (in order) only until their
/// result is printed.
fn print_stream<J: Job>(
    a: &TaskArgs,
    job: &J,
    model: &bert_wgpu::Model,
    inputs: Inputs<J::Input>,
    show: impl Fn(&J::Input, &J::Output, bool) -> String,
) -> anyhow::Result<()>
where
    J::Input: Clone + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel::<J::Input>();
    let inputs = inputs.tap(move |i: &J::Input| {
        let _ = tx.send(i.clone());
    });
    let mut out = stream::text_out(a.data.output.as_deref())?;
    let json = a.json;
    let r = stream::drive(job, model, inputs, &a.data.batch(), &mut |o| {
        let i = rx
            .recv()
            .map_err(|_| Error::Input("internal: an output without its input".into()))?;
        out.write_all(show(&i, &o, json).as_bytes())
            .map_err(out_err)
    });
    out.flush()?;
    r?;
    Ok(())
}

pub fn classify(
    a: &TaskArgs,
    texts: Vec<String>,
    top_k: usize,
    function: Option<&str>,
) -> anyhow::Result<()> {
    let given: Vec<(String, Option<String>)> = texts.into_iter().map(|t| (t, None)).collect();
    let inputs = Inputs::new(given, &a.data, |path, row| {
        let e = datasets::text_example(path, row)?;
        Ok((e.text, e.text_pair))
    })?;
    need_inputs(usize::from(!inputs.is_empty()), "texts")?;
    let opts = pipelines::ClassifyOptions {
        top_k: (top_k > 0).then_some(top_k),
        function_to_apply: function.map(str::parse).transpose()?,
        batch_size: a.data.batch_size,
    };
    let m = load(&a.model, Some(Head::SequenceClassification))?;
    let job = pipelines::ClassifyJob::new(&m, &opts)?;
    print_stream(a, &job, &m, inputs, |(t, p), r, json| {
        let shown = match p {
            Some(p) => format!("{t} | {p}"),
            None => t.clone(),
        };
        if json {
            format!("{}\n", render::classify_json(&shown, r))
        } else {
            render::classify_table(&shown, r)
        }
    })
}

pub fn ner(a: &TaskArgs, texts: Vec<String>, aggregation: &str) -> anyhow::Result<()> {
    // `text`, or `words` joined with spaces.
    let inputs = Inputs::new(texts, &a.data, |path, row| {
        if row.fields.contains_key("text") && !row.fields.contains_key("words") {
            Ok(datasets::text_example(path, row)?.text)
        } else {
            Ok(datasets::token_example(path, row)?.words.join(" "))
        }
    })?;
    need_inputs(usize::from(!inputs.is_empty()), "texts")?;
    let opts = pipelines::NerOptions {
        aggregation: aggregation.parse()?,
        batch_size: a.data.batch_size,
        ..Default::default()
    };
    let m = load(&a.model, Some(Head::TokenClassification))?;
    let job = pipelines::NerJob::new(&m, &opts)?;
    let inputs = inputs.map(pipelines::NerInput::Text);
    print_stream(a, &job, &m, inputs, |i, r, json| {
        let pipelines::NerInput::Text(t) = i else {
            return String::new();
        };
        if json {
            format!("{}\n", render::entities_json(t, r))
        } else {
            render::entities_table(t, r)
        }
    })
}

pub fn qa(
    a: &TaskArgs,
    pairs: Vec<String>,
    question: Option<String>,
    context: Option<String>,
    opts: &pipelines::QaOptions,
) -> anyhow::Result<()> {
    let mut given = Vec::new();
    match (question, context) {
        (Some(q), Some(c)) => given.push(pipelines::QaInput::new(q, c)),
        (None, None) => {}
        _ => anyhow::bail!(Error::Input("give both --question and --context".into())),
    }
    if pairs.len() % 2 != 0 {
        anyhow::bail!(Error::Input(
            "positional inputs are QUESTION CONTEXT pairs: give an even number".into()
        ));
    }
    for p in pairs.chunks_exact(2) {
        given.push(pipelines::QaInput::new(p[0].clone(), p[1].clone()));
    }
    let inputs = Inputs::new(given, &a.data, |path, row| {
        let e = datasets::qa_example(path, row)?;
        Ok(pipelines::QaInput::new(e.question, e.context))
    })?;
    need_inputs(usize::from(!inputs.is_empty()), "questions")?;
    let m = load(&a.model, Some(Head::QuestionAnswering))?;
    let job = pipelines::QaJob::new(&m, opts)?;
    let top_k = opts.top_k;
    print_stream(a, &job, &m, inputs, |i, r, json| {
        if json {
            format!(
                "{}\n",
                render::answers_json(&i.question, &i.context, r, top_k)
            )
        } else {
            render::answers_table(&i.question, &i.context, r)
        }
    })
}

pub fn choose(
    a: &TaskArgs,
    question: Option<String>,
    context: Option<String>,
    options: Vec<String>,
) -> anyhow::Result<()> {
    let mut given = Vec::new();
    match question {
        Some(q) => {
            if options.len() < 2 {
                anyhow::bail!(Error::Input(
                    "give at least two options: --option A --option B ...".into()
                ));
            }
            given.push(pipelines::ChoiceInput {
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
    let inputs = Inputs::new(given, &a.data, |path, row| {
        let e = datasets::choice_example(path, row)?;
        Ok(pipelines::ChoiceInput {
            context: e.context,
            question: e.question,
            options: e.options,
        })
    })?;
    need_inputs(usize::from(!inputs.is_empty()), "questions")?;
    let m = load(&a.model, Some(Head::MultipleChoice))?;
    let job = pipelines::ChooseJob::new(&m)?;
    print_stream(a, &job, &m, inputs, |i, c, json| {
        if json {
            format!(
                "{}\n",
                render::choice_json(i.context.as_deref(), &i.question, &i.options, c)
            )
        } else {
            render::choice_table(&i.question, &i.options, c)
        }
    })
}

pub fn eval(a: &TaskArgs, kind: &str, label_all_tokens: bool) -> anyhow::Result<()> {
    let task: Task = kind.parse()?;
    let path = a
        .data
        .data
        .clone()
        .ok_or_else(|| Error::Input("eval needs --data FILE".into()))?;
    let head = match task {
        Task::Classification => Head::SequenceClassification,
        Task::TokenClassification => Head::TokenClassification,
        Task::MultipleChoice => Head::MultipleChoice,
        Task::QuestionAnswering => Head::QuestionAnswering,
    };
    let m = load(&a.model, Some(head))?;
    let opts = eval::EvalOptions {
        batch_size: a.data.batch_size,
        batch_tokens: a.data.batch_tokens,
        label_all_tokens,
        qa: pipelines::QaOptions {
            batch_size: a.data.batch_size,
            ..Default::default()
        },
    };
    // The rows stream through the batcher; only the sums are kept.
    let report = match task {
        Task::Classification => {
            let job = eval::ClassifyEval::new(&m, &path)?;
            run_eval(&job, &m, a, datasets::text_example, &opts)
        }
        Task::TokenClassification => {
            let job = eval::TokensEval::new(&m, &path, label_all_tokens)?;
            run_eval(&job, &m, a, datasets::token_example, &opts)
        }
        Task::MultipleChoice => {
            let job = eval::ChoiceEval::new(&m, &path)?;
            run_eval(&job, &m, a, datasets::choice_example, &opts)
        }
        Task::QuestionAnswering => {
            let job = eval::QaEval::new(&m, &opts.qa)?;
            run_eval(&job, &m, a, datasets::qa_example, &opts)
        }
    }
    .with_context(|| format!("evaluating {}", path.display()))?;
    if a.json {
        print_out(a, &format!("{}\n", serde_json::to_string(&report)?))
    } else {
        print_out(a, &render::eval_table(&report))
    }
}

fn run_eval<J: eval::EvalJob>(
    job: &J,
    model: &bert_wgpu::Model,
    a: &TaskArgs,
    parse: fn(&std::path::Path, &datasets::Row) -> bert_wgpu::Result<J::Input>,
    opts: &eval::EvalOptions,
) -> anyhow::Result<eval::EvalReport>
where
    J::Input: 'static,
{
    let inputs = Inputs::new(Vec::new(), &a.data, parse)?;
    let mut total = eval::Stats::default();
    let batch = bert_wgpu::batch::BatchOptions {
        window: a.data.window,
        ..opts.batch()
    };
    stream::drive(job, model, inputs, &batch, &mut |s| {
        total.add(&s);
        Ok(())
    })?;
    Ok(job.report(&total))
}
