//! CPU-only check of the WGSL sources: every kernel, assembled by the host's
//! own `assemble_shader` (`PREAMBLE + common.wgsl + <kernel>.wgsl`) for each
//! load width it is used with and both storage types (f32, f16), must parse
//! and validate with naga (the shader compiler wgpu uses). Needs no GPU.
//! Checks of one kernel's shader are in that kernel's module.

use bert_wgpu::gpu::{assemble_shader, assemble_shader_with_output, CoopConfig, Preamble};
use bert_wgpu::DType;
use naga::valid::{Capabilities, ValidationFlags, Validator};

/// Every preamble variant the host generates: (label, load width, storage type).
fn preambles() -> Vec<(String, Preamble, DType)> {
    let mut v = Vec::new();
    for dtype in [DType::F32, DType::F16] {
        for (w, p) in [("vec4", Preamble::Vec4), ("scalar", Preamble::Scalar)] {
            v.push((format!("{w} {dtype}"), p, dtype));
        }
    }
    v
}

/// (kernel file, load widths it is assembled with; each with f32 and f16).
const KERNELS: &[(&str, &[Preamble])] = &[
    ("linear.wgsl", &[Preamble::Vec4, Preamble::Scalar]),
    ("linear_tiled.wgsl", &[Preamble::Vec4]),
    ("linear_tiled_prefetch.wgsl", &[Preamble::Vec4]),
    ("linear_coop.wgsl", &[]),
    ("splitk_reduce.wgsl", &[Preamble::Scalar]),
    ("attention.wgsl", &[Preamble::Vec4, Preamble::Scalar]),
    ("attention_tiled.wgsl", &[Preamble::Vec4]),
    ("layernorm.wgsl", &[Preamble::Scalar]),
    ("embeddings.wgsl", &[Preamble::Scalar]),
];

pub fn read_shader(name: &str) -> String {
    let path = format!("{}/shaders/{}", env!("CARGO_MANIFEST_DIR"), name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Parses and validates one assembled source; returns the module on success.
pub fn check(label: &str, source: &str) -> Result<naga::Module, String> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| format!("{label}: WGSL parse error:\n{}", e.emit_to_string(source)))?;
    Validator::new(ValidationFlags::all(), Capabilities::all())
        .validate(&module)
        .map_err(|e| format!("{label}: validation error:\n{}", e.emit_to_string(source)))?;
    Ok(module)
}

#[test]
fn every_shader_has_a_binding_header() {
    for name in ["common.wgsl"]
        .into_iter()
        .chain(KERNELS.iter().map(|(n, _)| *n))
    {
        let text = read_shader(name);
        assert!(
            text.starts_with("//"),
            "{name} must begin with a `//` header comment"
        );
        let header: String = text
            .lines()
            .take_while(|l| l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            header.to_lowercase().contains("binding"),
            "{name}: the header comment must describe the bindings"
        );
    }
}

#[test]
fn every_kernel_parses_and_validates() {
    let mut failures = Vec::new();
    for (name, widths) in KERNELS {
        if *name == "linear_coop.wgsl" {
            continue; // its own assembly, below
        }
        let kernel = read_shader(name);
        for (variant, preamble, dtype) in preambles() {
            if !widths.contains(&preamble) {
                continue;
            }
            let label = format!("{name} ({variant} preamble)");
            let source = assemble_shader(preamble, dtype, &kernel);
            match check(&label, &source) {
                Ok(module) => {
                    let has_main = module
                        .entry_points
                        .iter()
                        .any(|ep| ep.name == "main" && ep.stage == naga::ShaderStage::Compute);
                    if !has_main {
                        failures.push(format!("{label}: no compute entry point `main`"));
                    }
                }
                Err(msg) => failures.push(msg),
            }
        }
    }
    // f16 storage with an f32 output (the pre-LayerNorm sums).
    for (name, width) in [
        ("linear.wgsl", Preamble::Vec4),
        ("linear_tiled.wgsl", Preamble::Vec4),
        ("linear_tiled_prefetch.wgsl", Preamble::Vec4),
        ("splitk_reduce.wgsl", Preamble::Scalar),
    ] {
        let kernel = read_shader(name);
        let label = format!("{name} ({width:?} f16 preamble, f32 output)");
        let source = assemble_shader_with_output(width, DType::F16, DType::F32, &kernel);
        if let Err(msg) = check(&label, &source) {
            failures.push(msg);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// common.wgsl must stand alone with either preamble (it is shared by all).
#[test]
fn common_validates_with_each_preamble() {
    let common = read_shader("common.wgsl");
    for (variant, preamble, dtype) in preambles() {
        let source = format!("{}{common}", preamble.text(dtype));
        if let Err(msg) = check(&format!("common.wgsl ({variant} preamble)"), &source) {
            panic!("{msg}");
        }
    }
}

/// Each kernel's launch spec (`src/gpu/spec/`) is the one declaration of
/// its bindings: the pipeline layout is built from it and bind groups are
/// filled through it. The shader the spec assembles must declare exactly
/// those bindings — same index, WGSL name and access — for every pipeline
/// the runner can build, in both storage types.
#[test]
fn every_pipeline_binds_what_its_shader_declares() {
    use bert_wgpu::gpu::spec::CompileConfig;
    use bert_wgpu::gpu::{Access, KernelKind, LinearVariant};
    let mut failures = Vec::new();
    let mut checked = 0;
    for dtype in [DType::F32, DType::F16] {
        let cfg = CompileConfig {
            dtype,
            linear_wg: (8, 8),
            coop: (dtype == DType::F16).then_some(CoopConfig {
                frag: 16,
                subgroup: 32,
            }),
        };
        for kind in KernelKind::all(dtype) {
            let src = match kind.source(&cfg) {
                Ok(src) => src,
                Err(e) => {
                    // Only the cooperative-matrix GEMM needs f16 storage.
                    let coop = matches!(kind, KernelKind::Linear(LinearVariant::Coop, _));
                    if !(coop && dtype == DType::F32) {
                        failures.push(format!("{kind:?} ({dtype}): {e}"));
                    }
                    continue;
                }
            };
            let label = format!("{} ({kind:?}, {dtype})", src.label);
            let module = match check(&label, &src.wgsl) {
                Ok(m) => m,
                Err(msg) => {
                    failures.push(msg);
                    continue;
                }
            };
            let mut declared: Vec<(u32, String, Access)> = module
                .global_variables
                .iter()
                .filter_map(|(_, g)| {
                    let b = g.binding.as_ref()?;
                    assert_eq!(b.group, 0, "{label}: every binding is in group 0");
                    let access = match g.space {
                        naga::AddressSpace::Uniform => Access::Uniform,
                        naga::AddressSpace::Storage { access }
                            if access.contains(naga::StorageAccess::STORE) =>
                        {
                            Access::ReadWrite
                        }
                        naga::AddressSpace::Storage { .. } => Access::Read,
                        other => panic!("{label}: binding {} in {other:?}", b.binding),
                    };
                    Some((b.binding, g.name.clone().unwrap_or_default(), access))
                })
                .collect();
            declared.sort_by_key(|d| d.0);
            let spec: Vec<(u32, String, Access)> = src
                .bindings
                .iter()
                .enumerate()
                .map(|(i, b)| (i as u32, b.name.to_string(), b.access))
                .collect();
            if declared != spec {
                failures.push(format!(
                    "{label}: the shader declares\n  {declared:?}\nbut the spec binds\n  {spec:?}"
                ));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // 6 linear variants × 2 output types in f16 (one in f32, less coop), 5 others.
    assert_eq!(checked, (5 + 5) + (12 + 5), "pipelines checked");
}
