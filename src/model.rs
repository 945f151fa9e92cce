//! [`Model`]: a loaded checkpoint on a device, with HF-shaped outputs.

use std::path::Path;

use crate::checkpoint::{Checkpoint, Tensor};
use crate::config::BertConfig;
use crate::cpu::CpuExecutor;
use crate::error::{Error, Result};
use crate::gpu::options::{process_env, resolve_timeout};
use crate::gpu::{GpuContext, GpuExecutor, GpuOptions, KernelChoices, TunePolicy};
use crate::graph::{Graph, Head, Output};
use crate::heads::{self, Labels};
use crate::inputs::Encoding;
use crate::source::{self, ModelFiles};
use crate::tokenize::BertTokenizer;
use crate::weights::Weights;

pub use crate::device::{DType, Device};

/// Options for [`Model::load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Where to run.
    pub device: Device,
    /// Storage format on the GPU executor ([`DType::F16`] is an error on the
    /// CPU executor, and falls back to f32 there under [`Device::Auto`]).
    pub dtype: DType,
    /// The head; by default taken from config.json's `architectures`.
    pub head: Option<Head>,
    /// Hub revision (branch, tag or commit).
    pub revision: Option<String>,
    /// Draw progress bars on stderr for Hub downloads and the GPU weight
    /// upload (the CLI turns this on for terminals unless `--quiet`).
    pub progress: bool,
    /// GPU kernel choices; each one left None comes from its `BERT_WGPU_*`
    /// variable, then the adapter's tuning file, then the built-in default.
    /// A variable with a value it does not take is an error at load.
    pub kernels: KernelChoices,
    /// Whether GPU kernel choices come from a measurement; None:
    /// `BERT_WGPU_TUNE`, else [`TunePolicy::Read`] (read the adapter's
    /// tuning file, never measure). The CLI passes `first-use`.
    pub tune: Option<TunePolicy>,
    /// How long one GPU wait may take before it is an error; None:
    /// `BERT_WGPU_TIMEOUT_SECS`, else 120 s.
    pub timeout: Option<std::time::Duration>,
}

impl LoadOptions {
    /// The GPU executor's options with the environment applied (once, here).
    pub fn gpu_options(&self) -> Result<GpuOptions> {
        GpuOptions::resolve(self.dtype, self.kernels, self.tune, self.progress)
    }

    /// A GPU context for these options (software adapters when
    /// `allow_software`), its wait timeout applied.
    fn gpu_context(&self, allow_software: bool) -> Result<GpuContext> {
        let ctx = GpuContext::new(allow_software)?;
        Ok(match self.timeout {
            Some(t) => {
                let t = resolve_timeout(Some(t), &process_env, ctx.timeout())?;
                ctx.with_timeout(t)
            }
            None => ctx,
        })
    }
}

/// HF-named outputs of one forward pass. Fields the head does not produce,
/// or that were not asked for, are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    /// (sequences, seq, hidden)
    pub last_hidden_state: Option<Tensor>,
    /// (sequences, hidden)
    pub pooler_output: Option<Tensor>,
    /// (batch, num_labels), (batch, seq, num_labels) or (batch, choices)
    pub logits: Option<Tensor>,
    /// (batch, seq)
    pub start_logits: Option<Tensor>,
    /// (batch, seq)
    pub end_logits: Option<Tensor>,
    /// Scalar loss when labels were given.
    pub loss: Option<f32>,
}

impl Outputs {
    /// `logits`, or the error for a head that has none (the base model,
    /// question answering).
    pub fn require_logits(&self) -> Result<&Tensor> {
        self.logits
            .as_ref()
            .ok_or_else(|| missing(Output::Logits, None))
    }
}

/// The one error for an output a forward did not produce; `class` names the
/// head's HF class when the caller knows it.
fn missing(output: Output, class: Option<&str>) -> Error {
    Error::input(match class {
        Some(class) => format!("the model returned no {output}: {class} has none"),
        None => format!("the model returned no {output}"),
    })
}

pub(crate) enum Executor {
    Cpu(Box<CpuExecutor>),
    Gpu(Box<GpuExecutor>),
}

impl Executor {
    /// Both executors validate `enc` first.
    fn run(&self, enc: &Encoding, wanted: &[Output]) -> Result<Vec<Tensor>> {
        match self {
            Executor::Cpu(c) => c.run(enc, wanted),
            Executor::Gpu(g) => g.run(enc, wanted),
        }
    }
}

/// A BERT checkpoint with its head, tokenizer and executor.
pub struct Model {
    config: BertConfig,
    head: Head,
    /// What the graph produces, for the checks before a forward.
    outputs: Vec<Output>,
    tokenizer: Option<BertTokenizer>,
    executor: Executor,
}

impl Model {
    /// Loads a folder or Hub id.
    pub fn load(source: &str, opts: &LoadOptions) -> Result<Self> {
        let files = source::resolve(source, opts.revision.as_deref(), opts.progress)?;
        Self::load_files(&files, opts)
    }

    /// Loads from a folder.
    pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        Self::load(&dir.to_string_lossy(), opts)
    }

    /// Loads from resolved files.
    pub fn load_files(files: &ModelFiles, opts: &LoadOptions) -> Result<Self> {
        let config = BertConfig::from_file(&files.config)?;
        let tokenizer = match &files.tokenizer {
            Some(p) => Some(BertTokenizer::from_file(p, &config)?),
            None => None,
        };
        let started = std::time::Instant::now();
        let ckpt = Checkpoint::open_all(&files.weights)?;
        let head = opts
            .head
            .unwrap_or_else(|| Head::from_architectures(&config.architectures));
        let graph = Graph::build(&config, head, ckpt.contains("pooler.dense.weight"));
        let weights = Weights::load(&graph, &ckpt)?;
        log::info!(
            "read the checkpoint in {:.1} ms ({} of {} tensors in place, the rest decoded)",
            started.elapsed().as_secs_f64() * 1e3,
            weights.in_place(),
            weights.len()
        );
        Self::from_parts(config, graph, weights, tokenizer, opts)
    }

    /// Assembles a model from an already built graph and weights.
    pub fn from_parts(
        config: BertConfig,
        graph: Graph,
        weights: Weights,
        tokenizer: Option<BertTokenizer>,
        opts: &LoadOptions,
    ) -> Result<Self> {
        let (device, dtype) = (opts.device, opts.dtype);
        // Bad settings fail before any device is opened, on every executor.
        let gpu_opts = opts.gpu_options()?;
        let head = graph.head;
        let outputs: Vec<Output> = graph.outputs.iter().map(|(o, _)| *o).collect();
        // Weights built in memory were never checked against the graph.
        for spec in &graph.params {
            match weights.param(&spec.name) {
                None => {
                    return Err(Error::MissingTensor {
                        name: spec.name.clone(),
                        expected: spec.shape.clone(),
                        hint: String::new(),
                    })
                }
                Some(p) if p.shape != spec.shape => {
                    return Err(Error::ShapeMismatch {
                        name: spec.name.clone(),
                        expected: spec.shape.clone(),
                        actual: p.shape.clone(),
                    })
                }
                Some(_) => {}
            }
        }
        let cpu = |graph, weights| -> Result<Executor> {
            Ok(Executor::Cpu(Box::new(CpuExecutor::new(
                &config, graph, weights,
            )?)))
        };
        let executor = match device {
            Device::Cpu if dtype == DType::F16 => {
                return Err(Error::Unsupported(
                    "--dtype f16 on the CPU executor (f16 runs on the GPU; use --device gpu)"
                        .into(),
                ))
            }
            Device::Cpu => cpu(graph, weights)?,
            Device::Gpu => {
                let ctx = opts.gpu_context(true)?;
                Executor::Gpu(Box::new(GpuExecutor::new(
                    ctx, &config, graph, &weights, &gpu_opts,
                )?))
            }
            Device::Auto => {
                match opts.gpu_context(false) {
                    Ok(ctx) => Executor::Gpu(Box::new(GpuExecutor::new(
                        ctx, &config, graph, &weights, &gpu_opts,
                    )?)),
                    Err(e) => {
                        if dtype == DType::F16 {
                            log::warn!("no hardware GPU ({e}); running f32 on the CPU executor instead of f16");
                        } else {
                            log::info!("no hardware GPU ({e}); using the CPU executor");
                        }
                        cpu(graph, weights)?
                    }
                }
            }
        };
        Ok(Model {
            config,
            head,
            outputs,
            tokenizer,
            executor,
        })
    }

    /// The parsed config.json.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The head this model runs.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Whether `pooler_output` is available.
    pub fn has_pooler(&self) -> bool {
        self.outputs.contains(&Output::PoolerOutput)
    }

    /// HF's class for this family and head (`RobertaForQuestionAnswering`).
    fn class(&self) -> String {
        self.head.hf_class(self.config.class_prefix())
    }

    /// The error for `output` missing from this model's forward.
    fn missing(&self, output: Output) -> Error {
        missing(output, Some(&self.class()))
    }

    /// Errors unless the head produces `output`, before any work.
    fn require(&self, output: Output) -> Result<()> {
        if self.outputs.contains(&output) {
            Ok(())
        } else {
            Err(self.missing(output))
        }
    }

    /// The tokenizer, when the checkpoint has `tokenizer.json`.
    pub fn tokenizer(&self) -> Option<&BertTokenizer> {
        self.tokenizer.as_ref()
    }

    /// `"cpu"` or the GPU adapter's description.
    pub fn device_name(&self) -> String {
        match &self.executor {
            Executor::Cpu(_) => "cpu".into(),
            Executor::Gpu(g) => g.adapter_name(),
        }
    }

    /// Storage type of weights and activations: the GPU executor's, f32 on
    /// the CPU.
    pub fn dtype(&self) -> DType {
        match &self.executor {
            Executor::Gpu(g) => g.dtype(),
            Executor::Cpu(_) => DType::F32,
        }
    }

    /// The GPU executor, when running on one.
    pub fn gpu(&self) -> Option<&GpuExecutor> {
        match &self.executor {
            Executor::Gpu(g) => Some(g),
            Executor::Cpu(_) => None,
        }
    }

    /// Tokenizes texts (and pairs) with HF Python's semantics.
    pub fn tokenize(&self, texts: &[String], pairs: Option<&[String]>) -> Result<Encoding> {
        self.tokenizer
            .as_ref()
            .ok_or_else(|| {
                Error::Tokenizer(
                    "this checkpoint has no tokenizer.json, so it cannot tokenize text: add the \
                 model's tokenizer.json to its folder, or pass token ids (`bert-wgpu infer`)"
                        .into(),
                )
            })?
            .encode(texts, pairs)
    }

    /// The head's default outputs: hidden states and pooled output for the
    /// base model, logits for the others.
    pub fn forward(&self, enc: &Encoding) -> Result<Outputs> {
        self.forward_select(enc, None, false)
    }

    /// The encoder's `last_hidden_state` (sequences, seq, hidden), whatever
    /// the head.
    pub fn hidden_states(&self, enc: &Encoding) -> Result<Tensor> {
        if enc.choices.is_some() {
            return Err(Error::input(
                "hidden states take 2-D [batch][seq] input, not [batch][choices][seq]",
            ));
        }
        self.run(enc, &[Output::LastHiddenState])?
            .last_hidden_state
            .ok_or_else(|| self.missing(Output::LastHiddenState))
    }

    /// The head's `logits`: (batch, num_labels) for sequence classification,
    /// (batch, seq, num_labels) for token classification, (batch, choices)
    /// for multiple choice. An error for the base model and question
    /// answering, before anything runs.
    pub fn logits(&self, enc: &Encoding) -> Result<Tensor> {
        self.require(Output::Logits)?;
        self.check_dims(enc)?;
        self.run(enc, &[Output::Logits])?
            .logits
            .ok_or_else(|| self.missing(Output::Logits))
    }

    /// Question answering's `(start_logits, end_logits)`, each (batch, seq).
    /// An error for the other heads, before anything runs.
    pub fn span_logits(&self, enc: &Encoding) -> Result<(Tensor, Tensor)> {
        self.require(Output::QaLogits)?;
        self.check_dims(enc)?;
        match self.run(enc, &[Output::QaLogits])? {
            Outputs {
                start_logits: Some(start),
                end_logits: Some(end),
                ..
            } => Ok((start, end)),
            _ => Err(self.missing(Output::QaLogits)),
        }
    }

    /// Forward with labels: the head's outputs plus `loss`.
    pub fn forward_with_labels(&self, enc: &Encoding, labels: &Labels) -> Result<Outputs> {
        self.forward_select(enc, Some(labels), false)
    }

    /// Forward returning the head's outputs and, with `hidden`, also
    /// `last_hidden_state` (and `pooler_output` when present).
    pub fn forward_select(
        &self,
        enc: &Encoding,
        labels: Option<&Labels>,
        hidden: bool,
    ) -> Result<Outputs> {
        self.check_dims(enc)?;
        let mut wanted = Vec::new();
        if self.head == Head::Base || hidden {
            wanted.push(Output::LastHiddenState);
            if self.has_pooler() {
                wanted.push(Output::PoolerOutput);
            }
        }
        match self.head {
            Head::Base => {}
            Head::QuestionAnswering => wanted.push(Output::QaLogits),
            _ => wanted.push(Output::Logits),
        }
        let mut out = self.run(enc, &wanted)?;
        let seq = enc.seq;
        if let Some(labels) = labels {
            let (logits, end, width) = match self.head {
                Head::QuestionAnswering => (&out.start_logits, out.end_logits.as_ref(), seq),
                Head::MultipleChoice => (&out.logits, None, enc.choices.unwrap_or(1)),
                Head::TokenClassification => (&out.logits, None, seq),
                _ => (&out.logits, None, self.config.num_labels),
            };
            let logits = logits.as_ref().ok_or_else(|| {
                Error::Labels("the base model has no head, so labels cannot be used".into())
            })?;
            out.loss = Some(heads::loss(
                &self.config,
                self.head,
                labels,
                &logits.data,
                end.map(|t| t.data.as_slice()),
                enc.batch,
                width,
            )?);
        }
        Ok(out)
    }

    /// 3-D `[batch][choices][seq]` input for multiple choice, 2-D for the
    /// other heads. The executor checks the values.
    fn check_dims(&self, enc: &Encoding) -> Result<()> {
        if (self.head == Head::MultipleChoice) == enc.choices.is_some() {
            return Ok(());
        }
        Err(Error::input(if self.head == Head::MultipleChoice {
            "multiple-choice input must be 3-D: [batch][choices][seq]"
        } else {
            "3-D [batch][choices][seq] input is only for the multiple-choice head"
        }))
    }

    /// Runs `wanted` (validating `enc`) and shapes each output as HF does.
    fn run(&self, enc: &Encoding, wanted: &[Output]) -> Result<Outputs> {
        let got = self.executor.run(enc, wanted)?;
        let (n_seq, seq, h) = (enc.sequences(), enc.seq, self.config.hidden_size);
        let mut out = Outputs::default();
        for (output, t) in wanted.iter().zip(got) {
            match output {
                Output::LastHiddenState => {
                    out.last_hidden_state = Some(Tensor::new(vec![n_seq, seq, h], t.data)?)
                }
                Output::PoolerOutput => {
                    out.pooler_output = Some(Tensor::new(vec![n_seq, h], t.data)?)
                }
                Output::Logits => {
                    let shape = match self.head {
                        Head::TokenClassification => vec![n_seq, seq, self.config.num_labels],
                        Head::MultipleChoice => vec![enc.batch, enc.choices.unwrap_or(1)],
                        _ => vec![n_seq, self.config.num_labels],
                    };
                    out.logits = Some(Tensor::new(shape, t.data)?);
                }
                Output::QaLogits => {
                    let (start, end): (Vec<f32>, Vec<f32>) =
                        t.data.chunks_exact(2).map(|p| (p[0], p[1])).unzip();
                    out.start_logits = Some(Tensor::new(vec![n_seq, seq], start)?);
                    out.end_logits = Some(Tensor::new(vec![n_seq, seq], end)?);
                }
            }
        }
        Ok(out)
    }
}
