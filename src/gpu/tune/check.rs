//! The correctness check a kernel variant passes before `tune` may choose
//! it: its output on random inputs against the CPU twin's on the same
//! inputs rounded to the storage type, within `selfcheck`'s tolerance. The
//! variants are held to their twins by the test suite on the adapters CI
//! has; this check covers the adapter a user tunes on, whose driver the
//! suite never saw, so a miscompiled kernel loses instead of winning.

use crate::config::BertConfig;
use crate::device::DType;
use crate::error::Result;
use crate::gpu::convert::{decode, encode};
use crate::gpu::KernelHarness;
use crate::kernels::act::Act;
use crate::kernels::attention::attention;
use crate::kernels::linear::{linear, LinearShape};
use crate::synth::{gap, random_values, selfcheck_tolerance};

/// `data` as the kernels see it after upload in `dtype`.
fn stored(dtype: DType, data: Vec<f32>) -> Result<Vec<f32>> {
    if dtype == DType::F32 {
        return Ok(data);
    }
    let bytes = encode(dtype, "tune check input", &data)?;
    Ok(decode(dtype, &bytes, data.len()))
}

/// What a check found: the largest |gpu − cpu|, and whether every element
/// is within atol + rtol·|cpu| (a non-finite output never is).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Largest |gpu − cpu|.
    pub max_abs: f64,
    /// Every element within the tolerance.
    pub ok: bool,
}

impl Verdict {
    fn of(got: &[f32], want: &[f32], dtype: DType) -> Verdict {
        let (atol, rtol) = selfcheck_tolerance(dtype);
        let mut v = Verdict {
            max_abs: 0.0,
            ok: got.len() == want.len(),
        };
        for (&g, &w) in got.iter().zip(want) {
            let d = gap(g, w);
            v.max_abs = v.max_abs.max(f64::from(d));
            v.ok &= d <= atol + rtol * w.abs();
        }
        v
    }

    fn and(self, other: Verdict) -> Verdict {
        Verdict {
            max_abs: self.max_abs.max(other.max_abs),
            ok: self.ok && other.ok,
        }
    }
}

/// One linear with its inputs and the CPU twin's output.
struct LinearCase {
    shape: LinearShape,
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    residual: Option<Vec<f32>>,
    want: Vec<f32>,
}

/// BERT's two epilogues at `m` rows of `cfg`'s shape: `intermediate`
/// (bias + GELU) and `output` (bias + residual, k = intermediate size).
pub struct GemmCheck {
    cases: Vec<LinearCase>,
    dtype: DType,
}

impl GemmCheck {
    /// The inputs and CPU outputs, computed once for every variant.
    pub fn new(cfg: &BertConfig, m: usize, dtype: DType) -> Result<GemmCheck> {
        let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
        let mut cases = Vec::new();
        for (seed, n, k, act, with_residual) in [
            (11u64, f, d, Act::Gelu, false),
            (13, d, f, Act::Identity, true),
        ] {
            let shape = LinearShape {
                m,
                n,
                k,
                x_row_stride: k,
                act,
            };
            let x = stored(dtype, random_values(seed, m * k))?;
            let w: Vec<f32> = random_values(seed + 1, n * k)
                .into_iter()
                .map(|v| v * 0.05)
                .collect();
            let w = stored(dtype, w)?;
            let b = random_values(seed + 2, n);
            let residual = match with_residual {
                true => Some(random_values(seed + 3, m * n)),
                false => None,
            };
            let mut want = vec![0.0; m * n];
            linear(shape, &x, &w, &b, residual.as_deref(), &mut want);
            cases.push(LinearCase {
                shape,
                x,
                w,
                b,
                residual,
                want,
            });
        }
        Ok(GemmCheck { cases, dtype })
    }

    /// Runs each case with `h`'s current (forced) GEMM.
    pub fn run(&self, h: &KernelHarness) -> Result<Verdict> {
        let mut v = Verdict {
            max_abs: 0.0,
            ok: true,
        };
        for c in &self.cases {
            let got = h.linear(c.shape, &c.x, &c.w, &c.b, c.residual.as_deref())?;
            v = v.and(Verdict::of(&got, &c.want, self.dtype));
        }
        Ok(v)
    }
}

/// Self-attention at batch × seq with the last sequence padded to half its
/// length, and the CPU twin's output.
pub struct AttentionCheck {
    qkv: Vec<f32>,
    mask: Vec<f32>,
    dims: [usize; 4],
    want: Vec<f32>,
    dtype: DType,
}

impl AttentionCheck {
    /// The inputs and CPU output, computed once for every variant.
    pub fn new(cfg: &BertConfig, batch: usize, seq: usize, dtype: DType) -> Result<Self> {
        let (heads, hidden) = (cfg.num_attention_heads, cfg.hidden_size);
        let qkv = stored(dtype, random_values(17, batch * seq * 3 * hidden))?;
        let attended: Vec<u32> = (0..batch * seq)
            .map(|i| u32::from(i / seq + 1 < batch || i % seq < seq.div_ceil(2)))
            .collect();
        let mask = crate::kernels::additive_mask(&attended);
        let mut want = vec![0.0; batch * seq * hidden];
        attention(&qkv, &mask, batch, seq, heads, &mut want);
        Ok(AttentionCheck {
            qkv,
            mask,
            dims: [batch, seq, heads, hidden],
            want,
            dtype,
        })
    }

    /// Runs the check with `h`'s current (forced) attention kernel.
    pub fn run(&self, h: &KernelHarness) -> Result<Verdict> {
        let [batch, seq, heads, hidden] = self.dims;
        let got = h.attention(&self.qkv, &self.mask, batch, seq, heads, hidden)?;
        Ok(Verdict::of(&got, &self.want, self.dtype))
    }

    /// Seconds per dispatch of `h`'s current attention kernel on the same
    /// inputs ([`KernelHarness::time_attention`], `reps` dispatches).
    pub fn time(&self, h: &KernelHarness, reps: u32) -> Result<f64> {
        let [batch, seq, heads, hidden] = self.dims;
        h.time_attention(&self.qkv, &self.mask, batch, seq, heads, hidden, reps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_fails_on_any_element_beyond_tolerance_or_not_finite() {
        let want = [1.0f32, -2.0, 0.5];
        let v = Verdict::of(&[1.0005, -2.001, 0.5], &want, DType::F32);
        assert!(v.ok, "{v:?}");
        assert!((v.max_abs - 1e-3).abs() < 1e-6, "{v:?}");
        let v = Verdict::of(&[1.0, -2.01, 0.5], &want, DType::F32);
        assert!(!v.ok, "{v:?}");
        assert!(Verdict::of(&[1.0, -2.01, 0.5], &want, DType::F16).ok);
        let v = Verdict::of(&[1.0, f32::NAN, 0.5], &want, DType::F16);
        assert!(!v.ok && v.max_abs.is_infinite(), "{v:?}");
        assert!(!Verdict::of(&[1.0, -2.0], &want, DType::F32).ok, "length");
    }
}
