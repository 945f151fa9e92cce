//! Arbitrary bytes → the PyTorch checkpoint reader
//! (`Checkpoint::from_bytes_as(.., Format::Torch)`: the zip and legacy
//! formats, the restricted unpickler), then every float tensor decoded and
//! read in place. Must never panic, never run anything, and never allocate
//! more than the input can justify.
#![no_main]

use bert_wgpu::checkpoint::{Checkpoint, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let len = data.len();
    let Ok(ckpt) = Checkpoint::from_bytes_as(data.to_vec(), Format::Torch) else {
        return;
    };
    let names: Vec<String> = ckpt.names().map(str::to_string).collect();
    for name in &names {
        let shape = ckpt.shape(name).expect("listed name has a shape").to_vec();
        let t = ckpt
            .tensor(name, &shape)
            .expect("a validated tensor decodes with its own shape");
        assert_eq!(t.data.len(), shape.iter().product::<usize>());
        // One tensor's data lies in the input (tied tensors may share it),
        // widened at most 2× (f16/bf16 → f32).
        assert!(t.data.len() * 4 <= 2 * len.max(1));
        let d = ckpt
            .f32_data(name, &shape)
            .expect("a validated tensor reads with its own shape");
        assert!(d.iter().zip(&t.data).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
});
