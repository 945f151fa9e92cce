//! Malformed checkpoints and configs: every failure is an `Error` of the right
//! kind whose message names the cause (file, tensor, shapes, field), never a
//! panic and never a huge allocation.

mod common;

use std::path::{Path, PathBuf};

use bert_wgpu::checkpoint::{canonical_name, Checkpoint};
use bert_wgpu::{BertConfig, Device, Error, Head, LoadOptions, Model};
use common::{minilm_dir, tiny_dir};
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------- helpers

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
    let dir = std::env::temp_dir().join(format!(
        "bert-wgpu-errors-checkpoint-{}-{tag}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn cpu() -> LoadOptions {
    LoadOptions {
        device: Device::Cpu,
        ..Default::default()
    }
}

fn cpu_head(head: Head) -> LoadOptions {
    LoadOptions {
        device: Device::Cpu,
        head: Some(head),
        ..Default::default()
    }
}

/// One tensor of a hand-made safetensors file.
#[derive(Clone)]
struct St {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn st(name: &str, dtype: &str, shape: &[usize], bytes: Vec<u8>) -> St {
    St {
        name: name.into(),
        dtype: dtype.into(),
        shape: shape.to_vec(),
        bytes,
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// 8-byte little-endian header length + header + data.
fn raw_file(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// A valid safetensors file, tensors laid out contiguously in the given
/// order. `pad` spaces are appended to the header (JSON allows trailing
/// whitespace), which moves the data section to any offset we like.
fn st_file(tensors: &[St], pad: usize) -> Vec<u8> {
    let mut header = Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut data = Vec::new();
    for t in tensors {
        let start = data.len();
        data.extend_from_slice(&t.bytes);
        header.insert(
            t.name.clone(),
            json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::to_vec(&Value::Object(header)).unwrap();
    h.extend(std::iter::repeat_n(b' ', pad));
    raw_file(&h, &data)
}

/// Reads a safetensors file into its tensors (file order).
fn read_st(path: &Path) -> Vec<St> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut out: Vec<(usize, St)> = header
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let off: Vec<usize> = v["data_offsets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect();
            let shape: Vec<usize> = v["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect();
            (
                off[0],
                st(
                    k,
                    v["dtype"].as_str().unwrap(),
                    &shape,
                    data[off[0]..off[1]].to_vec(),
                ),
            )
        })
        .collect();
    out.sort_by_key(|(o, _)| *o);
    out.into_iter().map(|(_, t)| t).collect()
}

/// Copies the config and weights of a tiny fixture into `dir`, applying `cfg`
/// to config.json and `weights` to the tensor list.
fn tiny_copy(
    name: &str,
    dir: &Path,
    cfg: impl FnOnce(&mut Map<String, Value>),
    weights: impl FnOnce(&mut Vec<St>),
) {
    let src = tiny_dir(name);
    let mut config: Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg(&mut config);
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    let mut tensors = read_st(&src.join("model.safetensors"));
    weights(&mut tensors);
    std::fs::write(dir.join("model.safetensors"), st_file(&tensors, 0)).unwrap();
}

fn open_err(bytes: &[u8], tag: &str) -> (Error, PathBuf) {
    let dir = tmp(tag);
    let path = dir.join("model.safetensors");
    std::fs::write(&path, bytes).unwrap();
    match Checkpoint::open(&path) {
        Ok(_) => panic!("{tag}: opening a malformed file succeeded"),
        Err(e) => (e, path),
    }
}

/// An edit of config.json.
type ConfigEdit = Box<dyn Fn(&mut Map<String, Value>)>;

fn load_err(dir: &Path, opts: &LoadOptions) -> Error {
    match Model::load_dir(dir, opts) {
        Ok(_) => panic!("{}: loading succeeded", dir.display()),
        Err(e) => e,
    }
}

// ------------------------------------------------------ malformed files

#[test]
fn malformed_safetensors_files_are_safetensors_errors() {
    let good = std::fs::read(tiny_dir("base-gelu").join("model.safetensors")).unwrap();
    let f32_4 = f32_bytes(&[1.0, 2.0, 3.0, 4.0]);
    let json = |v: Value| serde_json::to_vec(&v).unwrap();
    let len_then = |n: u64, rest: &[u8]| {
        let mut v = n.to_le_bytes().to_vec();
        v.extend_from_slice(rest);
        v
    };
    // (tag, file bytes, words the message must contain)
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "truncated_half",
            good[..good.len() / 2].to_vec(),
            vec!["data_offsets", "truncated"],
        ),
        (
            "header_past_end",
            len_then(200, b"{}"),
            vec!["header length", "200", "10"],
        ),
        (
            "header_len_u64_max",
            len_then(u64::MAX, b"{}"),
            vec!["header", "18446744073709551615"],
        ),
        (
            "header_len_2_pow_40",
            len_then(1 << 40, b"{\"a\": 1}"),
            vec!["header", "1099511627776"],
        ),
        (
            "header_not_json",
            raw_file(b"this is not json", &[]),
            vec!["JSON"],
        ),
        ("header_json_array", raw_file(b"[1, 2, 3]", &[]), vec!["JSON"]),
        (
            "header_not_utf8",
            raw_file(b"{\"\xff\": 1}", &[]),
            vec!["UTF-8"],
        ),
        (
            "overlapping_offsets",
            raw_file(
                &json(json!({
                    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
                })),
                &f32_4[..12],
            ),
            vec!["offset", "`b`"],
        ),
        (
            "offsets_past_data",
            raw_file(
                &json(json!({
                    "a": {"dtype": "F32", "shape": [250], "data_offsets": [0, 1000]},
                })),
                &f32_4,
            ),
            vec!["1000", "16 bytes"],
        ),
        (
            "offsets_reversed",
            raw_file(
                &json(json!({
                    "a": {"dtype": "F32", "shape": [0], "data_offsets": [16, 0]},
                })),
                &f32_4,
            ),
            vec!["offset", "`a`"],
        ),
        (
            "gap_between_tensors",
            raw_file(
                &json(json!({
                    "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                    "b": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]},
                })),
                &f32_4,
            ),
            vec!["offset", "`b`"],
        ),
        (
            "shape_dtype_size_unlike_span",
            raw_file(
                &json(json!({
                    "a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]},
                })),
                &f32_4,
            ),
            vec!["`a`", "F32", "[3]", "12 bytes", "16"],
        ),
        (
            "bf16_size_unlike_span",
            raw_file(
                &json(json!({
                    "x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "y": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [8, 16]},
                })),
                &f32_bytes(&[1.0, 2.0, 3.0, 4.0]),
            ),
            vec!["`y`", "BF16", "[2, 3]", "12 bytes", "span 8"],
        ),
        (
            "span_near_u64_max",
            raw_file(
                &json(json!({
                    "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 9223372036854775808u64]},
                })),
                &f32_4,
            ),
            vec!["`a`", "16 bytes", "9223372036854775808"],
        ),
        (
            "shape_product_overflows",
            raw_file(
                &json(json!({
                    "a": {"dtype": "F32", "shape": [4294967296u64, 4294967296u64, 4], "data_offsets": [0, 16]},
                })),
                &f32_4,
            ),
            vec!["overflow"],
        ),
        (
            "unknown_dtype",
            raw_file(
                &json(json!({
                    "a": {"dtype": "F33", "shape": [4], "data_offsets": [0, 16]},
                })),
                &f32_4,
            ),
            vec!["F33"],
        ),
        (
            "lfs_pointer",
            b"version https://git-lfs.github.com/spec/v1\noid sha256:4ad15d5dfa1bf1bd9b9b3dd5eb7ef2d0c5e2cd8d5c0e2e6e7ae5c5f2f2b2b0a1\nsize 123\n".to_vec(),
            vec!["LFS"],
        ),
        ("empty_file", Vec::new(), vec!["0 bytes"]),
        ("five_bytes", b"\x05\0\0\0\0".to_vec(), vec!["5 bytes"]),
        (
            "header_only_no_data",
            raw_file(
                &json(json!({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})),
                &[],
            ),
            vec!["16", "0 bytes"],
        ),
    ];
    for (tag, bytes, words) in &cases {
        let (err, path) = open_err(bytes, tag);
        match &err {
            Error::Safetensors { path: p, message } => {
                assert_eq!(p, &path, "{tag}: error names another file");
                assert!(!message.trim().is_empty(), "{tag}: empty message");
            }
            other => panic!("{tag}: expected Error::Safetensors, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(&*path.to_string_lossy()),
            "{tag}: message does not name the file: {text}"
        );
        assert!(
            !text.contains('\n'),
            "{tag}: message is not one line: {text}"
        );
        for w in words {
            assert!(text.contains(w), "{tag}: `{w}` not in: {text}");
        }
    }
}

#[test]
fn model_folder_with_lfs_pointer_weights() {
    let dir = tmp("lfs_model");
    std::fs::copy(
        tiny_dir("base-gelu").join("config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    std::fs::write(
        dir.join("model.safetensors"),
        "version https://git-lfs.github.com/spec/v1\noid sha256:0000\nsize 141272\n",
    )
    .unwrap();
    let err = load_err(&dir, &cpu());
    assert!(
        matches!(err, Error::Safetensors { .. }),
        "expected Safetensors, got {err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("LFS") && text.contains("model.safetensors"),
        "{text}"
    );
}

// ----------------------------------------------- valid files, odd layouts

#[test]
fn unaligned_data_section_loads_correct_values() {
    // A header of odd length puts every tensor at an odd address.
    let values: Vec<f32> = vec![1.5, -2.25, 3.0e-7, 65504.0, -0.0, 7.0];
    let bytes = st_file(
        &[
            st("x", "F32", &[2, 3], f32_bytes(&values)),
            st("y", "F32", &[1], f32_bytes(&[42.0])),
        ],
        0,
    );
    for pad in 0..8 {
        let file = st_file(
            &[
                st("x", "F32", &[2, 3], f32_bytes(&values)),
                st("y", "F32", &[1], f32_bytes(&[42.0])),
            ],
            pad,
        );
        let header_len = u64::from_le_bytes(file[..8].try_into().unwrap());
        assert_eq!(header_len as usize, bytes.len() - 8 - 28 + pad);
        let dir = tmp(&format!("unaligned_{pad}"));
        let path = dir.join("model.safetensors");
        std::fs::write(&path, &file).unwrap();
        let ck = Checkpoint::open(&path).unwrap_or_else(|e| panic!("pad {pad}: {e}"));
        let x = ck.tensor("x", &[2, 3]).unwrap();
        assert_eq!(x.data, values, "pad {pad} (header length {header_len})");
        assert_eq!(ck.tensor("y", &[1]).unwrap().data, vec![42.0]);
        // Read in place exactly when the data section starts 4-byte aligned
        // (the mapping itself is page-aligned); decoded otherwise, with the
        // same values either way.
        let aligned = (8 + header_len) % 4 == 0;
        for (name, shape, want) in [("x", &[2, 3][..], &values[..]), ("y", &[1], &[42.0])] {
            let d = ck.f32_data(name, shape).unwrap();
            assert_eq!(&*d, want, "pad {pad}: {name}");
            assert_eq!(d.is_in_place(), aligned, "pad {pad}: {name} {d:?}");
        }
    }

    // The whole tiny model with its data section at an odd offset loads the
    // same values as the original.
    let src = tiny_dir("base-gelu");
    let tensors = read_st(&src.join("model.safetensors"));
    let dir = tmp("unaligned_model");
    // Pad the header to an odd length whatever its serialisation gave.
    let unpadded = u64::from_le_bytes(st_file(&tensors, 0)[..8].try_into().unwrap());
    let file = st_file(&tensors, if unpadded % 2 == 0 { 3 } else { 0 });
    let header_len = u64::from_le_bytes(file[..8].try_into().unwrap());
    assert_eq!(header_len % 2, 1);
    std::fs::write(dir.join("model.safetensors"), &file).unwrap();
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let orig = Checkpoint::open(&src.join("model.safetensors")).unwrap();
    let odd = Checkpoint::open(&dir.join("model.safetensors")).unwrap();
    let names: Vec<&str> = orig.names().collect();
    assert_eq!(names, odd.names().collect::<Vec<_>>());
    for name in names {
        let shape = orig.shape(name).unwrap().to_vec();
        assert_eq!(
            orig.tensor(name, &shape).unwrap(),
            odd.tensor(name, &shape).unwrap(),
            "{name}"
        );
        let (a, b) = (
            orig.f32_data(name, &shape).unwrap(),
            odd.f32_data(name, &shape).unwrap(),
        );
        assert!(a.is_in_place() && !b.is_in_place(), "{name}: {a:?} {b:?}");
        assert_eq!(&*a, &*b, "{name}");
    }
    let a = common::cpu_model(&src);
    let b = common::cpu_model(&dir);
    let enc = bert_wgpu::Encoding::from_ids(&[vec![2, 17, 33, 3]]).unwrap();
    assert_eq!(a.forward(&enc).unwrap(), b.forward(&enc).unwrap());
}

#[test]
fn f16_bf16_f64_upcast_exactly() {
    // (dtype, little-endian bytes, expected f32 values)
    let f16: Vec<u16> = vec![0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x8000];
    let f16_want = vec![1.0, -2.0, 0.5, 65504.0, 5.960_464_5e-8, -0.0];
    let bf16: Vec<u16> = vec![0x3F80, 0xC000, 0x4049, 0x7F7F, 0x0000, 0xBF00];
    let bf16_want = vec![1.0, -2.0, 3.140625, f32::from_bits(0x7F7F_0000), 0.0, -0.5];
    let f64s = [0.1f64, -1e10, 3.5];
    let cases: Vec<(&str, Vec<u8>, Vec<f32>)> = vec![
        (
            "F16",
            f16.iter().flat_map(|x| x.to_le_bytes()).collect(),
            f16_want,
        ),
        (
            "BF16",
            bf16.iter().flat_map(|x| x.to_le_bytes()).collect(),
            bf16_want,
        ),
        (
            "F64",
            f64s.iter().flat_map(|x| x.to_le_bytes()).collect(),
            f64s.iter().map(|&x| x as f32).collect(),
        ),
    ];
    for (dtype, bytes, want) in cases {
        for pad in [0, 1] {
            let dir = tmp(&format!("upcast_{dtype}_{pad}"));
            let path = dir.join("model.safetensors");
            std::fs::write(
                &path,
                st_file(&[st("w", dtype, &[want.len()], bytes.clone())], pad),
            )
            .unwrap();
            let ck = Checkpoint::open(&path).unwrap();
            let got = ck.tensor("w", &[want.len()]).unwrap();
            let same = got
                .data
                .iter()
                .zip(&want)
                .all(|(g, w)| g.to_bits() == w.to_bits());
            assert!(same, "{dtype} pad {pad}: got {:?}, want {want:?}", got.data);
            let d = ck.f32_data("w", &[want.len()]).unwrap();
            assert!(!d.is_in_place(), "{dtype} is upcast, not read in place");
            assert_eq!(&*d, &got.data[..]);
        }
    }
}

#[test]
fn non_float_tensors_are_ignored() {
    let dir = tmp("i64");
    let path = dir.join("model.safetensors");
    let ids: Vec<u8> = (0i64..4).flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(
        &path,
        st_file(
            &[
                st("embeddings.position_ids", "I64", &[1, 4], ids.clone()),
                st("w", "F32", &[2], f32_bytes(&[1.0, 2.0])),
                st("flags", "BOOL", &[3], vec![1, 0, 1]),
            ],
            0,
        ),
    )
    .unwrap();
    let ck = Checkpoint::open(&path).unwrap();
    assert_eq!(ck.names().collect::<Vec<_>>(), vec!["w"]);
    assert!(!ck.contains("embeddings.position_ids"));

    // An HF checkpoint carrying `position_ids` (older transformers) loads.
    let dir = tmp("i64_model");
    tiny_copy(
        "base-gelu",
        &dir,
        |_| {},
        |t| {
            t.insert(
                0,
                st("bert.embeddings.position_ids", "I64", &[1, 4], ids.clone()),
            )
        },
    );
    Model::load_dir(&dir, &cpu()).unwrap();
}

#[test]
fn canonical_names() {
    let table = [
        (
            "bert.embeddings.word_embeddings.weight",
            "embeddings.word_embeddings.weight",
        ),
        (
            "embeddings.word_embeddings.weight",
            "embeddings.word_embeddings.weight",
        ),
        (
            "bert.embeddings.LayerNorm.gamma",
            "embeddings.LayerNorm.weight",
        ),
        (
            "bert.embeddings.LayerNorm.beta",
            "embeddings.LayerNorm.bias",
        ),
        (
            "encoder.layer.0.attention.output.LayerNorm.gamma",
            "encoder.layer.0.attention.output.LayerNorm.weight",
        ),
        (
            "bert.encoder.layer.11.output.LayerNorm.beta",
            "encoder.layer.11.output.LayerNorm.bias",
        ),
        ("embeddings.LayerNorm.weight", "embeddings.LayerNorm.weight"),
        ("classifier.weight", "classifier.weight"),
        ("bert.pooler.dense.bias", "pooler.dense.bias"),
        // Only LayerNorm parameters are renamed, only a leading `bert.`.
        ("some.other.gamma", "some.other.gamma"),
        ("cls.predictions.bias", "cls.predictions.bias"),
        ("xbert.embeddings", "xbert.embeddings"),
    ];
    for (key, want) in table {
        assert_eq!(canonical_name(key), want, "{key}");
    }

    // The tiny model rewritten with `bert.` keys and gamma/beta loads with
    // the same outputs.
    let src = tiny_dir("base-gelu");
    let dir = tmp("legacy_names");
    tiny_copy(
        "base-gelu",
        &dir,
        |_| {},
        |ts| {
            for t in ts.iter_mut() {
                let legacy = t
                    .name
                    .replace("LayerNorm.weight", "LayerNorm.gamma")
                    .replace("LayerNorm.bias", "LayerNorm.beta");
                t.name = format!("bert.{legacy}");
            }
        },
    );
    let ck = Checkpoint::open(&dir.join("model.safetensors")).unwrap();
    assert!(ck.contains("embeddings.LayerNorm.weight"));
    assert!(ck.contains("encoder.layer.1.output.LayerNorm.bias"));
    assert!(!ck
        .names()
        .any(|n| n.starts_with("bert.") || n.ends_with("gamma")));
    let a = common::cpu_model(&src);
    let b = common::cpu_model(&dir);
    let enc = bert_wgpu::Encoding::from_ids(&[vec![2, 5, 7, 3]]).unwrap();
    assert_eq!(a.forward(&enc).unwrap(), b.forward(&enc).unwrap());
}

#[test]
fn two_keys_with_one_canonical_name() {
    let dir = tmp("dup");
    let path = dir.join("model.safetensors");
    std::fs::write(
        &path,
        st_file(
            &[
                st(
                    "bert.embeddings.LayerNorm.gamma",
                    "F32",
                    &[1],
                    f32_bytes(&[1.0]),
                ),
                st(
                    "embeddings.LayerNorm.weight",
                    "F32",
                    &[1],
                    f32_bytes(&[2.0]),
                ),
            ],
            0,
        ),
    )
    .unwrap();
    let err = Checkpoint::open(&path).err().expect("duplicate accepted");
    assert!(matches!(err, Error::Safetensors { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("bert.embeddings.LayerNorm.gamma")
            && text.contains("embeddings.LayerNorm.weight"),
        "{text}"
    );
}

// ------------------------------------------- missing and mis-shaped tensors

#[test]
fn missing_tensor_is_named() {
    let dir = tmp("missing");
    let name = "encoder.layer.1.output.dense.weight";
    tiny_copy("base-gelu", &dir, |_| {}, |t| t.retain(|t| t.name != name));
    let err = load_err(&dir, &cpu());
    match &err {
        Error::MissingTensor {
            name: n, expected, ..
        } => {
            assert_eq!(n, name);
            assert_eq!(expected, &vec![32, 37]);
        }
        other => panic!("expected MissingTensor, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(name) && text.contains("[32, 37]"), "{text}");
}

#[test]
fn tensors_shaped_unlike_config_are_named_with_both_shapes() {
    // (tag, config edit, tensor edit, tensor named, expected, actual)
    type Case = (
        &'static str,
        ConfigEdit,
        Box<dyn Fn(&mut Vec<St>)>,
        &'static str,
        Vec<usize>,
        Vec<usize>,
    );
    let cases: Vec<Case> = vec![
        (
            "intermediate_38",
            Box::new(|c| {
                c.insert("intermediate_size".into(), json!(38));
            }),
            Box::new(|_| {}),
            "encoder.layer.0.intermediate.dense.weight",
            vec![38, 32],
            vec![37, 32],
        ),
        (
            "vocab_100",
            Box::new(|c| {
                c.insert("vocab_size".into(), json!(100));
            }),
            Box::new(|_| {}),
            "embeddings.word_embeddings.weight",
            vec![100, 32],
            vec![99, 32],
        ),
        (
            "transposed_value",
            Box::new(|_| {}),
            Box::new(|ts| {
                let t = ts
                    .iter_mut()
                    .find(|t| t.name == "encoder.layer.1.intermediate.dense.weight")
                    .unwrap();
                t.shape = vec![32, 37];
            }),
            "encoder.layer.1.intermediate.dense.weight",
            vec![37, 32],
            vec![32, 37],
        ),
        (
            "flattened_bias",
            Box::new(|_| {}),
            Box::new(|ts| {
                let t = ts
                    .iter_mut()
                    .find(|t| t.name == "encoder.layer.0.attention.self.query.bias")
                    .unwrap();
                t.shape = vec![1, 32];
            }),
            "encoder.layer.0.attention.self.query.bias",
            vec![32],
            vec![1, 32],
        ),
    ];
    for (tag, cfg, w, name, expected, actual) in cases {
        let dir = tmp(tag);
        tiny_copy("base-gelu", &dir, cfg, w);
        let err = load_err(&dir, &cpu());
        match &err {
            Error::ShapeMismatch {
                name: n,
                expected: e,
                actual: a,
            } => {
                assert_eq!((n.as_str(), e, a), (name, &expected, &actual), "{tag}");
            }
            other => panic!("{tag}: expected ShapeMismatch, got {other:?}"),
        }
        let text = err.to_string();
        for part in [
            name.to_string(),
            format!("{expected:?}"),
            format!("{actual:?}"),
        ] {
            assert!(text.contains(&part), "{tag}: `{part}` not in: {text}");
        }
    }
}

#[test]
fn head_weights_missing_are_errors_not_random_heads() {
    // (tag, config edit, forced head, tensor named)
    let seqcls_cfg = |c: &mut Map<String, Value>| {
        c.insert(
            "architectures".into(),
            json!(["BertForSequenceClassification"]),
        );
    };
    type Case = (&'static str, ConfigEdit, Option<Head>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "seqcls_config",
            Box::new(seqcls_cfg),
            None,
            "classifier.weight",
        ),
        (
            "forced_tokcls",
            Box::new(|_| {}),
            Some(Head::TokenClassification),
            "classifier.weight",
        ),
        (
            "forced_seqcls",
            Box::new(|_| {}),
            Some(Head::SequenceClassification),
            "classifier.weight",
        ),
        (
            "forced_mc",
            Box::new(|_| {}),
            Some(Head::MultipleChoice),
            "classifier.weight",
        ),
        (
            "forced_qa",
            Box::new(|_| {}),
            Some(Head::QuestionAnswering),
            "qa_outputs.weight",
        ),
    ];
    for (tag, cfg, head, name) in cases {
        let dir = tmp(tag);
        tiny_copy("base-gelu", &dir, cfg, |_| {});
        let opts = match head {
            Some(h) => cpu_head(h),
            None => cpu(),
        };
        let err = load_err(&dir, &opts);
        match &err {
            Error::MissingTensor { name: n, .. } => assert_eq!(n, name, "{tag}"),
            other => panic!("{tag}: expected MissingTensor, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(name) && text.contains("random"),
            "{tag}: {text}"
        );
    }

    // A head that needs the pooler on weights without one.
    let dir = tmp("no_pooler");
    tiny_copy(
        "seqcls-single",
        &dir,
        |_| {},
        |t| t.retain(|t| !t.name.contains("pooler.")),
    );
    let err = load_err(&dir, &cpu());
    match &err {
        Error::MissingTensor { name, .. } => assert!(name.starts_with("pooler.dense."), "{name}"),
        other => panic!("no_pooler: expected MissingTensor, got {other:?}"),
    }
    assert!(err.to_string().contains("pooler"), "{err}");
}

#[test]
fn classifier_rows_unlike_num_labels() {
    // seqcls-single has 3 labels; the config now says 4.
    let four = |c: &mut Map<String, Value>| {
        c.insert(
            "id2label".into(),
            json!({"0": "A", "1": "B", "2": "C", "3": "D"}),
        );
        c.insert("label2id".into(), json!({"A": 0, "B": 1, "C": 2, "D": 3}));
    };
    let dir = tmp("classifier_rows");
    tiny_copy("seqcls-single", &dir, four, |_| {});
    let err = load_err(&dir, &cpu());
    match &err {
        Error::ShapeMismatch {
            name,
            expected,
            actual,
        } => {
            assert_eq!(name, "classifier.weight");
            assert_eq!(expected, &vec![4, 32]);
            assert_eq!(actual, &vec![3, 32]);
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
    assert!(err.to_string().contains("classifier.weight"), "{err}");

    // The same with the weight's rows changed instead (and the bias kept).
    let dir = tmp("classifier_rows_weight");
    tiny_copy(
        "tokcls",
        &dir,
        |_| {},
        |ts| {
            let t = ts
                .iter_mut()
                .find(|t| t.name == "classifier.weight")
                .unwrap();
            t.shape = vec![4, 32];
            t.bytes.truncate(4 * 32 * 4);
        },
    );
    let err = load_err(&dir, &cpu());
    match &err {
        Error::ShapeMismatch { name, actual, .. } => {
            assert_eq!(name, "classifier.weight");
            assert_eq!(actual, &vec![4, 32]);
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
}

// ---------------------------------------------------------------- configs

fn base_config() -> Map<String, Value> {
    serde_json::from_str(
        &std::fs::read_to_string(tiny_dir("base-gelu").join("config.json")).unwrap(),
    )
    .unwrap()
}

fn with(edits: &[(&str, Value)]) -> String {
    let mut c = base_config();
    for (k, v) in edits {
        c.insert(k.to_string(), v.clone());
    }
    Value::Object(c).to_string()
}

#[derive(Debug)]
enum Kind {
    Config,
    Unsupported,
}

#[test]
fn bad_configs() {
    // (tag, config.json text, kind, words the message must contain)
    let cases: Vec<(&str, String, Kind, Vec<&str>)> = vec![
        (
            "not_json",
            "{\"vocab_size\": 99,".into(),
            Kind::Config,
            vec!["EOF"],
        ),
        ("plain_text", "hello".into(), Kind::Config, vec!["expected"]),
        ("array", "[1, 2]".into(), Kind::Config, vec!["struct"]),
        (
            "vocab_size_string",
            with(&[("vocab_size", json!("99"))]),
            Kind::Config,
            vec!["string"],
        ),
        (
            "vocab_size_negative",
            with(&[("vocab_size", json!(-1))]),
            Kind::Config,
            vec!["-1"],
        ),
        (
            "gelu_fast_custom",
            with(&[("hidden_act", json!("gelu_fast_custom"))]),
            Kind::Unsupported,
            vec!["gelu_fast_custom", "hidden_act"],
        ),
        (
            "relative_key",
            with(&[("position_embedding_type", json!("relative_key"))]),
            Kind::Unsupported,
            vec!["relative_key", "position_embedding_type"],
        ),
        (
            "relative_key_query",
            with(&[("position_embedding_type", json!("relative_key_query"))]),
            Kind::Unsupported,
            vec!["relative_key_query"],
        ),
        (
            "decoder",
            with(&[("is_decoder", json!(true))]),
            Kind::Unsupported,
            vec!["is_decoder"],
        ),
        (
            "hidden_30_heads_4",
            with(&[("hidden_size", json!(30))]),
            Kind::Config,
            vec!["hidden_size", "30", "num_attention_heads", "4"],
        ),
        (
            "heads_more_than_hidden",
            with(&[("num_attention_heads", json!(64))]),
            Kind::Config,
            vec!["hidden_size", "32", "num_attention_heads", "64"],
        ),
        (
            "vocab_0",
            with(&[("vocab_size", json!(0))]),
            Kind::Config,
            vec!["vocab_size"],
        ),
        (
            "heads_0",
            with(&[("num_attention_heads", json!(0))]),
            Kind::Config,
            vec!["num_attention_heads"],
        ),
        (
            "layers_0",
            with(&[("num_hidden_layers", json!(0))]),
            Kind::Config,
            vec!["num_hidden_layers"],
        ),
        (
            "max_pos_0",
            with(&[("max_position_embeddings", json!(0))]),
            Kind::Config,
            vec!["max_position_embeddings"],
        ),
        (
            "type_vocab_0",
            with(&[("type_vocab_size", json!(0))]),
            Kind::Config,
            vec!["type_vocab_size"],
        ),
        (
            "hidden_2_pow_40",
            with(&[("hidden_size", json!(1u64 << 40))]),
            Kind::Config,
            vec!["hidden_size", "1099511627776"],
        ),
        (
            "vocab_2_pow_40",
            with(&[("vocab_size", json!(1u64 << 40))]),
            Kind::Config,
            vec!["vocab_size", "1099511627776"],
        ),
        (
            "intermediate_2_pow_40",
            with(&[("intermediate_size", json!(1u64 << 40))]),
            Kind::Config,
            vec!["intermediate_size"],
        ),
        (
            "layers_huge",
            with(&[("num_hidden_layers", json!(100000))]),
            Kind::Config,
            vec!["num_hidden_layers", "100000"],
        ),
        (
            "max_pos_u64_max",
            with(&[("max_position_embeddings", json!(u64::MAX))]),
            Kind::Config,
            vec!["max_position_embeddings"],
        ),
        (
            "layer_norm_eps_inf",
            with(&[("layer_norm_eps", json!(1e300))]),
            Kind::Config,
            vec!["layer_norm_eps"],
        ),
        (
            "layer_norm_eps_negative",
            with(&[("layer_norm_eps", json!(-1e-5))]),
            Kind::Config,
            vec!["layer_norm_eps"],
        ),
        (
            "num_labels_vs_id2label",
            with(&[
                ("num_labels", json!(3)),
                ("id2label", json!({"0": "NEG", "1": "POS"})),
            ]),
            Kind::Config,
            vec!["num_labels", "3", "id2label", "2"],
        ),
        (
            "id2label_key_not_integer",
            with(&[("id2label", json!({"0": "NEG", "one": "POS"}))]),
            Kind::Config,
            vec!["id2label", "one"],
        ),
        (
            "id2label_key_negative",
            with(&[("id2label", json!({"-1": "NEG", "0": "POS"}))]),
            Kind::Config,
            vec!["id2label", "-1"],
        ),
        (
            "id2label_sparse",
            with(&[("id2label", json!({"0": "NEG", "5": "POS"}))]),
            Kind::Config,
            vec!["id2label", "5", "num_labels"],
        ),
        (
            "num_labels_0",
            with(&[("num_labels", json!(0))]),
            Kind::Config,
            vec!["num_labels"],
        ),
        (
            "problem_type_unknown",
            with(&[("problem_type", json!("ranking"))]),
            Kind::Config,
            vec!["problem_type", "ranking"],
        ),
    ];
    for (tag, text, kind, words) in &cases {
        let err = match BertConfig::from_json_str(text) {
            Ok(_) => panic!("{tag}: config accepted"),
            Err(e) => e,
        };
        let ok = matches!(
            (kind, &err),
            (Kind::Config, Error::Config { .. }) | (Kind::Unsupported, Error::Unsupported(_))
        );
        assert!(ok, "{tag}: expected {kind:?}, got {err:?}");
        let msg = err.to_string();
        for w in words {
            assert!(msg.contains(w), "{tag}: `{w}` not in: {msg}");
        }
    }

    // Through Model::load_dir: the config is refused (naming the file)
    // before the weights are touched, even when they would not fit in memory.
    for (tag, edits) in [
        (
            "load_hidden_2_pow_40",
            vec![("hidden_size", json!(1u64 << 40))],
        ),
        ("load_vocab_0", vec![("vocab_size", json!(0))]),
        (
            "load_gelu_fast_custom",
            vec![("hidden_act", json!("gelu_fast_custom"))],
        ),
    ] {
        let dir = tmp(tag);
        std::fs::write(dir.join("config.json"), with(&edits)).unwrap();
        // Weights that are not even a safetensors file: never read.
        std::fs::write(dir.join("model.safetensors"), b"garbage").unwrap();
        let err = load_err(&dir, &cpu());
        match &err {
            Error::Config { path, .. } => assert_eq!(path, &dir.join("config.json"), "{tag}"),
            Error::Unsupported(m) => assert!(m.contains("gelu_fast_custom"), "{tag}: {m}"),
            other => panic!("{tag}: expected a config error, got {other:?}"),
        }
    }
}

#[test]
fn good_config_defaults_and_labels() {
    let c = BertConfig::from_json_str("{}").unwrap();
    assert_eq!(
        (
            c.vocab_size,
            c.hidden_size,
            c.num_hidden_layers,
            c.num_labels
        ),
        (30522, 768, 12, 2)
    );
    let c = BertConfig::from_json_str(&with(&[(
        "id2label",
        json!({"0": "NEG", "1": "NEU", "2": "POS"}),
    )]))
    .unwrap();
    assert_eq!(c.num_labels, 3);
    assert_eq!(c.label_name(2), "POS");
    assert_eq!(c.label2id["NEU"], 1);
}

#[test]
fn tokenizer_vocab_larger_than_config() {
    let src = minilm_dir();
    let dir = tmp("tokenizer_vocab");
    let mut cfg: Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg.insert("vocab_size".into(), json!(1000));
    std::fs::write(dir.join("config.json"), Value::Object(cfg).to_string()).unwrap();
    std::fs::copy(src.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(src.join("model.safetensors"), dir.join("model.safetensors"))
        .unwrap();
    #[cfg(not(unix))]
    std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let err = load_err(&dir, &cpu());
    match &err {
        Error::Tokenizer(m) => {
            assert!(m.contains("30522") && m.contains("1000"), "{m}");
            assert!(m.contains("vocab_size"), "{m}");
        }
        other => panic!("expected Tokenizer, got {other:?}"),
    }

    // A tokenizer.json that is not one.
    std::fs::write(dir.join("tokenizer.json"), b"{not json").unwrap();
    let err = load_err(&dir, &cpu());
    match &err {
        Error::Tokenizer(m) => assert!(m.contains("tokenizer.json"), "{m}"),
        other => panic!("expected Tokenizer, got {other:?}"),
    }
}

// ------------------------------------------------------- model locations

#[test]
fn model_folder_missing_or_incomplete() {
    // An absolute path that does not exist.
    let err = Model::load("/nonexistent/dir", &cpu())
        .err()
        .expect("loaded a model from nowhere");
    let text = err.to_string();
    assert!(text.contains("/nonexistent/dir"), "{text}");
    assert!(matches!(err, Error::Hub(_) | Error::Io { .. }), "{err:?}");

    let err = Model::load_dir(Path::new("/nonexistent/dir"), &cpu())
        .err()
        .expect("loaded a model from nowhere");
    assert!(err.to_string().contains("/nonexistent/dir"), "{err}");

    // A folder with a config but no weights.
    let dir = tmp("no_weights");
    std::fs::copy(
        tiny_dir("base-gelu").join("config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    let err = load_err(&dir, &cpu());
    match &err {
        Error::Io { path, .. } => assert_eq!(path, &dir.join("model.safetensors")),
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    // A folder with weights but no config.
    let dir = tmp("no_config");
    std::fs::copy(
        tiny_dir("base-gelu").join("model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let err = load_err(&dir, &cpu());
    match &err {
        Error::Io { path, .. } => assert_eq!(path, &dir.join("config.json")),
        other => panic!("expected Io, got {other:?}"),
    }

    // An empty string.
    let err = Model::load("", &cpu())
        .err()
        .expect("loaded a model from ``");
    assert!(matches!(err, Error::Hub(_) | Error::Io { .. }), "{err:?}");
}

/// The only test in this binary that touches HF_HUB_OFFLINE (and the only one
/// that resolves a Hub id), so setting it here affects no other test.
#[test]
fn hub_id_offline_says_how_to_get_the_files() {
    let cache = tmp("hf_home");
    std::env::set_var("HF_HUB_OFFLINE", "1");
    std::env::set_var("HF_HOME", cache.as_os_str());
    let err = Model::load("foo/bar", &cpu())
        .err()
        .expect("loaded foo/bar offline");
    match &err {
        Error::Hub(m) => {
            assert!(m.contains("foo/bar"), "{m}");
            assert!(m.contains("HF_HUB_OFFLINE"), "{m}");
            assert!(m.contains("--model"), "{m}");
        }
        other => panic!("expected Hub, got {other:?}"),
    }
}
