// linear.wgsl — Y = act(X · Wᵀ + b) + R: HF's nn.Linear with a fused
// epilogue (bias, activation, optional residual). Twin of
// src/kernels/linear.rs; the activation is common.wgsl's apply_act.
//
// Assembled as PREAMBLE + common.wgsl + linear.wgsl. The PREAMBLE picks the
// storage type ST (f32, or f16 with `enable f16`) of activations and weight
// matrices, and the load width: VS = vec4<ST> / VT = vec4<f32>, VW = 4 when
// k % 4 == 0 and x_row_stride % 4 == 0 (the host checks), else VS = ST,
// VT = f32, VW = 1. Loads convert to f32 (VT(..)); all arithmetic and
// accumulation is f32; the store converts to YT, the output type: ST, except
// for the residual sums that feed a LayerNorm, which the host keeps f32 (f16
// would round BERT's outlier features, ~200 in MiniLM, by up to 0.06).
// Indices into x and w below are in VS units; the bias b is always f32.
//
// Bindings (group 0):
//   0  x: array<VS>  read        rows m; row i starts at element
//                                 i·x_row_stride (VS index i·x_row_stride/VW),
//                                 k values per row
//   1  w: array<VS>  read        (n, k) row-major, HF's (out_features, in_features)
//   2  b: array<f32> read        (n) bias
//   3  r: array<ST>  read        (m, n) residual, added after the activation;
//                                 a 16-byte dummy when has_residual == 0 (never read then)
//   4  y: array<YT>  read_write  (m, n) output; YT = ST, or f32 for a
//                                 sum that feeds a LayerNorm (see below)
//   5  p: uniform LinearParams
//
// struct LinearParams (declared in common.wgsl) { m, n, k, x_row_stride, act,
//   has_residual, k_chunk, splits }
//   (all u32, 32 bytes; k_chunk and splits are linear_tiled.wgsl's split-k
//   fields, ignored here; act is an apply_act code: 0 identity, 1 gelu,
//   2 gelu_tanh, 3 relu, 4 silu, 5 tanh).
//
// Dispatch: @workgroup_size(WG_X, WG_Y) (overrides, default 8 × 8); grid
// (ceil(n / (4·WG_X)), ceil(m / (4·WG_Y)), 1). Invocation gid computes the
// 4 × 4 output block rows 4·gid.y .. 4·gid.y+3, cols 4·gid.x .. 4·gid.x+3,
// accumulating 16 f32 sums in registers over k with VT-wide loads (4 rows of
// x and 4 rows of w per step, 16 vdots). No workgroup memory, no barriers
// (the known-good shape on llvmpipe, where barriers are expensive).
//
// Sizes that are not tile multiples: any m, n ≥ 1 and any k ≥ 0 work.
// Rows/cols of a block past the edge load a clamped row (min(row, m-1),
// min(col, n-1)), so the k loop has no branches and never reads out of
// bounds; their results are discarded by the guarded store (row < m && col < n).
// Blocks entirely outside (m, n) and m == 0 or n == 0 return at once. k == 0
// gives y = act(b) + r.

@group(0) @binding(0) var<storage, read> x: array<VS>;
@group(0) @binding(1) var<storage, read> w: array<VS>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> r: array<ST>;
@group(0) @binding(4) var<storage, read_write> y: array<YT>;
@group(0) @binding(5) var<uniform> p: LinearParams;

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;

// Epilogue for one output element: bias, activation, residual, guarded store.
fn store_out(row: u32, col: u32, acc: f32) {
    if (row < p.m && col < p.n) {
        let o = row * p.n + col;
        var v = apply_act(p.act, acc + b[col]);
        if (p.has_residual != 0u) {
            v = v + f32(r[o]);
        }
        y[o] = YT(v);
    }
}

fn store_row(row: u32, col0: u32, acc: vec4<f32>) {
    store_out(row, col0, acc.x);
    store_out(row, col0 + 1u, acc.y);
    store_out(row, col0 + 2u, acc.z);
    store_out(row, col0 + 3u, acc.w);
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * 4u;
    let col0 = gid.x * 4u;
    // Also covers m == 0 / n == 0 (so m - 1, n - 1 below cannot wrap).
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let kv = p.k / VW;              // VS elements per row of x and w
    let xs = p.x_row_stride / VW;   // VS elements between rows of x
    let rl = p.m - 1u;
    let cl = p.n - 1u;
    // Clamped row starts: out-of-range rows/cols re-read the last valid one.
    let x0 = min(row0, rl) * xs;
    let x1 = min(row0 + 1u, rl) * xs;
    let x2 = min(row0 + 2u, rl) * xs;
    let x3 = min(row0 + 3u, rl) * xs;
    let w0 = min(col0, cl) * kv;
    let w1 = min(col0 + 1u, cl) * kv;
    let w2 = min(col0 + 2u, cl) * kv;
    let w3 = min(col0 + 3u, cl) * kv;

    // acc_i.{x,y,z,w} = row row0+i, cols col0+0..3.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < kv; kk = kk + 1u) {
        let a0 = VT(x[x0 + kk]);
        let a1 = VT(x[x1 + kk]);
        let a2 = VT(x[x2 + kk]);
        let a3 = VT(x[x3 + kk]);
        let b0 = VT(w[w0 + kk]);
        let b1 = VT(w[w1 + kk]);
        let b2 = VT(w[w2 + kk]);
        let b3 = VT(w[w3 + kk]);
        acc0 = acc0 + vec4<f32>(vdot(a0, b0), vdot(a0, b1), vdot(a0, b2), vdot(a0, b3));
        acc1 = acc1 + vec4<f32>(vdot(a1, b0), vdot(a1, b1), vdot(a1, b2), vdot(a1, b3));
        acc2 = acc2 + vec4<f32>(vdot(a2, b0), vdot(a2, b1), vdot(a2, b2), vdot(a2, b3));
        acc3 = acc3 + vec4<f32>(vdot(a3, b0), vdot(a3, b1), vdot(a3, b2), vdot(a3, b3));
    }

    store_row(row0, col0, acc0);
    store_row(row0 + 1u, col0, acc1);
    store_row(row0 + 2u, col0, acc2);
    store_row(row0 + 3u, col0, acc3);
}
