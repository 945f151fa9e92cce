//! Kernel choices and the tuning policy as typed options: every setting's
//! values, the precedence (option → `BERT_WGPU_*` variable → tuning file →
//! built-in), unknown values as errors naming the variable and what it
//! takes, and a `LoadOptions` choice reaching the kernels a forward runs.
//! The environment is injected (no test here mutates the process's); the
//! binary is run for the process-environment path.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bert_wgpu::gpu::options::resolve_timeout;
use bert_wgpu::gpu::{
    AttentionChoice, GemmChoice, KernelChoices, KernelKind, LinearVariant, TileChoice, TunePolicy,
};
use bert_wgpu::{bench, DType, Device, Error, LoadOptions};

/// An environment holding exactly `vars`.
fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

/// The `Error::Setting` of `r`, as (name, value, allowed).
fn setting<T: std::fmt::Debug>(r: bert_wgpu::Result<T>) -> (String, String, String) {
    match r {
        Err(Error::Setting {
            name,
            value,
            allowed,
        }) => (name, value, allowed),
        other => panic!("expected a setting error, got {other:?}"),
    }
}

#[test]
fn every_choice_parses_its_own_names_and_only_those() {
    for g in GemmChoice::ALL {
        assert_eq!(g.name().parse::<GemmChoice>().unwrap(), *g);
    }
    for t in TileChoice::ALL {
        assert_eq!(t.to_string().parse::<TileChoice>().unwrap(), *t);
    }
    for a in AttentionChoice::ALL {
        assert_eq!(a.name().parse::<AttentionChoice>().unwrap(), *a);
    }
    for p in TunePolicy::ALL {
        assert_eq!(p.name().parse::<TunePolicy>().unwrap(), *p);
    }
    assert_eq!(
        GemmChoice::allowed(),
        "auto|register|tiled|splitk|coop",
        "the names the tuning files and variables use"
    );
    let (_, value, allowed) = setting("tiledd".parse::<GemmChoice>());
    assert_eq!(
        (value.as_str(), allowed.as_str()),
        ("tiledd", "auto|register|tiled|splitk|coop")
    );
    let msg = "Prefetch".parse::<TileChoice>().unwrap_err().to_string();
    assert!(msg.contains("plain|prefetch"), "{msg}");
}

#[test]
fn options_beat_variables_and_variables_fill_what_is_open() {
    let vars = env(&[
        ("BERT_WGPU_GEMM", "splitk"),
        ("BERT_WGPU_GEMM_TILE", "prefetch"),
        ("BERT_WGPU_ATTENTION", "tiled"),
        ("BERT_WGPU_SPLITK", "3"),
        ("BERT_WGPU_LINEAR_WG", "16x4"),
    ]);
    let given = KernelChoices {
        gemm: Some(GemmChoice::Register),
        attention: Some(AttentionChoice::Query),
        ..Default::default()
    };
    let got = given.with_env(&vars).unwrap();
    assert_eq!(
        got,
        KernelChoices {
            gemm: Some(GemmChoice::Register),
            tile: Some(TileChoice::Prefetch),
            attention: Some(AttentionChoice::Query),
            splitk: Some(3),
            linear_wg: Some((16, 4)),
        }
    );
    // Nothing given, nothing set: every choice left to the tuning file or
    // the built-in default.
    let open = KernelChoices::default().with_env(&env(&[])).unwrap();
    assert_eq!(open, KernelChoices::default());
    // The tuning policy: option, variable, then the caller's default.
    let off = env(&[("BERT_WGPU_TUNE", "off")]);
    let read = TunePolicy::Read;
    let first = Some(TunePolicy::FirstUse);
    assert_eq!(
        TunePolicy::resolve(first, &off, read).unwrap(),
        TunePolicy::FirstUse
    );
    assert_eq!(
        TunePolicy::resolve(None, &off, read).unwrap(),
        TunePolicy::Off
    );
    assert_eq!(TunePolicy::resolve(None, &env(&[]), read).unwrap(), read);
    assert!(!TunePolicy::Off.reads() && TunePolicy::Read.reads());
    // The wait timeout likewise.
    let dflt = Duration::from_secs(120);
    let five = env(&[("BERT_WGPU_TIMEOUT_SECS", "5")]);
    let two = Some(Duration::from_secs(2));
    assert_eq!(
        resolve_timeout(two, &five, dflt).unwrap(),
        Duration::from_secs(2)
    );
    assert_eq!(
        resolve_timeout(None, &five, dflt).unwrap(),
        Duration::from_secs(5)
    );
    assert_eq!(resolve_timeout(None, &env(&[]), dflt).unwrap(), dflt);
}

#[test]
fn an_unknown_value_is_an_error_naming_the_variable_and_its_values() {
    let cases: [(&str, &str, &str); 6] = [
        ("BERT_WGPU_GEMM", "tiledd", "register"),
        ("BERT_WGPU_GEMM_TILE", "fast", "prefetch"),
        ("BERT_WGPU_ATTENTION", "flash", "query|tiled"),
        ("BERT_WGPU_SPLITK", "0", "≥ 1"),
        ("BERT_WGPU_LINEAR_WG", "8x48", "powers of two"),
        ("BERT_WGPU_LINEAR_WG", "32x16", "≤ 256"),
    ];
    for (var, value, hint) in cases {
        let (name, got, allowed) =
            setting(KernelChoices::default().with_env(&env(&[(var, value)])));
        assert_eq!((name.as_str(), got.as_str()), (var, value));
        assert!(allowed.contains(hint), "{var}: `{allowed}` lacks `{hint}`");
    }
    let (name, _, allowed) = setting(TunePolicy::resolve(
        None,
        &env(&[("BERT_WGPU_TUNE", "1")]),
        TunePolicy::Read,
    ));
    assert_eq!(name, "BERT_WGPU_TUNE");
    assert_eq!(allowed, "off|read|first-use|auto");
    let bad = env(&[("BERT_WGPU_TIMEOUT_SECS", "-3")]);
    let (name, value, _) = setting(resolve_timeout(None, &bad, Duration::from_secs(1)));
    assert_eq!(
        (name.as_str(), value.as_str()),
        ("BERT_WGPU_TIMEOUT_SECS", "-3")
    );
    // A bad option is refused too, without looking at the environment.
    let bad_wg = KernelChoices {
        linear_wg: Some((3, 3)),
        ..Default::default()
    };
    setting(bad_wg.with_env(&env(&[])));
    let zero = Some(Duration::ZERO);
    setting(resolve_timeout(zero, &env(&[]), Duration::from_secs(1)));
}

#[test]
fn a_bad_variable_stops_the_binary_with_one_line() {
    let out = common::bin_command()
        .args([
            "bench",
            "--config",
            "bert-tiny",
            "--device",
            "cpu",
            "--batch",
            "1",
            "--seq",
            "8",
            "--iters",
            "1",
        ])
        .env("BERT_WGPU_GEMM", "tiledd")
        .output()
        .expect("run bert-wgpu");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for want in [
        "BERT_WGPU_GEMM",
        "tiledd",
        "auto|register|tiled|splitk|coop",
    ] {
        assert!(err.contains(want), "`{want}` not in: {err}");
    }
}

/// `LoadOptions::kernels` decides the kernels of a forward: with the tiled
/// GEMM, the prefetch tile and tiled attention asked for in the options
/// (and nothing in the environment), every layer-0 GEMM of bert-tiny runs
/// `linear_tiled_prefetch` and attention `attention_tiled` — the kernels
/// lavapipe never picks by itself — and the result still matches the CPU.
#[test]
fn load_options_choose_the_kernels_a_forward_runs() {
    let cfg = bench::preset("bert-tiny").unwrap();
    let kernels = KernelChoices {
        gemm: Some(GemmChoice::Tiled),
        tile: Some(TileChoice::Prefetch),
        attention: Some(AttentionChoice::Tiled),
        ..Default::default()
    };
    let opts = LoadOptions {
        device: Device::Gpu,
        kernels,
        tune: Some(TunePolicy::Off),
        ..Default::default()
    };
    let gpu = match bench::random_model_with(&cfg, &opts) {
        Ok(m) => m,
        Err(Error::NoAdapter(e)) if common::allow_no_gpu() => {
            println!("NOTE: no GPU adapter ({e}); not run (BERT_WGPU_ALLOW_NO_GPU=1)");
            return;
        }
        Err(e) => panic!("GPU model: {e}"),
    };
    let exec = gpu.gpu().expect("a GPU executor");
    assert_eq!(exec.kernel_choices().gemm, Some(GemmChoice::Tiled));
    assert!(!exec.tuned(), "TunePolicy::Off reads no tuning file");
    let cpu = bench::random_model(&cfg, Device::Cpu, DType::F32).unwrap();
    let enc = bench::random_encoding(&cfg, 2, 33);
    common::compare_forwards("options tiled/prefetch", &gpu, &cpu, &enc, 1e-4, 1e-3);
    let steps = match exec.profile(&enc) {
        Ok(s) => s,
        Err(Error::Unsupported(why)) => {
            // Without timestamps the profile cannot list the kernels; the
            // choices were still checked on the executor above.
            println!("NOTE: no kernel list ({why})");
            return;
        }
        Err(e) => panic!("profile: {e}"),
    };
    let layer0: Vec<_> = steps
        .iter()
        .filter(|s| s.module.starts_with("encoder.layer.0."))
        .collect();
    assert!(!layer0.is_empty());
    for s in layer0 {
        match s.pipeline {
            KernelKind::Linear(LinearVariant::TiledPrefetch, _) | KernelKind::AttentionTiled => {}
            KernelKind::LayerNorm => {}
            other => panic!("{}: ran {other:?}", s.module),
        }
    }
}
