//! `gpu::KernelHarness` itself: shape mismatches are input errors.

use bert_wgpu::graph::Act;
use bert_wgpu::kernels::embeddings::EmbeddingTables;
use bert_wgpu::kernels::linear::LinearShape;
use bert_wgpu::{DType, Error};

use crate::common::gpu;

/// Shape mismatches are input errors, not panics or GPU errors.
#[test]
fn harness_rejects_bad_arguments() {
    let Some(h) = gpu::harness("harness_rejects_bad_arguments", DType::F32) else {
        return;
    };
    let is_input = |r: bert_wgpu::Result<Vec<f32>>, what: &str| match r {
        Err(Error::Input(msg)) => println!("{what}: {msg}"),
        other => panic!("{what}: expected an input error, got {other:?}"),
    };
    let s = LinearShape {
        m: 2,
        n: 3,
        k: 4,
        x_row_stride: 4,
        act: Act::Identity,
    };
    let (x, w, b) = (vec![0.5; 8], vec![0.25; 12], vec![0.1; 3]);
    is_input(h.linear(s, &x[..7], &w, &b, None), "linear short x");
    is_input(h.linear(s, &x, &w[..11], &b, None), "linear short w");
    is_input(h.linear(s, &x, &w, &b[..2], None), "linear short b");
    is_input(
        h.linear(s, &x, &w, &b, Some(&[1.0; 5])),
        "linear short residual",
    );
    is_input(
        h.linear(
            LinearShape {
                x_row_stride: 3,
                ..s
            },
            &x,
            &w,
            &b,
            None,
        ),
        "linear stride < k",
    );
    let qkv = vec![0.5; 2 * 3 * 8];
    is_input(
        h.attention(&qkv, &[0.0; 2], 1, 2, 3, 8),
        "attention hidden % heads",
    );
    is_input(
        h.attention(&qkv[1..], &[0.0; 2], 1, 2, 2, 8),
        "attention short qkv",
    );
    is_input(
        h.attention(&qkv, &[0.0; 3], 1, 2, 2, 8),
        "attention long mask",
    );
    is_input(
        h.layer_norm(&[1.0; 7], None, &[1.0; 2], &[0.0; 2], 1e-5),
        "layer_norm ragged",
    );
    is_input(
        h.layer_norm(&[1.0; 4], None, &[1.0; 2], &[0.0; 3], 1e-5),
        "layer_norm beta",
    );
    is_input(
        h.layer_norm(&[1.0; 4], Some(&[1.0; 3]), &[1.0; 2], &[0.0; 2], 1e-5),
        "layer_norm residual",
    );
    let (word, pos, ty, g, bt) = (
        vec![0.5; 10],
        vec![0.25; 8],
        vec![0.1; 4],
        [1.0; 2],
        [0.0; 2],
    );
    let tables = EmbeddingTables {
        word: &word,
        position: &pos,
        token_type: &ty,
        gamma: &g,
        beta: &bt,
        eps: 1e-12,
    };
    let at = [0, 1];
    is_input(
        h.embeddings(&tables, &[5, 0], &[0, 0], &at, 2),
        "embeddings id",
    );
    is_input(
        h.embeddings(&tables, &[4, 0], &[0, 2], &at, 2),
        "embeddings type",
    );
    is_input(
        h.embeddings(&tables, &[0; 5], &[0; 5], &[0, 1, 2, 3, 4], 5),
        "embeddings position >= max_pos",
    );
    is_input(
        h.embeddings(&tables, &[0; 3], &[0; 3], &[0; 3], 2),
        "embeddings ragged",
    );
    is_input(
        h.embeddings(&tables, &[0; 2], &[0; 1], &at, 2),
        "embeddings types",
    );
    is_input(
        h.embeddings(&tables, &[0; 2], &[0; 2], &[0], 2),
        "embeddings positions",
    );
    // And a valid call still works afterwards.
    let y = h.linear(s, &x, &w, &b, None).expect("valid linear");
    assert_eq!(y.len(), 6);
}
