//! The library's one error type. Every variant names what went wrong and where
//! (tensor name, shapes, input line) so a caller can print it as a single line.

use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in `bert_wgpu`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `config.json` is not valid JSON or lacks a field.
    #[error("{path}: invalid config: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A valid checkpoint that uses something this library does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// `model.safetensors` is malformed.
    #[error("{path}: malformed safetensors file: {message}")]
    Safetensors {
        /// The weights file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A `pytorch_model.bin` is malformed, or asks for something the
    /// restricted unpickler refuses.
    #[error("{path}: unreadable PyTorch checkpoint: {message}")]
    Torch {
        /// The weights file.
        path: PathBuf,
        /// What is wrong (the refused global, the key, the zip entry, ...).
        message: String,
    },
    /// A tensor the model needs is absent from the checkpoint.
    #[error("missing tensor `{name}` (expected shape {expected:?}){hint}")]
    MissingTensor {
        /// HF key of the tensor (without the `bert.` prefix).
        name: String,
        /// Expected shape.
        expected: Vec<usize>,
        /// Extra explanation, possibly empty.
        hint: String,
    },
    /// A tensor is present but shaped unlike config.json says.
    #[error("tensor `{name}` has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        /// HF key of the tensor.
        name: String,
        /// Expected shape.
        expected: Vec<usize>,
        /// Shape found in the file.
        actual: Vec<usize>,
    },
    /// The tokenizer failed or was configured inconsistently with the model.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A kernel or tuning setting (a `BERT_WGPU_*` variable or its
    /// [`crate::LoadOptions`] field) has a value that is not one of its own.
    #[error("{name}={value:?} is not a valid setting (expected {allowed})")]
    Setting {
        /// The variable or option.
        name: String,
        /// The value given.
        value: String,
        /// What it accepts.
        allowed: String,
    },
    /// Model inputs are invalid (ids out of range, ragged rows, ...).
    #[error("invalid input: {0}")]
    Input(String),
    /// Labels do not fit the head.
    #[error("invalid labels: {0}")]
    Labels(String),
    /// A line of `infer` input could not be used.
    #[error("input line {line}: {message}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A dataset file has a malformed row.
    #[error("{}: line {row}: {}{message}", path.display(), field_prefix(field))]
    Dataset {
        /// The dataset file.
        path: PathBuf,
        /// 1-based line of the row in the file (where the record starts).
        row: usize,
        /// The field (column or JSON key) at fault; empty when the fault is
        /// the line itself (e.g. bytes that are not UTF-8).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The HTTP server could not start or serve.
    #[error("server: {0}")]
    Server(String),
    /// The Hugging Face Hub could not provide the files.
    #[error("hub: {0}")]
    Hub(String),
    /// No GPU adapter could be found or opened.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// A tensor or buffer exceeds a device limit.
    #[error("`{name}` needs {needed} bytes but the device limit `{limit_name}` is {limit} bytes")]
    DeviceLimit {
        /// Tensor or buffer.
        name: String,
        /// Bytes required.
        needed: u64,
        /// The wgpu limit's name.
        limit_name: &'static str,
        /// The limit's value.
        limit: u64,
    },
    /// A wgpu validation, out-of-memory or internal error.
    #[error("GPU error during {context}: {message}")]
    Gpu {
        /// What we were doing.
        context: String,
        /// The driver or wgpu message.
        message: String,
    },
    /// The GPU device was lost; the model must be reloaded.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// Waiting on the GPU took longer than the timeout.
    #[error("GPU did not finish {context} within {seconds} s")]
    Timeout {
        /// What we were waiting for.
        context: String,
        /// The timeout.
        seconds: f64,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }
}

/// "field `name`: ", or nothing for an empty name.
fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("field `{field}`: ")
    }
}
