//! CPU-only check of the WGSL sources: every kernel, assembled exactly as the
//! host does (`PREAMBLE + common.wgsl + <kernel>.wgsl`) for each preamble it
//! is used with, must parse and validate with naga (the shader compiler wgpu
//! uses). Needs no GPU and does not depend on the library's internals.

use naga::valid::{Capabilities, ValidationFlags, Validator};

/// Preamble for vec4-wide loads (reduction length and strides multiple of 4).
const PREAMBLE_VEC4: &str =
    "alias VT = vec4<f32>;\nconst VW: u32 = 4u;\nfn vdot(a: VT, b: VT) -> f32 { return dot(a, b); }\n";
/// Preamble for scalar loads (any sizes).
const PREAMBLE_SCALAR: &str =
    "alias VT = f32;\nconst VW: u32 = 1u;\nfn vdot(a: VT, b: VT) -> f32 { return a * b; }\n";

/// (kernel file, preambles it is assembled with).
const KERNELS: &[(&str, &[(&str, &str)])] = &[
    (
        "linear.wgsl",
        &[("vec4", PREAMBLE_VEC4), ("scalar", PREAMBLE_SCALAR)],
    ),
    ("linear_tiled.wgsl", &[("vec4", PREAMBLE_VEC4)]),
    (
        "attention.wgsl",
        &[("vec4", PREAMBLE_VEC4), ("scalar", PREAMBLE_SCALAR)],
    ),
    ("layernorm.wgsl", &[("scalar", PREAMBLE_SCALAR)]),
    ("embeddings.wgsl", &[("scalar", PREAMBLE_SCALAR)]),
];

fn read_shader(name: &str) -> String {
    let path = format!("{}/shaders/{}", env!("CARGO_MANIFEST_DIR"), name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Parses and validates one assembled source; returns the module on success.
fn check(label: &str, source: &str) -> Result<naga::Module, String> {
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
    let common = read_shader("common.wgsl");
    let mut failures = Vec::new();
    for (name, preambles) in KERNELS {
        let kernel = read_shader(name);
        for (variant, preamble) in *preambles {
            let label = format!("{name} ({variant} preamble)");
            let source = format!("{preamble}{common}{kernel}");
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
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// common.wgsl must stand alone with either preamble (it is shared by all).
#[test]
fn common_validates_with_each_preamble() {
    let common = read_shader("common.wgsl");
    for (variant, preamble) in [("vec4", PREAMBLE_VEC4), ("scalar", PREAMBLE_SCALAR)] {
        let source = format!("{preamble}{common}");
        if let Err(msg) = check(&format!("common.wgsl ({variant} preamble)"), &source) {
            panic!("{msg}");
        }
    }
}
