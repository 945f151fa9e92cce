// splitk_reduce.wgsl — the second pass of a split-k linear: adds the
// partial sums linear_tiled.wgsl wrote for each k-split, then the same
// epilogue as linear.wgsl: y = act(Σ_s part[s] + b) + r. Twin:
// src/kernels/linear.rs (the whole linear; this pass is its epilogue).
//
// Assembled as PREAMBLE + common.wgsl + splitk_reduce.wgsl (scalar
// PREAMBLE; ST is the residual's storage type, YT the output's).
//
// Bindings (group 0):
//   0  part: array<f32> read        (splits, m, n) partial sums
//   1  b:    array<f32> read        (n) bias
//   2  r:    array<ST>  read        (m, n) residual; a dummy when has_residual == 0
//   3  y:    array<YT>  read_write  (m, n) output
//   4  p:    uniform LinearParams   (common.wgsl's struct; m, n, act,
//                                    has_residual and splits are used)
//
// Dispatch: @workgroup_size(WG) (override, default 256), one invocation per
// output element; grid (min(g, 65535), ceil(g / 65535), 1) with
// g = ceil(m·n / WG); element = (wid.x + wid.y · nwg.x) · WG + lid.
// Sizes that are not tile multiples: elements ≥ m·n return at once. The
// splits are summed in order 0, 1, … (deterministic).

@group(0) @binding(0) var<storage, read> part: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> r: array<ST>;
@group(0) @binding(3) var<storage, read_write> y: array<YT>;
@group(0) @binding(4) var<uniform> p: LinearParams;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let total = p.m * p.n;
    let o = (wid.x + wid.y * nwg.x) * WG + lid;
    if (o >= total) {
        return;
    }
    var acc = 0.0;
    for (var s = 0u; s < p.splits; s = s + 1u) {
        acc = acc + part[s * total + o];
    }
    var v = apply_act(p.act, acc + b[o % p.n]);
    if (p.has_residual != 0u) {
        v = v + f32(r[o]);
    }
    y[o] = YT(v);
}
