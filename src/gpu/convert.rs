//! Host ↔ GPU element conversion: f32 host data to the bytes of a storage
//! type ([`DType`]), and read-back bytes to f32.

use std::borrow::Cow;

use crate::device::DType;
use crate::error::{Error, Result};

/// Bytes `count` elements of `dtype` occupy in a buffer, rounded up to 4
/// (wgpu copies move multiples of 4 bytes).
pub fn stored_bytes(dtype: DType, count: usize) -> u64 {
    ((count * dtype.size()) as u64).next_multiple_of(4)
}

/// `data` as little-endian `dtype` bytes, zero-padded to a multiple of 4.
/// f32 on a little-endian host is already that layout and is borrowed, not
/// copied. A finite value that f16 cannot hold (|x| > 65504) is an error
/// naming `name`: it would turn into ±inf and NaNs downstream.
pub fn encode<'a>(dtype: DType, name: &str, data: &'a [f32]) -> Result<Cow<'a, [u8]>> {
    if dtype == DType::F32 && cfg!(target_endian = "little") {
        // f32 slices are 4-byte multiples: no padding needed.
        return Ok(Cow::Borrowed(bytemuck::cast_slice(data)));
    }
    let mut out = Vec::with_capacity(stored_bytes(dtype, data.len()) as usize);
    match dtype {
        DType::F32 => {
            for v in data {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        DType::F16 => {
            for (i, &v) in data.iter().enumerate() {
                let h = half::f16::from_f32(v);
                if h.is_infinite() && v.is_finite() {
                    return Err(Error::Unsupported(format!(
                        "f16 for `{name}`: element {i} is {v}, outside f16's range (±65504); use f32"
                    )));
                }
                out.extend_from_slice(&h.to_le_bytes());
            }
        }
    }
    out.resize(out.len().next_multiple_of(4), 0);
    Ok(Cow::Owned(out))
}

/// The first `count` `dtype` elements of `bytes` as f32 (no alignment
/// assumed; missing trailing bytes end the output early).
pub fn decode(dtype: DType, bytes: &[u8], count: usize) -> Vec<f32> {
    match dtype {
        DType::F32 => bytes
            .chunks_exact(4)
            .take(count)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        DType::F16 => bytes
            .chunks_exact(2)
            .take(count)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trip_and_padding() {
        let data = [1.5f32, -0.333_333, 65504.0];
        let bytes = encode(DType::F16, "t", &data).unwrap();
        assert_eq!(bytes.len(), 8); // 6 bytes padded to 8
        let back = decode(DType::F16, &bytes, 3);
        assert_eq!(back[0], 1.5);
        assert!((back[1] + 0.333_333).abs() < 2e-4);
        assert_eq!(back[2], 65504.0);
        let f32s = encode(DType::F32, "t", &data).unwrap();
        assert_eq!(decode(DType::F32, &f32s, 3), data.to_vec());
    }

    #[test]
    fn f16_overflow_names_the_tensor() {
        let e = encode(
            DType::F16,
            "encoder.layer.0.output.dense.weight",
            &[0.5, 1e6],
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("encoder.layer.0.output.dense.weight") && msg.contains("65504"),
            "{msg}"
        );
    }
}
