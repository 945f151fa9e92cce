//! The compiled pipelines of every kernel, each built once per executor
//! on first use from its launch spec ([`super::spec`]): the bind-group
//! layout from the spec's bindings, the module from its assembled source.

use super::choice::{choose_attention, choose_gemm, tile_variant, AttentionKernel, GemmKernel};
use super::options::{KernelChoices, TileChoice, TunePolicy};
use super::spec::linear::{linear_launch, LinearLaunch, LINEAR_WG};
use super::spec::{Access, CompileConfig, KernelKind, PipelineSource};
use super::tuning::Tuning;
use super::GpuContext;
use crate::device::DType;
use crate::error::{Error, Result};

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
    /// The kernel choices made for this executor (before the tuning file).
    pub kernels: KernelChoices,
    /// Workgroup shape of `linear.wgsl` (its grid and its constants).
    pub linear_wg: (u32, u32),
    slots: [std::sync::OnceLock<Kernel>; KernelKind::COUNT],
}

/// A pipeline and its layout from `src`.
fn build(ctx: &GpuContext, src: &PipelineSource) -> Kernel {
    let device = &ctx.device;
    let entries: Vec<_> = src
        .bindings
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupLayoutEntry {
            binding: i as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: match b.access {
                    Access::Read => wgpu::BufferBindingType::Storage { read_only: true },
                    Access::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                    Access::Uniform => wgpu::BufferBindingType::Uniform,
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        })
        .collect();
    let name = src.label;
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(name),
        entries: &entries,
    });
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(name),
        source: wgpu::ShaderSource::Wgsl(src.wgsl.as_str().into()),
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
            constants: &src.constants,
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    });
    Kernel { layout, pipeline }
}

impl Pipelines {
    /// Pipelines for storage type `dtype`, none compiled yet, choosing
    /// kernels by `kernels` (resolved: options and environment applied),
    /// then, when `tune` reads it, the adapter's tuning file. f16 needs the
    /// adapter's `SHADER_F16`.
    pub fn new(
        ctx: &GpuContext,
        dtype: DType,
        kernels: KernelChoices,
        tune: TunePolicy,
    ) -> Result<Self> {
        if dtype == DType::F16 && !ctx.features.contains(wgpu::Features::SHADER_F16) {
            return Err(Error::Unsupported(format!(
                "f16 on {}: the adapter has no SHADER_F16 (use --dtype f32)",
                ctx.describe()
            )));
        }
        Ok(Pipelines {
            dtype,
            tuning: tune.reads().then(|| Tuning::load(ctx, dtype)).flatten(),
            coop: ctx.coop.filter(|_| dtype == DType::F16),
            linear_wg: kernels.linear_wg.unwrap_or(LINEAR_WG),
            kernels,
            slots: Default::default(),
        })
    }

    /// What kernel sources are compiled with here.
    pub fn compile_config(&self) -> CompileConfig {
        CompileConfig {
            dtype: self.dtype,
            linear_wg: self.linear_wg,
            coop: self.coop,
        }
    }

    /// The pipeline of `kind`, compiled now if this is its first use (inside
    /// error scopes: a shader the driver rejects is an error, not a panic).
    pub fn get(&self, ctx: &GpuContext, kind: KernelKind) -> Result<&Kernel> {
        let slot = &self.slots[kind.index(self.dtype)];
        if let Some(k) = slot.get() {
            return Ok(k);
        }
        let started = std::time::Instant::now();
        let src = kind.source(&self.compile_config()).map_err(|e| match e {
            Error::Unsupported(m) => Error::Unsupported(format!("{m} (on {})", ctx.describe())),
            e => e,
        })?;
        let compiled = ctx.scoped(&format!("compiling the {kind:?} shader"), || {
            build(ctx, &src)
        })?;
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
}

/// Choices a caller may force instead of the executor's (the harness's
/// `force_*`); None: chosen as the runner does.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Forced {
    pub(crate) gemm: Option<GemmKernel>,
    pub(crate) tile: Option<TileChoice>,
    pub(crate) attention: Option<AttentionKernel>,
}

impl Pipelines {
    /// The launch a linear layer of shape (m, n, k, stride) with output
    /// type `out` gets on `ctx` with these choices and tuning, unless
    /// `forced`: the one rule the plan, the harness and the tune share.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn linear_launch(
        &self,
        ctx: &GpuContext,
        forced: Forced,
        out: DType,
        m: usize,
        n: usize,
        k: usize,
        stride: usize,
    ) -> LinearLaunch {
        let tuning = self.tuning.as_ref();
        let choice = forced.gemm.unwrap_or_else(|| {
            let dt = ctx.info.device_type;
            choose_gemm(&self.kernels, dt, self.coop, tuning, m, n, k, stride)
        });
        let tile = forced
            .tile
            .unwrap_or_else(|| tile_variant(&self.kernels, tuning));
        let how = (choice, tile, self.kernels.splitk);
        linear_launch(how, out, m, n, k, stride, self.linear_wg)
    }

    /// The attention kernel for head size `head_dim` on `ctx`, unless
    /// `forced`.
    pub(crate) fn attention_kernel(
        &self,
        ctx: &GpuContext,
        forced: Forced,
        head_dim: usize,
    ) -> AttentionKernel {
        forced.attention.unwrap_or_else(|| {
            choose_attention(
                &self.kernels,
                self.tuning.as_ref(),
                head_dim,
                ctx.limits.max_compute_workgroup_storage_size,
            )
        })
    }
}
