//! Storage types and executors: the primitives both executors share
//! ([`Device`] picks the executor, [`DType`] its number format).

use crate::error::{Error, Result};

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// The CPU reference executor.
    Cpu,
    /// A WebGPU adapter (any kind, software ones included).
    Gpu,
    /// A hardware GPU when there is one, else the CPU.
    #[default]
    Auto,
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "gpu" => Ok(Device::Gpu),
            "auto" => Ok(Device::Auto),
            other => Err(Error::input(format!(
                "unknown device `{other}` (expected cpu, gpu or auto)"
            ))),
        }
    }
}

/// Number format of weights and activations on the GPU executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DType {
    /// f32 everywhere (HF's default; the CPU executor always runs this).
    #[default]
    F32,
    /// f16 weight matrices, embedding tables and activations in GPU memory;
    /// GEMM accumulation, softmax and LayerNorm statistics in f32; biases and
    /// LayerNorm γ/β kept f32. Needs an adapter with `SHADER_F16`.
    F16,
}

impl DType {
    /// Bytes per stored element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
        }
    }

    /// `"f32"` or `"f16"`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(DType::F32),
            "f16" => Ok(DType::F16),
            other => Err(Error::input(format!(
                "unknown dtype `{other}` (expected f32 or f16)"
            ))),
        }
    }
}
