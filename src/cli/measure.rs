//! The measuring subcommands: `bench`, `tune`, `selfcheck`, `info`.

use bert_wgpu::{DType, Device, Head, Model};
use clap::Args;

use crate::{load, ModelArgs};

/// `bert-wgpu bench`.
#[derive(Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// A random model of a known shape instead of --model: bert-tiny,
    /// minilm-l6, bert-base, bert-large.
    #[arg(long)]
    pub(crate) config: Option<String>,
    /// Sequences per forward.
    #[arg(long, default_value_t = 1)]
    pub(crate) batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub(crate) seq: usize,
    /// Untimed forwards first.
    #[arg(long, default_value_t = 2)]
    pub(crate) warmup: usize,
    /// Timed forwards.
    #[arg(long, default_value_t = 10)]
    pub(crate) iters: usize,
    /// One JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Time the GEMM kernel alone over BERT's projection shapes
    /// (batch · seq rows) instead of whole forwards.
    #[arg(long)]
    pub(crate) gemm: bool,
    /// Per-kernel GPU time from timestamp queries (GPU with
    /// TIMESTAMP_QUERY_INSIDE_PASSES only).
    #[arg(long)]
    pub(crate) profile: bool,
}

/// `bert-wgpu tune`.
#[derive(Args)]
pub(crate) struct TuneArgs {
    /// Model shape: bert-tiny, minilm-l6, bert-base, bert-large.
    #[arg(long, default_value = "bert-base")]
    pub(crate) config: String,
    /// Storage type (f32, f16).
    #[arg(long, default_value = "f32")]
    pub(crate) dtype: String,
    /// Sequences for the large-batch timings.
    #[arg(long, default_value_t = 32)]
    pub(crate) batch: usize,
    /// Tokens per sequence (also the rows of the small-batch GEMMs).
    #[arg(long, default_value_t = 128)]
    pub(crate) seq: usize,
    /// Dispatches per timing.
    #[arg(long, default_value_t = 10)]
    pub(crate) iters: u32,
    /// Print the choices without writing the file.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `bert-wgpu selfcheck`.
#[derive(Args)]
pub(crate) struct SelfcheckArgs {
    /// Model shape: bert-tiny, minilm-l6, bert-base, bert-large.
    #[arg(long, default_value = "bert-tiny")]
    pub(crate) config: String,
    /// Sequences.
    #[arg(long, default_value_t = 3)]
    pub(crate) batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 33)]
    pub(crate) seq: usize,
    /// Storage type on the GPU (f16: the f16 tolerance, 1e-2 + 1e-2·|cpu|).
    #[arg(long, default_value = "f32")]
    pub(crate) dtype: String,
}

pub(crate) fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs {
        model,
        config,
        batch,
        seq,
        warmup,
        iters,
        json,
        gemm,
        profile,
    } = args;
    if gemm {
        let cfg = match &config {
            Some(name) => bert_wgpu::bench::preset(name)?,
            None => load(&model, Some(Head::Base))?.config().clone(),
        };
        let device: Device = model.device.parse()?;
        let dtype: DType = model.dtype.parse()?;
        let rows = bert_wgpu::bench::gemm_table(&cfg, batch * seq, device, dtype, iters as u32)?;
        for r in rows {
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{:<18} m {:>6} n {:>5} k {:>5}  {:>9.3} ms  {:>8.1} GFLOP/s  {}",
                    r.name, r.m, r.n, r.k, r.ms, r.gflops, r.kernel
                );
            }
        }
        return Ok(());
    }
    let dtype: DType = model.dtype.parse()?;
    let build = |dtype: DType| -> anyhow::Result<Model> {
        Ok(match &config {
            Some(name) => {
                let cfg = bert_wgpu::bench::preset(name)?;
                bert_wgpu::bench::random_model(&cfg, model.device.parse()?, dtype)?
            }
            None => load(
                &ModelArgs {
                    dtype: dtype.to_string(),
                    ..model.clone()
                },
                Some(Head::Base),
            )?,
        })
    };
    let t = std::time::Instant::now();
    let m = build(dtype)?;
    let load_s = t.elapsed().as_secs_f64();
    let mut r = bert_wgpu::bench::run(&m, load_s, batch, seq, warmup, iters)?;
    if m.dtype() != DType::F32 {
        let reference = build(DType::F32)?;
        r.max_abs_diff_vs_f32 = Some(bert_wgpu::bench::compare_dtypes(
            &m, &reference, batch, seq,
        )?);
    }
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("device      {} ({})", r.device, r.dtype);
        println!(
            "shape       batch {} × seq {} ({} timed forwards, load {:.2} s)",
            r.batch, r.seq, r.iters, r.load_s
        );
        println!(
            "forward     median {:.2} ms  min {:.2} ms  max {:.2} ms",
            r.median_ms, r.min_ms, r.max_ms
        );
        println!(
            "throughput  {:.0} tokens/s  {:.1} GFLOP/s",
            r.tokens_per_s, r.gflops
        );
        if let (Some(s), Some(rb)) = (r.submits_per_forward, r.readbacks_per_forward) {
            println!("per forward {s} submits, {rb} readbacks");
        }
        if let (Some(rec), Some(wait)) = (r.record_ms, r.wait_ms) {
            println!(
                "host        {rec:.3} ms to record and submit, {wait:.3} ms waiting for the GPU and the readback (means)"
            );
        }
        if let (Some(b), Some(gbs), Some(held)) =
            (r.weight_bytes, r.upload_gb_per_s, r.gpu_buffer_bytes)
        {
            println!(
                "gpu memory  weights {:.1} MB uploaded at {gbs:.2} GB/s; {:.1} MB of buffers held",
                b as f64 / 1e6,
                held as f64 / 1e6
            );
        }
        if let Some(d) = r.max_abs_diff_vs_f32 {
            println!("vs f32      max |hidden state difference| {d:.3e}");
        }
    }
    if profile {
        let gpu = m
            .gpu()
            .ok_or_else(|| anyhow::anyhow!("--profile needs the GPU executor (--device gpu)"))?;
        let enc = bert_wgpu::bench::random_encoding(m.config(), batch, seq);
        let steps = gpu.profile(&enc)?;
        let total: f64 = steps.iter().map(|s| s.ms).sum();
        let mut families: Vec<(&str, f64)> = Vec::new();
        for s in &steps {
            match families.iter_mut().find(|(k, _)| *k == s.kernel()) {
                Some(e) => e.1 += s.ms,
                None => families.push((s.kernel(), s.ms)),
            }
        }
        println!(
            "profile     {total:.2} ms GPU time in {} dispatches",
            steps.len()
        );
        for (k, ms) in &families {
            println!(
                "  {k:<12} {ms:>9.2} ms  {:>5.1}%",
                100.0 * ms / total.max(1e-12)
            );
        }
        // Which variant ran (the env-selected kernels fall back
        // silently where an adapter cannot run them).
        let mut pipelines: Vec<(String, f64, usize)> = Vec::new();
        for s in &steps {
            let name = format!("{:?}", s.pipeline);
            match pipelines.iter_mut().find(|(k, _, _)| *k == name) {
                Some(e) => {
                    e.1 += s.ms;
                    e.2 += 1;
                }
                None => pipelines.push((name, s.ms, 1)),
            }
        }
        println!("by pipeline");
        for (k, ms, n) in &pipelines {
            println!(
                "  {k:<28} {ms:>9.2} ms  {:>5.1}%  ({n} dispatches)",
                100.0 * ms / total.max(1e-12)
            );
        }
    }
    Ok(())
}

pub(crate) fn selfcheck(args: SelfcheckArgs) -> anyhow::Result<()> {
    let SelfcheckArgs {
        config,
        batch,
        seq,
        dtype,
    } = args;
    let cfg = bert_wgpu::bench::preset(&config)?;
    let dtype: DType = dtype.parse()?;
    let (max_abs, excess) = bert_wgpu::bench::selfcheck(&cfg, Device::Gpu, dtype, batch, seq)?;
    let (atol, rtol) = bert_wgpu::bench::selfcheck_tolerance(dtype);
    println!("selfcheck {config} {dtype} batch {batch} seq {seq}: max |gpu - cpu| = {max_abs:.3e}");
    if excess > 0.0 {
        anyhow::bail!(
            "GPU and CPU differ beyond atol {atol:e} + rtol {rtol:e} (max |diff| {max_abs:.3e})"
        );
    }
    println!("ok: within atol {atol:e} + rtol {rtol:e}");
    Ok(())
}

pub(crate) fn tune(args: TuneArgs) -> anyhow::Result<()> {
    let TuneArgs {
        config,
        dtype,
        batch,
        seq,
        iters,
        dry_run,
    } = args;
    let cfg = bert_wgpu::bench::preset(&config)?;
    let dtype: DType = dtype.parse()?;
    let ctx = bert_wgpu::gpu::GpuContext::new(true)?;
    let t = bert_wgpu::gpu::tune::measure(ctx.sibling()?, &cfg, &config, dtype, batch, seq, iters)?;
    println!("adapter     {}", t.adapter);
    println!("measured on {} ({})", t.measured_on, t.dtype);
    for x in &t.times {
        let checked = x
            .max_error
            .map_or_else(String::new, |e| format!("  (max |gpu - cpu| {e:.1e})"));
        match (&x.rejected, x.ms) {
            (Some(why), _) => println!("  {:<11} {:<9} rejected: {why}", x.decision, x.variant),
            (None, Some(ms)) => println!(
                "  {:<11} {:<9} {ms:>10.3} ms{checked}",
                x.decision, x.variant
            ),
            (None, None) => println!("  {:<11} {:<9} not timed", x.decision, x.variant),
        }
    }
    println!(
        "choices     gemm_large {}  gemm_small {}  tile {}  attention {}",
        t.gemm_large, t.gemm_small, t.tile, t.attention
    );
    if dry_run {
        println!("(--dry-run: not saved)");
    } else {
        let path = t.save(&ctx, dtype)?;
        println!("saved       {}", path.display());
    }
    Ok(())
}

pub(crate) fn info() -> anyhow::Result<()> {
    let adapters = bert_wgpu::gpu::list_adapters();
    if adapters.is_empty() {
        println!(
            "no GPU adapters found (on Linux without a GPU: apt-get install mesa-vulkan-drivers)"
        );
    }
    for (i, a) in adapters.iter().enumerate() {
        let inf = &a.info;
        println!("adapter {i}: {}", inf.name);
        println!(
            "  backend: {:?}  type: {:?}  driver: {} {}",
            inf.backend, inf.device_type, inf.driver, inf.driver_info
        );
        println!("  features: {:?}", a.features);
        let l = &a.limits;
        println!(
            "  limits: max_storage_buffer_binding_size {}  max_buffer_size {}  max_compute_workgroup_storage_size {}  max_compute_invocations_per_workgroup {}  max_compute_workgroups_per_dimension {}",
            l.max_storage_buffer_binding_size, l.max_buffer_size, l.max_compute_workgroup_storage_size,
            l.max_compute_invocations_per_workgroup, l.max_compute_workgroups_per_dimension
        );
        match a.coop {
            Some(c) => println!(
                "  cooperative matrices: {0}×{0} f16 · f16 + f32, subgroup size {1} (BERT_WGPU_GEMM=coop with --dtype f16)",
                c.frag, c.subgroup
            ),
            None => println!("  cooperative matrices: none usable"),
        }
    }
    match bert_wgpu::gpu::GpuContext::new(false) {
        Ok(c) => println!("--device auto would use: {}", c.describe()),
        Err(_) => println!("--device auto would use: the CPU executor (no hardware GPU)"),
    }
    if let Ok(c) = bert_wgpu::gpu::GpuContext::new(true) {
        println!("--device gpu would use: {}", c.describe());
        kernel_choices(&c);
    }
    Ok(())
}

/// Where `ctx`'s kernel choices come from, per storage type.
fn kernel_choices(ctx: &bert_wgpu::gpu::GpuContext) {
    use bert_wgpu::gpu::tune::{self, Tuning};
    let policy = match crate::cli_tune_policy() {
        Ok(p) => p,
        Err(e) => {
            println!("  kernel choices: {e}");
            return;
        }
    };
    for dtype in [DType::F32, DType::F16] {
        if dtype == DType::F16 && !ctx.features.contains(wgpu::Features::SHADER_F16) {
            continue;
        }
        let path = tune::tune_path(ctx, dtype);
        match policy.reads().then(|| Tuning::load(ctx, dtype)).flatten() {
            Some(t) => println!(
                "  kernel choices ({dtype}): gemm_large {}  gemm_small {}  tile {}  attention {}  (measured on {}; {})",
                t.gemm_large, t.gemm_small, t.tile, t.attention, t.measured_on, path.display()
            ),
            None if tune::tunes_at_first_use(ctx, policy) => println!(
                "  kernel choices ({dtype}): none saved yet; the first model loaded measures them ({})",
                path.display()
            ),
            None => println!(
                "  kernel choices ({dtype}): built-in (BERT_WGPU_TUNE=off, or a software adapter; `bert-wgpu tune` measures them)"
            ),
        }
    }
}
