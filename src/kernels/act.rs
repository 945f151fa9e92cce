//! Elementwise activations, the twin of `shaders/common.wgsl`'s `apply_act`.

use crate::graph::Act;

/// Input clamp for tanh: beyond ±15, tanh is ±1 in f32; some WGSL backends
/// compute tanh as a ratio of exponentials that overflows to NaN for large |x|.
pub const TANH_CLAMP: f32 = 15.0;

/// Applies `act` to one value.
#[inline]
pub fn apply(act: Act, x: f32) -> f32 {
    match act {
        Act::Identity => x,
        Act::Gelu => gelu_erf(x),
        Act::GeluTanh => gelu_tanh(x),
        Act::Relu => x.max(0.0),
        Act::Silu => x / (1.0 + (-x).exp()),
        Act::Tanh => x.clamp(-TANH_CLAMP, TANH_CLAMP).tanh(),
    }
}

/// `x/2 · (1 + erf(x/√2))`, erf computed in f64 (as exact as torch's f32).
#[inline]
pub fn gelu_erf(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
}

/// `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`.
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // √(2/π)
    let inner = (C * (x + 0.044715 * x * x * x)).clamp(-TANH_CLAMP, TANH_CLAMP);
    0.5 * x * (1.0 + inner.tanh())
}
