//! Invariances: batch invariance, determinism, thread safety, and the GPU
//! faults a user can hit (device loss, buffers over the adapter's limits).

mod common;

use std::sync::Arc;

use bert_wgpu::{Device, Encoding, Error, Model};
use common::*;

fn tiny_encoding(ids: &[Vec<u32>], lens: &[usize]) -> Encoding {
    let mut enc = Encoding::from_ids(ids).unwrap();
    for (r, &len) in lens.iter().enumerate() {
        for s in len..enc.seq {
            enc.attention_mask[r * enc.seq + s] = 0;
            enc.input_ids[r * enc.seq + s] = 0;
        }
    }
    enc
}

fn pseudo_ids(n: usize, seed: u32) -> Vec<u32> {
    (0..n)
        .map(|i| 1 + ((i as u32).wrapping_mul(2654435761) ^ seed) % 98)
        .collect()
}

/// A sequence alone and the same sequence padded inside a batch agree on its
/// real tokens within 1e-5.
fn check_batch_invariance(model: &Model, tag: &str) {
    let alone_ids = pseudo_ids(6, 7);
    let alone = model
        .forward(&Encoding::from_ids(std::slice::from_ref(&alone_ids)).unwrap())
        .unwrap();
    let mut padded = alone_ids.clone();
    padded.extend([0, 0, 0, 0, 0]);
    let other = pseudo_ids(11, 99);
    let batch = tiny_encoding(&[other, padded], &[11, 6]);
    let out = model.forward(&batch).unwrap();
    let (a, b) = (
        alone.last_hidden_state.unwrap(),
        out.last_hidden_state.unwrap(),
    );
    let h = a.shape[2];
    let mut max = 0.0f32;
    for s in 0..6 {
        for j in 0..h {
            let x = a.data[s * h + j];
            let y = b.data[(11 + s) * h + j];
            max = max.max((x - y).abs());
        }
    }
    println!("{tag}: batch invariance max abs diff {max:.2e}");
    assert!(
        max <= 1e-5,
        "{tag}: padded-in-batch differs from alone by {max}"
    );
    let (pa, pb) = (alone.pooler_output.unwrap(), out.pooler_output.unwrap());
    for j in 0..h {
        assert!(
            (pa.data[j] - pb.data[h + j]).abs() <= 1e-5,
            "{tag}: pooler differs at {j}"
        );
    }
}

fn check_determinism(model: &Model, tag: &str) {
    let enc = tiny_encoding(&[pseudo_ids(9, 1), pseudo_ids(9, 2)], &[9, 4]);
    let a = model.forward(&enc).unwrap();
    let b = model.forward(&enc).unwrap();
    let bits = |o: &bert_wgpu::Outputs| -> Vec<u32> {
        o.last_hidden_state
            .as_ref()
            .unwrap()
            .data
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    assert_eq!(
        bits(&a),
        bits(&b),
        "{tag}: same input twice is not bitwise identical"
    );
}

/// 4 threads running forwards concurrently on one model give exactly the
/// serial results.
fn check_threads(model: Model, tag: &str) {
    let model = Arc::new(model);
    let encs: Vec<Encoding> = (0..4u32)
        .map(|t| {
            tiny_encoding(
                &[
                    pseudo_ids(5 + t as usize, t),
                    pseudo_ids(5 + t as usize, t + 10),
                ],
                &[5 + t as usize, 3],
            )
        })
        .collect();
    let serial: Vec<Vec<f32>> = encs
        .iter()
        .map(|e| model.forward(e).unwrap().last_hidden_state.unwrap().data)
        .collect();
    let handles: Vec<_> = encs
        .into_iter()
        .map(|e| {
            let m = model.clone();
            std::thread::spawn(move || {
                (0..3)
                    .map(|_| m.forward(&e).map(|o| o.last_hidden_state.unwrap().data))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for (t, h) in handles.into_iter().enumerate() {
        for r in h.join().expect("thread panicked") {
            let r = r.unwrap_or_else(|e| panic!("{tag}: thread {t}: {e}"));
            assert_eq!(
                r.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                serial[t].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{tag}: thread {t} differs from the serial result"
            );
        }
    }
}

#[test]
fn model_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model>();
}

#[test]
fn cpu_invariances() {
    let dir = tiny_dir("base-gelu");
    check_batch_invariance(&cpu_model(&dir), "cpu");
    check_determinism(&cpu_model(&dir), "cpu");
    check_threads(cpu_model(&dir), "cpu");
}

#[test]
fn gpu_invariances() {
    let dir = tiny_dir("base-gelu");
    let Some(m) = gpu_model(&dir) else { return };
    check_batch_invariance(&m, "gpu");
    check_determinism(&m, "gpu");
    check_threads(m, "gpu");
}

#[test]
fn gpu_device_loss_is_an_error_not_a_panic() {
    let Some(m) = gpu_model(&tiny_dir("base-gelu")) else {
        return;
    };
    let enc = Encoding::from_ids(&[pseudo_ids(4, 3)]).unwrap();
    m.forward(&enc).unwrap();
    m.gpu().unwrap().context().destroy();
    for _ in 0..2 {
        match m.forward(&enc) {
            Err(Error::DeviceLost(msg)) => println!("device lost reported: {msg}"),
            other => panic!("expected DeviceLost after Device::destroy, got {other:?}"),
        }
    }
}

#[test]
fn gpu_tensor_over_the_binding_limit_is_an_error_naming_it() {
    let Some(probe) = gpu_model(&tiny_dir("base-gelu")) else {
        return;
    };
    let limit = probe
        .gpu()
        .unwrap()
        .context()
        .limits
        .max_storage_buffer_binding_size;
    drop(probe);
    // A word-embedding table one row past the limit (hidden 32 → 128 bytes a row).
    let vocab = (limit / 128 + 1) as usize;
    let cfg = bert_wgpu::BertConfig::from_json_str(&format!(
        r#"{{"vocab_size": {vocab}, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
            "intermediate_size": 37, "max_position_embeddings": 16}}"#
    ))
    .unwrap();
    match bert_wgpu::bench::random_model(&cfg, Device::Gpu, bert_wgpu::DType::F32) {
        Err(Error::DeviceLimit {
            name, limit_name, ..
        }) => {
            assert_eq!(name, "embeddings.word_embeddings.weight");
            assert_eq!(limit_name, "max_storage_buffer_binding_size");
        }
        Err(e) => panic!("expected DeviceLimit, got {e}"),
        Ok(_) => panic!("expected DeviceLimit, the model loaded"),
    }
}
