//! Runs one kernel at a time on the GPU, for tests and benchmarks.
//!
//! [`KernelHarness`] compiles the same pipelines the graph runner uses and
//! fills the same uniform parameter structs, picks the same vec4/scalar
//! variant and computes the same dispatch grid, so a kernel checked here is
//! the kernel a forward pass runs. Each call uploads its inputs into fresh
//! buffers, records exactly one dispatch, submits once and reads the output
//! back through a `MAP_READ` staging buffer. Argument shapes are validated on
//! the CPU ([`Error::Input`]); every wgpu error becomes an [`Error`].

use super::choice::{AttentionKernel, GemmKernel};
use super::convert::encode;
use super::options::{GpuOptions, TileChoice};
use super::pipelines::{Forced, Pipelines};
use super::spec::attention::{self, AttentionBinds, AttnParams};
use super::spec::embeddings::{self, EmbParams, EmbeddingsBinds, TableRows};
use super::spec::layernorm::{self, LayerNormBinds, LnParams};
use super::spec::linear::{LinearLaunch, LinearParams, LinearTiledBinds, LinearVariant};
use super::spec::KernelKind;
use super::GpuContext;
use crate::device::DType;
use crate::error::{Error, Result};
use crate::kernels::embeddings::EmbeddingTables;
use crate::kernels::linear::LinearShape;

mod launch;
use launch::{Input, RunShape};

pub use super::spec::attention::MAX_HEAD_DIM;

/// Compiled kernels on a device, run one dispatch at a time.
pub struct KernelHarness {
    ctx: GpuContext,
    pipes: Pipelines,
    forced: Forced,
    linear_out: Option<DType>,
}

/// Seconds per dispatch of `run(n)` (which records n dispatches in one
/// submit): one warm-up call, then the time of 1 + reps dispatches minus
/// that of 1, so uploads and the readback cancel out.
fn time_reps(reps: u32, run: impl Fn(u32) -> Result<Vec<f32>>) -> Result<f64> {
    let reps = reps.max(1);
    run(1)?;
    let t = std::time::Instant::now();
    run(1)?;
    let one = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    run(1 + reps)?;
    let many = t.elapsed().as_secs_f64();
    Ok(((many - one) / reps as f64).max(0.0))
}

/// `a · b · ...` or an input error naming `what` when it overflows.
fn product(dims: &[usize], what: &str) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::input(format!("{what}: size {dims:?} overflows")))
}

/// Errors unless `len == want`.
fn expect_len(what: &str, len: usize, want: usize) -> Result<()> {
    if len == want {
        Ok(())
    } else {
        Err(Error::input(format!(
            "{what} has {len} elements, expected {want}"
        )))
    }
}

impl KernelHarness {
    /// Compiles every kernel on `ctx`, f32 storage.
    pub fn new(ctx: GpuContext) -> Result<Self> {
        Self::with_dtype(ctx, DType::F32)
    }

    /// Compiles every kernel on `ctx` for storage type `dtype`: activations
    /// and weight matrices are converted to it on upload and back to f32 on
    /// readback (biases, γ, β, the mask and ids stay as they are), exactly as
    /// the runner stores them.
    /// Kernel choices and the tuning policy come from the environment, as
    /// for an executor loaded with default options
    /// ([`GpuOptions::from_env`]).
    pub fn with_dtype(ctx: GpuContext, dtype: DType) -> Result<Self> {
        Self::with_options(ctx, &GpuOptions::from_env(dtype)?)
    }

    /// [`Self::with_dtype`] with explicit options (used as given; the
    /// environment is not read).
    pub fn with_options(ctx: GpuContext, opts: &GpuOptions) -> Result<Self> {
        let pipes = Pipelines::new(&ctx, opts.dtype, opts.kernels, opts.tune)?;
        Ok(KernelHarness {
            ctx,
            pipes,
            forced: Forced::default(),
            linear_out: None,
        })
    }

    /// The device context.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Storage type of activations and weight matrices.
    pub fn dtype(&self) -> DType {
        self.pipes.dtype
    }

    /// An input stored in the kernels' storage type.
    fn stored<'a>(&self, label: &'a str, data: &'a [f32]) -> Result<Input<'a>> {
        Ok(Input {
            label,
            bytes: encode(self.pipes.dtype, label, data)?,
        })
    }

    /// Runs every later `linear` call with `kernel` instead of the one the
    /// runner would choose (the tiled kernel still needs k and the row
    /// stride to be multiples of 4; otherwise the register kernel runs).
    pub fn force_gemm(&mut self, kernel: Option<GemmKernel>) {
        self.forced.gemm = kernel;
    }

    /// Runs the tiled and split-k GEMMs of later `linear` calls with tile
    /// kernel `tile` ([`LinearVariant::Tiled`] or
    /// [`LinearVariant::TiledPrefetch`]) instead of the chosen one;
    /// other variants are ignored.
    pub fn force_tile(&mut self, tile: Option<LinearVariant>) {
        self.forced.tile = match tile {
            Some(LinearVariant::Tiled) => Some(TileChoice::Plain),
            Some(LinearVariant::TiledPrefetch) => Some(TileChoice::Prefetch),
            _ => None,
        };
    }

    /// Runs every later `attention` call with `kernel` instead of the one
    /// the runner would choose (the tiled kernel still needs a head size
    /// that is a multiple of 4; otherwise the one-query kernel runs).
    pub fn force_attention(&mut self, kernel: Option<AttentionKernel>) {
        self.forced.attention = kernel;
    }

    /// Runs every later `linear` call with output type `out` (f32 is what the
    /// runner uses for sums that feed a LayerNorm); None: the storage type.
    pub fn linear_output(&mut self, out: Option<DType>) {
        self.linear_out = out;
    }

    /// `linear.wgsl`: `y = act(x · wᵀ + b) + residual`, (m, n), with the
    /// contract of [`crate::kernels::linear::linear`]. The vec4 variant runs
    /// when `k` and `x_row_stride` are multiples of 4, as in the runner.
    pub fn linear(
        &self,
        s: LinearShape,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        residual: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        self.linear_reps(s, x, w, b, residual, 1)
    }

    /// Seconds one `linear.wgsl` dispatch of shape `s` takes: the wall time of
    /// a submit with `1 + reps` dispatches minus that of a submit with one,
    /// over `reps` (upload and readback cancel out).
    pub fn time_linear(
        &self,
        s: LinearShape,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        reps: u32,
    ) -> Result<f64> {
        time_reps(reps, |n| self.linear_reps(s, x, w, b, None, n))
    }

    /// The launch a `linear` call of this shape gets (forced or chosen as
    /// the runner would).
    fn linear_plan(&self, m: usize, n: usize, k: usize, x_row_stride: usize) -> LinearLaunch {
        let out = self.linear_out.unwrap_or(self.pipes.dtype);
        self.pipes
            .linear_launch(&self.ctx, self.forced, out, m, n, k, x_row_stride)
    }

    /// The GEMM pipeline a `linear` call of this shape runs (the first
    /// dispatch; split-k adds a reduce pass).
    pub fn linear_pipeline(&self, m: usize, n: usize, k: usize, x_row_stride: usize) -> KernelKind {
        self.linear_plan(m, n, k, x_row_stride).kind
    }

    fn linear_reps(
        &self,
        s: LinearShape,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        residual: Option<&[f32]>,
        reps: u32,
    ) -> Result<Vec<f32>> {
        let LinearShape {
            m,
            n,
            k,
            x_row_stride,
            ..
        } = s;
        if x_row_stride < k {
            return Err(Error::input(format!(
                "linear: x_row_stride {x_row_stride} < k {k}"
            )));
        }
        if m > 0 {
            let need = product(&[m - 1, x_row_stride], "linear x")?
                .checked_add(k)
                .ok_or_else(|| Error::input("linear x: size overflows"))?;
            if x.len() < need {
                return Err(Error::input(format!(
                    "linear: x has {} elements, needs at least {need} (m {m}, k {k}, x_row_stride {x_row_stride})",
                    x.len()
                )));
            }
        }
        expect_len("linear w (n, k)", w.len(), product(&[n, k], "linear w")?)?;
        expect_len("linear b (n)", b.len(), n)?;
        let out_len = product(&[m, n], "linear y")?;
        if let Some(r) = residual {
            expect_len("linear residual (m, n)", r.len(), out_len)?;
        }
        let launch = self.linear_plan(m, n, k, x_row_stride);
        let out = self.linear_out.unwrap_or(self.pipes.dtype);
        let p = LinearParams::new(&s, residual.is_some(), &launch)?;
        if out_len == 0 {
            return Ok(Vec::new());
        }
        let dummy = [0.0f32; 4];
        let r = residual.unwrap_or(&dummy);
        let inputs = [
            self.stored("x", x)?,
            self.stored("w", w)?,
            Input {
                label: "b",
                bytes: encode(DType::F32, "b", b)?,
            },
            self.stored("residual", r)?,
        ];
        let shape = RunShape {
            out: (out_len, out),
            scratch_bytes: launch.partial_elems(m, n) as u64 * 4,
            params: bytemuck::bytes_of(&p),
            reps,
        };
        self.execute("linear", &inputs, shape, |bufs| {
            launch.launches(&LinearTiledBinds {
                x: &bufs.inputs[0],
                w: &bufs.inputs[1],
                b: &bufs.inputs[2],
                r: &bufs.inputs[3],
                y: &bufs.out,
                p: &bufs.params,
                part: &bufs.scratch,
            })
        })
    }

    /// `attention.wgsl` with the contract of
    /// [`crate::kernels::attention::attention`]: `qkv` is
    /// (batch·seq, 3·hidden), `mask_add` (batch·seq); returns
    /// (batch·seq, hidden). The kernel and its vec4 or scalar variant are
    /// chosen as in the runner (or forced, [`Self::force_attention`]).
    pub fn attention(
        &self,
        qkv: &[f32],
        mask_add: &[f32],
        batch: usize,
        seq: usize,
        heads: usize,
        hidden: usize,
    ) -> Result<Vec<f32>> {
        self.attention_reps(qkv, mask_add, [batch, seq, heads, hidden], 1)
    }

    /// Seconds per `attention` dispatch (one warm-up call, then `reps`
    /// dispatches in one submit minus one), as [`Self::time_linear`].
    #[allow(clippy::too_many_arguments)]
    pub fn time_attention(
        &self,
        qkv: &[f32],
        mask_add: &[f32],
        batch: usize,
        seq: usize,
        heads: usize,
        hidden: usize,
        reps: u32,
    ) -> Result<f64> {
        let shape = [batch, seq, heads, hidden];
        time_reps(reps, |n| self.attention_reps(qkv, mask_add, shape, n))
    }

    fn attention_reps(
        &self,
        qkv: &[f32],
        mask_add: &[f32],
        [batch, seq, heads, hidden]: [usize; 4],
        reps: u32,
    ) -> Result<Vec<f32>> {
        if heads == 0 || hidden == 0 || hidden % heads != 0 {
            return Err(Error::input(format!(
                "attention: hidden {hidden} is not a positive multiple of heads {heads}"
            )));
        }
        let d = hidden / heads;
        if d > MAX_HEAD_DIM {
            return Err(Error::Unsupported(format!(
                "attention head size {d} (the GPU kernel supports up to {MAX_HEAD_DIM})"
            )));
        }
        let tokens = product(&[batch, seq], "attention tokens")?;
        expect_len(
            "attention qkv (batch·seq, 3·hidden)",
            qkv.len(),
            product(&[tokens, 3, hidden], "attention qkv")?,
        )?;
        expect_len("attention mask (batch·seq)", mask_add.len(), tokens)?;
        let out_len = product(&[tokens, hidden], "attention out")?;
        let p = AttnParams::new(batch, seq, heads, d)?;
        if out_len == 0 {
            return Ok(Vec::new());
        }
        let inputs = [
            self.stored("qkv", qkv)?,
            Input {
                label: "mask",
                bytes: encode(DType::F32, "mask", mask_add)?,
            },
        ];
        let shape = RunShape {
            out: (out_len, self.pipes.dtype),
            scratch_bytes: 0,
            params: bytemuck::bytes_of(&p),
            reps,
        };
        self.execute("attention", &inputs, shape, |bufs| {
            let binds = AttentionBinds {
                qkv: &bufs.inputs[0],
                mask: &bufs.inputs[1],
                out: &bufs.out,
                p: &bufs.params,
            };
            let dims = [batch, seq, heads, d];
            let kernel = self.pipes.attention_kernel(&self.ctx, self.forced, d);
            vec![attention::launch(kernel, dims, &binds)]
        })
    }

    /// `layernorm.wgsl`: `LN(x + residual) · γ + β` per row, with the
    /// contract of [`crate::kernels::layernorm::layer_norm`]; the row length
    /// is `gamma.len()`.
    pub fn layer_norm(
        &self,
        x: &[f32],
        residual: Option<&[f32]>,
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) -> Result<Vec<f32>> {
        let cols = gamma.len();
        if cols == 0 {
            return Err(Error::input("layer_norm: gamma is empty"));
        }
        expect_len("layer_norm beta (cols)", beta.len(), cols)?;
        if x.len() % cols != 0 {
            return Err(Error::input(format!(
                "layer_norm: x has {} elements, not a multiple of cols {cols}",
                x.len()
            )));
        }
        if let Some(r) = residual {
            expect_len("layer_norm residual (rows, cols)", r.len(), x.len())?;
        }
        let rows = x.len() / cols;
        let p = LnParams::new(rows, cols, eps, residual.is_some())?;
        if rows == 0 {
            return Ok(Vec::new());
        }
        let dummy = [0.0f32; 4];
        let r = residual.unwrap_or(&dummy);
        let f32_input = |label, data| -> Result<Input> {
            Ok(Input {
                label,
                bytes: encode(DType::F32, label, data)?,
            })
        };
        let inputs = [
            f32_input("x", x)?,
            f32_input("residual", r)?,
            f32_input("gamma", gamma)?,
            f32_input("beta", beta)?,
        ];
        let shape = RunShape {
            out: (x.len(), self.pipes.dtype),
            scratch_bytes: 0,
            params: bytemuck::bytes_of(&p),
            reps: 1,
        };
        self.execute("layer_norm", &inputs, shape, |bufs| {
            let binds = LayerNormBinds {
                x: &bufs.inputs[0],
                r: &bufs.inputs[1],
                gamma: &bufs.inputs[2],
                beta: &bufs.inputs[3],
                out: &bufs.out,
                p: &bufs.params,
            };
            vec![layernorm::launch(rows, &binds)]
        })
    }

    /// `embeddings.wgsl` with the contract of
    /// [`crate::kernels::embeddings::embeddings`]: `ids`, `types`,
    /// `positions` are (batch, seq) flattened; returns (batch·seq, hidden).
    /// hidden is `gamma.len()`; vocab, max_pos and type_vocab are the table
    /// lengths divided by hidden. Ids, types and positions are checked
    /// against them.
    pub fn embeddings(
        &self,
        tables: &EmbeddingTables,
        ids: &[u32],
        types: &[u32],
        positions: &[u32],
        seq: usize,
    ) -> Result<Vec<f32>> {
        let hidden = tables.gamma.len();
        if hidden == 0 {
            return Err(Error::input("embeddings: gamma is empty"));
        }
        expect_len("embeddings beta (hidden)", tables.beta.len(), hidden)?;
        let rows_of = |what: &str, len: usize| -> Result<usize> {
            if len == 0 || len % hidden != 0 {
                return Err(Error::input(format!(
                    "embeddings: {what} has {len} elements, not a positive multiple of hidden {hidden}"
                )));
            }
            Ok(len / hidden)
        };
        let vocab = rows_of("word table", tables.word.len())?;
        let max_pos = rows_of("position table", tables.position.len())?;
        let type_vocab = rows_of("token type table", tables.token_type.len())?;
        expect_len("embeddings types (batch·seq)", types.len(), ids.len())?;
        expect_len(
            "embeddings positions (batch·seq)",
            positions.len(),
            ids.len(),
        )?;
        if seq == 0 || ids.len() % seq != 0 {
            return Err(Error::input(format!(
                "embeddings: {} ids are not (batch, seq) with seq {seq}",
                ids.len()
            )));
        }
        if let Some((i, pos)) = positions
            .iter()
            .enumerate()
            .find(|(_, &v)| v as usize >= max_pos)
        {
            return Err(Error::input(format!(
                "embeddings: position {pos} at {i} is outside the position table ({max_pos})"
            )));
        }
        if let Some((i, id)) = ids.iter().enumerate().find(|(_, &v)| v as usize >= vocab) {
            return Err(Error::input(format!(
                "embeddings: id {id} at {i} is outside the vocabulary ({vocab})"
            )));
        }
        if let Some((i, ty)) = types
            .iter()
            .enumerate()
            .find(|(_, &v)| v as usize >= type_vocab)
        {
            return Err(Error::input(format!(
                "embeddings: token type {ty} at {i} is outside 0..{type_vocab}"
            )));
        }
        let tokens = ids.len();
        let out_len = product(&[tokens, hidden], "embeddings out")?;
        let rows = TableRows {
            vocab,
            max_pos,
            type_vocab,
        };
        let p = EmbParams::new(tokens, seq, hidden, tables.eps, rows)?;
        if tokens == 0 {
            return Ok(Vec::new());
        }
        let inputs = [
            Input {
                label: "ids",
                bytes: bytemuck::cast_slice(ids).into(),
            },
            Input {
                label: "types",
                bytes: bytemuck::cast_slice(types).into(),
            },
            Input {
                label: "positions",
                bytes: bytemuck::cast_slice(positions).into(),
            },
            self.stored("word", tables.word)?,
            self.stored("position", tables.position)?,
            self.stored("token_type", tables.token_type)?,
            Input {
                label: "gamma",
                bytes: encode(DType::F32, "gamma", tables.gamma)?,
            },
            Input {
                label: "beta",
                bytes: encode(DType::F32, "beta", tables.beta)?,
            },
        ];
        let shape = RunShape {
            out: (out_len, self.pipes.dtype),
            scratch_bytes: 0,
            params: bytemuck::bytes_of(&p),
            reps: 1,
        };
        self.execute("embeddings", &inputs, shape, |bufs| {
            let b = &bufs.inputs;
            let binds = EmbeddingsBinds {
                ids: &b[0],
                types: &b[1],
                positions: &b[2],
                word: &b[3],
                position: &b[4],
                token_type: &b[5],
                gamma: &b[6],
                beta: &b[7],
                out: &bufs.out,
                p: &bufs.params,
            };
            vec![embeddings::launch(tokens, &binds)]
        })
    }
}
