//! The `bert-wgpu` binary: output format, exit statuses, one-line errors.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{fixtures, minilm_dir, read_json, tensor, tiny_dir};
use serde_json::Value;

fn bin() -> Command {
    common::bin_command()
}

fn run(args: &[&str], stdin: &str) -> Output {
    common::run_bin(args, stdin)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A failed run: status in 1..=100, stderr exactly one line naming `words`,
/// no panic. Returns the line.
fn assert_one_line_error(tag: &str, out: &Output, words: &[&str]) -> String {
    let err = text(&out.stderr);
    let code = out.status.code();
    assert!(
        matches!(code, Some(1..=100)),
        "{tag}: exit status {code:?}, stderr: {err}"
    );
    assert!(!err.contains("panicked"), "{tag}: panic: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{tag}: stderr is not one line: {err:?}");
    assert!(err.ends_with('\n'), "{tag}: {err:?}");
    for w in words {
        assert!(lines[0].contains(w), "{tag}: `{w}` not in: {}", lines[0]);
    }
    lines[0].to_string()
}

fn json_lines(out: &[u8]) -> Vec<Value> {
    text(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn shape(v: &Value) -> Vec<usize> {
    let mut out = Vec::new();
    let mut cur = v;
    while let Value::Array(items) = cur {
        out.push(items.len());
        match items.first() {
            Some(x) => cur = x,
            None => break,
        }
    }
    out
}

fn flat(v: &Value, out: &mut Vec<f32>) {
    match v {
        Value::Array(items) => items.iter().for_each(|x| flat(x, out)),
        Value::Number(n) => out.push(n.as_f64().unwrap() as f32),
        other => panic!("not a number: {other}"),
    }
}

fn as_tensor(v: &Value) -> bert_wgpu::Tensor {
    let mut data = Vec::new();
    flat(v, &mut data);
    bert_wgpu::Tensor::new(shape(v), data).unwrap()
}

/// A fresh, empty folder under the system temp dir, unique per process and
/// tag, removed when dropped.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp(tag: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("bert-wgpu-cli-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn tiny(name: &str) -> String {
    tiny_dir(name).to_string_lossy().into_owned()
}

const BASE: &str = "tests/fixtures/tiny/base-gelu";

#[test]
fn infer_two_valid_lines() {
    let out = run(
        &["infer", "--device", "cpu", "--model", BASE],
        "{\"input_ids\": [[2, 5, 3]]}\n\n{\"input_ids\": [[2, 7, 8, 3], [2, 9, 3, 0]], \"attention_mask\": [[1, 1, 1, 1], [1, 1, 1, 0]]}\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "stderr on success");
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 2, "{}", text(&out.stdout));
    assert_eq!(shape(&lines[0]["last_hidden_state"]), vec![1, 3, 32]);
    assert_eq!(shape(&lines[0]["pooler_output"]), vec![1, 32]);
    assert_eq!(shape(&lines[1]["last_hidden_state"]), vec![2, 4, 32]);
    assert_eq!(shape(&lines[1]["pooler_output"]), vec![2, 32]);
    // ids are not echoed for id input.
    assert!(lines[0].get("input_ids").is_none());
}

#[test]
fn infer_matches_the_library_and_hf_fixture() {
    // The first case of the tiny fixture through the CLI equals HF's output.
    let cases = read_json(&tiny_dir("base-gelu").join("cases.json"));
    let case = &cases["cases"][0];
    let line = serde_json::json!({
        "input_ids": case["input_ids"],
        "attention_mask": case["attention_mask"],
        "token_type_ids": case["token_type_ids"],
    })
    .to_string();
    let out = run(&["infer", "--device", "cpu", "--model", BASE], &line);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = &json_lines(&out.stdout)[0];
    let want = tensor(&case["outputs"]["last_hidden_state"]);
    common::assert_close(
        "cli tiny last_hidden_state",
        &as_tensor(&v["last_hidden_state"]),
        &want,
        1e-4,
        1e-3,
    );
}

#[test]
fn bad_second_line_stops_with_one_line() {
    // (tag, second line, words)
    let cases = [
        (
            "id_past_vocab",
            r#"{"input_ids": [[2, 99, 3]]}"#,
            vec!["input_ids[0][1]", "99"],
        ),
        ("not_json", r#"{"input_ids": [[2, 5"#, vec!["invalid JSON"]),
        (
            "ragged",
            r#"{"input_ids": [[2, 5], [2]]}"#,
            vec!["input_ids[1]"],
        ),
        (
            "type_id",
            r#"{"input_ids": [[2, 5]], "token_type_ids": [[0, 2]]}"#,
            vec!["token_type_ids[0][1]"],
        ),
        (
            "mask_shape",
            r#"{"input_ids": [[2, 5]], "attention_mask": [[1]]}"#,
            vec!["attention_mask"],
        ),
        (
            "float",
            r#"{"input_ids": [[2, 1.5]]}"#,
            vec!["input_ids[0][1]", "1.5"],
        ),
        ("empty", r#"{"input_ids": []}"#, vec!["empty"]),
        ("array", r#"[[2, 5]]"#, vec!["JSON object"]),
        (
            "unknown_key",
            r#"{"input_ids": [[2]], "foo": 1}"#,
            vec!["foo"],
        ),
        (
            "text_no_tokenizer",
            r#"{"text": ["hi"]}"#,
            vec!["tokenizer"],
        ),
        (
            "labels_on_base",
            r#"{"input_ids": [[2]], "labels": [0]}"#,
            vec!["labels"],
        ),
    ];
    for (tag, bad, words) in cases {
        let stdin =
            format!("{{\"input_ids\": [[2, 5, 3]]}}\n{bad}\n{{\"input_ids\": [[2, 5, 3]]}}\n");
        let out = run(&["infer", "--device", "cpu", "--model", BASE], &stdin);
        let mut all = vec!["line 2"];
        all.extend(words);
        assert_one_line_error(tag, &out, &all);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{tag}: input errors exit with 2"
        );
        // The first line's output was written; the third was never run.
        let lines = json_lines(&out.stdout);
        assert_eq!(lines.len(), 1, "{tag}");
        assert_eq!(shape(&lines[0]["last_hidden_state"]), vec![1, 3, 32]);
    }
}

#[test]
fn label_errors_through_the_cli() {
    let out = run(
        &["infer", "--device", "cpu", "--model", &tiny("seqcls-single")],
        "{\"input_ids\": [[2, 5, 3]], \"labels\": [1]}\n{\"input_ids\": [[2, 5, 3]], \"labels\": [3]}\n",
    );
    assert_one_line_error("seqcls_label", &out, &["line 2", "labels[0]", "3"]);
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 1);
    assert_eq!(shape(&lines[0]["logits"]), vec![1, 3]);
    assert!(lines[0]["loss"].is_number());

    let out = run(
        &["infer", "--device", "cpu", "--model", &tiny("qa")],
        "{\"input_ids\": [[2, 5, 3]], \"start_positions\": [1]}\n",
    );
    assert_one_line_error("qa_only_start", &out, &["line 1", "end_positions"]);
}

#[test]
fn input_and_output_files() {
    let dir = tmp("files");
    let input = dir.join("in.jsonl");
    let output = dir.join("out.jsonl");
    std::fs::write(
        &input,
        "{\"input_ids\": [[2, 5, 3]]}\r\n{\"input_ids\": [[2, 6]]}\n",
    )
    .unwrap();
    let out = run(
        &[
            "infer",
            "--device",
            "cpu",
            "--model",
            BASE,
            "--input",
            &input.to_string_lossy(),
            "--output",
            &output.to_string_lossy(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "output went to stdout");
    let lines = json_lines(&std::fs::read(&output).unwrap());
    assert_eq!(lines.len(), 2);
    assert_eq!(shape(&lines[0]["last_hidden_state"]), vec![1, 3, 32]);
    assert_eq!(shape(&lines[1]["last_hidden_state"]), vec![1, 2, 32]);

    // Same outputs as through stdin/stdout.
    let piped = run(
        &["infer", "--device", "cpu", "--model", BASE],
        "{\"input_ids\": [[2, 5, 3]]}\n{\"input_ids\": [[2, 6]]}\n",
    );
    assert_eq!(json_lines(&piped.stdout), lines);
}

#[test]
fn unreadable_inputs_are_one_line_errors() {
    let dir = tmp("unreadable");
    // Not UTF-8.
    let bad = dir.join("latin1.jsonl");
    std::fs::write(&bad, b"{\"text\": [\"caf\xe9\"]}\n").unwrap();
    let out = run(
        &[
            "infer",
            "--device",
            "cpu",
            "--model",
            BASE,
            "--input",
            &bad.to_string_lossy(),
        ],
        "",
    );
    assert_one_line_error("non_utf8", &out, &["line 1", "UTF-8"]);

    // Not UTF-8 on the second line of stdin.
    let mut child = bin()
        .args(["infer", "--device", "cpu", "--model", BASE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(b"{\"input_ids\": [[2, 5]]}\n\xff\xfe\n");
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_one_line_error("non_utf8_stdin", &out, &["line 2", "UTF-8"]);
    assert_eq!(json_lines(&out.stdout).len(), 1);

    // Input file missing; output folder missing.
    let missing = dir.join("missing.jsonl");
    let out = run(
        &[
            "infer",
            "--device",
            "cpu",
            "--model",
            BASE,
            "--input",
            &missing.to_string_lossy(),
        ],
        "",
    );
    assert_one_line_error("missing_input", &out, &["missing.jsonl"]);
    let nowhere = dir.join("no/such/dir/out.jsonl");
    let out = run(
        &[
            "infer",
            "--device",
            "cpu",
            "--model",
            BASE,
            "--output",
            &nowhere.to_string_lossy(),
        ],
        "{\"input_ids\": [[2, 5]]}\n",
    );
    assert_one_line_error("missing_output_dir", &out, &["out.jsonl"]);
}

#[test]
fn bad_arguments_and_models_are_one_line_errors() {
    let dir = tmp("models");
    // A folder with only config.json.
    let cfg_only = dir.join("cfg_only");
    std::fs::create_dir_all(&cfg_only).unwrap();
    std::fs::copy(
        tiny_dir("base-gelu").join("config.json"),
        cfg_only.join("config.json"),
    )
    .unwrap();
    // Weights of the wrong shape for the config.
    let wrong = dir.join("wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    std::fs::copy(
        tiny_dir("qa").join("model.safetensors"),
        wrong.join("model.safetensors"),
    )
    .unwrap();
    let mut cfg = read_json(&tiny_dir("base-gelu").join("config.json"));
    cfg["intermediate_size"] = serde_json::json!(40);
    std::fs::write(wrong.join("config.json"), cfg.to_string()).unwrap();
    // An LFS pointer.
    let lfs = dir.join("lfs");
    std::fs::create_dir_all(&lfs).unwrap();
    std::fs::copy(
        tiny_dir("base-gelu").join("config.json"),
        lfs.join("config.json"),
    )
    .unwrap();
    std::fs::write(
        lfs.join("model.safetensors"),
        "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n",
    )
    .unwrap();

    let (cfg_only, wrong, lfs) = (
        cfg_only.to_string_lossy().into_owned(),
        wrong.to_string_lossy().into_owned(),
        lfs.to_string_lossy().into_owned(),
    );
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "head_unknown",
            vec![
                "infer", "--device", "cpu", "--model", BASE, "--head", "unknown",
            ],
            vec!["unknown", "head"],
        ),
        (
            "device_unknown",
            vec!["infer", "--device", "tpu", "--model", BASE],
            vec!["tpu"],
        ),
        (
            "dtype_unknown",
            vec![
                "infer", "--device", "cpu", "--dtype", "f64", "--model", BASE,
            ],
            vec!["f64", "f32 or f16"],
        ),
        (
            "dtype_f16_on_cpu",
            vec![
                "infer", "--device", "cpu", "--dtype", "f16", "--model", BASE,
            ],
            vec!["f16", "CPU", "--device gpu"],
        ),
        (
            "model_nonexistent",
            vec!["infer", "--device", "cpu", "--model", "/nonexistent"],
            vec!["/nonexistent"],
        ),
        (
            "model_hub_offline",
            vec!["infer", "--device", "cpu", "--model", "foo/bar"],
            vec!["foo/bar", "HF_HUB_OFFLINE", "--model"],
        ),
        (
            "model_without_weights",
            vec!["infer", "--device", "cpu", "--model", &cfg_only],
            vec!["model.safetensors", "not found"],
        ),
        (
            "model_shapes_unlike_config",
            vec!["infer", "--device", "cpu", "--model", &wrong],
            vec![
                "encoder.layer.0.intermediate.dense.weight",
                "[40, 32]",
                "[37, 32]",
            ],
        ),
        (
            "model_lfs_pointer",
            vec!["infer", "--device", "cpu", "--model", &lfs],
            vec!["LFS"],
        ),
        (
            "head_missing_weights",
            vec![
                "infer",
                "--device",
                "cpu",
                "--model",
                BASE,
                "--head",
                "token-classification",
            ],
            vec!["classifier.weight", "random"],
        ),
        (
            "embed_without_tokenizer",
            vec!["embed", "--device", "cpu", "--model", BASE, "hello"],
            vec!["tokenizer"],
        ),
        (
            "embed_bad_pooling",
            vec![
                "embed",
                "--device",
                "cpu",
                "--model",
                BASE,
                "--pooling",
                "median",
                "hello",
            ],
            vec!["median", "weightedmean"],
        ),
    ];
    for (tag, args, words) in &cases {
        let out = run(args, "");
        let line = assert_one_line_error(tag, &out, words);
        // The cause is not printed twice.
        let parts: Vec<&str> = line.split(": ").collect();
        for w in parts.windows(2) {
            assert_ne!(w[0], w[1], "{tag}: repeated cause: {line}");
        }
        assert!(
            out.stdout.is_empty(),
            "{tag}: stdout: {}",
            text(&out.stdout)
        );
    }
}

#[test]
fn version_and_info() {
    let out = run(&["--version"], "");
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("bert-wgpu {}", env!("CARGO_PKG_VERSION"))
    );
    let out = run(&["info"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("panicked"));
    assert!(text(&out.stdout).contains("--device auto would use"));
}

/// `--quiet` / `-q` works on every subcommand and silences warnings: an
/// f16 request that falls back to the CPU warns without it, says nothing
/// on stderr with it, and prints the same result either way.
#[test]
fn quiet_silences_warnings_on_every_subcommand() {
    let model = "tests/fixtures/pipelines/seqcls";
    let xdg = tmp("xdg");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&*xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let with = |quiet: bool| {
        let mut args = vec![
            "embed", "--model", model, "--device", "auto", "--dtype", "f16", "hello",
        ];
        if quiet {
            args.push("--quiet");
        }
        bin()
            .args(&args)
            // No adapter matches: auto falls back to the CPU, with a warning.
            .env("BERT_WGPU_ADAPTER", "no-such-adapter")
            // Probing the GL backend makes Mesa print its own complaint
            // about XDG_RUNTIME_DIR when unset; that is not ours to silence.
            .env("XDG_RUNTIME_DIR", xdg.as_os_str())
            .output()
            .unwrap()
    };
    let (loud, quiet) = (with(false), with(true));
    assert!(loud.status.success(), "{}", text(&loud.stderr));
    assert!(quiet.status.success(), "{}", text(&quiet.stderr));
    assert!(
        text(&loud.stderr).contains("f32 on the CPU executor"),
        "expected the fallback warning, got: {}",
        text(&loud.stderr)
    );
    assert_eq!(text(&quiet.stderr), "", "--quiet must silence warnings");
    assert_eq!(loud.stdout, quiet.stdout);
    for sub in [
        vec!["infer", "--device", "cpu", "--model", BASE, "-q"],
        vec!["classify", "--device", "cpu", "--model", model, "-q", "hi"],
        vec![
            "bench",
            "--config",
            "bert-tiny",
            "--device",
            "cpu",
            "--iters",
            "1",
            "--seq",
            "8",
            "-q",
        ],
    ] {
        let out = run(&sub, "");
        assert!(out.status.success(), "{sub:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "{sub:?}: stderr not quiet");
    }
    // `info` probes every backend, GL included (Mesa may print its own
    // lines there); the flag is accepted.
    assert!(run(&["info", "--quiet"], "").status.success());
}

// ------------------------------------------------------------- MiniLM

fn love_movie() -> Value {
    let cases = read_json(&fixtures().join("minilm/cases.json"));
    cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "love_movie")
        .expect("case love_movie")
        .clone()
}

fn minilm() -> String {
    minilm_dir().to_string_lossy().into_owned()
}

#[test]
fn infer_text_with_minilm() {
    let case = love_movie();
    assert_eq!(case["texts"], serde_json::json!(["I love this movie!"]));
    let out = run(
        &["infer", "--device", "cpu", "--model", &minilm()],
        "{\"text\": [\"I love this movie!\"]}\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 1);
    let v = &lines[0];
    assert_eq!(v["input_ids"], case["input_ids"]);
    assert_eq!(
        v["input_ids"],
        serde_json::json!([[101, 1045, 2293, 2023, 3185, 999, 102]])
    );
    assert_eq!(v["attention_mask"], case["attention_mask"]);
    assert_eq!(v["token_type_ids"], case["token_type_ids"]);
    common::assert_close(
        "cli minilm last_hidden_state",
        &as_tensor(&v["last_hidden_state"]),
        &tensor(&case["outputs"]["last_hidden_state"]),
        1e-4,
        1e-3,
    );
    common::assert_close(
        "cli minilm pooler_output",
        &as_tensor(&v["pooler_output"]),
        &tensor(&case["outputs"]["pooler_output"]),
        1e-4,
        1e-3,
    );
}

#[test]
fn embed_with_minilm() {
    let case = love_movie();
    let out = run(
        &[
            "embed",
            "--device",
            "cpu",
            "--model",
            &minilm(),
            "--json",
            "I love this movie!",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["text"], "I love this movie!");
    let got = as_tensor(&lines[0]["embedding"]);
    let want = tensor(&case["outputs"]["sentence_embedding"]);
    assert_eq!(want.shape, vec![1, 384]);
    let want = bert_wgpu::Tensor::new(vec![384], want.data).unwrap();
    let err = common::assert_close("cli minilm sentence_embedding", &got, &want, 1e-4, 0.0);
    assert!(err <= 1e-4, "{err}");
    let norm: f32 = got.data.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
}

#[test]
fn minilm_text_errors() {
    let out = run(
        &["infer", "--device", "cpu", "--model", &minilm()],
        "{\"text\": \"ok\"}\n{\"text\": [\"a\", \"b\"], \"text_pair\": [\"c\"]}\n",
    );
    assert_one_line_error("pairs", &out, &["line 2", "text_pair"]);
    assert_eq!(json_lines(&out.stdout).len(), 1);
}
