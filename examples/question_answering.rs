//! The seed's `BertForQuestionAnswering` example: "Where is the Eiffel Tower
//! located?" over "The Eiffel Tower is located in Paris." — the answer span
//! with its character offsets, and the loss for the gold answer "Paris"
//! (character 31) turned into token start/end positions.
//!
//! ```sh
//! cargo run --example question_answering [MODEL_DIR_OR_HUB_ID]
//! ```
//!
//! Without an argument it runs the tiny random model of the pipeline
//! fixtures (tests/fixtures/pipelines/qa).

use bert_wgpu::datasets::prepare_qa_spans;
use bert_wgpu::pipelines::{self, render, QaInput, QaOptions};
use bert_wgpu::tokenize::batch_encoding;
use bert_wgpu::{Labels, LoadOptions, Model};

fn main() -> bert_wgpu::Result<()> {
    let source = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pipelines/qa").to_string()
    });
    let model = Model::load(&source, &LoadOptions::default())?;
    println!("model {source} on {}", model.device_name());

    let question = "Where is the Eiffel Tower located?";
    let context = "The Eiffel Tower is located in Paris.";
    let opts = QaOptions {
        top_k: 3,
        ..Default::default()
    };
    let answers = pipelines::qa(&model, &[QaInput::new(question, context)], &opts)?;
    print!("{}", render::answers_table(question, context, &answers[0]));

    // start_positions / end_positions from the character span of "Paris".
    let tok = model
        .tokenizer()
        .ok_or_else(|| bert_wgpu::Error::Tokenizer("no tokenizer.json".into()))?;
    let feats = prepare_qa_spans(tok, question, context, Some(("Paris", 31)), 384, 128)?;
    let f = &feats[0];
    println!(
        "gold answer tokens {}..={} = {:?}",
        f.start_position,
        f.end_position,
        &f.encoded.tokens[f.start_position..=f.end_position]
    );
    let enc = batch_encoding(&[&f.encoded], tok.pad_id())?;
    let out = model.forward_with_labels(
        &enc,
        &Labels::Spans {
            start: vec![f.start_position as i64],
            end: vec![f.end_position as i64],
        },
    )?;
    if let (Some(s), Some(e)) = (&out.start_logits, &out.end_logits) {
        println!(
            "start_logits.shape = {:?}, end_logits.shape = {:?}",
            s.shape, e.shape
        );
    }
    println!("loss = {:?}", out.loss);
    Ok(())
}
