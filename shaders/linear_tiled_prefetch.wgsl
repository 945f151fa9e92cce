// linear_tiled_prefetch.wgsl — Y = act(X · Wᵀ + b) + R, 128 × 128 workgroup
// tiles like linear_tiled.wgsl (same contract, bindings, params, grid and
// split-k), with two changes aimed at real GPUs (twin: src/kernels/linear.rs):
//
// - Vec4 workgroup reads. Each invocation owns 4 adjacent rows and 4 adjacent
//   columns per 64-block, so one k step reads its 8 x and 8 w values as 4
//   vec4s (linear_tiled.wgsl reads 16 scalars): 4 shared-memory loads per 64
//   FMAs instead of 16, which on NVIDIA is the difference between load-issue
//   bound and FMA bound.
// - Register prefetch. The next k slice's global loads are issued into
//   registers before the current slice's FMAs, so their latency overlaps the
//   arithmetic instead of stalling between two barriers.
//
// Opt-in (`BERT_WGPU_GEMM_TILE=prefetch`) until measured on a real GPU; on
// llvmpipe the host runs linear.wgsl anyway.
//
// Assembled as PREAMBLE(vec4) + common.wgsl + linear_tiled_prefetch.wgsl (ST =
// f32 or f16 storage; tiles and accumulators are f32). The host sends a layer
// here only when k % 4 == 0 and x_row_stride % 4 == 0.
//
// Bindings (group 0), as linear_tiled.wgsl:
//   0  x: array<VS>  read        rows m, row i at element i·x_row_stride, k values
//   1  w: array<VS>  read        (n, k) row-major, HF's (out_features, in_features)
//   2  b: array<f32> read        (n)
//   3  r: array<ST>  read        (m, n) residual, dummy when has_residual == 0
//   4  y: array<YT>  read_write  (m, n); YT = ST or f32, as linear.wgsl
//   5  p: uniform LinearParams   (common.wgsl)
//   6  part: array<f32> read_write  (splits, m, n) split-k partial sums; a
//                                 dummy when splits == 1 (never touched)
//
// Dispatch: @workgroup_size(16, 16); grid (ceil(n / 128), ceil(m / 128),
// splits); workgroup z sums k in [z·k_chunk, min(k, (z+1)·k_chunk)) and,
// when splits > 1, stores raw sums to part[z] (splitk_reduce.wgsl applies
// the epilogue); otherwise the epilogue runs here.
// Invocation (lx, ly) owns rows m0 + 4·ly + i and m0 + 64 + 4·ly + i, and
// columns n0 + 4·lx + j and n0 + 64 + 4·lx + j (i, j < 4): 64 outputs in 16
// named vec4 accumulators (a private array indexed in loops would live in
// local memory, see linear_tiled.wgsl). Per BK = 16 slice of k the
// workgroup stages a 128 × 16 slice of x and of w in workgroup memory,
// k-major, 4 rows (columns) per vec4.
//
// Sizes that are not tile multiples: loads outside m, n or k read zeros;
// stores are guarded by row < m && col < n. Every invocation reaches every
// barrier (the loop bounds and the prefetch condition are uniform).

@group(0) @binding(0) var<storage, read> x: array<VS>;
@group(0) @binding(1) var<storage, read> w: array<VS>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> r: array<ST>;
@group(0) @binding(4) var<storage, read_write> y: array<YT>;
@group(0) @binding(5) var<uniform> p: LinearParams;
@group(0) @binding(6) var<storage, read_write> part: array<f32>;

const BK: u32 = 16u;

// xs[kk · 32 + q] holds x rows m0 + 4q .. m0 + 4q + 3 at k = k0 + kk; ws the
// same for w's rows (Y's columns).
var<workgroup> xs: array<vec4<f32>, 512>; // BK · 128 / 4
var<workgroup> ws: array<vec4<f32>, 512>;

// Slot s < 512 of a 128 × 16 slice: row s / 4, k quad s % 4 (4 neighbouring
// invocations read 64 contiguous bytes of one row).
fn fetch_x(m0: u32, k0: u32, s: u32) -> vec4<f32> {
    let gm = m0 + (s >> 2u);
    let gk = k0 + (s & 3u) * 4u;
    if (gm < p.m && gk < p.k) {
        return vec4<f32>(x[(gm * p.x_row_stride + gk) >> 2u]);
    }
    return vec4<f32>(0.0);
}

fn fetch_w(n0: u32, k0: u32, s: u32) -> vec4<f32> {
    let gn = n0 + (s >> 2u);
    let gk = k0 + (s & 3u) * 4u;
    if (gn < p.n && gk < p.k) {
        return vec4<f32>(w[(gn * p.k + gk) >> 2u]);
    }
    return vec4<f32>(0.0);
}

// Writes the 4 k values v of slot s into the k-major tile (component
// row % 4 of vec4 row / 4 at each of the 4 k).
fn put_x(s: u32, v: vec4<f32>) {
    let row = s >> 2u;
    let base = (s & 3u) * 4u * 32u + (row >> 2u);
    let c = row & 3u;
    xs[base][c] = v.x;
    xs[base + 32u][c] = v.y;
    xs[base + 64u][c] = v.z;
    xs[base + 96u][c] = v.w;
}

fn put_w(s: u32, v: vec4<f32>) {
    let col = s >> 2u;
    let base = (s & 3u) * 4u * 32u + (col >> 2u);
    let c = col & 3u;
    ws[base][c] = v.x;
    ws[base + 32u][c] = v.y;
    ws[base + 64u][c] = v.z;
    ws[base + 96u][c] = v.w;
}

// Columns col0 .. col0 + 3 of one row.
fn store(split: u32, row: u32, col0: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        let col = col0 + j;
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
    let m0 = wid.y * 128u;
    let n0 = wid.x * 128u;
    let ly = lid.y;
    let lx = lid.x;
    // cIJ: row 4·ly + I (I < 4) or 64 + 4·ly + (I − 4) (I ≥ 4); columns
    // 4·lx .. 4·lx + 3 (J = 0) or 64 + 4·lx .. (J = 1).
    var c00 = vec4<f32>(0.0); var c01 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0); var c21 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0); var c31 = vec4<f32>(0.0);
    var c40 = vec4<f32>(0.0); var c41 = vec4<f32>(0.0);
    var c50 = vec4<f32>(0.0); var c51 = vec4<f32>(0.0);
    var c60 = vec4<f32>(0.0); var c61 = vec4<f32>(0.0);
    var c70 = vec4<f32>(0.0); var c71 = vec4<f32>(0.0);
    let split = wid.z;
    let k_begin = split * p.k_chunk;
    let k_end = min(p.k, (split + 1u) * p.k_chunk);
    // The first slice, fetched before the loop; each iteration publishes the
    // fetched slice and fetches the next before computing.
    var px0 = fetch_x(m0, k_begin, tid);
    var px1 = fetch_x(m0, k_begin, tid + 256u);
    var pw0 = fetch_w(n0, k_begin, tid);
    var pw1 = fetch_w(n0, k_begin, tid + 256u);
    for (var k0 = k_begin; k0 < k_end; k0 = k0 + BK) {
        put_x(tid, px0);
        put_x(tid + 256u, px1);
        put_w(tid, pw0);
        put_w(tid + 256u, pw1);
        workgroupBarrier();
        let k1 = k0 + BK;
        if (k1 < k_end) {
            px0 = fetch_x(m0, k1, tid);
            px1 = fetch_x(m0, k1, tid + 256u);
            pw0 = fetch_w(n0, k1, tid);
            pw1 = fetch_w(n0, k1, tid + 256u);
        }
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
            let a0 = xs[kk * 32u + ly];
            let a1 = xs[kk * 32u + 16u + ly];
            let b0 = ws[kk * 32u + lx];
            let b1 = ws[kk * 32u + 16u + lx];
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
    let r0 = m0 + 4u * ly;
    let r1 = m0 + 64u + 4u * ly;
    let col0 = n0 + 4u * lx;
    let col1 = n0 + 64u + 4u * lx;
    store(split, r0, col0, c00); store(split, r0, col1, c01);
    store(split, r0 + 1u, col0, c10); store(split, r0 + 1u, col1, c11);
    store(split, r0 + 2u, col0, c20); store(split, r0 + 2u, col1, c21);
    store(split, r0 + 3u, col0, c30); store(split, r0 + 3u, col1, c31);
    store(split, r1, col0, c40); store(split, r1, col1, c41);
    store(split, r1 + 1u, col0, c50); store(split, r1 + 1u, col1, c51);
    store(split, r1 + 2u, col0, c60); store(split, r1 + 2u, col1, c61);
    store(split, r1 + 3u, col0, c70); store(split, r1 + 3u, col1, c71);
}
