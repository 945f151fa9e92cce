//! The `bert-wgpu` command line.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bert_wgpu::{Device, Error, Head, LoadOptions, Model};
use clap::{Args, Parser, Subcommand};

/// BERT inference on WebGPU, equal to Hugging Face transformers.
#[derive(Parser)]
#[command(name = "bert-wgpu", version, about)]
struct Cli {
    /// More logging (-v info, -vv debug); RUST_LOG also works.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// No progress bars and no warnings (errors only). Progress bars are
    /// also off when stderr is not a terminal.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// Model folder or Hugging Face Hub id. Default: $BERT_WGPU_MODEL, else the
    /// all-MiniLM-L6-v2 folder scripts/fetch_minilm.sh writes, else the Hub id.
    #[arg(long, short)]
    model: Option<String>,
    /// Hub revision (branch, tag or commit).
    #[arg(long)]
    revision: Option<String>,
    /// cpu, gpu or auto (a hardware GPU when present, else the CPU).
    #[arg(long, default_value = "auto")]
    device: String,
    /// f32, or f16 (GPU only: f16 weights and activations, f32 accumulation;
    /// needs an adapter with SHADER_F16).
    #[arg(long, default_value = "f32")]
    dtype: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the model on JSON lines: one batch per line in, HF-named outputs out.
    Infer {
        #[command(flatten)]
        model: ModelArgs,
        /// base, sequence-classification, token-classification, multiple-choice,
        /// question-answering. Default: from config.json's architectures.
        #[arg(long)]
        head: Option<String>,
        /// Input file (default: stdin).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Output file (default: stdout).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Sentence embeddings, as sentence-transformers computes them: the
    /// model's modules.json chain (pooling, Dense, Normalize), truncation at
    /// its max_seq_length, its prompts; without modules.json, mean pooling +
    /// L2 normalisation.
    Embed(embed::EmbedArgs),
    /// Rerank texts against a query with a cross-encoder (sequence
    /// classification on (query, text) pairs), as sentence-transformers'
    /// CrossEncoder.rank / predict.
    Rerank(embed::RerankArgs),
    /// An HTTP server (TEI's routes and OpenAI's /v1/embeddings) with
    /// dynamic batching across requests; Ctrl-C or SIGTERM finishes the
    /// requests in flight and exits.
    Serve(serve::ServeArgs),
    /// Time forward passes: median/min/max, tokens/s, GFLOP/s.
    Bench(measure::BenchArgs),
    /// Time every GPU kernel variant on a model shape and save the fastest
    /// as this adapter's kernel choices (read by every later run on it).
    Tune(measure::TuneArgs),
    /// Check the GPU executor against the CPU on a random model.
    Selfcheck(measure::SelfcheckArgs),
    /// Classify texts (text-classification pipeline): labels with scores.
    Classify {
        #[command(flatten)]
        task: tasks::TaskArgs,
        /// Texts to classify.
        texts: Vec<String>,
        /// Keep the best K labels (default 1); `all` (or 0) keeps every label.
        #[arg(long, default_value = "1", value_parser = parse_top_k)]
        top_k: usize,
        /// none, softmax or sigmoid (default: as transformers picks from the config).
        #[arg(long)]
        function_to_apply: Option<String>,
    },
    /// Named entities (token-classification pipeline) with character spans.
    Ner {
        #[command(flatten)]
        task: tasks::TaskArgs,
        /// Texts to tag.
        texts: Vec<String>,
        /// none, simple, first, average or max.
        #[arg(long, default_value = "none")]
        aggregation: String,
    },
    /// Extractive question answering (question-answering pipeline).
    Qa {
        #[command(flatten)]
        task: tasks::TaskArgs,
        /// QUESTION CONTEXT pairs.
        pairs: Vec<String>,
        /// The question (with --context).
        #[arg(long)]
        question: Option<String>,
        /// The passage to answer from.
        #[arg(long)]
        context: Option<String>,
        /// Answers per question.
        #[arg(long, default_value_t = 1)]
        top_k: usize,
        /// Tokens per window (default min(384, max_position_embeddings)).
        #[arg(long)]
        max_seq_len: Option<usize>,
        /// Overlap of windows (default min(max_seq_len / 2, 128)).
        #[arg(long)]
        doc_stride: Option<usize>,
        /// Longest answer in tokens.
        #[arg(long, default_value_t = 15)]
        max_answer_len: usize,
        /// Also offer the empty answer.
        #[arg(long)]
        handle_impossible_answer: bool,
    },
    /// Multiple choice: which option fits the question (and context).
    Choose {
        #[command(flatten)]
        task: tasks::TaskArgs,
        /// The question.
        #[arg(long)]
        question: Option<String>,
        /// Optional passage the question is about.
        #[arg(long)]
        context: Option<String>,
        /// An option (repeat: --option A --option B ...).
        #[arg(long = "option")]
        options: Vec<String>,
    },
    /// Evaluate a labelled dataset: mean loss and the task's metric.
    Eval {
        #[command(flatten)]
        task: tasks::TaskArgs,
        /// classify, ner, choose or qa.
        #[arg(long = "task")]
        kind: String,
        /// Token classification: label every sub-token, not only the first.
        #[arg(long)]
        label_all_tokens: bool,
    },
    /// List GPU adapters with backend, type, driver, features and limits.
    Info,
}

/// `--top-k K|all`: `all` is 0, meaning no limit.
fn parse_top_k(s: &str) -> Result<usize, String> {
    if s == "all" {
        return Ok(0);
    }
    s.parse()
        .map_err(|_| format!("`{s}` is not a number or `all`"))
}

fn default_model() -> String {
    if let Ok(m) = std::env::var("BERT_WGPU_MODEL") {
        return m;
    }
    let dir = bert_wgpu::source::cache_dir().join("all-MiniLM-L6-v2");
    if dir.join("config.json").is_file() {
        return dir.to_string_lossy().into_owned();
    }
    "sentence-transformers/all-MiniLM-L6-v2".into()
}

/// The CLI's tuning policy: `BERT_WGPU_TUNE`, else first use.
pub(crate) fn cli_tune_policy() -> anyhow::Result<bert_wgpu::gpu::TunePolicy> {
    use bert_wgpu::gpu::{options::process_env, TunePolicy};
    Ok(TunePolicy::resolve(
        None,
        &process_env,
        TunePolicy::FirstUse,
    )?)
}

/// The model source and load options the arguments ask for.
fn load_options(args: &ModelArgs, head: Option<Head>) -> anyhow::Result<(String, LoadOptions)> {
    let source = args.model.clone().unwrap_or_else(default_model);
    let device: Device = args.device.parse()?;
    let opts = LoadOptions {
        device,
        dtype: args.dtype.parse()?,
        head,
        revision: args.revision.clone(),
        progress: show_progress(),
        // The CLI measures the kernels once per adapter (unless
        // BERT_WGPU_TUNE says otherwise); the library only reads.
        tune: Some(cli_tune_policy()?),
        ..Default::default()
    };
    Ok((source, opts))
}

fn load(args: &ModelArgs, head: Option<Head>) -> anyhow::Result<Model> {
    let (source, opts) = load_options(args, head)?;
    let model = Model::load(&source, &opts).with_context(|| format!("loading model `{source}`"))?;
    log::info!("model `{source}` on {}", model.device_name());
    Ok(model)
}

fn infer(model: &Model, input: Option<PathBuf>, output: Option<PathBuf>) -> anyhow::Result<()> {
    let reader: Box<dyn BufRead + Send> = match &input {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let writer: Box<dyn Write> = match &output {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut writer = BufWriter::new(writer);
    // Lines are read lazily; blank ones are skipped, as before.
    let lines = reader
        .lines()
        .enumerate()
        .filter_map(|(i, line)| match line {
            Err(e) => Some(Err(Error::Line {
                line: i + 1,
                message: format!("cannot read: {e}"),
            })),
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some(Ok((i + 1, (i + 1, l)))),
        });
    let job = bert_wgpu::infer::InferJob { model };
    // Each line is its own batch: a short window keeps the reply to a
    // line close behind the line (an interactive pipe sees it promptly).
    let r = bert_wgpu::batch::run(
        &job,
        lines,
        bert_wgpu::batch::BatchOptions::default().limits(model),
        1,
        &mut |out| {
            writeln!(writer, "{out}").map_err(stream::out_err)?;
            writer.flush().map_err(stream::out_err)
        },
        &mut |_| {},
    );
    writer.flush()?;
    r?;
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Infer {
            model,
            head,
            input,
            output,
        } => {
            let head = head.as_deref().map(Head::from_cli_name).transpose()?;
            let m = load(&model, head)?;
            infer(&m, input, output)
        }
        Command::Embed(args) => embed::embed(&args),
        Command::Rerank(args) => embed::rerank(&args),
        Command::Serve(args) => serve::serve(&args),
        Command::Classify {
            task,
            texts,
            top_k,
            function_to_apply,
        } => tasks::classify(&task, texts, top_k, function_to_apply.as_deref()),
        Command::Ner {
            task,
            texts,
            aggregation,
        } => tasks::ner(&task, texts, &aggregation),
        Command::Qa {
            task,
            pairs,
            question,
            context,
            top_k,
            max_seq_len,
            doc_stride,
            max_answer_len,
            handle_impossible_answer,
        } => {
            let opts = bert_wgpu::pipelines::QaOptions {
                top_k,
                max_seq_len,
                doc_stride,
                max_answer_len,
                handle_impossible_answer,
                batch_size: task.data.batch_size,
                ..Default::default()
            };
            tasks::qa(&task, pairs, question, context, &opts)
        }
        Command::Choose {
            task,
            question,
            context,
            options,
        } => tasks::choose(&task, question, context, options),
        Command::Eval {
            task,
            kind,
            label_all_tokens,
        } => tasks::eval(&task, &kind, label_all_tokens),
        Command::Bench(args) => measure::bench(args),
        Command::Selfcheck(args) => measure::selfcheck(args),
        Command::Tune(args) => measure::tune(args),
        Command::Info => measure::info(),
    }
}

/// Set once from `--quiet`.
static QUIET: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Whether to draw progress bars: stderr is a terminal and no `--quiet`.
pub(crate) fn show_progress() -> bool {
    use std::io::IsTerminal;
    !QUIET.get().copied().unwrap_or(false) && std::io::stderr().is_terminal()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = QUIET.set(cli.quiet);
    // wgpu_hal logs driver probing failures (e.g. EGL on a headless
    // machine) as errors; real GPU errors reach us as `Err`s instead.
    let level = match (cli.quiet, cli.verbose) {
        (true, 0) => "off",
        (_, 0) => "warn,wgpu_hal=off",
        (_, 1) => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the causes joined, skipping a cause its parent's
            // message already ends with (`Error::Io` prints its source).
            let mut msg: Vec<String> = Vec::new();
            for c in e.chain() {
                let c = c.to_string().replace('\n', " ");
                if !msg.last().is_some_and(|p| p.ends_with(&c)) {
                    msg.push(c);
                }
            }
            eprintln!("error: {}", msg.join(": "));
            let input_error = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<Error>(),
                    Some(
                        Error::Line { .. }
                            | Error::Input(_)
                            | Error::Labels(_)
                            | Error::Dataset { .. }
                    )
                )
            });
            ExitCode::from(if input_error { 2 } else { 1 })
        }
    }
}

mod embed;
mod measure;
mod serve;
mod stream;
mod tasks;
