//! The WebGPU executor: a device context, the kernels' pipelines, and the
//! graph runner that walks the same [`crate::graph::Graph`] as the CPU.

mod choice;
mod context;
mod convert;
pub mod harness;
pub mod options;
mod pipelines;
mod plan;
mod profile;
mod record;
mod runner;
pub mod spec;
pub(crate) mod timing;
pub mod tune;
mod tuning;
mod weights;

pub use choice::{
    choose_attention, choose_gemm, splitk_splits, tile_variant, AttentionKernel, GemmKernel,
    ATTENTION_TILED_SHARED_BYTES,
};
pub use context::{list_adapters, AdapterReport, CoopConfig, GpuContext};
pub use convert::{decode, encode, stored_bytes};
pub use harness::KernelHarness;
pub use options::{AttentionChoice, GemmChoice, GpuOptions, KernelChoices, TileChoice, TunePolicy};
pub use profile::StepTime;
pub use runner::{GpuExecutor, GpuStats, LoadStats};
pub use spec::linear::LinearVariant;
pub use spec::{
    assemble_coop_shader, assemble_shader, assemble_shader_with_output, Access, Binding,
    KernelKind, Preamble,
};
pub use tuning::Tuning;
