//! Reads PyTorch `torch.save` checkpoints (`pytorch_model.bin`) without
//! running them.
//!
//! A torch checkpoint is a Python pickle, a program for a stack machine
//! that may import and call anything. [`read_torch`] runs it on a machine of
//! its own (`pickle.rs`) that knows only the handful of globals torch uses to
//! describe tensors (`globals.rs`) and refuses every other name, then points
//! each tensor at its bytes in the input. Two containers are understood:
//! the zip archive torch ≥ 1.6 writes (`zip.rs`) and the older
//! sequential format (`legacy.rs`).
//!
//! What is accepted: `collections.OrderedDict`, `torch.Size`, the tensor
//! rebuilds (`torch._utils._rebuild_tensor{,_v2,_v3}`,
//! `_rebuild_parameter{,_with_state}`, `torch._tensor._rebuild_from_type_v2`
//! over `torch.Tensor`/`Parameter`), the storage classes and `torch.<dtype>`
//! objects. Every other global is refused by name, as are persistent ids
//! other than storages and BUILD on anything but a dict. Complex and
//! quantized tensors are recognised only to be refused with their key.
//! Work and memory are linear in the input: see `pickle.rs` for the machine,
//! `state_dict.rs` and `layout.rs` for the budgets on what it describes.

mod globals;
mod layout;
mod legacy;
mod pickle;
mod rebuild;
mod state_dict;
mod zip;

use std::fmt::Display;
use std::ops::Range;

use safetensors::Dtype;

/// One tensor of a state dict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorchEntry {
    /// The state-dict key (nested dicts are flattened with `.`).
    pub key: String,
    /// The storage's element type.
    pub dtype: Dtype,
    /// Dimensions, outermost first; empty for a 0-dim scalar.
    pub shape: Vec<usize>,
    /// Where its bytes are.
    pub data: TorchData,
}

/// Where a tensor's row-major, little-endian bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TorchData {
    /// Byte range in the input buffer holding the tensor's contiguous
    /// little-endian data (checked to lie inside it).
    Span(Range<usize>),
    /// Gathered copy (row-major, little-endian) for non-contiguous views.
    Owned(Vec<u8>),
}

impl TorchData {
    /// The tensor's bytes, given the buffer that [`read_torch`] indexed.
    pub fn bytes<'a>(&'a self, input: &'a [u8]) -> Option<&'a [u8]> {
        match self {
            TorchData::Span(r) => input.get(r.clone()),
            TorchData::Owned(v) => Some(v),
        }
    }
}

/// Why a file could not be read: which key, entry or byte offset, and what
/// was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TorchError {
    /// What is wrong, and where.
    pub message: String,
}

impl TorchError {
    fn new(message: impl Into<String>) -> Self {
        TorchError {
            message: message.into(),
        }
    }

    /// Prefixes the message with where it happened.
    fn context(self, at: impl Display) -> Self {
        TorchError::new(format!("{at}: {}", self.message))
    }
}

/// Indexes a `torch.save` file held in memory (typically an mmap of it).
///
/// The keys come in file order. Contiguous tensors are spans of `bytes`;
/// strided views are gathered. Nested dicts (`{"state_dict": {...}}`) are
/// flattened with a dotted prefix; values that are not tensors or dicts
/// (ints, strings, lists) and non-string keys are skipped.
pub fn read_torch(bytes: &[u8]) -> Result<Vec<TorchEntry>, TorchError> {
    if bytes.starts_with(b"PK\x03\x04") {
        zip::read(bytes)
    } else if bytes.first() == Some(&0x80) {
        legacy::read(bytes)
    } else if bytes.starts_with(b"version https://git-lfs") {
        Err(TorchError::new(
            "this is a Git LFS pointer, not the weights: fetch the real file (git lfs pull, or download it from the Hub)",
        ))
    } else {
        let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Err(TorchError::new(format!(
            "not a torch.save file: it starts with [{}], expected a zip archive (50 4b 03 04) or a pickle (80)",
            head.join(" ")
        )))
    }
}
