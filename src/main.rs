//! The `bert-wgpu` command line.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bert_wgpu::embed::{self, Pooling};
use bert_wgpu::{Device, Error, Head, LoadOptions, Model};
use clap::{Args, Parser, Subcommand};

/// BERT inference on WebGPU, equal to Hugging Face transformers.
#[derive(Parser)]
#[command(name = "bert-wgpu", version, about)]
struct Cli {
    /// More logging (-v info, -vv debug); RUST_LOG also works.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
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
    /// Sentence embeddings (mean pooling + L2 normalisation by default).
    Embed {
        #[command(flatten)]
        model: ModelArgs,
        /// Texts to embed.
        #[arg(required = true)]
        texts: Vec<String>,
        /// mean or cls.
        #[arg(long, default_value = "mean")]
        pooling: String,
        /// L2-normalise (default true).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        normalize: bool,
        /// One JSON line per text.
        #[arg(long)]
        json: bool,
    },
    /// Time forward passes: median/min/max, tokens/s, GFLOP/s.
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        /// A random model of a known shape instead of --model: bert-tiny,
        /// minilm-l6, bert-base, bert-large.
        #[arg(long)]
        config: Option<String>,
        /// Sequences per forward.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Tokens per sequence.
        #[arg(long, default_value_t = 128)]
        seq: usize,
        /// Untimed forwards first.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Timed forwards.
        #[arg(long, default_value_t = 10)]
        iters: usize,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List GPU adapters with backend, type, driver, features and limits.
    Info,
}

fn default_model() -> String {
    if let Ok(m) = std::env::var("BERT_WGPU_MODEL") {
        return m;
    }
    let cache = std::env::var("BERT_WGPU_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::var("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache/bert-wgpu")
        });
    let dir = cache.join("all-MiniLM-L6-v2");
    if dir.join("config.json").is_file() {
        return dir.to_string_lossy().into_owned();
    }
    "sentence-transformers/all-MiniLM-L6-v2".into()
}

fn load(args: &ModelArgs, head: Option<Head>) -> anyhow::Result<Model> {
    let source = args.model.clone().unwrap_or_else(default_model);
    let device: Device = args.device.parse()?;
    let opts = LoadOptions {
        device,
        head,
        revision: args.revision.clone(),
    };
    let model = Model::load(&source, &opts).with_context(|| format!("loading model `{source}`"))?;
    log::info!("model `{source}` on {}", model.device_name());
    Ok(model)
}

fn infer(model: &Model, input: Option<PathBuf>, output: Option<PathBuf>) -> anyhow::Result<()> {
    let reader: Box<dyn BufRead> = match &input {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let writer: Box<dyn Write> = match &output {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut writer = BufWriter::new(writer);
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Error::Line {
            line: i + 1,
            message: format!("cannot read: {e}"),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let out = bert_wgpu::infer::run_line(model, i + 1, &line)?;
        writeln!(writer, "{out}")?;
        writer.flush()?;
    }
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
        Command::Embed {
            model,
            texts,
            pooling,
            normalize,
            json,
        } => {
            let pooling: Pooling = pooling.parse()?;
            let m = load(&model, Some(Head::Base))?;
            let enc = m.tokenize(&texts, None)?;
            let out = m.forward(&enc)?;
            let hidden = out
                .last_hidden_state
                .ok_or_else(|| anyhow::anyhow!("the model returned no hidden states"))?;
            let emb = embed::pool(&hidden, &enc, pooling, normalize)?;
            let h = emb.shape[1];
            let stdout = std::io::stdout();
            let mut w = stdout.lock();
            for (t, row) in texts.iter().zip(emb.data.chunks_exact(h)) {
                let v = bert_wgpu::Tensor {
                    shape: vec![h],
                    data: row.to_vec(),
                };
                let mut s = String::new();
                bert_wgpu::infer::write_tensor(&mut s, &v);
                if json {
                    writeln!(
                        w,
                        "{{\"text\":{},\"embedding\":{s}}}",
                        serde_json::to_string(t)?
                    )?;
                } else {
                    let head: Vec<String> =
                        row.iter().take(8).map(|x| format!("{x:+.5}")).collect();
                    writeln!(w, "{t:?}: dim {h}, first 8 = [{}]", head.join(", "))?;
                }
            }
            Ok(())
        }
        Command::Bench {
            model,
            config,
            batch,
            seq,
            warmup,
            iters,
            json,
        } => {
            let t = std::time::Instant::now();
            let m = match &config {
                Some(name) => {
                    let cfg = bert_wgpu::bench::preset(name)?;
                    bert_wgpu::bench::random_model(&cfg, model.device.parse()?)?
                }
                None => load(&model, Some(Head::Base))?,
            };
            let load_s = t.elapsed().as_secs_f64();
            let r = bert_wgpu::bench::run(&m, load_s, batch, seq, warmup, iters)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("device      {}", r.device);
                println!(
                    "shape       batch {} × seq {} ({} timed forwards, load {:.2} s)",
                    r.batch, r.seq, r.iters, r.load_s
                );
                println!(
                    "forward     median {:.2} ms  min {:.2} ms  max {:.2} ms",
                    r.median_ms, r.min_ms, r.max_ms
                );
                println!(
                    "throughput  {:.0} tokens/s  {:.1} GFLOP/s",
                    r.tokens_per_s, r.gflops
                );
                if let (Some(s), Some(rb)) = (r.submits_per_forward, r.readbacks_per_forward) {
                    println!("per forward {s} submits, {rb} readbacks");
                }
            }
            Ok(())
        }
        Command::Info => {
            let adapters = bert_wgpu::gpu::list_adapters();
            if adapters.is_empty() {
                println!("no GPU adapters found (on Linux without a GPU: apt-get install mesa-vulkan-drivers)");
            }
            for (i, a) in adapters.iter().enumerate() {
                let inf = &a.info;
                println!("adapter {i}: {}", inf.name);
                println!(
                    "  backend: {:?}  type: {:?}  driver: {} {}",
                    inf.backend, inf.device_type, inf.driver, inf.driver_info
                );
                println!("  features: {:?}", a.features);
                let l = &a.limits;
                println!(
                    "  limits: max_storage_buffer_binding_size {}  max_buffer_size {}  max_compute_workgroup_storage_size {}  max_compute_invocations_per_workgroup {}  max_compute_workgroups_per_dimension {}",
                    l.max_storage_buffer_binding_size, l.max_buffer_size, l.max_compute_workgroup_storage_size,
                    l.max_compute_invocations_per_workgroup, l.max_compute_workgroups_per_dimension
                );
            }
            match bert_wgpu::gpu::GpuContext::new(false) {
                Ok(c) => println!("--device auto would use: {}", c.describe()),
                Err(_) => println!("--device auto would use: the CPU executor (no hardware GPU)"),
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
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
                    Some(Error::Line { .. } | Error::Input(_) | Error::Labels(_))
                )
            });
            ExitCode::from(if input_error { 2 } else { 1 })
        }
    }
}
