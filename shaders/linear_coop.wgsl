// linear_coop.wgsl — Y = act(X · Wᵀ + b) + R on cooperative matrices (tensor
// cores): f16 X and W, f32 accumulation, the linear.wgsl contract for f16
// storage (twin: src/kernels/linear.rs).
//
// Assembled as "enable wgpu_cooperative_matrix;" +
// PREAMBLE(vec4, f16, YT) + the coop constants + common.wgsl +
// linear_coop.wgsl, where the host sets (from the adapter, `CoopConfig`):
//   F   fragment size, 16 (NVIDIA, AMD) or 8 (lavapipe, Apple): the adapter
//       must offer F × F × F f16 · f16 + f32 products at subgroup scope;
//   SG  the adapter's fixed subgroup size (32 on NVIDIA, 8 on lavapipe);
//   CA, CB, CC = coop_matFxF<f16, A>, <f16, B>, <f32, C>.
// Only f16 storage: there is no f32 · f32 tensor-core product on NVIDIA,
// and the f32 path keeps f32 arithmetic. Vec4 loads: the host sends a layer
// here only when k % 4 == 0 and x_row_stride % 4 == 0.
//
// Bindings (group 0), as linear.wgsl:
//   0  x: array<VS>  read        rows m, row i at element i·x_row_stride, k values
//   1  w: array<VS>  read        (n, k) row-major, HF's (out_features, in_features)
//   2  b: array<f32> read        (n)
//   3  r: array<ST>  read        (m, n) residual, dummy when has_residual == 0
//   4  y: array<YT>  read_write  (m, n); YT = f16, or f32 for sums that feed a
//                                 LayerNorm
//   5  p: uniform LinearParams   (common.wgsl; k_chunk and splits unused: no
//                                 split-k here)
//
// Dispatch: @workgroup_size(4·SG): four subgroups; grid
// (ceil(n / 4F), ceil(m / 4F), 1). Workgroup (x, y) owns the 4F × 4F output
// tile at rows y·4F, columns x·4F; subgroup s (the subgroup_id builtin) owns
// its 2F × 2F quarter (row half s / 2, column half s % 2) as 2 × 2 fragments
// c00..c11 in named variables. Per KS = 2F slice of k, the workgroup stages
// the 4F × KS slices of x and w as f16 in workgroup memory (zeros outside m,
// n and k, so any shape is exact), and each subgroup does 2 × 4 fragment
// products. At the end the fragments go to a 4F × 4F f32 tile in workgroup
// memory and every invocation applies the epilogue (bias, activation,
// residual) to its share, with stores guarded by row < m && col < n.
// Every invocation reaches every barrier and every cooperative operation
// (uniform loop bounds, no early return).
//
// Workgroup memory: 2 · 4F · 2F f16 + 16F² f32 = 24 KiB at F = 16, 6 KiB at F = 8.

@group(0) @binding(0) var<storage, read> x: array<VS>;
@group(0) @binding(1) var<storage, read> w: array<VS>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> r: array<ST>;
@group(0) @binding(4) var<storage, read_write> y: array<YT>;
@group(0) @binding(5) var<uniform> p: LinearParams;

const WG: u32 = 4u * SG;
const BM: u32 = 4u * F;   // tile rows (and columns)
const KS: u32 = 2u * F;   // k per staged slice

var<workgroup> xs: array<f16, BM * KS>;   // (BM, KS) row-major
var<workgroup> ws: array<f16, BM * KS>;   // (BN, KS) row-major: Wᵀ column-major
var<workgroup> cs: array<f32, BM * BM>;   // (BM, BN) the accumulators

// Stages the (BM, KS) slice of x at (m0, k0) and of w at (n0, k0); vec4
// loads, zeros outside the matrices (k % 4 == 0: a vec4 is wholly in or out).
fn stage(m0: u32, n0: u32, k0: u32, tid: u32) {
    for (var s = tid; s < BM * KS / 4u; s = s + WG) {
        let row = s / (KS / 4u);
        let kq = s % (KS / 4u);
        let gk = k0 + kq * 4u;
        var xv = vec4<f16>(0.0);
        if (m0 + row < p.m && gk < p.k) {
            xv = vec4<f16>(x[((m0 + row) * p.x_row_stride + gk) >> 2u]);
        }
        var wv = vec4<f16>(0.0);
        if (n0 + row < p.n && gk < p.k) {
            wv = vec4<f16>(w[((n0 + row) * p.k + gk) >> 2u]);
        }
        let o = row * KS + kq * 4u;
        xs[o] = xv.x;
        xs[o + 1u] = xv.y;
        xs[o + 2u] = xv.z;
        xs[o + 3u] = xv.w;
        ws[o] = wv.x;
        ws[o + 1u] = wv.y;
        ws[o + 2u] = wv.z;
        ws[o + 3u] = wv.w;
    }
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
    @builtin(subgroup_id) sid: u32,
) {
    let m0 = wid.y * BM;
    let n0 = wid.x * BM;
    // This subgroup's quarter of the tile.
    let qr = (sid / 2u) * 2u * F;
    let qc = (sid % 2u) * 2u * F;
    var c00: CC;
    var c01: CC;
    var c10: CC;
    var c11: CC;
    for (var k0 = 0u; k0 < p.k; k0 = k0 + KS) {
        stage(m0, n0, k0, tid);
        workgroupBarrier();
        for (var kf = 0u; kf < KS; kf = kf + F) {
            // A: x rows, row-major in xs; B = Wᵀ: column-major in ws.
            let a0 = coopLoadT<CA>(&xs[qr * KS + kf], KS);
            let a1 = coopLoadT<CA>(&xs[(qr + F) * KS + kf], KS);
            let b0 = coopLoad<CB>(&ws[qc * KS + kf], KS);
            let b1 = coopLoad<CB>(&ws[(qc + F) * KS + kf], KS);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
        }
        workgroupBarrier();
    }
    coopStoreT(c00, &cs[qr * BM + qc], BM);
    coopStoreT(c01, &cs[qr * BM + qc + F], BM);
    coopStoreT(c10, &cs[(qr + F) * BM + qc], BM);
    coopStoreT(c11, &cs[(qr + F) * BM + qc + F], BM);
    workgroupBarrier();
    for (var e = tid; e < BM * BM; e = e + WG) {
        let row = m0 + e / BM;
        let col = n0 + e % BM;
        if (row < p.m && col < p.n) {
            let o = row * p.n + col;
            var out = apply_act(p.act, cs[e] + b[col]);
            if (p.has_residual != 0u) {
                out = out + f32(r[o]);
            }
            y[o] = YT(out);
        }
    }
}
