//! sentence-transformers models read as sentence-transformers reads them:
//! tiny models of both layouts (every pooling mode, Dense, Normalize,
//! prompts, short max_seq_length, do_lower_case) and cross-encoders, held to
//! `SentenceTransformer.encode` / `CrossEncoder.predict` / `rank` goldens
//! (tests/fixtures/st, written by make_st_fixtures.py) on the CPU and the
//! GPU; all-MiniLM-L6-v2 on texts past its 256-token max_seq_length.

mod common;

use bert_wgpu::batch::BatchOptions;
use bert_wgpu::embed::{EmbedderOptions, EncodeOptions, SentenceEmbedder};
use bert_wgpu::pipelines::CrossEncoder;
use bert_wgpu::{Device, LoadOptions};
use common::*;
use serde_json::Value;

fn st_dir(name: &str) -> std::path::PathBuf {
    fixtures().join("st").join(name)
}

fn goldens() -> Value {
    read_json(&fixtures().join("st/goldens.json"))
}

/// Max |got - want| over rows, asserting `atol + rtol·|want|` everywhere.
fn check_rows(tag: &str, got: &[Vec<f32>], want: &[Vec<f32>], atol: f32, rtol: f32) -> f32 {
    assert_eq!(got.len(), want.len(), "{tag}: row count");
    let mut worst = (0.0f32, 0, 0);
    for (r, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{tag}: row {r} width");
        for (c, (a, b)) in g.iter().zip(w).enumerate() {
            let d = (a - b).abs();
            assert!(
                d <= atol + rtol * b.abs(),
                "{tag}: row {r} col {c}: got {a}, want {b} (|diff| {d})"
            );
            if d > worst.0 {
                worst = (d, r, c);
            }
        }
    }
    println!(
        "{tag}: max |diff| {:.2e} at row {} col {}",
        worst.0, worst.1, worst.2
    );
    worst.0
}

fn load(name: &str, device: Device) -> Option<SentenceEmbedder> {
    let opts = LoadOptions {
        device,
        ..Default::default()
    };
    match SentenceEmbedder::load(
        &st_dir(name).to_string_lossy(),
        &opts,
        &EmbedderOptions::default(),
    ) {
        Ok(m) => Some(m),
        Err(bert_wgpu::Error::NoAdapter(msg)) if device == Device::Gpu && allow_no_gpu() => {
            println!("NOTE: no GPU adapter ({msg}); not run (BERT_WGPU_ALLOW_NO_GPU=1)");
            None
        }
        Err(e) => panic!("{name} on {device:?}: {e}"),
    }
}

fn encode_opts(kwargs: &Value) -> EncodeOptions {
    let s = |k: &str| kwargs.get(k).and_then(Value::as_str).map(str::to_string);
    EncodeOptions {
        prompt_name: s("prompt_name"),
        prompt: s("prompt"),
        dimensions: kwargs
            .get("truncate_dim")
            .and_then(Value::as_u64)
            .map(|d| d as usize),
        // Small batches so cases span several forwards of mixed lengths.
        batch: BatchOptions {
            max_sequences: 3,
            ..BatchOptions::default()
        },
    }
}

fn run_embed_cases(device: Device) {
    let g = goldens();
    let cases = g["embed"].as_array().unwrap();
    let mut models: std::collections::BTreeMap<String, SentenceEmbedder> = Default::default();
    let mut n = 0;
    for c in cases {
        let name = c["model"].as_str().unwrap().to_string();
        if !models.contains_key(&name) {
            match load(&name, device) {
                Some(m) => {
                    models.insert(name.clone(), m);
                }
                None => return,
            }
        }
        let m = &models[&name];
        let texts = strings(&c["texts"]);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let got = m.encode(&refs, &encode_opts(&c["kwargs"])).unwrap();
        let want: Vec<Vec<f32>> = c["embeddings"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect();
        check_rows(
            &format!("{name} {} {:?}", c["kwargs"], device),
            &got,
            &want,
            1e-5,
            1e-4,
        );
        n += 1;
    }
    assert_eq!(n, cases.len());
    assert!(n >= 20, "expected the fixture's cases, ran {n}");
}

#[test]
fn embed_goldens_cpu() {
    run_embed_cases(Device::Cpu);
}

#[test]
fn embed_goldens_gpu() {
    run_embed_cases(Device::Gpu);
}

#[test]
fn layouts_are_read_as_sentence_transformers_reads_them() {
    let legacy = load("legacy-cls-max", Device::Cpu).unwrap();
    assert!(legacy.from_modules());
    assert_eq!(
        legacy.chain().max_length(),
        10,
        "sentence_bert_config max_seq_length"
    );
    assert_eq!(legacy.chain().dim(), 12, "Dense 64 -> 12");
    assert!(legacy.chain().normalizes());
    let modes: Vec<&str> = legacy
        .chain()
        .pooling()
        .modes
        .iter()
        .map(|m| m.name())
        .collect();
    assert_eq!(modes, ["cls", "max"], "legacy flags, in their fixed order");
    let v6 = load("v6-mean-dense-norm", Device::Cpu).unwrap();
    assert_eq!(
        v6.chain().max_length(),
        12,
        "tokenizer_config model_max_length"
    );
    assert_eq!(v6.chain().dim(), 10);
    let all = load("v6-all-pooling", Device::Cpu).unwrap();
    assert_eq!(all.chain().pooling().modes.len(), 6);
    assert!(!all.chain().pooling().include_prompt);
    assert!(!all.chain().normalizes());
    assert_eq!(all.chain().dim(), 24);
}

#[test]
fn overrides_and_bad_options() {
    let dir = st_dir("v6-mean-dense-norm");
    let src = dir.to_string_lossy();
    let cpu = LoadOptions {
        device: Device::Cpu,
        ..Default::default()
    };
    let plain = SentenceEmbedder::load(&src, &cpu, &EmbedderOptions::default()).unwrap();
    let unnormed = SentenceEmbedder::load(
        &src,
        &cpu,
        &EmbedderOptions {
            normalize: Some(false),
            ..Default::default()
        },
    )
    .unwrap();
    let a = plain
        .encode(&["Paris is big"], &EncodeOptions::default())
        .unwrap();
    let b = unnormed
        .encode(&["Paris is big"], &EncodeOptions::default())
        .unwrap();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm(&a[0]) - 1.0).abs() < 1e-5);
    assert!(
        (norm(&b[0]) - 1.0).abs() > 1e-3,
        "normalize false skips Normalize"
    );
    // The same direction either way.
    let cos: f32 = a[0].iter().zip(&b[0]).map(|(x, y)| x * y).sum::<f32>() / norm(&b[0]);
    assert!((cos - 1.0).abs() < 1e-5);
    // --pooling cls replaces the module's mean.
    let cls = SentenceEmbedder::load(
        &src,
        &cpu,
        &EmbedderOptions {
            pooling: Some("cls".parse().unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(cls.chain().pooling().modes[0].name(), "cls");
    assert_ne!(
        cls.encode(&["Paris is big"], &EncodeOptions::default())
            .unwrap(),
        a
    );
    let err = |o: EncodeOptions| plain.encode(&["x"], &o).unwrap_err().to_string();
    let e = err(EncodeOptions {
        prompt_name: Some("nope".into()),
        ..Default::default()
    });
    assert!(
        e.contains("nope") && e.contains("doc") && e.contains("query"),
        "{e}"
    );
    let e = err(EncodeOptions {
        prompt_name: Some("doc".into()),
        prompt: Some("x".into()),
        ..Default::default()
    });
    assert!(e.contains("not both"), "{e}");
    let e = err(EncodeOptions {
        dimensions: Some(11),
        ..Default::default()
    });
    assert!(e.contains("11") && e.contains("10"), "{e}");
    let e = err(EncodeOptions {
        dimensions: Some(0),
        ..Default::default()
    });
    assert!(e.contains("at least 1"), "{e}");
}

/// A copy of a fixture model with one file replaced.
fn broken_copy(name: &str, file: &str, content: &str) -> tempdir::Dir {
    let d = tempdir::Dir::new(name);
    copy_dir(&st_dir(name), d.path());
    std::fs::write(d.path().join(file), content).unwrap();
    d
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

mod tempdir {
    pub struct Dir(std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "bert-wgpu-st-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            Dir(p)
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn unknown_modules_and_bad_configs_are_errors_naming_them() {
    let cpu = LoadOptions {
        device: Device::Cpu,
        ..Default::default()
    };
    let load_err = |d: &std::path::Path| {
        SentenceEmbedder::load(&d.to_string_lossy(), &cpu, &EmbedderOptions::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| panic!("{} loaded", d.display()))
    };
    let modules = r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.base.modules.transformer.Transformer"},
        {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
        {"idx":2,"name":"2","path":"2_LSTM","type":"sentence_transformers.models.LSTM"}]"#;
    let d = broken_copy("v6-mean", "modules.json", modules);
    let e = load_err(d.path());
    assert!(
        e.contains("sentence_transformers.models.LSTM") && e.contains("2_LSTM"),
        "{e}"
    );
    let d = broken_copy("v6-mean", "modules.json", "[{\"idx\": 0}]");
    let e = load_err(d.path());
    assert!(e.contains("modules.json") && e.contains("type"), "{e}");
    let d = broken_copy("v6-mean", "modules.json", "{not json");
    let e = load_err(d.path());
    assert!(
        e.contains("modules.json") && e.contains("invalid JSON"),
        "{e}"
    );
    let d = broken_copy(
        "v6-mean",
        "1_Pooling/config.json",
        r#"{"embedding_dimension": 32, "pooling_mode": "median"}"#,
    );
    let e = load_err(d.path());
    assert!(e.contains("median") && e.contains("1_Pooling"), "{e}");
    let d = broken_copy(
        "v6-mean",
        "1_Pooling/config.json",
        r#"{"embedding_dimension": 48, "pooling_mode": "mean"}"#,
    );
    let e = load_err(d.path());
    assert!(e.contains("48") && e.contains("32"), "{e}");
    let d = broken_copy(
        "legacy-cls-max",
        "2_Dense/config.json",
        r#"{"in_features": 64, "out_features": 12, "activation_function": "torch.nn.modules.activation.Softsign"}"#,
    );
    let e = load_err(d.path());
    assert!(e.contains("Softsign"), "{e}");
    let d = broken_copy(
        "legacy-cls-max",
        "2_Dense/config.json",
        r#"{"in_features": 64, "out_features": 13, "activation_function": "torch.nn.modules.activation.Tanh"}"#,
    );
    let e = load_err(d.path());
    assert!(e.contains("linear.weight") && e.contains("13"), "{e}");
    let d = broken_copy(
        "v6-mean",
        "config_sentence_transformers.json",
        r#"{"prompts": {"q": "query: "}, "default_prompt_name": "passage"}"#,
    );
    let e = load_err(d.path());
    assert!(
        e.contains("passage") && e.contains("default_prompt_name"),
        "{e}"
    );
    // A Dense without model.safetensors (only a .bin) is refused clearly.
    let d = broken_copy("legacy-cls-max", "2_Dense/pytorch_model.bin", "");
    std::fs::remove_file(d.path().join("2_Dense/model.safetensors")).unwrap();
    let e = load_err(d.path());
    assert!(
        e.contains("pytorch_model.bin") && e.contains("2_Dense"),
        "{e}"
    );
}

fn ce_cases(device: Device) {
    let g = goldens();
    let mut checked = 0;
    for c in g["cross_encoder"].as_array().unwrap() {
        let name = c["model"].as_str().unwrap();
        let opts = LoadOptions {
            device,
            ..Default::default()
        };
        let ce = match CrossEncoder::load(&st_dir(name).to_string_lossy(), &opts, None) {
            Ok(ce) => ce,
            Err(bert_wgpu::Error::NoAdapter(_)) if allow_no_gpu() => return,
            Err(e) => panic!("{name}: {e}"),
        };
        let batch = BatchOptions {
            max_sequences: 2,
            ..BatchOptions::default()
        };
        if let Some(pairs) = c.get("pairs") {
            let pairs: Vec<(String, String)> = pairs
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_str().unwrap().into(), p[1].as_str().unwrap().into()))
                .collect();
            let refs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            let got = ce.predict(&refs, &batch).unwrap();
            let want: Vec<Vec<f32>> = c["scores"].as_array().unwrap().iter().map(floats).collect();
            check_rows(
                &format!("{name} predict {device:?}"),
                &got,
                &want,
                1e-5,
                1e-4,
            );
        } else {
            let texts = strings(&c["texts"]);
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let top_k = c["top_k"].as_u64().map(|k| k as usize);
            let got = ce
                .rank(c["query"].as_str().unwrap(), &refs, top_k, &batch)
                .unwrap();
            let want = c["ranked"].as_array().unwrap();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                assert_eq!(
                    g.corpus_id as u64,
                    w["corpus_id"].as_u64().unwrap(),
                    "{name} rank order"
                );
                let ws = w["score"].as_f64().unwrap() as f32;
                assert!(
                    (g.score - ws).abs() <= 1e-5 + 1e-4 * ws.abs(),
                    "{name}: {} vs {ws}",
                    g.score
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn cross_encoder_goldens_cpu() {
    ce_cases(Device::Cpu);
}

#[test]
fn cross_encoder_goldens_gpu() {
    ce_cases(Device::Gpu);
}

/// all-MiniLM-L6-v2 through its modules.json (max_seq_length 256) equals
/// sentence-transformers on texts longer than 256 tokens, within 1e-5.
#[test]
fn minilm_long_texts_equal_sentence_transformers() {
    let g = read_json(&fixtures().join("minilm/st_long.json"));
    assert_eq!(g["max_seq_length"].as_u64(), Some(256));
    let long = g["untruncated_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n.as_u64().unwrap() > 256)
        .count();
    assert!(
        long >= 4,
        "the fixture needs texts past 256 tokens, has {long}"
    );
    let st = SentenceEmbedder::load(
        &minilm_dir().to_string_lossy(),
        &LoadOptions {
            device: Device::Cpu,
            ..Default::default()
        },
        &EmbedderOptions::default(),
    )
    .unwrap();
    assert_eq!(st.chain().max_length(), 256);
    let texts = strings(&g["texts"]);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = st.encode(&refs, &EncodeOptions::default()).unwrap();
    let want: Vec<Vec<f32>> = g["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    check_rows("all-MiniLM-L6-v2 long texts", &got, &want, 1e-5, 0.0);
}
