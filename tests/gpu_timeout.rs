//! A GPU wait that exceeds its timeout is an `Error::Timeout`, not a hang or
//! a panic. Own test binary: it sets BERT_WGPU_TIMEOUT_SECS for its process.

mod common;

use bert_wgpu::{Encoding, Error};
use common::*;

#[test]
fn a_forward_longer_than_the_timeout_is_an_error() {
    // 1 µs: far shorter than any forward of 512 tokens.
    std::env::set_var("BERT_WGPU_TIMEOUT_SECS", "0.000001");
    let Some(model) = gpu_model(&tiny_dir("base-gelu")) else {
        return;
    };
    let ids: Vec<u32> = (0..512u32).map(|i| 1 + (i * 37) % 98).collect();
    let enc = Encoding::from_ids(&[ids.clone(), ids.clone(), ids.clone(), ids]).unwrap();
    match model.forward(&enc) {
        Err(Error::Timeout { context, seconds }) => {
            println!("timed out as expected: {context} after {seconds} s")
        }
        other => panic!(
            "expected Error::Timeout, got {:?}",
            other.map(|_| "outputs")
        ),
    }
}
