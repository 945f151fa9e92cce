//! `infer --device gpu` prints the same JSON as `--device cpu` (same keys,
//! same ids, numbers within atol 1e-4 + rtol 1e-3), on a tiny fixture model
//! with every head and on all-MiniLM-L6-v2 text input.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{allow_no_gpu, minilm_dir, tiny_dir};
use serde_json::Value;

fn infer(model: &str, device: &str, input: &str) -> Option<Vec<Value>> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bert-wgpu"))
        .args(["infer", "--model", model, "--device", device])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start bert-wgpu");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if device == "gpu" && err.contains("no GPU adapter") && allow_no_gpu() {
            println!("NOTE: no GPU adapter; not run because BERT_WGPU_ALLOW_NO_GPU=1");
            return None;
        }
        panic!("infer --device {device} failed: {err}");
    }
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

fn same(path: &str, a: &Value, b: &Value) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let (kx, ky): (Vec<_>, Vec<_>) = (x.keys().collect(), y.keys().collect());
            assert_eq!(kx, ky, "{path}: keys differ");
            for k in x.keys() {
                same(&format!("{path}.{k}"), &x[k], &y[k]);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths differ");
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                same(&format!("{path}[{i}]"), p, q);
            }
        }
        (Value::Number(x), Value::Number(y)) if x.is_u64() && y.is_u64() => {
            assert_eq!(x, y, "{path}")
        }
        (Value::Number(x), Value::Number(y)) => {
            let (g, c) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (g - c).abs() <= 1e-4 + 1e-3 * c.abs(),
                "{path}: gpu {g} vs cpu {c}"
            );
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

fn compare(model: &str, input: &str) {
    let Some(gpu) = infer(model, "gpu", input) else {
        return;
    };
    let cpu = infer(model, "cpu", input).unwrap();
    assert_eq!(gpu.len(), cpu.len());
    for (i, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
        same(&format!("{model} line {}", i + 1), g, c);
    }
}

#[test]
fn gpu_json_equals_cpu_json_for_every_head() {
    let ids = r#"{"input_ids": [[2, 17, 45, 9, 0], [2, 8, 3, 60, 71]], "attention_mask": [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], "token_type_ids": [[0, 0, 0, 1, 0], [0, 0, 1, 1, 1]]}"#;
    for m in ["base-gelu", "seqcls-single", "tokcls", "qa"] {
        compare(&tiny_dir(m).to_string_lossy(), &format!("{ids}\n"));
    }
    let mc = r#"{"input_ids": [[[2, 5, 6], [2, 7, 8]]], "labels": [1]}"#;
    compare(&tiny_dir("mc").to_string_lossy(), &format!("{mc}\n"));
}

#[test]
fn gpu_json_equals_cpu_json_on_minilm_text() {
    let line = r#"{"text": ["I love this movie!", "This is the worst movie I've seen."], "text_pair": ["Yes.", "No."]}"#;
    compare(&minilm_dir().to_string_lossy(), &format!("{line}\n"));
}

/// `selfcheck` (the first step of scripts/gpu_bench.sh on a new GPU) passes
/// in f32 and f16 on this adapter, states the tolerance it held, and fails
/// on an unknown storage type.
#[test]
fn selfcheck_passes_in_f32_and_f16() {
    for (dtype, tol) in [
        ("f32", "atol 1e-4 + rtol 1e-3"),
        ("f16", "atol 1e-2 + rtol 1e-2"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_bert-wgpu"))
            .args([
                "selfcheck",
                "--config",
                "bert-tiny",
                "--batch",
                "3",
                "--seq",
                "17",
            ])
            .args(["--dtype", dtype])
            .env_remove("RUST_LOG")
            .output()
            .expect("cannot start bert-wgpu");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && stderr.contains("no GPU adapter") && allow_no_gpu() {
            println!("NOTE: no GPU adapter; not run because BERT_WGPU_ALLOW_NO_GPU=1");
            return;
        }
        assert!(out.status.success(), "selfcheck {dtype}: {stdout}{stderr}");
        assert!(
            stdout.contains(&format!("selfcheck bert-tiny {dtype} batch 3 seq 17"))
                && stdout.contains(&format!("ok: within {tol}")),
            "{stdout}"
        );
        println!("{stdout}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_bert-wgpu"))
        .args(["selfcheck", "--dtype", "f8"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("f8"));
}

/// `bert-wgpu tune` checks and times every variant, prints each variant's
/// timing and max |gpu − cpu|, and saves the choices where `info` then
/// reports them; `--dry-run` saves nothing.
#[test]
fn tune_saves_choices_that_info_reports() {
    let dir = std::env::temp_dir().join(format!("bert-wgpu-cli-tune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_bert-wgpu"))
            .args(args)
            .env("BERT_WGPU_TUNE_DIR", &dir)
            .env_remove("BERT_WGPU_TUNE")
            .env_remove("RUST_LOG")
            .output()
            .expect("cannot start bert-wgpu");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stdout}{stderr}");
        stdout
    };
    let info = run(&["info"]);
    if !info.contains("--device gpu would use") && allow_no_gpu() {
        println!("NOTE: no GPU adapter; not run because BERT_WGPU_ALLOW_NO_GPU=1");
        return;
    }
    assert!(info.contains("--device gpu would use"), "{info}");
    let software = info.contains("--device gpu would use") && info.contains(", Cpu)");
    if software {
        assert!(info.contains("kernel choices (f32): built-in"), "{info}");
    }
    let tune = [
        "tune",
        "--config",
        "bert-tiny",
        "--batch",
        "2",
        "--seq",
        "16",
    ];
    let dry = run(&[&tune[..], &["--iters", "1", "--dry-run"]].concat());
    assert!(dry.contains("(--dry-run: not saved)"), "{dry}");
    assert!(!dir.exists(), "--dry-run wrote {}", dir.display());
    let out = run(&[&tune[..], &["--iters", "1"]].concat());
    for variant in [
        "tile        plain",
        "tile        prefetch",
        "gemm_large  register",
        "gemm_small  splitk",
        "attention   query",
    ] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(variant))
            .unwrap_or_else(|| panic!("no `{variant}` line: {out}"));
        assert!(
            line.contains(" ms  (max |gpu - cpu| "),
            "{variant} not checked and timed: {line}"
        );
    }
    assert!(out.contains("saved       "), "{out}");
    let info = run(&["info"]);
    assert!(
        info.contains("kernel choices (f32): gemm_large ")
            && info.contains("(measured on bert-tiny 2 × 16 "),
        "{info}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
