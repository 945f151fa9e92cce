//! `embed` and `rerank`: sentence-transformers models (bi- and
//! cross-encoders) from the command line, over arguments or a whole corpus.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use bert_wgpu::batch::BatchOptions;
use bert_wgpu::datasets::{self, Row};
use bert_wgpu::embed::{EmbedderOptions, SentenceEmbedder};
use bert_wgpu::npy::NpyWriter;
use bert_wgpu::pipelines::{rank_scores, CrossEncoder, RerankJob};
use bert_wgpu::Error;
use clap::Args;
use serde_json::Value;

use super::stream::{self, out_err, DataArgs, Inputs};
use super::{load_options, ModelArgs};

/// `bert-wgpu embed`.
#[derive(Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Texts to embed.
    #[arg(required_unless_present = "data")]
    texts: Vec<String>,
    #[command(flatten)]
    data: DataArgs,
    /// Pool with this mode instead of the model's (cls, max, mean,
    /// mean_sqrt_len_tokens, weightedmean, lasttoken).
    #[arg(long)]
    pooling: Option<String>,
    /// L2-normalise (true) or not (false), instead of what the model's
    /// modules say (without modules.json: true).
    #[arg(long, action = clap::ArgAction::Set)]
    normalize: Option<bool>,
    /// A prompt of the model's config_sentence_transformers.json, by name.
    #[arg(long, conflicts_with = "prompt")]
    prompt_name: Option<String>,
    /// A prompt text prepended to every input.
    #[arg(long)]
    prompt: Option<String>,
    /// Keep the first N dimensions (Matryoshka), normalised again when the
    /// model normalises.
    #[arg(long)]
    dimensions: Option<usize>,
    /// Truncate at this many tokens instead of the model's max_seq_length.
    #[arg(long)]
    max_seq_length: Option<usize>,
    /// One JSON line per text ({"text", "embedding"}).
    #[arg(long)]
    json: bool,
}

/// The `text` field of a row (JSONL, CSV or a text line).
fn text_field(path: &Path, row: &Row) -> bert_wgpu::Result<String> {
    Ok(datasets::text_example(path, row)?.text)
}

pub fn embed(a: &EmbedArgs) -> anyhow::Result<()> {
    let pooling = a.pooling.as_deref().map(str::parse).transpose()?;
    let inputs = Inputs::new(a.texts.clone(), &a.data, text_field)?;
    let (source, load) = load_options(&a.model, None)?;
    let st = SentenceEmbedder::load(
        &source,
        &load,
        &EmbedderOptions {
            pooling,
            normalize: a.normalize,
            max_seq_length: a.max_seq_length,
        },
    )
    .with_context(|| format!("loading model `{source}`"))?;
    log::info!(
        "model `{source}` on {}: {}, max {} tokens, pooling {}, dim {}{}",
        st.model().device_name(),
        if st.from_modules() {
            "modules.json"
        } else {
            "no modules.json (mean pooling + normalize)"
        },
        st.chain().max_length(),
        st.chain()
            .pooling()
            .modes
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join("+"),
        st.chain().dim(),
        if st.chain().normalizes() {
            ", normalized"
        } else {
            ""
        }
    );
    let prompt = st
        .chain()
        .resolve_prompt(a.prompt_name.as_deref(), a.prompt.as_deref())?;
    let job = st.job(prompt, a.dimensions)?;
    let dim = a.dimensions.unwrap_or_else(|| st.chain().dim());
    let opts = a.data.batch();
    let npy = a
        .data
        .output
        .as_deref()
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")));
    if let Some(path) = npy {
        let mut w = NpyWriter::create(path, dim)?;
        let r = stream::drive(&job, st.model(), inputs, &opts, &mut |v| w.write_row(&v));
        // Whatever was embedded before an error stays readable.
        w.finish()?;
        r?;
        return Ok(());
    }
    // Texts are echoed next to their vectors: keep them as they stream by.
    let (texts_tx, texts_rx) = std::sync::mpsc::channel::<String>();
    let inputs = inputs.tap(move |t: &String| {
        let _ = texts_tx.send(t.clone());
    });
    let mut out = stream::text_out(a.data.output.as_deref())?;
    let json = a.json;
    let r = stream::drive(&job, st.model(), inputs, &opts, &mut |v| {
        let t = texts_rx.recv().unwrap_or_default();
        write_embedding(&mut out, &t, &v, json).map_err(out_err)
    });
    out.flush()?;
    r?;
    Ok(())
}

fn write_embedding(w: &mut dyn Write, text: &str, v: &[f32], json: bool) -> std::io::Result<()> {
    if json {
        let t = bert_wgpu::Tensor {
            shape: vec![v.len()],
            data: v.to_vec(),
        };
        let mut s = String::new();
        bert_wgpu::infer::write_tensor(&mut s, &t);
        let text = serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into());
        writeln!(w, "{{\"text\":{text},\"embedding\":{s}}}")
    } else {
        let head: Vec<String> = v.iter().take(8).map(|x| format!("{x:+.5}")).collect();
        writeln!(
            w,
            "{text:?}: dim {}, first 8 = [{}]",
            v.len(),
            head.join(", ")
        )
    }
}

/// `bert-wgpu rerank`.
#[derive(Args)]
pub struct RerankArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The query the texts are ranked against. Without it, --data rows give
    /// their own `query` and each pair is scored in input order
    /// (CrossEncoder.predict).
    #[arg(long)]
    query: Option<String>,
    /// Texts to rank.
    texts: Vec<String>,
    #[command(flatten)]
    data: DataArgs,
    /// Keep the best K texts (with --query).
    #[arg(long)]
    top_k: Option<usize>,
    /// Truncate pairs at this many tokens instead of the model's length.
    #[arg(long)]
    max_seq_length: Option<usize>,
    /// One JSON line per text instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn rerank(a: &RerankArgs) -> anyhow::Result<()> {
    let (source, load) = load_options(&a.model, None)?;
    let query = a.query.clone();
    if query.is_none() && !a.texts.is_empty() {
        anyhow::bail!(Error::Input(
            "texts given as arguments need --query; without it, --data rows give `query` and `text`".into()
        ));
    }
    if query.is_none() && a.top_k.is_some() {
        anyhow::bail!(Error::Input("--top-k needs --query".into()));
    }
    let given: Vec<(String, String)> = match &query {
        Some(q) => a.texts.iter().map(|t| (q.clone(), t.clone())).collect(),
        None => Vec::new(),
    };
    let q = query.clone();
    let inputs = Inputs::new(given, &a.data, move |path, row| {
        let text = datasets::text_example(path, row)?.text;
        let query = match &q {
            Some(q) => q.clone(),
            None => match row.fields.get("query") {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    return Err(Error::Dataset {
                        path: path.to_path_buf(),
                        row: row.line,
                        field: "query".into(),
                        message: "missing (give --query, or a `query` in every row)".into(),
                    })
                }
            },
        };
        Ok((query, text))
    })?;
    if inputs.is_empty() {
        anyhow::bail!(Error::Input(
            "no texts to rank: give them as arguments or with --data FILE".into()
        ));
    }
    let ce = CrossEncoder::load(&source, &load, a.max_seq_length)
        .with_context(|| format!("loading model `{source}`"))?;
    let (texts_tx, texts_rx) = std::sync::mpsc::channel::<String>();
    let inputs = inputs.tap(move |(_, t): &(String, String)| {
        let _ = texts_tx.send(t.clone());
    });
    let job = RerankJob { ce: &ce };
    let opts: BatchOptions = a.data.batch();
    let mut out = stream::text_out(a.data.output.as_deref())?;
    if query.is_none() {
        // Per-pair scores in input order, streamed.
        let json = a.json;
        let r = stream::drive(&job, ce.model(), inputs, &opts, &mut |s| {
            let t = texts_rx.recv().unwrap_or_default();
            let line = if json {
                serde_json::json!({"text": t, "score": s.first(), "scores": s}).to_string()
            } else {
                format!("{:>9.5}  {t}", s.first().copied().unwrap_or(f32::NAN))
            };
            writeln!(out, "{line}").map_err(out_err)
        });
        out.flush()?;
        r?;
        return Ok(());
    }
    // Ranking needs every score first; only (score, text) pairs are kept.
    let mut scores = Vec::new();
    let mut texts = Vec::new();
    stream::drive(&job, ce.model(), inputs, &opts, &mut |s| {
        scores.push(s.first().copied().unwrap_or(f32::NAN));
        texts.push(texts_rx.recv().unwrap_or_default());
        Ok(())
    })?;
    let ranked = rank_scores(scores, a.top_k);
    if !a.json {
        writeln!(out, "Q: {}", query.as_deref().unwrap_or(""))?;
        writeln!(out, "  rank  score     id  text")?;
    }
    for (i, r) in ranked.iter().enumerate() {
        let t = &texts[r.corpus_id];
        if a.json {
            let v = serde_json::json!({"corpus_id": r.corpus_id, "score": r.score, "text": t});
            writeln!(out, "{v}")?;
        } else {
            writeln!(
                out,
                "  {:>4}  {:.5}  {:>3}  {t}",
                i + 1,
                r.score,
                r.corpus_id
            )?;
        }
    }
    out.flush()?;
    Ok(())
}
