//! The seed's `BertForTokenClassification` example: entities in "John lives
//! in Paris!", and the loss for the word labels B-PER O O B-LOC O aligned
//! to sub-tokens.
//!
//! ```sh
//! cargo run --example token_classification [MODEL_DIR_OR_HUB_ID]
//! ```
//!
//! Without an argument it runs the tiny random BIO model of the pipeline
//! fixtures (tests/fixtures/pipelines/ner).

use bert_wgpu::datasets::{class_index, prepare_token_labels, LabelValue};
use bert_wgpu::pipelines::{self, Aggregation, NerOptions};
use bert_wgpu::tokenize::batch_encoding;
use bert_wgpu::{Labels, LoadOptions, Model};

fn main() -> bert_wgpu::Result<()> {
    let source = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pipelines/ner").to_string()
    });
    let model = Model::load(&source, &LoadOptions::default())?;
    println!("model {source} on {}", model.device_name());

    let sentence = "John lives in Paris!";
    for aggregation in [Aggregation::None, Aggregation::Simple] {
        let opts = NerOptions {
            aggregation,
            ..Default::default()
        };
        println!("{sentence:?}, aggregation {aggregation:?}:");
        for e in &pipelines::ner(&model, &[sentence], &opts)?[0] {
            println!(
                "  {:<8} {:<6} {:.4}  chars {}..{}",
                e.word, e.label, e.score, e.start, e.end
            );
        }
    }

    // Word labels -> sub-token labels (first sub-token labelled, the rest -100).
    let words: Vec<String> = ["John", "lives", "in", "Paris", "!"]
        .iter()
        .map(|w| w.to_string())
        .collect();
    let tags = ["B-PER", "O", "O", "B-LOC", "O"];
    let cfg = model.config();
    let mut ids = Vec::new();
    for t in tags {
        ids.push(class_index(cfg, &LabelValue::Name(t.into())).map_err(bert_wgpu::Error::Labels)?);
    }
    let tok = model
        .tokenizer()
        .ok_or_else(|| bert_wgpu::Error::Tokenizer("no tokenizer.json".into()))?;
    let feature = prepare_token_labels(tok, &words, &ids, false)?;
    println!("tokens {:?}", feature.encoded.tokens);
    println!("labels {:?}", feature.labels);
    let enc = batch_encoding(&[&feature.encoded], tok.pad_id())?;
    let out = model.forward_with_labels(&enc, &Labels::Classes(feature.labels.clone()))?;
    if let Some(logits) = &out.logits {
        println!("logits.shape = {:?}", logits.shape);
    }
    println!("loss = {:?}", out.loss);
    Ok(())
}
