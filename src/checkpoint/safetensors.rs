//! The safetensors side of [`super::Checkpoint`]: the header is validated
//! by the reference parser (`safetensors` crate: header length checked
//! against the file size before allocation, contiguous in-bounds offsets,
//! shape × dtype = byte span), with messages that say what it leaves out.

use std::path::Path;

use ::safetensors::{Dtype, SafeTensors};

use super::{RawData, RawEntry};
use crate::error::{Error, Result};

/// Validates `buf` as a safetensors file and lists its tensors. Nothing is allocated from a size the header declares:
/// the reference parser checks the header length against `buf` first, and
/// the spans it accepts lie inside `buf`.
pub(super) fn index(buf: &[u8], path: &Path) -> Result<Vec<RawEntry>> {
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
        let e = ::safetensors::SafeTensorError::MetadataIncompleteBuffer;
        return Err(bad(parse_error(buf, &e)));
    }
    let st = SafeTensors::deserialize(buf).map_err(|e| bad(parse_error(buf, &e)))?;
    let mut entries = Vec::new();
    for (key, view) in st.iter() {
        let data = view.data();
        let start = data.as_ptr() as usize - buf.as_ptr() as usize;
        entries.push(RawEntry {
            stored: key.to_string(),
            dtype: view.dtype(),
            shape: view.shape().to_vec(),
            data: RawData::Span(start..start + data.len()),
        });
    }
    Ok(entries)
}

/// The reference parser's message plus what it leaves out: the sizes behind
/// a bad header length or an uncovered data section, and which tensor's
/// shape × dtype disagrees with its byte span. `buf` has at least 8 bytes.
fn parse_error(buf: &[u8], e: &::safetensors::SafeTensorError) -> String {
    use ::safetensors::SafeTensorError as E;
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

#[cfg(test)]
mod tests {
    use super::super::Checkpoint;
    use super::*;

    fn file(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
        let h = header.to_string().into_bytes();
        let mut buf = (h.len() as u64).to_le_bytes().to_vec();
        buf.extend_from_slice(&h);
        buf.extend_from_slice(data);
        buf
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
