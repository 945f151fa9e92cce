//! Request and response bodies of the server's routes (TEI's shapes, and
//! OpenAI's for `/v1/embeddings`), and its JSON errors.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A refused request: status, message, and which error body to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// TEI's `error_type` (`validation`, `overloaded`, ...).
    pub kind: &'static str,
    /// What is wrong, naming the field.
    pub message: String,
    /// Answer in OpenAI's error shape (`/v1/...` routes).
    pub openai: bool,
}

impl ApiError {
    /// A 422: the body is JSON but a field is wrong.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", message)
    }

    /// Any status.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            openai: false,
        }
    }

    /// The same error in OpenAI's shape.
    pub fn openai(mut self, yes: bool) -> Self {
        self.openai = yes;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = if self.openai {
            json!({"error": {
                "message": self.message,
                "type": if self.status.is_server_error() { "server_error" } else { "invalid_request_error" },
                "param": null,
                "code": self.kind,
            }})
        } else {
            json!({"error": self.message, "error_type": self.kind})
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// Parses a JSON body; errors name the field (`texts[2]: invalid type ...`).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "validation",
            "the request has no body; send a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "validation",
                format!("malformed JSON: {inner}"),
            )
        } else {
            let mut msg = inner.to_string();
            for (name, want) in UNTAGGED {
                if msg.contains(&format!("untagged enum {name}")) {
                    msg = want.to_string();
                }
            }
            if path.is_empty() || path == "." {
                ApiError::validation(msg)
            } else {
                ApiError::validation(format!("{path}: {msg}"))
            }
        }
    })
}

/// What each either-or field accepts, for serde's "did not match any
/// variant" message.
const UNTAGGED: [(&str, &str); 4] = [
    ("Texts", "expected a string or a list of strings"),
    ("Sequence", "expected a string or a [text, text_pair] list"),
    (
        "PredictInputs",
        "expected a string, a [text, text_pair] list, or a list of those",
    ),
    (
        "OpenAiInput",
        "expected a string, a list of strings, a list of token ids, or a list of such lists",
    ),
];

/// One string or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Texts {
    /// `"text"`.
    One(String),
    /// `["a", "b"]`.
    Many(Vec<String>),
}

impl Texts {
    /// The texts (one when a bare string was sent).
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Texts::One(t) => vec![t],
            Texts::Many(v) => v,
        }
    }
}

/// `POST /embed`.
#[derive(Debug, Deserialize)]
pub struct EmbedRequest {
    /// The texts.
    pub inputs: Texts,
    /// L2-normalise (default: as the model's modules say).
    pub normalize: Option<bool>,
    /// Cut inputs longer than the server accepts instead of refusing them.
    pub truncate: Option<bool>,
    /// Only `Right` is supported.
    pub truncation_direction: Option<String>,
    /// A prompt of the model's, by name.
    pub prompt_name: Option<String>,
    /// Matryoshka: keep the first N dimensions.
    pub dimensions: Option<usize>,
}

/// `POST /rerank`.
#[derive(Debug, Deserialize)]
pub struct RerankRequest {
    /// The query.
    pub query: String,
    /// Texts to rank against it.
    pub texts: Vec<String>,
    /// The logits instead of the activation's scores.
    #[serde(default)]
    pub raw_scores: bool,
    /// Echo each text.
    #[serde(default)]
    pub return_text: bool,
    /// Cut pairs longer than the server accepts.
    pub truncate: Option<bool>,
    /// Only `Right` is supported.
    pub truncation_direction: Option<String>,
}

/// One ranked text of `/rerank`'s answer.
#[derive(Debug, Serialize)]
pub struct Rank {
    /// Index among `texts`.
    pub index: usize,
    /// Its score.
    pub score: f32,
    /// The text, with `return_text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One input of `/predict`: a text, or a pair as `[a, b]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Sequence {
    /// A text.
    Single(String),
    /// A pair (or a one-element list: a text).
    Pair(Vec<String>),
}

/// `/predict`'s `inputs`: one sequence or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PredictInputs {
    /// `"text"` or `["a", "b"]` (one pair).
    One(Sequence),
    /// `[["a", "b"], "c", ...]`.
    Batch(Vec<Sequence>),
}

/// `POST /predict`.
#[derive(Debug, Deserialize)]
pub struct PredictRequest {
    /// The inputs.
    pub inputs: PredictInputs,
    /// The logits instead of the scores.
    #[serde(default)]
    pub raw_scores: bool,
    /// Cut inputs longer than the server accepts.
    pub truncate: Option<bool>,
    /// Only `Right` is supported.
    pub truncation_direction: Option<String>,
}

/// `POST /tokenize`.
#[derive(Debug, Deserialize)]
pub struct TokenizeRequest {
    /// The texts.
    pub inputs: Texts,
    /// Add `[CLS]`/`[SEP]` (default true).
    pub add_special_tokens: Option<bool>,
    /// A prompt of the model's, by name.
    pub prompt_name: Option<String>,
}

/// One token of `/tokenize`'s answer.
#[derive(Debug, Serialize)]
pub struct Token {
    /// Its id.
    pub id: u32,
    /// The text it covers (the token itself for special tokens).
    pub text: String,
    /// Whether it is a special token.
    pub special: bool,
    /// Byte offset of its start in the input (none for special tokens).
    pub start: Option<usize>,
    /// Byte offset of its end.
    pub stop: Option<usize>,
}

/// OpenAI's `input`: a string, strings, token ids, or lists of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OpenAiInput {
    /// `"text"`.
    One(String),
    /// `["a", "b"]`.
    Many(Vec<String>),
    /// `[101, 2023, 102]`.
    Ids(Vec<u32>),
    /// `[[101, 102], [101, 7592, 102]]`.
    ManyIds(Vec<Vec<u32>>),
}

/// `POST /v1/embeddings`.
#[derive(Debug, Deserialize)]
pub struct OpenAiRequest {
    /// What to embed.
    pub input: OpenAiInput,
    /// Accepted and echoed; the server has one model.
    pub model: Option<String>,
    /// `float` (default) or `base64` (little-endian f32).
    pub encoding_format: Option<String>,
    /// Matryoshka: keep the first N dimensions.
    pub dimensions: Option<usize>,
    /// Accepted and ignored.
    pub user: Option<String>,
}
