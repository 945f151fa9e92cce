//! The model a server holds, and what it does to one input: tokenize it
//! (with the length check the server promises) and, for a batch of
//! tokenized rows, the raw forward output (a pooled embedding, or a row of
//! logits). Turning those into answers (normalising, labels, scores) is
//! per request and happens in the route ([`Engine::finish_embedding`],
//! [`Engine::scores`]).

use serde_json::{json, Value};

use crate::batch::{pad_rows, Shape};
use crate::embed::{EmbedderOptions, Prompt, SentenceEmbedder};
use crate::error::{Error, Result};
use crate::graph::Head;
use crate::model::{LoadOptions, Model};
use crate::pipelines::LabelScore;
use crate::pipelines::{scores_from_logits, ClassifyFunction, ClassifyOptions, CrossEncoder};
use crate::source::Repo;
use crate::tokenize::{BertTokenizer, TokenizerOptions};

/// What a served model answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A sentence embedder: `/embed`, `/v1/embeddings`.
    Embedding,
    /// Sequence classification with several labels: `/predict`.
    Classifier,
    /// Sequence classification with one label (a cross-encoder):
    /// `/rerank`, and `/predict`.
    Reranker,
}

impl Kind {
    /// The name `/info` and errors use.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Embedding => "embedding",
            Kind::Classifier => "classifier",
            Kind::Reranker => "reranker",
        }
    }
}

enum Backend {
    Embed(SentenceEmbedder),
    Classify(CrossEncoder),
}

/// One input tokenized: unpadded ids (special tokens included), their
/// token types, and how many leading tokens are a prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Token type ids (same length).
    pub types: Vec<u32>,
    /// Leading prompt tokens, left out of pooling when the model says so.
    pub prompt_tokens: usize,
}

impl Row {
    /// How the row batches.
    pub fn shape(&self) -> Shape {
        Shape {
            sequences: 1,
            len: self.ids.len(),
            group: 0,
        }
    }
}

/// Why an input was refused before reaching the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// Longer than the server accepts and truncation was not asked for.
    TooLong {
        /// Tokens allowed.
        max: usize,
    },
    /// Anything else (the message says what).
    Invalid(String),
}

/// The served model with its tokenizer.
pub struct Engine {
    backend: Backend,
    kind: Kind,
    /// Truncates at the server's `max_input_length`.
    tokenizer: BertTokenizer,
    /// The same without truncation, for `/tokenize`.
    untruncated: tokenizers::Tokenizer,
    max_input_length: usize,
    model_id: String,
}

/// Reads `config.json`'s `architectures` (at the folder's top; a legacy
/// sentence-transformers folder keeps it under `0_Transformer/` and is an
/// embedder).
fn kind_of(repo: &Repo) -> Result<Kind> {
    let Some(path) = repo.file("config.json") else {
        return Ok(Kind::Embedding);
    };
    let cfg = crate::config::BertConfig::from_file(&path)?;
    Ok(match Head::from_architectures(&cfg.architectures) {
        Head::SequenceClassification if cfg.num_labels == 1 => Kind::Reranker,
        Head::SequenceClassification => Kind::Classifier,
        Head::Base => Kind::Embedding,
        other => {
            return Err(Error::Unsupported(format!(
                "the server answers embedding, classification and reranking models; this one is {} ({})",
                other.cli_name(),
                cfg.architectures.join(", ")
            )))
        }
    })
}

impl Engine {
    /// Loads `source` (folder or Hub id): a `*ForSequenceClassification`
    /// checkpoint as a classifier (one label: a reranker), anything else as
    /// a sentence embedder. `max_input_length` caps the tokens per input
    /// (default and ceiling: the model's own maximum).
    pub fn load(
        source: &str,
        load: &LoadOptions,
        embed: &EmbedderOptions,
        max_input_length: Option<usize>,
    ) -> Result<Self> {
        let repo = Repo::open(source, load.revision.as_deref(), load.progress)?;
        let kind = kind_of(&repo)?;
        let backend = match kind {
            Kind::Embedding => Backend::Embed(SentenceEmbedder::load(source, load, embed)?),
            Kind::Classifier | Kind::Reranker => {
                Backend::Classify(CrossEncoder::load(source, load, None)?)
            }
        };
        Self::new(backend, kind, max_input_length, source)
    }

    fn new(
        backend: Backend,
        kind: Kind,
        max_input_length: Option<usize>,
        model_id: &str,
    ) -> Result<Self> {
        let (base, model) = match &backend {
            Backend::Embed(st) => (st.chain().tokenizer(), st.model()),
            Backend::Classify(ce) => (ce.tokenizer(), ce.model()),
        };
        let own = base.max_length();
        let max = match max_input_length {
            Some(0) => return Err(Error::input("max_input_length must be at least 1")),
            Some(n) if n > own => {
                return Err(Error::input(format!(
                    "max_input_length {n} exceeds the model's maximum of {own} tokens"
                )))
            }
            Some(n) => n,
            None => own,
        };
        // Lowercasing is already in `base`'s normalizer.
        let tokenizer = base.reconfigured(
            model.config(),
            &TokenizerOptions {
                max_length: Some(max),
                lowercase: false,
            },
        )?;
        let mut untruncated = tokenizer.inner().clone();
        untruncated
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(Engine {
            backend,
            kind,
            untruncated,
            tokenizer,
            max_input_length: max,
            model_id: model_id.to_string(),
        })
    }

    /// What the model answers.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The encoder.
    pub fn model(&self) -> &Model {
        match &self.backend {
            Backend::Embed(st) => st.model(),
            Backend::Classify(ce) => ce.model(),
        }
    }

    /// The embedder, when the model is one.
    pub fn embedder(&self) -> Option<&SentenceEmbedder> {
        match &self.backend {
            Backend::Embed(st) => Some(st),
            Backend::Classify(_) => None,
        }
    }

    /// The name the server reports.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Tokens per input at most.
    pub fn max_input_length(&self) -> usize {
        self.max_input_length
    }

    /// The tokenizer (truncating at [`max_input_length`](Self::max_input_length)).
    pub fn tokenizer(&self) -> &BertTokenizer {
        &self.tokenizer
    }

    /// The tokenizer without truncation.
    pub fn untruncated(&self) -> &tokenizers::Tokenizer {
        &self.untruncated
    }

    /// The named or given prompt of an embedding request.
    pub fn prompt(&self, name: Option<&str>) -> std::result::Result<Prompt, InputError> {
        let Some(st) = self.embedder() else {
            return Ok(Prompt::default());
        };
        st.chain()
            .resolve_prompt(name, None)
            .map_err(|e| InputError::Invalid(short(&e)))
    }

    /// Tokenizes one input (a text with its prompt, or a pair). Without
    /// `truncate`, an input longer than the server accepts is refused.
    pub fn tokenize(
        &self,
        text: &str,
        pair: Option<&str>,
        prompt: &Prompt,
        truncate: bool,
    ) -> std::result::Result<Row, InputError> {
        let tok = self.tokenizer.inner();
        let e = match pair {
            Some(p) => tok.encode((text, p), true),
            None if prompt.text.is_empty() => tok.encode(text, true),
            None => tok.encode(format!("{}{text}", prompt.text), true),
        }
        .map_err(|e| InputError::Invalid(format!("the tokenizer refused it: {e}")))?;
        if !truncate && !e.get_overflowing().is_empty() {
            return Err(InputError::TooLong {
                max: self.max_input_length,
            });
        }
        Ok(Row {
            ids: e.get_ids().to_vec(),
            types: e.get_type_ids().to_vec(),
            prompt_tokens: prompt.tokens,
        })
    }

    /// A row from token ids given by the client, used as they are (special
    /// tokens included, as `/tokenize` returns them).
    pub fn ids_row(&self, ids: &[u32], truncate: bool) -> std::result::Result<Row, InputError> {
        if ids.is_empty() {
            return Err(InputError::Invalid("is an empty list of token ids".into()));
        }
        let vocab = self.model().config().vocab_size;
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
            return Err(InputError::Invalid(format!(
                "token id {bad} is outside the vocabulary (0..{vocab})"
            )));
        }
        let max = self.max_input_length;
        if ids.len() > max && !truncate {
            return Err(InputError::TooLong { max });
        }
        let ids = ids[..ids.len().min(max)].to_vec();
        Ok(Row {
            types: vec![0; ids.len()],
            ids,
            prompt_tokens: 0,
        })
    }

    /// The model on a batch of rows: per row, the pooled embedding (before
    /// the modules after pooling) or the raw logits.
    pub fn run(&self, rows: &[&Row]) -> Result<Vec<Vec<f32>>> {
        let ids: Vec<&[u32]> = rows.iter().map(|r| r.ids.as_slice()).collect();
        match &self.backend {
            Backend::Embed(st) => {
                let skip: Vec<usize> = rows.iter().map(|r| r.prompt_tokens).collect();
                st.chain().pool_rows(st.model(), &ids, &skip)
            }
            Backend::Classify(ce) => {
                let types: Vec<&[u32]> = rows.iter().map(|r| r.types.as_slice()).collect();
                let enc = pad_rows(&ids, Some(&types), self.tokenizer.pad_id())?;
                let logits = ce.model().logits(&enc)?;
                let n = ce.model().config().num_labels.max(1);
                Ok(logits.data.chunks_exact(n).map(<[f32]>::to_vec).collect())
            }
        }
    }

    /// A pooled vector through the modules after pooling; `normalize`
    /// overrides the model's Normalize (`None`: as its modules say).
    pub fn finish_embedding(
        &self,
        v: Vec<f32>,
        normalize: Option<bool>,
        dimensions: Option<usize>,
    ) -> std::result::Result<Vec<f32>, InputError> {
        let st = self
            .embedder()
            .ok_or_else(|| InputError::Invalid("the model is not an embedder".into()))?;
        st.chain()
            .finish_with(v, normalize, dimensions)
            .map_err(|e| InputError::Invalid(short(&e)))
    }

    /// Checks a request's `dimensions` against the embedding width.
    pub fn check_dimensions(&self, dims: Option<usize>) -> std::result::Result<(), InputError> {
        match self.embedder() {
            Some(st) => st
                .chain()
                .check_dimensions(dims)
                .map_err(|e| InputError::Invalid(short(&e))),
            None => Ok(()),
        }
    }

    /// The width of an embedding.
    pub fn embedding_dim(&self) -> Option<usize> {
        self.embedder().map(|st| st.chain().dim())
    }

    /// Every label of one row of logits with its score, best first, as
    /// `classify --top-k all` (`raw`: the logits themselves).
    pub fn scores(&self, logits: &[f32], raw: bool) -> Vec<LabelScore> {
        let opts = ClassifyOptions {
            top_k: None,
            function_to_apply: raw.then_some(ClassifyFunction::None),
            ..ClassifyOptions::default()
        };
        scores_from_logits(self.model().config(), logits, &opts)
    }

    /// The reranking score of one row of logits: its first logit through
    /// the cross-encoder's activation, as `rerank` (`raw`: the logit).
    pub fn rerank_score(&self, logits: &[f32], raw: bool) -> f32 {
        let x = logits.first().copied().unwrap_or(f32::NAN);
        match &self.backend {
            Backend::Classify(ce) if !raw => ce.activation().apply_f32(x),
            _ => x,
        }
    }

    /// `/info`'s `model_type`.
    pub fn model_type(&self) -> Value {
        match &self.backend {
            Backend::Embed(st) => json!({"embedding": {
                "pooling": st.chain().pooling().modes.iter().map(|m| m.name()).collect::<Vec<_>>().join("+"),
                "normalize": st.chain().normalizes(),
                "dim": st.chain().dim(),
                "prompts": st.chain().prompts(),
            }}),
            Backend::Classify(ce) => {
                let cfg = ce.model().config();
                let id2label: serde_json::Map<String, Value> = (0..cfg.num_labels)
                    .map(|i| (i.to_string(), Value::from(cfg.label_name(i))))
                    .collect();
                json!({ self.kind.name(): {"id2label": id2label} })
            }
        }
    }
}

/// An error's message without the library's category prefix.
fn short(e: &Error) -> String {
    match e {
        Error::Input(m) => m.clone(),
        other => other.to_string(),
    }
}
