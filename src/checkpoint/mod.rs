//! Checkpoints: `model.safetensors` and PyTorch's `pytorch_model.bin`
//! (read by a restricted unpickler that executes nothing, `torch/`), one
//! file or the shards an `*.index.json` lists, through mmap. Tensors
//! stored as little-endian f32 at 4-byte-aligned addresses are read in
//! place ([`F32Data`]: the GPU upload copies them straight from the
//! mapping); everything else is decoded with `from_le_bytes`, so unaligned
//! data and other float types are fine. Keys are canonicalised to HF's
//! base-model names ([`canonical_name`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::safetensors::Dtype;
use memmap2::Mmap;

use crate::error::{Error, Result};

mod safetensors;
pub mod torch;

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

/// A tensor as a file format reader lists it, before canonical naming.
pub(crate) struct RawEntry {
    /// Key as stored in the file.
    pub(crate) stored: String,
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
    pub(crate) data: RawData,
}

/// Where a [`RawEntry`]'s little-endian, row-major bytes are.
pub(crate) enum RawData {
    /// A span of the file's bytes (checked in bounds by the reader).
    Span(std::ops::Range<usize>),
    /// Gathered into memory (a strided view of a PyTorch storage).
    Owned(Vec<u8>),
}

#[derive(Clone)]
struct Entry {
    /// Key as stored in the file.
    stored: String,
    /// Index into [`Checkpoint::files`].
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Arc<Storage>,
    /// Byte span of the data inside `bytes`.
    range: std::ops::Range<usize>,
}

/// The bytes of a checkpoint: a read-only mapping of the file, or a buffer
/// (handed over by the caller, or a gathered tensor).
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

/// The file formats a checkpoint may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `*.safetensors`.
    Safetensors,
    /// `torch.save`: a zip of a pickle and raw storages, or the legacy
    /// pickle stream.
    Torch,
}

impl Format {
    /// Tells the formats apart by their first bytes: a zip (`PK\x03\x04`)
    /// is PyTorch's; safetensors' 8-byte length is followed by its JSON
    /// header's `{` (and its first byte may well be `0x80`); otherwise a
    /// pickle (protocol opcode `0x80`) is PyTorch's legacy format, and
    /// anything else is left to the safetensors parser to refuse.
    pub fn sniff(bytes: &[u8]) -> Self {
        if bytes.starts_with(b"PK\x03\x04") {
            Format::Torch
        } else if bytes.get(8) == Some(&b'{') {
            Format::Safetensors
        } else if bytes.first() == Some(&0x80) {
            Format::Torch
        } else {
            Format::Safetensors
        }
    }
}

/// A `torch.save` file's tensors as [`RawEntry`]s.
fn torch_index(bytes: &[u8], path: &Path) -> Result<Vec<RawEntry>> {
    let entries = torch::read_torch(bytes).map_err(|e| Error::Torch {
        path: path.to_path_buf(),
        message: e.message,
    })?;
    Ok(entries
        .into_iter()
        .map(|e| RawEntry {
            stored: e.key,
            dtype: e.dtype,
            shape: e.shape,
            data: match e.data {
                torch::TorchData::Span(r) => RawData::Span(r),
                torch::TorchData::Owned(v) => RawData::Owned(v),
            },
        })
        .collect())
}

/// An opened, validated checkpoint (one file or several shards). Tensor
/// data stays in the mappings (or buffers) until asked for.
pub struct Checkpoint {
    files: Vec<(PathBuf, Format)>,
    /// canonical HF name → entry, float tensors only
    entries: BTreeMap<String, Entry>,
    /// canonical HF name → (stored key, dtype) of the other tensors, so that
    /// asking for one says what it is instead of "missing".
    others: BTreeMap<String, (String, Dtype, usize)>,
}

/// `bert.encoder.layer.0.attention.output.LayerNorm.gamma` →
/// `encoder.layer.0.attention.output.LayerNorm.weight`: the family's
/// `base_model_prefix` ([`crate::arch::PREFIXES`]) is dropped, so head and
/// base checkpoints name the encoder alike.
pub fn canonical_name(key: &str) -> String {
    let key = crate::arch::PREFIXES
        .iter()
        .find_map(|p| key.strip_prefix(p))
        .unwrap_or(key);
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
    /// Maps and validates `path`, safetensors or PyTorch (told apart by
    /// their first bytes).
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_all(std::slice::from_ref(&path.to_path_buf()))
    }

    /// Maps and validates every shard of one checkpoint; a key in two
    /// shards is an error.
    pub fn open_all(paths: &[PathBuf]) -> Result<Self> {
        let mut ckpt = Checkpoint {
            files: Vec::new(),
            entries: BTreeMap::new(),
            others: BTreeMap::new(),
        };
        for path in paths {
            let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            // SAFETY: the mapping is read-only; a concurrent writer could
            // change the bytes under us, which the validation cannot
            // prevent, but it cannot make us read out of bounds since every
            // read is a checked slice.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            ckpt.add(path.clone(), Storage::Mapped(mmap), None)?;
        }
        Ok(ckpt)
    }

    /// Validates the bytes of a safetensors file held in memory, exactly as
    /// [`open`](Self::open) validates a file (same checks, same errors, which
    /// name the path `<memory>`).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::from_bytes_as(bytes, Format::Safetensors)
    }

    /// [`from_bytes`](Self::from_bytes) for a given format.
    pub fn from_bytes_as(bytes: Vec<u8>, format: Format) -> Result<Self> {
        let mut ckpt = Checkpoint {
            files: Vec::new(),
            entries: BTreeMap::new(),
            others: BTreeMap::new(),
        };
        ckpt.add(
            PathBuf::from("<memory>"),
            Storage::Owned(bytes),
            Some(format),
        )?;
        Ok(ckpt)
    }

    /// Indexes one file's tensors into the checkpoint.
    fn add(&mut self, path: PathBuf, bytes: Storage, format: Option<Format>) -> Result<()> {
        let format = format.unwrap_or_else(|| Format::sniff(&bytes));
        let raw = match format {
            Format::Safetensors => safetensors::index(&bytes, &path)?,
            Format::Torch => torch_index(&bytes, &path)?,
        };
        let file = self.files.len();
        self.files.push((path, format));
        let bytes = Arc::new(bytes);
        for e in raw {
            let canon = canonical_name(&e.stored);
            if !is_float(e.dtype) {
                log::debug!("non-float tensor `{}` ({:?})", e.stored, e.dtype);
                self.others
                    .insert(canon, (e.stored, e.dtype, self.files.len() - 1));
                continue;
            }
            let (bytes, range) = match e.data {
                RawData::Span(r) => (bytes.clone(), r),
                RawData::Owned(v) => {
                    let n = v.len();
                    (Arc::new(Storage::Owned(v)), 0..n)
                }
            };
            let entry = Entry {
                stored: e.stored,
                file,
                dtype: e.dtype,
                shape: e.shape,
                bytes,
                range,
            };
            if let Some(prev) = self.entries.get(&canon) {
                let (a, b) = (&self.files[prev.file].0, &self.files[file].0);
                return Err(self.bad(
                    file,
                    format!(
                        "tensors `{}` ({}) and `{}` ({}) both map to `{canon}`",
                        prev.stored,
                        a.display(),
                        entry.stored,
                        b.display()
                    ),
                ));
            }
            self.entries.insert(canon, entry);
        }
        Ok(())
    }

    fn bad(&self, file: usize, message: String) -> Error {
        match self.files.get(file) {
            Some((path, Format::Torch)) => Error::Torch {
                path: path.clone(),
                message,
            },
            other => Error::Safetensors {
                path: other.map(|f| f.0.clone()).unwrap_or_default(),
                message,
            },
        }
    }

    /// The file this checkpoint was read from (its first shard).
    pub fn path(&self) -> &Path {
        self.files.first().map_or(Path::new(""), |f| f.0.as_path())
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
        let Some(entry) = self.entries.get(name) else {
            if let Some((stored, dtype, file)) = self.others.get(name) {
                return Err(self.bad(
                    *file,
                    format!("`{stored}` is stored as {dtype:?}; the model needs floats (F32, F16, BF16 or F64) of shape {expected:?}"),
                ));
            }
            return Err(Error::MissingTensor {
                name: name.to_string(),
                expected: expected.to_vec(),
                hint: String::new(),
            });
        };
        if entry.shape != expected {
            return Err(Error::ShapeMismatch {
                name: name.to_string(),
                expected: expected.to_vec(),
                actual: entry.shape.clone(),
            });
        }
        let bytes = entry.bytes.get(entry.range.clone()).ok_or_else(|| {
            self.bad(
                entry.file,
                format!("`{}`: data outside the file", entry.stored),
            )
        })?;
        Ok((entry, bytes))
    }

    /// `bytes` of `entry` decoded to f32.
    fn decoded(&self, entry: &Entry, bytes: &[u8]) -> Result<Vec<f32>> {
        decode_f32(entry.dtype, bytes).ok_or_else(|| {
            self.bad(
                entry.file,
                format!("`{}`: unsupported dtype {:?}", entry.stored, entry.dtype),
            )
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
                bytes: entry.bytes.clone(),
                range: entry.range.clone(),
            }));
        }
        Ok(F32Data::Owned(self.decoded(entry, bytes)?))
    }
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

    #[test]
    fn a_safetensors_length_starting_with_0x80_is_not_a_pickle() {
        let mut buf = 0x80u64.to_le_bytes().to_vec();
        buf.push(b'{');
        assert_eq!(Format::sniff(&buf), Format::Safetensors);
        assert_eq!(
            Format::sniff(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9"),
            Format::Torch
        );
        assert_eq!(Format::sniff(b"PK\x03\x04rest"), Format::Torch);
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
}
