//! Shared test helpers: fixtures, tolerances, model locations, GPU policy.
#![allow(dead_code)]

pub mod gpu;

use std::path::PathBuf;

use bert_wgpu::infer::{parse_request, Request};
use bert_wgpu::{Device, LoadOptions, Model, Outputs, Tensor};
use serde_json::Value;

/// The `bert-wgpu` binary, run from the package root, offline, without the
/// caller's model or log settings.
pub fn bin_command() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_bert-wgpu"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env_remove("BERT_WGPU_MODEL")
        .env("HF_HUB_OFFLINE", "1");
    c
}

/// Runs the binary with `args`, feeding `stdin`.
pub fn run_bin(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = bin_command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start bert-wgpu");
    {
        let mut input = child.stdin.take().unwrap();
        // The process may exit before reading everything; that is fine.
        let _ = input.write_all(stdin.as_bytes());
    }
    child.wait_with_output().unwrap()
}

/// A JSON array of strings.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// A JSON array of numbers as f32.
pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub const TINY_MODELS: &[&str] = &[
    "base-gelu",
    "base-gelu-new",
    "base-relu",
    "base-silu",
    "base-legacy-bf16",
    "seqcls-single",
    "seqcls-regression",
    "seqcls-multilabel",
    "tokcls",
    "tokcls-f16",
    "mc",
    "qa",
];

pub fn tiny_dir(name: &str) -> PathBuf {
    fixtures().join("tiny").join(name)
}

pub fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn tensor(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f32> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    Tensor::new(shape, data).unwrap()
}

/// The all-MiniLM-L6-v2 folder written by scripts/fetch_minilm.sh. A missing
/// folder fails the test: run the script first.
pub fn minilm_dir() -> PathBuf {
    let dir = match std::env::var("BERT_WGPU_MINILM") {
        Ok(d) => PathBuf::from(d),
        Err(_) => {
            let cache = std::env::var("BERT_WGPU_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|_| {
                    PathBuf::from(std::env::var("HOME").unwrap_or_default())
                        .join(".cache/bert-wgpu")
                });
            cache.join("all-MiniLM-L6-v2")
        }
    };
    assert!(
        dir.join("model.safetensors").is_file(),
        "all-MiniLM-L6-v2 not found at {}: run scripts/fetch_minilm.sh (or set BERT_WGPU_MINILM)",
        dir.display()
    );
    dir
}

/// Whether GPU tests may be skipped: only when explicitly allowed with
/// BERT_WGPU_ALLOW_NO_GPU=1 and BERT_WGPU_REQUIRE_GPU is not set.
pub fn gpu_model(dir: &std::path::Path) -> Option<Model> {
    gpu_model_dtype(dir, bert_wgpu::DType::F32)
}

/// [`gpu_model`] with weights and activations stored as `dtype`.
pub fn gpu_model_dtype(dir: &std::path::Path, dtype: bert_wgpu::DType) -> Option<Model> {
    let opts = LoadOptions {
        device: Device::Gpu,
        dtype,
        ..Default::default()
    };
    match Model::load_dir(dir, &opts) {
        Ok(m) => Some(m),
        Err(bert_wgpu::Error::NoAdapter(msg)) => {
            let test = format!("GPU test on {}", dir.display());
            gpu::unavailable(&test, format_args!("no GPU adapter ({msg})"), None);
            None
        }
        Err(e) => panic!("GPU model load failed ({}): {e}. Install mesa-vulkan-drivers, or set BERT_WGPU_ALLOW_NO_GPU=1 to not run GPU tests", dir.display()),
    }
}

/// Whether a GPU test may return without running for want of an adapter
/// ([`gpu::may_skip`]).
pub fn allow_no_gpu() -> bool {
    gpu::may_skip()
}

pub fn cpu_model(dir: &std::path::Path) -> Model {
    Model::load_dir(
        dir,
        &LoadOptions {
            device: Device::Cpu,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Builds an `infer` request line from a fixture case (inputs + labels).
pub fn case_request(model: &Model, case: &Value, with_labels: bool) -> Request {
    let mut obj = serde_json::Map::new();
    for k in ["input_ids", "attention_mask", "token_type_ids"] {
        obj.insert(k.into(), case[k].clone());
    }
    if with_labels {
        for k in ["labels", "start_positions", "end_positions"] {
            if let Some(v) = case.get(k) {
                obj.insert(k.into(), v.clone());
            }
        }
    }
    parse_request(&Value::Object(obj).to_string(), model)
        .unwrap_or_else(|e| panic!("case {}: {e}", case["name"]))
}

/// Max error report; panics when any element is outside atol + rtol·|want|.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, atol: f32, rtol: f32) -> f32 {
    assert_eq!(got.shape, want.shape, "{what}: shape");
    let mut worst = (0.0f32, 0usize);
    let mut max_abs = 0.0f32;
    for (i, (g, w)) in got.data.iter().zip(&want.data).enumerate() {
        assert!(
            g.is_finite(),
            "{what}: non-finite value {g} at flat index {i}"
        );
        let err = (g - w).abs();
        max_abs = max_abs.max(err);
        let excess = err - (atol + rtol * w.abs());
        if excess > worst.0 {
            worst = (excess, i);
        }
    }
    if worst.0 > 0.0 {
        let i = worst.1;
        panic!(
            "{what}: |got-want| exceeds atol {atol} + rtol {rtol}·|want| at flat index {i} (got {}, want {}); max abs error {max_abs}",
            got.data[i], want.data[i]
        );
    }
    max_abs
}

/// Compares every output the fixture case has with `out`.
pub fn check_outputs(tag: &str, out: &Outputs, expected: &Value, atol: f32, rtol: f32) -> f32 {
    let mut max_err = 0.0f32;
    let map = expected.as_object().unwrap();
    for (name, want) in map {
        let got = match name.as_str() {
            "last_hidden_state" => out.last_hidden_state.as_ref(),
            "pooler_output" => out.pooler_output.as_ref(),
            "logits" => out.logits.as_ref(),
            "start_logits" => out.start_logits.as_ref(),
            "end_logits" => out.end_logits.as_ref(),
            "loss" => {
                let want = want.as_f64().unwrap() as f32;
                let got = out.loss.unwrap_or_else(|| panic!("{tag}: no loss"));
                let err = (got - want).abs();
                // Losses are held tighter than activations, except under
                // the loose (f16) tolerances.
                let (la, lr) = if atol > 1e-4 {
                    (atol, rtol)
                } else {
                    (1e-5, 1e-4)
                };
                assert!(
                    err <= la + lr * want.abs(),
                    "{tag}: loss {got} vs HF {want}"
                );
                continue;
            }
            _ => continue,
        };
        let got = got.unwrap_or_else(|| panic!("{tag}: output {name} missing"));
        let e = assert_close(&format!("{tag} {name}"), got, &tensor(want), atol, rtol);
        max_err = max_err.max(e);
    }
    max_err
}

/// f64 LayerNorm of f32 inputs; also returns the max of 1/√(var + eps).
pub fn layer_norm_f64(
    x: &[f32],
    r: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> (Vec<f32>, f64) {
    let cols = gamma.len();
    let mut out = Vec::with_capacity(x.len());
    let mut max_inv = 0.0f64;
    for (row, xs) in x.chunks_exact(cols).enumerate() {
        let v: Vec<f64> = xs
            .iter()
            .enumerate()
            .map(|(c, &a)| a as f64 + r.map_or(0.0, |r| r[row * cols + c] as f64))
            .collect();
        let mean = v.iter().sum::<f64>() / cols as f64;
        let var = v.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / cols as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        max_inv = max_inv.max(inv);
        for (c, a) in v.iter().enumerate() {
            out.push(((a - mean) * inv * gamma[c] as f64 + beta[c] as f64) as f32);
        }
    }
    (out, max_inv)
}

/// Random values in [lo, hi), rounded to f16 (what an f16 GPU model stores).
pub fn f16s(rng: &mut rand::rngs::StdRng, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    use rand::Rng;
    (0..len)
        .map(|_| half::f16::from_f32(rng.random_range(lo..hi)).to_f32())
        .collect()
}

/// Runs `enc` through both models and holds the GPU's hidden states and
/// pooled output to the CPU's within atol + rtol·|cpu|; prints the errors.
pub fn compare_forwards(
    tag: &str,
    gpu: &Model,
    cpu: &Model,
    enc: &bert_wgpu::Encoding,
    atol: f32,
    rtol: f32,
) {
    let g = gpu.forward(enc).unwrap_or_else(|e| panic!("{tag}: {e}"));
    let c = cpu.forward(enc).unwrap();
    for (what, a, b) in [
        (
            "last_hidden_state",
            &g.last_hidden_state,
            &c.last_hidden_state,
        ),
        ("pooler_output", &g.pooler_output, &c.pooler_output),
    ] {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        let err = assert_close(&format!("{tag} {what}"), a, b, atol, rtol);
        println!("{tag} {what}: max |gpu - cpu| {err:.3e}");
    }
}
