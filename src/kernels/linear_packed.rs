//! The CPU executor's `linear`: the contract of [`super::linear::linear`]
//! (`Y = act(X · Wᵀ + b) + R`) with the weight packed once at load into
//! 16-column panels, a 6 × 16 AVX2/FMA register tile, and the epilogue
//! fused into the last pass over each tile while it is in cache.
//!
//! Blocking (BLIS's loops, sized for 32 KB L1 / 512 KB L2): a task owns a
//! `MC × NC` block of `Y`; for each `kc` slice of `k` it packs its rows of
//! `X` into 6-row panels (`MC × kc` floats, L2), then runs every 16-column
//! weight panel (`kc × 16`, L1) against every 6-row panel. Tasks run on
//! rayon. Products too small to pay for packing `X` (the pooler, heads) run
//! as plain loops over the panels. Without AVX2 + FMA the weight is kept
//! transposed instead and the `gemm` crate runs (same results up to
//! rounding).

use rayon::prelude::*;

use super::linear::{epilogue, linear_with_layout, LinearShape, WeightLayout};

/// Rows of the register tile.
const MR: usize = 6;
/// Columns of the register tile (two 8-wide vectors).
const NR: usize = 16;
/// Rows of `Y` per task (a multiple of [`MR`]).
const MC: usize = 48;
/// Columns of `Y` per task when rows alone do not make enough tasks.
const NC: usize = 256;
/// Longest `k` slice: a `KC × NR` weight panel is 16 KB.
const KC_MAX: usize = 256;
/// Columns of `Y` a task finishes (all `k` slices, then the epilogue)
/// before the next: `MC × CHUNK` floats stay in L2.
const CHUNK: usize = 256;

/// A weight matrix `(n, k)` laid out for the CPU this runs on: with AVX2 +
/// FMA, `ceil(n / 16)` panels of `[k][16]` (columns past `n` are zero);
/// otherwise the `(k, n)` transpose the `gemm` crate packs fastest. One copy
/// either way.
#[derive(Debug, Clone)]
pub struct PackedWeight {
    /// Output columns.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    layout: Layout,
}

#[derive(Debug, Clone)]
enum Layout {
    Panels(Vec<f32>),
    /// (k, n) row-major.
    InOut(Vec<f32>),
}

impl PackedWeight {
    /// Packs `w`, HF's `(out_features, in_features)` = `(n, k)`.
    pub fn new(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "w shape");
        if !has_avx2_fma() {
            return PackedWeight {
                n,
                k,
                layout: Layout::InOut(super::linear::transpose(w, n, k)),
            };
        }
        let np = n.div_ceil(NR);
        let mut panels = vec![0.0f32; np * k * NR];
        for (p, panel) in panels.chunks_exact_mut(k * NR).enumerate() {
            for j in 0..NR.min(n - p * NR) {
                let col = &w[(p * NR + j) * k..(p * NR + j + 1) * k];
                for (kk, v) in col.iter().enumerate() {
                    panel[kk * NR + j] = *v;
                }
            }
        }
        PackedWeight {
            n,
            k,
            layout: Layout::Panels(panels),
        }
    }
}

fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `Y = act(X · Wᵀ + b) + R` with a packed weight; the contract of
/// [`super::linear::linear`].
pub fn linear_packed(
    s: LinearShape,
    x: &[f32],
    w: &PackedWeight,
    b: &[f32],
    residual: Option<&[f32]>,
    y: &mut [f32],
) {
    let LinearShape {
        m,
        n,
        k,
        x_row_stride,
        ..
    } = s;
    assert_eq!((w.n, w.k), (n, k), "packed weight shape");
    let panels = match &w.layout {
        Layout::InOut(t) => {
            return linear_with_layout(s, x, t, WeightLayout::InOut, b, residual, y)
        }
        Layout::Panels(p) => p,
    };
    // Tiny products (the pooler, classifier heads) do not pay for packing X.
    if m * n * k < 1 << 16 || k == 0 || m == 0 {
        return small(s, x, panels, b, residual, y);
    }
    assert!(x_row_stride >= k, "x_row_stride < k");
    assert!(x.len() >= (m - 1) * x_row_stride + k, "x too short");
    assert_eq!(b.len(), n, "b shape");
    assert_eq!(y.len(), m * n, "y shape");
    if let Some(r) = residual {
        assert_eq!(r.len(), m * n, "residual shape");
    }
    let kc = k.div_ceil(k.div_ceil(KC_MAX));
    // Whole rows of Y per task when there are rows enough to keep every
    // thread busy (X is then packed once); else column blocks too.
    let mb = m.div_ceil(MC);
    let nb = if mb >= 4 * rayon::current_num_threads() {
        1
    } else {
        n.div_ceil(NC)
    };
    let nc = n.div_ceil(nb).div_ceil(NR) * NR;
    // Each task writes only its own block of y: hand out row bands of MC
    // rows, split further by NC columns inside the band.
    let y_ptr = SendPtr(y.as_mut_ptr());
    (0..mb * nb).into_par_iter().for_each(|t| {
        let (ib, jb) = (t / nb, t % nb);
        let rows = ib * MC..((ib + 1) * MC).min(m);
        let cols = jb * nc..((jb + 1) * nc).min(n);
        // SAFETY: tasks cover disjoint (rows, cols) blocks of y, and
        // `block` writes only inside its block.
        unsafe { block(s, x, panels, b, residual, y_ptr, rows, cols, kc) };
    });
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint blocks of one buffer to rayon tasks.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// One (rows, cols) block of `y`: its rows of `X` packed once (all of
/// `k`), then per chunk of [`CHUNK`] columns every `kc` slice, so the chunk
/// of `Y` stays in L2 across slices and gets its epilogue there.
///
/// # Safety
/// `y` points to `m · n` floats; no other task touches this block.
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    s: LinearShape,
    x: &[f32],
    panels: &[f32],
    b: &[f32],
    residual: Option<&[f32]>,
    y: SendPtr,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    kc: usize,
) {
    let (n, k) = (s.n, s.k);
    let mr_panels = rows.len().div_ceil(MR);
    // Panel r holds [kk][MR] for rows r·MR.. (zeros past the block).
    let mut a = vec![0.0f32; mr_panels * MR * k];
    for (r, panel) in a.chunks_exact_mut(MR * k).enumerate() {
        for i in 0..MR.min(rows.len() - r * MR) {
            let row = rows.start + r * MR + i;
            let src = &x[row * s.x_row_stride..row * s.x_row_stride + k];
            for (kk, v) in src.iter().enumerate() {
                panel[kk * MR + i] = *v;
            }
        }
    }
    let mut tile = [0.0f32; MR * NR];
    let mut c_start = cols.start;
    while c_start < cols.end {
        let chunk = c_start..(c_start + CHUNK).min(cols.end);
        let mut pc = 0;
        while pc < k {
            let kb = kc.min(k - pc);
            let mut c0 = chunk.start;
            while c0 < chunk.end {
                let width = NR.min(n - c0);
                let bp = panels.as_ptr().add(((c0 / NR) * k + pc) * NR);
                for r in 0..mr_panels {
                    let r0 = rows.start + r * MR;
                    let height = MR.min(rows.end - r0);
                    let ap = a.as_ptr().add(r * MR * k + pc * MR);
                    let yt = y.0.add(r0 * n + c0);
                    if height == MR && width == NR {
                        tile_avx2(kb, ap, bp, yt, n, pc == 0);
                    } else {
                        // A partial tile: through a local buffer.
                        tile_avx2(kb, ap, bp, tile.as_mut_ptr(), NR, true);
                        for i in 0..height {
                            let yrow = std::slice::from_raw_parts_mut(yt.add(i * n), width);
                            let t = &tile[i * NR..i * NR + width];
                            if pc == 0 {
                                yrow.copy_from_slice(t);
                            } else {
                                for (o, v) in yrow.iter_mut().zip(t) {
                                    *o += v;
                                }
                            }
                        }
                    }
                }
                c0 += NR;
            }
            pc += kb;
        }
        // The epilogue while the chunk is still in cache.
        for row in rows.clone() {
            let at = row * n + chunk.start;
            let yrow = std::slice::from_raw_parts_mut(y.0.add(at), chunk.len());
            let res = residual.map(|r| &r[at..at + chunk.len()]);
            epilogue(s.act, yrow, &b[chunk.clone()], res);
        }
        c_start = chunk.end;
    }
}

/// A product too small to pack `X` for: plain loops over the panels.
fn small(
    s: LinearShape,
    x: &[f32],
    panels: &[f32],
    b: &[f32],
    residual: Option<&[f32]>,
    y: &mut [f32],
) {
    let (m, n, k) = (s.m, s.n, s.k);
    assert!(
        m == 0 || x.len() >= (m - 1) * s.x_row_stride + k,
        "x too short"
    );
    assert_eq!(y.len(), m * n, "y shape");
    for i in 0..m {
        let xr = &x[i * s.x_row_stride..i * s.x_row_stride + k];
        let yr = &mut y[i * n..(i + 1) * n];
        for (p, yc) in yr.chunks_mut(NR).enumerate() {
            let mut acc = [0.0f32; NR];
            let panel = &panels[p * k * NR..(p + 1) * k * NR];
            for (kk, &a) in xr.iter().enumerate() {
                for (o, &w) in acc.iter_mut().zip(&panel[kk * NR..(kk + 1) * NR]) {
                    *o = a.mul_add(w, *o);
                }
            }
            yc.copy_from_slice(&acc[..yc.len()]);
        }
        epilogue(s.act, yr, b, residual.map(|r| &r[i * n..(i + 1) * n]));
    }
}

/// `C[6 × 16] (=|+=) A-panel · B-panel` over `kc` steps; `c` rows are `ldc`
/// apart.
///
/// # Safety
/// The CPU has AVX2 and FMA; `a` holds `kc · 6`, `b` `kc · 16` floats, `c`
/// 6 rows of 16 writable floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    overwrite: bool,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    let (mut a, mut b) = (a, b);
    for _ in 0..kc {
        let b0 = _mm256_loadu_ps(b);
        let b1 = _mm256_loadu_ps(b.add(8));
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = _mm256_broadcast_ss(&*a.add(i));
            row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
            row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
        }
        a = a.add(MR);
        b = b.add(NR);
    }
    for (i, row) in acc.iter().enumerate() {
        let ci = c.add(i * ldc);
        if overwrite {
            _mm256_storeu_ps(ci, row[0]);
            _mm256_storeu_ps(ci.add(8), row[1]);
        } else {
            _mm256_storeu_ps(ci, _mm256_add_ps(_mm256_loadu_ps(ci), row[0]));
            _mm256_storeu_ps(ci.add(8), _mm256_add_ps(_mm256_loadu_ps(ci.add(8)), row[1]));
        }
    }
}

/// Never called: [`has_avx2_fma`] is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_avx2(_: usize, _: *const f32, _: *const f32, _: *mut f32, _: usize, _: bool) {
    unreachable!("the AVX2 tile runs only on x86-64")
}
