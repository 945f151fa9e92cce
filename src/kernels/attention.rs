//! Multi-head self-attention from a fused QKV tensor:
//! `out_h = softmax(Q_h K_hᵀ / √d + mask) · V_h` per (batch, head).
//! Twin of `shaders/attention.wgsl` and `shaders/attention_tiled.wgsl` (both
//! use an online softmax; the math is the same up to rounding).
//!
//! Contract: `qkv`: (batch·seq, 3·hidden), columns `[Q | K | V]`, head `h`
//! owning columns `h·d .. (h+1)·d` of each; `mask_add`: (batch·seq) additive
//! key mask (see [`super::additive_mask`]); `out`: (batch·seq, hidden).

use rayon::prelude::*;

/// The WGSL source (one query per invocation, no workgroup memory).
pub const WGSL: &str = include_str!("../../shaders/attention.wgsl");

/// The WGSL source of the workgroup-tiled flash kernel (16 queries × 16-key
/// blocks per workgroup, K/V staged in workgroup memory).
pub const WGSL_TILED: &str = include_str!("../../shaders/attention_tiled.wgsl");

/// CPU twin.
pub fn attention(
    qkv: &[f32],
    mask_add: &[f32],
    batch: usize,
    seq: usize,
    heads: usize,
    out: &mut [f32],
) {
    let hidden = out.len() / (batch * seq).max(1);
    let d = hidden / heads;
    assert_eq!(qkv.len(), batch * seq * 3 * hidden, "qkv shape");
    assert_eq!(mask_add.len(), batch * seq, "mask shape");
    let scale = 1.0 / (d as f32).sqrt();
    // Each task owns one (batch, head) and returns its (seq, d) context.
    let ctx: Vec<Vec<f32>> = (0..batch * heads)
        .into_par_iter()
        .map(|bh| {
            let (b, h) = (bh / heads, bh % heads);
            let gather = |part: usize| -> Vec<f32> {
                let mut m = Vec::with_capacity(seq * d);
                for s in 0..seq {
                    let row = (b * seq + s) * 3 * hidden + part * hidden + h * d;
                    m.extend_from_slice(&qkv[row..row + d]);
                }
                m
            };
            let (q, k, v) = (gather(0), gather(1), gather(2));
            let mut scores = vec![0.0f32; seq * seq]; // (seq_q, seq_k)
                                                      // SAFETY: q, k are (seq, d) row-major; scores is (seq, seq);
                                                      // rhs[kk, j] = k[j·d + kk] has row stride 1, column stride d.
            unsafe {
                gemm::gemm(
                    seq,
                    seq,
                    d,
                    scores.as_mut_ptr(),
                    1,
                    seq as isize,
                    false,
                    q.as_ptr(),
                    1,
                    d as isize,
                    k.as_ptr(),
                    d as isize,
                    1,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            super::softmax::softmax_rows(&mut scores, &mask_add[b * seq..(b + 1) * seq], scale);
            let mut c = vec![0.0f32; seq * d];
            // SAFETY: scores (seq, seq) · v (seq, d) → c (seq, d), all row-major.
            unsafe {
                gemm::gemm(
                    seq,
                    d,
                    seq,
                    c.as_mut_ptr(),
                    1,
                    d as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    seq as isize,
                    v.as_ptr(),
                    1,
                    d as isize,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            c
        })
        .collect();
    for (bh, c) in ctx.iter().enumerate() {
        let (b, h) = (bh / heads, bh % heads);
        for s in 0..seq {
            let o = (b * seq + s) * hidden + h * d;
            out[o..o + d].copy_from_slice(&c[s * d..(s + 1) * d]);
        }
    }
}
