//! The tuning file: the kernel choices measured for one adapter and
//! storage type (by `bert-wgpu tune` or a first-use tune, [`super::tune`]),
//! stored as JSON under `BERT_WGPU_TUNE_DIR` (default `$BERT_WGPU_CACHE/tune`
//! or `~/.cache/bert-wgpu/tune`) and read by executors whose
//! [`super::TunePolicy`] reads it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::GpuContext;
use crate::device::DType;
use crate::error::{Error, Result};

/// The measured choices for one adapter and storage type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// The adapter measured ([`adapter_key`]); a file for another adapter is
    /// ignored.
    pub adapter: String,
    /// Storage type (`f32`, `f16`).
    pub dtype: String,
    /// What was timed, e.g. `bert-base 32 × 128 (small m: 128 rows)`.
    pub measured_on: String,
    /// GEMM for linears with ≥ 64 tiles of 128 × 128: `register`, `tiled`
    /// or `coop` (the `BERT_WGPU_GEMM` values).
    pub gemm_large: String,
    /// GEMM for smaller linears: `register`, `tiled`, `splitk` or `coop`.
    pub gemm_small: String,
    /// Tile kernel of `tiled` and `splitk`: `plain` or `prefetch`.
    pub tile: String,
    /// Attention kernel: `query` or `tiled`.
    pub attention: String,
    /// Every timing behind the choices.
    pub times: Vec<TuneTime>,
}

/// One variant of one decision: its correctness check, then its timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneTime {
    /// The choice it competes in: `gemm_large`, `tile`, `gemm_small`,
    /// `attention`.
    pub decision: String,
    /// The variant (a value of that field).
    pub variant: String,
    /// Milliseconds: the sum over BERT's four projections for the GEMM
    /// decisions, one self-attention for `attention`. None when it was not
    /// timed (rejected).
    #[serde(default)]
    pub ms: Option<f64>,
    /// Largest |gpu − cpu| of the correctness check run before timing.
    #[serde(default)]
    pub max_error: Option<f64>,
    /// Why it cannot be chosen: it failed the check, or the driver refused
    /// it. None for a candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}

/// `name (backend, type) driver driver_info`: what a tuning file is for.
pub fn adapter_key(ctx: &GpuContext) -> String {
    format!(
        "{} {} {}",
        ctx.describe(),
        ctx.info.driver,
        ctx.info.driver_info
    )
}

/// The folder of tuning files.
pub fn tune_dir() -> PathBuf {
    if let Ok(d) = std::env::var("BERT_WGPU_TUNE_DIR") {
        return PathBuf::from(d);
    }
    crate::source::cache_dir().join("tune")
}

/// The tuning file of `ctx`'s adapter for `dtype`.
pub fn tune_path(ctx: &GpuContext, dtype: DType) -> PathBuf {
    let name: String = adapter_key(ctx)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut name = name.trim_matches('-').to_string();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    tune_dir().join(format!("{name}-{dtype}.json"))
}

impl Tuning {
    /// The tuning file for `ctx`'s adapter and `dtype`, if there is a valid
    /// one. A file that does not parse, or names another adapter, is
    /// ignored with a warning.
    pub fn load(ctx: &GpuContext, dtype: DType) -> Option<Tuning> {
        let path = tune_path(ctx, dtype);
        let text = std::fs::read_to_string(&path).ok()?;
        match serde_json::from_str::<Tuning>(&text) {
            Ok(t) if t.adapter == adapter_key(ctx) && t.dtype == dtype.to_string() => {
                log::info!("kernel choices from {}", path.display());
                Some(t)
            }
            Ok(_) => {
                log::warn!(
                    "{}: made for another adapter or storage type; ignored",
                    path.display()
                );
                None
            }
            Err(e) => {
                log::warn!(
                    "{}: not a tuning file ({e}); ignored (run `bert-wgpu tune` again)",
                    path.display()
                );
                None
            }
        }
    }

    /// Writes the file [`Self::load`] reads; returns its path.
    pub fn save(&self, ctx: &GpuContext, dtype: DType) -> Result<PathBuf> {
        let path = tune_path(ctx, dtype);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let text =
            serde_json::to_string_pretty(self).map_err(|e| Error::input(format!("tuning: {e}")))?;
        // Written aside and renamed: two processes tuning at once never
        // leave a half-written file for a third to read.
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }
}
