//! `bert-wgpu serve`: a local inference server, TEI- and OpenAI-compatible,
//! with dynamic batching across requests.
//!
//! One model per server (as TEI): an embedder answers `/embed` and
//! `/v1/embeddings`, a sequence classifier `/predict`, a one-label
//! classifier (cross-encoder) `/rerank` and `/predict`; every model answers
//! `/tokenize`, `/health`, `/info` and `/metrics`. Requests' inputs share
//! forward passes through one [`queue::Batcher`] under the token budget;
//! past `max_concurrent_requests` a request is refused with 429 at once.
//!
//! ```no_run
//! use bert_wgpu::serve::{Engine, ServeOptions, Server};
//! # fn main() -> bert_wgpu::Result<()> {
//! let engine = Engine::load("path/to/all-MiniLM-L6-v2", &Default::default(), &Default::default(), None)?;
//! Server::new(engine, ServeOptions::default())?.run_until_signal(|addr| println!("listening on http://{addr}"))
//! # }
//! ```

pub mod api;
pub mod engine;
pub mod metrics;
pub mod queue;
mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use engine::{Engine, Kind, Row};

use crate::batch::{default_max_tokens, Limits};
use crate::error::{Error, Result};
use metrics::Metrics;
use queue::Batcher;

/// How the server listens, batches and refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Address to bind.
    pub host: String,
    /// Port (0: any free port; the bound one is reported).
    pub port: u16,
    /// Padded tokens per forward pass (`None`: the device's default).
    pub max_batch_tokens: Option<usize>,
    /// Inputs per forward pass.
    pub max_batch_requests: usize,
    /// Requests handled at once; more get 429.
    pub max_concurrent_requests: usize,
    /// Inputs per request.
    pub max_client_batch_size: usize,
    /// Request body bytes.
    pub payload_limit: usize,
    /// Truncate long inputs unless the request says otherwise (else they
    /// are refused with 413 unless the request asks for truncation).
    pub auto_truncate: bool,
    /// Require `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            host: "127.0.0.1".into(),
            port: 8080,
            max_batch_tokens: None,
            max_batch_requests: 512,
            max_concurrent_requests: 512,
            max_client_batch_size: 32,
            payload_limit: 2_000_000,
            auto_truncate: false,
            api_key: None,
        }
    }
}

/// What every route shares.
pub struct AppState {
    engine: Arc<Engine>,
    batcher: Batcher,
    metrics: Arc<Metrics>,
    opts: ServeOptions,
    limits: Limits,
}

/// A server: the engine, its batcher, the routes.
pub struct Server {
    state: Arc<AppState>,
}

impl Server {
    /// Starts the batcher for `engine` under `opts`.
    pub fn new(engine: Engine, opts: ServeOptions) -> Result<Self> {
        let max_tokens = opts
            .max_batch_tokens
            .unwrap_or_else(|| default_max_tokens(engine.model()).max(engine.max_input_length()));
        if max_tokens < engine.max_input_length() {
            return Err(Error::input(format!(
                "max_batch_tokens {max_tokens} is below max_input_length {}: the longest input would not fit a forward pass",
                engine.max_input_length()
            )));
        }
        for (name, v) in [
            ("max_batch_requests", opts.max_batch_requests),
            ("max_concurrent_requests", opts.max_concurrent_requests),
            ("max_client_batch_size", opts.max_client_batch_size),
            ("payload_limit", opts.payload_limit),
        ] {
            if v == 0 {
                return Err(Error::input(format!("{name} must be at least 1")));
            }
        }
        let limits = Limits {
            max_tokens,
            max_sequences: opts.max_batch_requests,
            min_fill: crate::batch::default_min_fill(engine.model()),
        };
        let metrics = Arc::new(Metrics::default());
        let engine = Arc::new(engine);
        // A cycle pools several forward passes' worth of rows, so that
        // sorting them by length pads little.
        let batcher = Batcher::start(
            engine.clone(),
            limits,
            max_tokens.saturating_mul(4),
            metrics.clone(),
        )?;
        Ok(Server {
            state: Arc::new(AppState {
                engine,
                batcher,
                metrics,
                opts,
                limits,
            }),
        })
    }

    /// The routes, to serve or to mount in a larger axum app.
    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
    }

    /// The forward-pass limits in force.
    pub fn limits(&self) -> Limits {
        self.state.limits
    }

    /// Serves on `listener` until `shutdown` resolves, then lets requests
    /// in flight finish and stops the batcher.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let r = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        self.state.batcher.close();
        r.map_err(|e| Error::Server(format!("serving failed: {e}")))
    }

    /// Binds `host:port` on a new runtime, calls `ready` with the bound
    /// address, and serves until Ctrl-C or SIGTERM; requests in flight are
    /// finished before it returns.
    pub fn run_until_signal(self, ready: impl FnOnce(SocketAddr)) -> Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("bert-wgpu-http")
            .build()
            .map_err(|e| Error::Server(format!("cannot start the runtime: {e}")))?;
        let (host, port) = (self.state.opts.host.clone(), self.state.opts.port);
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind((host.as_str(), port))
                .await
                .map_err(|e| Error::Server(format!("cannot listen on {host}:{port}: {e}")))?;
            let addr = listener
                .local_addr()
                .map_err(|e| Error::Server(format!("no local address: {e}")))?;
            ready(addr);
            self.serve(listener, signal()).await
        })
    }
}

/// Resolves at Ctrl-C or SIGTERM.
async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    log::info!("shutting down: finishing the requests in flight");
}
