//! Deterministic synthetic data and comparison tolerances, shared by
//! [`crate::bench`] (random models and inputs, `selfcheck`) and the GPU
//! `tune` self-check (random kernel inputs against the CPU twins).

use crate::device::DType;

/// A small deterministic generator (xorshift64*) so random models need no
/// extra dependency and are the same on every run.
pub(crate) struct Rng(pub(crate) u64);

/// `len` deterministic values in [-1, 1) from `seed`.
pub(crate) fn random_values(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = Rng(seed | 1);
    (0..len).map(|_| rng.next_f32()).collect()
}

impl Rng {
    pub(crate) fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((v >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// |got − want|, or infinity when `got` is not finite (a NaN must never
/// pass a tolerance check).
pub(crate) fn gap(got: f32, want: f32) -> f32 {
    if got.is_finite() {
        (got - want).abs()
    } else {
        f32::INFINITY
    }
}

/// The (atol, rtol) [`selfcheck`](crate::bench::selfcheck) holds a GPU model of storage type `dtype`
/// to: f32 end to end, or the f16 fixture tolerance.
pub fn selfcheck_tolerance(dtype: DType) -> (f32, f32) {
    match dtype {
        DType::F32 => (1e-4, 1e-3),
        DType::F16 => (1e-2, 1e-2),
    }
}
