//! Kernel choices and the tuning policy as typed options. Each is resolved
//! once, when an executor (or harness) is made: the [`crate::LoadOptions`]
//! field, else its `BERT_WGPU_*` variable, else (for kernel choices) the
//! adapter's tuning file, else the built-in default. A variable set to a
//! value that is not one of its own is an [`Error::Setting`] naming it and
//! the values it takes, not a silently ignored typo.

use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

/// Declares a choice enum with the names the variables and tuning files use.
macro_rules! choice {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order the help text lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name a variable or tuning file uses.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The accepted names, `a|b|c`.
            pub fn allowed() -> String {
                Self::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join("|")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name() == s.trim())
                    .ok_or_else(|| Error::Setting {
                        name: stringify!($name).into(),
                        value: s.into(),
                        allowed: Self::allowed(),
                    })
            }
        }
    };
}

choice! {
    /// The GEMM of linear layers (`BERT_WGPU_GEMM`).
    GemmChoice {
        /// By size and adapter: tiled on hardware GPUs for large GEMMs,
        /// else register.
        Auto = "auto",
        /// `linear.wgsl` everywhere.
        Register = "register",
        /// `linear_tiled.wgsl` wherever k and the row stride allow.
        Tiled = "tiled",
        /// Tiled with k split across workgroups.
        SplitK = "splitk",
        /// Cooperative matrices (f16 storage on an adapter that has them).
        Coop = "coop",
    }
}

choice! {
    /// The 128 × 128 tile kernel of tiled and split-k GEMMs
    /// (`BERT_WGPU_GEMM_TILE`).
    TileChoice {
        /// `linear_tiled.wgsl`.
        Plain = "plain",
        /// `linear_tiled_prefetch.wgsl`.
        Prefetch = "prefetch",
    }
}

choice! {
    /// The self-attention kernel (`BERT_WGPU_ATTENTION`).
    AttentionChoice {
        /// `attention.wgsl`, one query per invocation.
        Query = "query",
        /// `attention_tiled.wgsl` where the head size and workgroup memory
        /// allow.
        Tiled = "tiled",
    }
}

choice! {
    /// Whether kernel choices come from a measurement (`BERT_WGPU_TUNE`).
    TunePolicy {
        /// Neither read a tuning file nor measure: built-in choices.
        Off = "off",
        /// Read the adapter's tuning file when there is one (the library's
        /// default: loading a model never measures or writes files).
        Read = "read",
        /// Read it, and when there is none on a hardware adapter, measure
        /// once and write it (what the CLI does).
        FirstUse = "first-use",
        /// [`TunePolicy::FirstUse`] on every adapter, software ones too.
        Auto = "auto",
    }
}

/// Kernel choices; None leaves a choice to the tuning file, then the
/// built-in default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelChoices {
    /// The GEMM (`BERT_WGPU_GEMM`).
    pub gemm: Option<GemmChoice>,
    /// The tile kernel (`BERT_WGPU_GEMM_TILE`).
    pub tile: Option<TileChoice>,
    /// The attention kernel (`BERT_WGPU_ATTENTION`).
    pub attention: Option<AttentionChoice>,
    /// Split-k's number of k splits, ≥ 1 (`BERT_WGPU_SPLITK`, for measuring).
    pub splitk: Option<usize>,
    /// Workgroup shape of `linear.wgsl`, powers of two with x·y ≤ 256
    /// (`BERT_WGPU_LINEAR_WG=XxY`, for tuning).
    pub linear_wg: Option<(u32, u32)>,
}

/// Reads the process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `name`'s value parsed by `parse`, None when unset; a value `parse`
/// refuses is an [`Error::Setting`] naming `name` and `allowed`.
fn from_env<T>(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
    allowed: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>> {
    let Some(value) = env(name) else {
        return Ok(None);
    };
    parse(value.trim()).map(Some).ok_or_else(|| Error::Setting {
        name: name.into(),
        value,
        allowed: allowed.into(),
    })
}

fn parse_wg(v: &str) -> Option<(u32, u32)> {
    let (x, y) = v.split_once('x')?;
    let (x, y): (u32, u32) = (x.trim().parse().ok()?, y.trim().parse().ok()?);
    (x.is_power_of_two() && y.is_power_of_two() && x * y <= 256).then_some((x, y))
}

impl KernelChoices {
    /// These choices, each one not set filled from its variable in `env`
    /// (pass [`process_env`] for the process's).
    pub fn with_env(self, env: &dyn Fn(&str) -> Option<String>) -> Result<KernelChoices> {
        if let Some((x, y)) = self.linear_wg {
            if parse_wg(&format!("{x}x{y}")).is_none() {
                return Err(Error::Setting {
                    name: "KernelChoices::linear_wg".into(),
                    value: format!("{x}x{y}"),
                    allowed: "XxY, powers of two with X·Y ≤ 256".into(),
                });
            }
        }
        if self.splitk == Some(0) {
            return Err(Error::Setting {
                name: "KernelChoices::splitk".into(),
                value: "0".into(),
                allowed: "a number of splits ≥ 1".into(),
            });
        }
        Ok(KernelChoices {
            gemm: match self.gemm {
                Some(v) => Some(v),
                None => from_env(env, "BERT_WGPU_GEMM", &GemmChoice::allowed(), |v| {
                    v.parse().ok()
                })?,
            },
            tile: match self.tile {
                Some(v) => Some(v),
                None => from_env(env, "BERT_WGPU_GEMM_TILE", &TileChoice::allowed(), |v| {
                    v.parse().ok()
                })?,
            },
            attention: match self.attention {
                Some(v) => Some(v),
                None => from_env(
                    env,
                    "BERT_WGPU_ATTENTION",
                    &AttentionChoice::allowed(),
                    |v| v.parse().ok(),
                )?,
            },
            splitk: match self.splitk {
                Some(v) => Some(v),
                None => from_env(env, "BERT_WGPU_SPLITK", "a number of splits ≥ 1", |v| {
                    v.parse().ok().filter(|&n: &usize| n >= 1)
                })?,
            },
            linear_wg: match self.linear_wg {
                Some(v) => Some(v),
                None => from_env(
                    env,
                    "BERT_WGPU_LINEAR_WG",
                    "XxY, powers of two with X·Y ≤ 256",
                    parse_wg,
                )?,
            },
        })
    }
}

impl TunePolicy {
    /// `given`, else `BERT_WGPU_TUNE` in `env`, else `default`.
    pub fn resolve(
        given: Option<TunePolicy>,
        env: &dyn Fn(&str) -> Option<String>,
        default: TunePolicy,
    ) -> Result<TunePolicy> {
        if let Some(p) = given {
            return Ok(p);
        }
        let allowed = TunePolicy::allowed();
        Ok(from_env(env, "BERT_WGPU_TUNE", &allowed, |v| v.parse().ok())?.unwrap_or(default))
    }

    /// Whether the adapter's tuning file is read.
    pub fn reads(self) -> bool {
        self != TunePolicy::Off
    }
}

/// `given`, else `BERT_WGPU_TIMEOUT_SECS` (seconds, > 0) in `env`, else
/// `default`: how long a GPU wait may take before it is an error.
pub fn resolve_timeout(
    given: Option<Duration>,
    env: &dyn Fn(&str) -> Option<String>,
    default: Duration,
) -> Result<Duration> {
    if let Some(t) = given {
        if t.is_zero() {
            return Err(Error::Setting {
                name: "LoadOptions::timeout".into(),
                value: "0 s".into(),
                allowed: "a positive duration".into(),
            });
        }
        return Ok(t);
    }
    let t = from_env(
        env,
        "BERT_WGPU_TIMEOUT_SECS",
        "a positive number of seconds",
        |v| {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
        },
    )?;
    Ok(t.unwrap_or(default))
}

/// How a GPU executor is made: the storage type, kernel choices, tuning
/// policy and progress display, as [`crate::LoadOptions`] gives them.
#[derive(Debug, Clone, Copy)]
pub struct GpuOptions {
    /// Storage type of weights and activations.
    pub dtype: crate::device::DType,
    /// Kernel choices (env already applied, or not: [`Self::resolve`]).
    pub kernels: KernelChoices,
    /// Tuning policy.
    pub tune: TunePolicy,
    /// Draw a progress bar for the upload (and a first-use tune).
    pub progress: bool,
}

impl GpuOptions {
    /// `kernels` and `tune` with the process environment applied to what
    /// they leave open (`tune` defaults to [`TunePolicy::Read`]).
    pub fn resolve(
        dtype: crate::device::DType,
        kernels: KernelChoices,
        tune: Option<TunePolicy>,
        progress: bool,
    ) -> Result<GpuOptions> {
        Ok(GpuOptions {
            dtype,
            kernels: kernels.with_env(&process_env)?,
            tune: TunePolicy::resolve(tune, &process_env, TunePolicy::Read)?,
            progress,
        })
    }

    /// Options for `dtype` from the process environment alone.
    pub fn from_env(dtype: crate::device::DType) -> Result<GpuOptions> {
        Self::resolve(dtype, KernelChoices::default(), None, false)
    }
}
