//! The seed's `BertModel` example: the hidden states of "Hello, how are you?"
//! and its sentence embedding.
//!
//! ```sh
//! cargo run --example base_model [MODEL_DIR_OR_HUB_ID]
//! ```
//!
//! Without an argument it runs the tiny random model of the pipeline
//! fixtures (tests/fixtures/pipelines/seqcls, loaded as a plain `BertModel`).

use bert_wgpu::pipelines::{self, EmbedOptions};
use bert_wgpu::{Head, LoadOptions, Model};

fn main() -> bert_wgpu::Result<()> {
    let source = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/pipelines/seqcls"
        )
        .to_string()
    });
    let model = Model::load(
        &source,
        &LoadOptions {
            head: Some(Head::Base),
            ..Default::default()
        },
    )?;
    println!("model {source} on {}", model.device_name());

    // inputs = tokenizer("Hello, how are you?", return_tensors="pt")
    // outputs = model(**inputs)
    let text = "Hello, how are you?";
    let enc = model.tokenize(&[text.to_string()], None)?;
    let out = model.forward(&enc)?;
    if let Some(h) = &out.last_hidden_state {
        // [batch_size, sequence_length, hidden_size]
        println!("last_hidden_state.shape = {:?}", h.shape);
    }
    if let Some(p) = &out.pooler_output {
        println!("pooler_output.shape     = {:?}", p.shape);
    }

    let (tokens, rows) = pipelines::hidden_states(&model, text)?;
    for (t, row) in tokens.iter().zip(&rows) {
        let head: Vec<String> = row.iter().take(4).map(|x| format!("{x:+.4}")).collect();
        println!("  {t:<8} [{}, ...]", head.join(", "));
    }

    let emb = pipelines::embed(&model, &[text], &EmbedOptions::default())?;
    println!(
        "sentence embedding (mean pooling, L2-normalised): {} dims",
        emb[0].len()
    );
    Ok(())
}
