//! `config.json` → [`BertConfig`], with HF's defaults and the checks an
//! inference library needs before it allocates anything.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The activation of the intermediate (feed-forward) layer, `hidden_act` in HF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: exact, `x/2 · (1 + erf(x/√2))`.
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation.
    GeluTanh,
    /// `relu`.
    Relu,
    /// `silu` / `swish`.
    Silu,
}

impl Activation {
    fn parse(name: &str) -> Result<Self> {
        match name {
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            "silu" | "swish" => Ok(Activation::Silu),
            other => Err(Error::Unsupported(format!(
                "hidden_act `{other}` (supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu)"
            ))),
        }
    }
}

/// How sequence-classification losses are chosen (`problem_type` in HF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    /// MSE on `logits.squeeze()`.
    Regression,
    /// Cross-entropy over classes.
    SingleLabel,
    /// Binary cross-entropy with logits over multi-hot labels.
    MultiLabel,
}

/// The parts of HF's `BertConfig` that matter for inference.
#[derive(Debug, Clone)]
pub struct BertConfig {
    /// Rows of `embeddings.word_embeddings`.
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Number of `encoder.layer.N`.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    pub hidden_act: Activation,
    /// Longest sequence the position table allows.
    pub max_position_embeddings: usize,
    /// Rows of `embeddings.token_type_embeddings`.
    pub type_vocab_size: usize,
    /// Epsilon of every LayerNorm.
    pub layer_norm_eps: f32,
    /// Id used to pad batches.
    pub pad_token_id: u32,
    /// Output classes of a classification head.
    pub num_labels: usize,
    /// Class index → label name.
    pub id2label: BTreeMap<usize, String>,
    /// Label name → class index.
    pub label2id: BTreeMap<String, usize>,
    /// Loss selection for sequence classification, when config.json sets it.
    pub problem_type: Option<ProblemType>,
    /// `architectures` (class names) from config.json.
    pub architectures: Vec<String>,
}

#[derive(Deserialize)]
struct RawConfig {
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    intermediate_size: Option<usize>,
    hidden_act: Option<String>,
    max_position_embeddings: Option<usize>,
    type_vocab_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    position_embedding_type: Option<String>,
    pad_token_id: Option<u32>,
    num_labels: Option<usize>,
    id2label: Option<BTreeMap<String, String>>,
    label2id: Option<BTreeMap<String, usize>>,
    problem_type: Option<String>,
    architectures: Option<Vec<String>>,
    is_decoder: Option<bool>,
}

/// Upper bound on any one dimension: keeps a hostile config from asking for
/// terabytes before a single weight is read.
const MAX_DIM: usize = 1 << 24;

impl BertConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json_str(&text).map_err(|e| match e {
            Error::Config { message, .. } => Error::Config {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates the text of a `config.json`.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let bad = |message: String| Error::Config {
            path: "config.json".into(),
            message,
        };
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if raw.is_decoder == Some(true) {
            return Err(Error::Unsupported(
                "is_decoder = true (BERT as a decoder)".into(),
            ));
        }
        let pet = raw.position_embedding_type.as_deref().unwrap_or("absolute");
        if pet != "absolute" {
            return Err(Error::Unsupported(format!(
                "position_embedding_type `{pet}` (only `absolute`)"
            )));
        }
        let hidden_act = Activation::parse(raw.hidden_act.as_deref().unwrap_or("gelu"))?;
        let mut id2label = BTreeMap::new();
        for (k, v) in raw.id2label.unwrap_or_default() {
            let idx: usize = k
                .parse()
                .map_err(|_| bad(format!("id2label key `{k}` is not an integer")))?;
            id2label.insert(idx, v);
        }
        let num_labels = match (raw.num_labels, id2label.len()) {
            (Some(n), 0) => n,
            (Some(n), m) if n != m => {
                return Err(bad(format!(
                    "num_labels = {n} but id2label has {m} entries"
                )))
            }
            (_, 0) => 2,
            (_, m) => m,
        };
        if let Some((&max, _)) = id2label.iter().next_back() {
            if max >= num_labels {
                return Err(bad(format!(
                    "id2label has index {max} but num_labels = {num_labels}"
                )));
            }
        }
        let label2id = match raw.label2id {
            Some(m) if !m.is_empty() => m,
            _ => id2label.iter().map(|(i, l)| (l.clone(), *i)).collect(),
        };
        let problem_type = match raw.problem_type.as_deref() {
            None => None,
            Some("regression") => Some(ProblemType::Regression),
            Some("single_label_classification") => Some(ProblemType::SingleLabel),
            Some("multi_label_classification") => Some(ProblemType::MultiLabel),
            Some(other) => return Err(bad(format!("unknown problem_type `{other}`"))),
        };
        let cfg = BertConfig {
            vocab_size: raw.vocab_size.unwrap_or(30522),
            hidden_size: raw.hidden_size.unwrap_or(768),
            num_hidden_layers: raw.num_hidden_layers.unwrap_or(12),
            num_attention_heads: raw.num_attention_heads.unwrap_or(12),
            intermediate_size: raw.intermediate_size.unwrap_or(3072),
            hidden_act,
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(512),
            type_vocab_size: raw.type_vocab_size.unwrap_or(2),
            layer_norm_eps: raw.layer_norm_eps.unwrap_or(1e-12) as f32,
            pad_token_id: raw.pad_token_id.unwrap_or(0),
            num_labels,
            id2label,
            label2id,
            problem_type,
            architectures: raw.architectures.unwrap_or_default(),
        };
        cfg.validate().map_err(bad)?;
        Ok(cfg)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let dims = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
            ("num_labels", self.num_labels),
        ];
        for (name, v) in dims {
            if v == 0 {
                return Err(format!("{name} must be positive"));
            }
            if v > MAX_DIM {
                return Err(format!("{name} = {v} exceeds the limit {MAX_DIM}"));
            }
        }
        if self.num_hidden_layers > 1024 {
            return Err(format!(
                "num_hidden_layers = {} exceeds the limit 1024",
                self.num_hidden_layers
            ));
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.pad_token_id as usize >= self.vocab_size {
            return Err(format!(
                "pad_token_id {} is not below vocab_size {}",
                self.pad_token_id, self.vocab_size
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps >= 0.0) {
            return Err(format!(
                "layer_norm_eps {} is not a finite non-negative number",
                self.layer_norm_eps
            ));
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The label name of class `i`, `LABEL_i` when config.json has none (as HF).
    pub fn label_name(&self, i: usize) -> String {
        self.id2label
            .get(&i)
            .cloned()
            .unwrap_or_else(|| format!("LABEL_{i}"))
    }

    /// Rough parameter count, used to refuse absurd configs before allocating.
    pub fn parameter_count(&self) -> u128 {
        let (v, h, l, i, p, t) = (
            self.vocab_size as u128,
            self.hidden_size as u128,
            self.num_hidden_layers as u128,
            self.intermediate_size as u128,
            self.max_position_embeddings as u128,
            self.type_vocab_size as u128,
        );
        (v + p + t) * h + l * (4 * h * h + 2 * h * i) + h * h
    }
}
