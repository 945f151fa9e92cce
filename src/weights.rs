//! The weights a graph reads, loaded from a checkpoint and checked against
//! the shapes config.json implies.

use std::collections::HashMap;

use crate::checkpoint::{Checkpoint, F32Data, Tensor};
use crate::error::{Error, Result};
use crate::graph::Graph;

/// One parameter: its shape and f32 values (in place in the checkpoint's
/// mapping where the file allows, see [`F32Data`]).
#[derive(Debug, Clone)]
pub struct Param {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: F32Data,
}

/// Validated f32 weights by canonical HF name.
pub struct Weights {
    tensors: HashMap<String, Param>,
}

/// The parts of one or more `nn.Linear` stacked by output rows, borrowed:
/// the GPU upload writes each weight into its place in one buffer.
pub struct LinearParts<'a> {
    /// Each module's (out_features_i, in_features) weight, in stacking order.
    pub weights: Vec<&'a [f32]>,
    /// (out_features) — the biases, stacked.
    pub bias: Vec<f32>,
    /// Sum of the stacked modules' output features.
    pub out_features: usize,
    /// Shared input width.
    pub in_features: usize,
}

/// Weights of one or more `nn.Linear` stacked by output rows.
pub struct LinearWeights {
    /// (out_features, in_features)
    pub weight: Vec<f32>,
    /// (out_features)
    pub bias: Vec<f32>,
    /// Sum of the stacked modules' output features.
    pub out_features: usize,
    /// Shared input width.
    pub in_features: usize,
}

impl Weights {
    /// Reads every parameter of `graph` from `ckpt`, checking presence and
    /// shape. Unused tensors are logged at debug level and skipped.
    pub fn load(graph: &Graph, ckpt: &Checkpoint) -> Result<Self> {
        let mut tensors = HashMap::new();
        for spec in &graph.params {
            let data = ckpt
                .f32_data(&spec.name, &spec.shape)
                .map_err(|e| match e {
                    Error::MissingTensor { name, expected, .. } => Error::MissingTensor {
                        hint: missing_hint(&name, graph),
                        name,
                        expected,
                    },
                    other => other,
                })?;
            let shape = spec.shape.clone();
            tensors.insert(spec.name.clone(), Param { shape, data });
        }
        for name in ckpt.names() {
            if !tensors.contains_key(name) {
                log::debug!("ignoring tensor `{name}`: not used by {}", graph.class);
            }
        }
        Ok(Weights { tensors })
    }

    /// Builds weights directly (tests, random models).
    pub fn from_tensors(tensors: HashMap<String, Tensor>) -> Self {
        let tensors = tensors
            .into_iter()
            .map(|(name, t)| {
                let data = F32Data::Owned(t.data);
                (
                    name,
                    Param {
                        shape: t.shape,
                        data,
                    },
                )
            })
            .collect();
        Weights { tensors }
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// How many parameters are read in place from the checkpoint.
    pub fn in_place(&self) -> usize {
        self.tensors
            .values()
            .filter(|p| p.data.is_in_place())
            .count()
    }

    /// The data of tensor `name`.
    pub fn get(&self, name: &str) -> Result<&[f32]> {
        self.tensors
            .get(name)
            .map(|t| &*t.data)
            .ok_or_else(|| Error::MissingTensor {
                name: name.to_string(),
                expected: vec![],
                hint: String::new(),
            })
    }

    /// The parameter `name`.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.tensors.get(name)
    }

    /// Stacks `modules`' weights and biases by rows (fused QKV), copied.
    pub fn stacked_linear(&self, modules: &[String]) -> Result<LinearWeights> {
        let parts = self.linear_parts(modules)?;
        Ok(LinearWeights {
            weight: parts.weights.concat(),
            bias: parts.bias,
            out_features: parts.out_features,
            in_features: parts.in_features,
        })
    }

    /// `modules`' weights in stacking order, borrowed, and their biases.
    pub fn linear_parts(&self, modules: &[String]) -> Result<LinearParts<'_>> {
        let mut weights = Vec::new();
        let mut bias = Vec::new();
        let mut in_features = None;
        for m in modules {
            let w =
                self.tensors
                    .get(&format!("{m}.weight"))
                    .ok_or_else(|| Error::MissingTensor {
                        name: format!("{m}.weight"),
                        expected: vec![],
                        hint: String::new(),
                    })?;
            let k = w.shape.get(1).copied().unwrap_or(0);
            if *in_features.get_or_insert(k) != k {
                return Err(Error::Unsupported(format!(
                    "stacked linears with different input widths at `{m}`"
                )));
            }
            weights.push(&*w.data);
            bias.extend_from_slice(self.get(&format!("{m}.bias"))?);
        }
        let in_features = in_features.unwrap_or(0);
        Ok(LinearParts {
            out_features: bias.len(),
            weights,
            bias,
            in_features,
        })
    }
}

fn missing_hint(name: &str, graph: &Graph) -> String {
    if name.starts_with("pooler.") {
        format!(
            " — {} needs the pooler, which this checkpoint lacks",
            graph.class
        )
    } else if [
        "classifier.",
        "qa_outputs.",
        "pre_classifier.",
        "sequence_summary.",
    ]
    .iter()
    .any(|p| name.starts_with(p))
    {
        format!(
            " — the checkpoint has no {} head weights; HF would initialise them randomly, this library refuses (choose another --head or a fine-tuned checkpoint)",
            graph.class
        )
    } else {
        String::new()
    }
}
