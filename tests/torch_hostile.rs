//! Hand-built hostile files, in the legacy layout (sequential pickles then
//! raw storages) since it is easy to write byte by byte: every lie a header
//! can tell must end in an error, without a large allocation.

use bert_wgpu::checkpoint::torch::{read_torch, TorchData};

fn s(text: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend((text.len() as u32).to_le_bytes());
    v.extend(text.as_bytes());
    v
}

fn int(i: i64) -> Vec<u8> {
    let mut v = vec![0x8a, 8];
    v.extend(i.to_le_bytes());
    v
}

fn tuple(items: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![b'('];
    items.iter().for_each(|i| v.extend(i));
    v.push(b't');
    v
}

/// `_rebuild_tensor_v2(storage key (f32, numel), offset, shape, stride)`.
fn tensor(key: &str, numel: i64, offset: i64, shape: &[i64], stride: &[i64]) -> Vec<u8> {
    let mut v = b"ctorch._utils\n_rebuild_tensor_v2\n".to_vec();
    let pid = tuple(&[
        s("storage"),
        b"ctorch\nFloatStorage\n".to_vec(),
        s(key),
        s("cpu"),
        int(numel),
        b"N".to_vec(),
    ]);
    let mut pid = pid;
    pid.push(b'Q');
    let dims = |d: &[i64]| tuple(&d.iter().map(|&x| int(x)).collect::<Vec<_>>());
    v.extend(tuple(&[
        pid,
        int(offset),
        dims(shape),
        dims(stride),
        b"\x89".to_vec(),
        b"ccollections\nOrderedDict\n)R".to_vec(),
    ]));
    v.push(b'R');
    v
}

/// A legacy file whose state dict is `body` (dict items) and whose storages
/// are `storages` (key, element count written, data bytes).
fn legacy(body: &[u8], storages: &[(&str, u64, Vec<u8>)]) -> Vec<u8> {
    let mut f = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
    f.extend(b"\x80\x02M\xe9\x03.");
    f.extend(b"\x80\x02}.");
    f.extend(b"\x80\x02}(");
    f.extend(body);
    f.extend(b"u.");
    f.extend(b"\x80\x02](");
    storages.iter().for_each(|(k, _, _)| f.extend(s(k)));
    f.extend(b"e.");
    for (_, count, data) in storages {
        f.extend(count.to_le_bytes());
        f.extend(data);
    }
    f
}

fn f32s(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
}

fn err(file: &[u8]) -> String {
    read_torch(file).expect_err("expected an error").message
}

#[test]
fn well_formed_baseline() {
    let mut body = s("w");
    body.extend(tensor("k", 6, 0, &[3, 2], &[1, 3]));
    let file = legacy(&body, &[("k", 6, f32s(6))]);
    let e = read_torch(&file).unwrap();
    let want: Vec<u8> = [0., 3., 1., 4., 2., 5.]
        .iter()
        .flat_map(|x: &f32| x.to_le_bytes())
        .collect();
    assert_eq!(e[0].data, TorchData::Owned(want));
}

#[test]
fn view_past_its_storage() {
    let mut body = s("w");
    body.extend(tensor("k", 4, 2, &[3], &[1]));
    let m = err(&legacy(&body, &[("k", 4, f32s(4))]));
    assert!(
        m.starts_with("`w`: size [3], stride [1] at offset 2"),
        "{m}"
    );
    assert!(m.contains("storage holding 4 F32 elements"), "{m}");
    // Strided: the last row reaches element 2 + 1 * 4 + 1 = 7 of 6.
    let mut body = s("w");
    body.extend(tensor("k", 6, 2, &[2, 2], &[4, 1]));
    assert!(err(&legacy(&body, &[("k", 6, f32s(6))])).contains("past the end"));
}

#[test]
fn index_arithmetic_overflow() {
    let mut body = s("w");
    body.extend(tensor("k", 4, i64::MAX, &[2], &[1]));
    assert!(err(&legacy(&body, &[("k", 4, f32s(4))])).contains("storage holding 4"));
    let mut body = s("w");
    body.extend(tensor("k", 4, 0, &[1 << 40, 1 << 40], &[1, 1 << 40]));
    assert!(err(&legacy(&body, &[("k", 4, f32s(4))])).starts_with("`w`:"));
    let mut body = s("w");
    body.extend(tensor("k", 4, 0, &[-1], &[1]));
    assert!(err(&legacy(&body, &[("k", 4, f32s(4))])).contains("expected a non-negative integer"));
}

#[test]
fn huge_declared_sizes_allocate_nothing() {
    // The storage claims 2^60 elements; the file holds 4.
    let mut body = s("w");
    body.extend(tensor("k", 1 << 60, 0, &[4], &[1]));
    let m = err(&legacy(&body, &[("k", 1 << 60, f32s(4))]));
    assert!(m.contains("runs past the end of the file"), "{m}");
    // The count written disagrees with the pickle.
    let mut body = s("w");
    body.extend(tensor("k", 8, 0, &[4], &[1]));
    let m = err(&legacy(&body, &[("k", 4, f32s(4))]));
    assert!(
        m.contains("holds 16 bytes, but the pickle declares 8 elements"),
        "{m}"
    );
    // expand(): stride 0 reads one element a billion times.
    let mut body = s("w");
    body.extend(tensor("k", 1, 0, &[1 << 30, 2], &[0, 0]));
    let m = err(&legacy(&body, &[("k", 1, f32s(1))]));
    assert!(
        m.contains("more memory than the file's size justifies"),
        "{m}"
    );
}

#[test]
fn shared_dicts_cannot_multiply_entries() {
    // d0 = {"a": t, ...}; d_{i+1} = {"a": d_i, "b": d_i, ...}: 8^13 tensors
    // in under a kilobyte, nested less deep than the depth limit.
    let keys = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let mut body = s("d");
    body.extend(tensor("k", 1, 0, &[], &[]));
    body.extend(b"q\x000"); // memoized and popped: only the last level stays
    for level in 0..12u8 {
        body.extend(b"}(");
        for k in keys {
            body.extend(s(k));
            body.extend([b'h', level]);
        }
        body.extend([b'u', b'q', level + 1]);
        if level < 11 {
            body.push(b'0');
        }
    }
    let m = err(&legacy(&body, &[("k", 1, f32s(1))]));
    assert!(m.contains("more entries than the file could hold"), "{m}");
}

#[test]
fn self_containing_dict() {
    // d = {}; d["d"] = d
    let body = [s("d"), b"}q\x00".to_vec(), s("d"), b"h\x00s".to_vec()].concat();
    let m = err(&legacy(&body, &[]));
    assert!(m.contains("nested more than 16 deep"), "{m}");
}

#[test]
fn storage_bookkeeping() {
    let mut body = s("w");
    body.extend(tensor("k", 1, 0, &[1], &[1]));
    let m = err(&legacy(&body, &[("k", 1, f32s(1)), ("k", 1, f32s(1))]));
    assert!(m.contains("listed twice"), "{m}");
    let m = err(&legacy(&body, &[]));
    assert!(
        m.contains("storage `k` is not in the file's storage list"),
        "{m}"
    );
    let m = err(&legacy(&body, &[("k", 1, f32s(1)), ("other", 1, f32s(1))]));
    assert!(m.contains("`other` is listed but no tensor uses it"), "{m}");
}

#[test]
fn duplicate_keys_follow_python() {
    // {"a": t1, "b": t2, "a": t3} is {"a": t3, "b": t2}.
    let mut body = s("a");
    body.extend(tensor("k", 3, 0, &[1], &[1]));
    body.extend(s("b"));
    body.extend(tensor("k", 3, 1, &[1], &[1]));
    body.extend(s("a"));
    body.extend(tensor("k", 3, 2, &[1], &[1]));
    let file = legacy(&body, &[("k", 3, f32s(3))]);
    let e = read_torch(&file).unwrap();
    let got: Vec<_> = e
        .iter()
        .map(|e| (e.key.as_str(), e.data.bytes(&file).unwrap().to_vec()))
        .collect();
    assert_eq!(
        got,
        [
            ("a", 2f32.to_le_bytes().to_vec()),
            ("b", 1f32.to_le_bytes().to_vec())
        ]
    );
}

#[test]
fn big_endian_legacy() {
    let mut f = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
    f.extend(b"\x80\x02M\xe9\x03.");
    f.extend(b"\x80\x02}");
    f.extend(s("little_endian"));
    f.extend(b"\x89s.");
    assert!(err(&f).contains("big-endian"));
}
