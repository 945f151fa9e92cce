//! Launch specs: each kernel's contract, declared once. A kernel's file here
//! names its WGSL source, its bindings (name and access, in binding order:
//! the bind-group layout is built from them, every bind group is filled
//! through them, and `tests/kernels/shaders.rs` checks them against the
//! shader's `@binding`s), its parameter struct (filled by one constructor),
//! its dispatch grid and the rule that picks its variant. The plan, the
//! kernel harness, the tune and the profiler all launch through these.

pub mod attention;
pub mod embeddings;
pub mod layernorm;
pub mod linear;
mod shader;

pub use shader::{assemble_coop_shader, assemble_shader, assemble_shader_with_output, Preamble};

use crate::device::DType;
use crate::error::{Error, Result};
use crate::kernels;
use linear::LinearVariant;

/// How a kernel accesses one binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
    /// `var<uniform>` (the kernel's parameter struct).
    Uniform,
}

/// One binding of group 0: its WGSL variable name and access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The WGSL variable.
    pub name: &'static str,
    /// How the kernel accesses it.
    pub access: Access,
}

/// Declares a kernel's bindings once: a struct with one buffer per binding
/// (fields in binding order, named as the WGSL variables) and its
/// `LAYOUT`. Filling the struct is the only way to bind the kernel.
macro_rules! bindings {
    ($(#[$meta:meta])* $name:ident { $($field:ident: $access:ident),+ $(,)? }) => {
        $(#[$meta])*
        pub(crate) struct $name<'a> {
            $(pub(crate) $field: &'a wgpu::Buffer,)+
        }

        impl<'a> $name<'a> {
            /// The bindings, in order.
            pub const LAYOUT: &'static [$crate::gpu::spec::Binding] = &[$(
                $crate::gpu::spec::Binding {
                    name: stringify!($field),
                    access: $crate::gpu::spec::Access::$access,
                },
            )+];

            /// The buffers in binding order.
            pub(crate) fn in_order(&self) -> Vec<&'a wgpu::Buffer> {
                vec![$(self.$field),+]
            }
        }
    };
}
pub(crate) use bindings;

/// A pipeline's identity: the kernel, its load width or tiling, and for
/// `linear` its output type (f32 for the pre-LayerNorm sums under f16
/// storage, see `plan::tensor_dtypes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelKind {
    /// A `linear` variant writing `DType` output.
    Linear(LinearVariant, DType),
    /// `attention.wgsl`, vec4 loads.
    AttentionVec4,
    /// `attention.wgsl`, scalar loads.
    AttentionScalar,
    /// `attention_tiled.wgsl` (vec4 loads).
    AttentionTiled,
    /// `layernorm.wgsl`.
    LayerNorm,
    /// `embeddings.wgsl`.
    Embeddings,
}

/// Compile-time inputs of a kernel's source that are not its kind: the
/// storage type, the linear workgroup shape and the cooperative-matrix shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileConfig {
    /// Storage type of activations and weight matrices.
    pub dtype: DType,
    /// Workgroup shape of `linear.wgsl`.
    pub linear_wg: (u32, u32),
    /// The adapter's cooperative-matrix shape, under f16 storage only.
    pub coop: Option<crate::gpu::CoopConfig>,
}

/// Everything a pipeline is built from.
pub struct PipelineSource {
    /// Label of the pipeline, layout and module.
    pub label: &'static str,
    /// Full WGSL text.
    pub wgsl: String,
    /// Its bindings, in order.
    pub bindings: &'static [Binding],
    /// `override` constants.
    pub constants: Vec<(&'static str, f64)>,
}

/// The kinds that are not `linear` variants.
const OTHERS: [KernelKind; 5] = [
    KernelKind::AttentionVec4,
    KernelKind::AttentionScalar,
    KernelKind::AttentionTiled,
    KernelKind::LayerNorm,
    KernelKind::Embeddings,
];

impl KernelKind {
    /// How many distinct pipelines one storage type can have: every linear
    /// variant with the storage type's and with f32 output, then the others.
    pub const COUNT: usize = 2 * LinearVariant::ALL.len() + OTHERS.len();

    /// Its index in `0..COUNT` under storage type `dtype` (an f32 output
    /// under f32 storage is the storage-type pipeline).
    pub fn index(self, dtype: DType) -> usize {
        let n = LinearVariant::ALL.len();
        match self {
            KernelKind::Linear(v, out) => {
                let v = LinearVariant::ALL.iter().position(|&x| x == v).unwrap_or(0);
                v + if out != dtype { n } else { 0 }
            }
            other => 2 * n + OTHERS.iter().position(|&k| k == other).unwrap_or(0),
        }
    }

    /// Every kind for storage type `dtype` (linear variants with both output
    /// types), for tests that walk all pipelines.
    pub fn all(dtype: DType) -> Vec<KernelKind> {
        let mut v = Vec::new();
        for out in [dtype, DType::F32] {
            for l in LinearVariant::ALL {
                let k = KernelKind::Linear(l, out);
                if !v.contains(&k) {
                    v.push(k);
                }
            }
        }
        v.extend(OTHERS);
        v
    }

    /// Kernel family for profiles: linear, attention, layernorm, embeddings.
    pub fn family(self) -> &'static str {
        match self {
            KernelKind::Linear(..) => "linear",
            KernelKind::AttentionVec4
            | KernelKind::AttentionScalar
            | KernelKind::AttentionTiled => "attention",
            KernelKind::LayerNorm => "layernorm",
            KernelKind::Embeddings => "embeddings",
        }
    }

    /// Its bindings, in order.
    pub fn bindings(self) -> &'static [Binding] {
        match self {
            KernelKind::Linear(v, _) => v.bindings(),
            KernelKind::AttentionVec4
            | KernelKind::AttentionScalar
            | KernelKind::AttentionTiled => attention::AttentionBinds::LAYOUT,
            KernelKind::LayerNorm => layernorm::LayerNormBinds::LAYOUT,
            KernelKind::Embeddings => embeddings::EmbeddingsBinds::LAYOUT,
        }
    }

    /// The source, bindings and constants of its pipeline under `cfg`; only
    /// the cooperative-matrix GEMM can be unavailable (f32 storage, or no
    /// cooperative matrices).
    pub fn source(self, cfg: &CompileConfig) -> Result<PipelineSource> {
        let dtype = cfg.dtype;
        let src = |p, k| assemble_shader(p, dtype, k);
        let wg = |wg: u32| vec![("WG", wg as f64)];
        let (label, wgsl, constants) = match self {
            KernelKind::Linear(v, out) => {
                let src = |p, k| assemble_shader_with_output(p, dtype, out, k);
                let (wx, wy) = (cfg.linear_wg.0 as f64, cfg.linear_wg.1 as f64);
                let lin = vec![("WG_X", wx), ("WG_Y", wy)];
                match v {
                    LinearVariant::Vec4 => (
                        "linear_vec4",
                        src(Preamble::Vec4, kernels::linear::WGSL),
                        lin,
                    ),
                    LinearVariant::Scalar => (
                        "linear_scalar",
                        src(Preamble::Scalar, kernels::linear::WGSL),
                        lin,
                    ),
                    LinearVariant::Tiled => (
                        "linear_tiled",
                        src(Preamble::Vec4, kernels::linear::WGSL_TILED),
                        vec![],
                    ),
                    LinearVariant::TiledPrefetch => (
                        "linear_tiled_prefetch",
                        src(Preamble::Vec4, kernels::linear::WGSL_TILED_PREFETCH),
                        vec![],
                    ),
                    LinearVariant::Coop => {
                        let coop = cfg.coop.ok_or_else(|| {
                            Error::Unsupported(format!(
                                "the cooperative-matrix GEMM with {dtype} storage (it needs f16 storage and an adapter with f16 cooperative matrices)"
                            ))
                        })?;
                        ("linear_coop", assemble_coop_shader(out, coop), vec![])
                    }
                    LinearVariant::SplitKReduce => (
                        "splitk_reduce",
                        src(Preamble::Scalar, kernels::linear::WGSL_SPLITK_REDUCE),
                        wg(linear::SPLITK_REDUCE_WG),
                    ),
                }
            }
            KernelKind::AttentionVec4 => (
                "attention_vec4",
                src(Preamble::Vec4, kernels::attention::WGSL),
                wg(attention::ATTENTION_WG),
            ),
            KernelKind::AttentionScalar => (
                "attention_scalar",
                src(Preamble::Scalar, kernels::attention::WGSL),
                wg(attention::ATTENTION_WG),
            ),
            KernelKind::AttentionTiled => (
                "attention_tiled",
                src(Preamble::Vec4, kernels::attention::WGSL_TILED),
                vec![],
            ),
            KernelKind::LayerNorm => (
                "layernorm",
                src(Preamble::Scalar, kernels::layernorm::WGSL),
                wg(ROW_WG),
            ),
            KernelKind::Embeddings => (
                "embeddings",
                src(Preamble::Scalar, kernels::embeddings::WGSL),
                wg(ROW_WG),
            ),
        };
        Ok(PipelineSource {
            label,
            wgsl,
            bindings: self.bindings(),
            constants,
        })
    }
}

/// One dispatch before its bind group exists: the pipeline, the buffers in
/// its binding order, the grid.
pub(crate) struct Launch<'a> {
    pub(crate) kind: KernelKind,
    pub(crate) binds: Vec<&'a wgpu::Buffer>,
    pub(crate) grid: [u32; 3],
}

/// Workgroup size of the row kernels (layernorm, embeddings).
pub const ROW_WG: u32 = 64;

pub(crate) fn ceil_div(a: usize, b: usize) -> u32 {
    a.div_ceil(b) as u32
}

/// Grid for one-workgroup-per-row kernels, folding rows past 65535 into y.
pub(crate) fn row_grid(rows: usize) -> [u32; 3] {
    let x = rows.clamp(1, 65535);
    [x as u32, ceil_div(rows, x), 1]
}

/// Grid for one invocation per element in workgroups of `wg`, folding
/// workgroups past 65535 into y.
pub(crate) fn element_grid(elems: usize, wg: usize) -> [u32; 3] {
    row_grid(elems.div_ceil(wg))
}

/// `v` as a u32 kernel parameter, or an input error naming it.
pub(crate) fn as_u32(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::input(format!("{what} = {v} does not fit in u32")))
}

#[cfg(test)]
mod tests {
    use super::KernelKind;
    use crate::device::DType;

    #[test]
    fn every_pipeline_has_its_own_slot() {
        for dtype in [DType::F32, DType::F16] {
            let all = KernelKind::all(dtype);
            let mut seen = [false; KernelKind::COUNT];
            for k in &all {
                let i = k.index(dtype);
                assert!(i < KernelKind::COUNT, "{k:?}: {i}");
                assert!(!seen[i], "{k:?} ({dtype}) shares slot {i}");
                seen[i] = true;
            }
        }
        assert_eq!(KernelKind::all(DType::F16).len(), KernelKind::COUNT);
    }
}
