// linear_tiled.wgsl — Y = act(X · Wᵀ + b) + R with workgroup-memory tiles:
// the same contract as linear.wgsl (twin: src/kernels/linear.rs), for real
// GPUs, where staging tiles in workgroup memory pays for its barriers (on
// llvmpipe it does not: the host uses linear.wgsl there).
//
// Assembled as PREAMBLE(vec4) + common.wgsl + linear_tiled.wgsl (ST = f32 or
// f16 storage, as linear.wgsl; tiles and accumulators are f32). Each
// invocation computes 8 × 8 outputs, a 16 × 16 workgroup a 128 × 128 tile.
// Accumulators are 16 named vec4s, not an array: drivers keep private arrays
// indexed in loops in local memory, which made an array version 10× slower
// on an H200. Only the vec4 preamble is used: the host sends a layer here
// only when k % 4 == 0 and x_row_stride % 4 == 0.
//
// Bindings (group 0), as linear.wgsl:
//   0  x: array<VS>  read        rows m, row i at element i·x_row_stride, k values
//   1  w: array<VS>  read        (n, k) row-major, HF's (out_features, in_features)
//   2  b: array<f32> read        (n)
//   3  r: array<ST>  read        (m, n) residual, dummy when has_residual == 0
//   4  y: array<YT>  read_write  (m, n); YT = ST or f32, as linear.wgsl
//   5  p: uniform LinearParams   (common.wgsl) { m, n, k, x_row_stride, act, has_residual,
//                                  k_chunk, splits }
//   6  part: array<f32> read_write  (splits, m, n) split-k partial sums; a
//                                 16-byte dummy when splits == 1 (never touched)
//
// Dispatch: @workgroup_size(16, 16); grid (ceil(n / 128), ceil(m / 128),
// splits). Split-k (for small m, where m·n alone gives too few tiles to fill
// a GPU): workgroup z sums k in [z·k_chunk, min(k, (z+1)·k_chunk)) and, when
// splits > 1, stores its raw sums to part[z] without the epilogue;
// splitk_reduce.wgsl then adds the splits, the bias, the activation and the
// residual. With splits == 1 (k_chunk ≥ k) the epilogue runs here. k_chunk
// is a multiple of BK, so a tile never straddles two splits.
// Per BK = 16 slice of k, the workgroup loads a BM × BK tile of x and a
// BN × BK tile of w (vec4 loads, k-major in workgroup memory), then each
// invocation accumulates rows ly + 16·i, cols lx + 16·j (strided so that
// neighbouring invocations read neighbouring words: no bank conflicts, and
// stores coalesce).
//
// Sizes that are not tile multiples: loads outside m, n or k read zeros (k is
// a multiple of 4, so a vec4 is wholly inside or outside); stores are guarded
// by row < m && col < n. Every invocation reaches every barrier (no early
// return), so control flow stays uniform.

@group(0) @binding(0) var<storage, read> x: array<VS>;
@group(0) @binding(1) var<storage, read> w: array<VS>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> r: array<ST>;
@group(0) @binding(4) var<storage, read_write> y: array<YT>;
@group(0) @binding(5) var<uniform> p: LinearParams;
@group(0) @binding(6) var<storage, read_write> part: array<f32>;

const BK: u32 = 16u;
const BM: u32 = 128u;
const BN: u32 = 128u;

// k-major tiles: xs[kk * BM + row], ws[kk * BN + col].
var<workgroup> xs: array<f32, 2048>; // BK · BM
var<workgroup> ws: array<f32, 2048>; // BK · BN

// Loads x's 128 × 16 slice (rows m0.., k k0..) into xs, k-major, zeros
// outside; 512 vec4s, two per invocation. load_w does the same for w.
fn load_x(m0: u32, k0: u32, tid: u32) {
    for (var s = tid; s < 512u; s = s + 256u) {
        let row = s >> 2u;
        let kq = s & 3u;
        let gm = m0 + row;
        let gk = k0 + kq * 4u;
        var v = vec4<f32>(0.0);
        if (gm < p.m && gk < p.k) {
            v = vec4<f32>(x[(gm * p.x_row_stride + gk) >> 2u]);
        }
        let base = kq * 4u * BM + row;
        xs[base] = v.x;
        xs[base + BM] = v.y;
        xs[base + 2u * BM] = v.z;
        xs[base + 3u * BM] = v.w;
    }
}

fn load_w(n0: u32, k0: u32, tid: u32) {
    for (var s = tid; s < 512u; s = s + 256u) {
        let col = s >> 2u;
        let kq = s & 3u;
        let gn = n0 + col;
        let gk = k0 + kq * 4u;
        var v = vec4<f32>(0.0);
        if (gn < p.n && gk < p.k) {
            v = vec4<f32>(w[(gn * p.k + gk) >> 2u]);
        }
        let base = kq * 4u * BN + col;
        ws[base] = v.x;
        ws[base + BN] = v.y;
        ws[base + 2u * BN] = v.z;
        ws[base + 3u * BN] = v.w;
    }
}

fn store(split: u32, row: u32, col0: u32, v: vec4<f32>) {
    // Columns col0, col0 + 16, col0 + 32, col0 + 48 of one row.
    if (row >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        let col = col0 + 16u * j;
        if (col < p.n && p.splits > 1u) {
            part[(split * p.m + row) * p.n + col] = v[j];
        } else if (col < p.n) {
            let o = row * p.n + col;
            var out = apply_act(p.act, v[j] + b[col]);
            if (p.has_residual != 0u) {
                out = out + f32(r[o]);
            }
            y[o] = YT(out);
        }
    }
}

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let tid = lid.y * 16u + lid.x;
    let m0 = wid.y * BM;
    let n0 = wid.x * BN;
    // Row i of the invocation is m0 + ly + 16·i; column j is n0 + lx + 16·j.
    // cIJ holds rows i, columns 4·J .. 4·J+3 (as lx + 16·(4·J + c)).
    var c00 = vec4<f32>(0.0); var c01 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0); var c21 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0); var c31 = vec4<f32>(0.0);
    var c40 = vec4<f32>(0.0); var c41 = vec4<f32>(0.0);
    var c50 = vec4<f32>(0.0); var c51 = vec4<f32>(0.0);
    var c60 = vec4<f32>(0.0); var c61 = vec4<f32>(0.0);
    var c70 = vec4<f32>(0.0); var c71 = vec4<f32>(0.0);
    let ly = lid.y;
    let lx = lid.x;
    let split = wid.z;
    let k_end = min(p.k, (split + 1u) * p.k_chunk);
    for (var k0 = split * p.k_chunk; k0 < k_end; k0 = k0 + BK) {
        load_x(m0, k0, tid);
        load_w(n0, k0, tid);
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
            let xa = kk * BM + ly;
            let wa = kk * BN + lx;
            let a0 = vec4<f32>(xs[xa], xs[xa + 16u], xs[xa + 32u], xs[xa + 48u]);
            let a1 = vec4<f32>(xs[xa + 64u], xs[xa + 80u], xs[xa + 96u], xs[xa + 112u]);
            let b0 = vec4<f32>(ws[wa], ws[wa + 16u], ws[wa + 32u], ws[wa + 48u]);
            let b1 = vec4<f32>(ws[wa + 64u], ws[wa + 80u], ws[wa + 96u], ws[wa + 112u]);
            c00 = fma(vec4<f32>(a0.x), b0, c00); c01 = fma(vec4<f32>(a0.x), b1, c01);
            c10 = fma(vec4<f32>(a0.y), b0, c10); c11 = fma(vec4<f32>(a0.y), b1, c11);
            c20 = fma(vec4<f32>(a0.z), b0, c20); c21 = fma(vec4<f32>(a0.z), b1, c21);
            c30 = fma(vec4<f32>(a0.w), b0, c30); c31 = fma(vec4<f32>(a0.w), b1, c31);
            c40 = fma(vec4<f32>(a1.x), b0, c40); c41 = fma(vec4<f32>(a1.x), b1, c41);
            c50 = fma(vec4<f32>(a1.y), b0, c50); c51 = fma(vec4<f32>(a1.y), b1, c51);
            c60 = fma(vec4<f32>(a1.z), b0, c60); c61 = fma(vec4<f32>(a1.z), b1, c61);
            c70 = fma(vec4<f32>(a1.w), b0, c70); c71 = fma(vec4<f32>(a1.w), b1, c71);
        }
        workgroupBarrier();
    }
    let r0 = m0 + ly;
    let col0 = n0 + lx;
    store(split, r0, col0, c00); store(split, r0, col0 + 64u, c01);
    store(split, r0 + 16u, col0, c10); store(split, r0 + 16u, col0 + 64u, c11);
    store(split, r0 + 32u, col0, c20); store(split, r0 + 32u, col0 + 64u, c21);
    store(split, r0 + 48u, col0, c30); store(split, r0 + 48u, col0 + 64u, c31);
    store(split, r0 + 64u, col0, c40); store(split, r0 + 64u, col0 + 64u, c41);
    store(split, r0 + 80u, col0, c50); store(split, r0 + 80u, col0 + 64u, c51);
    store(split, r0 + 96u, col0, c60); store(split, r0 + 96u, col0 + 64u, c61);
    store(split, r0 + 112u, col0, c70); store(split, r0 + 112u, col0 + 64u, c71);
}
