//! Where a checkpoint comes from: a local folder, or a Hugging Face Hub id
//! resolved through `hf-hub` (honouring `HF_HOME`, `HF_HUB_OFFLINE`).

use std::path::{Path, PathBuf};

use hf_hub::RepoType;

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

/// Where a model's files come from: a local folder, the Hub, or (with
/// `HF_HUB_OFFLINE`) the Hub's local cache. Files are fetched on first ask.
pub struct Repo {
    source: String,
    revision: String,
    kind: RepoKind,
}

enum RepoKind {
    Folder(PathBuf),
    Cache(hf_hub::CacheRepo),
    Hub(hf_hub::api::sync::ApiRepo),
}

impl Repo {
    /// Opens `source` (a folder, or a Hub id such as
    /// `sentence-transformers/all-MiniLM-L6-v2`) at `revision` (Hub only);
    /// `progress` draws a bar on stderr for each file downloaded.
    pub fn open(source: &str, revision: Option<&str>, progress: bool) -> Result<Self> {
        let rev = revision.unwrap_or("main").to_string();
        let path = Path::new(source);
        if path.is_dir() {
            return Ok(Repo {
                source: source.to_string(),
                revision: rev,
                kind: RepoKind::Folder(path.to_path_buf()),
            });
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
        let repo = hf_hub::Repo::with_revision(source.to_string(), RepoType::Model, rev.clone());
        let kind = if offline() {
            RepoKind::Cache(hf_hub::Cache::from_env().repo(repo))
        } else {
            let api = hf_hub::api::sync::ApiBuilder::from_env()
                .with_progress(progress)
                .build()
                .map_err(|e| Error::Hub(e.to_string()))?;
            RepoKind::Hub(api.repo(repo))
        };
        Ok(Repo {
            source: source.to_string(),
            revision: rev,
            kind,
        })
    }

    /// The local folder, when the source is one.
    pub fn folder(&self) -> Option<&Path> {
        match &self.kind {
            RepoKind::Folder(p) => Some(p),
            _ => None,
        }
    }

    /// `rel` (a path inside the repository, `/`-separated) when it exists;
    /// `None` when it does not (or cannot be fetched).
    pub fn file(&self, rel: &str) -> Option<PathBuf> {
        match &self.kind {
            RepoKind::Folder(dir) => {
                let p = dir.join(rel);
                p.is_file().then_some(p)
            }
            RepoKind::Cache(c) => c.get(rel),
            RepoKind::Hub(api) => api.get(rel).ok(),
        }
    }

    /// `rel`, or an error saying the model needs it.
    pub fn required(&self, rel: &str, why: &str) -> Result<PathBuf> {
        if let RepoKind::Hub(api) = &self.kind {
            return api.get(rel).map_err(|e| {
                Error::Hub(format!(
                    "cannot fetch {rel} of `{}` (revision {}): {e}. Without network access, \
                     pass --model a local folder holding config.json, model.safetensors and tokenizer.json",
                    self.source, self.revision
                ))
            });
        }
        if let Some(p) = self.file(rel) {
            return Ok(p);
        }
        Err(match &self.kind {
            RepoKind::Folder(dir) => Error::io(
                dir.join(rel),
                std::io::Error::new(std::io::ErrorKind::NotFound, format!("not found ({why})")),
            ),
            RepoKind::Cache(_) => Error::Hub(format!(
                "{rel} of `{}` (revision {}) is not in the Hugging Face cache at {} and HF_HUB_OFFLINE is set: \
                 unset HF_HUB_OFFLINE to download it, or pass --model a folder holding config.json, model.safetensors and tokenizer.json",
                self.source,
                self.revision,
                hf_hub::Cache::from_env().path().display()
            )),
            RepoKind::Hub(_) => Error::Hub(format!("cannot fetch {rel} of `{}`", self.source)),
        })
    }

    /// The checkpoint files under `subdir` (`""` for the repository root;
    /// a sentence-transformers model may keep its encoder in a subfolder).
    pub fn model_files(&self, subdir: &str) -> Result<ModelFiles> {
        let at = |f: &str| {
            if subdir.is_empty() {
                f.to_string()
            } else {
                format!("{}/{f}", subdir.trim_end_matches('/'))
            }
        };
        let why = "a model folder needs config.json and model.safetensors; pytorch_model.bin is not supported";
        Ok(ModelFiles {
            config: self.required(&at("config.json"), why)?,
            weights: self.required(&at("model.safetensors"), why)?,
            tokenizer: self.file(&at("tokenizer.json")),
        })
    }
}

/// Resolves `source` (a folder or Hub id) to its checkpoint files; see
/// [`Repo::open`].
pub fn resolve(source: &str, revision: Option<&str>, progress: bool) -> Result<ModelFiles> {
    Repo::open(source, revision, progress)?.model_files("")
}
