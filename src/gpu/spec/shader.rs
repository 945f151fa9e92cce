//! Shader text: `preamble + common.wgsl + kernel.wgsl`; the preamble picks
//! the storage type (f32 or f16) and vec4 or scalar loads for the wide
//! operands.

use crate::device::DType;
use crate::kernels;

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
    let common = include_str!("../../../shaders/common.wgsl");
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
