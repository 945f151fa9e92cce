//! Whole forwards with split-k GEMMs (`BERT_WGPU_GEMM=splitk`, opt-in): the
//! GPU executor against the CPU on a random all-MiniLM-L6-v2-shaped model
//! (k = 384 and 1536, so every projection splits), and the plan records two
//! dispatches for each split linear step. In a test binary of its own because
//! the variable is process-wide.

mod common;

use bert_wgpu::bench;
use bert_wgpu::{DType, Device};

#[test]
fn splitk_forward_matches_the_cpu() {
    std::env::set_var("BERT_WGPU_GEMM", "splitk");
    let cfg = bench::preset("minilm-l6").unwrap();
    let gpu = match bench::random_model(&cfg, Device::Gpu, DType::F32) {
        Ok(m) => m,
        Err(bert_wgpu::Error::NoAdapter(e)) if common::allow_no_gpu() => {
            println!("NOTE: no GPU adapter ({e}); not run (BERT_WGPU_ALLOW_NO_GPU=1)");
            return;
        }
        Err(e) => panic!("GPU model: {e}"),
    };
    let cpu = bench::random_model(&cfg, Device::Cpu, DType::F32).unwrap();
    // Batch 2 × 33 tokens: m = 66, so the 128-row tiles alone are few and
    // the k-splits do the filling.
    let enc = bench::random_encoding(&cfg, 2, 33);
    let g = gpu.forward(&enc).unwrap();
    let c = cpu.forward(&enc).unwrap();
    for (what, a, b) in [
        (
            "last_hidden_state",
            &g.last_hidden_state,
            &c.last_hidden_state,
        ),
        ("pooler_output", &g.pooler_output, &c.pooler_output),
    ] {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        let err = common::assert_close(&format!("split-k {what}"), a, b, 1e-4, 1e-3);
        println!("split-k {what}: max |gpu - cpu| {err:.3e}");
    }
    // Profiled dispatches: every encoder linear splits here, so each layer
    // has 4 linear steps × 2 dispatches.
    match gpu.gpu().unwrap().profile(&enc) {
        Ok(steps) => {
            let per_layer = steps
                .iter()
                .filter(|s| s.module.starts_with("encoder.layer.0.") && s.kernel == "linear")
                .count();
            assert_eq!(per_layer, 8, "layer 0 linear dispatches: {steps:?}");
            println!("split-k: {} dispatches", steps.len());
        }
        // An adapter without timestamp queries inside passes cannot profile.
        Err(bert_wgpu::Error::Unsupported(e)) => println!("NOTE: no profile: {e}"),
        Err(e) => panic!("profile: {e}"),
    }
}
