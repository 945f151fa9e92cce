//! all-MiniLM-L6-v2 (a real BERT checkpoint) against HF transformers: the
//! tokenizer gives HF's ids, and both executors give HF's hidden states,
//! pooled outputs and sentence embeddings.

mod common;

use bert_wgpu::embed::{self, Pooling};
use bert_wgpu::{Model, Tensor};
use common::*;
use serde_json::Value;

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
        })
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn check_model(model: &Model, tag: &str) {
    let cases = read_json(&fixtures().join("minilm/cases.json"));
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let texts = strings(&case["texts"]);
        let pairs = case.get("text_pairs").map(strings);
        let enc = model.tokenize(&texts, pairs.as_deref()).unwrap();
        assert_eq!(
            enc.input_ids,
            ids(&case["input_ids"]),
            "{name}: input_ids differ from HF"
        );
        assert_eq!(
            enc.attention_mask,
            ids(&case["attention_mask"]),
            "{name}: attention_mask"
        );
        assert_eq!(
            enc.token_type_ids,
            ids(&case["token_type_ids"]),
            "{name}: token_type_ids"
        );
        let out = model.forward(&enc).unwrap();
        let hidden = out.last_hidden_state.as_ref().unwrap();
        let want = &case["outputs"];
        let mut err = check_outputs(&format!("{tag} minilm/{name}"), &out, want, 1e-4, 1e-3);
        if let Some(rows) = want.get("last_hidden_state_rows") {
            let h = hidden.shape[2];
            let picked: Vec<f32> = rows["rows"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| {
                    let r = r.as_u64().unwrap() as usize;
                    hidden.data[r * h..(r + 1) * h].to_vec()
                })
                .collect();
            let got = Tensor::new(vec![picked.len() / h, h], picked).unwrap();
            err = err.max(assert_close(
                &format!("{tag} minilm/{name} rows"),
                &got,
                &tensor(rows),
                1e-4,
                1e-3,
            ));
        }
        let emb = embed::pool(hidden, &enc, Pooling::Mean, true).unwrap();
        let e = assert_close(
            &format!("{tag} minilm/{name} sentence_embedding"),
            &emb,
            &tensor(&want["sentence_embedding"]),
            1e-4,
            1e-3,
        );
        println!(
            "{tag} minilm/{name}: seq {}, max abs error {:.2e} (embedding {e:.2e})",
            enc.seq,
            err.max(e)
        );
    }
}

#[test]
fn minilm_cpu_matches_hf() {
    let model = cpu_model(&minilm_dir());
    check_model(&model, "cpu");
}

#[test]
fn minilm_gpu_matches_hf() {
    let Some(model) = gpu_model(&minilm_dir()) else {
        return;
    };
    check_model(&model, "gpu");
}
