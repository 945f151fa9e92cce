//! [`SentenceEmbedder`]: a model folder (or Hub id) run as
//! sentence-transformers' `SentenceTransformer.encode` runs it.

use std::collections::BTreeMap;

use super::modules::{self, SentenceConfig, Stage};
use super::pooling::{normalize, Pooling, PoolingConfig};
use crate::batch::{self, BatchOptions, Job, Shape};
use crate::error::{Error, Result};
use crate::graph::Head;
use crate::model::{LoadOptions, Model};
use crate::source::Repo;
use crate::tokenize::{BertTokenizer, TokenizerOptions};

/// What the caller overrides of the model's own files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbedderOptions {
    /// Pool with this mode instead of the Pooling module's modes.
    pub pooling: Option<Pooling>,
    /// `Some(false)`: skip the model's Normalize modules; `Some(true)`:
    /// normalise at the end even without one.
    pub normalize: Option<bool>,
    /// Truncate at this many tokens instead of the model's `max_seq_length`.
    pub max_seq_length: Option<usize>,
}

/// Per-call options of [`SentenceEmbedder::encode`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncodeOptions {
    /// A prompt of `config_sentence_transformers.json` by name.
    pub prompt_name: Option<String>,
    /// A prompt text (not with `prompt_name`).
    pub prompt: Option<String>,
    /// Matryoshka: keep the first N dimensions, then normalise again when
    /// the model normalises.
    pub dimensions: Option<usize>,
    /// Batching.
    pub batch: BatchOptions,
}

/// A resolved prompt: its text and the tokens it takes at the start of a
/// sequence (`[CLS]` included, the closing `[SEP]` not).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prompt {
    /// Prepended to every text.
    pub text: String,
    /// Leading tokens that `include_prompt = false` leaves out of pooling.
    pub tokens: usize,
}

/// A sentence embedder: an encoder and the [`Chain`] around it.
pub struct SentenceEmbedder {
    model: Model,
    chain: Chain,
    from_modules: bool,
}

/// Everything around the encoder: the tokenizer with the model's
/// truncation, pooling, the modules after it, and the prompts.
pub struct Chain {
    tokenizer: BertTokenizer,
    hidden: usize,
    pooling: PoolingConfig,
    /// Dense and Normalize stages after pooling, in order.
    post: Vec<Stage>,
    prompts: BTreeMap<String, String>,
    default_prompt_name: Option<String>,
}

impl SentenceEmbedder {
    /// Loads `source` (a folder or Hub id). With `modules.json` the module
    /// chain is followed; without, the encoder is mean-pooled and
    /// L2-normalised with truncation at `max_position_embeddings`.
    pub fn load(source: &str, load: &LoadOptions, opts: &EmbedderOptions) -> Result<Self> {
        let repo = Repo::open(source, load.revision.as_deref(), load.progress)?;
        let st = modules::read(&repo)?;
        let files = repo.model_files(st.as_ref().map_or("", |s| s.transformer_path.as_str()))?;
        let mut load = load.clone();
        load.head = Some(Head::Base);
        let model = Model::load_files(&files, &load)?;
        Self::from_model(model, st, opts)
    }

    /// Wraps a loaded base model with the module chain `st` (`None`: the
    /// defaults without `modules.json`).
    pub fn from_model(
        model: Model,
        st: Option<SentenceConfig>,
        opts: &EmbedderOptions,
    ) -> Result<Self> {
        let from_modules = st.is_some();
        let chain = Chain::new(&model, st, opts)?;
        Ok(SentenceEmbedder {
            model,
            chain,
            from_modules,
        })
    }

    /// The encoder.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The chain around the encoder.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// Whether the model came with `modules.json`.
    pub fn from_modules(&self) -> bool {
        self.from_modules
    }

    /// The batcher job embedding texts with `prompt`, cut to `dimensions`.
    pub fn job(&self, prompt: Prompt, dimensions: Option<usize>) -> Result<EmbedJob<'_>> {
        self.chain.job(&self.model, prompt, dimensions)
    }

    /// Embeds `texts` (one vector each, in order).
    pub fn encode(&self, texts: &[&str], opts: &EncodeOptions) -> Result<Vec<Vec<f32>>> {
        self.chain.encode(&self.model, texts, opts)
    }
}

impl Chain {
    /// The chain `st` describes (`None`: mean pooling + Normalize) for
    /// `model`, with the caller's overrides.
    pub fn new(model: &Model, st: Option<SentenceConfig>, opts: &EmbedderOptions) -> Result<Self> {
        if model.head() == Head::MultipleChoice {
            return Err(Error::input(
                "embeddings need a model that takes (batch, seq) input; load the multiple-choice checkpoint with the base head",
            ));
        }
        let cfg = model.config().clone();
        let base_tok = model.tokenizer().ok_or_else(|| {
            Error::Tokenizer(
                "this checkpoint has no tokenizer.json, so it cannot embed text: add the model's tokenizer.json to its folder".into(),
            )
        })?;
        let st = st.unwrap_or_else(|| SentenceConfig {
            stages: vec![Stage::Pooling(PoolingConfig::default()), Stage::Normalize],
            ..SentenceConfig::default()
        });
        if let Some(d) = st.pooling_dim {
            if d != cfg.hidden_size {
                return Err(Error::Unsupported(format!(
                    "the Pooling module expects {d}-dimensional token embeddings but the encoder's hidden_size is {}",
                    cfg.hidden_size
                )));
            }
        }
        let max_length = opts
            .max_seq_length
            .unwrap_or_else(|| st.transformer.max_length(cfg.max_tokens()));
        let tokenizer = base_tok.reconfigured(
            &cfg,
            &TokenizerOptions {
                max_length: Some(max_length),
                lowercase: st.transformer.do_lower_case,
            },
        )?;
        let mut pooling = st.pooling().cloned().unwrap_or_default();
        if let Some(p) = opts.pooling {
            pooling.modes = vec![p];
        }
        let mut post: Vec<Stage> = st
            .stages
            .into_iter()
            .filter(|s| !matches!(s, Stage::Pooling(_)))
            .filter(|s| !(opts.normalize == Some(false) && *s == Stage::Normalize))
            .collect();
        if opts.normalize == Some(true) && !post.contains(&Stage::Normalize) {
            post.push(Stage::Normalize);
        }
        let mut width = pooling.output_dim(cfg.hidden_size);
        for s in &post {
            if let Stage::Dense(d) = s {
                if d.in_features != width {
                    return Err(Error::Unsupported(format!(
                        "a Dense module takes {} features but pooling gives {width} ({} mode(s) × hidden {})",
                        d.in_features,
                        pooling.modes.len(),
                        cfg.hidden_size
                    )));
                }
                width = d.out_features;
            }
        }
        Ok(Chain {
            tokenizer,
            hidden: cfg.hidden_size,
            pooling,
            post,
            prompts: st.prompts,
            default_prompt_name: st.default_prompt_name,
        })
    }

    /// The tokenizer, truncating at [`max_length`](Self::max_length).
    pub fn tokenizer(&self) -> &BertTokenizer {
        &self.tokenizer
    }

    /// Tokens per text at most (special tokens included).
    pub fn max_length(&self) -> usize {
        self.tokenizer.max_length()
    }

    /// The pooling modes and whether prompts are pooled.
    pub fn pooling(&self) -> &PoolingConfig {
        &self.pooling
    }

    /// Whether the chain ends in L2 normalisation.
    pub fn normalizes(&self) -> bool {
        self.post.last() == Some(&Stage::Normalize)
    }

    /// The named prompts.
    pub fn prompts(&self) -> &BTreeMap<String, String> {
        &self.prompts
    }

    /// The width of an embedding (before `dimensions`).
    pub fn dim(&self) -> usize {
        let mut w = self.pooling.output_dim(self.hidden);
        for s in &self.post {
            if let Stage::Dense(d) = s {
                w = d.out_features;
            }
        }
        w
    }

    /// The prompt `encode` uses: `prompt`, else the named one, else the
    /// model's default; as sentence-transformers' `_resolve_prompt`.
    pub fn resolve_prompt(&self, name: Option<&str>, prompt: Option<&str>) -> Result<Prompt> {
        let text = match (prompt, name) {
            (Some(_), Some(_)) => {
                return Err(Error::input(
                    "give either a prompt or a prompt name, not both",
                ))
            }
            (Some(p), None) => Some(p.to_string()),
            (None, Some(n)) => Some(self.prompts.get(n).cloned().ok_or_else(|| {
                Error::input(format!(
                    "prompt name `{n}` is not among the model's prompts ({})",
                    if self.prompts.is_empty() {
                        "it has none".to_string()
                    } else {
                        self.prompts.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                ))
            })?),
            (None, None) => self
                .default_prompt_name
                .as_ref()
                .and_then(|d| self.prompts.get(d).cloned()),
        };
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            return Ok(Prompt::default());
        };
        // The prompt alone, truncated like any text, without its closing
        // special token.
        let e = self.tokenizer.encode_one(&text, None)?;
        let tokens = e.len() - usize::from(e.special_tokens_mask.last() == Some(&1));
        Ok(Prompt { text, tokens })
    }

    /// Checks `dimensions` against the embedding width.
    pub fn check_dimensions(&self, dims: Option<usize>) -> Result<()> {
        match dims {
            Some(0) => Err(Error::input("dimensions must be at least 1")),
            Some(d) if d > self.dim() => Err(Error::input(format!(
                "dimensions {d} exceeds the model's embedding width {}",
                self.dim()
            ))),
            _ => Ok(()),
        }
    }

    /// The batcher job embedding texts with `prompt` on `model` (the
    /// encoder this chain was made for), cut to `dimensions`.
    pub fn job<'a>(
        &'a self,
        model: &'a Model,
        prompt: Prompt,
        dimensions: Option<usize>,
    ) -> Result<EmbedJob<'a>> {
        self.check_dimensions(dimensions)?;
        Ok(EmbedJob {
            model,
            chain: self,
            prompt,
            dimensions,
        })
    }

    /// Embeds `texts` with `model` (one vector each, in order).
    pub fn encode(
        &self,
        model: &Model,
        texts: &[&str],
        opts: &EncodeOptions,
    ) -> Result<Vec<Vec<f32>>> {
        let prompt = self.resolve_prompt(opts.prompt_name.as_deref(), opts.prompt.as_deref())?;
        let job = self.job(model, prompt, opts.dimensions)?;
        let inputs = texts.iter().map(|t| t.to_string()).collect();
        batch::collect(&job, inputs, model, &opts.batch)
    }

    /// The module chain after pooling, then `dimensions`.
    fn finish(&self, v: Vec<f32>, dimensions: Option<usize>) -> Result<Vec<f32>> {
        self.finish_with(v, None, dimensions)
    }

    /// The modules after pooling on one pooled vector `v`, then
    /// `dimensions`. `normalize`: `None` follows the modules, `Some(false)`
    /// skips their Normalize, `Some(true)` normalises at the end even
    /// without one (TEI's `normalize` request field).
    pub fn finish_with(
        &self,
        mut v: Vec<f32>,
        normalize_to: Option<bool>,
        dimensions: Option<usize>,
    ) -> Result<Vec<f32>> {
        self.check_dimensions(dimensions)?;
        for s in &self.post {
            match s {
                Stage::Dense(d) => v = d.apply(&v)?,
                Stage::Normalize if normalize_to != Some(false) => normalize(&mut v),
                Stage::Normalize | Stage::Pooling(_) => {}
            }
        }
        let normalizes = match normalize_to {
            Some(n) => n,
            None => self.normalizes(),
        };
        if normalize_to == Some(true) && !self.normalizes() {
            normalize(&mut v);
        }
        if let Some(d) = dimensions {
            v.truncate(d);
            if normalizes {
                normalize(&mut v);
            }
        }
        Ok(v)
    }

    /// Runs `model` on unpadded token rows (one text each, special tokens
    /// included) and pools each, leaving its first `prompt_tokens[i]`
    /// tokens out when the pooling excludes prompts. Returns the pooled
    /// vectors, before the modules after pooling ([`Chain::finish_with`]).
    pub fn pool_rows(
        &self,
        model: &Model,
        rows: &[&[u32]],
        prompt_tokens: &[usize],
    ) -> Result<Vec<Vec<f32>>> {
        if rows.len() != prompt_tokens.len() {
            return Err(Error::input(format!(
                "{} rows but {} prompt lengths",
                rows.len(),
                prompt_tokens.len()
            )));
        }
        let enc = batch::pad_rows(rows, None, self.tokenizer.pad_id())?;
        let hidden = model.hidden_states(&enc)?; // (batch, seq, hidden)
        let (seq, h) = (enc.seq, hidden.shape[2]);
        let mut out = Vec::with_capacity(rows.len());
        for (b, &skip) in prompt_tokens.iter().enumerate() {
            let mut v = Vec::with_capacity(self.pooling.output_dim(h));
            self.pooling.pool(
                &hidden.data[b * seq * h..(b + 1) * seq * h],
                &enc.attention_mask[b * seq..(b + 1) * seq],
                h,
                skip,
                &mut v,
            );
            out.push(v);
        }
        Ok(out)
    }
}

/// One text tokenized for [`EmbedJob`].
#[derive(Debug, Clone)]
pub struct EmbedItem {
    ids: Vec<u32>,
}

/// A [`Chain`] and its encoder on the batcher: text in, embedding out.
pub struct EmbedJob<'a> {
    model: &'a Model,
    chain: &'a Chain,
    prompt: Prompt,
    dimensions: Option<usize>,
}

impl Job for EmbedJob<'_> {
    type Input = String;
    type Item = EmbedItem;
    type Output = Vec<f32>;

    fn prepare(&self, text: String) -> Result<EmbedItem> {
        let ids = if self.prompt.text.is_empty() {
            self.chain.tokenizer.encode_ids(&text)?
        } else {
            self.chain
                .tokenizer
                .encode_ids(&format!("{}{text}", self.prompt.text))?
        };
        Ok(EmbedItem { ids })
    }

    fn shape(&self, item: &EmbedItem) -> Shape {
        Shape {
            sequences: 1,
            len: item.ids.len(),
            group: 0,
        }
    }

    fn run(&self, items: &[&EmbedItem]) -> Result<Vec<Vec<f32>>> {
        let rows: Vec<&[u32]> = items.iter().map(|i| i.ids.as_slice()).collect();
        let skip = vec![self.prompt.tokens; rows.len()];
        self.chain
            .pool_rows(self.model, &rows, &skip)?
            .into_iter()
            .map(|v| self.chain.finish(v, self.dimensions))
            .collect()
    }
}
