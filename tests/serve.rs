//! `bert-wgpu serve`, started for real on a loopback port: every route
//! against the offline library on the same model, and a bounded concurrent
//! load. Errors, auth, backpressure and shutdown: tests/serve_errors.rs.

mod common;
mod serve_util;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use base64::Engine as _;
use bert_wgpu::batch::BatchOptions;
use bert_wgpu::embed::{EmbedderOptions, EncodeOptions, SentenceEmbedder};
use bert_wgpu::pipelines::{classify_pairs, ClassifyOptions, CrossEncoder};
use serde_json::{json, Value};
use serve_util::{check, cpu, embedder, encode_one, st_dir, texts, vectors, Server};

#[test]
fn embed_routes_answer_as_the_offline_embedder() {
    let dir = st_dir("v6-mean-dense-norm");
    let server = Server::start(&dir, &[]);
    let st = embedder(&dir);
    let batch = texts(7, 1);
    let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
    let encode = |o: EncodeOptions| st.encode(&refs, &o).unwrap();

    // The model's default prompt ("query: "), its Dense and Normalize.
    let want = encode(EncodeOptions::default());
    let got = vectors(&server.ok("/embed", &json!({"inputs": batch})));
    let mut worst = check("/embed", &got, &want);
    let one = vectors(&server.ok("/embed", &json!({"inputs": batch[0]})));
    worst = worst.max(check("/embed one", &one, &want[..1]));

    let want = encode(EncodeOptions {
        prompt_name: Some("doc".into()),
        dimensions: Some(5),
        ..Default::default()
    });
    let got = vectors(&server.ok(
        "/embed",
        &json!({"inputs": batch, "prompt_name": "doc", "dimensions": 5}),
    ));
    worst = worst.max(check("/embed doc dims", &got, &want));

    // normalize: false skips the model's Normalize module.
    let raw = SentenceEmbedder::load(
        dir.to_str().unwrap(),
        &cpu(),
        &EmbedderOptions {
            normalize: Some(false),
            ..Default::default()
        },
    )
    .unwrap();
    let want = raw.encode(&refs, &EncodeOptions::default()).unwrap();
    let got = vectors(&server.ok("/embed", &json!({"inputs": batch, "normalize": false})));
    worst = worst.max(check("/embed normalize false", &got, &want));

    // OpenAI: floats, base64 (little-endian f32), token ids as given.
    let want = encode(EncodeOptions::default());
    let v = server.ok("/v1/embeddings", &json!({"input": batch, "model": "m"}));
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "m");
    let got: Vec<Vec<f32>> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["index"], i);
            assert_eq!(d["object"], "embedding");
            common::floats(&d["embedding"])
        })
        .collect();
    worst = worst.max(check("/v1/embeddings", &got, &want));
    let tokens: usize = batch
        .iter()
        .map(|t| {
            st.chain()
                .tokenizer()
                .encode_ids(&format!("query: {t}"))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(v["usage"]["prompt_tokens"], tokens);
    let v = server.ok(
        "/v1/embeddings",
        &json!({"input": batch[2], "encoding_format": "base64"}),
    );
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let got: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    worst = worst.max(check("/v1/embeddings base64", &[got], &want[2..3]));
    let ids = st
        .chain()
        .tokenizer()
        .encode_ids("query: stone bridges")
        .unwrap();
    let v = server.ok("/v1/embeddings", &json!({"input": [ids.clone(), ids]}));
    let want = encode_one(&st, "stone bridges");
    for d in v["data"].as_array().unwrap() {
        worst = worst.max(check(
            "/v1/embeddings ids",
            &[common::floats(&d["embedding"])],
            &want,
        ));
    }
    println!("embed routes: max |server - offline| = {worst:e}");

    // /tokenize: the tokenizer's ids, byte spans into the text.
    let v = server.ok(
        "/tokenize",
        &json!({"inputs": "Stone brïdges", "prompt_name": "document"}),
    );
    let toks = v[0].as_array().unwrap();
    let want = st.chain().tokenizer().encode_ids("Stone brïdges").unwrap();
    let got: Vec<u32> = toks
        .iter()
        .map(|t| t["id"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(got, want);
    assert_eq!(toks[0]["special"], true);
    assert_eq!(toks[0]["start"], Value::Null);
    for t in &toks[1..toks.len() - 1] {
        let (a, b) = (
            t["start"].as_u64().unwrap() as usize,
            t["stop"].as_u64().unwrap() as usize,
        );
        assert_eq!(t["text"].as_str().unwrap(), &"Stone brïdges"[a..b]);
    }

    let (status, info) = server.get("/info");
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["model_type"]["embedding"]["dim"], st.chain().dim());
    assert_eq!(info["max_input_length"], st.chain().max_length());
    assert_eq!(server.get("/health").0, 200);
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("bert_wgpu_requests_total{route=\"embed\",code=\"200\"} 4"),
        "{metrics}"
    );
    assert!(metrics.contains("bert_wgpu_batch_size_count"), "{metrics}");
    assert!(metrics.contains("bert_wgpu_queue_inputs 0"), "{metrics}");
}

#[test]
fn rerank_and_predict_answer_as_the_offline_pipelines() {
    let query = "which boats drift past the hills";
    let docs = texts(6, 2);
    let doc_refs: Vec<&str> = docs.iter().map(String::as_str).collect();

    let dir = st_dir("ce-sigmoid");
    let server = Server::start(&dir, &[]);
    let ce = CrossEncoder::load(dir.to_str().unwrap(), &cpu(), None).unwrap();
    let want = ce
        .rank(query, &doc_refs, None, &BatchOptions::default())
        .unwrap();
    let got = server.ok(
        "/rerank",
        &json!({"query": query, "texts": docs, "return_text": true}),
    );
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g["index"], w.corpus_id);
        assert_eq!(g["text"], docs[w.corpus_id]);
        let s = g["score"].as_f64().unwrap() as f32;
        assert!((s - w.score).abs() <= 1e-5, "rerank {g} vs {w:?}");
    }
    // raw_scores: the logit, whose sigmoid is the score.
    let raw = server.ok(
        "/rerank",
        &json!({"query": query, "texts": docs, "raw_scores": true}),
    );
    for (g, w) in raw.as_array().unwrap().iter().zip(&want) {
        let logit = g["score"].as_f64().unwrap() as f32;
        assert!((1.0 / (1.0 + (-logit).exp()) - w.score).abs() <= 1e-5);
        assert!(g.get("text").is_none());
    }
    // A reranker also predicts; a one-label model's default is sigmoid.
    let p = server.ok("/predict", &json!({"inputs": [query, docs[0]]}));
    let first = want.iter().find(|r| r.corpus_id == 0).unwrap();
    assert!((p[0]["score"].as_f64().unwrap() as f32 - first.score).abs() <= 1e-5);
    let (status, e) = server.post("/embed", &json!({"inputs": "x"}));
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("embedding"), "{e}");
    drop(server);

    // Three labels: /predict equals `classify --top-k all`, single and batch.
    let dir = st_dir("ce-three");
    let server = Server::start(&dir, &[]);
    let model = bert_wgpu::Model::load_dir(&dir, &cpu()).unwrap();
    let opts = ClassifyOptions {
        top_k: None,
        ..Default::default()
    };
    let want = classify_rows(&model, &docs, query, &opts);
    let one = server.ok("/predict", &json!({"inputs": docs[0]}));
    let batch: Vec<Value> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                json!(d)
            } else {
                json!([d, query])
            }
        })
        .collect();
    let many = server.ok("/predict", &json!({"inputs": batch}));
    let mut rows = vec![one];
    rows.extend(many.as_array().unwrap().iter().cloned());
    for (r, (g, w)) in rows.iter().zip(&want).enumerate() {
        let g = g.as_array().unwrap();
        assert_eq!(g.len(), 3);
        for (a, b) in g.iter().zip(w) {
            assert_eq!(a["label"], b.label, "row {r}");
            assert!(
                (a["score"].as_f64().unwrap() as f32 - b.score).abs() <= 1e-5,
                "row {r}"
            );
        }
    }
    let (status, e) = server.post("/rerank", &json!({"query": "q", "texts": ["a"]}));
    assert_eq!(status, 400, "{e}");
}

/// What `classify` gives for the rows `rerank_and_predict...` sends: the
/// first text alone, then each text, every other one paired with `query`.
fn classify_rows(
    model: &bert_wgpu::Model,
    docs: &[String],
    query: &str,
    opts: &ClassifyOptions,
) -> Vec<Vec<bert_wgpu::pipelines::LabelScore>> {
    let mut inputs: Vec<(&str, Option<&str>)> = vec![(docs[0].as_str(), None)];
    for (i, d) in docs.iter().enumerate() {
        inputs.push((d.as_str(), (i % 2 == 1).then_some(query)));
    }
    classify_pairs(model, &inputs, opts).unwrap()
}

#[test]
fn concurrent_clients_each_get_the_offline_answer() {
    // 32 clients × 20 requests of 1-4 mixed-length texts, all sharing the
    // batcher; every answer checked against the offline embedder.
    let dir = st_dir("v6-mean-dense-norm");
    let server = std::sync::Arc::new(Server::start(&dir, &["--max-batch-tokens", "2048"]));
    let st = embedder(&dir);
    let pool = texts(96, 3);
    let refs: Vec<&str> = pool.iter().map(String::as_str).collect();
    let want = std::sync::Arc::new(st.encode(&refs, &EncodeOptions::default()).unwrap());
    let pool = std::sync::Arc::new(pool);
    let handles: Vec<_> = (0..32)
        .map(|c| {
            let (server, want, pool) = (server.clone(), want.clone(), pool.clone());
            std::thread::spawn(move || {
                let mut worst = 0f32;
                for r in 0..20 {
                    let start = (c * 7 + r * 13) % pool.len();
                    let n = 1 + (c + r) % 4;
                    let idx: Vec<usize> = (0..n).map(|k| (start + k * 17) % pool.len()).collect();
                    let inputs: Vec<&String> = idx.iter().map(|&i| &pool[i]).collect();
                    let got = vectors(&server.ok("/embed", &json!({"inputs": inputs})));
                    let w: Vec<Vec<f32>> = idx.iter().map(|&i| want[i].clone()).collect();
                    worst = worst.max(check(&format!("client {c} request {r}"), &got, &w));
                }
                worst
            })
        })
        .collect();
    let worst = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .fold(0f32, f32::max);
    println!("640 concurrent requests: max |server - offline| = {worst:e}");
    let (_, metrics) = server.get("/metrics");
    let batches: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("bert_wgpu_batch_size_count "))
        .unwrap()
        .parse()
        .unwrap();
    let inputs: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("bert_wgpu_inputs_total "))
        .unwrap()
        .parse()
        .unwrap();
    println!("{inputs} inputs in {batches} forward passes");
    assert_eq!(
        inputs as usize,
        (0..32)
            .map(|c| (0..20).map(|r| 1 + (c + r) % 4).sum::<usize>())
            .sum::<usize>()
    );
    // Requests were batched together: fewer passes than requests.
    assert!(batches < 640.0, "{batches} forward passes for 640 requests");
}

#[test]
fn serves_on_the_gpu_as_the_cpu_embeds() {
    let dir = st_dir("v6-mean-dense-norm");
    let mut child = common::bin_command()
        .args([
            "serve",
            "--device",
            "gpu",
            "--auto-truncate",
            "--port",
            "0",
            "--model",
        ])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.is_empty() {
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let _ = child.wait();
        if common::allow_no_gpu() && err.contains("no GPU adapter") {
            println!("NOTE: no GPU adapter; GPU server test not run (BERT_WGPU_ALLOW_NO_GPU=1)");
            return;
        }
        panic!("serve --device gpu did not start: {err}");
    }
    let server = Server {
        addr: line
            .trim()
            .trim_start_matches("listening on http://")
            .to_string(),
        child,
    };
    let batch = texts(5, 4);
    let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
    let want = embedder(&dir)
        .encode(&refs, &EncodeOptions::default())
        .unwrap();
    let got = vectors(&server.ok("/embed", &json!({"inputs": batch})));
    let worst = check("/embed on the GPU", &got, &want);
    println!("GPU server vs CPU offline: max diff {worst:e}");
}
