// attention.wgsl — fused multi-head self-attention with an online softmax:
// out_h = softmax(Q_h K_hᵀ · scale + mask) · V_h per (batch, head).
// Twin of src/kernels/attention.rs (same math up to rounding).
//
// Assembled as PREAMBLE + common.wgsl + attention.wgsl. The PREAMBLE picks the
// storage type ST (f32 or f16) of qkv and out, and the load width:
// VS = vec4<ST> / VT = vec4<f32>, VW = 4 when head_dim % 4 == 0 (the host
// checks; then hidden = heads·head_dim is a multiple of 4 too), else VS = ST,
// VT = f32, VW = 1. Loads convert to f32: scores, softmax and the output
// accumulator are f32 whatever ST is. Indices into qkv are in VS units; the
// mask is always f32.
//
// Bindings (group 0):
//   0  qkv:  array<VS>  read        (batch·seq, 3·hidden), columns [Q | K | V];
//                                    head h owns columns h·d .. (h+1)·d of each
//                                    third (hidden = heads·d, d = head_dim)
//   1  mask: array<f32> read        (batch·seq) additive key mask: 0 or F32_MIN
//   2  out:  array<ST>  read_write  (batch·seq, hidden); head h writes columns
//                                    h·d .. (h+1)·d
//   3  p:    uniform AttnParams
//
// struct AttnParams (common.wgsl) { batch, seq, heads, head_dim, scale,
//   3 × padding } (32 bytes; scale = 1/√d).
//
// Dispatch: @workgroup_size(WG) (override, default 64); grid
// (ceil(seq / WG), heads, batch). Invocation gid = (query position, head,
// batch). It keeps its query row and a running output accumulator of d values
// in private arrays sized for d ≤ MAX_D = 128, and walks the seq keys in
// blocks of BK = 8: for the block's keys j
//   s_j = max(dot(q, k_j)·scale + mask[b·seq + j], F32_MIN)
//   m'  = max(m, max_j s_j);  c = e^(m − m');  w_j = e^(s_j − m')
//   l   = l·c + Σ_j w_j;  acc = acc·c + Σ_j w_j·v_j;  m = m'
// starting from m = F32_MIN, l = 0, acc = 0; finally out = acc / l.
// (Blocking reads q and updates acc once per BK keys instead of once per
// key: ~1.6× faster on llvmpipe than the per-key recurrence.)
// Masked keys: s = dot·scale + F32_MIN rounds to F32_MIN for ordinary dots
// (and the max() clamps the rare overflow to -inf back to F32_MIN), so for a
// fully masked row every block has s_j == m' == F32_MIN, c = w_j = e^0 = 1,
// and out is the uniform average of V (as HF), never NaN. Once an unmasked
// key is seen, masked keys get e^(F32_MIN − m') = 0. l ≥ 1 always (the key
// attaining the max contributes e^0), so the final division is safe.
//
// No workgroup memory and no barriers: all queries of a workgroup share
// (head, batch) and walk the keys in lockstep, so every invocation reads the
// same K/V address at the same time (a broadcast load from cache on GPUs;
// plain cached loads on llvmpipe, where barriers are expensive).
//
// Sizes that are not tile multiples: any seq ≥ 1; query positions ≥ seq (the
// last workgroup's tail) return at once without loads or stores (no barriers
// to keep uniform). The last key block, when seq % BK != 0, clamps its key
// index to seq − 1 for the loads and gives those keys weight 0 and no part
// in the max. head_dim ≤ 128 is required (the host must check); a larger
// head_dim is clamped to MAX_D so the private arrays are never indexed out of
// bounds (its output would be incomplete, never out of bounds).

@group(0) @binding(0) var<storage, read> qkv: array<VS>;
@group(0) @binding(1) var<storage, read> mask: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<ST>;
@group(0) @binding(3) var<uniform> p: AttnParams;

override WG: u32 = 64u;

const MAX_D: u32 = 128u;
const MAX_DV: u32 = MAX_D / VW;
// Keys per block of the online softmax (inner loops over it have a constant
// trip count, so the per-key arrays below live in registers).
const BK: u32 = 8u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let qi = gid.x;
    let h = gid.y;
    let bi = gid.z;
    if (qi >= p.seq || h >= p.heads || bi >= p.batch) {
        return;
    }
    let dv_full = p.head_dim / VW;          // VS elements per head row
    let dv = min(dv_full, MAX_DV);
    let hidden_v = p.heads * dv_full;       // VS elements per third of a qkv row
    let row_v = 3u * hidden_v;              // VS elements per qkv row
    let head_v = h * dv_full;
    let tok0 = bi * p.seq;

    var q: array<VT, MAX_DV>;
    var acc: array<VT, MAX_DV>;
    let qbase = (tok0 + qi) * row_v + head_v;
    for (var t = 0u; t < dv; t = t + 1u) {
        q[t] = VT(qkv[qbase + t]);
        acc[t] = VT(0.0);
    }

    var m = F32_MIN;   // running max of the scores
    var l = 0.0;       // running sum of e^(s - m)
    let last = p.seq - 1u;
    for (var j0 = 0u; j0 < p.seq; j0 = j0 + BK) {
        // Key rows of this block; keys past seq re-read the last key (in
        // bounds) and get weight 0 below.
        var kb: array<u32, BK>;
        for (var jj = 0u; jj < BK; jj = jj + 1u) {
            kb[jj] = (tok0 + min(j0 + jj, last)) * row_v + hidden_v + head_v;
        }
        // Scores: BK dot products, q[t] read once per block.
        var part: array<VT, BK>;
        for (var jj = 0u; jj < BK; jj = jj + 1u) {
            part[jj] = VT(0.0);
        }
        for (var t = 0u; t < dv; t = t + 1u) {
            let qt = q[t];
            for (var jj = 0u; jj < BK; jj = jj + 1u) {
                part[jj] = fma(qt, VT(qkv[kb[jj] + t]), part[jj]);
            }
        }
        var sw: array<f32, BK>;   // scores, then weights
        var bmax = F32_MIN;
        for (var jj = 0u; jj < BK; jj = jj + 1u) {
            let j = min(j0 + jj, last);
            let s = max(vdot(part[jj], VT(1.0)) * p.scale + mask[tok0 + j], F32_MIN);
            sw[jj] = s;
            if (j0 + jj < p.seq) {
                bmax = max(bmax, s);
            }
        }
        // Online softmax update for the block.
        let m_new = max(m, bmax);
        let corr = exp(m - m_new);   // 1 if the max did not grow
        var wsum = 0.0;
        for (var jj = 0u; jj < BK; jj = jj + 1u) {
            let wj = select(0.0, exp(sw[jj] - m_new), j0 + jj < p.seq);
            sw[jj] = wj;
            wsum = wsum + wj;
        }
        l = l * corr + wsum;
        m = m_new;
        // acc = acc·corr + Σ_j w_j v_j, acc[t] read/written once per block.
        for (var t = 0u; t < dv; t = t + 1u) {
            var a = acc[t] * corr;
            for (var jj = 0u; jj < BK; jj = jj + 1u) {
                a = fma(VT(sw[jj]), VT(qkv[kb[jj] + hidden_v + t]), a);
            }
            acc[t] = a;
        }
    }

    let inv = 1.0 / l;
    let obase = (tok0 + qi) * (hidden_v * VW) + head_v * VW;
    for (var t = 0u; t < dv; t = t + 1u) {
        // vec4<f32>(v) is the identity for vec4 and a splat for f32, so
        // component c < VW is valid in both preamble variants.
        let v4 = vec4<f32>(acc[t] * inv);
        for (var c = 0u; c < VW; c = c + 1u) {
            out[obase + t * VW + c] = ST(v4[c]);
        }
    }
}
