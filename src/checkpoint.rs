//! `model.safetensors` through mmap. The header is validated by the reference
//! parser (`safetensors` crate: header length checked against the file size
//! before allocation, contiguous in-bounds offsets, shape × dtype = byte span);
//! f32 tensors stored little-endian at 4-byte-aligned addresses are read in
//! place ([`F32Data`]: the GPU upload copies them straight from the mapping);
//! everything else is decoded with `from_le_bytes`, so unaligned data and
//! other float types are fine. Keys are canonicalised to HF's `BertModel`
//! names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// A dense f32 tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor from its shape and data; errors when the sizes disagree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::input(format!(
                "tensor of shape {shape:?} needs {n} values, got {}",
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }
}

/// The f32 values of one tensor: in place in the checkpoint's bytes when
/// the file stores them as little-endian f32 at a 4-byte-aligned address
/// (no copy; the bytes stay mapped while any `F32Data` holds them), else
/// decoded into memory.
#[derive(Clone)]
pub enum F32Data {
    /// Decoded (another float type, an unaligned offset, or built in memory).
    Owned(Vec<f32>),
    /// In place in a checkpoint (alignment and size checked when made).
    InPlace(InPlace),
}

/// A span of a checkpoint's bytes that [`Checkpoint::f32_data`] found to
/// be whole, aligned little-endian f32 values.
#[derive(Clone)]
pub struct InPlace {
    bytes: Arc<Storage>,
    range: std::ops::Range<usize>,
}

impl std::ops::Deref for F32Data {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            F32Data::Owned(v) => v,
            // The span was checked by `try_cast_slice` when made, and the
            // bytes behind it never move (a mapping, or a Vec never resized).
            F32Data::InPlace(p) => bytemuck::cast_slice(&p.bytes[p.range.clone()]),
        }
    }
}

impl std::fmt::Debug for F32Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            F32Data::Owned(_) => "owned",
            F32Data::InPlace(_) => "in place",
        };
        write!(f, "F32Data({} values, {kind})", self.len())
    }
}

impl F32Data {
    /// Whether the values are read in place from a checkpoint.
    pub fn is_in_place(&self) -> bool {
        matches!(self, F32Data::InPlace(_))
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// Key as stored in the file.
    stored: String,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte span of the data inside the mapping (validated by the parser).
    range: std::ops::Range<usize>,
}

/// The bytes of a checkpoint: a read-only mapping of the file, or a buffer
/// handed over by the caller ([`Checkpoint::from_bytes`]).
enum Storage {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Storage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// An opened, validated checkpoint. Tensor data stays in the mapping (or
/// buffer) until asked for.
pub struct Checkpoint {
    path: PathBuf,
    bytes: Arc<Storage>,
    /// canonical HF name → entry
    entries: BTreeMap<String, Entry>,
}

/// `bert.encoder.layer.0.attention.output.LayerNorm.gamma` →
/// `encoder.layer.0.attention.output.LayerNorm.weight`.
pub fn canonical_name(key: &str) -> String {
    let key = key.strip_prefix("bert.").unwrap_or(key);
    if key.contains("LayerNorm.") {
        if let Some(stem) = key.strip_suffix(".gamma") {
            return format!("{stem}.weight");
        }
        if let Some(stem) = key.strip_suffix(".beta") {
            return format!("{stem}.bias");
        }
    }
    key.to_string()
}

fn is_float(d: Dtype) -> bool {
    matches!(d, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64)
}

impl Checkpoint {
    /// Maps and validates `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the mapping is read-only; a concurrent writer could change the
        // bytes under us, which the validation below cannot prevent, but it cannot
        // make us read out of bounds since every read is a checked slice.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Self::validated(path.to_path_buf(), Storage::Mapped(mmap))
    }

    /// Validates the bytes of a safetensors file held in memory, exactly as
    /// [`open`](Self::open) validates a file (same checks, same errors, which
    /// name the path `<memory>`).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::validated(PathBuf::from("<memory>"), Storage::Owned(bytes))
    }

    /// The one validation path behind [`open`](Self::open) and
    /// [`from_bytes`](Self::from_bytes).
    fn validated(path: PathBuf, bytes: Storage) -> Result<Self> {
        let entries = index(&bytes, &path)?;
        Ok(Checkpoint {
            path,
            bytes: Arc::new(bytes),
            entries,
        })
    }

    /// The file this checkpoint was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Canonical names of every float tensor in the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Whether a canonical name is present.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Shape of a canonical name, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// The entry and bytes of `name`, checking its shape against `expected`.
    fn entry(&self, name: &str, expected: &[usize]) -> Result<(&Entry, &[u8])> {
        let entry = self.entries.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            expected: expected.to_vec(),
            hint: String::new(),
        })?;
        if entry.shape != expected {
            return Err(Error::ShapeMismatch {
                name: name.to_string(),
                expected: expected.to_vec(),
                actual: entry.shape.clone(),
            });
        }
        let bytes = self
            .bytes
            .get(entry.range.clone())
            .ok_or_else(|| Error::Safetensors {
                path: self.path.clone(),
                message: format!("`{}`: data outside the file", entry.stored),
            })?;
        Ok((entry, bytes))
    }

    /// `bytes` of `entry` decoded to f32.
    fn decoded(&self, entry: &Entry, bytes: &[u8]) -> Result<Vec<f32>> {
        decode_f32(entry.dtype, bytes).ok_or_else(|| Error::Safetensors {
            path: self.path.clone(),
            message: format!("`{}`: unsupported dtype {:?}", entry.stored, entry.dtype),
        })
    }

    /// Reads `name` as f32, checking its shape against `expected`.
    pub fn tensor(&self, name: &str, expected: &[usize]) -> Result<Tensor> {
        let (entry, bytes) = self.entry(name, expected)?;
        Tensor::new(entry.shape.clone(), self.decoded(entry, bytes)?)
    }

    /// The f32 values of `name` (shape checked against `expected`), in
    /// place when the file allows it (see [`F32Data`]), else decoded.
    pub fn f32_data(&self, name: &str, expected: &[usize]) -> Result<F32Data> {
        let (entry, bytes) = self.entry(name, expected)?;
        let in_place = entry.dtype == Dtype::F32
            && cfg!(target_endian = "little")
            && bytemuck::try_cast_slice::<u8, f32>(bytes).is_ok();
        if in_place {
            return Ok(F32Data::InPlace(InPlace {
                bytes: self.bytes.clone(),
                range: entry.range.clone(),
            }));
        }
        Ok(F32Data::Owned(self.decoded(entry, bytes)?))
    }
}

/// Validates `buf` as a safetensors file and lists its float tensors by
/// canonical name. Nothing is allocated from a size the header declares:
/// the reference parser checks the header length against `buf` first, and
/// the spans it accepts lie inside `buf`.
fn index(buf: &[u8], path: &Path) -> Result<BTreeMap<String, Entry>> {
    let bad = |message: String| Error::Safetensors {
        path: path.to_path_buf(),
        message,
    };
    if buf.starts_with(b"version https://git-lfs") {
        return Err(bad(
            "this is a Git LFS pointer, not the weights: fetch the real file (git lfs pull, or download it from the Hub)".into(),
        ));
    }
    if buf.len() < 8 {
        return Err(bad(format!(
            "file is {} bytes, too short for a header",
            buf.len()
        )));
    }
    if overflows_parser(buf) {
        // What the parser reports for this file when it does not overflow.
        let e = safetensors::SafeTensorError::MetadataIncompleteBuffer;
        return Err(bad(parse_error(buf, &e)));
    }
    let st = SafeTensors::deserialize(buf).map_err(|e| bad(parse_error(buf, &e)))?;
    let mut entries = BTreeMap::new();
    for (key, view) in st.iter() {
        let canon = canonical_name(key);
        let data = view.data();
        let start = data.as_ptr() as usize - buf.as_ptr() as usize;
        let entry = Entry {
            stored: key.to_string(),
            dtype: view.dtype(),
            shape: view.shape().to_vec(),
            range: start..start + data.len(),
        };
        if !is_float(entry.dtype) {
            log::debug!("ignoring non-float tensor `{key}` ({:?})", entry.dtype);
            continue;
        }
        if let Some(prev) = entries.insert(canon.clone(), entry) {
            return Err(bad(format!(
                "tensors `{}` and `{key}` both map to `{canon}`",
                prev.stored
            )));
        }
    }
    Ok(entries)
}

/// The reference parser's message plus what it leaves out: the sizes behind
/// a bad header length or an uncovered data section, and which tensor's
/// shape × dtype disagrees with its byte span. `buf` has at least 8 bytes.
fn parse_error(buf: &[u8], e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    let (n, header) = loose_header(buf);
    let tensors = || {
        header.iter().flatten().filter_map(|(k, v)| {
            let offsets: Vec<u64> = serde_json::from_value(v.get("data_offsets")?.clone()).ok()?;
            let shape: Vec<u64> = serde_json::from_value(v.get("shape")?.clone()).ok()?;
            let dtype: Dtype = serde_json::from_value(v.get("dtype")?.clone()).ok()?;
            Some((k, offsets, shape, dtype))
        })
    };
    match e {
        E::HeaderTooLarge | E::InvalidHeaderLength => format!(
            "{e}: the header length field says {n} bytes, the file has {}",
            buf.len()
        ),
        E::MetadataIncompleteBuffer => {
            let end = tensors().filter_map(|t| t.1.get(1).copied()).max().unwrap_or(0);
            format!(
                "{e}: the header's data_offsets end at byte {end} of the data section, which has {} bytes (truncated file?)",
                (buf.len() as u64).saturating_sub(8).saturating_sub(n)
            )
        }
        E::TensorInvalidInfo => tensors()
            .find_map(|(k, offsets, shape, dtype)| {
                let bits = shape
                    .iter()
                    .try_fold(dtype.bitsize() as u64, |a, &d| a.checked_mul(d))?;
                let span = offsets.get(1)?.checked_sub(*offsets.first()?)?;
                (span.checked_mul(8) != Some(bits)).then(|| {
                    format!(
                        "{e} `{k}`: {dtype} × {shape:?} is {} bytes but its data_offsets span {span}",
                        bits / 8
                    )
                })
            })
            .unwrap_or_else(|| e.to_string()),
        _ => e.to_string(),
    }
}

/// The header length field and, when it frames valid JSON, the header as
/// plain JSON (for messages and [`overflows_parser`]). `buf` has at least 8
/// bytes.
fn loose_header(buf: &[u8]) -> (u64, Option<serde_json::Map<String, serde_json::Value>>) {
    let n = u64::from_le_bytes(buf[..8].try_into().unwrap_or_default());
    let header = usize::try_from(n)
        .ok()
        .and_then(|n| buf.get(8..8usize.checked_add(n)?))
        .and_then(|h| serde_json::from_slice(h).ok());
    (n, header)
}

/// Whether `SafeTensors::deserialize` would overflow on `buf`: safetensors
/// 0.8 adds the end of the data section the header declares to the header
/// size unchecked, which panics where overflow checks are on (debug builds)
/// when a header's `data_offsets` come within 8 + header bytes of
/// `usize::MAX` (found by `fuzz/`: eight contiguous `U8` tensors of
/// 2^61 − 1 elements). Such offsets lie far beyond any buffer.
fn overflows_parser(buf: &[u8]) -> bool {
    let (n, header) = loose_header(buf);
    let Some(limit) = (usize::MAX as u64).checked_sub(n.saturating_add(8)) else {
        return false; // the parser rejects such a header length first
    };
    header.iter().flatten().any(|(_, v)| {
        v.get("data_offsets")
            .and_then(|o| o.as_array())
            .is_some_and(|o| o.iter().any(|x| x.as_u64().is_some_and(|x| x > limit)))
    })
}

/// Upcasts little-endian F32/F16/BF16/F64 bytes to f32, copying (no alignment
/// assumptions). `None` for other dtypes.
pub fn decode_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
        let h = header.to_string().into_bytes();
        let mut buf = (h.len() as u64).to_le_bytes().to_vec();
        buf.extend_from_slice(&h);
        buf.extend_from_slice(data);
        buf
    }

    #[test]
    fn from_bytes_reads_what_open_reads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tiny/base-legacy-bf16/model.safetensors");
        let a = Checkpoint::open(&path).unwrap();
        let b = Checkpoint::from_bytes(std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(a.names().collect::<Vec<_>>(), b.names().collect::<Vec<_>>());
        for name in a.names() {
            let shape = a.shape(name).unwrap();
            assert_eq!(
                a.tensor(name, shape).unwrap(),
                b.tensor(name, shape).unwrap()
            );
        }
    }

    /// Found by `fuzz/` (target `safetensors`): data_offsets ending near
    /// `usize::MAX` overflowed inside the reference parser (a panic in debug
    /// builds) instead of being reported as a truncated file.
    #[test]
    fn offsets_near_usize_max_are_an_error_not_an_overflow() {
        let n = (1u64 << 61) - 1;
        let mut header = serde_json::Map::new();
        for i in 0..8 {
            header.insert(
                format!("t{i}"),
                serde_json::json!({"dtype": "U8", "shape": [n], "data_offsets": [i * n, (i + 1) * n]}),
            );
        }
        let buf = file(&serde_json::Value::Object(header), &[]);
        let err = Checkpoint::from_bytes(buf).err().expect("must be refused");
        assert!(
            matches!(&err, Error::Safetensors { message, .. } if message.contains("truncated")),
            "{err}"
        );
    }
}
