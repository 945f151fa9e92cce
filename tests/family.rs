//! The BERT family (RoBERTa, XLM-RoBERTa, CamemBERT, DistilBERT, ELECTRA;
//! safetensors, sharded and `pytorch_model.bin` checkpoints) against HF
//! transformers' goldens (tests/fixtures/make_family_fixtures.py), on the
//! CPU and on the GPU, plus each tokenizer's own template and the refusals
//! of bad `.bin` files.

mod common;

use std::path::PathBuf;

use bert_wgpu::Error;
use common::*;
use serde_json::Value;

/// Every fixture folder; the test fails if one is missing, so a fixture
/// that was not written cannot pass by being absent.
const FAMILY: &[&str] = &[
    "roberta-base",
    "roberta-seqcls",
    "roberta-seqcls-regression",
    "roberta-tokcls",
    "roberta-mc",
    "roberta-qa",
    "xlmr-base",
    "xlmr-seqcls-multilabel",
    "camembert-base",
    "distilbert-base",
    "distilbert-sinusoidal",
    "distilbert-seqcls",
    "distilbert-tokcls",
    "distilbert-mc",
    "distilbert-qa",
    "electra-base",
    "electra-seqcls",
    "electra-tokcls",
    "electra-mc",
    "electra-qa",
    "roberta-sharded",
    "bert-sharded-bin",
    "both-files",
];

fn family_dir(name: &str) -> PathBuf {
    fixtures().join("family").join(name)
}

/// Runs every case of every fixture on `model_for(dir)`.
fn check_all(device: &str, load: impl Fn(&std::path::Path) -> Option<bert_wgpu::Model>) {
    let mut cases_run = 0;
    for name in FAMILY {
        let dir = family_dir(name);
        assert!(
            dir.join("cases.json").is_file(),
            "{}: no cases.json",
            dir.display()
        );
        let Some(model) = load(&dir) else { return };
        let cases = read_json(&dir.join("cases.json"));
        for case in cases["cases"].as_array().expect("cases") {
            let req = case_request(&model, case, true);
            let out = model
                .forward_select(&req.encoding, req.labels.as_ref(), true)
                .unwrap_or_else(|e| panic!("{device} {name}/{}: {e}", case["name"]));
            let tag = format!("{device} {name}/{}", case["name"].as_str().unwrap_or("?"));
            let err = check_outputs(&tag, &out, &case["outputs"], 1e-4, 1e-3);
            println!("{tag}: max abs error {err:.2e}");
            cases_run += 1;
        }
    }
    assert!(cases_run >= FAMILY.len(), "only {cases_run} cases ran");
}

#[test]
fn cpu_matches_transformers_on_every_family_fixture() {
    check_all("cpu", |dir| Some(cpu_model(dir)));
}

#[test]
fn gpu_matches_transformers_on_every_family_fixture() {
    check_all("gpu", gpu_model);
}

#[test]
fn each_tokenizer_keeps_its_own_template() {
    let mut checked = 0;
    for name in FAMILY {
        let path = family_dir(name).join("tokenize.json");
        if !path.is_file() {
            continue;
        }
        let model = cpu_model(&family_dir(name));
        for (i, case) in read_json(&path)
            .as_array()
            .expect("cases")
            .iter()
            .enumerate()
        {
            let texts = strings(&case["texts"]);
            let pairs = case.get("text_pairs").map(strings);
            let enc = model
                .tokenize(&texts, pairs.as_deref())
                .unwrap_or_else(|e| panic!("{name} case {i}: {e}"));
            let flat = |k: &str| -> Vec<u32> {
                case[k]
                    .as_array()
                    .expect("rows")
                    .iter()
                    .flat_map(|r| r.as_array().expect("row").iter())
                    .map(|v| v.as_u64().expect("id") as u32)
                    .collect()
            };
            assert_eq!(
                enc.input_ids,
                flat("input_ids"),
                "{name} case {i}: input_ids"
            );
            assert_eq!(
                enc.attention_mask,
                flat("attention_mask"),
                "{name} case {i}: mask"
            );
            if case.get("token_type_ids").is_some() {
                assert_eq!(
                    enc.token_type_ids,
                    flat("token_type_ids"),
                    "{name} case {i}: types"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} tokenizer cases found");
}

#[test]
fn roberta_pair_template_is_s_a_double_eos_b() {
    let model = cpu_model(&family_dir("roberta-seqcls"));
    let tok = model.tokenizer().expect("tokenizer.json");
    let (bos, eos) = (
        tok.token_id("<s>").expect("<s>"),
        tok.token_id("</s>").expect("</s>"),
    );
    let enc = model
        .tokenize(&["hello".to_string()], Some(&["world".to_string()]))
        .expect("pair");
    let ids = &enc.input_ids;
    assert_eq!(ids.first(), Some(&bos), "{ids:?}");
    assert_eq!(ids.last(), Some(&eos), "{ids:?}");
    let doubled = ids.windows(2).any(|w| w == [eos, eos]);
    assert!(doubled, "no </s></s> between the pair: {ids:?}");
    // HF's RoBERTa tokenizers return no token types: the model sees zeros,
    // whatever the template's type ids (type_vocab_size is 1).
    let out = model.forward(&enc).expect("a pair runs");
    assert!(out.logits.is_some());
}

fn load_err(dir: &std::path::Path) -> Error {
    match bert_wgpu::Model::load_dir(
        dir,
        &bert_wgpu::LoadOptions {
            device: bert_wgpu::Device::Cpu,
            ..Default::default()
        },
    ) {
        Ok(_) => panic!("{}: loaded", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn bad_bin_files_are_refused_with_what_is_wrong() {
    let bad = fixtures().join("family").join("bad");
    for (name, words) in [
        ("malicious", vec!["os", "system", "refused"]),
        ("malicious_eval", vec!["eval", "refused"]),
        ("truncated", vec!["pytorch_model.bin", "truncated"]),
        ("wrong_dtype", vec!["word_embeddings", "floats"]),
        ("complex_dtype", vec!["word_embeddings", "complex"]),
    ] {
        let msg = load_err(&bad.join(name)).to_string();
        println!("{name}: {msg}");
        for w in words {
            assert!(msg.contains(w), "{name}: `{w}` not in: {msg}");
        }
    }
}

#[test]
fn safetensors_is_preferred_over_bin() {
    // both-files/pytorch_model.bin holds other weights; the goldens are the
    // safetensors ones, so the forward check above already fails if the
    // .bin were read. This checks the choice itself.
    let files =
        bert_wgpu::source::resolve(&family_dir("both-files").to_string_lossy(), None, false)
            .expect("resolve");
    assert_eq!(files.weights.len(), 1);
    assert!(
        files.weights[0].ends_with("model.safetensors"),
        "{:?}",
        files.weights
    );
}

#[test]
fn shards_are_all_read() {
    for (name, ext) in [
        ("roberta-sharded", "safetensors"),
        ("bert-sharded-bin", "bin"),
    ] {
        let files = bert_wgpu::source::resolve(&family_dir(name).to_string_lossy(), None, false)
            .expect("resolve");
        assert!(files.weights.len() >= 2, "{name}: {:?}", files.weights);
        assert!(
            files
                .weights
                .iter()
                .all(|p| p.extension().is_some_and(|e| e == ext)),
            "{name}: {:?}",
            files.weights
        );
    }
}

#[test]
fn heads_follow_the_architectures_of_each_family() {
    for (name, head) in [
        ("roberta-seqcls", "sequence-classification"),
        ("distilbert-qa", "question-answering"),
        ("electra-mc", "multiple-choice"),
        ("xlmr-base", "base"),
    ] {
        let model = cpu_model(&family_dir(name));
        assert_eq!(model.head().cli_name(), head, "{name}");
    }
    let v: Value = read_json(&family_dir("distilbert-base").join("config.json"));
    assert_eq!(v["model_type"], "distilbert");
}
