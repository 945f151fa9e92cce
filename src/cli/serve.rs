//! `bert-wgpu serve`: the HTTP server (`bert_wgpu::serve`).

use std::io::Write;

use anyhow::Context;
use bert_wgpu::embed::EmbedderOptions;
use bert_wgpu::serve::{Engine, ServeOptions, Server};
use clap::Args;

use super::{load_options, ModelArgs};

/// `bert-wgpu serve`.
#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to listen on. Keep 127.0.0.1 unless a proxy or firewall
    /// stands in front: there is no TLS.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free one; the bound address is printed on stdout).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Padded tokens per forward pass (default: measured per device, as
    /// `embed --data`).
    #[arg(long)]
    max_batch_tokens: Option<usize>,
    /// Inputs per forward pass.
    #[arg(long, default_value_t = 512)]
    max_batch_requests: usize,
    /// Requests handled at once; more are refused with 429 at once.
    #[arg(long, default_value_t = 512)]
    max_concurrent_requests: usize,
    /// Tokens per input (default: the model's max_seq_length).
    #[arg(long)]
    max_input_length: Option<usize>,
    /// Inputs per request.
    #[arg(long, default_value_t = 32)]
    max_client_batch_size: usize,
    /// Request body bytes.
    #[arg(long, default_value_t = 2_000_000)]
    payload_limit: usize,
    /// Truncate inputs longer than max_input_length unless a request says
    /// `"truncate": false` (without it they get 413 unless a request says
    /// `"truncate": true`).
    #[arg(long)]
    auto_truncate: bool,
    /// Require `Authorization: Bearer KEY` on every route.
    #[arg(long, env = "BERT_WGPU_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

pub fn serve(a: &ServeArgs) -> anyhow::Result<()> {
    let (source, load) = load_options(&a.model, None)?;
    let engine = Engine::load(
        &source,
        &load,
        &EmbedderOptions::default(),
        a.max_input_length,
    )
    .with_context(|| format!("loading model `{source}`"))?;
    let kind = engine.kind();
    let device = engine.model().device_name();
    let server = Server::new(
        engine,
        ServeOptions {
            host: a.host.clone(),
            port: a.port,
            max_batch_tokens: a.max_batch_tokens,
            max_batch_requests: a.max_batch_requests,
            max_concurrent_requests: a.max_concurrent_requests,
            max_client_batch_size: a.max_client_batch_size,
            payload_limit: a.payload_limit,
            auto_truncate: a.auto_truncate,
            api_key: a.api_key.clone(),
        },
    )?;
    let limits = server.limits();
    server.run_until_signal(|addr| {
        log::info!(
            "{} model `{source}` on {device}, {} tokens per forward pass",
            kind.name(),
            limits.max_tokens
        );
        // The one line on stdout: scripts and tests read the address here.
        println!("listening on http://{addr}");
        let _ = std::io::stdout().flush();
    })?;
    Ok(())
}
