//! The WebGPU executor: a device context, the kernels' pipelines, and the
//! graph runner that walks the same [`crate::graph::Graph`] as the CPU.

mod context;
pub mod harness;
mod pipelines;
mod runner;

pub use context::{list_adapters, AdapterReport, GpuContext};
pub use harness::KernelHarness;
pub use pipelines::{assemble_shader, choose_gemm, GemmKernel, Preamble};
pub use runner::{GpuExecutor, GpuStats, StepTime};
