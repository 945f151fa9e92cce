// layernorm.wgsl — row LayerNorm with an optional fused residual:
// out = LN(x + r) · γ + β, mean and biased variance in two passes, f32
// arithmetic. x and r are f32 whatever the storage type (the host keeps the
// residual sums that feed a LayerNorm in f32); out is ST (f32 or f16).
// Twin of src/kernels/layernorm.rs (normalize_row).
//
// Assembled as PREAMBLE + common.wgsl + layernorm.wgsl (the scalar PREAMBLE;
// only its ST is used here).
//
// Bindings (group 0):
//   0  x:     array<f32> read        (rows, cols)
//   1  r:     array<f32> read        (rows, cols) residual; a dummy when
//                                     has_residual == 0 (never read then)
//   2  gamma: array<f32> read        (cols)
//   3  beta:  array<f32> read        (cols)
//   4  out:   array<ST>  read_write  (rows, cols); must not alias x or r
//   5  p:     uniform LnParams
//
// struct LnParams { rows: u32, cols: u32, eps: f32, has_residual: u32 }
//   (16 bytes).
//
// Dispatch: one workgroup per row, @workgroup_size(WG) (override, default 64;
// any power of two from 1 to 256). Grid (min(rows, 65535), ceil(rows / 65535), 1);
// row = wid.x + wid.y · num_workgroups.x.
// Per row: pass 1 forms v = x (+ r) in f32 and tree-reduces Σv in workgroup
// memory → mean; pass 2 forms v again and reduces Σ(v − mean)² → var
// (biased); inv = 1 / sqrt(var + eps); pass 3 writes (v − mean) · inv · γ + β.
// v is recomputed from x and r rather than staged in out, so an f16 out never
// rounds it before the statistics.
//
// Sizes that are not tile multiples: any cols ≥ 1 (the strided loops stop at
// cols; invocations with lid ≥ cols contribute 0 to the sums). Workgroups
// whose row ≥ rows (the padding of the 2-D grid) return at once; the row is a
// function of the workgroup id only, so that return is uniform across the
// workgroup and every barrier is reached by all or none of its invocations.

struct LnParams {
    rows: u32,
    cols: u32,
    eps: f32,
    has_residual: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> r: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<ST>;
@group(0) @binding(5) var<uniform> p: LnParams;

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

// x + r (or x) at element o, in f32.
fn input(o: u32) -> f32 {
    var v = x[o];
    if (p.has_residual != 0u) {
        v = v + r[o];
    }
    return v;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let cols = p.cols;
    let base = row * cols;
    let n = f32(cols);

    var part = 0.0;
    for (var i = lid; i < cols; i = i + WG) {
        part = part + input(base + i);
    }
    let mean = wg_sum(lid, part) / n;

    part = 0.0;
    for (var i = lid; i < cols; i = i + WG) {
        let d = input(base + i) - mean;
        part = part + d * d;
    }
    let variance = wg_sum(lid, part) / n;
    let inv = 1.0 / sqrt(variance + p.eps);

    for (var i = lid; i < cols; i = i + WG) {
        out[base + i] = ST((input(base + i) - mean) * inv * gamma[i] + beta[i]);
    }
}
