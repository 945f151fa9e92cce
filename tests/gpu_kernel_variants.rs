//! Whole forwards with the GEMM and attention variants a real GPU would pick
//! or can be told to pick (`BERT_WGPU_GEMM=tiled|splitk`,
//! `BERT_WGPU_ATTENTION=tiled`), on lavapipe: the GPU executor against the
//! CPU on random models. bert-tiny (k = 128: split-k
//! leaves every projection unsplit, so the tiled kernel runs with its unused
//! partial-sum binding, with and without a residual) and all-MiniLM-L6-v2's
//! shape (k = 384 and 1536: every projection splits, two dispatches each).
//! In a test binary of its own because the variables are process-wide.

mod common;

use bert_wgpu::bench;
use bert_wgpu::gpu::{KernelKind, LinearVariant};
use bert_wgpu::{DType, Device};

#[test]
fn tiled_and_splitk_forwards_match_the_cpu() {
    for (gemm, tile, attn) in [
        ("tiled", "plain", "query"),
        ("splitk", "plain", "query"),
        ("tiled", "prefetch", "tiled"),
        ("splitk", "prefetch", "tiled"),
    ] {
        // Read by choose_gemm / tile_variant / choose_attention when a model
        // builds its first plan.
        std::env::set_var("BERT_WGPU_GEMM", gemm);
        std::env::set_var("BERT_WGPU_GEMM_TILE", tile);
        std::env::set_var("BERT_WGPU_ATTENTION", attn);
        let mode = format!("{gemm} (tile {tile}, attention {attn})");
        for preset in ["bert-tiny", "minilm-l6"] {
            let cfg = bench::preset(preset).unwrap();
            let gpu = match bench::random_model(&cfg, Device::Gpu, DType::F32) {
                Ok(m) => m,
                Err(bert_wgpu::Error::NoAdapter(e)) => {
                    let test = "tiled_and_splitk_forwards_match_the_cpu";
                    common::gpu::unavailable(test, format_args!("no GPU adapter ({e})"), None);
                    return;
                }
                Err(e) => panic!("GPU model: {e}"),
            };
            let cpu = bench::random_model(&cfg, Device::Cpu, DType::F32).unwrap();
            // Batch 2 × 33 tokens: m = 66, few 128-row tiles.
            let enc = bench::random_encoding(&cfg, 2, 33);
            common::compare_forwards(&format!("{mode} {preset}"), &gpu, &cpu, &enc, 1e-4, 1e-3);
            // Split linear steps record two dispatches each: layer 0's
            // projections are (m, n, k) = (66, 3h, h), (66, h, h), (66, f, h),
            // (66, h, f).
            let (h, f) = (cfg.hidden_size, cfg.intermediate_size);
            let want: usize = [(3 * h, h), (h, h), (f, h), (h, f)]
                .iter()
                .map(|&(n, k)| {
                    if gemm == "splitk" && bert_wgpu::gpu::splitk_splits(66, n, k, None).0 > 1 {
                        2
                    } else {
                        1
                    }
                })
                .sum();
            match gpu.gpu().unwrap().profile(&enc) {
                Ok(steps) => {
                    let linear0: Vec<_> = steps
                        .iter()
                        .filter(|s| {
                            s.module.starts_with("encoder.layer.0.") && s.kernel() == "linear"
                        })
                        .collect();
                    let layer0 = linear0.len();
                    // Every GEMM dispatch is the asked-for tile kernel (the
                    // others are split-k reduce passes).
                    let want_tile = if tile == "prefetch" {
                        LinearVariant::TiledPrefetch
                    } else {
                        LinearVariant::Tiled
                    };
                    for s in &linear0 {
                        match s.pipeline {
                            KernelKind::Linear(v, _)
                                if v == want_tile || v == LinearVariant::SplitKReduce => {}
                            other => panic!("{mode} {preset} {}: ran {other:?}", s.module),
                        }
                    }
                    assert_eq!(layer0, want, "{mode} {preset}: {steps:?}");
                    println!("{mode} {preset}: {layer0} linear dispatches in layer 0");
                    // Both presets have head size 64 or 32: the tiled
                    // attention kernel runs when asked for.
                    let want_attn = if attn == "tiled" {
                        KernelKind::AttentionTiled
                    } else {
                        KernelKind::AttentionVec4
                    };
                    let attn_steps: Vec<_> =
                        steps.iter().filter(|s| s.kernel() == "attention").collect();
                    assert_eq!(attn_steps.len(), cfg.num_hidden_layers, "{mode} {preset}");
                    for s in attn_steps {
                        assert_eq!(s.pipeline, want_attn, "{mode} {preset}: {}", s.module);
                    }
                }
                // An adapter without timestamp queries inside passes cannot profile.
                Err(bert_wgpu::Error::Unsupported(e)) => println!("NOTE: no profile: {e}"),
                Err(e) => panic!("profile: {e}"),
            }
        }
    }
}
