//! Arbitrary question, context and logits (NaN and ±inf included) →
//! `pipelines::qa_postprocess`. Windows come from the real tokenizer
//! (`encode_windows`), so answers must be well formed: start ≤ end ≤ the
//! context's length in characters, and `answer` is exactly that span.
//! A second pass scrambles the windows' offsets, word and sequence ids
//! (a caller handing in garbage): that may give odd spans but must not
//! panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use bert_wgpu::pipelines::{qa_postprocess, QaOptions};
use bert_wgpu::tokenize::{BertTokenizer, Encoded};
use bert_wgpu::BertConfig;
use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    question: String,
    context: String,
    max_seq_len: u8,
    doc_stride: u8,
    top_k: u8,
    max_answer_len: u8,
    handle_impossible_answer: bool,
    align_to_words: bool,
    /// Logits and scrambles, consumed as needed.
    rest: Vec<u8>,
}

fn tok() -> &'static BertTokenizer {
    static TOK: OnceLock<BertTokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/pipelines/qa");
        let cfg = BertConfig::from_file(&dir.join("config.json")).expect("qa fixture config");
        BertTokenizer::from_file(&dir.join("tokenizer.json"), &cfg).expect("qa fixture tokenizer")
    })
}

fn logit(u: &mut Unstructured) -> f32 {
    match u.int_in_range(0u8..=15).unwrap_or(0) {
        0 => f32::NAN,
        1 => f32::INFINITY,
        2 => f32::NEG_INFINITY,
        3 => f32::from_bits(u.arbitrary().unwrap_or(0)),
        4 => f32::MAX,
        5 => -10000.0,
        _ => f32::from(u.arbitrary::<i8>().unwrap_or(0)) / 8.0,
    }
}

fn run(context: &str, windows: &[Encoded], u: &mut Unstructured, opts: &QaOptions, strict: bool) {
    let logits: Vec<(Vec<f32>, Vec<f32>)> = windows
        .iter()
        .map(|w| {
            let s = (0..w.len()).map(|_| logit(u)).collect();
            let e = (0..w.len()).map(|_| logit(u)).collect();
            (s, e)
        })
        .collect();
    let ws: Vec<&Encoded> = windows.iter().collect();
    let ls: Vec<(&[f32], &[f32])> = logits
        .iter()
        .map(|(s, e)| (s.as_slice(), e.as_slice()))
        .collect();
    let answers = qa_postprocess(tok(), context, &ws, &ls, opts);
    assert!(answers.len() <= opts.top_k.max(1));
    if strict {
        let chars: Vec<char> = context.chars().collect();
        for a in &answers {
            assert!(a.start <= a.end, "{a:?}");
            assert!(a.end <= chars.len(), "{a:?} past {} chars", chars.len());
            let span: String = chars[a.start..a.end].iter().collect();
            assert_eq!(a.answer, span);
        }
    }
}

fuzz_target!(
    init: {
        std::env::set_var("RAYON_NUM_THREADS", "1");
        std::env::set_var("TOKENIZERS_PARALLELISM", "false");
        let _ = tok();
    },
    |input: Input| {
        if input.question.is_empty() || input.context.is_empty() || input.context.len() > 2048 {
            return;
        }
        let opts = QaOptions {
            top_k: usize::from(input.top_k % 8),
            max_answer_len: usize::from(input.max_answer_len % 40),
            handle_impossible_answer: input.handle_impossible_answer,
            align_to_words: input.align_to_words,
            ..QaOptions::default()
        };
        let max_seq_len = usize::from(input.max_seq_len).max(4);
        let stride = usize::from(input.doc_stride) % max_seq_len;
        let Ok(mut windows) = tok().encode_windows(&input.question, &input.context, max_seq_len, stride) else {
            return;
        };
        if windows.len() > 64 {
            windows.truncate(64);
        }
        let mut u = Unstructured::new(&input.rest);
        run(&input.context, &windows, &mut u, &opts, true);

        // Garbage windows (consistent lengths, arbitrary contents).
        for w in &mut windows {
            for i in 0..w.len() {
                if u.is_empty() {
                    break;
                }
                let (a, b): (u8, u8) = (u.arbitrary().unwrap_or(0), u.arbitrary().unwrap_or(0));
                w.offsets[i] = (usize::from(a), usize::from(b));
                w.word_ids[i] = u.arbitrary::<Option<u8>>().unwrap_or(None).map(u32::from);
                w.sequence_ids[i] = u.arbitrary::<Option<bool>>().unwrap_or(None).map(usize::from);
            }
        }
        run(&input.context, &windows, &mut u, &opts, false);
    }
);
