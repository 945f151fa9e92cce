//! A sentence-transformers model folder read as sentence-transformers reads
//! it: `modules.json` (the module chain), the Transformer's
//! `sentence_bert_config.json` (`max_seq_length`, `do_lower_case`), each
//! module's `config.json`, and `config_sentence_transformers.json`
//! (`prompts`, `default_prompt_name`). Both layouts people meet are read:
//! the one most Hub models have (`sentence_transformers.models.*`, legacy
//! `pooling_mode_*` flags) and the one sentence-transformers 6 writes
//! (`sentence_transformers.base.modules.*`, `pooling_mode` as a string or
//! list, the length in `tokenizer_config.json`'s `model_max_length`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::dense::Dense;
use super::pooling::{Pooling, PoolingConfig};
use crate::error::{Error, Result};
use crate::source::Repo;

/// A module after the Transformer, in `modules.json` order.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// Token vectors → sentence vector (always the first stage).
    Pooling(PoolingConfig),
    /// A linear layer with its activation.
    Dense(Dense),
    /// L2 normalisation.
    Normalize,
}

/// What the Transformer module's files say about tokenization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransformerConfig {
    /// `max_seq_length` of `sentence_bert_config.json` (or its
    /// `processing_kwargs.text.max_length`), when set.
    pub max_seq_length: Option<usize>,
    /// `model_max_length` of the module's `tokenizer_config.json`.
    pub model_max_length: Option<usize>,
    /// `do_lower_case` of `sentence_bert_config.json`.
    pub do_lower_case: bool,
}

impl TransformerConfig {
    /// The truncation length for an encoder with `max_positions` positions:
    /// `max_seq_length` when set (sentence-transformers does not cap it;
    /// the tokenizer caps it at `max_positions` with a warning), else the
    /// tokenizer's `model_max_length` capped at `max_positions`.
    pub fn max_length(&self, max_positions: usize) -> usize {
        match (self.max_seq_length, self.model_max_length) {
            (Some(n), _) => n,
            (None, Some(m)) => m.min(max_positions),
            (None, None) => max_positions,
        }
    }
}

/// Everything the module files say, before the encoder is loaded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SentenceConfig {
    /// The Transformer module's folder inside the repository (`""` for the root).
    pub transformer_path: String,
    /// Its truncation and lowercasing.
    pub transformer: TransformerConfig,
    /// The token width the Pooling config declares (`embedding_dimension`).
    pub pooling_dim: Option<usize>,
    /// The modules after the Transformer.
    pub stages: Vec<Stage>,
    /// Named prompts of `config_sentence_transformers.json`.
    pub prompts: BTreeMap<String, String>,
    /// The prompt used when none is asked for.
    pub default_prompt_name: Option<String>,
}

impl SentenceConfig {
    /// The pooling stage (always present: [`read`] refuses chains without one).
    pub fn pooling(&self) -> Option<&PoolingConfig> {
        self.stages.iter().find_map(|s| match s {
            Stage::Pooling(p) => Some(p),
            _ => None,
        })
    }
}

fn config_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| config_err(path, format!("invalid JSON: {e}")))
}

/// `dir/name` inside the repository.
fn join(dir: &str, name: &str) -> String {
    let dir = dir.trim_matches('/');
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The modules bert-wgpu runs, from a `modules.json` type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Transformer,
    Pooling,
    Dense,
    Normalize,
}

fn kind(type_name: &str) -> Option<Kind> {
    if !type_name.starts_with("sentence_transformers.") {
        return None;
    }
    match type_name.rsplit('.').next()? {
        "Transformer" => Some(Kind::Transformer),
        "Pooling" => Some(Kind::Pooling),
        "Dense" => Some(Kind::Dense),
        "Normalize" => Some(Kind::Normalize),
        _ => None,
    }
}

/// A count from JSON (`model_max_length` is sometimes a huge float meaning
/// "no limit", which is `None` here).
fn as_len(v: &Value) -> Option<usize> {
    if let Some(n) = v.as_u64() {
        return usize::try_from(n).ok();
    }
    v.as_f64()
        .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e15)
        .map(|f| f as usize)
}

/// Reads the module chain of `repo`; `None` when it has no `modules.json`
/// (a plain transformers checkpoint).
pub fn read(repo: &Repo) -> Result<Option<SentenceConfig>> {
    let Some(modules_path) = repo.file("modules.json") else {
        return Ok(None);
    };
    let modules = read_json(&modules_path)?;
    let Value::Array(entries) = &modules else {
        return Err(config_err(
            &modules_path,
            "expected a JSON array of modules",
        ));
    };
    let mut out = SentenceConfig::default();
    for (i, entry) in entries.iter().enumerate() {
        let type_name = entry
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| config_err(&modules_path, format!("module {i} has no string `type`")))?;
        let path = entry.get("path").and_then(Value::as_str).unwrap_or("");
        let k = kind(type_name).ok_or_else(|| {
            Error::Unsupported(format!(
                "sentence-transformers module `{type_name}` ({} entry {i}, path `{path}`): bert-wgpu runs Transformer, Pooling, Dense and Normalize modules",
                modules_path.display()
            ))
        })?;
        match (i, k) {
            (0, Kind::Transformer) => {
                out.transformer_path = path.to_string();
                out.transformer = read_transformer(repo, path, "feature-extraction")?;
            }
            (0, _) | (_, Kind::Transformer) => {
                return Err(Error::Unsupported(format!(
                    "{}: module {i} is `{type_name}`; bert-wgpu needs one Transformer module, first",
                    modules_path.display()
                )))
            }
            (1, Kind::Pooling) => {
                let (p, dim) = read_pooling(repo, path)?;
                out.pooling_dim = dim;
                out.stages.push(Stage::Pooling(p));
            }
            (1, _) | (_, Kind::Pooling) => {
                return Err(Error::Unsupported(format!(
                    "{}: module {i} is `{type_name}`; bert-wgpu needs one Pooling module right after the Transformer",
                    modules_path.display()
                )))
            }
            (_, Kind::Dense) => {
                let cfg_path = repo.required(&join(path, "config.json"), "a Dense module needs its config.json")?;
                let cfg = read_json(&cfg_path)?;
                let weights = repo.weight_files(path).ok();
                out.stages.push(Stage::Dense(Dense::load(&cfg_path, &cfg, weights.as_deref())?));
            }
            (_, Kind::Normalize) => out.stages.push(Stage::Normalize),
        }
    }
    if out.pooling().is_none() {
        return Err(Error::Unsupported(format!(
            "{}: no Pooling module after the Transformer (token embeddings only); bert-wgpu embeds sentences",
            modules_path.display()
        )));
    }
    check_widths(&out, &modules_path)?;
    if let Some(p) = repo.file("config_sentence_transformers.json") {
        read_prompts(&p, &mut out)?;
    }
    Ok(Some(out))
}

/// What a cross-encoder folder says beyond `config.json`: its truncation
/// length and the activation `CrossEncoder.predict` applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrossEncoderConfig {
    /// Truncation and lowercasing.
    pub transformer: TransformerConfig,
    /// The activation's class path: `config_sentence_transformers.json`'s
    /// `activation_fn` (sentence-transformers 6), else `config.json`'s
    /// `sentence_transformers.activation_fn` (4–5) or
    /// `sbert_ce_default_activation_function` (older).
    pub activation_fn: Option<String>,
}

/// Reads a cross-encoder's files (all optional: a plain
/// `BertForSequenceClassification` folder is a cross-encoder too).
pub fn read_cross_encoder(repo: &Repo) -> Result<CrossEncoderConfig> {
    let transformer = read_transformer(repo, "", "sequence-classification")?;
    let mut activation_fn = None;
    if let Some(p) = repo.file("config_sentence_transformers.json") {
        activation_fn = read_json(&p)?
            .get("activation_fn")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    if activation_fn.is_none() {
        if let Some(p) = repo.file("config.json") {
            let cfg = read_json(&p)?;
            activation_fn = cfg
                .pointer("/sentence_transformers/activation_fn")
                .or_else(|| cfg.get("sbert_ce_default_activation_function"))
                .and_then(Value::as_str)
                .map(str::to_string);
        }
    }
    Ok(CrossEncoderConfig {
        transformer,
        activation_fn,
    })
}

fn read_transformer(repo: &Repo, path: &str, task: &str) -> Result<TransformerConfig> {
    let mut out = TransformerConfig::default();
    // The names sentence-transformers tries, in its order.
    const NAMES: [&str; 7] = [
        "sentence_bert_config.json",
        "sentence_roberta_config.json",
        "sentence_distilbert_config.json",
        "sentence_camembert_config.json",
        "sentence_albert_config.json",
        "sentence_xlm-roberta_config.json",
        "sentence_xlnet_config.json",
    ];
    if let Some(cfg_path) = NAMES.iter().find_map(|n| repo.file(&join(path, n))) {
        let cfg = read_json(&cfg_path)?;
        if let Some(t) = cfg.get("transformer_task").and_then(Value::as_str) {
            if t != task {
                return Err(Error::Unsupported(format!(
                    "{}: transformer_task `{t}` where `{task}` was expected (embedding models are feature-extraction, cross-encoders sequence-classification)",
                    cfg_path.display()
                )));
            }
        }
        out.max_seq_length = match cfg.get("max_seq_length") {
            None | Some(Value::Null) => None,
            Some(v) => Some(as_len(v).filter(|&n| n > 0).ok_or_else(|| {
                config_err(
                    &cfg_path,
                    format!("`max_seq_length` must be a positive integer, got {v}"),
                )
            })?),
        };
        // A per-call override sentence-transformers 6 can save.
        if let Some(v) = cfg.pointer("/processing_kwargs/text/max_length") {
            out.max_seq_length = Some(as_len(v).filter(|&n| n > 0).ok_or_else(|| {
                config_err(
                    &cfg_path,
                    format!(
                        "`processing_kwargs.text.max_length` must be a positive integer, got {v}"
                    ),
                )
            })?);
        }
        out.do_lower_case = cfg
            .get("do_lower_case")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    }
    if let Some(p) = repo.file(&join(path, "tokenizer_config.json")) {
        out.model_max_length = read_json(&p)?.get("model_max_length").and_then(as_len);
    }
    Ok(out)
}

fn read_pooling(repo: &Repo, path: &str) -> Result<(PoolingConfig, Option<usize>)> {
    let cfg_path = repo.required(
        &join(path, "config.json"),
        "a Pooling module needs its config.json",
    )?;
    let cfg = read_json(&cfg_path)?;
    let modes = match cfg.get("pooling_mode") {
        Some(Value::String(s)) => vec![s
            .parse::<Pooling>()
            .map_err(|e| config_err(&cfg_path, e.to_string()))?],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| {
                        config_err(
                            &cfg_path,
                            format!("`pooling_mode` entries must be strings, got {v}"),
                        )
                    })?
                    .parse::<Pooling>()
                    .map_err(|e| config_err(&cfg_path, e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?,
        Some(other) => {
            return Err(config_err(
                &cfg_path,
                format!("`pooling_mode` must be a string or a list, got {other}"),
            ))
        }
        // The legacy flags, concatenated in their fixed order; none → mean.
        None => Pooling::ALL
            .into_iter()
            .filter(|m| {
                cfg.get(m.legacy_flag())
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            })
            .collect(),
    };
    let modes = if modes.is_empty() {
        vec![Pooling::Mean]
    } else {
        modes
    };
    let include_prompt = cfg
        .get("include_prompt")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let dim = cfg
        .get("embedding_dimension")
        .or_else(|| cfg.get("word_embedding_dimension"))
        .and_then(as_len);
    if dim == Some(0) {
        return Err(config_err(
            &cfg_path,
            "`embedding_dimension` must be positive",
        ));
    }
    Ok((
        PoolingConfig {
            modes,
            include_prompt,
        },
        dim,
    ))
}

/// Each Dense takes the width the stage before it gives.
fn check_widths(cfg: &SentenceConfig, modules_path: &Path) -> Result<()> {
    let mut width: Option<usize> = None;
    for s in &cfg.stages {
        if let Stage::Dense(d) = s {
            if let Some(w) = width {
                if w != d.in_features {
                    return Err(Error::Unsupported(format!(
                        "{}: a Dense module takes {} features but the module before it gives {w}",
                        modules_path.display(),
                        d.in_features
                    )));
                }
            }
            width = Some(d.out_features);
        }
    }
    Ok(())
}

fn read_prompts(path: &Path, out: &mut SentenceConfig) -> Result<()> {
    let cfg = read_json(path)?;
    if let Some(p) = cfg.get("prompts") {
        let Value::Object(map) = p else {
            return Err(config_err(
                path,
                "`prompts` must be an object of name → text",
            ));
        };
        for (name, text) in map {
            let text = match text {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => {
                    return Err(config_err(
                        path,
                        format!("prompt `{name}` must be a string, got {other}"),
                    ))
                }
            };
            out.prompts.insert(name.clone(), text);
        }
    }
    out.default_prompt_name = match cfg.get("default_prompt_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(config_err(
                path,
                format!("`default_prompt_name` must be a string, got {other}"),
            ))
        }
    };
    if let Some(d) = &out.default_prompt_name {
        if !out.prompts.contains_key(d) {
            return Err(config_err(
                path,
                format!(
                    "default_prompt_name `{d}` is not among the prompts ({})",
                    out.prompts.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    Ok(())
}
