//! `--data` jobs from the command line: `embed` following modules.json and
//! writing `.npy`, stdin as a pipeline stage, a malformed line after the
//! rows before it were written, `rerank`, and the task subcommands streaming
//! their results in input order.

mod common;

use std::io::Write;
use std::process::Output;

use common::{fixtures, floats, read_json};
use serde_json::Value;

fn run(args: &[&str], stdin: &str) -> Output {
    common::run_bin(args, stdin)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn st(name: &str) -> String {
    fixtures()
        .join("st")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "bert-wgpu-cli-stream-{}-{name}",
        std::process::id()
    ))
}

/// The golden case of `model` with these kwargs.
fn golden(model: &str, kwargs: Value) -> (Vec<String>, Vec<Vec<f32>>) {
    let g = read_json(&fixtures().join("st/goldens.json"));
    let c = g["embed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == model && c["kwargs"] == kwargs)
        .unwrap_or_else(|| panic!("no golden for {model} {kwargs}"));
    let texts = c["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let rows = c["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    (texts, rows)
}

fn close(got: &[f32], want: &[f32], tag: &str) {
    assert_eq!(got.len(), want.len(), "{tag}: width");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 + 1e-4 * b.abs(),
            "{tag}[{i}]: {a} vs {b}"
        );
    }
}

fn read_npy(path: &std::path::Path) -> (Vec<usize>, Vec<f32>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
    let shape = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let dims: Vec<usize> = shape
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let data = b[10 + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (dims, data)
}

#[test]
fn embed_data_to_npy_follows_the_modules_and_prompts() {
    let (texts, want) = golden(
        "v6-mean-dense-norm",
        serde_json::json!({"prompt_name": "doc"}),
    );
    let data = tmp("texts.jsonl");
    let mut f = std::fs::File::create(&data).unwrap();
    for t in &texts {
        writeln!(f, "{}", serde_json::json!({ "text": t })).unwrap();
    }
    let npy = tmp("out.npy");
    let m = st("v6-mean-dense-norm");
    ok(&run(
        &[
            "embed",
            "--device",
            "cpu",
            "--model",
            &m,
            "--data",
            &data.to_string_lossy(),
            "--output",
            &npy.to_string_lossy(),
            "--prompt-name",
            "doc",
            "--batch-size",
            "2",
        ],
        "",
    ));
    let (dims, values) = read_npy(&npy);
    assert_eq!(dims, vec![texts.len(), 10]);
    for (r, w) in want.iter().enumerate() {
        close(&values[r * 10..(r + 1) * 10], w, &format!("npy row {r}"));
    }
    // --dimensions: truncated and normalised again (the model normalises).
    let (_, want4) = golden(
        "v6-mean-dense-norm",
        serde_json::json!({"truncate_dim": 4, "normalize_embeddings": true}),
    );
    let out = ok(&run(
        &[
            "embed",
            "--device",
            "cpu",
            "--model",
            &m,
            "--data",
            &data.to_string_lossy(),
            "--json",
            "--dimensions",
            "4",
        ],
        "",
    ));
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), texts.len());
    for (r, (l, w)) in lines.iter().zip(&want4).enumerate() {
        assert_eq!(l["text"], texts[r].as_str(), "in input order");
        let got = floats(&l["embedding"]);
        close(&got, w, &format!("dimensions 4 row {r}"));
    }
    let _ = std::fs::remove_file(&data);
    let _ = std::fs::remove_file(&npy);
}

#[test]
fn stdin_text_lines_give_one_output_line_each() {
    let (texts, want) = golden("v6-mean", serde_json::json!({}));
    // Text format: one text per line, the empty one too.
    let input: String = texts.iter().map(|t| format!("{t}\n")).collect();
    let out = ok(&run(
        &[
            "embed",
            "--device",
            "cpu",
            "--model",
            &st("v6-mean"),
            "--data",
            "-",
            "--format",
            "text",
            "--json",
        ],
        &input,
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), texts.len());
    for (r, l) in lines.iter().enumerate() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["text"], texts[r].as_str());
        let got = floats(&v["embedding"]);
        close(&got, &want[r], &format!("stdin row {r}"));
    }
}

#[test]
fn a_malformed_line_is_named_after_the_lines_before_it_are_written() {
    let mut input = String::new();
    for i in 0..7 {
        input.push_str(&format!("{{\"text\": \"sentence number {i}\"}}\n"));
    }
    input.push_str("{\"text\": 42}\n{\"text\": \"never\"}\n");
    let npy = tmp("partial.npy");
    let out = run(
        &[
            "embed",
            "--device",
            "cpu",
            "--model",
            &st("v6-mean"),
            "--data",
            "-",
            "--output",
            &npy.to_string_lossy(),
            "--window",
            "3",
        ],
        &input,
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 8") && err.contains("text"), "{err}");
    let (dims, _) = read_npy(&npy);
    assert_eq!(dims, vec![7, 32], "the 7 rows before the bad line");
    let _ = std::fs::remove_file(&npy);
    // JSON lines on stdout: the same 7, in order.
    let out = run(
        &[
            "embed",
            "--device",
            "cpu",
            "--model",
            &st("v6-mean"),
            "--data",
            "-",
            "--json",
            "--window",
            "2",
        ],
        &input,
    );
    assert_eq!(out.status.code(), Some(2));
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let want: Vec<String> = (0..7).map(|i| format!("sentence number {i}")).collect();
    assert_eq!(got, want);
}

#[test]
fn rerank_matches_cross_encoder_rank_and_predict() {
    let g = read_json(&fixtures().join("st/goldens.json"));
    let rank = g["cross_encoder"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c.get("ranked").is_some())
        .unwrap();
    let texts: Vec<&str> = rank["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let mut args = vec![
        "rerank",
        "--device",
        "cpu",
        "--model",
        "",
        "--query",
        rank["query"].as_str().unwrap(),
        "--top-k",
        "4",
        "--json",
    ];
    let m = st("ce-sigmoid");
    args[4] = &m;
    args.extend(texts.iter().copied());
    let out = ok(&run(&args, ""));
    let got: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want = rank["ranked"].as_array().unwrap();
    assert_eq!(got.len(), 4);
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g["corpus_id"], w["corpus_id"]);
        let (a, b) = (g["score"].as_f64().unwrap(), w["score"].as_f64().unwrap());
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        assert_eq!(g["text"], texts[w["corpus_id"].as_u64().unwrap() as usize]);
    }
    // Without --query, --data rows carry their own query: scores in input order.
    let pred = g["cross_encoder"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == "ce-sigmoid" && c.get("pairs").is_some())
        .unwrap();
    let input: String = pred["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}\n", serde_json::json!({"query": p[0], "text": p[1]})))
        .collect();
    let out = ok(&run(
        &[
            "rerank", "--device", "cpu", "--model", &m, "--data", "-", "--json",
        ],
        &input,
    ));
    let scores: Vec<f64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["score"]
                .as_f64()
                .unwrap()
        })
        .collect();
    let want: Vec<f64> = pred["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[0].as_f64().unwrap())
        .collect();
    assert_eq!(scores.len(), want.len());
    for (a, b) in scores.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    // A row without a query and no --query: an error naming the field and line.
    let out = run(
        &["rerank", "--device", "cpu", "--model", &m, "--data", "-"],
        "{\"query\": \"q\", \"text\": \"a\"}\n{\"text\": \"b\"}\n",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("query"), "{err}");
}

#[test]
fn classify_data_streams_in_input_order_under_a_small_budget() {
    let dir = fixtures().join("pipelines/seqcls");
    let texts: Vec<String> = (0..40)
        .map(|i| "i love this movie ".repeat(1 + (i * 7) % 11) + &format!("number {i}"))
        .collect();
    let input: String = texts
        .iter()
        .map(|t| format!("{}\n", serde_json::json!({ "text": t })))
        .collect();
    let m = dir.to_string_lossy().into_owned();
    let big = ok(&run(
        &[
            "classify", "--device", "cpu", "--model", &m, "--data", "-", "--json",
        ],
        &input,
    ));
    // A tiny token budget and window: many forwards, other batch mixes.
    let small = ok(&run(
        &[
            "classify",
            "--device",
            "cpu",
            "--model",
            &m,
            "--data",
            "-",
            "--json",
            "--batch-tokens",
            "64",
            "--window",
            "5",
        ],
        &input,
    ));
    let parse = |s: &str| -> Vec<Value> {
        s.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (a, b) = (parse(&big), parse(&small));
    assert_eq!(a.len(), 40);
    assert_eq!(b.len(), 40);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x["text"], texts[i].as_str(), "input order");
        assert_eq!(x["labels"][0]["label"], y["labels"][0]["label"]);
        let (p, q) = (
            x["labels"][0]["score"].as_f64().unwrap(),
            y["labels"][0]["score"].as_f64().unwrap(),
        );
        assert!(
            (p - q).abs() < 1e-5,
            "row {i}: batching changed the score {p} vs {q}"
        );
    }
}
