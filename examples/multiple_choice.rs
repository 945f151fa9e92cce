//! The seed's `BertForMultipleChoice` example: where is the Eiffel Tower —
//! London, Paris, Berlin or Rome? Every option is paired with the question
//! (and context) and run as one (1, 4, seq) batch; the loss is for the
//! right answer, index 1.
//!
//! ```sh
//! cargo run --example multiple_choice [MODEL_DIR_OR_HUB_ID]
//! ```
//!
//! Without an argument it runs the tiny random model of the pipeline
//! fixtures (tests/fixtures/pipelines/mc).

use bert_wgpu::pipelines::{self, ChoiceInput};
use bert_wgpu::{Labels, LoadOptions, Model};

fn main() -> bert_wgpu::Result<()> {
    let source = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pipelines/mc").to_string()
    });
    let model = Model::load(&source, &LoadOptions::default())?;
    println!("model {source} on {}", model.device_name());

    let options: Vec<String> = ["London", "Paris", "Berlin", "Rome"]
        .iter()
        .map(|o| o.to_string())
        .collect();
    let input = ChoiceInput {
        context: Some("The Eiffel Tower is located in Paris.".into()),
        question: "Where is the Eiffel Tower located?".into(),
        options: options.clone(),
    };
    let tok = model
        .tokenizer()
        .ok_or_else(|| bert_wgpu::Error::Tokenizer("no tokenizer.json".into()))?;
    let enc = pipelines::choice_encoding(tok, input.context.as_deref(), &input.question, &options)?;
    println!(
        "input_ids shape = [{}, {}, {}]",
        enc.batch,
        enc.choices.unwrap_or(1),
        enc.seq
    );

    let c = &pipelines::choose(&model, &[input], &Default::default())?[0];
    for (i, (o, s)) in options.iter().zip(&c.scores).enumerate() {
        let mark = if i == c.choice { "*" } else { " " };
        println!("  {mark} {o:<7} {s:.4}");
    }
    println!("choice = {} ({})", c.choice, c.option);

    // labels = torch.tensor([1])  # "Paris"
    let out = model.forward_with_labels(&enc, &Labels::Classes(vec![1]))?;
    println!("loss with label 1 = {:?}", out.loss);
    Ok(())
}
