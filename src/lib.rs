//! # bert-wgpu
//!
//! BERT inference on WebGPU: load a Hugging Face BERT checkpoint
//! (`config.json`, `model.safetensors`, `tokenizer.json`), run `BertModel` or
//! one of its task heads on any GPU wgpu supports (Vulkan, Metal, DX12) or on
//! the CPU reference executor, and get the numbers `transformers` gives.
//!
//! ```no_run
//! use bert_wgpu::{Model, LoadOptions, Device};
//! # fn main() -> bert_wgpu::Result<()> {
//! let model = Model::load("path/to/all-MiniLM-L6-v2", &LoadOptions { device: Device::Cpu, ..Default::default() })?;
//! let enc = model.tokenize(&["I love this movie!".to_string()], None)?;
//! let out = model.forward(&enc)?;
//! let hidden = out.last_hidden_state.unwrap(); // (batch, seq, hidden)
//! println!("{:?}", hidden.shape);
//! # Ok(()) }
//! ```
//!
//! The model is described once as a [`graph::Graph`] of HF-named steps; the
//! [`cpu::CpuExecutor`] and [`gpu::GpuExecutor`] run that same description.

#![warn(missing_docs)]

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod embed;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod heads;
pub mod infer;
pub mod inputs;
pub mod kernels;
pub mod model;
pub mod source;
pub mod tokenize;
pub mod weights;

pub use checkpoint::Tensor;
pub use config::BertConfig;
pub use error::{Error, Result};
pub use graph::Head;
pub use heads::Labels;
pub use inputs::Encoding;
pub use model::{Device, LoadOptions, Model, Outputs};
