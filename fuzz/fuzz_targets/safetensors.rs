//! Arbitrary bytes → the checkpoint loader (`Checkpoint::from_bytes`, the
//! same validation path as `Checkpoint::open`), then every float tensor
//! decoded to f32 and read through `f32_data` (in place where aligned f32,
//! with the same values as the decode). Must never panic and never allocate from a size the
//! header declares before checking it against the buffer.
#![no_main]

use bert_wgpu::checkpoint::Checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let len = data.len();
    let Ok(ckpt) = Checkpoint::from_bytes(data.to_vec()) else {
        return;
    };
    let names: Vec<String> = ckpt.names().map(str::to_string).collect();
    for name in &names {
        assert!(ckpt.contains(name));
        let shape = ckpt.shape(name).expect("listed name has a shape").to_vec();
        let t = ckpt
            .tensor(name, &shape)
            .expect("a validated tensor decodes with its own shape");
        assert_eq!(t.shape, shape);
        assert_eq!(t.data.len(), shape.iter().product::<usize>());
        // Decoding widens at most 2× (f16/bf16 → f32): bounded by the input.
        assert!(t.data.len() * 4 <= 2 * len);
        // In place or decoded, the same bits.
        let d = ckpt
            .f32_data(name, &shape)
            .expect("a validated tensor reads with its own shape");
        assert_eq!(d.len(), t.data.len());
        assert!(d.iter().zip(&t.data).all(|(a, b)| a.to_bits() == b.to_bits()));
        // A wrong expected shape is an error, not a panic.
        let mut other = shape.clone();
        other.push(1);
        assert!(ckpt.tensor(name, &other).is_err());
        assert!(ckpt.f32_data(name, &other).is_err());
    }
    assert!(ckpt.tensor("\u{0}no such tensor", &[1]).is_err());
});
