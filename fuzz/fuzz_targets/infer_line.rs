//! Arbitrary text → one `infer` JSON line, parsed for several tiny CPU
//! models (`infer::parse_request`) and, when accepted and small (≤ 2048
//! token positions), run (`Model::forward_select`) and rendered. Must not
//! panic.
//!
//! Models: tests/fixtures/tiny/base-gelu (no tokenizer, `input_ids` only)
//! and, when present, tests/fixtures/pipelines/{seqcls,qa,mc,ner} (with a
//! tokenizer.json, so `text` input and every head's labels are exercised).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use bert_wgpu::infer::{parse_request, render};
use bert_wgpu::{Device, LoadOptions, Model};
use libfuzzer_sys::fuzz_target;

/// Largest encoding (sequences × seq) that is also run through the model.
const MAX_TOKENS: usize = 2048;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}

fn models() -> &'static [Model] {
    static MODELS: OnceLock<Vec<Model>> = OnceLock::new();
    MODELS.get_or_init(|| {
        let opts = LoadOptions {
            device: Device::Cpu,
            ..Default::default()
        };
        let mut v = vec![Model::load_dir(&fixture("tiny/base-gelu"), &opts)
            .expect("tests/fixtures/tiny/base-gelu loads")];
        for dir in [
            "pipelines/seqcls",
            "pipelines/qa",
            "pipelines/mc",
            "pipelines/ner",
        ] {
            let p = fixture(dir);
            if p.join("tokenizer.json").is_file() {
                v.push(Model::load_dir(&p, &opts).unwrap_or_else(|e| panic!("{dir}: {e}")));
            }
        }
        v
    })
}

fuzz_target!(
    init: {
        // Two fuzzers share two cores: keep each to one thread.
        std::env::set_var("RAYON_NUM_THREADS", "1");
        std::env::set_var("TOKENIZERS_PARALLELISM", "false");
        let _ = models();
    },
    |line: &str| {
        for model in models() {
            let Ok(req) = parse_request(line, model) else {
                continue;
            };
            let enc = &req.encoding;
            if enc.input_ids.len() > MAX_TOKENS {
                continue;
            }
            if let Ok(out) = model.forward_select(enc, req.labels.as_ref(), line.len() % 2 == 1) {
                let s = render(&out, &req);
                assert!(s.starts_with('{') && s.ends_with('}'));
            }
        }
    }
);
