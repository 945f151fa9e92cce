//! The embedding sum and its LayerNorm (`embeddings.wgsl`,
//! `src/kernels/embeddings.rs`): the twin against f64, the WGSL kernel
//! against the twin in f32 and f16 storage.

use std::time::Instant;

use bert_wgpu::kernels::embeddings::{embeddings, EmbeddingTables};
use bert_wgpu::DType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::gpu;
use crate::common::{f16s, layer_norm_f64};
use crate::support::{compare, compare_f16, uniform};

// ---- CPU twin against f64 ----

#[test]
fn embeddings_match_f64() {
    let mut rng = StdRng::seed_from_u64(0xeb);
    let (vocab, max_pos, type_vocab, hidden) = (50usize, 64usize, 2usize, 33usize);
    let word = uniform(&mut rng, vocab * hidden, -1.0, 1.0);
    let position = uniform(&mut rng, max_pos * hidden, -0.5, 0.5);
    let token_type = uniform(&mut rng, type_vocab * hidden, -0.5, 0.5);
    let gamma = uniform(&mut rng, hidden, 0.8, 1.2);
    let beta = uniform(&mut rng, hidden, -0.2, 0.2);
    let tables = EmbeddingTables {
        word: &word,
        position: &position,
        token_type: &token_type,
        gamma: &gamma,
        beta: &beta,
        eps: 1e-12,
    };
    let (batch, seq) = (3, 17);
    let ids = below(&mut rng, batch * seq, vocab);
    let types = below(&mut rng, batch * seq, type_vocab);
    // Any row of the table, in any order (RoBERTa's come from the ids).
    let positions = below(&mut rng, batch * seq, max_pos);
    let mut got = vec![0.0; batch * seq * hidden];
    embeddings(&tables, &ids, &types, &positions, &mut got);
    let mut sums = Vec::with_capacity(got.len());
    for (t, (&id, &ty)) in ids.iter().zip(&types).enumerate() {
        let (id, ty, pos) = (id as usize, ty as usize, positions[t] as usize);
        for c in 0..hidden {
            sums.push(
                word[id * hidden + c] + token_type[ty * hidden + c] + position[pos * hidden + c],
            );
        }
    }
    let (want, _) = layer_norm_f64(&sums, None, &gamma, &beta, 1e-12);
    compare("embeddings batch=3 seq=17 hidden=33", &got, &want, hidden);
}

// ---- WGSL kernel against the twin, f32 ----

#[test]
fn embeddings_match_twin() {
    let Some(h) = gpu::harness("embeddings_match_twin", DType::F32) else {
        return;
    };
    let t = Instant::now();
    let mut rng = StdRng::seed_from_u64(0xe5b);
    let (vocab, max_pos, type_vocab) = (50usize, 512usize, 2usize);
    let mut worst = 0.0f32;
    let mut shapes = 0;
    for hidden in [7, 32, 384] {
        let word = uniform(&mut rng, vocab * hidden, -1.0, 1.0);
        let position = uniform(&mut rng, max_pos * hidden, -0.5, 0.5);
        let token_type = uniform(&mut rng, type_vocab * hidden, -0.5, 0.5);
        let gamma = uniform(&mut rng, hidden, 0.8, 1.2);
        let beta = uniform(&mut rng, hidden, -0.2, 0.2);
        let tables = EmbeddingTables {
            word: &word,
            position: &position,
            token_type: &token_type,
            gamma: &gamma,
            beta: &beta,
            eps: 1e-12,
        };
        for (batch, seq) in [(1, 1), (3, 7), (2, 33), (1, 512)] {
            let tokens = batch * seq;
            let ids = below(&mut rng, tokens, vocab);
            let types = below(&mut rng, tokens, type_vocab);
            let positions = below(&mut rng, tokens, max_pos);
            let mut want = vec![0.0; tokens * hidden];
            embeddings(&tables, &ids, &types, &positions, &mut want);
            let got = h
                .embeddings(&tables, &ids, &types, &positions, seq)
                .unwrap_or_else(|e| panic!("embeddings {batch}x{seq} hidden {hidden}: {e}"));
            let what = format!("embeddings hidden={hidden} batch={batch} seq={seq}");
            worst = worst.max(compare(&what, &got, &want, hidden));
            shapes += 1;
        }
    }
    println!(
        "embeddings: {shapes} shapes, max |err| {worst:.3e}, {:.2} s",
        t.elapsed().as_secs_f64()
    );
}

// ---- WGSL kernel against the twin, f16 storage ----

#[test]
fn f16_embeddings_match_twin() {
    let Some(h) = gpu::harness("f16_embeddings_match_twin", DType::F16) else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(0xe16);
    let (vocab, max_pos, type_vocab) = (50usize, 512usize, 2usize);
    for hidden in [7, 384] {
        let word = f16s(&mut rng, vocab * hidden, -1.0, 1.0);
        let position = f16s(&mut rng, max_pos * hidden, -0.5, 0.5);
        let token_type = f16s(&mut rng, type_vocab * hidden, -0.5, 0.5);
        let gamma = uniform(&mut rng, hidden, 0.8, 1.2);
        let beta = uniform(&mut rng, hidden, -0.2, 0.2);
        let tables = EmbeddingTables {
            word: &word,
            position: &position,
            token_type: &token_type,
            gamma: &gamma,
            beta: &beta,
            eps: 1e-12,
        };
        for (batch, seq) in [(1, 1), (2, 33), (1, 512)] {
            let tokens = batch * seq;
            let ids = below(&mut rng, tokens, vocab);
            let types = below(&mut rng, tokens, type_vocab);
            let positions = below(&mut rng, tokens, max_pos);
            let mut want = vec![0.0; tokens * hidden];
            embeddings(&tables, &ids, &types, &positions, &mut want);
            let got = h
                .embeddings(&tables, &ids, &types, &positions, seq)
                .unwrap_or_else(|e| panic!("f16 embeddings: {e}"));
            compare_f16(
                &format!("f16 embeddings hidden={hidden} batch={batch} seq={seq}"),
                &got,
                &want,
                hidden,
            );
        }
    }
}

/// `n` ids drawn uniformly from `0..bound`.
fn below(rng: &mut StdRng, n: usize, bound: usize) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(0..bound as u32)).collect()
}
