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
    /// `tanh`.
    Tanh,
}

impl Activation {
    /// `name` as config.json's `field` gives it.
    fn parse(field: &str, name: &str) -> Result<Self> {
        match name {
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            "silu" | "swish" => Ok(Activation::Silu),
            "tanh" => Ok(Activation::Tanh),
            other => Err(Error::Unsupported(format!(
                "{field} `{other}` (supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu, tanh)"
            ))),
        }
    }
}

/// The BERT-family architecture a config.json describes (`model_type`).
/// XLM-RoBERTa and CamemBERT run RoBERTa's code in HF, and here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `bert`.
    Bert,
    /// `roberta`, `xlm-roberta`, `camembert`.
    Roberta,
    /// `distilbert`.
    DistilBert,
    /// `electra` (the discriminator).
    Electra,
}

/// Where each token's row of the position table comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// `position_ids = arange(seq)` (BERT, DistilBERT, ELECTRA).
    Absolute,
    /// RoBERTa's `padding_idx + cumsum(ids != padding_idx)` on real tokens,
    /// `padding_idx` on padding, computed from the ids as HF does.
    FromIds {
        /// `pad_token_id`.
        padding_idx: u32,
    },
}

/// `model_type` → (family, HF class-name prefix). Unknown names are refused.
const MODEL_TYPES: [(&str, Family, &str); 6] = [
    ("bert", Family::Bert, "Bert"),
    ("roberta", Family::Roberta, "Roberta"),
    ("xlm-roberta", Family::Roberta, "XLMRoberta"),
    ("camembert", Family::Roberta, "Camembert"),
    ("distilbert", Family::DistilBert, "DistilBert"),
    ("electra", Family::Electra, "Electra"),
];

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

/// The parts of HF's `BertConfig` (and of its family's configs, read into
/// the same fields: DistilBERT's `dim` is `hidden_size`, ...) that matter
/// for inference.
#[derive(Debug, Clone)]
pub struct BertConfig {
    /// `model_type`, as config.json names it (`bert` when absent and the
    /// architectures name no other family).
    pub model_type: String,
    /// The architecture family.
    pub family: Family,
    /// Width of the embedding tables: `embedding_size` (ELECTRA, projected
    /// to `hidden_size` by `embeddings_project`), else `hidden_size`.
    pub embedding_size: usize,
    /// How position ids are made.
    pub positions: Positions,
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
    /// Rows of `embeddings.token_type_embeddings`; 0 for DistilBERT, which
    /// has no token types (its `token_type_ids` are ignored).
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
    /// ELECTRA's multiple-choice `sequence_summary`: its activation
    /// (`summary_activation`, None for identity) and whether it projects
    /// to `num_labels` instead of `hidden_size` (`summary_proj_to_labels`).
    pub summary: Summary,
}

/// ELECTRA's `SequenceSummary` settings (HF's defaults for ELECTRA: first
/// token, a projection (`summary_use_proj = false` is refused), gelu).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// `summary_activation`; None means identity.
    pub activation: Option<Activation>,
    /// `summary_proj_to_labels`.
    pub proj_to_labels: bool,
}

#[derive(Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    embedding_size: Option<usize>,
    summary_type: Option<String>,
    summary_activation: Option<String>,
    summary_use_proj: Option<bool>,
    summary_proj_to_labels: Option<bool>,
    // DistilBERT's names for BERT's fields.
    dim: Option<usize>,
    n_layers: Option<usize>,
    n_heads: Option<usize>,
    hidden_dim: Option<usize>,
    activation: Option<String>,
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
        // serde reads a JSON array into a struct by position: refuse it first.
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if !value.is_object() {
            return Err(bad(format!(
                "expected a JSON object (struct of settings), got {}",
                match value {
                    serde_json::Value::Array(_) => "an array",
                    serde_json::Value::String(_) => "a string",
                    serde_json::Value::Number(_) => "a number",
                    serde_json::Value::Bool(_) => "a boolean",
                    _ => "null",
                }
            )));
        }
        // Parsed again from the text so errors keep their line and column.
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
        let (model_type, family) = model_type(&raw)?;
        let distil = family == Family::DistilBert;
        let (field, act_name) = if distil {
            ("activation", raw.activation.as_deref())
        } else {
            ("hidden_act", raw.hidden_act.as_deref())
        };
        let hidden_act = Activation::parse(field, act_name.unwrap_or("gelu"))?;
        let summary = summary(&raw, family)?;
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
        let pick = |distil_value: Option<usize>, bert_value: Option<usize>, default: usize| {
            if distil {
                distil_value.unwrap_or(default)
            } else {
                bert_value.unwrap_or(default)
            }
        };
        let hidden_size = pick(raw.dim, raw.hidden_size, 768);
        let pad_token_id =
            raw.pad_token_id
                .unwrap_or(if family == Family::Roberta { 1 } else { 0 });
        let cfg = BertConfig {
            model_type,
            family,
            embedding_size: match family {
                Family::Electra => raw.embedding_size.unwrap_or(128),
                _ => hidden_size,
            },
            positions: match family {
                Family::Roberta => Positions::FromIds {
                    padding_idx: pad_token_id,
                },
                _ => Positions::Absolute,
            },
            vocab_size: raw.vocab_size.unwrap_or(30522),
            hidden_size,
            num_hidden_layers: pick(raw.n_layers, raw.num_hidden_layers, 12),
            num_attention_heads: pick(raw.n_heads, raw.num_attention_heads, 12),
            intermediate_size: pick(raw.hidden_dim, raw.intermediate_size, 3072),
            hidden_act,
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(512),
            type_vocab_size: if distil {
                0
            } else {
                raw.type_vocab_size.unwrap_or(2)
            },
            // DistilBERT's LayerNorms are built with eps 1e-12 whatever
            // config.json says.
            layer_norm_eps: if distil {
                1e-12
            } else {
                raw.layer_norm_eps.unwrap_or(1e-12) as f32
            },
            pad_token_id,
            num_labels,
            id2label,
            label2id,
            problem_type,
            architectures: raw.architectures.unwrap_or_default(),
            summary,
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
            ("embedding_size", self.embedding_size),
        ];
        for (name, v) in dims {
            let may_be_zero = name == "type_vocab_size" && self.family == Family::DistilBert;
            if v == 0 && !may_be_zero {
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
        if self.max_tokens() == 0 {
            return Err(format!(
                "max_position_embeddings {} leaves no position for a token after padding_idx {}",
                self.max_position_embeddings, self.pad_token_id
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

    /// The longest sequence the position table allows: RoBERTa's positions
    /// start after `padding_idx`, so 514 rows hold 512 tokens.
    pub fn max_tokens(&self) -> usize {
        match self.positions {
            Positions::Absolute => self.max_position_embeddings,
            Positions::FromIds { padding_idx } => self
                .max_position_embeddings
                .saturating_sub(padding_idx as usize + 1),
        }
    }

    /// HF's class-name prefix for this `model_type` (`Bert`, `Roberta`,
    /// `XLMRoberta`, ...): `XLMRobertaForSequenceClassification`.
    pub fn class_prefix(&self) -> &'static str {
        MODEL_TYPES
            .iter()
            .find(|(name, ..)| *name == self.model_type)
            .map_or("Bert", |(.., prefix)| prefix)
    }

    /// Whether the embeddings have a token-type table.
    pub fn has_token_types(&self) -> bool {
        self.type_vocab_size > 0
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
        let e = self.embedding_size as u128;
        (v + p + t) * e + e * h + l * (4 * h * h + 2 * h * i) + h * h
    }
}

/// `model_type`, or the family the `architectures` prefix names when
/// config.json has none (old checkpoints), else `bert`.
fn model_type(raw: &RawConfig) -> Result<(String, Family)> {
    let known = || {
        MODEL_TYPES
            .iter()
            .map(|(n, ..)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(t) = raw.model_type.as_deref() {
        return MODEL_TYPES
            .iter()
            .find(|(name, ..)| *name == t)
            .map(|(name, family, _)| (name.to_string(), *family))
            .ok_or_else(|| {
                Error::Unsupported(format!("model_type `{t}` (this library runs: {})", known()))
            });
    }
    // Longest prefix first: `DistilBert…` before `Bert…` cannot clash, but
    // `XLMRoberta…` must not be read as `Roberta…`'s neighbour.
    let archs = raw.architectures.as_deref().unwrap_or_default();
    let found = MODEL_TYPES.iter().find(|(_, _, prefix)| {
        archs.iter().any(|a| {
            a.strip_prefix(prefix)
                .is_some_and(|rest| rest == "Model" || rest.starts_with("For"))
        })
    });
    Ok(
        found.map_or(("bert".to_string(), Family::Bert), |(n, f, _)| {
            (n.to_string(), *f)
        }),
    )
}

/// ELECTRA's sequence summary settings; other families never read them.
fn summary(raw: &RawConfig, family: Family) -> Result<Summary> {
    if family == Family::Electra {
        if let Some(t) = raw.summary_type.as_deref().filter(|t| *t != "first") {
            return Err(Error::Unsupported(format!(
                "ELECTRA summary_type `{t}` (only `first`, HF's default)"
            )));
        }
    }
    let activation = match raw.summary_activation.as_deref() {
        None if family == Family::Electra => Some(Activation::Gelu),
        None => None,
        Some(a) if a.is_empty() || a == "linear" || a == "none" => None,
        Some(a) => Some(Activation::parse("summary_activation", a)?),
    };
    // Without its projection the summary is no linear step; refused, so
    // every summary this library runs projects.
    if family == Family::Electra && raw.summary_use_proj == Some(false) {
        return Err(Error::Unsupported(
            "ELECTRA summary_use_proj = false (a sequence summary without its projection)".into(),
        ));
    }
    Ok(Summary {
        activation,
        proj_to_labels: raw.summary_proj_to_labels.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distilbert_names_are_read_into_bert_fields() {
        let c = BertConfig::from_json_str(
            r#"{"model_type": "distilbert", "dim": 36, "n_layers": 2, "n_heads": 4,
                "hidden_dim": 37, "activation": "relu", "vocab_size": 99}"#,
        )
        .unwrap();
        assert_eq!(c.family, Family::DistilBert);
        assert_eq!(
            (c.hidden_size, c.num_hidden_layers, c.num_attention_heads),
            (36, 2, 4)
        );
        assert_eq!((c.intermediate_size, c.hidden_act), (37, Activation::Relu));
        assert!(!c.has_token_types());
        assert_eq!(c.layer_norm_eps, 1e-12);
    }

    #[test]
    fn roberta_positions_leave_room_for_padding_idx() {
        let c = BertConfig::from_json_str(
            r#"{"model_type": "xlm-roberta", "max_position_embeddings": 514, "pad_token_id": 1}"#,
        )
        .unwrap();
        assert_eq!(c.family, Family::Roberta);
        assert_eq!(c.positions, Positions::FromIds { padding_idx: 1 });
        assert_eq!(c.max_tokens(), 512);
        assert_eq!(c.class_prefix(), "XLMRoberta");
    }

    #[test]
    fn family_is_taken_from_architectures_without_model_type() {
        let c = BertConfig::from_json_str(
            r#"{"architectures": ["ElectraForPreTraining"], "embedding_size": 20}"#,
        )
        .unwrap();
        assert_eq!((c.family, c.embedding_size), (Family::Electra, 20));
        let c = BertConfig::from_json_str(r#"{"architectures": ["BertForMaskedLM"]}"#).unwrap();
        assert_eq!((c.family, c.embedding_size), (Family::Bert, 768));
    }

    #[test]
    fn unknown_model_types_are_refused_by_name() {
        let e = BertConfig::from_json_str(r#"{"model_type": "deberta-v2"}"#).unwrap_err();
        assert!(
            matches!(&e, Error::Unsupported(m) if m.contains("deberta-v2") && m.contains("distilbert")),
            "{e}"
        );
    }
}
