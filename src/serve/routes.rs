//! The HTTP routes: TEI's (`/embed`, `/rerank`, `/predict`, `/tokenize`,
//! `/health`, `/info`, `/metrics`) and OpenAI's `/v1/embeddings`.
//!
//! Every inference route goes through [`AppState::handle`]: admission
//! (429 past `max_concurrent_requests`), the body under its size limit
//! (413), parsing with the failing field named (400/422), then the route's
//! own work; the answer's status and latency go to the metrics.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};

use super::api::{
    parse, ApiError, EmbedRequest, OpenAiInput, OpenAiRequest, PredictInputs, PredictRequest, Rank,
    RerankRequest, Sequence, Token, TokenizeRequest,
};
use super::engine::{InputError, Kind, Row};
use super::AppState;
use crate::embed::Prompt;
use crate::pipelines::rank_scores;

/// The router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/embed", post(embed))
        .route("/rerank", post(rerank))
        .route("/predict", post(predict))
        .route("/tokenize", post(tokenize))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/health", get(health))
        .route("/info", get(info))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// Counts a request as in flight while it lives.
struct Admission(Arc<AppState>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AppState {
    fn admit(self: &Arc<Self>) -> Option<Admission> {
        let n = self.metrics.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        if n > self.opts.max_concurrent_requests as u64 {
            self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.metrics.overloaded.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Admission(self.clone()))
    }

    async fn handle<F, Fut>(
        self: Arc<Self>,
        route: &'static str,
        openai: bool,
        body: Body,
        f: F,
    ) -> Response
    where
        F: FnOnce(Arc<Self>, Bytes) -> Fut,
        Fut: Future<Output = Result<Response, ApiError>>,
    {
        let t0 = Instant::now();
        let result = match self.admit() {
            None => Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                format!(
                    "the server is handling its limit of {} concurrent requests (max_concurrent_requests); retry later",
                    self.opts.max_concurrent_requests
                ),
            )),
            Some(_admitted) => match axum::body::to_bytes(body, self.opts.payload_limit).await {
                Err(_) => Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "validation",
                    format!(
                        "the request body exceeds the limit of {} bytes (payload_limit) or could not be read",
                        self.opts.payload_limit
                    ),
                )),
                Ok(bytes) => f(self.clone(), bytes).await,
            },
        };
        let response = result.unwrap_or_else(|e| e.openai(openai).into_response());
        self.metrics.request(
            route,
            response.status().as_u16(),
            t0.elapsed().as_secs_f64(),
        );
        response
    }

    fn require(&self, ok: &[Kind], route: &str) -> Result<(), ApiError> {
        let kind = self.engine.kind();
        if ok.contains(&kind) {
            return Ok(());
        }
        let wants: Vec<&str> = ok.iter().map(|k| k.name()).collect();
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "model",
            format!(
                "{route} needs a {} model, and this server's model `{}` is a {} model",
                wants.join(" or "),
                self.engine.model_id(),
                kind.name()
            ),
        ))
    }

    fn check_count(&self, field: &str, n: usize) -> Result<(), ApiError> {
        if n == 0 {
            return Err(ApiError::validation(format!("{field}: must not be empty")));
        }
        let max = self.opts.max_client_batch_size;
        if n > max {
            return Err(ApiError::validation(format!(
                "{field}: {n} inputs exceed the limit of {max} per request (max_client_batch_size)"
            )));
        }
        Ok(())
    }

    /// Tokenizes (text, pair) inputs off the async threads; `field(i)`
    /// names input `i` in errors.
    async fn rows(
        self: &Arc<Self>,
        inputs: Vec<(String, Option<String>)>,
        prompt: Prompt,
        truncate: bool,
        field: impl Fn(usize) -> String + Send + 'static,
    ) -> Result<Vec<Row>, ApiError> {
        let s = self.clone();
        let job = move || {
            inputs
                .iter()
                .enumerate()
                .map(|(i, (text, pair))| {
                    if text.is_empty() || pair.as_deref() == Some("") {
                        return Err(ApiError::validation(format!("{}: is empty", field(i))));
                    }
                    s.engine
                        .tokenize(text, pair.as_deref(), &prompt, truncate)
                        .map_err(|e| input_error(&field(i), e))
                })
                .collect()
        };
        tokio::task::spawn_blocking(job).await.map_err(internal)?
    }

    /// Runs rows through the batcher.
    async fn run(&self, rows: Vec<Row>) -> Result<Vec<Vec<f32>>, ApiError> {
        self.batcher
            .submit(rows)
            .await
            .map_err(|_| internal("the batcher stopped"))?
            .map_err(|m| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "backend", m))
    }

    fn truncate(&self, asked: Option<bool>, direction: Option<&str>) -> Result<bool, ApiError> {
        if let Some(d) = direction {
            if !d.eq_ignore_ascii_case("right") {
                return Err(ApiError::validation(format!(
                    "truncation_direction: `{d}` is not supported (only Right)"
                )));
            }
        }
        Ok(asked.unwrap_or(self.opts.auto_truncate))
    }

    fn check_dimensions(&self, dims: Option<usize>) -> Result<(), ApiError> {
        // The embedder's message names the field already.
        self.engine.check_dimensions(dims).map_err(|e| match e {
            InputError::Invalid(m) => ApiError::validation(m),
            other => input_error("dimensions", other),
        })
    }

    /// Runs embedding rows and finishes each vector for the request.
    async fn embed_rows(
        &self,
        rows: Vec<Row>,
        normalize: Option<bool>,
        dimensions: Option<usize>,
    ) -> Result<Vec<Vec<f32>>, ApiError> {
        self.run(rows)
            .await?
            .into_iter()
            .map(|v| self.engine.finish_embedding(v, normalize, dimensions))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| input_error("dimensions", e))
    }
}

/// Names input `i` of a request field: `name` alone when one input was
/// sent bare, else `name[i]`.
fn namer(name: &'static str, bare: bool) -> impl Fn(usize) -> String + Send + 'static {
    move |i| {
        if bare {
            name.to_string()
        } else {
            format!("{name}[{i}]")
        }
    }
}

fn input_error(field: &str, e: InputError) -> ApiError {
    match e {
        InputError::TooLong { max } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "validation",
            format!(
                "{field}: longer than the {max} tokens this server accepts (max_input_length); send \"truncate\": true to cut it"
            ),
        ),
        InputError::Invalid(m) => ApiError::validation(format!("{field}: {m}")),
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "backend",
        format!("internal error: {e}"),
    )
}

async fn embed(State(s): State<Arc<AppState>>, body: Body) -> Response {
    s.handle("embed", false, body, |s, b| async move {
        let req: EmbedRequest = parse(&b)?;
        s.require(&[Kind::Embedding], "/embed")?;
        let truncate = s.truncate(req.truncate, req.truncation_direction.as_deref())?;
        s.check_dimensions(req.dimensions)?;
        let texts = req.inputs.into_vec();
        s.check_count("inputs", texts.len())?;
        let prompt = s
            .engine
            .prompt(req.prompt_name.as_deref())
            .map_err(|e| input_error("prompt_name", e))?;
        let inputs = texts.into_iter().map(|t| (t, None)).collect();
        let rows = s
            .rows(inputs, prompt, truncate, |i| format!("inputs[{i}]"))
            .await?;
        let vectors = s.embed_rows(rows, req.normalize, req.dimensions).await?;
        Ok(Json(vectors).into_response())
    })
    .await
}

async fn rerank(State(s): State<Arc<AppState>>, body: Body) -> Response {
    s.handle("rerank", false, body, |s, b| async move {
        let req: RerankRequest = parse(&b)?;
        s.require(&[Kind::Reranker], "/rerank")?;
        let truncate = s.truncate(req.truncate, req.truncation_direction.as_deref())?;
        if req.query.is_empty() {
            return Err(ApiError::validation("query: is empty"));
        }
        s.check_count("texts", req.texts.len())?;
        let inputs = req
            .texts
            .iter()
            .map(|t| (req.query.clone(), Some(t.clone())))
            .collect();
        let rows = s
            .rows(inputs, Prompt::default(), truncate, |i| {
                format!("texts[{i}]")
            })
            .await?;
        let scores = s
            .run(rows)
            .await?
            .iter()
            .map(|l| s.engine.rerank_score(l, req.raw_scores))
            .collect();
        let ranked: Vec<Rank> = rank_scores(scores, None)
            .into_iter()
            .map(|r| Rank {
                index: r.corpus_id,
                score: r.score,
                text: req.return_text.then(|| req.texts[r.corpus_id].clone()),
            })
            .collect();
        Ok(Json(ranked).into_response())
    })
    .await
}

/// `/predict`'s inputs as (text, pair) with the field naming each, and
/// whether a batch was sent.
type PredictList = (Vec<(String, Option<String>)>, bool);

fn predict_inputs(inputs: PredictInputs) -> Result<PredictList, ApiError> {
    let one = |seq: Sequence, field: String| {
        match seq {
        Sequence::Single(t) => Ok((t, None)),
        Sequence::Pair(v) => match <[String; 2]>::try_from(v) {
            Ok([a, b]) => Ok((a, Some(b))),
            Err(v) if v.len() == 1 => Ok((v.into_iter().next().unwrap_or_default(), None)),
            Err(v) => Err(ApiError::validation(format!(
                "{field}: a pair is [text, text_pair]; got a list of {} strings (send a batch as a list of lists)",
                v.len()
            ))),
        },
    }
    };
    match inputs {
        PredictInputs::One(seq) => Ok((vec![one(seq, "inputs".into())?], false)),
        PredictInputs::Batch(list) => Ok((
            list.into_iter()
                .enumerate()
                .map(|(i, seq)| one(seq, format!("inputs[{i}]")))
                .collect::<Result<_, _>>()?,
            true,
        )),
    }
}

async fn predict(State(s): State<Arc<AppState>>, body: Body) -> Response {
    s.handle("predict", false, body, |s, b| async move {
        let req: PredictRequest = parse(&b)?;
        s.require(&[Kind::Classifier, Kind::Reranker], "/predict")?;
        let truncate = s.truncate(req.truncate, req.truncation_direction.as_deref())?;
        let (inputs, batch) = predict_inputs(req.inputs)?;
        s.check_count("inputs", inputs.len())?;
        let rows = s
            .rows(inputs, Prompt::default(), truncate, namer("inputs", !batch))
            .await?;
        let mut answers: Vec<_> = s
            .run(rows)
            .await?
            .iter()
            .map(|l| s.engine.scores(l, req.raw_scores))
            .collect();
        Ok(if batch {
            Json(answers).into_response()
        } else {
            Json(answers.swap_remove(0)).into_response()
        })
    })
    .await
}

async fn tokenize(State(s): State<Arc<AppState>>, body: Body) -> Response {
    s.handle("tokenize", false, body, |s, b| async move {
        let req: TokenizeRequest = parse(&b)?;
        let texts = req.inputs.into_vec();
        s.check_count("inputs", texts.len())?;
        let prompt = s
            .engine
            .prompt(req.prompt_name.as_deref())
            .map_err(|e| input_error("prompt_name", e))?;
        let special = req.add_special_tokens.unwrap_or(true);
        let engine = s.engine.clone();
        let job = move || -> Result<Vec<Vec<Token>>, ApiError> {
            texts
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let text = format!("{}{t}", prompt.text);
                    let e = engine
                        .untruncated()
                        .encode(text.as_str(), special)
                        .map_err(|e| {
                            ApiError::validation(format!(
                                "inputs[{i}]: the tokenizer refused it: {e}"
                            ))
                        })?;
                    Ok(e.get_ids()
                        .iter()
                        .zip(e.get_tokens())
                        .zip(e.get_offsets())
                        .zip(e.get_special_tokens_mask())
                        .map(|(((&id, tok), &(a, b)), &sp)| {
                            let special = sp == 1;
                            Token {
                                id,
                                text: if special {
                                    tok.clone()
                                } else {
                                    text.get(a..b).unwrap_or(tok).to_string()
                                },
                                special,
                                start: (!special).then_some(a),
                                stop: (!special).then_some(b),
                            }
                        })
                        .collect())
                })
                .collect()
        };
        let tokens = tokio::task::spawn_blocking(job).await.map_err(internal)??;
        Ok(Json(tokens).into_response())
    })
    .await
}

async fn openai_embeddings(State(s): State<Arc<AppState>>, body: Body) -> Response {
    s.handle("v1/embeddings", true, body, |s, b| async move {
        let req: OpenAiRequest = parse(&b)?;
        s.require(&[Kind::Embedding], "/v1/embeddings")?;
        let base64 = match req.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(o) => {
                return Err(ApiError::validation(format!(
                    "encoding_format: must be float or base64; got `{o}`"
                )))
            }
        };
        s.check_dimensions(req.dimensions)?;
        let truncate = s.opts.auto_truncate;
        let rows = match req.input {
            OpenAiInput::One(t) => s.texts_rows(vec![t], true, truncate).await?,
            OpenAiInput::Many(v) => s.texts_rows(v, false, truncate).await?,
            OpenAiInput::Ids(ids) => vec![s
                .engine
                .ids_row(&ids, truncate)
                .map_err(|e| input_error("input", e))?],
            OpenAiInput::ManyIds(list) => {
                s.check_count("input", list.len())?;
                list.iter()
                    .enumerate()
                    .map(|(i, ids)| {
                        s.engine
                            .ids_row(ids, truncate)
                            .map_err(|e| input_error(&format!("input[{i}]"), e))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let prompt_tokens: usize = rows.iter().map(|r| r.ids.len()).sum();
        let data: Vec<Value> = s
            .embed_rows(rows, None, req.dimensions)
            .await?
            .into_iter()
            .enumerate()
            .map(|(index, v)| {
                let embedding = if base64 {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    json!(v)
                };
                json!({"object": "embedding", "index": index, "embedding": embedding})
            })
            .collect();
        Ok(Json(json!({
            "object": "list",
            "data": data,
            "model": req.model.unwrap_or_else(|| s.engine.model_id().to_string()),
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }))
        .into_response())
    })
    .await
}

impl AppState {
    /// Texts of `/v1/embeddings` as rows, with the model's default prompt.
    async fn texts_rows(
        self: &Arc<Self>,
        texts: Vec<String>,
        bare: bool,
        truncate: bool,
    ) -> Result<Vec<Row>, ApiError> {
        self.check_count("input", texts.len())?;
        let prompt = self
            .engine
            .prompt(None)
            .map_err(|e| input_error("input", e))?;
        let inputs = texts.into_iter().map(|t| (t, None)).collect();
        self.rows(inputs, prompt, truncate, namer("input", bare))
            .await
    }
}

async fn health(State(s): State<Arc<AppState>>) -> Response {
    // A real forward pass of the shortest input, through the queue.
    let probe = s
        .engine
        .tokenize(".", None, &Prompt::default(), true)
        .map_err(|e| format!("{e:?}"));
    let result = match probe {
        Ok(row) => s.run(vec![row]).await.map_err(|e| e.message),
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Json(json!({"status": "ok"})).into_response(),
        Err(m) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy",
            format!("the model failed a probe: {m}"),
        )
        .into_response(),
    }
}

async fn info(State(s): State<Arc<AppState>>) -> Response {
    let e = &s.engine;
    let o = &s.opts;
    Json(json!({
        "model_id": e.model_id(),
        "model_type": e.model_type(),
        "device": e.model().device_name(),
        "dtype": e.model().dtype().name(),
        "max_input_length": e.max_input_length(),
        "max_batch_tokens": s.limits.max_tokens,
        "max_batch_requests": s.limits.max_sequences,
        "max_concurrent_requests": o.max_concurrent_requests,
        "max_client_batch_size": o.max_client_batch_size,
        "payload_limit": o.payload_limit,
        "auto_truncate": o.auto_truncate,
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route {method} {}; the server has POST /embed, /rerank, /predict, /tokenize, /v1/embeddings and GET /health, /info, /metrics",
            uri.path()
        ),
    )
    .into_response()
}

/// With an API key set, every route wants `Authorization: Bearer KEY`.
async fn auth(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &s.opts.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same(g.as_bytes(), key.as_bytes())) {
            let openai = req.uri().path().starts_with("/v1/");
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong API key: send `Authorization: Bearer <key>`",
            )
            .openai(openai)
            .into_response();
        }
    }
    next.run(req).await
}

/// Compares without stopping at the first differing byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
