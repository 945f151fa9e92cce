//! The files of `tests/fixtures/torch/` (written by its `make.py` with real torch
//! and transformers) against torch's own dumps of their tensors.

use std::path::PathBuf;

use bert_wgpu::checkpoint::torch::{read_torch, TorchData, TorchEntry};

fn bytes(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(name: &str) -> (Vec<u8>, Vec<TorchEntry>) {
    let b = bytes(name);
    let entries = read_torch(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
    (b, entries)
}

fn error(name: &str) -> String {
    match read_torch(&bytes(name)) {
        Ok(e) => panic!("{name}: read {} entries, expected an error", e.len()),
        Err(e) => e.message,
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// `key<TAB>dtype<TAB>shape<TAB>hex` lines, as make.py dumps them.
fn expected(tsv: &str) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let text = String::from_utf8(bytes(tsv)).unwrap();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let shape = f[2]
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            (f[0].to_string(), f[1].to_string(), shape, hex(f[3]))
        })
        .collect()
}

/// Every tensor of `bin`, in order, equals torch's dump in `tsv`.
fn matches_dump(bin: &str, tsv: &str) -> (Vec<u8>, Vec<TorchEntry>) {
    let (b, entries) = read(bin);
    let want = expected(tsv);
    let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    let want_keys: Vec<&str> = want.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(keys, want_keys, "{bin}: keys");
    for (e, (key, dtype, shape, data)) in entries.iter().zip(&want) {
        assert_eq!(&format!("{:?}", e.dtype), dtype, "{bin}: `{key}` dtype");
        assert_eq!(&e.shape, shape, "{bin}: `{key}` shape");
        assert_eq!(e.data.bytes(&b), Some(&data[..]), "{bin}: `{key}` data");
    }
    (b, entries)
}

fn entry<'a>(entries: &'a [TorchEntry], key: &str) -> &'a TorchEntry {
    entries.iter().find(|e| e.key == key).unwrap()
}

fn span(e: &TorchEntry) -> std::ops::Range<usize> {
    match &e.data {
        TorchData::Span(r) => r.clone(),
        TorchData::Owned(_) => panic!("`{}` was gathered", e.key),
    }
}

#[test]
fn zip_state_dict() {
    let (_, entries) = matches_dump("basic.bin", "basic.tsv");
    // Views: contiguous ones stay in place, strided ones are gathered.
    assert!(matches!(
        entry(&entries, "transposed").data,
        TorchData::Owned(_)
    ));
    assert!(matches!(
        entry(&entries, "strided").data,
        TorchData::Owned(_)
    ));
    let offset = span(entry(&entries, "offset_view"));
    assert_eq!(offset.len(), 8 * 4);
    // The whole 10-element storage is saved; the view starts 2 elements in.
    assert_eq!(offset.start % 64, 8, "torch aligns storages to 64 bytes");
    assert_eq!(
        span(entry(&entries, "tied_a")),
        span(entry(&entries, "tied_b"))
    );
    assert_eq!(entry(&entries, "scalar").shape, Vec::<usize>::new());
    assert!(entries.iter().all(|e| e.key != "not_a_tensor"));
}

#[test]
fn pickle_protocol_4() {
    matches_dump("basic_p4.bin", "basic.tsv");
}

#[test]
fn legacy_state_dict() {
    let (_, entries) = matches_dump("legacy.bin", "basic.tsv");
    assert_eq!(
        span(entry(&entries, "tied_a")),
        span(entry(&entries, "tied_b"))
    );
}

#[test]
fn zip64_entries() {
    matches_dump("zip64.bin", "basic.tsv");
}

#[test]
fn nested_dict_is_flattened() {
    matches_dump("nested.bin", "nested.tsv");
}

#[test]
fn hf_bert() {
    let (_, entries) = matches_dump("bert/pytorch_model.bin", "bert.tsv");
    assert!(entries.len() > 20);
    let word = entry(&entries, "bert.embeddings.word_embeddings.weight");
    assert_eq!(word.shape, [24, 8]);
    matches_dump("bert_legacy.bin", "bert.tsv");
}

#[test]
fn refuses_os_system() {
    let m = error("evil_os_system.bin");
    assert!(
        m.starts_with(
            "refused global `os.system` in data.pkl: only tensor rebuilds and plain containers are allowed"
        ),
        "{m}"
    );
    assert!(m.contains("entry `archive/data.pkl` byte 2"), "{m}");
}

#[test]
fn refuses_builtins_eval() {
    let m = error("evil_eval.bin");
    assert!(
        m.starts_with("refused global `builtins.eval` in data.pkl"),
        "{m}"
    );
}

#[test]
fn refuses_legacy_posix_system() {
    let m = error("evil_legacy.bin");
    assert!(
        m.starts_with("refused global `posix.system` in the legacy state-dict pickle"),
        "{m}"
    );
    assert!(m.contains("file byte 139"), "{m}");
}

#[test]
fn truncated_zip() {
    let m = error("truncated.bin");
    assert!(m.starts_with("not a readable zip archive"), "{m}");
}

#[test]
fn every_truncation_is_an_error() {
    for name in ["basic.bin", "legacy.bin", "basic_p4.bin"] {
        let b = bytes(name);
        for n in 0..b.len() {
            assert!(read_torch(&b[..n]).is_err(), "{name} cut at {n}");
        }
    }
    let b = bytes("legacy.bin");
    let m = read_torch(&b[..b.len() - 3]).unwrap_err().message;
    assert!(
        m.contains("runs past the end of the file") && m.contains("truncated?"),
        "{m}"
    );
}

#[test]
fn refuses_compressed_entries() {
    let m = error("deflated.bin");
    assert!(
        m.starts_with("`f32`: entry `basic/data/0`: compressed (Deflated)"),
        "{m}"
    );
}

#[test]
fn refuses_big_endian() {
    let m = error("big_endian.bin");
    assert!(m.contains("`basic/byteorder` says big"), "{m}");
}

#[test]
fn refuses_complex_by_key() {
    let m = error("complex.bin");
    assert!(
        m.starts_with("`c`: torch.ComplexFloatStorage (complex64)"),
        "{m}"
    );
}

#[test]
fn refuses_quantized_by_key() {
    let m = error("quantized.bin");
    assert!(m.starts_with("`q`: quantized tensors"), "{m}");
}

#[test]
fn refuses_non_dict() {
    let m = error("bare_tensor.bin");
    assert!(m.contains("holds a tensor, expected a dict"), "{m}");
}

#[test]
fn refuses_other_files() {
    let m = read_torch(b"version https://git-lfs.github.com/spec/v1\n").unwrap_err();
    assert!(m.message.contains("Git LFS pointer"));
    let m = read_torch(b"{\"a\": 1}").unwrap_err();
    assert!(
        m.message
            .starts_with("not a torch.save file: it starts with [7b 22"),
        "{m}"
    );
    assert!(read_torch(b"").is_err());
    // A pickle, but not torch's.
    let m = read_torch(b"\x80\x02K\x01.").unwrap_err();
    assert!(m.message.contains("magic number"), "{m}");
}
