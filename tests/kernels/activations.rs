//! The activations (`src/kernels/act.rs`, `common.wgsl`'s `act`): the twin
//! against f64 formulas and published values. The WGSL side runs in every
//! linear test (each activation with and without residual).

use bert_wgpu::graph::Act;
use bert_wgpu::kernels::act::{apply, TANH_CLAMP};

use crate::support::{ATOL, RTOL};

/// Activations against f64 formulas written out here and published values.
#[test]
fn activation_spot_values() {
    let erf_gelu = |x: f64| 0.5 * x * (1.0 + libm::erf(x / 2f64.sqrt()));
    let tanh_gelu = |x: f64| {
        0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
    };
    let silu = |x: f64| x / (1.0 + (-x).exp());
    // Published values (scipy / torch, f64): Φ(1) = 0.8413447460685429.
    let close = |got: f32, want: f64, what: &str| {
        let err = (got as f64 - want).abs();
        assert!(
            err <= 1e-6 + 1e-5 * want.abs(),
            "{what}: got {got}, want {want} (|err| {err:e})"
        );
    };
    close(apply(Act::Gelu, 1.0), 0.841_344_746_068_542_9, "gelu(1)");
    close(apply(Act::Gelu, -3.0), -0.004_049_694_095_7, "gelu(-3)");
    close(
        apply(Act::GeluTanh, 1.0),
        0.841_191_990_607_477_2,
        "gelu_tanh(1)",
    );
    close(
        apply(Act::Gelu, 1.0),
        erf_gelu(1.0),
        "gelu(1) vs erf formula",
    );
    close(
        apply(Act::Gelu, -3.0),
        erf_gelu(-3.0),
        "gelu(-3) vs erf formula",
    );
    close(
        apply(Act::GeluTanh, 1.0),
        tanh_gelu(1.0),
        "gelu_tanh(1) vs formula",
    );
    let g = apply(Act::Gelu, -20.0);
    assert!(g <= 0.0 && g > -1e-30, "gelu(-20) = {g}");
    assert_eq!(apply(Act::Relu, -0.5), 0.0);
    assert_eq!(apply(Act::Relu, 0.75), 0.75);
    assert_eq!(apply(Act::Identity, -0.3), -0.3);
    let s = apply(Act::Silu, -100.0);
    assert!(s.is_finite() && s <= 0.0 && s > -1e-30, "silu(-100) = {s}");
    assert!(apply(Act::Silu, 100.0) == 100.0, "silu(100)");
    assert_eq!(apply(Act::Tanh, 1e30), 1.0, "tanh clamp");
    assert_eq!(apply(Act::Tanh, -1e30), -1.0, "tanh clamp");
    assert_eq!(apply(Act::Tanh, TANH_CLAMP), 1.0, "tanh(clamp) is 1 in f32");
    for act in [Act::Gelu, Act::GeluTanh, Act::Silu, Act::Tanh] {
        for x in [f32::MAX, f32::MIN, 1e30, -1e30, 88.0, -88.0, 1e-30, -1e-30] {
            let y = apply(act, x);
            assert!(!y.is_nan(), "{act:?}({x}) is NaN");
        }
    }
    // A dense grid against the f64 formulas.
    let mut worst = [0.0f64; 4];
    for i in -2000..=2000 {
        let x = i as f32 * 0.005 + 0.001;
        let xd = x as f64;
        let cases = [
            (Act::Gelu, erf_gelu(xd)),
            (Act::GeluTanh, tanh_gelu(xd)),
            (Act::Silu, silu(xd)),
            (Act::Tanh, xd.tanh()),
        ];
        for (j, (act, want)) in cases.into_iter().enumerate() {
            let got = apply(act, x) as f64;
            let err = (got - want).abs();
            worst[j] = worst[j].max(err);
            assert!(
                err <= ATOL as f64 + RTOL as f64 * want.abs(),
                "{act:?}({x}): got {got}, f64 formula {want}"
            );
        }
    }
    println!("activations on [-10, 10]: max |err| gelu {:.2e}, gelu_tanh {:.2e}, silu {:.2e}, tanh {:.2e}", worst[0], worst[1], worst[2], worst[3]);
}
