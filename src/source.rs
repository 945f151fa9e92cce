//! Where a checkpoint comes from: a local folder, or a Hugging Face Hub id
//! resolved through `hf-hub` (honouring `HF_HOME`, `HF_HUB_OFFLINE`).

use std::path::{Path, PathBuf};

use hf_hub::{Repo, RepoType};

use crate::error::{Error, Result};

/// The three files a checkpoint needs.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// `config.json`
    pub config: PathBuf,
    /// `model.safetensors`
    pub weights: PathBuf,
    /// `tokenizer.json`, when present.
    pub tokenizer: Option<PathBuf>,
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// bert-wgpu's own cache folder (`scripts/fetch_minilm.sh` writes the
/// default model there, `bert-wgpu tune` its kernel choices):
/// `$BERT_WGPU_CACHE`, else `~/.cache/bert-wgpu`.
pub fn cache_dir() -> PathBuf {
    std::env::var("BERT_WGPU_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::var("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache/bert-wgpu")
        })
}

/// Resolves `source` (a folder, or a Hub id such as
/// `sentence-transformers/all-MiniLM-L6-v2`) at `revision` (Hub only);
/// `progress` draws a bar on stderr for each file downloaded.
pub fn resolve(source: &str, revision: Option<&str>, progress: bool) -> Result<ModelFiles> {
    let path = Path::new(source);
    if path.is_dir() {
        return from_folder(path);
    }
    let looks_like_id = !source.is_empty()
        && source.split('/').count() <= 2
        && !source.starts_with('.')
        && !source.starts_with('/')
        && source
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if !looks_like_id {
        return Err(Error::Hub(format!(
            "`{source}` is neither a folder nor a Hugging Face Hub model id: \
             pass --model a folder holding config.json and model.safetensors, \
             or an id like sentence-transformers/all-MiniLM-L6-v2"
        )));
    }
    let rev = revision.unwrap_or("main").to_string();
    let repo = Repo::with_revision(source.to_string(), RepoType::Model, rev.clone());
    if offline() {
        let cache = hf_hub::Cache::from_env();
        let cached = cache.repo(repo);
        let get = |f: &str| cached.get(f);
        return match (get("config.json"), get("model.safetensors")) {
            (Some(config), Some(weights)) => Ok(ModelFiles {
                config,
                weights,
                tokenizer: get("tokenizer.json"),
            }),
            _ => Err(Error::Hub(format!(
                "`{source}` (revision {rev}) is not in the Hugging Face cache at {} and HF_HUB_OFFLINE is set: \
                 unset HF_HUB_OFFLINE to download it, or pass --model a folder holding config.json, model.safetensors and tokenizer.json",
                cache.path().display()
            ))),
        };
    }
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(progress)
        .build()
        .map_err(|e| Error::Hub(e.to_string()))?;
    let api_repo = api.repo(repo);
    let get = |f: &str| {
        api_repo.get(f).map_err(|e| {
            Error::Hub(format!(
                "cannot fetch {f} of `{source}` (revision {rev}): {e}. Without network access, \
                 pass --model a local folder holding config.json, model.safetensors and tokenizer.json"
            ))
        })
    };
    Ok(ModelFiles {
        config: get("config.json")?,
        weights: get("model.safetensors")?,
        tokenizer: get("tokenizer.json").ok(),
    })
}

fn from_folder(dir: &Path) -> Result<ModelFiles> {
    let config = dir.join("config.json");
    let weights = dir.join("model.safetensors");
    for f in [&config, &weights] {
        if !f.is_file() {
            return Err(Error::io(
                f,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not found (a model folder needs config.json and model.safetensors; pytorch_model.bin is not supported)",
                ),
            ));
        }
    }
    let tok = dir.join("tokenizer.json");
    Ok(ModelFiles {
        config,
        weights,
        tokenizer: tok.is_file().then_some(tok),
    })
}
