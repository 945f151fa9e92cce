//! Arbitrary bytes → texts, pairs, words, a model length and a QA window
//! (max_length, stride) → every entry point of `tokenize::BertTokenizer`:
//! `new` (max_position_embeddings from the input), `encode`,
//! `encode_detailed`, `encode_one`, `encode_words`, `encode_windows`.
//! The `tokenizers` crate panics in some corners (a window not longer than
//! the stride, …): the wrapper must turn those into errors first.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use bert_wgpu::tokenize::{BertTokenizer, Encoded};
use bert_wgpu::BertConfig;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    /// max_position_embeddings of the config the tokenizer is built for.
    max_positions: u16,
    texts: Vec<String>,
    pairs: Option<Vec<String>>,
    words: Vec<String>,
    first: String,
    second: String,
    /// encode_windows(max_length, stride).
    window: u16,
    stride: u16,
}

fn base() -> &'static (BertConfig, BertTokenizer) {
    static BASE: OnceLock<(BertConfig, BertTokenizer)> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/pipelines/qa");
        let cfg = BertConfig::from_file(&dir.join("config.json")).expect("qa fixture config");
        let tok = BertTokenizer::from_file(&dir.join("tokenizer.json"), &cfg)
            .expect("qa fixture tokenizer");
        (cfg, tok)
    })
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Invariants of an unpadded encoding with character offsets into `seqs`.
fn check_encoded(e: &Encoded, seqs: &[&str], max_len: Option<usize>) {
    let n = e.len();
    assert_eq!(e.type_ids.len(), n);
    assert_eq!(e.tokens.len(), n);
    assert_eq!(e.offsets.len(), n);
    assert_eq!(e.special_tokens_mask.len(), n);
    assert_eq!(e.sequence_ids.len(), n);
    assert_eq!(e.word_ids.len(), n);
    if let Some(m) = max_len {
        assert!(n <= m, "{n} tokens > max_length {m}");
    }
    for i in 0..n {
        let (s, t) = e.offsets[i];
        assert!(s <= t, "offsets {s}..{t}");
        if let Some(seq) = e.sequence_ids[i] {
            if let Some(text) = seqs.get(seq) {
                assert!(t <= char_len(text), "char offset {t} past {:?}", text);
            }
        }
    }
    if !seqs.is_empty() {
        let _ = e.word_to_chars(0, 0);
        let _ = e.token_to_word(n);
    }
}

fuzz_target!(
    init: {
        std::env::set_var("RAYON_NUM_THREADS", "1");
        std::env::set_var("TOKENIZERS_PARALLELISM", "false");
        let _ = base();
    },
    |input: Input| {
        let (cfg, base_tok) = base();
        let mut texts = input.texts;
        texts.truncate(4);
        let mut pairs = input.pairs;
        if let Some(p) = pairs.as_mut() {
            p.truncate(5); // sometimes one more than texts: a mismatch error
        }
        let mut words = input.words;
        words.truncate(32);

        // A tokenizer for a model with an arbitrary position table (≤ 1023).
        let mut cfg = cfg.clone();
        cfg.max_position_embeddings = usize::from(input.max_positions % 1024);
        let tok = match BertTokenizer::new(base_tok.inner().clone(), &cfg) {
            Ok(t) => t,
            Err(_) => {
                assert!(cfg.max_position_embeddings <= 3);
                return;
            }
        };
        let max = tok.max_length();

        if let Ok((enc, details)) = tok.encode_detailed(&texts, pairs.as_deref()) {
            assert_eq!(enc.batch, texts.len());
            assert!(enc.seq <= max, "seq {} > max_length {max}", enc.seq);
            assert_eq!(enc.input_ids.len(), enc.batch * enc.seq);
            assert_eq!(enc.attention_mask.len(), enc.batch * enc.seq);
            assert_eq!(enc.token_type_ids.len(), enc.batch * enc.seq);
            assert_eq!(details.len(), texts.len());
            for (i, d) in details.iter().enumerate() {
                for (k, &(s, t)) in d.offsets.iter().enumerate() {
                    assert!(s <= t);
                    let text = match d.sequence_ids[k] {
                        Some(0) => &texts[i],
                        Some(_) => match pairs.as_ref() {
                            Some(p) => &p[i],
                            None => panic!("pair token without a pair"),
                        },
                        None => continue,
                    };
                    // Byte offsets: inside the text, on char boundaries.
                    assert!(t <= text.len(), "byte offset {t} past {text:?}");
                    assert!(text.is_char_boundary(s) && text.is_char_boundary(t), "{s}..{t} in {text:?}");
                }
            }
            // `encode` is `encode_detailed` without the details.
            assert_eq!(tok.encode(&texts, pairs.as_deref()).ok(), Some(enc));
        }

        if let Ok(e) = tok.encode_one(&input.first, None) {
            check_encoded(&e, &[&input.first], Some(max));
        }
        if let Ok(e) = tok.encode_one(&input.first, Some(&input.second)) {
            check_encoded(&e, &[&input.first, &input.second], Some(max));
        }
        if let Ok(e) = tok.encode_words(&words) {
            check_encoded(&e, &[], Some(max));
        }

        // QA windows: keep the work bounded (windows × length).
        if input.second.len() <= 1024 {
            let window = usize::from(input.window % 600);
            let stride = usize::from(input.stride % 600);
            if let Ok(ws) = tok.encode_windows(&input.first, &input.second, window, stride) {
                assert!(!ws.is_empty());
                for w in &ws {
                    check_encoded(w, &[&input.first, &input.second], Some(window));
                }
            }
        }
    }
);
