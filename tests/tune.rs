//! `bert-wgpu tune` and the per-adapter tuning file: what it measures and
//! writes, and that executors follow it (after the `BERT_WGPU_*` variables,
//! before the built-in defaults). One test function: the environment is
//! process-wide and every step sets it.

mod common;

use bert_wgpu::bench;
use bert_wgpu::gpu::tune::{self, Tuning};
use bert_wgpu::gpu::{KernelKind, LinearVariant};
use bert_wgpu::{DType, Device};

/// The pipelines one forward of a fresh bert-tiny GPU model runs, after
/// checking its outputs against the CPU executor.
fn pipelines_of_a_new_model(tag: &str) -> Vec<KernelKind> {
    let cfg = bench::preset("bert-tiny").unwrap();
    let gpu = bench::random_model(&cfg, Device::Gpu, DType::F32).unwrap();
    let cpu = bench::random_model(&cfg, Device::Cpu, DType::F32).unwrap();
    let enc = bench::random_encoding(&cfg, 2, 33);
    common::compare_forwards(tag, &gpu, &cpu, &enc, 1e-4, 1e-3);
    let steps = gpu.gpu().unwrap().profile(&enc).unwrap();
    steps.iter().map(|s| s.pipeline).collect()
}

fn has_attention(p: &[KernelKind], kind: KernelKind) -> bool {
    p.iter()
        .filter(|k| matches!(k, KernelKind::AttentionVec4 | KernelKind::AttentionTiled))
        .all(|k| *k == kind)
}

/// The distinct linear variants, in order of first use.
fn linear_variants(p: &[KernelKind]) -> Vec<LinearVariant> {
    let mut v: Vec<LinearVariant> = Vec::new();
    for k in p {
        if let KernelKind::Linear(l, _) = k {
            if !v.contains(l) {
                v.push(*l);
            }
        }
    }
    v
}

#[test]
fn tune_measures_saves_and_is_followed() {
    let Some(ctx) = common::gpu::context("tune_measures_saves_and_is_followed") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("bert-wgpu-tune-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::env::set_var("BERT_WGPU_TUNE_DIR", &dir);
    for v in [
        "BERT_WGPU_TUNE",
        "BERT_WGPU_GEMM",
        "BERT_WGPU_GEMM_TILE",
        "BERT_WGPU_ATTENTION",
    ] {
        std::env::remove_var(v);
    }

    // 1. What tune measures: every variant of every decision, and each
    // choice is the fastest of its own timings.
    let cfg = bench::preset("bert-tiny").unwrap();
    let t = tune::measure(
        ctx.sibling().unwrap(),
        &cfg,
        "bert-tiny",
        DType::F32,
        2,
        33,
        2,
    )
    .unwrap();
    println!("{t:#?}");
    assert_eq!(t.adapter, tune::adapter_key(&ctx));
    let variants = |d: &str| -> Vec<&str> {
        t.times
            .iter()
            .filter(|x| x.decision == d)
            .map(|x| x.variant.as_str())
            .collect()
    };
    assert_eq!(variants("tile"), ["plain", "prefetch"]);
    assert_eq!(variants("gemm_large"), ["register", "tiled"]); // no coop on f32
    assert_eq!(variants("gemm_small"), ["register", "tiled", "splitk"]);
    assert_eq!(variants("attention"), ["query", "tiled"]);
    for (decision, chosen) in [
        ("tile", &t.tile),
        ("gemm_large", &t.gemm_large),
        ("gemm_small", &t.gemm_small),
        ("attention", &t.attention),
    ] {
        let times: Vec<_> = t.times.iter().filter(|x| x.decision == decision).collect();
        let ms = |x: &&tune::TuneTime| x.ms.unwrap_or(f64::NAN);
        assert!(times.iter().all(|x| ms(x).is_finite() && ms(x) >= 0.0));
        let best = times.iter().min_by(|a, b| ms(a).total_cmp(&ms(b))).unwrap();
        assert_eq!(&best.variant, chosen, "{decision}: {times:?}");
    }
    every_variant_passed_its_check(&t);

    // 2. Saved where load looks, and read back unchanged.
    let path = t.save(&ctx, DType::F32).unwrap();
    assert!(path.starts_with(&dir), "{}", path.display());
    assert_eq!(Tuning::load(&ctx, DType::F32).as_ref(), Some(&t));
    assert_eq!(
        Tuning::load(&ctx, DType::F16),
        None,
        "an f32 file is not f16's"
    );

    // 3. A file choosing every non-default variant is followed (bert-tiny at
    // 66 rows: every linear is "small", so split-k on prefetching tiles; the
    // k = 512 output projection splits and adds a reduce pass).
    let chosen = Tuning {
        gemm_large: "tiled".into(),
        gemm_small: "splitk".into(),
        tile: "prefetch".into(),
        attention: "tiled".into(),
        ..t.clone()
    };
    chosen.save(&ctx, DType::F32).unwrap();
    let p = pipelines_of_a_new_model("tuned");
    assert!(has_attention(&p, KernelKind::AttentionTiled), "{p:?}");
    assert_eq!(
        linear_variants(&p),
        [LinearVariant::TiledPrefetch, LinearVariant::SplitKReduce],
        "{p:?}"
    );

    // 4. A variable still wins over the file.
    std::env::set_var("BERT_WGPU_ATTENTION", "query");
    let p = pipelines_of_a_new_model("tuned, BERT_WGPU_ATTENTION=query");
    assert!(has_attention(&p, KernelKind::AttentionVec4), "{p:?}");
    std::env::remove_var("BERT_WGPU_ATTENTION");

    // 5. BERT_WGPU_TUNE=off, a broken file and another adapter's file all
    // leave the built-in defaults (lavapipe: register GEMM, one-query
    // attention).
    let defaults = |tag: &str| {
        let p = pipelines_of_a_new_model(tag);
        assert!(has_attention(&p, KernelKind::AttentionVec4), "{tag}: {p:?}");
        assert_eq!(linear_variants(&p), [LinearVariant::Vec4], "{tag}: {p:?}");
    };
    if ctx.info.device_type == wgpu::DeviceType::Cpu {
        std::env::set_var("BERT_WGPU_TUNE", "off");
        defaults("BERT_WGPU_TUNE=off");
        std::env::remove_var("BERT_WGPU_TUNE");
        std::fs::write(&path, "{ not json").unwrap();
        assert_eq!(Tuning::load(&ctx, DType::F32), None);
        defaults("broken file");
        let other = Tuning {
            adapter: "some other GPU".into(),
            ..chosen
        };
        std::fs::write(&path, serde_json::to_string(&other).unwrap()).unwrap();
        assert_eq!(Tuning::load(&ctx, DType::F32), None);
        defaults("another adapter's file");
    }

    // 6. First use. A software adapter tunes nothing by itself; with
    // BERT_WGPU_TUNE=auto (what hardware adapters do unasked) the first
    // executor checks and times the variants on its own model's shape,
    // saves the file and follows it, and the next executor reads the file
    // instead of tuning again. bert-tiny with 32 positions, so the tune
    // measures 16 × 32 rows and stays short on lavapipe.
    let _ = std::fs::remove_dir_all(&dir);
    let path = tune::tune_path(&ctx, DType::F32);
    let mut small = cfg.clone();
    small.max_position_embeddings = 32;
    let cpu = bench::random_model(&small, Device::Cpu, DType::F32).unwrap();
    let enc = bench::random_encoding(&small, 2, 31);
    let new_model = |tag: &str| -> Vec<KernelKind> {
        let gpu = bench::random_model(&small, Device::Gpu, DType::F32).unwrap();
        common::compare_forwards(tag, &gpu, &cpu, &enc, 1e-4, 1e-3);
        let steps = gpu.gpu().unwrap().profile(&enc).unwrap();
        steps.iter().map(|s| s.pipeline).collect()
    };
    if ctx.info.device_type == wgpu::DeviceType::Cpu {
        new_model("software adapter, BERT_WGPU_TUNE unset");
        assert!(!path.exists(), "{} written unasked", path.display());
    }
    std::env::set_var("BERT_WGPU_TUNE", "auto");
    let tuned = new_model("first use");
    let text = std::fs::read_to_string(&path).expect("first use saves the tuning file");
    let first: Tuning = serde_json::from_str(&text).unwrap();
    assert!(
        first.measured_on.starts_with("first use 16 × 32"),
        "{first:#?}"
    );
    every_variant_passed_its_check(&first);
    assert_eq!(
        new_model("second use"),
        tuned,
        "the first executor ran other kernels than its own measurement chose"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "the second executor tuned again"
    );

    // 7. Two executors created at once (f16: not tuned yet in this
    // process) wait for one tune: both match the CPU and run the same
    // kernels, and the f16 file is saved.
    if ctx.features.contains(wgpu::Features::SHADER_F16) {
        let f16_path = tune::tune_path(&ctx, DType::F16);
        let pipelines: Vec<Vec<KernelKind>> = std::thread::scope(|s| {
            let spawn = || {
                s.spawn(|| {
                    let gpu = bench::random_model(&small, Device::Gpu, DType::F16).unwrap();
                    common::compare_forwards("f16, concurrent", &gpu, &cpu, &enc, 1e-2, 1e-2);
                    let steps = gpu.gpu().unwrap().profile(&enc).unwrap();
                    steps.iter().map(|s| s.pipeline).collect()
                })
            };
            let (a, b) = (spawn(), spawn());
            vec![a.join().unwrap(), b.join().unwrap()]
        });
        assert_eq!(pipelines[0], pipelines[1]);
        let saved: Tuning =
            serde_json::from_str(&std::fs::read_to_string(&f16_path).unwrap()).unwrap();
        assert_eq!(saved.dtype, "f16");
    }

    std::env::set_var("BERT_WGPU_TUNE", "off");
    std::fs::remove_file(&path).unwrap();
    new_model("BERT_WGPU_TUNE=off");
    assert!(!path.exists(), "tuned with BERT_WGPU_TUNE=off");
    std::env::remove_var("BERT_WGPU_TUNE");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every variant on lavapipe matches its CPU twin (f32: within
/// 1e-4 + 1e-3·|want|), so none is rejected and each has a timing.
fn every_variant_passed_its_check(t: &Tuning) {
    for x in &t.times {
        assert_eq!(x.rejected, None, "{x:?}");
        assert!(x.ms.is_some(), "{x:?}");
        let err = x.max_error.expect("checked before timing");
        assert!(err < 1e-4, "{x:?}");
    }
}
