//! What the kernel modules share: tolerances, random inputs and the
//! element-wise comparison.

use bert_wgpu::graph::Act;
use rand::rngs::StdRng;
use rand::Rng;

/// f32 kernels and twins: |got − want| ≤ 1e-5 + 1e-4·|want|.
pub const ATOL: f32 = 1e-5;
pub const RTOL: f32 = 1e-4;

/// f16 storage: the kernel's final rounding of its output to f16 (relative
/// error ≤ 2⁻¹¹ ≈ 4.9e-4) plus f32 summation order.
pub const F16_ATOL: f32 = 1e-4;
pub const F16_RTOL: f32 = 1e-3;

pub const ACTS: [Act; 6] = [
    Act::Identity,
    Act::Gelu,
    Act::GeluTanh,
    Act::Relu,
    Act::Silu,
    Act::Tanh,
];

/// `len` values uniform in [lo, hi).
pub fn uniform(rng: &mut StdRng, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// `len` values `offset + j/128`, j uniform in [-128, 128]: with |offset| ≤
/// 100 every partial sum of ≤ 768 of them (and of x + r with r of the same
/// form) is exact in f32, so two correct two-pass LayerNorms agree to
/// rounding of the variance alone, while a one-pass E[x²] − E[x]² variance
/// still loses ~1e-3 relative at offset 100.
pub fn dyadic(rng: &mut StdRng, len: usize, offset: f32) -> Vec<f32> {
    (0..len)
        .map(|_| offset + rng.random_range(-128i32..=128) as f32 / 128.0)
        .collect()
}

/// Checks every element against `atol + rtol·|want| + extra`; panics naming
/// the worst element as (row, col) of a `cols`-wide matrix. Returns the max
/// |error|.
pub fn compare_within(
    what: &str,
    got: &[f32],
    want: &[f32],
    cols: usize,
    (atol, rtol, extra): (f32, f32, f32),
) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: output length");
    let at = |i: usize| (i / cols.max(1), i % cols.max(1));
    let mut max_err = (0.0f32, 0usize);
    let mut worst: Option<(f32, usize)> = None;
    let mut bad = 0usize;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.is_finite(),
            "{what}: non-finite {g} at flat index {i} = (row, col) {:?} (want {w})",
            at(i)
        );
        let err = (g - w).abs();
        if err > max_err.0 {
            max_err = (err, i);
        }
        let excess = err - (atol + rtol * w.abs() + extra);
        if excess > 0.0 {
            bad += 1;
            if worst.is_none_or(|(e, _)| excess > e) {
                worst = Some((excess, i));
            }
        }
    }
    if let Some((_, i)) = worst {
        panic!(
            "{what}: {bad} of {} values exceed {atol} + {rtol}·|want| + {extra:e}; worst at flat index {i} = (row, col) {:?}: got {}, want {}, |err| {:e}; max |err| {:e} at (row, col) {:?}",
            got.len(),
            at(i),
            got[i],
            want[i],
            (got[i] - want[i]).abs(),
            max_err.0,
            at(max_err.1)
        );
    }
    println!("{what}: max |err| {:.3e}", max_err.0);
    max_err.0
}

/// [`compare_within`] the f32 tolerance plus `extra`.
pub fn compare_with(what: &str, got: &[f32], want: &[f32], cols: usize, extra: f32) -> f32 {
    compare_within(what, got, want, cols, (ATOL, RTOL, extra))
}

/// [`compare_within`] the f32 tolerance.
pub fn compare(what: &str, got: &[f32], want: &[f32], cols: usize) -> f32 {
    compare_with(what, got, want, cols, 0.0)
}

/// [`compare_within`] the f16 tolerance.
pub fn compare_f16(what: &str, got: &[f32], want: &[f32], cols: usize) -> f32 {
    compare_within(what, got, want, cols, (F16_ATOL, F16_RTOL, 0.0))
}
