//! The `--data` side of every task subcommand: inputs from arguments then a
//! file (or stdin) read lazily, the batcher, a progress bar, and outputs
//! written in input order as their window completes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bert_wgpu::batch::{self, BatchOptions, Job, Progress};
use bert_wgpu::datasets::{Format, Row, RowReader};
use bert_wgpu::{Error, Model};
use clap::Args;

/// Options of every `--data` job.
#[derive(Args, Clone, Debug)]
pub struct DataArgs {
    /// Inputs from a file after any given as arguments: JSONL, CSV with a
    /// header row, or text (one input per line), by extension or --format;
    /// `-` reads stdin (JSONL unless --format says otherwise).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// jsonl, csv or text: the layout of --data (default: from its extension).
    #[arg(long)]
    pub format: Option<String>,
    /// Padded tokens per forward pass (sequences × longest); default: the
    /// measured best for the device (CPU 2048, software adapters 512, GPUs
    /// up to 16384).
    #[arg(long)]
    pub batch_tokens: Option<usize>,
    /// Sequences per forward pass at most.
    #[arg(long, default_value_t = 512)]
    pub batch_size: usize,
    /// Inputs read, tokenized and length-sorted together (memory grows with it).
    #[arg(long, default_value_t = 4096)]
    pub window: usize,
    /// Write results to this file instead of stdout (`embed`: `.npy` writes
    /// a float32 array).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

impl DataArgs {
    /// The batcher's options.
    pub fn batch(&self) -> BatchOptions {
        BatchOptions {
            max_tokens: self.batch_tokens,
            max_sequences: self.batch_size,
            min_fill: None,
            window: self.window,
        }
    }

    fn format(&self) -> anyhow::Result<Option<Format>> {
        Ok(self.format.as_deref().map(str::parse).transpose()?)
    }
}

/// Inputs for a job: the arguments first, then the rows of `--data`,
/// each turned into an input by `parse`.
pub struct Inputs<T> {
    iter: Box<dyn Iterator<Item = bert_wgpu::Result<(usize, T)>> + Send>,
    /// Bytes of `--data` read so far and its size, for the progress bar.
    bytes: Option<(Arc<AtomicU64>, Option<u64>)>,
    /// Inputs given as arguments.
    given: usize,
}

impl<T: Send + 'static> Inputs<T> {
    /// `given` (numbered from 1) then `data`'s rows parsed by `parse`.
    pub fn new(
        given: Vec<T>,
        data: &DataArgs,
        parse: impl Fn(&Path, &Row) -> bert_wgpu::Result<T> + Send + 'static,
    ) -> anyhow::Result<Self> {
        let n = given.len();
        let first = given.into_iter().enumerate().map(|(i, t)| Ok((i + 1, t)));
        let Some(path) = data.data.clone() else {
            return Ok(Inputs {
                iter: Box::new(first),
                bytes: None,
                given: n,
            });
        };
        let reader = RowReader::open(&path, data.format()?)?;
        let size = (path != Path::new("-"))
            .then(|| std::fs::metadata(&path).ok().map(|m| m.len()))
            .flatten();
        let bytes = Some((reader.bytes_read(), size));
        let name = if path == Path::new("-") {
            PathBuf::from("<stdin>")
        } else {
            path
        };
        let rows = reader.map(move |r| {
            let row = r?;
            let line = row.line;
            Ok((line, parse(&name, &row)?))
        });
        Ok(Inputs {
            iter: Box::new(first.chain(rows)),
            bytes,
            given: n,
        })
    }

    /// The same inputs turned into others by `f`.
    pub fn map<U: Send + 'static>(self, f: impl Fn(T) -> U + Send + 'static) -> Inputs<U> {
        Inputs {
            iter: Box::new(self.iter.map(move |r| r.map(|(l, t)| (l, f(t))))),
            bytes: self.bytes,
            given: self.given,
        }
    }

    /// Calls `f` on every input as it is read (in input order, on the
    /// reading thread): a sink that prints inputs next to outputs gets them
    /// through a channel `f` feeds.
    pub fn tap(self, f: impl Fn(&T) + Send + 'static) -> Self {
        Inputs {
            iter: Box::new(self.iter.inspect(move |r| {
                if let Ok((_, t)) = r {
                    f(t);
                }
            })),
            bytes: self.bytes,
            given: self.given,
        }
    }

    /// Whether there is nothing to read at all.
    pub fn is_empty(&self) -> bool {
        self.given == 0 && self.bytes.is_none()
    }
}

/// A progress bar on stderr (when it is a terminal and not `--quiet`):
/// position in bytes of `--data` when its size is known (so the ETA is
/// real), else a spinner; texts/s and tokens/s as it goes.
struct Bar {
    bar: indicatif::ProgressBar,
    bytes: Option<Arc<AtomicU64>>,
}

impl Bar {
    fn new(bytes: Option<(Arc<AtomicU64>, Option<u64>)>) -> Self {
        if !crate::show_progress() {
            return Bar {
                bar: indicatif::ProgressBar::hidden(),
                bytes: None,
            };
        }
        let (counter, size) = match bytes {
            Some((c, s)) => (Some(c), s),
            None => (None, None),
        };
        let bar = match size {
            Some(len) => {
                let b = indicatif::ProgressBar::new(len);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:30} {percent:>3}% {msg} [{elapsed_precise} < {eta_precise}]",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                b
            }
            None => {
                let b = indicatif::ProgressBar::new_spinner();
                b.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}]")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                b
            }
        };
        Bar {
            bar,
            bytes: counter,
        }
    }

    fn update(&self, p: &Progress) {
        if let Some(b) = &self.bytes {
            self.bar.set_position(b.load(Ordering::Relaxed));
        } else {
            self.bar.tick();
        }
        let s = p.seconds.max(1e-9);
        self.bar.set_message(format!(
            "{} inputs, {:.0} inputs/s, {:.0} tokens/s",
            p.inputs,
            p.inputs as f64 / s,
            p.tokens as f64 / s
        ));
    }
}

/// Runs `job` over `inputs` with a progress bar; `sink` gets each output in
/// input order. Logs the throughput at the end (`-v`).
pub fn drive<J: Job>(
    job: &J,
    model: &Model,
    inputs: Inputs<J::Input>,
    opts: &BatchOptions,
    sink: &mut dyn FnMut(J::Output) -> bert_wgpu::Result<()>,
) -> anyhow::Result<Progress>
where
    J::Input: 'static,
{
    let bar = Bar::new(inputs.bytes.clone());
    let limits = opts.limits(model);
    let result = batch::run(job, inputs.iter, limits, opts.window, sink, &mut |p| {
        bar.update(p)
    });
    bar.bar.finish_and_clear();
    let p = result?;
    if p.inputs == 0 {
        anyhow::bail!(Error::Input(
            "no inputs: give them as arguments or with --data FILE".into()
        ));
    }
    log::info!(
        "{} inputs, {} tokens ({} padded, budget {} per forward) in {} forwards, {:.2} s: {:.0} inputs/s, {:.0} tokens/s",
        p.inputs,
        p.tokens,
        p.padded_tokens,
        limits.max_tokens,
        p.batches,
        p.seconds,
        p.inputs as f64 / p.seconds.max(1e-9),
        p.tokens as f64 / p.seconds.max(1e-9)
    );
    Ok(p)
}

/// Where text results go: stdout or `--output`, buffered (flushed at the end).
pub fn text_out(output: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    })
}

/// An I/O error of the output as the library's error.
pub fn out_err(e: std::io::Error) -> Error {
    Error::Io {
        path: PathBuf::from("<output>"),
        source: e,
    }
}
