//! The WebGPU executor against HF's goldens and against the CPU executor, on
//! every tiny fixture; determinism and the one-submit-per-forward contract.
//! Runs on lavapipe in CI (BERT_WGPU_REQUIRE_GPU=1: no adapter fails).

mod common;

use common::*;

#[test]
fn gpu_matches_hf_and_cpu_on_every_tiny_fixture() {
    for name in TINY_MODELS {
        let dir = tiny_dir(name);
        let Some(gpu) = gpu_model(&dir) else { return };
        let cpu = cpu_model(&dir);
        let cases = read_json(&dir.join("cases.json"));
        for case in cases["cases"].as_array().unwrap() {
            let tag = format!("{name}/{}", case["name"].as_str().unwrap());
            let req = case_request(&gpu, case, true);
            let g = gpu
                .forward_select(&req.encoding, req.labels.as_ref(), true)
                .unwrap_or_else(|e| panic!("gpu {tag}: {e}"));
            let c = cpu
                .forward_select(&req.encoding, req.labels.as_ref(), true)
                .unwrap();
            let err = check_outputs(&format!("gpu {tag}"), &g, &case["outputs"], 1e-4, 1e-3);
            for (what, a, b) in [
                (
                    "last_hidden_state",
                    &g.last_hidden_state,
                    &c.last_hidden_state,
                ),
                ("pooler_output", &g.pooler_output, &c.pooler_output),
                ("logits", &g.logits, &c.logits),
                ("start_logits", &g.start_logits, &c.start_logits),
                ("end_logits", &g.end_logits, &c.end_logits),
            ] {
                assert_eq!(
                    a.is_some(),
                    b.is_some(),
                    "{tag} {what}: present on one executor only"
                );
                if let (Some(a), Some(b)) = (a, b) {
                    assert_close(&format!("gpu vs cpu {tag} {what}"), a, b, 1e-4, 1e-3);
                }
            }
            if let (Some(a), Some(b)) = (g.loss, c.loss) {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1e-3),
                    "{tag}: loss gpu {a} cpu {b}"
                );
            }
            println!("gpu {tag}: max abs error vs HF {err:.2e}");
        }
    }
}

/// f16 storage (weights, embedding tables, activations; f32 accumulation)
/// against HF's f32 goldens with a looser tolerance: every output and loss
/// within 1e-2 + 1e-2·|want|.
#[test]
fn gpu_f16_matches_hf_on_every_tiny_fixture() {
    let mut worst = 0.0f32;
    for name in TINY_MODELS {
        let dir = tiny_dir(name);
        let Some(gpu) = gpu_model_dtype(&dir, bert_wgpu::DType::F16) else {
            return;
        };
        assert_eq!(gpu.dtype(), bert_wgpu::DType::F16);
        let cases = read_json(&dir.join("cases.json"));
        for case in cases["cases"].as_array().unwrap() {
            let tag = format!("{name}/{}", case["name"].as_str().unwrap());
            let req = case_request(&gpu, case, true);
            let g = gpu
                .forward_select(&req.encoding, req.labels.as_ref(), true)
                .unwrap_or_else(|e| panic!("gpu f16 {tag}: {e}"));
            let err = check_outputs(&format!("gpu f16 {tag}"), &g, &case["outputs"], 1e-2, 1e-2);
            println!("gpu f16 {tag}: max abs error vs HF {err:.2e}");
            worst = worst.max(err);
        }
    }
    println!("gpu f16: max abs error vs HF over all fixtures {worst:.2e}");
}

#[test]
fn gpu_forward_is_one_submit_one_readback_and_deterministic() {
    let dir = tiny_dir("base-gelu");
    let Some(gpu) = gpu_model(&dir) else { return };
    let cases = read_json(&dir.join("cases.json"));
    let case = &cases["cases"][0];
    let req = case_request(&gpu, case, false);
    let before = gpu.gpu().unwrap().stats();
    let a = gpu.forward(&req.encoding).unwrap();
    let mid = gpu.gpu().unwrap().stats();
    let b = gpu.forward(&req.encoding).unwrap();
    let after = gpu.gpu().unwrap().stats();
    assert_eq!(mid.submits - before.submits, 1, "first forward submits");
    assert_eq!(
        mid.readbacks - before.readbacks,
        1,
        "first forward readbacks"
    );
    assert_eq!(after.submits - mid.submits, 1, "second forward submits");
    assert_eq!(
        after.readbacks - mid.readbacks,
        1,
        "second forward readbacks"
    );
    assert!(
        after.record_ns > mid.record_ns && after.wait_ns > mid.wait_ns,
        "host phase times must accumulate: {mid:?} -> {after:?}"
    );
    assert_eq!(
        after.plans_built, mid.plans_built,
        "same shape must reuse the plan"
    );
    let bits = |o: &bert_wgpu::Outputs| -> Vec<u32> {
        o.last_hidden_state
            .as_ref()
            .unwrap()
            .data
            .iter()
            .chain(&o.pooler_output.as_ref().unwrap().data)
            .map(|v| v.to_bits())
            .collect()
    };
    assert_eq!(
        bits(&a),
        bits(&b),
        "the same input twice must give bitwise identical output"
    );
}
