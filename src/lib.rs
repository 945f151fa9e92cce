//! # bert-wgpu
//!
//! BERT inference on WebGPU: load a Hugging Face BERT checkpoint
//! (`config.json`, `model.safetensors`, `tokenizer.json`), run `BertModel` or
//! one of its task heads on any GPU wgpu supports (Vulkan, Metal, DX12) or on
//! the CPU reference executor, and get the numbers `transformers` gives.
//!
//! ```
//! use bert_wgpu::{Device, LoadOptions, Model};
//! # fn main() -> bert_wgpu::Result<()> {
//! // Any HF BERT folder (or a Hub id); here a tiny test checkpoint.
//! let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny/base-gelu");
//! let model = Model::load(dir, &LoadOptions { device: Device::Cpu, ..Default::default() })?;
//! // (batch, seq) ids; `Model::tokenize` makes them from text when the
//! // checkpoint has a tokenizer.json.
//! let enc = bert_wgpu::Encoding::from_ids(&[vec![2, 45, 17, 8, 3]])?;
//! let out = model.forward(&enc)?;
//! let hidden = out.last_hidden_state.expect("BertModel returns hidden states");
//! assert_eq!(hidden.shape, vec![1, 5, 32]); // (batch, seq, hidden)
//! let pooled = out.pooler_output.expect("this checkpoint has a pooler");
//! assert_eq!(pooled.shape, vec![1, 32]); // (batch, hidden)
//! # Ok(()) }
//! ```
//!
//! The model is described once as a [`graph::Graph`] of HF-named steps; the
//! [`cpu::CpuExecutor`] and [`gpu::GpuExecutor`] run that same description.

#![warn(missing_docs)]

pub mod arch;
pub mod batch;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod datasets;
pub mod device;
pub mod embed;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod heads;
pub mod infer;
pub mod inputs;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod npy;
pub mod pipelines;
#[cfg(feature = "server")]
pub mod serve;
pub mod source;
pub mod synth;
pub mod tokenize;
pub mod weights;

pub use checkpoint::Tensor;
pub use config::BertConfig;
pub use device::{DType, Device};
pub use error::{Error, Result};
pub use graph::Head;
pub use heads::Labels;
pub use inputs::Encoding;
pub use model::{LoadOptions, Model, Outputs};
