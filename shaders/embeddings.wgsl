// embeddings.wgsl — BERT-family embeddings: gather + sum + LayerNorm,
// out[t] = LN(word[ids[t]] + token_type[types[t]] + position[positions[t]]) · γ + β.
// Twin of src/kernels/embeddings.rs.
//
// Assembled as PREAMBLE + common.wgsl + embeddings.wgsl (the scalar PREAMBLE;
// only its storage type ST, f32 or f16, of the tables and out is used here;
// sums and statistics are f32).
//
// Bindings (group 0):
//   0  ids:        array<u32> read        (batch·seq) word ids
//   1  types:      array<u32> read        (batch·seq) token type ids
//   2  positions:  array<u32> read        (batch·seq) position ids (arange(seq)
//                                         per row for BERT; RoBERTa's come
//                                         from the ids, made on the host)
//   3  word:       array<ST>  read        (vocab, hidden)
//   4  position:   array<ST>  read        (max_pos, hidden)
//   5  token_type: array<ST>  read        (type_vocab, hidden); one zero row
//                                         for models without token types
//   6  gamma:      array<f32> read        (hidden)
//   7  beta:       array<f32> read        (hidden)
//   8  out:        array<ST>  read_write  (batch·seq, hidden)
//   9  p:          uniform EmbParams
//
// struct EmbParams { tokens: u32, seq: u32, hidden: u32, eps: f32, vocab: u32,
//                    max_pos: u32, type_vocab: u32, _pad0: u32 }  (32 bytes)
//
// Dispatch: one workgroup per token, @workgroup_size(WG) (override, default
// 64; any power of two from 1 to 256). Grid (min(tokens, 65535),
// ceil(tokens / 65535), 1); token = wid.x + wid.y · num_workgroups.x.
// Pass 1 gathers and sums v = (w + t) + p in that order (f32) and
// tree-reduces Σv → mean; pass 2 gathers v again and reduces Σ(v − mean)² →
// biased var; pass 3 writes (v − mean) · 1/sqrt(var + eps) · γ + β — the same
// LayerNorm as layernorm.wgsl. Re-gathering instead of staging v in out keeps
// an f16 out from rounding v before the statistics.
//
// Sizes that are not tile multiples: any hidden ≥ 1 (strided loops stop at
// hidden; idle invocations contribute 0). Workgroups whose token ≥ tokens
// return at once; the token is a function of the workgroup id only, so that
// return is uniform and barriers stay uniform. Ids, types and positions were
// validated on the CPU, but are still clamped to their table sizes
// (min(id, vocab − 1), ...) so a bad id can never read out of bounds.

struct EmbParams {
    tokens: u32,
    seq: u32,
    hidden: u32,
    eps: f32,
    vocab: u32,
    max_pos: u32,
    type_vocab: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> types: array<u32>;
@group(0) @binding(2) var<storage, read> positions: array<u32>;
@group(0) @binding(3) var<storage, read> word: array<ST>;
@group(0) @binding(4) var<storage, read> position: array<ST>;
@group(0) @binding(5) var<storage, read> token_type: array<ST>;
@group(0) @binding(6) var<storage, read> gamma: array<f32>;
@group(0) @binding(7) var<storage, read> beta: array<f32>;
@group(0) @binding(8) var<storage, read_write> out: array<ST>;
@group(0) @binding(9) var<uniform> p: EmbParams;

override WG: u32 = 64u;

const MAX_WG: u32 = 256u;
var<workgroup> red: array<f32, MAX_WG>;

// Sums `v` over the workgroup; every invocation gets the total. Must be
// called in uniform control flow. Ends with a barrier so `red` may be reused.
fn wg_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

// (word + token_type) + position at column i, in f32 (the CPU twin's order).
fn gathered(wbase: u32, tbase: u32, pbase: u32, i: u32) -> f32 {
    return (f32(word[wbase + i]) + f32(token_type[tbase + i])) + f32(position[pbase + i]);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tok = wid.x + wid.y * nwg.x;
    if (tok >= p.tokens) {
        return;
    }
    let hidden = p.hidden;
    let id = min(ids[tok], max(p.vocab, 1u) - 1u);
    let ty = min(types[tok], max(p.type_vocab, 1u) - 1u);
    let pos = min(positions[tok], max(p.max_pos, 1u) - 1u);
    let wbase = id * hidden;
    let tbase = ty * hidden;
    let pbase = pos * hidden;
    let base = tok * hidden;
    let n = f32(hidden);

    var part = 0.0;
    for (var i = lid; i < hidden; i = i + WG) {
        part = part + gathered(wbase, tbase, pbase, i);
    }
    let mean = wg_sum(lid, part) / n;

    part = 0.0;
    for (var i = lid; i < hidden; i = i + WG) {
        let d = gathered(wbase, tbase, pbase, i) - mean;
        part = part + d * d;
    }
    let variance = wg_sum(lid, part) / n;
    let inv = 1.0 / sqrt(variance + p.eps);

    for (var i = lid; i < hidden; i = i + WG) {
        let v = gathered(wbase, tbase, pbase, i);
        out[base + i] = ST((v - mean) * inv * gamma[i] + beta[i]);
    }
}
