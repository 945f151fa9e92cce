//! Per-adapter kernel choices. Every kernel variant is checked against its
//! CPU twin ([`check`]), the ones that match are timed on one model shape's
//! GEMMs and attention, and the fastest go to a JSON file named after the
//! adapter and storage type; executors on that adapter read it when they
//! are created. `bert-wgpu tune` writes it on a shape the user picks; the
//! first executor on a hardware adapter without one writes it on its own
//! model's shape ([`at_first_use`]) when its [`TunePolicy`] says so (the
//! CLI's `first-use`; the library's default only reads). Precedence: the
//! executor's [`super::KernelChoices`], then the file ([`super::tuning`]),
//! then the built-in defaults.

pub mod check;

use super::choice::{AttentionKernel, GemmKernel};
use super::options::TunePolicy;
use super::spec::linear::LinearVariant;
pub use super::tuning::{adapter_key, tune_dir, tune_path, TuneTime, Tuning};
use super::{GpuContext, KernelHarness};
use crate::config::BertConfig;
use crate::device::DType;
use crate::error::{Error, Result};
use check::{AttentionCheck, GemmCheck, Verdict};

/// Seconds for BERT's four projections at `m` rows with `h`'s forced GEMM.
fn time_projections(h: &KernelHarness, cfg: &BertConfig, m: usize, reps: u32) -> Result<f64> {
    let rows = super::timing::time_projections(Some(h), cfg, m, reps)?;
    Ok(rows.iter().map(|r| r.ms / 1e3).sum())
}

/// The fastest candidate of `times` (checked, timed, not rejected), as its
/// variant name; `default` (the built-in choice) when none is left.
fn fastest(times: &[TuneTime]) -> String {
    times
        .iter()
        .filter(|t| t.rejected.is_none())
        .filter_map(|t| t.ms.map(|ms| (ms, t)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map_or_else(|| "default".into(), |(_, t)| t.variant.clone())
}

/// Checks one variant against the CPU twin, then times it. A failed check
/// or a driver error rejects the variant instead of ending the tune: the
/// variants the adapter can run still compete.
fn trial(
    decision: &str,
    variant: &str,
    check: impl FnOnce() -> Result<Verdict>,
    time: impl FnOnce() -> Result<f64>,
) -> TuneTime {
    let mut t = TuneTime {
        decision: decision.into(),
        variant: variant.into(),
        ms: None,
        max_error: None,
        rejected: None,
    };
    match check() {
        Ok(v) if v.ok => t.max_error = Some(v.max_abs),
        Ok(v) => {
            t.max_error = Some(v.max_abs);
            t.rejected = Some(format!(
                "differs from the CPU twin by up to {:.3e}",
                v.max_abs
            ));
        }
        Err(e) => t.rejected = Some(e.to_string()),
    }
    if t.rejected.is_none() {
        match time() {
            Ok(ms) => t.ms = Some(ms),
            Err(e) => t.rejected = Some(e.to_string()),
        }
    }
    match (&t.rejected, t.ms) {
        (Some(why), _) => log::warn!("tune {decision} {variant}: rejected: {why}"),
        (None, Some(ms)) => log::info!("tune {decision} {variant}: {ms:.3} ms"),
        (None, None) => {}
    }
    t
}

/// Checks and times every variant on `cfg`'s shapes with `dtype` storage
/// on `ctx`: the GEMMs at batch·seq rows (`gemm_large`, `tile`) and at seq
/// rows (`gemm_small`), attention at batch × seq; `reps` dispatches per
/// timing. Each variant first has to match the CPU twin
/// ([`check`]); one that does not, or that the driver refuses, is recorded
/// as rejected and cannot be chosen. `label` names the shape in the result.
pub fn measure(
    ctx: GpuContext,
    cfg: &BertConfig,
    label: &str,
    dtype: DType,
    batch: usize,
    seq: usize,
    reps: u32,
) -> Result<Tuning> {
    if batch == 0 || seq == 0 || seq > cfg.max_tokens() {
        return Err(Error::input(format!(
            "tune needs batch ≥ 1 and 1 ≤ seq ≤ {}",
            cfg.max_tokens()
        )));
    }
    let adapter = adapter_key(&ctx);
    let coop = ctx.coop.filter(|_| dtype == DType::F16);
    let shared = ctx.limits.max_compute_workgroup_storage_size;
    let mut h = KernelHarness::with_dtype(ctx, dtype)?;
    let large = batch * seq;
    let (check_large, check_small) = (
        GemmCheck::new(cfg, large, dtype)?,
        GemmCheck::new(cfg, seq, dtype)?,
    );
    let mut gemm = |decision: &str, variant: &str, kernel: GemmKernel, tile: LinearVariant| {
        h.force_gemm(Some(kernel));
        h.force_tile(Some(tile));
        let (m, check) = match decision {
            "gemm_small" => (seq, &check_small),
            _ => (large, &check_large),
        };
        let h = &h;
        trial(
            decision,
            variant,
            || check.run(h),
            // The better of two timings, so one disturbed run (another
            // process, a first-use cost in the driver) does not decide.
            || Ok(time_projections(h, cfg, m, reps)?.min(time_projections(h, cfg, m, reps)?) * 1e3),
        )
    };
    let (plain, prefetch) = (LinearVariant::Tiled, LinearVariant::TiledPrefetch);
    // Tile kernels at the large shape, then GEMMs at the large shape with
    // the faster tile.
    let tiles = [
        gemm("tile", "plain", GemmKernel::Tiled, plain),
        gemm("tile", "prefetch", GemmKernel::Tiled, prefetch),
    ];
    let tile = fastest(&tiles);
    let best_tile = if tile == "prefetch" { prefetch } else { plain };
    let tiled = match tiles.iter().find(|t| t.variant == tile) {
        Some(t) => TuneTime {
            decision: "gemm_large".into(),
            variant: "tiled".into(),
            ..t.clone()
        },
        None => TuneTime {
            decision: "gemm_large".into(),
            variant: "tiled".into(),
            ms: None,
            max_error: None,
            rejected: Some("both tile kernels were rejected".into()),
        },
    };
    let mut large_times = vec![
        gemm("gemm_large", "register", GemmKernel::Register, plain),
        tiled,
    ];
    if let Some(c) = coop {
        let g = GemmKernel::Coop(4 * c.frag);
        large_times.push(gemm("gemm_large", "coop", g, plain));
    }
    let mut small_times = vec![
        gemm("gemm_small", "register", GemmKernel::Register, plain),
        gemm("gemm_small", "tiled", GemmKernel::Tiled, best_tile),
        gemm("gemm_small", "splitk", GemmKernel::SplitK, best_tile),
    ];
    if let Some(c) = coop {
        let g = GemmKernel::Coop(4 * c.frag);
        small_times.push(gemm("gemm_small", "coop", g, plain));
    }
    // Attention: the tiled kernel only where it can run.
    let check = AttentionCheck::new(cfg, batch, seq, dtype)?;
    let mut attn_times = Vec::new();
    let mut variants = vec![("query", AttentionKernel::Query)];
    if cfg.head_dim() % 4 == 0 && shared >= super::ATTENTION_TILED_SHARED_BYTES {
        variants.push(("tiled", AttentionKernel::Tiled));
    }
    for (name, kernel) in variants {
        h.force_attention(Some(kernel));
        let h = &h;
        attn_times.push(trial(
            "attention",
            name,
            || check.run(h),
            || Ok(check.time(h, reps)?.min(check.time(h, reps)?) * 1e3),
        ));
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

/// The shape [`at_first_use`] measures: 16 sequences of 128 tokens (fewer
/// when the model has fewer positions), 3 dispatches per timing. 2,048
/// rows put every bert-base projection well into the large-GEMM class (≥ 96
/// tiles), so the large choice is not made at the class's edge, where
/// finer-grained kernels win; at 2 × (1 + 1 + 4) = 12 dispatches per
/// projection and variant, plus the CPU references (~20 GFLOP for
/// bert-base), it should stay around a second on a discrete GPU (predicted;
/// `scripts/gpu_bench.sh` measures it).
const FIRST_USE_BATCH: usize = 16;
const FIRST_USE_SEQ: usize = 128;
const FIRST_USE_REPS: u32 = 3;

/// Whether an executor on `ctx` without a tuning file tunes first under
/// `policy`: [`TunePolicy::Auto`] always, [`TunePolicy::FirstUse`] on
/// hardware adapters only (software adapters such as lavapipe run the
/// built-in choices, which were measured there), otherwise never.
pub fn tunes_at_first_use(ctx: &GpuContext, policy: TunePolicy) -> bool {
    match policy {
        TunePolicy::Off | TunePolicy::Read => false,
        TunePolicy::Auto => true,
        TunePolicy::FirstUse => ctx.info.device_type != wgpu::DeviceType::Cpu,
    }
}

/// The first executor on an adapter with no tuning file for `dtype`
/// (where [`tunes_at_first_use`] under `policy`) checks and times the kernel variants on
/// `cfg`'s shape once, on a sibling device (a kernel the driver mishandles
/// cannot lose the executor's), and saves the result for every later run.
/// Failing to tune or to save is a warning: the built-in choices, or the
/// unsaved measurement, run instead. Executors created at once in one
/// process wait for a single tune, and none tunes twice.
pub fn at_first_use(
    ctx: &GpuContext,
    cfg: &BertConfig,
    dtype: DType,
    policy: TunePolicy,
    progress: bool,
) -> Option<Tuning> {
    type Outcomes = std::collections::HashMap<String, Option<Tuning>>;
    static DONE: std::sync::Mutex<Option<Outcomes>> = std::sync::Mutex::new(None);
    if !tunes_at_first_use(ctx, policy) {
        return None;
    }
    // A poisoned lock only means another tune panicked: its entry is absent.
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    let key = format!("{} {dtype}", adapter_key(ctx));
    if let Some(outcome) = done.get_or_insert_with(Default::default).get(&key) {
        return outcome.clone();
    }
    // Another thread or process may have saved one while this one waited.
    let outcome = Tuning::load(ctx, dtype).or_else(|| tune_now(ctx, cfg, dtype, progress));
    done.get_or_insert_with(Default::default)
        .insert(key, outcome.clone());
    outcome
}

/// [`at_first_use`]'s measurement and save.
fn tune_now(ctx: &GpuContext, cfg: &BertConfig, dtype: DType, progress: bool) -> Option<Tuning> {
    let started = std::time::Instant::now();
    let spinner = match progress {
        true => indicatif::ProgressBar::new_spinner().with_message(format!(
            "choosing kernels for {} (once; BERT_WGPU_TUNE=off skips)",
            ctx.info.name
        )),
        false => indicatif::ProgressBar::hidden(),
    };
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let seq = FIRST_USE_SEQ.min(cfg.max_tokens());
    let measured = ctx.sibling().and_then(|sib| {
        measure(
            sib,
            cfg,
            "first use",
            dtype,
            FIRST_USE_BATCH,
            seq,
            FIRST_USE_REPS,
        )
    });
    spinner.finish_and_clear();
    let tuning = match measured {
        Ok(t) => t,
        Err(e) => {
            log::warn!("choosing kernels failed ({e}); the built-in choices run");
            return None;
        }
    };
    let secs = started.elapsed().as_secs_f64();
    match tuning.save(ctx, dtype) {
        Ok(path) => log::info!(
            "kernel choices measured in {secs:.1} s, saved to {}",
            path.display()
        ),
        Err(e) => log::warn!("kernel choices measured in {secs:.1} s but not saved ({e})"),
    }
    Some(tuning)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(max_abs: f64) -> Result<Verdict> {
        Ok(Verdict { max_abs, ok: true })
    }

    #[test]
    fn a_variant_that_fails_its_check_is_never_timed_nor_chosen() {
        let timed = std::cell::Cell::new(0);
        let time = |ms: f64| {
            timed.set(timed.get() + 1);
            Ok(ms)
        };
        let times = [
            trial("gemm_small", "register", || pass(1e-6), || time(5.0)),
            // Fastest, but wrong.
            trial(
                "gemm_small",
                "tiled",
                || {
                    Ok(Verdict {
                        max_abs: 0.4,
                        ok: false,
                    })
                },
                || time(1.0),
            ),
            // The driver refused it.
            trial(
                "gemm_small",
                "splitk",
                || Err(Error::input("shader rejected")),
                || time(0.5),
            ),
            trial("gemm_small", "coop", || pass(2e-3), || time(3.0)),
        ];
        assert_eq!(timed.get(), 2, "only the variants that passed were timed");
        assert_eq!(times[1].ms, None);
        assert_eq!(times[1].max_error, Some(0.4));
        assert!(times[1].rejected.as_deref().unwrap().contains("4.000e-1"));
        assert!(times[2]
            .rejected
            .as_deref()
            .unwrap()
            .contains("shader rejected"));
        assert_eq!(times[3].ms, Some(3.0));
        assert_eq!(fastest(&times), "coop");
        // A timing error rejects too.
        let t = trial(
            "attention",
            "tiled",
            || pass(0.0),
            || Err(Error::input("lost")),
        );
        assert!(t.rejected.is_some() && t.ms.is_none());
        assert_eq!(fastest(&[t]), "default", "nothing left: built-in choice");
    }

    #[test]
    fn old_tuning_files_still_parse() {
        let t: TuneTime =
            serde_json::from_str(r#"{"decision": "tile", "variant": "plain", "ms": 1.5}"#).unwrap();
        assert_eq!((t.ms, t.max_error, t.rejected), (Some(1.5), None, None));
    }
}
