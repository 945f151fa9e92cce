//! The streaming batcher every corpus job runs through (`embed`,
//! `classify`, `ner`, `qa`, `choose`, `rerank`, `infer`, `eval`, and the
//! library's pipelines).
//!
//! Inputs are pulled lazily from an iterator, a *window* at a time. A
//! producer thread tokenizes the next window (in parallel) while the model
//! runs the current one. Inside a window, inputs are sorted by length and cut
//! into forward passes under a token budget ([`schedule::plan`]), so a batch
//! pads little. Outputs go to the sink in input order once their window is
//! done. Memory is bounded by the window, whatever the corpus size. An input
//! that fails (a malformed line, text the tokenizer refuses) stops the job:
//! every input before it is still run and handed to the sink, then its error
//! is returned.
//!
//! A task plugs in as a [`Job`]: how to prepare one input, how it batches
//! ([`Shape`]), and how to run a batch.

pub mod schedule;

use std::sync::mpsc;
use std::time::Instant;

use rayon::prelude::*;

pub use schedule::{Limits, Shape};

use crate::error::{Error, Result};
use crate::inputs::Encoding;
use crate::model::Model;

/// One task on the batcher.
pub trait Job: Sync {
    /// One input as read (a text, a pair, a question with its context, ...).
    type Input: Send;
    /// One input prepared for the model (tokenized), kept until its output
    /// is made.
    type Item: Send;
    /// One answer per input.
    type Output: Send;
    /// Prepares one input; called in parallel over a window.
    fn prepare(&self, input: Self::Input) -> Result<Self::Item>;
    /// How `item` batches.
    fn shape(&self, item: &Self::Item) -> Shape;
    /// Runs one batch (all of one group, within the limits) and returns one
    /// output per item, in the order given.
    fn run(&self, items: &[&Self::Item]) -> Result<Vec<Self::Output>>;
}

/// Batching options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchOptions {
    /// Padded tokens per forward pass (sequences × longest); `None`: the
    /// device's default ([`default_max_tokens`]).
    pub max_tokens: Option<usize>,
    /// Sequences per forward pass.
    pub max_sequences: usize,
    /// Least real/padded token ratio of a batch ([`Limits::min_fill`]);
    /// `None`: the device's default ([`default_min_fill`]).
    pub min_fill: Option<f32>,
    /// Inputs read, tokenized and sorted together. Larger windows pad less
    /// and hold more in memory.
    pub window: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            max_tokens: None,
            max_sequences: 512,
            min_fill: None,
            window: 4096,
        }
    }
}

/// The token budget measured best for `model`'s executor (BENCHMARKS.md,
/// "Token budget"): on the CPU past 2048 tokens a forward gains nothing;
/// software adapters (lavapipe, ~1 GFLOP/s for a whole forward) get 512, so
/// one forward stays far inside the GPU wait timeout; a hardware GPU wants
/// as much as its buffer limits allow.
pub fn default_max_tokens(model: &Model) -> usize {
    match model.gpu() {
        None => 2048,
        Some(g) if g.context().info.device_type == wgpu::DeviceType::Cpu => 512,
        Some(g) => {
            // The widest activation is (tokens, intermediate_size) values;
            // stay under the adapter's largest binding.
            let cfg = model.config();
            let widest = cfg.intermediate_size.max(3 * cfg.hidden_size).max(1);
            let bytes_per_token = (widest * g.dtype().size()) as u64;
            let cap = g.max_binding_size() / bytes_per_token.max(1);
            (16384u64.min(cap) as usize).max(64)
        }
    }
}

/// The least fill measured best for `model`'s executor (BENCHMARKS.md,
/// "Server"): the CPU executors (ours, and lavapipe's) run padding as real
/// work, so a batch mixes lengths only when it stays 90 % real (server at
/// 32 clients: 66 texts/s at 0.9, 47 at 0); corpus jobs, whose windows sort
/// thousands of inputs, barely change. Hardware GPUs, unmeasured, get 0.5.
pub fn default_min_fill(model: &Model) -> f32 {
    match model.gpu() {
        Some(g) if g.context().info.device_type != wgpu::DeviceType::Cpu => 0.5,
        _ => 0.9,
    }
}

impl BatchOptions {
    /// The limits for `model`: the options, defaults filled in.
    pub fn limits(&self, model: &Model) -> Limits {
        Limits {
            max_tokens: self
                .max_tokens
                .unwrap_or_else(|| default_max_tokens(model))
                .max(1),
            max_sequences: self.max_sequences.max(1),
            min_fill: self
                .min_fill
                .unwrap_or_else(|| default_min_fill(model))
                .clamp(0.0, 1.0),
        }
    }
}

/// Where a job stands, after each forward pass.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    /// Inputs done (outputs made, not necessarily handed to the sink yet).
    pub inputs: u64,
    /// Real (unpadded) tokens run.
    pub tokens: u64,
    /// Padded tokens run (sequences × batch length).
    pub padded_tokens: u64,
    /// Forward passes run.
    pub batches: u64,
    /// Seconds since the job started.
    pub seconds: f64,
}

/// A window of prepared inputs, and the error that ended the input (if any).
struct Window<I> {
    items: Vec<I>,
    error: Option<Error>,
}

/// The error of input `line`, naming it (errors that already name their
/// line, from a dataset file or the `infer` protocol, pass unchanged).
fn at_line(line: usize, e: Error) -> Error {
    match e {
        Error::Dataset { .. } | Error::Line { .. } => e,
        other => Error::Line {
            line,
            message: other.to_string(),
        },
    }
}

/// Runs `job` over `inputs` (`(line, input)` pairs: `line` names the input
/// in errors) and hands each output, in input order, to `sink`. `progress`
/// is called after every forward pass.
pub fn run<J, I>(
    job: &J,
    inputs: I,
    limits: Limits,
    window: usize,
    sink: &mut dyn FnMut(J::Output) -> Result<()>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Progress>
where
    J: Job,
    I: Iterator<Item = Result<(usize, J::Input)>> + Send,
{
    let window = window.max(1);
    let started = Instant::now();
    // One window in flight while another runs: memory stays at two windows.
    let (tx, rx) = mpsc::sync_channel::<Window<J::Item>>(1);
    std::thread::scope(|scope| {
        scope.spawn(move || produce(job, inputs, window, tx));
        let mut p = Progress::default();
        for w in rx {
            run_window(job, &w.items, limits, started, &mut p, sink, progress)?;
            if let Some(e) = w.error {
                return Err(e);
            }
        }
        p.seconds = started.elapsed().as_secs_f64();
        Ok(p)
    })
}

/// The producer: reads windows and prepares them until the input ends, an
/// input fails, or the consumer has stopped.
fn produce<J, I>(job: &J, mut inputs: I, window: usize, tx: mpsc::SyncSender<Window<J::Item>>)
where
    J: Job,
    I: Iterator<Item = Result<(usize, J::Input)>>,
{
    loop {
        let mut raw = Vec::with_capacity(window.min(1 << 16));
        let mut error = None;
        for next in inputs.by_ref() {
            match next {
                Ok(x) => raw.push(x),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
            if raw.len() == window {
                break;
            }
        }
        let done = error.is_some() || raw.len() < window;
        let prepared: Vec<Result<J::Item>> = raw
            .into_par_iter()
            .map(|(line, input)| job.prepare(input).map_err(|e| at_line(line, e)))
            .collect();
        let mut items = Vec::with_capacity(prepared.len());
        for r in prepared {
            match r {
                Ok(item) => items.push(item),
                Err(e) => {
                    // The first failing input ends the job; its error wins
                    // over a reader error further on.
                    error = Some(e);
                    break;
                }
            }
        }
        let stop = done || error.is_some();
        if (items.is_empty() && error.is_none()) || tx.send(Window { items, error }).is_err() {
            return;
        }
        if stop {
            return;
        }
    }
}

fn run_window<J: Job>(
    job: &J,
    items: &[J::Item],
    limits: Limits,
    started: Instant,
    p: &mut Progress,
    sink: &mut dyn FnMut(J::Output) -> Result<()>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<()> {
    let shapes: Vec<Shape> = items.iter().map(|i| job.shape(i)).collect();
    let mut slots: Vec<Option<J::Output>> =
        std::iter::repeat_with(|| None).take(items.len()).collect();
    for batch in schedule::plan(&shapes, limits) {
        let refs: Vec<&J::Item> = batch.iter().map(|&i| &items[i]).collect();
        let outs = job.run(&refs)?;
        if outs.len() != batch.len() {
            return Err(Error::Unsupported(format!(
                "internal: a batch of {} inputs gave {} outputs",
                batch.len(),
                outs.len()
            )));
        }
        let len = batch.iter().map(|&i| shapes[i].len).max().unwrap_or(0);
        let seqs: usize = batch.iter().map(|&i| shapes[i].sequences).sum();
        for (&i, o) in batch.iter().zip(outs) {
            slots[i] = Some(o);
        }
        p.inputs += batch.len() as u64;
        p.tokens += batch.iter().map(|&i| job_tokens(&shapes[i])).sum::<u64>();
        p.padded_tokens += (seqs * len) as u64;
        p.batches += 1;
        p.seconds = started.elapsed().as_secs_f64();
        progress(p);
    }
    for o in slots.into_iter().flatten() {
        sink(o)?;
    }
    Ok(())
}

/// Tokens an input runs, counted as its sequences at its longest length
/// (exact for single sequences, an upper bound for QA windows).
fn job_tokens(s: &Shape) -> u64 {
    (s.sequences * s.len) as u64
}

/// Runs `job` over in-memory inputs and collects the outputs.
pub fn collect<J: Job>(
    job: &J,
    inputs: Vec<J::Input>,
    model: &Model,
    opts: &BatchOptions,
) -> Result<Vec<J::Output>> {
    let mut out = Vec::with_capacity(inputs.len());
    run(
        job,
        inputs.into_iter().enumerate().map(|(i, x)| Ok((i + 1, x))),
        opts.limits(model),
        opts.window,
        &mut |o| {
            out.push(o);
            Ok(())
        },
        &mut |_| {},
    )?;
    Ok(out)
}

/// Stacks unpadded token rows into one right-padded (rows, longest)
/// encoding: mask 1 over each row's tokens, `types` per row (all zeros when
/// `None`).
pub fn pad_rows(ids: &[&[u32]], types: Option<&[&[u32]]>, pad_id: u32) -> Result<Encoding> {
    if ids.is_empty() {
        return Err(Error::input("empty batch"));
    }
    let seq = ids.iter().map(|r| r.len()).max().unwrap_or(0);
    let n = ids.len() * seq;
    let mut enc = Encoding {
        input_ids: Vec::with_capacity(n),
        attention_mask: Vec::with_capacity(n),
        token_type_ids: Vec::with_capacity(n),
        batch: ids.len(),
        choices: None,
        seq,
    };
    for (r, row) in ids.iter().enumerate() {
        let pad = seq - row.len();
        enc.input_ids.extend_from_slice(row);
        enc.input_ids.extend(std::iter::repeat_n(pad_id, pad));
        enc.attention_mask.extend(std::iter::repeat_n(1, row.len()));
        enc.attention_mask.extend(std::iter::repeat_n(0, pad));
        match types {
            Some(t) => enc.token_type_ids.extend_from_slice(t[r]),
            None => enc.token_type_ids.extend(std::iter::repeat_n(0, row.len())),
        }
        enc.token_type_ids.extend(std::iter::repeat_n(0, pad));
    }
    Ok(enc)
}
