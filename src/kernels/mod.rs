//! Kernels: each WGSL shader in `shaders/` has a plain-Rust twin here with the
//! same contract (bindings ↔ arguments, same shapes, same math). The CPU
//! executor runs the twins; the GPU-vs-CPU tests hold the shaders to them.

pub mod act;
pub mod attention;
pub mod embeddings;
pub mod layernorm;
pub mod linear;
pub mod linear_packed;
pub mod softmax;

/// WGSL sources, by file name, as compiled into the library.
pub const SHADERS: &[(&str, &str)] = &[
    ("linear.wgsl", linear::WGSL),
    ("linear_tiled.wgsl", linear::WGSL_TILED),
    ("linear_tiled_prefetch.wgsl", linear::WGSL_TILED_PREFETCH),
    ("linear_coop.wgsl", linear::WGSL_COOP),
    ("splitk_reduce.wgsl", linear::WGSL_SPLITK_REDUCE),
    ("attention.wgsl", attention::WGSL),
    ("attention_tiled.wgsl", attention::WGSL_TILED),
    ("layernorm.wgsl", layernorm::WGSL),
    ("embeddings.wgsl", embeddings::WGSL),
];

/// HF's additive attention mask: 0 where attended, the most negative finite
/// f32 where masked, so a fully masked row gives uniform weights, never NaN.
pub fn additive_mask(attention_mask: &[u32]) -> Vec<f32> {
    attention_mask
        .iter()
        .map(|&m| if m == 0 { f32::MIN } else { 0.0 })
        .collect()
}
