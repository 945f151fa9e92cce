//! From (storage bytes, offset, shape, strides) to a tensor's bytes.
//!
//! A contiguous view is a sub-range of the storage and stays in place; a
//! strided one is gathered. Every index is checked against the storage, and
//! gathers draw on a byte budget the caller sizes from the input, so strides
//! of 0 (an `expand`ed tensor) cannot make a small file allocate a lot.

use std::ops::Range;

use super::globals::byte_size;
use super::pickle::Tensor;
use super::TorchData;

/// The bytes of `t`, whose storage occupies `storage` in `input`.
pub(super) fn data(
    input: &[u8],
    storage: Range<usize>,
    t: &Tensor,
    gather_budget: &mut usize,
) -> Result<TorchData, String> {
    let elem = byte_size(t.dtype);
    if elem == 0 {
        return Err(format!("dtype {:?} is not byte-sized", t.dtype));
    }
    let held = storage.len() / elem;
    let numel = t
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("size {:?} overflows", t.shape))?;
    if numel == 0 {
        return Ok(TorchData::Span(storage.start..storage.start));
    }
    let out_of_bounds = |last: String| {
        format!(
            "size {:?}, stride {:?} at offset {} reaches element {last} of a storage holding {held} {:?} elements",
            t.shape, t.stride, t.offset, t.dtype
        )
    };
    if is_contiguous(&t.shape, &t.stride) {
        let end = t
            .offset
            .checked_add(numel)
            .filter(|&e| e <= held)
            .ok_or_else(|| out_of_bounds(format!("{} + {numel}", t.offset)))?;
        // Both ends are at most `held * elem <= storage.len()`: no overflow.
        return Ok(TorchData::Span(
            storage.start + t.offset * elem..storage.start + end * elem,
        ));
    }
    // Highest element reached; every partial index sum below is at most this.
    let last = t
        .shape
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |acc, (&d, &s)| {
            (d - 1).checked_mul(s).and_then(|x| acc.checked_add(x))
        })
        .filter(|&l| l < held)
        .ok_or_else(|| out_of_bounds("past the end".into()))?;
    let bytes = numel
        .checked_mul(elem)
        .filter(|&b| b <= *gather_budget)
        .ok_or_else(|| {
            format!(
                "gathering this strided view ({numel} elements) needs more memory than the file's size justifies ({} bytes left)",
                *gather_budget
            )
        })?;
    *gather_budget -= bytes;
    let src = input
        .get(storage)
        .ok_or_else(|| "storage outside the input".to_string())?;
    gather(src, elem, t, last, bytes).ok_or_else(|| out_of_bounds(format!("{last}")))
}

/// Row-major contiguity; strides of size-1 dimensions do not matter.
fn is_contiguous(shape: &[usize], stride: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

/// Copies the elements of a strided view, in row-major order. `last` bounds
/// every index reached (checked by the caller), so the sums cannot overflow.
fn gather(src: &[u8], elem: usize, t: &Tensor, last: usize, bytes: usize) -> Option<TorchData> {
    let (&inner_n, outer) = t.shape.split_last()?;
    let (&inner_s, outer_s) = t.stride.split_last()?;
    let mut out = Vec::with_capacity(bytes);
    let mut idx = vec![0usize; outer.len()];
    let mut base = t.offset;
    loop {
        for i in 0..inner_n {
            let e = base + i * inner_s;
            debug_assert!(e <= last);
            out.extend_from_slice(src.get(e * elem..(e + 1) * elem)?);
        }
        // Odometer over the outer dimensions.
        let mut d = outer.len();
        loop {
            if d == 0 {
                return Some(TorchData::Owned(out));
            }
            d -= 1;
            idx[d] += 1;
            base += outer_s[d];
            if idx[d] < outer[d] {
                break;
            }
            base -= outer[d] * outer_s[d];
            idx[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::Dtype;

    fn tensor(offset: usize, shape: &[usize], stride: &[usize]) -> Tensor {
        Tensor {
            storage: 0,
            dtype: Dtype::U8,
            offset,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
        }
    }

    fn run(input: &[u8], t: &Tensor) -> Result<TorchData, String> {
        data(input, 0..input.len(), t, &mut input.len())
    }

    #[test]
    fn contiguous_is_a_span() {
        let input: Vec<u8> = (0..12).collect();
        assert_eq!(
            run(&input, &tensor(2, &[2, 3], &[3, 1])),
            Ok(TorchData::Span(2..8))
        );
        // Size-1 dimensions may carry any stride.
        assert_eq!(
            run(&input, &tensor(0, &[1, 4], &[99, 1])),
            Ok(TorchData::Span(0..4))
        );
        assert_eq!(run(&input, &tensor(5, &[], &[])), Ok(TorchData::Span(5..6)));
        assert_eq!(
            run(&input, &tensor(99, &[0, 3], &[3, 1])),
            Ok(TorchData::Span(0..0))
        );
    }

    #[test]
    fn transposed_is_gathered() {
        let input: Vec<u8> = (0..6).collect();
        let got = run(&input, &tensor(0, &[3, 2], &[1, 3]));
        assert_eq!(got, Ok(TorchData::Owned(vec![0, 3, 1, 4, 2, 5])));
        let got = run(&input, &tensor(1, &[2, 2], &[3, 1]));
        assert_eq!(got, Ok(TorchData::Owned(vec![1, 2, 4, 5])));
    }

    #[test]
    fn bounds_and_budget() {
        let input = [0u8; 6];
        assert!(run(&input, &tensor(1, &[6], &[1]))
            .unwrap_err()
            .contains("storage holding 6"));
        assert!(run(&input, &tensor(0, &[3, 2], &[1, 4])).is_err());
        assert!(run(&input, &tensor(0, &[2, usize::MAX], &[1, 1])).is_err());
        assert!(run(&input, &tensor(0, &[usize::MAX, 2], &[0, 1]))
            .unwrap_err()
            .contains("overflows"));
        // expand: stride 0 reads in bounds but gathers more than the budget.
        let err = run(&input, &tensor(0, &[100, 2], &[0, 1])).unwrap_err();
        assert!(
            err.contains("more memory than the file's size justifies"),
            "{err}"
        );
    }
}
