//! Where a checkpoint comes from: a local folder, or a Hugging Face Hub id
//! resolved through `hf-hub` (honouring `HF_HOME`, `HF_HUB_OFFLINE`).

use std::path::{Path, PathBuf};

use hf_hub::RepoType;

use crate::error::{Error, Result};

/// The files a checkpoint needs.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// `config.json`
    pub config: PathBuf,
    /// The weights: `model.safetensors`, or the shards its index lists, or
    /// PyTorch's `pytorch_model.bin` (or its shards), in that preference.
    pub weights: Vec<PathBuf>,
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
        let why = "a model folder needs config.json and its weights";
        Ok(ModelFiles {
            config: self.required(&at("config.json"), why)?,
            weights: self.weight_files(subdir)?,
            tokenizer: self.file(&at("tokenizer.json")),
        })
    }

    /// The weight files under `subdir`, as transformers picks them:
    /// `model.safetensors`, `model.safetensors.index.json`'s shards,
    /// `pytorch_model.bin`, `pytorch_model.bin.index.json`'s shards.
    pub fn weight_files(&self, subdir: &str) -> Result<Vec<PathBuf>> {
        let at = |f: &str| {
            if subdir.is_empty() {
                f.to_string()
            } else {
                format!("{}/{f}", subdir.trim_end_matches('/'))
            }
        };
        for (single, index) in [
            ("model.safetensors", "model.safetensors.index.json"),
            ("pytorch_model.bin", "pytorch_model.bin.index.json"),
        ] {
            if let Some(p) = self.file(&at(single)) {
                return Ok(vec![p]);
            }
            if let Some(p) = self.file(&at(index)) {
                return shard_names(&p)?
                    .iter()
                    .map(|shard| self.required(&at(shard), "a shard its index lists"))
                    .collect();
            }
        }
        let shown = if subdir.is_empty() {
            "the model"
        } else {
            subdir
        };
        Err(match &self.kind {
            RepoKind::Folder(dir) => Error::io(
                dir.join(at("model.safetensors")),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("not found: {shown} has no weights (none of model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json)"),
                ),
            ),
            _ => Error::Hub(format!(
                "`{}` (revision {}): {shown} has none of model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json{}",
                self.source,
                self.revision,
                if offline() { " in the local cache (HF_HUB_OFFLINE is set)" } else { "" }
            )),
        })
    }
}

/// The shard files a `*.index.json` names in its `weight_map`, each once,
/// in order. Names must be plain file names next to the index.
fn shard_names(index: &Path) -> Result<Vec<String>> {
    let bad = |message: String| Error::Config {
        path: index.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let map = json
        .get("weight_map")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| bad("no `weight_map` object".into()))?;
    let mut shards: Vec<String> = Vec::new();
    for (key, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| bad(format!("weight_map[`{key}`] is not a file name")))?;
        let plain = Path::new(file).file_name().is_some_and(|n| n == file) && file != "..";
        if !plain {
            return Err(bad(format!(
                "weight_map[`{key}`] = `{file}` is not a file name next to the index"
            )));
        }
        if !shards.iter().any(|s| s == file) {
            shards.push(file.to_string());
        }
    }
    if shards.is_empty() {
        return Err(bad("`weight_map` is empty".into()));
    }
    shards.sort();
    Ok(shards)
}

/// Resolves `source` (a folder or Hub id) to its checkpoint files; see
/// [`Repo::open`].
pub fn resolve(source: &str, revision: Option<&str>, progress: bool) -> Result<ModelFiles> {
    Repo::open(source, revision, progress)?.model_files("")
}
