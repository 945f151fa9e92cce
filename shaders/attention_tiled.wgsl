// attention_tiled.wgsl — multi-head self-attention as a workgroup-tiled flash
// kernel: out_h = softmax(Q_h K_hᵀ · scale + mask) · V_h per (batch, head).
// Same contract, bindings and AttnParams as attention.wgsl (the one query per
// invocation kernel); twin: src/kernels/attention.rs.
//
// Why a second kernel: attention.wgsl keeps a query row and its output in
// private arrays indexed in loops. NVIDIA's compiler places those in local
// memory, and every invocation walks all keys serially, so its time is the
// same at batch 1 as at batch 32 (about 1.1 ms per bert-base layer on an
// H200). Here a workgroup shares each K/V block through workgroup memory and
// spreads the scores and the output over 128 invocations, with every
// per-invocation value in a named register.
//
// Assembled as PREAMBLE + common.wgsl + attention_tiled.wgsl with the vec4
// preamble only (VS = vec4<ST>, VT = vec4<f32>, VW = 4): the host runs it
// when head_dim % 4 == 0 and head_dim ≤ 128, and when the adapter's
// max_compute_workgroup_storage_size holds the workgroup arrays below
// (26,560 bytes, `ATTENTION_TILED_SHARED_BYTES` on the host; a test checks
// the two agree). Loads convert to f32; scores, softmax and the output
// accumulators are f32 whatever ST is.
//
// Bindings (group 0):
//   0  qkv:  array<VS>  read        (batch·seq, 3·hidden), columns [Q | K | V];
//                                    head h owns columns h·d .. (h+1)·d of each
//                                    third (hidden = heads·d, d = head_dim)
//   1  mask: array<f32> read        (batch·seq) additive key mask: 0 or F32_MIN
//   2  out:  array<ST>  read_write  (batch·seq, hidden)
//   3  p:    uniform AttnParams     (as attention.wgsl; scale = 1/√d)
//
// Dispatch: @workgroup_size(128); grid (ceil(seq / BQ), heads, batch) with
// BQ = 16. Workgroup (x, h, b) owns queries x·BQ .. x·BQ + BQ of head h of
// sequence b. With dv = d / 4 vec4 columns:
//   1. Q tile (BQ, dv) → qs.
//   2. For each block of BK = 16 keys:
//      a. K and V tiles (BK, dv) → ks, vs (keys past seq are zeros);
//      b. scores: invocation t computes keys t % BK for queries t / BK and
//         t / BK + 8: s = max(dot(q, k)·scale + mask[key], F32_MIN) → ps;
//      c. invocation r < BQ runs the online-softmax step of row r:
//         m' = max(m, max_j s_j), c = e^(m − m'), w_j = e^(s_j − m') (0 for
//         keys past seq), l = l·c + Σ_j w_j; the weights replace the scores
//         in ps, c goes to row_corr;
//      d. the output: invocation t owns column t % dv of rows
//         t / dv + i·(128 / dv), i < 4 (acc0..acc3), and does
//         acc = acc·c_row + Σ_j w_row,j · v_j.
//   3. out = acc / l for rows < seq.
// Four barriers per key block; all of them in uniform control flow (the
// loop bound is the uniform seq).
// Masked keys and fully masked rows behave as in attention.wgsl: starting
// from m = F32_MIN and l = 0, a fully masked row has every s_j == F32_MIN,
// so c = w_j = 1 and out is the mean of V (as HF), never NaN; l ≥ 1.
//
// Sizes that are not tile multiples: any seq ≥ 1 (query rows past seq load
// zeros and store nothing; key rows past seq load zeros and get weight 0);
// any head_dim multiple of 4 up to 128 (dv ≤ 32, so 128 / dv ≥ 4 rows per
// pass and 4 passes cover BQ = 16; when dv does not divide 128 the last
// 128 mod dv invocations own no output).

@group(0) @binding(0) var<storage, read> qkv: array<VS>;
@group(0) @binding(1) var<storage, read> mask: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<ST>;
@group(0) @binding(3) var<uniform> p: AttnParams;

const WG: u32 = 128u;
// Queries per workgroup, keys per block.
const BQ: u32 = 16u;
const BK: u32 = 16u;
const MAX_DV: u32 = 32u;   // head_dim ≤ 128 in vec4 columns
// Row stride of the tiles: one vec4 of padding, so the 16 key rows the
// score step reads at once do not all start in the same memory bank.
const RS: u32 = MAX_DV + 1u;

var<workgroup> qs: array<VT, BQ * RS>;    // (BQ, RS)
var<workgroup> ks: array<VT, BK * RS>;    // (BK, RS)
var<workgroup> vs: array<VT, BK * RS>;    // (BK, RS)
var<workgroup> ps: array<f32, BQ * BK>;   // (BQ, BK) scores, then weights
var<workgroup> row_m: array<f32, BQ>;      // (BQ) running max
var<workgroup> row_l: array<f32, BQ>;      // (BQ) running sum of weights
var<workgroup> row_corr: array<f32, BQ>;   // (BQ) e^(m_old − m_new) of the block

// acc·c_r + Σ_j w_rj · v_j for output row r (of the tile) and column c.
fn pv(acc: VT, r: u32, c: u32) -> VT {
    if (r >= BQ) {
        return acc;
    }
    var a = acc * row_corr[r];
    for (var j = 0u; j < BK; j = j + 1u) {
        a = fma(VT(ps[r * BK + j]), vs[j * RS + c], a);
    }
    return a;
}

// Writes output row r (of the tile), column c, when the query exists.
fn store(acc: VT, r: u32, c: u32, q0: u32, tok0: u32, hidden_v: u32, head_v: u32) {
    if (r >= BQ || q0 + r >= p.seq) {
        return;
    }
    let v = acc / row_l[r];
    let base = ((tok0 + q0 + r) * hidden_v + head_v + c) * 4u;
    out[base] = ST(v.x);
    out[base + 1u] = ST(v.y);
    out[base + 2u] = ST(v.z);
    out[base + 3u] = ST(v.w);
}

@compute @workgroup_size(128)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let q0 = wid.x * BQ;
    let h = wid.y;
    let bi = wid.z;
    // The host guarantees head_dim ≤ 128; the clamp keeps the tiles in
    // bounds regardless.
    let dv_full = p.head_dim / VW;
    let dv = min(dv_full, MAX_DV);
    let hidden_v = p.heads * dv_full;   // vec4s per third of a qkv row
    let row_v = 3u * hidden_v;          // vec4s per qkv row
    let head_v = h * dv_full;
    let tok0 = bi * p.seq;

    // 1. Q tile; rows past seq are zeros (their results are never stored).
    for (var e = t; e < BQ * dv; e = e + WG) {
        let r = e / dv;
        let c = e % dv;
        var v = VT(0.0);
        if (q0 + r < p.seq) {
            v = VT(qkv[(tok0 + q0 + r) * row_v + head_v + c]);
        }
        qs[r * RS + c] = v;
    }
    if (t < BQ) {
        row_m[t] = F32_MIN;
        row_l[t] = 0.0;
    }

    // Score step: key sk of the block for queries sq and sq + 8.
    let sk = t % BK;
    let sq = t / BK;
    // Output step: column oc of rows or0 + i·opass; invocations past
    // opass·dv own nothing.
    let opass = WG / dv;
    let oc = t % dv;
    let or0 = select(BQ, t / dv, t < opass * dv);
    var acc0 = VT(0.0);
    var acc1 = VT(0.0);
    var acc2 = VT(0.0);
    var acc3 = VT(0.0);

    let last = p.seq - 1u;
    for (var k0 = 0u; k0 < p.seq; k0 = k0 + BK) {
        // 2a. K and V tiles (also publishes qs and the row state on the
        // first block, through the barrier below).
        for (var e = t; e < BK * dv; e = e + WG) {
            let r = e / dv;
            let c = e % dv;
            var kv = VT(0.0);
            var vv = VT(0.0);
            if (k0 + r < p.seq) {
                let base = (tok0 + k0 + r) * row_v + head_v + c;
                kv = VT(qkv[base + hidden_v]);
                vv = VT(qkv[base + 2u * hidden_v]);
            }
            ks[r * RS + c] = kv;
            vs[r * RS + c] = vv;
        }
        workgroupBarrier();

        // 2b. Scores.
        var s0 = VT(0.0);
        var s1 = VT(0.0);
        for (var c = 0u; c < dv; c = c + 1u) {
            let kc = ks[sk * RS + c];
            s0 = fma(qs[sq * RS + c], kc, s0);
            s1 = fma(qs[(sq + 8u) * RS + c], kc, s1);
        }
        let mk = mask[tok0 + min(k0 + sk, last)];
        ps[sq * BK + sk] = max(vdot(s0, VT(1.0)) * p.scale + mk, F32_MIN);
        ps[(sq + 8u) * BK + sk] = max(vdot(s1, VT(1.0)) * p.scale + mk, F32_MIN);
        workgroupBarrier();

        // 2c. Online softmax, one row per invocation.
        if (t < BQ) {
            let nk = min(BK, p.seq - k0);
            let m_old = row_m[t];
            var bmax = F32_MIN;
            for (var j = 0u; j < nk; j = j + 1u) {
                bmax = max(bmax, ps[t * BK + j]);
            }
            let m_new = max(m_old, bmax);
            let corr = exp(m_old - m_new);
            var wsum = 0.0;
            for (var j = 0u; j < BK; j = j + 1u) {
                let w = select(0.0, exp(ps[t * BK + j] - m_new), j < nk);
                ps[t * BK + j] = w;
                wsum = wsum + w;
            }
            row_m[t] = m_new;
            row_l[t] = row_l[t] * corr + wsum;
            row_corr[t] = corr;
        }
        workgroupBarrier();

        // 2d. Output accumulators.
        acc0 = pv(acc0, or0, oc);
        acc1 = pv(acc1, or0 + opass, oc);
        acc2 = pv(acc2, or0 + 2u * opass, oc);
        acc3 = pv(acc3, or0 + 3u * opass, oc);
        // ks, vs and ps are overwritten by the next block.
        workgroupBarrier();
    }

    // 3. out = acc / l.
    store(acc0, or0, oc, q0, tok0, hidden_v, head_v);
    store(acc1, or0 + opass, oc, q0, tok0, hidden_v, head_v);
    store(acc2, or0 + 2u * opass, oc, q0, tok0, hidden_v, head_v);
    store(acc3, or0 + 3u * opass, oc, q0, tok0, hidden_v, head_v);
}
