//! Per-adapter kernel choices. `bert-wgpu tune` times every kernel variant
//! on one model shape's GEMMs and attention and writes the fastest to a JSON
//! file named after the adapter and storage type; executors on that adapter
//! read it when they are created. Precedence: a `BERT_WGPU_GEMM` /
//! `BERT_WGPU_GEMM_TILE` / `BERT_WGPU_ATTENTION` variable, then the file,
//! then the built-in defaults. `BERT_WGPU_TUNE=off` ignores the files;
//! `BERT_WGPU_TUNE_DIR` moves them (default `$BERT_WGPU_CACHE/tune` or
//! `~/.cache/bert-wgpu/tune`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::choice::{AttentionKernel, GemmKernel};
use super::pipelines::LinearVariant;
use super::{GpuContext, KernelHarness};
use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::model::DType;

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

/// One timed variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneTime {
    /// The choice it competes in: `gemm_large`, `tile`, `gemm_small`,
    /// `attention`.
    pub decision: String,
    /// The variant (a value of that field).
    pub variant: String,
    /// Milliseconds: the sum over BERT's four projections for the GEMM
    /// decisions, one self-attention for `attention`.
    pub ms: f64,
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
    /// one and `BERT_WGPU_TUNE` is not `off`. A file that does not parse,
    /// or names another adapter, is ignored with a warning.
    pub fn load(ctx: &GpuContext, dtype: DType) -> Option<Tuning> {
        if std::env::var("BERT_WGPU_TUNE").is_ok_and(|v| v == "off") {
            return None;
        }
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
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }
}

/// Seconds for BERT's four projections at `m` rows with `h`'s forced GEMM.
fn time_projections(h: &KernelHarness, cfg: &BertConfig, m: usize, reps: u32) -> Result<f64> {
    let rows = crate::bench::time_projections(Some(h), cfg, m, reps)?;
    Ok(rows.iter().map(|r| r.ms / 1e3).sum())
}

/// The fastest of `times` (by ms), as its variant name.
fn fastest(times: &[TuneTime]) -> String {
    times
        .iter()
        .min_by(|a, b| a.ms.total_cmp(&b.ms))
        .map(|t| t.variant.clone())
        .unwrap_or_default()
}

/// Times every variant on `cfg`'s shapes with `dtype` storage on the
/// default GPU adapter: the GEMMs at batch·seq rows (`gemm_large`, `tile`)
/// and at seq rows (`gemm_small`), attention at batch × seq; `reps`
/// dispatches per timing. `label` names the shape in the result.
pub fn measure(
    cfg: &BertConfig,
    label: &str,
    dtype: DType,
    batch: usize,
    seq: usize,
    reps: u32,
) -> Result<Tuning> {
    if batch == 0 || seq == 0 || seq > cfg.max_position_embeddings {
        return Err(Error::input(format!(
            "tune needs batch ≥ 1 and 1 ≤ seq ≤ {}",
            cfg.max_position_embeddings
        )));
    }
    let ctx = GpuContext::new(true)?;
    let adapter = adapter_key(&ctx);
    let coop = ctx.coop.filter(|_| dtype == DType::F16);
    let shared = ctx.limits.max_compute_workgroup_storage_size;
    let mut h = KernelHarness::with_dtype(ctx, dtype)?;
    let time = |h: &mut KernelHarness,
                decision: &str,
                variant: &str,
                gemm: GemmKernel,
                tile: LinearVariant,
                m: usize|
     -> Result<TuneTime> {
        h.force_gemm(Some(gemm));
        h.force_tile(Some(tile));
        let t = TuneTime {
            decision: decision.into(),
            variant: variant.into(),
            // The better of two timings, so one disturbed run (another
            // process, a first-use cost in the driver) does not decide.
            ms: time_projections(h, cfg, m, reps)?.min(time_projections(h, cfg, m, reps)?) * 1e3,
        };
        log::info!("tune {decision} {variant}: {:.3} ms", t.ms);
        Ok(t)
    };
    let (plain, prefetch) = (LinearVariant::Tiled, LinearVariant::TiledPrefetch);
    let large = batch * seq;
    // Tile kernels at the large shape, then GEMMs at the large shape with
    // the faster tile.
    let tiles = [
        time(&mut h, "tile", "plain", GemmKernel::Tiled, plain, large)?,
        time(
            &mut h,
            "tile",
            "prefetch",
            GemmKernel::Tiled,
            prefetch,
            large,
        )?,
    ];
    let tile = fastest(&tiles);
    let best_tile = if tile == "prefetch" { prefetch } else { plain };
    let tiled_ms = tiles
        .iter()
        .find(|t| t.variant == tile)
        .map_or(f64::INFINITY, |t| t.ms);
    let mut large_times = vec![
        time(
            &mut h,
            "gemm_large",
            "register",
            GemmKernel::Register,
            plain,
            large,
        )?,
        TuneTime {
            decision: "gemm_large".into(),
            variant: "tiled".into(),
            ms: tiled_ms,
        },
    ];
    if let Some(c) = coop {
        let g = GemmKernel::Coop(4 * c.frag);
        large_times.push(time(&mut h, "gemm_large", "coop", g, plain, large)?);
    }
    let mut small_times = vec![
        time(
            &mut h,
            "gemm_small",
            "register",
            GemmKernel::Register,
            plain,
            seq,
        )?,
        time(
            &mut h,
            "gemm_small",
            "tiled",
            GemmKernel::Tiled,
            best_tile,
            seq,
        )?,
        time(
            &mut h,
            "gemm_small",
            "splitk",
            GemmKernel::SplitK,
            best_tile,
            seq,
        )?,
    ];
    if let Some(c) = coop {
        let g = GemmKernel::Coop(4 * c.frag);
        small_times.push(time(&mut h, "gemm_small", "coop", g, plain, seq)?);
    }
    // Attention: the tiled kernel only where it can run.
    let (heads, hidden) = (cfg.num_attention_heads, cfg.hidden_size);
    let qkv = crate::bench::random_values(41, large * 3 * hidden);
    let mask = vec![0.0f32; large];
    let mut attn_times = Vec::new();
    let mut variants = vec![("query", AttentionKernel::Query)];
    if cfg.head_dim() % 4 == 0 && shared >= super::ATTENTION_TILED_SHARED_BYTES {
        variants.push(("tiled", AttentionKernel::Tiled));
    }
    for (name, kernel) in variants {
        h.force_attention(Some(kernel));
        let once = || h.time_attention(&qkv, &mask, batch, seq, heads, hidden, reps);
        let ms = once()?.min(once()?) * 1e3;
        log::info!("tune attention {name}: {ms:.3} ms");
        attn_times.push(TuneTime {
            decision: "attention".into(),
            variant: name.into(),
            ms,
        });
    }
    let tuning = Tuning {
        adapter,
        dtype: dtype.to_string(),
        measured_on: format!("{label} {batch} × {seq} (small m: {seq} rows)"),
        gemm_large: fastest(&large_times),
        gemm_small: fastest(&small_times),
        tile,
        attention: fastest(&attn_times),
        times: tiles
            .into_iter()
            .chain(large_times)
            .chain(small_times)
            .chain(attn_times)
            .collect(),
    };
    Ok(tuning)
}
