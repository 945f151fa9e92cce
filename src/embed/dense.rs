//! sentence-transformers' `Dense` module: `act(W·x + b)` (plus a residual
//! when `use_residual`), applied to each sentence vector. Small (a few
//! hundred × a few hundred), so it runs on the host after pooling.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};

/// The activation after a `Dense` layer (`activation_function`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseActivation {
    /// `torch.nn.Identity`.
    Identity,
    /// `torch.nn.Tanh` (sentence-transformers' default).
    Tanh,
    /// `torch.nn.ReLU`.
    Relu,
    /// `torch.nn.GELU` (exact erf form).
    Gelu,
    /// `torch.nn.Sigmoid`.
    Sigmoid,
    /// `torch.nn.SiLU`.
    Silu,
}

impl DenseActivation {
    /// From the class path sentence-transformers stores, e.g.
    /// `torch.nn.modules.activation.Tanh`. A path outside `torch.` is what
    /// sentence-transformers refuses without `trust_remote_code`: it falls
    /// back to Tanh with a warning, and so do we.
    pub fn from_class_path(path: &str, config: &Path) -> Result<Self> {
        if !path.starts_with("torch.") {
            log::warn!(
                "{}: activation_function `{path}` is not a torch class; using Tanh, as sentence-transformers does without trust_remote_code",
                config.display()
            );
            return Ok(DenseActivation::Tanh);
        }
        let class = path.rsplit('.').next().unwrap_or(path);
        Ok(match class {
            "Identity" => DenseActivation::Identity,
            "Tanh" => DenseActivation::Tanh,
            "ReLU" => DenseActivation::Relu,
            "GELU" => DenseActivation::Gelu,
            "Sigmoid" => DenseActivation::Sigmoid,
            "SiLU" => DenseActivation::Silu,
            _ => {
                return Err(Error::Config {
                    path: config.to_path_buf(),
                    message: format!(
                        "activation_function `{path}` is not supported (Identity, Tanh, ReLU, GELU, Sigmoid, SiLU are)"
                    ),
                })
            }
        })
    }

    /// The activation of one f32 value (computed in f64, rounded once).
    pub fn apply_f32(self, x: f32) -> f32 {
        self.apply(f64::from(x)) as f32
    }

    fn apply(self, x: f64) -> f64 {
        match self {
            DenseActivation::Identity => x,
            DenseActivation::Tanh => x.tanh(),
            DenseActivation::Relu => x.max(0.0),
            DenseActivation::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
            DenseActivation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            DenseActivation::Silu => x / (1.0 + (-x).exp()),
        }
    }
}

/// One `Dense` module with its weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Input width.
    pub in_features: usize,
    /// Output width.
    pub out_features: usize,
    /// (out, in) row-major, `linear.weight`.
    pub weight: Vec<f32>,
    /// (out), `linear.bias`; empty without bias.
    pub bias: Vec<f32>,
    /// The activation.
    pub activation: DenseActivation,
    /// `use_residual`: `x` (or `residual.weight · x` when the widths
    /// differ, (out, in)) added after the activation.
    pub residual: Option<Vec<f32>>,
}

fn usize_field(cfg: &Value, key: &str, path: &Path) -> Result<usize> {
    cfg.get(key)
        .and_then(Value::as_u64)
        .filter(|&n| n > 0)
        .map(|n| n as usize)
        .ok_or_else(|| Error::Config {
            path: path.to_path_buf(),
            message: format!("`{key}` must be a positive integer"),
        })
}

impl Dense {
    /// Reads `config.json` of a `Dense` module and its weights (the files
    /// [`crate::source::Repo::weight_files`] found; `None` when there are none).
    pub fn load(config_path: &Path, cfg: &Value, weights: Option<&[PathBuf]>) -> Result<Self> {
        let in_features = usize_field(cfg, "in_features", config_path)?;
        let out_features = usize_field(cfg, "out_features", config_path)?;
        let bias = cfg.get("bias").and_then(Value::as_bool).unwrap_or(true);
        for key in ["module_input_name", "module_output_name"] {
            if let Some(name) = cfg.get(key).and_then(Value::as_str) {
                if name != "sentence_embedding" {
                    return Err(Error::Unsupported(format!(
                        "{}: Dense {key} `{name}` (only sentence_embedding → sentence_embedding is supported)",
                        config_path.display()
                    )));
                }
            }
        }
        let activation = match cfg.get("activation_function") {
            None | Some(Value::Null) => DenseActivation::Tanh,
            Some(Value::String(s)) => DenseActivation::from_class_path(s, config_path)?,
            Some(other) => {
                return Err(Error::Config {
                    path: config_path.to_path_buf(),
                    message: format!("`activation_function` must be a string, got {other}"),
                })
            }
        };
        let use_residual = cfg
            .get("use_residual")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let dir = config_path.parent().unwrap_or(Path::new("."));
        let weights = weights.ok_or_else(|| {
            Error::Unsupported(format!(
                "{}: this Dense module has no weights (model.safetensors or pytorch_model.bin)",
                dir.display()
            ))
        })?;
        let ckpt = Checkpoint::open_all(weights)?;
        let weight = ckpt
            .tensor("linear.weight", &[out_features, in_features])?
            .data;
        let bias = if bias {
            ckpt.tensor("linear.bias", &[out_features])?.data
        } else {
            Vec::new()
        };
        let residual = match (use_residual, in_features == out_features) {
            (false, _) => None,
            (true, true) => Some(Vec::new()),
            (true, false) => Some(
                ckpt.tensor("residual.weight", &[out_features, in_features])?
                    .data,
            ),
        };
        Ok(Dense {
            in_features,
            out_features,
            weight,
            bias,
            activation,
            residual,
        })
    }

    /// `act(W·x + b) [+ residual]` of one vector.
    pub fn apply(&self, x: &[f32]) -> Result<Vec<f32>> {
        if x.len() != self.in_features {
            return Err(Error::ShapeMismatch {
                name: "Dense input".into(),
                expected: vec![self.in_features],
                actual: vec![x.len()],
            });
        }
        let dot = |w: &[f32]| -> f64 {
            w.iter()
                .zip(x)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum()
        };
        Ok((0..self.out_features)
            .map(|o| {
                let row = &self.weight[o * self.in_features..(o + 1) * self.in_features];
                let b = self.bias.get(o).copied().map_or(0.0, f64::from);
                let mut y = self.activation.apply(dot(row) + b);
                match &self.residual {
                    Some(r) if r.is_empty() => y += f64::from(x[o]),
                    Some(r) => y += dot(&r[o * self.in_features..(o + 1) * self.in_features]),
                    None => {}
                }
                y as f32
            })
            .collect())
    }
}
