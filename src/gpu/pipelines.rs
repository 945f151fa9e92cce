//! Compute pipelines and bind-group layouts for every kernel, built once per
//! executor. Shader text is `preamble + common.wgsl + kernel.wgsl`; the
//! preamble picks the storage type (f32 or f16) and vec4 or scalar loads for
//! the wide operands.

use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Tuning};
use crate::kernels;
use crate::model::DType;

/// The vector width the wide loads of `linear.wgsl` / `attention.wgsl` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preamble {
    /// `VS = vec4<ST>`, `VT = vec4<f32>`: reduction lengths and row strides
    /// are multiples of 4.
    Vec4,
    /// `VS = ST`, `VT = f32`: any sizes.
    Scalar,
}

impl Preamble {
    /// The WGSL preamble: the storage type `ST` of activations and weight
    /// matrices (f32, or f16 behind `enable f16`), the wide storage type `VS`
    /// and compute type `VT` (vec4 or scalar), `VW` and `vdot`.
    pub fn text(self, dtype: DType) -> String {
        self.text_with_output(dtype, dtype)
    }

    /// [`Self::text`] with `YT`, the element type of `linear`'s output, set
    /// to `out` (f32 for the pre-LayerNorm sums of an f16 model).
    pub fn text_with_output(self, dtype: DType, out: DType) -> String {
        let (enable, st) = match dtype {
            DType::F32 => ("", "f32"),
            DType::F16 => ("enable f16;\n", "f16"),
        };
        let yt = out.name();
        let (vs, vt, vw, dot) = match self {
            Preamble::Vec4 => (format!("vec4<{st}>"), "vec4<f32>", 4, "dot(a, b)"),
            Preamble::Scalar => (st.to_string(), "f32", 1, "a * b"),
        };
        format!(
            "{enable}alias ST = {st};\nalias YT = {yt};\nalias VS = {vs};\nalias VT = {vt};\nconst VW: u32 = {vw}u;\nfn vdot(a: VT, b: VT) -> f32 {{ return {dot}; }}\n"
        )
    }

    /// Vec4 when every one of `lens` is a multiple of 4.
    pub fn for_lengths(lens: &[usize]) -> Self {
        if lens.iter().all(|l| l % 4 == 0) {
            Preamble::Vec4
        } else {
            Preamble::Scalar
        }
    }
}

/// Full WGSL source of `kernel` with `preamble` for storage type `dtype`.
pub fn assemble_shader(preamble: Preamble, dtype: DType, kernel: &str) -> String {
    assemble_shader_with_output(preamble, dtype, dtype, kernel)
}

/// [`assemble_shader`] with `linear`'s output type `out` (`YT`).
pub fn assemble_shader_with_output(
    preamble: Preamble,
    dtype: DType,
    out: DType,
    kernel: &str,
) -> String {
    let common = include_str!("../../shaders/common.wgsl");
    format!(
        "{}\n{common}\n{kernel}",
        preamble.text_with_output(dtype, out)
    )
}

/// Full WGSL source of `linear_coop.wgsl` for f16 storage, output type
/// `out` and the adapter's cooperative-matrix shape `cfg`.
pub fn assemble_coop_shader(out: DType, cfg: crate::gpu::CoopConfig) -> String {
    let f = cfg.frag;
    let coop = format!(
        "const F: u32 = {f}u;\nconst SG: u32 = {}u;\nalias CA = coop_mat{f}x{f}<f16, A>;\nalias CB = coop_mat{f}x{f}<f16, B>;\nalias CC = coop_mat{f}x{f}<f32, C>;\n",
        cfg.subgroup
    );
    format!(
        "enable wgpu_cooperative_matrix;\n{}",
        assemble_shader_with_output(
            Preamble::Vec4,
            DType::F16,
            out,
            &format!("{coop}\n{}", kernels::linear::WGSL_COOP)
        )
    )
}

/// A `linear` pipeline variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearVariant {
    /// `linear.wgsl`, vec4 loads.
    Vec4,
    /// `linear.wgsl`, scalar loads.
    Scalar,
    /// `linear_tiled.wgsl`.
    Tiled,
    /// `splitk_reduce.wgsl`.
    SplitKReduce,
    /// `linear_tiled_prefetch.wgsl` (the tiled contract, vec4 workgroup
    /// reads and register prefetch).
    TiledPrefetch,
    /// `linear_coop.wgsl` (cooperative matrices, f16 storage only).
    Coop,
}

impl LinearVariant {
    /// A 128 × 128 workgroup-tile kernel (binds the split-k partial sums).
    pub fn is_tiled(self) -> bool {
        matches!(self, LinearVariant::Tiled | LinearVariant::TiledPrefetch)
    }
}

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

/// Pipeline slots: 6 linear variants × 2 output types, then the others.
const SLOTS: usize = 17;

impl KernelKind {
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

    /// Its slot in [`Pipelines`] for storage type `dtype` (an f32 output
    /// under f32 storage is the storage-type pipeline).
    fn slot(self, dtype: DType) -> usize {
        match self {
            KernelKind::Linear(v, out) => {
                let v = match v {
                    LinearVariant::Vec4 => 0,
                    LinearVariant::Scalar => 1,
                    LinearVariant::Tiled => 2,
                    LinearVariant::SplitKReduce => 3,
                    LinearVariant::TiledPrefetch => 4,
                    LinearVariant::Coop => 5,
                };
                v + if out != dtype { 6 } else { 0 }
            }
            KernelKind::AttentionVec4 => 12,
            KernelKind::AttentionScalar => 13,
            KernelKind::LayerNorm => 14,
            KernelKind::Embeddings => 15,
            KernelKind::AttentionTiled => 16,
        }
    }
}

/// One kernel's pipeline and layout.
pub struct Kernel {
    /// Bind group layout (group 0).
    pub layout: wgpu::BindGroupLayout,
    /// The pipeline.
    pub pipeline: wgpu::ComputePipeline,
}

/// Every pipeline the runner dispatches, for one storage type, each
/// compiled on first use and then kept: a model compiles only the variants
/// its shapes need (on lavapipe, 4 of the 8 f32 pipelines for
/// all-MiniLM-L6-v2, about half of the load time they used to take).
pub struct Pipelines {
    /// Storage type of activations and weight matrices.
    pub dtype: DType,
    /// The adapter's measured kernel choices (`bert-wgpu tune`), if any.
    pub tuning: Option<Tuning>,
    /// The cooperative-matrix shape `linear_coop.wgsl` gets here: the
    /// adapter's, under f16 storage only.
    pub coop: Option<crate::gpu::CoopConfig>,
    slots: [std::sync::OnceLock<Kernel>; SLOTS],
}

/// Workgroup shape of `linear.wgsl` (matches its `override` defaults); each
/// invocation computes a 4×4 block.
pub const LINEAR_WG: (u32, u32) = (8, 8);

/// The linear workgroup shape in use: `BERT_WGPU_LINEAR_WG=XxY` overrides
/// the default (for tuning; both must be powers of two, X·Y ≤ 256).
pub fn linear_wg() -> (u32, u32) {
    static WG: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    *WG.get_or_init(|| {
        std::env::var("BERT_WGPU_LINEAR_WG")
            .ok()
            .and_then(|v| {
                let (x, y) = v.split_once('x')?;
                let (x, y): (u32, u32) = (x.trim().parse().ok()?, y.trim().parse().ok()?);
                (x.is_power_of_two() && y.is_power_of_two() && x * y <= 256).then_some((x, y))
            })
            .unwrap_or(LINEAR_WG)
    })
}
/// Workgroup size of `splitk_reduce.wgsl` (outputs per workgroup).
pub const SPLITK_REDUCE_WG: u32 = 256;
/// Workgroup size of `attention.wgsl` (queries per workgroup).
pub const ATTENTION_WG: u32 = 64;
/// Workgroup size of the row kernels (layernorm, embeddings).
pub const ROW_WG: u32 = 64;

fn storage(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

fn uniform(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// Layout: `reads` read-only storage buffers, then one read-write storage
/// buffer, then one uniform.
fn kernel(
    ctx: &GpuContext,
    name: &str,
    source: &str,
    reads: u32,
    constants: &[(&str, f64)],
) -> Kernel {
    kernel_with(ctx, name, source, reads, false, constants)
}

/// [`kernel`], with one more read-write storage buffer after the uniform
/// when `trailing_rw`.
fn kernel_with(
    ctx: &GpuContext,
    name: &str,
    source: &str,
    reads: u32,
    trailing_rw: bool,
    constants: &[(&str, f64)],
) -> Kernel {
    let device = &ctx.device;
    let mut entries: Vec<_> = (0..reads).map(|b| storage(b, true)).collect();
    entries.push(storage(reads, false));
    entries.push(uniform(reads + 1));
    if trailing_rw {
        entries.push(storage(reads + 2, false));
    }
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(name),
        entries: &entries,
    });
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(name),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(name),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(name),
        layout: Some(&pl),
        module: &module,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants,
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    });
    Kernel { layout, pipeline }
}

impl Pipelines {
    /// Pipelines for storage type `dtype`, none compiled yet. f16 needs the
    /// adapter's `SHADER_F16`.
    pub fn new(ctx: &GpuContext, dtype: DType) -> Result<Self> {
        if dtype == DType::F16 && !ctx.features.contains(wgpu::Features::SHADER_F16) {
            return Err(Error::Unsupported(format!(
                "f16 on {}: the adapter has no SHADER_F16 (use --dtype f32)",
                ctx.describe()
            )));
        }
        Ok(Pipelines {
            dtype,
            tuning: Tuning::load(ctx, dtype),
            coop: ctx.coop.filter(|_| dtype == DType::F16),
            slots: Default::default(),
        })
    }

    /// The pipeline of `kind`, compiled now if this is its first use (inside
    /// error scopes: a shader the driver rejects is an error, not a panic).
    pub fn get(&self, ctx: &GpuContext, kind: KernelKind) -> Result<&Kernel> {
        let slot = &self.slots[kind.slot(self.dtype)];
        if let Some(k) = slot.get() {
            return Ok(k);
        }
        let started = std::time::Instant::now();
        let compiled = ctx.scoped(&format!("compiling the {kind:?} shader"), || {
            self.compile(ctx, kind)
        })??;
        log::debug!(
            "compiled {kind:?} ({}) in {:.1} ms",
            self.dtype,
            started.elapsed().as_secs_f64() * 1e3
        );
        // Another thread may have compiled it meanwhile; either is fine.
        let _ = slot.set(compiled);
        slot.get().ok_or_else(|| Error::Gpu {
            context: format!("{kind:?}"),
            message: "internal: pipeline slot empty after compiling".into(),
        })
    }

    /// Builds `kind`'s pipeline; only the cooperative-matrix GEMM can be
    /// unavailable (f32 storage, or no cooperative matrices).
    fn compile(&self, ctx: &GpuContext, kind: KernelKind) -> Result<Kernel> {
        let dtype = self.dtype;
        let (wx, wy) = (linear_wg().0 as f64, linear_wg().1 as f64);
        let lin = [("WG_X", wx), ("WG_Y", wy)];
        let attn = [("WG", ATTENTION_WG as f64)];
        let row = [("WG", ROW_WG as f64)];
        let reduce = [("WG", SPLITK_REDUCE_WG as f64)];
        let src = |p, k| assemble_shader(p, dtype, k);
        Ok(match kind {
            KernelKind::Linear(v, out) => {
                let src = |p, k| assemble_shader_with_output(p, dtype, out, k);
                match v {
                    LinearVariant::Vec4 => kernel(
                        ctx,
                        "linear_vec4",
                        &src(Preamble::Vec4, kernels::linear::WGSL),
                        4,
                        &lin,
                    ),
                    LinearVariant::Scalar => kernel(
                        ctx,
                        "linear_scalar",
                        &src(Preamble::Scalar, kernels::linear::WGSL),
                        4,
                        &lin,
                    ),
                    // Binding 6 after the uniform: the split-k partial sums.
                    LinearVariant::Tiled => kernel_with(
                        ctx,
                        "linear_tiled",
                        &src(Preamble::Vec4, kernels::linear::WGSL_TILED),
                        4,
                        true,
                        &[],
                    ),
                    LinearVariant::TiledPrefetch => kernel_with(
                        ctx,
                        "linear_tiled_prefetch",
                        &src(Preamble::Vec4, kernels::linear::WGSL_TILED_PREFETCH),
                        4,
                        true,
                        &[],
                    ),
                    LinearVariant::Coop => {
                        let cfg = self.coop.ok_or_else(|| {
                            Error::Unsupported(format!(
                                "the cooperative-matrix GEMM on {} with {dtype} storage (it needs f16 storage and an adapter with f16 cooperative matrices)",
                                ctx.describe(),
                            ))
                        })?;
                        kernel(ctx, "linear_coop", &assemble_coop_shader(out, cfg), 4, &[])
                    }
                    LinearVariant::SplitKReduce => kernel(
                        ctx,
                        "splitk_reduce",
                        &src(Preamble::Scalar, kernels::linear::WGSL_SPLITK_REDUCE),
                        3,
                        &reduce,
                    ),
                }
            }
            KernelKind::AttentionVec4 => kernel(
                ctx,
                "attention_vec4",
                &src(Preamble::Vec4, kernels::attention::WGSL),
                2,
                &attn,
            ),
            KernelKind::AttentionScalar => kernel(
                ctx,
                "attention_scalar",
                &src(Preamble::Scalar, kernels::attention::WGSL),
                2,
                &attn,
            ),
            KernelKind::AttentionTiled => kernel(
                ctx,
                "attention_tiled",
                &src(Preamble::Vec4, kernels::attention::WGSL_TILED),
                2,
                &[],
            ),
            KernelKind::LayerNorm => kernel(
                ctx,
                "layernorm",
                &src(Preamble::Scalar, kernels::layernorm::WGSL),
                4,
                &row,
            ),
            KernelKind::Embeddings => kernel(
                ctx,
                "embeddings",
                &src(Preamble::Scalar, kernels::embeddings::WGSL),
                8,
                &row,
            ),
        })
    }
}
