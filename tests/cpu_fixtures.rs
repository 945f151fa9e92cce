//! The CPU executor against HF transformers' golden outputs (tiny random
//! models covering every activation, dtype, key naming and head).

mod common;

use common::*;

#[test]
fn cpu_matches_hf_on_every_tiny_fixture() {
    for name in TINY_MODELS {
        let dir = tiny_dir(name);
        let model = cpu_model(&dir);
        let cases = read_json(&dir.join("cases.json"));
        for case in cases["cases"].as_array().unwrap() {
            let req = case_request(&model, case, true);
            let out = model
                .forward_select(&req.encoding, req.labels.as_ref(), true)
                .unwrap_or_else(|e| panic!("{name}/{}: {e}", case["name"]));
            let tag = format!("cpu {name}/{}", case["name"].as_str().unwrap());
            let err = check_outputs(&tag, &out, &case["outputs"], 1e-4, 1e-3);
            println!("{tag}: max abs error {err:.2e}");
        }
    }
}
