//! The seed's `BertForSequenceClassification` example: labels and scores for
//! the seed's two sentences, and the loss for label 1.
//!
//! ```sh
//! cargo run --example sequence_classification [MODEL_DIR_OR_HUB_ID]
//! ```
//!
//! Without an argument it runs the tiny random 3-label model of the pipeline
//! fixtures (tests/fixtures/pipelines/seqcls): its scores are meaningless,
//! the mechanics are the real ones.

use bert_wgpu::pipelines::{self, ClassifyOptions};
use bert_wgpu::{Labels, LoadOptions, Model};

fn main() -> bert_wgpu::Result<()> {
    let source = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/pipelines/seqcls"
        )
        .to_string()
    });
    let model = Model::load(&source, &LoadOptions::default())?;
    println!("model {source} on {}", model.device_name());

    let texts = ["I love this movie!", "This is the worst movie I've seen."];
    let all = ClassifyOptions {
        top_k: None,
        ..Default::default()
    };
    for (text, labels) in texts.iter().zip(pipelines::classify(&model, &texts, &all)?) {
        println!("{text:?}");
        for l in labels {
            println!("  {:<10} {:.4}", l.label, l.score);
        }
    }

    // outputs = model(**encoding, labels=torch.tensor([1]))
    let enc = model.tokenize(&[texts[0].to_string()], None)?;
    let out = model.forward_with_labels(&enc, &Labels::Classes(vec![1]))?;
    if let Some(logits) = &out.logits {
        println!("logits {:?} = {:?}", logits.shape, logits.data);
    }
    println!("loss with label 1 = {:?}", out.loss);
    Ok(())
}
