//! `tokenizer.json` with HF Python's semantics, whatever padding/truncation
//! the file carries: `[CLS] a [SEP]` / `[CLS] a [SEP] b [SEP]`, token types
//! 0/1 (or the file's own template: RoBERTa's `<s> a </s></s> b </s>`),
//! pad to the longest in the batch, truncate longest-first to the
//! positions the model has (`BertConfig::max_tokens`).

use std::path::Path;

use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, TruncationDirection, TruncationParams,
    TruncationStrategy,
};

use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::inputs::Encoding;

/// A tokenizer configured for one model.
pub struct BertTokenizer {
    inner: tokenizers::Tokenizer,
    max_length: usize,
    /// [`BertTokenizer::encode_windows`]'s tokenizers: unpadded and
    /// untruncated, and windowed for the last (max_length, stride) asked.
    windows: WindowTokenizers,
}

type WindowTokenizers = std::sync::Mutex<(
    Option<std::sync::Arc<tokenizers::Tokenizer>>,
    Option<((usize, usize), std::sync::Arc<tokenizers::Tokenizer>)>,
)>;

/// What a model's own configuration adds to `tokenizer.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenizerOptions {
    /// Truncate to this many tokens (special tokens included) instead of
    /// the model's positions (capped there, with a warning).
    pub max_length: Option<usize>,
    /// Lowercase the text first, as sentence-transformers' `do_lower_case`
    /// does: a `Lowercase` normalizer is put in front unless the
    /// normalizer already has one.
    pub lowercase: bool,
}

/// sentence-transformers' `do_lower_case`: prepend `Lowercase` to the
/// normalizer unless it already holds one (a `BertNormalizer`'s own
/// `lowercase` flag does not count, as there).
fn lowercase_first(tok: &mut tokenizers::Tokenizer) {
    use tokenizers::normalizers::{Lowercase, NormalizerWrapper, Sequence};
    let mut chain: Vec<NormalizerWrapper> = vec![Lowercase.into()];
    match tok.get_normalizer().cloned() {
        Some(NormalizerWrapper::Lowercase(_)) => return,
        Some(NormalizerWrapper::Sequence(seq)) => {
            if seq
                .as_ref()
                .iter()
                .any(|n| matches!(n, NormalizerWrapper::Lowercase(_)))
            {
                return;
            }
            chain.extend(seq);
        }
        Some(other) => chain.push(other),
        None => {}
    }
    tok.with_normalizer(Some(Sequence::new(chain)));
}

/// Tokens of one text as the tokenizer produced them, with byte offsets.
#[derive(Debug, Clone)]
pub struct TokenDetail {
    /// Token strings, special tokens included, padding excluded.
    pub tokens: Vec<String>,
    /// Byte spans into the original text (0, 0 for special tokens).
    pub offsets: Vec<(usize, usize)>,
    /// Which input each token came from (0 text, 1 pair), None for specials.
    pub sequence_ids: Vec<Option<usize>>,
    /// Word index within its sequence, None for specials.
    pub word_ids: Vec<Option<u32>>,
}

impl BertTokenizer {
    /// Loads `tokenizer.json` and configures it for `cfg`.
    pub fn from_file(path: &Path, cfg: &BertConfig) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        Self::new(inner, cfg)
    }

    /// Configures a loaded tokenizer for `cfg`.
    pub fn new(inner: tokenizers::Tokenizer, cfg: &BertConfig) -> Result<Self> {
        Self::with_options(inner, cfg, &TokenizerOptions::default())
    }

    /// This tokenizer with other options (a sentence-transformers model's
    /// `max_seq_length` and `do_lower_case`).
    pub fn reconfigured(&self, cfg: &BertConfig, opts: &TokenizerOptions) -> Result<Self> {
        Self::with_options(self.inner.clone(), cfg, opts)
    }

    /// Configures a loaded tokenizer for `cfg` with `opts`.
    pub fn with_options(
        mut inner: tokenizers::Tokenizer,
        cfg: &BertConfig,
        opts: &TokenizerOptions,
    ) -> Result<Self> {
        let vocab = inner.get_vocab_size(true);
        if vocab > cfg.vocab_size {
            return Err(Error::Tokenizer(format!(
                "the tokenizer's vocabulary has {vocab} tokens but the model's embedding table has only {} rows (vocab_size)",
                cfg.vocab_size
            )));
        }
        let limit = cfg.max_tokens();
        let max_length = match opts.max_length {
            Some(n) if n > limit => {
                log::warn!(
                    "max_seq_length {n} exceeds the {limit} positions the model has; truncating at {limit}"
                );
                limit
            }
            Some(n) => n,
            None => limit,
        };
        // `[CLS] a [SEP] b [SEP]` adds 3, RoBERTa's `<s> a </s></s> b </s>` 4.
        let pair_specials = {
            use tokenizers::PostProcessor;
            inner
                .get_post_processor()
                .map_or(0, |p| p.added_tokens(true))
        };
        if max_length <= pair_specials {
            return Err(Error::Tokenizer(format!(
                "a maximum length of {max_length} tokens leaves no room for text after the special tokens"
            )));
        }
        if opts.lowercase {
            lowercase_first(&mut inner);
        }
        let pad_token = inner
            .id_to_token(cfg.pad_token_id)
            .unwrap_or_else(|| "[PAD]".to_string());
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id: cfg.pad_token_id,
            pad_type_id: 0,
            pad_token,
        }));
        inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(BertTokenizer {
            inner,
            max_length,
            windows: std::sync::Mutex::new((None, None)),
        })
    }

    /// The longest sequence produced (special tokens included).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The underlying `tokenizers` object.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Tokenizes a batch of texts, or of (text, pair) when `pairs` is given.
    pub fn encode(&self, texts: &[String], pairs: Option<&[String]>) -> Result<Encoding> {
        Ok(self.encode_detailed(texts, pairs)?.0)
    }

    /// Like [`encode`](Self::encode), also returning per-text token details.
    pub fn encode_detailed(
        &self,
        texts: &[String],
        pairs: Option<&[String]>,
    ) -> Result<(Encoding, Vec<TokenDetail>)> {
        if texts.is_empty() {
            return Err(Error::input("empty batch: no text"));
        }
        let encs = match pairs {
            Some(p) => {
                if p.len() != texts.len() {
                    return Err(Error::input(format!(
                        "{} texts but {} text_pair entries",
                        texts.len(),
                        p.len()
                    )));
                }
                let inputs: Vec<tokenizers::EncodeInput> = texts
                    .iter()
                    .zip(p)
                    .map(|(a, b)| (a.as_str(), b.as_str()).into())
                    .collect();
                self.inner.encode_batch(inputs, true)
            }
            None => {
                let inputs: Vec<tokenizers::EncodeInput> =
                    texts.iter().map(|t| t.as_str().into()).collect();
                self.inner.encode_batch(inputs, true)
            }
        }
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
        for (i, e) in encs.iter().enumerate() {
            if !e.get_overflowing().is_empty() {
                log::info!(
                    "text {i} is longer than {} tokens and was truncated (longest-first)",
                    self.max_length
                );
            }
        }
        let seq = encs.first().map_or(0, |e| e.len());
        let mut out = Encoding {
            input_ids: Vec::with_capacity(seq * encs.len()),
            attention_mask: Vec::with_capacity(seq * encs.len()),
            token_type_ids: Vec::with_capacity(seq * encs.len()),
            batch: encs.len(),
            choices: None,
            seq,
        };
        let mut details = Vec::with_capacity(encs.len());
        for e in &encs {
            if e.len() != seq {
                return Err(Error::Tokenizer(
                    "padding produced rows of different lengths".into(),
                ));
            }
            out.input_ids.extend_from_slice(e.get_ids());
            out.attention_mask.extend_from_slice(e.get_attention_mask());
            out.token_type_ids.extend_from_slice(e.get_type_ids());
            let real = e.get_attention_mask().iter().filter(|&&m| m == 1).count();
            details.push(TokenDetail {
                tokens: e.get_tokens()[..real].to_vec(),
                offsets: e.get_offsets()[..real].to_vec(),
                sequence_ids: e.get_sequence_ids()[..real].to_vec(),
                word_ids: e.get_word_ids()[..real].to_vec(),
            });
        }
        Ok((out, details))
    }
}

/// One encoded sequence — a text, a pair, a list of words, or one window of
/// a long pair — with CHARACTER offsets (as HF Python reports them), and
/// everything the task pipelines need. No padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// Segment ids (0 first sequence, 1 pair).
    pub type_ids: Vec<u32>,
    /// Token strings as in the vocabulary (`##` continuations included).
    pub tokens: Vec<String>,
    /// Character spans (start, end) into the sequence each token came from
    /// ((0, 0) for special tokens). For word-split input, spans are within
    /// the token's word.
    pub offsets: Vec<(usize, usize)>,
    /// 1 for the special tokens the tokenizer added (`[CLS]`, `[SEP]`).
    pub special_tokens_mask: Vec<u32>,
    /// Which input each token came from (0 text, 1 pair), None for specials.
    pub sequence_ids: Vec<Option<usize>>,
    /// Word index within its sequence, None for specials.
    pub word_ids: Vec<Option<u32>>,
}

impl Encoded {
    fn from_tokenizers(e: &tokenizers::Encoding) -> Self {
        let real = e.get_attention_mask().iter().filter(|&&m| m == 1).count();
        let n = real.min(e.len());
        Encoded {
            ids: e.get_ids()[..n].to_vec(),
            type_ids: e.get_type_ids()[..n].to_vec(),
            tokens: e.get_tokens()[..n].to_vec(),
            offsets: e.get_offsets()[..n].to_vec(),
            special_tokens_mask: e.get_special_tokens_mask()[..n].to_vec(),
            sequence_ids: e.get_sequence_ids()[..n].to_vec(),
            word_ids: e.get_word_ids()[..n].to_vec(),
        }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The word containing token `token`, as `tokenizers`' `token_to_word`.
    pub fn token_to_word(&self, token: usize) -> Option<u32> {
        self.word_ids.get(token).copied().flatten()
    }

    /// The character span of word `word` of sequence `sequence` within this
    /// encoding, as `tokenizers`' `word_to_chars` computes it (first to last
    /// token of that word present here).
    pub fn word_to_chars(&self, word: u32, sequence: usize) -> Option<(usize, usize)> {
        let range: Vec<usize> = (0..self.len())
            .filter(|&i| self.sequence_ids[i] == Some(sequence))
            .collect();
        // Same scan as tokenizers: stop at the first word id past `word`.
        let (mut start, mut end) = (None, None);
        for &i in &range {
            let w = self.word_ids[i];
            if w > Some(word) {
                break;
            }
            if w == Some(word) {
                start = start.or(Some(i));
                end = Some(i + 1);
            }
        }
        match (start, end) {
            (Some(s), Some(e)) if e > 0 => Some((self.offsets[s].0, self.offsets[e - 1].1)),
            _ => None,
        }
    }
}

/// Stacks encoded sequences into one padded batch `(len(items), longest)`.
pub fn batch_encoding(items: &[&Encoded], pad_id: u32) -> Result<Encoding> {
    if items.is_empty() {
        return Err(Error::input("empty batch"));
    }
    let seq = items.iter().map(|e| e.len()).max().unwrap_or(0);
    let n = items.len() * seq;
    let mut out = Encoding {
        input_ids: Vec::with_capacity(n),
        attention_mask: Vec::with_capacity(n),
        token_type_ids: Vec::with_capacity(n),
        batch: items.len(),
        choices: None,
        seq,
    };
    for e in items {
        let pad = seq - e.len();
        out.input_ids.extend_from_slice(&e.ids);
        out.input_ids.extend(std::iter::repeat_n(pad_id, pad));
        out.attention_mask.extend(std::iter::repeat_n(1, e.len()));
        out.attention_mask.extend(std::iter::repeat_n(0, pad));
        out.token_type_ids.extend_from_slice(&e.type_ids);
        out.token_type_ids.extend(std::iter::repeat_n(0, pad));
    }
    Ok(out)
}

/// WordPiece decoding as `tokenizers`' `WordPiece` decoder does it (what
/// HF's `convert_tokens_to_string` gives for BERT): tokens joined by spaces,
/// `prefix` continuations glued to the previous token, and with `cleanup`
/// the spaces before `. ? ! ,` and English contractions removed.
pub fn wordpiece_decode(tokens: &[String], prefix: &str, cleanup: bool) -> String {
    let mut out = String::new();
    for (i, t) in tokens.iter().enumerate() {
        let piece = if i == 0 {
            t.clone()
        } else if !prefix.is_empty() && t.starts_with(prefix) {
            t.replacen(prefix, "", 1)
        } else {
            format!(" {t}")
        };
        if cleanup {
            out.push_str(&wordpiece_cleanup(&piece));
        } else {
            out.push_str(&piece);
        }
    }
    out
}

fn wordpiece_cleanup(s: &str) -> String {
    s.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" do not", " don't")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

impl BertTokenizer {
    fn tok_err(e: impl std::fmt::Display) -> Error {
        Error::Tokenizer(e.to_string())
    }

    /// The padding id.
    pub fn pad_id(&self) -> u32 {
        self.inner.get_padding().map_or(0, |p| p.pad_id)
    }

    /// The id of a token string, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The classifier token's id: `[CLS]`, or `<s>` (RoBERTa, XLM-R), if
    /// the vocabulary has one.
    pub fn cls_id(&self) -> Option<u32> {
        self.token_id("[CLS]").or_else(|| self.token_id("<s>"))
    }

    /// The unknown token's id: the WordPiece model's `unk_token`, else `[UNK]`.
    pub fn unk_id(&self) -> Option<u32> {
        match self.inner.get_model() {
            tokenizers::ModelWrapper::WordPiece(wp) => self.token_id(&wp.unk_token),
            _ => self.token_id("[UNK]"),
        }
    }

    /// The model's continuing-subword prefix (`##` for WordPiece), if it has one.
    pub fn continuing_subword_prefix(&self) -> Option<&str> {
        match self.inner.get_model() {
            tokenizers::ModelWrapper::WordPiece(wp) if !wp.continuing_subword_prefix.is_empty() => {
                Some(wp.continuing_subword_prefix.as_str())
            }
            _ => None,
        }
    }

    /// HF's `convert_tokens_to_string`: the tokenizer's decoder over the
    /// token strings, or the tokens joined by spaces when it has none.
    pub fn tokens_to_string(&self, tokens: &[String]) -> Result<String> {
        use tokenizers::Decoder;
        match self.inner.get_decoder() {
            Some(d) => d.decode(tokens.to_vec()).map_err(Self::tok_err),
            None => Ok(tokens.join(" ")),
        }
    }

    /// The token ids of one text, special tokens included, truncated to
    /// [`max_length`](Self::max_length), unpadded: the least work a text
    /// needs when only the model's output is wanted.
    pub fn encode_ids(&self, text: &str) -> Result<Vec<u32>> {
        let e = self.inner.encode(text, true).map_err(Self::tok_err)?;
        Ok(e.get_ids().to_vec())
    }

    /// Encodes one text (and pair) with character offsets, truncated
    /// longest-first to the model's maximum length, unpadded.
    pub fn encode_one(&self, text: &str, pair: Option<&str>) -> Result<Encoded> {
        let e = match pair {
            Some(p) => self.inner.encode_char_offsets((text, p), true),
            None => self.inner.encode_char_offsets(text, true),
        }
        .map_err(Self::tok_err)?;
        Ok(Encoded::from_tokenizers(&e))
    }

    /// Encodes pre-split words (HF's `is_split_into_words=True`): each word
    /// is tokenized on its own and `word_ids` index `words`. Truncated to
    /// the model's maximum length.
    pub fn encode_words(&self, words: &[String]) -> Result<Encoded> {
        if words.is_empty() {
            return Err(Error::input("no words to encode"));
        }
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        let e = self
            .inner
            .encode_char_offsets(refs.as_slice(), true)
            .map_err(Self::tok_err)?;
        Ok(Encoded::from_tokenizers(&e))
    }

    /// The unpadded, untruncated tokenizer and the one that cuts windows of
    /// `max_length` tokens with `stride`, built once and cached.
    #[allow(clippy::type_complexity)]
    fn window_tokenizers(
        &self,
        max_length: usize,
        stride: usize,
    ) -> Result<(
        std::sync::Arc<tokenizers::Tokenizer>,
        std::sync::Arc<tokenizers::Tokenizer>,
    )> {
        let mut cache = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let plain = match &cache.0 {
            Some(p) => p.clone(),
            None => {
                let mut t = self.inner.clone();
                t.with_padding(None);
                t.with_truncation(None).map_err(Self::tok_err)?;
                let t = std::sync::Arc::new(t);
                cache.0 = Some(t.clone());
                t
            }
        };
        if let Some((key, w)) = &cache.1 {
            if *key == (max_length, stride) {
                return Ok((plain, w.clone()));
            }
        }
        let added = plain
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, true));
        if max_length <= added || stride >= max_length {
            return Err(Error::input(format!(
                "max_seq_len {max_length} must exceed the {added} special tokens and doc_stride {stride}"
            )));
        }
        let mut w = (*plain).clone();
        w.with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length,
            strategy: TruncationStrategy::OnlySecond,
            stride,
        }))
        .map_err(Self::tok_err)?;
        let w = std::sync::Arc::new(w);
        cache.1 = Some(((max_length, stride), w.clone()));
        Ok((plain, w))
    }

    /// Encodes `(first, second)` into overlapping windows as HF's
    /// `tokenizer(first, second, truncation="only_second", max_length,
    /// stride, return_overflowing_tokens=True)`: every window holds all of
    /// `first` and a slice of `second`; consecutive slices share `stride`
    /// tokens. Unpadded, in order.
    pub fn encode_windows(
        &self,
        first: &str,
        second: &str,
        max_length: usize,
        stride: usize,
    ) -> Result<Vec<Encoded>> {
        let (plain, windowed) = self.window_tokenizers(max_length, stride)?;
        // `tokenizers` asserts (panics) when a window is not longer than the
        // stride: refuse such input first, as an error.
        let count =
            |t: &str| -> Result<usize> { Ok(plain.encode(t, false).map_err(Self::tok_err)?.len()) };
        let added = plain
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, true));
        let (n1, n2) = (count(first)?, count(second)?);
        if n1 + n2 + added > max_length {
            let window = max_length.saturating_sub(n1 + added);
            if window == 0 || window <= stride {
                return Err(Error::input(format!(
                    "the question is {n1} tokens long: with max_seq_len {max_length} that leaves {window} tokens per context window, which must be more than doc_stride {stride}"
                )));
            }
        }
        let tok = windowed;
        let mut e = tok
            .encode_char_offsets((first, second), true)
            .map_err(|e| {
                Error::Tokenizer(format!(
                    "cannot fit the question into {max_length} tokens with a window of the context (stride {stride}): {e}"
                ))
            })?;
        let over = e.take_overflowing();
        let mut out = vec![Encoded::from_tokenizers(&e)];
        out.extend(over.iter().map(Encoded::from_tokenizers));
        Ok(out)
    }
}
