//! Every transformers 4.x pipeline golden (tests/fixtures/pipelines/goldens.json)
//! through the library on the CPU — labels, words, indices and offsets
//! exactly, scores within 1e-4 — and one case per task on the GPU.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use bert_wgpu::datasets::{prepare_qa_spans, prepare_token_labels};
use bert_wgpu::pipelines::{
    self, Aggregation, ChoiceInput, ClassifyOptions, NerOptions, QaInput, QaOptions,
};
use bert_wgpu::Model;
use serde_json::Value;

const TOL: f64 = 1e-4;

fn pipelines_dir() -> PathBuf {
    common::fixtures().join("pipelines")
}

fn goldens() -> Value {
    common::read_json(&pipelines_dir().join("goldens.json"))
}

struct Models {
    cpu: BTreeMap<String, Model>,
}

impl Models {
    fn new() -> Self {
        Models {
            cpu: BTreeMap::new(),
        }
    }
    fn get(&mut self, name: &str) -> &Model {
        self.cpu
            .entry(name.to_string())
            .or_insert_with(|| common::cpu_model(&pipelines_dir().join(name)))
    }
}

fn close(what: &str, got: f64, want: &Value) {
    let w = want
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: golden is not a number: {want}"));
    assert!(
        (got - w).abs() <= TOL,
        "{what}: got {got}, want {w} (|diff| {} > {TOL})",
        (got - w).abs()
    );
}

fn usize_of(v: &Value) -> usize {
    v.as_u64().unwrap_or_else(|| panic!("not an index: {v}")) as usize
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_i64().unwrap_or_else(|| panic!("not an int: {x}")))
        .collect()
}

/// Runs one golden case on `model`; panics with the case id on a mismatch.
fn run_case(model: &Model, case: &Value) {
    let id = case["id"].as_str().unwrap_or("?").to_string();
    let kwargs = &case["kwargs"];
    let out = &case["output"];
    match case["task"].as_str().unwrap_or("") {
        "text-classification" => {
            let mut opts = ClassifyOptions::default();
            if let Some(k) = kwargs.get("top_k") {
                opts.top_k = k.as_u64().map(|k| k as usize);
            }
            if let Some(f) = kwargs.get("function_to_apply") {
                opts.function_to_apply = Some(f.as_str().unwrap().parse().unwrap());
            }
            let text = case["input"].as_str().unwrap();
            let got =
                pipelines::classify(model, &[text], &opts).unwrap_or_else(|e| panic!("{id}: {e}"));
            let want = out.as_array().unwrap();
            assert_eq!(got[0].len(), want.len(), "{id}: number of labels");
            for (i, (g, w)) in got[0].iter().zip(want).enumerate() {
                assert_eq!(g.label, w["label"].as_str().unwrap(), "{id}: label {i}");
                close(&format!("{id}: score {i}"), f64::from(g.score), &w["score"]);
            }
        }
        "token-classification" => {
            let agg: Aggregation = kwargs
                .get("aggregation_strategy")
                .and_then(Value::as_str)
                .unwrap_or("none")
                .parse()
                .unwrap();
            let opts = NerOptions {
                aggregation: agg,
                ..Default::default()
            };
            let text = case["input"].as_str().unwrap();
            let got = pipelines::ner(model, &[text], &opts).unwrap_or_else(|e| panic!("{id}: {e}"));
            let want = out.as_array().unwrap();
            let got_json = serde_json::to_value(&got[0]).unwrap();
            assert_eq!(
                got[0].len(),
                want.len(),
                "{id}: number of entities\n got  {got_json}\n want {out}"
            );
            for (i, (g, w)) in got_json.as_array().unwrap().iter().zip(want).enumerate() {
                let gk: Vec<&String> = g.as_object().unwrap().keys().collect();
                let wk: Vec<&String> = w.as_object().unwrap().keys().collect();
                assert_eq!(gk, wk, "{id}: entity {i} keys");
                for k in ["entity", "entity_group", "word", "index", "start", "end"] {
                    assert_eq!(
                        g.get(k),
                        w.get(k),
                        "{id}: entity {i} `{k}`\n got  {g}\n want {w}"
                    );
                }
                close(
                    &format!("{id}: entity {i} score"),
                    g["score"].as_f64().unwrap(),
                    &w["score"],
                );
            }
        }
        "question-answering" => {
            let mut opts = QaOptions::default();
            for (k, v) in kwargs.as_object().unwrap() {
                match k.as_str() {
                    "top_k" => opts.top_k = usize_of(v),
                    "handle_impossible_answer" => {
                        opts.handle_impossible_answer = v.as_bool().unwrap()
                    }
                    "max_answer_len" => opts.max_answer_len = usize_of(v),
                    "doc_stride" => opts.doc_stride = Some(usize_of(v)),
                    "max_seq_len" => opts.max_seq_len = Some(usize_of(v)),
                    "align_to_words" => opts.align_to_words = v.as_bool().unwrap(),
                    other => panic!("{id}: unknown kwarg {other}"),
                }
            }
            let inp = &case["input"];
            let input = QaInput::new(
                inp["question"].as_str().unwrap(),
                inp["context"].as_str().unwrap(),
            );
            let got = pipelines::qa(model, &[input], &opts).unwrap_or_else(|e| panic!("{id}: {e}"));
            let want: Vec<Value> = match out {
                Value::Array(a) => a.clone(),
                o => vec![o.clone()],
            };
            assert_eq!(
                got[0].len(),
                want.len(),
                "{id}: number of answers: {:?}",
                got[0]
            );
            for (i, (g, w)) in got[0].iter().zip(&want).enumerate() {
                assert_eq!(g.answer, w["answer"].as_str().unwrap(), "{id}: answer {i}");
                assert_eq!(g.start, usize_of(&w["start"]), "{id}: answer {i} start");
                assert_eq!(g.end, usize_of(&w["end"]), "{id}: answer {i} end");
                close(&format!("{id}: answer {i} score"), g.score, &w["score"]);
            }
        }
        "multiple-choice" => {
            let inp = &case["input"];
            let options: Vec<String> = inp["options"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_str().unwrap().to_string())
                .collect();
            let input = ChoiceInput {
                context: inp
                    .get("context")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                question: inp["question"].as_str().unwrap().to_string(),
                options: options.clone(),
            };
            let tok = model.tokenizer().unwrap();
            let enc = pipelines::choice_encoding(
                tok,
                input.context.as_deref(),
                &input.question,
                &input.options,
            )
            .unwrap();
            let want_ids: Vec<Vec<i64>> = out["input_ids"][0]
                .as_array()
                .unwrap()
                .iter()
                .map(ints)
                .collect();
            let got_ids: Vec<Vec<i64>> = enc
                .input_ids
                .chunks(enc.seq)
                .map(|r| r.iter().map(|&x| i64::from(x)).collect())
                .collect();
            assert_eq!(got_ids, want_ids, "{id}: input_ids");
            let got = pipelines::choose(model, &[input], &Default::default())
                .unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(got[0].choice, usize_of(&out["choice"]), "{id}: choice");
            assert_eq!(got[0].option, options[got[0].choice], "{id}: option");
            for (i, (g, w)) in got[0]
                .logits
                .iter()
                .zip(out["logits"].as_array().unwrap())
                .enumerate()
            {
                close(&format!("{id}: logit {i}"), f64::from(*g), w);
            }
            for (i, (g, w)) in got[0]
                .scores
                .iter()
                .zip(out["scores"].as_array().unwrap())
                .enumerate()
            {
                close(&format!("{id}: score {i}"), f64::from(*g), w);
            }
        }
        "prepare-token-labels" => {
            let inp = &case["input"];
            let words: Vec<String> = inp["words"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap().to_string())
                .collect();
            let cfg = model.config();
            let labels: Vec<i64> = inp["labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    bert_wgpu::datasets::class_index(
                        cfg,
                        &bert_wgpu::datasets::LabelValue::Name(l.as_str().unwrap().into()),
                    )
                    .unwrap()
                })
                .collect();
            let all = kwargs["label_all_tokens"].as_bool().unwrap();
            let f = prepare_token_labels(model.tokenizer().unwrap(), &words, &labels, all)
                .unwrap_or_else(|e| panic!("{id}: {e}"));
            let ids: Vec<i64> = f.encoded.ids.iter().map(|&x| i64::from(x)).collect();
            assert_eq!(ids, ints(&out["input_ids"]), "{id}: input_ids");
            assert_eq!(f.labels, ints(&out["labels"]), "{id}: labels");
        }
        "prepare-qa-spans" => {
            let inp = &case["input"];
            let feats = prepare_qa_spans(
                model.tokenizer().unwrap(),
                inp["question"].as_str().unwrap(),
                inp["context"].as_str().unwrap(),
                Some((
                    inp["answer_text"].as_str().unwrap(),
                    usize_of(&inp["answer_start"]),
                )),
                usize_of(&inp["max_length"]),
                usize_of(&inp["stride"]),
            )
            .unwrap_or_else(|e| panic!("{id}: {e}"));
            let want = out.as_array().unwrap();
            assert_eq!(feats.len(), want.len(), "{id}: number of windows");
            for (i, (g, w)) in feats.iter().zip(want).enumerate() {
                let ids: Vec<i64> = g.encoded.ids.iter().map(|&x| i64::from(x)).collect();
                let types: Vec<i64> = g.encoded.type_ids.iter().map(|&x| i64::from(x)).collect();
                assert_eq!(ids, ints(&w["input_ids"]), "{id}: window {i} input_ids");
                assert_eq!(
                    types,
                    ints(&w["token_type_ids"]),
                    "{id}: window {i} token_type_ids"
                );
                assert_eq!(
                    g.start_position,
                    usize_of(&w["start_position"]),
                    "{id}: window {i} start"
                );
                assert_eq!(
                    g.end_position,
                    usize_of(&w["end_position"]),
                    "{id}: window {i} end"
                );
            }
        }
        other => panic!("{id}: unknown task {other}"),
    }
}

/// The text a panic carried.
fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn every_golden_on_cpu() {
    let g = goldens();
    let cases = g["cases"].as_array().unwrap();
    assert!(
        cases.len() >= 60,
        "goldens.json has only {} cases",
        cases.len()
    );
    let mut models = Models::new();
    let mut failures = Vec::new();
    for case in cases {
        let model = models.get(case["model"].as_str().unwrap());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(model, case)));
        if let Err(e) = r {
            failures.push(panic_message(e.as_ref()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} goldens differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    println!("{} goldens pass on the CPU", cases.len());
}

/// transformers' pipelines on the BERT family's models (each with its own
/// tokenizer: RoBERTa's byte-level BPE, XLM-R's Unigram, WordPiece),
/// `tests/fixtures/family/*/pipelines.json`, on the CPU.
#[test]
fn family_pipelines_match_transformers() {
    let dirs = [
        "roberta-seqcls",
        "roberta-qa",
        "xlmr-seqcls-multilabel",
        "distilbert-seqcls",
        "distilbert-qa",
        "electra-tokcls",
    ];
    let mut ran = 0;
    let mut failures = Vec::new();
    for name in dirs {
        let dir = common::fixtures().join("family").join(name);
        let model = common::cpu_model(&dir);
        let g = common::read_json(&dir.join("pipelines.json"));
        for case in g["cases"].as_array().expect("cases") {
            let r =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(&model, case)));
            if let Err(e) = r {
                failures.push(format!("{name}: {}", panic_message(e.as_ref())));
            }
            ran += 1;
        }
    }
    assert!(ran >= dirs.len(), "only {ran} family pipeline cases");
    assert!(
        failures.is_empty(),
        "{} of {ran} family pipeline goldens differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("{ran} family pipeline goldens pass on the CPU");
}

/// One case per task (the longest QA context included) on the GPU; every
/// case with BERT_WGPU_ALL_GOLDENS_ON_GPU=1.
#[test]
fn goldens_on_gpu() {
    let g = goldens();
    let cases = g["cases"].as_array().unwrap();
    let all: Vec<&str> = cases.iter().filter_map(|c| c["id"].as_str()).collect();
    let subset = [
        "textcls/seqcls/0/top_k_none",
        "textcls/seqcls-multilabel/1/top_k_none",
        "textcls/seqcls-regression/2/default",
        "ner/1/simple",
        "ner/3/average",
        "qa/short/top_k_3",
        "qa/long/impossible_top_k_3",
        "mc/with_context",
    ];
    let wanted: &[&str] = if std::env::var("BERT_WGPU_ALL_GOLDENS_ON_GPU").is_ok_and(|v| v == "1") {
        &all
    } else {
        &subset
    };
    let mut models: BTreeMap<String, Model> = BTreeMap::new();
    for &id in wanted {
        let case = cases
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("golden {id} not found"));
        let name = case["model"].as_str().unwrap().to_string();
        if !models.contains_key(&name) {
            match common::gpu_model(&pipelines_dir().join(&name)) {
                Some(m) => {
                    models.insert(name.clone(), m);
                }
                None => return,
            }
        }
        run_case(&models[&name], case);
    }
    if let Some(m) = models.values().next() {
        println!("{} goldens pass on {}", wanted.len(), m.device_name());
    }
}

#[test]
fn qa_top_k_one_is_the_best_of_top_k() {
    let mut models = Models::new();
    let m = models.get("qa");
    let input = QaInput::new(
        "Where is the Eiffel Tower located?",
        "The Eiffel Tower is located in Paris.",
    );
    let one = pipelines::qa(m, std::slice::from_ref(&input), &QaOptions::default()).unwrap();
    let three = pipelines::qa(
        m,
        &[input],
        &QaOptions {
            top_k: 3,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(one[0].len(), 1);
    assert_eq!(one[0][0], three[0][0]);
    // character offsets index the context
    let ctx: Vec<char> = "The Eiffel Tower is located in Paris.".chars().collect();
    for a in &three[0] {
        assert_eq!(a.answer, ctx[a.start..a.end].iter().collect::<String>());
    }
}

#[test]
fn pipelines_refuse_the_wrong_head() {
    let mut models = Models::new();
    let m = models.get("seqcls");
    let e = pipelines::ner(m, &["John lives in Paris!"], &NerOptions::default()).unwrap_err();
    assert!(e.to_string().contains("BertForTokenClassification"), "{e}");
    let e = pipelines::qa(m, &[QaInput::new("q", "c")], &QaOptions::default()).unwrap_err();
    assert!(e.to_string().contains("BertForQuestionAnswering"), "{e}");
}

#[test]
fn qa_rejects_bad_windows_without_panicking() {
    let mut models = Models::new();
    let m = models.get("qa");
    let long_q = "where is the tower ".repeat(20);
    let ctx = "the tower is in paris . ".repeat(20);
    let opts = QaOptions {
        max_seq_len: Some(64),
        doc_stride: Some(16),
        ..Default::default()
    };
    let e = pipelines::qa(m, &[QaInput::new(long_q, ctx.clone())], &opts).unwrap_err();
    assert!(e.to_string().contains("doc_stride"), "{e}");
    let e = pipelines::qa(
        m,
        &[QaInput::new("where?", ctx)],
        &QaOptions {
            max_seq_len: Some(64),
            doc_stride: Some(100),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("doc_stride"), "{e}");
    let e = pipelines::qa(m, &[QaInput::new("where?", "")], &QaOptions::default()).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
}

#[test]
fn wordpiece_decode_matches_the_tokenizer_decoder() {
    let mut models = Models::new();
    let m = models.get("ner");
    let tok = m.tokenizer().unwrap();
    for text in [
        "Angela Merkel visited the Eiffel Tower in Zürich with Microsoft.",
        "Mary met John in London; then Mary, John and Angela flew to New York (via Paris) for 20€!",
        "I don't think it's what you're saying , is it ?",
    ] {
        let e = tok.encode_one(text, None).unwrap();
        let tokens: Vec<String> = e.tokens[1..e.len() - 1].to_vec();
        assert_eq!(
            bert_wgpu::tokenize::wordpiece_decode(&tokens, "##", true),
            tok.tokens_to_string(&tokens).unwrap(),
            "{text}"
        );
    }
}

#[test]
fn embed_and_hidden_states_of_the_seed_sentence() {
    let mut models = Models::new();
    let m = models.get("seqcls");
    let (tokens, rows) = pipelines::hidden_states(m, "Hello, how are you?").unwrap();
    assert_eq!(tokens.first().map(String::as_str), Some("[CLS]"));
    assert_eq!(tokens.last().map(String::as_str), Some("[SEP]"));
    assert_eq!(rows.len(), tokens.len());
    assert_eq!(rows[0].len(), m.config().hidden_size);
    let e = pipelines::embed(
        m,
        &["Hello, how are you?", "I love this movie!"],
        &Default::default(),
    )
    .unwrap();
    assert_eq!(e.len(), 2);
    for v in &e {
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
}

// ---------------------------------------------------------------- CLI

fn bin(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bert-wgpu"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env("HF_HUB_OFFLINE", "1")
        .args(args)
        .output()
        .unwrap()
}

fn run_ok(args: &[&str]) -> String {
    let out = bin(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn mdir(name: &str) -> String {
    pipelines_dir().join(name).to_string_lossy().into_owned()
}

fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn cli_classify_json_and_table() {
    let m = mdir("seqcls");
    let data = common::fixtures().join("datasets/seqcls.csv");
    let out = run_ok(&[
        "classify",
        "--model",
        &m,
        "--device",
        "cpu",
        "--json",
        "--top-k",
        "0",
        "I love this movie!",
        "--data",
        data.to_str().unwrap(),
    ]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 7, "1 argument + 6 rows");
    assert_eq!(lines[0]["text"], "I love this movie!");
    assert_eq!(
        lines[6]["text"],
        "Some people say that the best coffee in the country is sold in a little shop by the park."
    );
    // key order as HF: label, score
    assert!(out
        .lines()
        .next()
        .unwrap()
        .contains("{\"label\":\"POSITIVE\",\"score\":"));
    let mut models = Models::new();
    let lib = pipelines::classify(
        models.get("seqcls"),
        &["I love this movie!"],
        &ClassifyOptions {
            top_k: None,
            ..Default::default()
        },
    )
    .unwrap();
    for (g, w) in lines[0]["labels"].as_array().unwrap().iter().zip(&lib[0]) {
        assert_eq!(g["label"], w.label.as_str());
        assert!((g["score"].as_f64().unwrap() - f64::from(w.score)).abs() < 1e-6);
    }
    let table = run_ok(&[
        "classify",
        "--model",
        &m,
        "--device",
        "cpu",
        "I love this movie!",
    ]);
    assert!(
        table.contains("POSITIVE") && table.contains("score"),
        "{table}"
    );
}

#[test]
fn cli_ner_json_keys_and_offsets() {
    let m = mdir("ner");
    let text = "Angela Merkel visited the Eiffel Tower in Zürich with Microsoft.";
    let out = run_ok(&["ner", "--model", &m, "--device", "cpu", "--json", text]);
    let first = out.lines().next().unwrap();
    assert!(first.contains("{\"entity\":"), "HF key order: {first}");
    let v = json_lines(&out);
    let chars: Vec<char> = text.chars().collect();
    for e in v[0]["entities"].as_array().unwrap() {
        let (s, en) = (
            e["start"].as_u64().unwrap() as usize,
            e["end"].as_u64().unwrap() as usize,
        );
        assert!(en <= chars.len() && s < en, "{e}");
    }
    let out = run_ok(&[
        "ner",
        "--model",
        &m,
        "--device",
        "cpu",
        "--json",
        "--aggregation",
        "first",
        text,
    ]);
    assert!(out.contains("\"entity_group\":"), "{out}");
    assert!(!out.contains("\"index\":"), "{out}");
    let data = common::fixtures().join("datasets/ner.jsonl");
    let out = run_ok(&[
        "ner",
        "--model",
        &m,
        "--device",
        "cpu",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(out.contains("\"John lives in Paris !\""), "{out}");
    assert!(out.contains("entity") && out.contains("span"), "{out}");
}

#[test]
fn cli_qa_positional_flags_and_data() {
    let m = mdir("qa");
    let q = "Where is the Eiffel Tower located?";
    let c = "The Eiffel Tower is located in Paris.";
    let a = run_ok(&["qa", "--model", &m, "--device", "cpu", "--json", q, c]);
    let b = run_ok(&[
        "qa",
        "--model",
        &m,
        "--device",
        "cpu",
        "--json",
        "--question",
        q,
        "--context",
        c,
    ]);
    assert_eq!(a, b);
    let v = json_lines(&a);
    let ans = &v[0]["answer"];
    let mut models = Models::new();
    let lib = pipelines::qa(
        models.get("qa"),
        &[QaInput::new(q, c)],
        &QaOptions::default(),
    )
    .unwrap();
    assert_eq!(ans["answer"], lib[0][0].answer.as_str());
    assert_eq!(ans["start"], lib[0][0].start);
    assert!(a.contains("{\"score\":"), "HF key order: {a}");
    let three = run_ok(&[
        "qa", "--model", &m, "--device", "cpu", "--json", "--top-k", "3", q, c,
    ]);
    assert_eq!(
        json_lines(&three)[0]["answers"].as_array().unwrap().len(),
        3
    );
    let table = run_ok(&["qa", "--model", &m, "--device", "cpu", q, c]);
    assert!(
        table.contains(&format!("[{}]", lib[0][0].answer)),
        "{table}"
    );
    let data = common::fixtures().join("datasets/qa.csv");
    let out = run_ok(&[
        "qa",
        "--model",
        &m,
        "--device",
        "cpu",
        "--json",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(json_lines(&out).len(), 4);
    let odd = bin(&["qa", "--model", &m, "--device", "cpu", q]);
    assert_eq!(odd.status.code(), Some(2));
}

#[test]
fn cli_choose_and_embed() {
    let m = mdir("mc");
    let q = "Where is the Eiffel Tower located?";
    let out = run_ok(&[
        "choose",
        "--model",
        &m,
        "--device",
        "cpu",
        "--json",
        "--question",
        q,
        "--context",
        "The Eiffel Tower is located in Paris.",
        "--option",
        "London",
        "--option",
        "Paris",
        "--option",
        "Berlin",
        "--option",
        "Rome",
    ]);
    let v = json_lines(&out);
    let g = goldens();
    let golden = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "mc/with_context")
        .unwrap();
    assert_eq!(v[0]["choice"], golden["output"]["choice"]);
    let idx = v[0]["choice"].as_u64().unwrap() as usize;
    assert_eq!(v[0]["option"], ["London", "Paris", "Berlin", "Rome"][idx]);
    let scores = v[0]["scores"].as_array().unwrap();
    let sum: f64 = scores.iter().map(|s| s.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-5);
    let data = common::fixtures().join("datasets/mc.csv");
    let out = run_ok(&[
        "choose",
        "--model",
        &m,
        "--device",
        "cpu",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(out.matches("Q: ").count(), 5, "{out}");
    assert_eq!(out.matches("  * ").count(), 5, "{out}");

    let s = mdir("seqcls");
    let data = common::fixtures().join("datasets/seqcls.jsonl");
    let out = run_ok(&[
        "embed",
        "--model",
        &s,
        "--device",
        "cpu",
        "--json",
        "Hello, how are you?",
        "--data",
        data.to_str().unwrap(),
    ]);
    let v = json_lines(&out);
    assert_eq!(v.len(), 7);
    assert_eq!(v[0]["text"], "Hello, how are you?");
    assert_eq!(v[1]["text"], "I love this movie!");
    let mut models = Models::new();
    let lib = pipelines::embed(
        models.get("seqcls"),
        &["I love this movie!"],
        &Default::default(),
    )
    .unwrap();
    for (g, w) in v[1]["embedding"].as_array().unwrap().iter().zip(&lib[0]) {
        assert!((g.as_f64().unwrap() - f64::from(*w)).abs() < 1e-5);
    }
}

/// A "[CLS]" typed inside the question is unmasked like the real one (HF
/// does the same), and its offsets are the question's: a span from it used
/// to report an end past the context (the fuzzer's `qa_postprocess` find:
/// end 15 for a 12-character context). The offsets are now clamped as the
/// answer text always was, so the answer is exactly context[start..end].
#[test]
fn a_cls_typed_in_the_question_gives_a_well_formed_answer() {
    use bert_wgpu::tokenize::BertTokenizer;
    use bert_wgpu::BertConfig;
    let dir = pipelines_dir().join("qa");
    let cfg = BertConfig::from_file(&dir.join("config.json")).unwrap();
    let tok = BertTokenizer::from_file(&dir.join("tokenizer.json"), &cfg).unwrap();
    let (question, context) = ("where is the long tower [CLS] today", "a tower");
    let windows = tok.encode_windows(question, context, 64, 16).unwrap();
    let w = &windows[0];
    let cls = tok.cls_id().unwrap();
    let typed_cls = (1..w.len())
        .find(|&i| w.ids[i] == cls)
        .expect("a second [CLS]");
    let last_context = (0..w.len())
        .rev()
        .find(|&i| w.sequence_ids[i] == Some(1))
        .unwrap();
    let chars: Vec<char> = context.chars().collect();
    // Every span that starts at the typed [CLS]: to itself (offsets wholly
    // past the context) and to the last context token (start after end).
    for end_at in [typed_cls, last_context] {
        let mut start = vec![-8.0f32; w.len()];
        let mut end = vec![-8.0f32; w.len()];
        start[typed_cls] = 8.0;
        end[end_at] = 8.0;
        for align_to_words in [false, true] {
            let opts = QaOptions {
                top_k: 3,
                max_answer_len: 60,
                align_to_words,
                ..Default::default()
            };
            let answers = pipelines::qa_postprocess(&tok, context, &[w], &[(&start, &end)], &opts);
            assert!(!answers.is_empty());
            for a in &answers {
                assert!(a.start <= a.end && a.end <= chars.len(), "{a:?}");
                let span: String = chars[a.start..a.end].iter().collect();
                assert_eq!(a.answer, span, "{a:?}");
            }
        }
    }
}
