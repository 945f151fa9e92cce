//! Dataset files (JSONL and CSV), their preparation on the seed's own
//! examples, malformed rows, and `bert-wgpu eval` against metrics computed
//! here independently from the model's logits.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bert_wgpu::datasets::{
    align_word_labels, b_to_i_map, choice_pairs, class_index, prepare_qa_spans,
    prepare_token_labels, read_dataset, Dataset, LabelValue, Task,
};
use bert_wgpu::pipelines::{self, ChoiceInput, ClassifyOptions, QaInput, QaOptions};
use bert_wgpu::tokenize::batch_encoding;
use bert_wgpu::{metrics, Error, Model};
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    common::fixtures().join("datasets").join(name)
}

fn model_dir(name: &str) -> PathBuf {
    common::fixtures().join("pipelines").join(name)
}

fn model(name: &str) -> Model {
    common::cpu_model(&model_dir(name))
}

fn tmp_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bert-wgpu-datasets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn dataset_error(path: &Path, task: Task) -> (usize, String, String) {
    match read_dataset(path, task) {
        Err(Error::Dataset {
            path: p,
            row,
            field,
            message,
        }) => {
            assert_eq!(p, path);
            (row, field, message)
        }
        other => panic!(
            "{}: expected a dataset error, got {other:?}",
            path.display()
        ),
    }
}

// ---------------------------------------------------------------- reading

#[test]
fn jsonl_and_csv_variants_read_the_same() {
    let strip = |d: Dataset| -> String {
        // Line numbers differ (blank line, header); compare the rest.
        let s = format!("{d:?}");
        let re_line = |s: &str| {
            let mut out = String::new();
            let mut rest = s;
            while let Some(i) = rest.find("line: ") {
                out.push_str(&rest[..i]);
                let tail = &rest[i + 6..];
                let j = tail.find(',').unwrap_or(tail.len());
                rest = &tail[j..];
            }
            out.push_str(rest);
            out
        };
        re_line(&s)
    };
    for (name, task) in [
        ("seqcls", Task::Classification),
        ("mc", Task::MultipleChoice),
        ("qa", Task::QuestionAnswering),
    ] {
        let j = read_dataset(&data(&format!("{name}.jsonl")), task).unwrap();
        let c = read_dataset(&data(&format!("{name}.csv")), task).unwrap();
        assert!(!j.is_empty());
        assert_eq!(strip(j), strip(c), "{name}");
    }
    // NER: the JSONL uses indices in one row, the CSV names; equal once resolved.
    let cfg = model("ner").config().clone();
    let resolve = |d: Dataset| -> Vec<(Vec<String>, Vec<i64>)> {
        let Dataset::TokenClassification(ex) = d else {
            panic!("not token classification")
        };
        ex.into_iter()
            .map(|e| {
                let l = e
                    .labels
                    .unwrap()
                    .iter()
                    .map(|l| class_index(&cfg, l).unwrap())
                    .collect();
                (e.words, l)
            })
            .collect()
    };
    assert_eq!(
        resolve(read_dataset(&data("ner.jsonl"), Task::TokenClassification).unwrap()),
        resolve(read_dataset(&data("ner.csv"), Task::TokenClassification).unwrap())
    );
}

#[test]
fn reads_the_seed_shapes() {
    let Dataset::Classification(ex) =
        read_dataset(&data("seqcls.jsonl"), Task::Classification).unwrap()
    else {
        panic!()
    };
    assert_eq!(ex[0].text, "I love this movie!");
    assert_eq!(ex[0].label, Some(LabelValue::Name("POSITIVE".into())));
    assert_eq!(ex[2].label, Some(LabelValue::Index(1)));
    // The blank line is skipped; line numbers stay those of the file.
    assert_eq!(ex[3].line, 5);
    assert_eq!(
        ex[4].text_pair.as_deref(),
        Some("The Eiffel Tower is located in Paris.")
    );

    let Dataset::MultipleChoice(ex) = read_dataset(&data("mc.csv"), Task::MultipleChoice).unwrap()
    else {
        panic!()
    };
    assert_eq!(ex[0].options, ["London", "Paris", "Berlin", "Rome"]);
    assert_eq!(ex[0].label, Some(1));
    assert_eq!(ex[1].context, None);
    assert_eq!(ex[2].options.len(), 3, "empty option4 cell is no option");
    // "a, b" quoted cell with a comma.
    assert!(ex[4].context.as_deref().unwrap().contains("busy, and"));

    let Dataset::QuestionAnswering(ex) =
        read_dataset(&data("qa.csv"), Task::QuestionAnswering).unwrap()
    else {
        panic!()
    };
    assert_eq!(ex[0].answers[0].text, "Paris");
    assert_eq!(ex[0].answers[0].start, 31);
    assert_eq!(ex[2].answers.len(), 2);
    assert_eq!(ex[2].answers[1].start, 2);

    let Dataset::TokenClassification(ex) =
        read_dataset(&data("ner.csv"), Task::TokenClassification).unwrap()
    else {
        panic!()
    };
    assert_eq!(ex[0].words, ["John", "lives", "in", "Paris", "!"]);
    assert_eq!(ex[0].line, 2);
}

#[test]
fn csv_quoting_and_line_numbers() {
    let p = tmp_file(
        "quoted.csv",
        "text,label\r\n\"He said \"\"hi\"\", then left\",0\n\"two\nlines\",1\nplain,2\n",
    );
    let Dataset::Classification(ex) = read_dataset(&p, Task::Classification).unwrap() else {
        panic!()
    };
    assert_eq!(ex[0].text, "He said \"hi\", then left");
    assert_eq!(ex[1].text, "two\nlines");
    assert_eq!(
        ex.iter().map(|e| e.line).collect::<Vec<_>>(),
        [2, 3, 5],
        "a record's line is where it starts"
    );
}

// ---------------------------------------------------------------- malformed rows

#[test]
fn malformed_rows_name_file_line_and_field() {
    let cases: &[(&str, &str, Task, usize, &str)] = &[
        (
            "bad.jsonl",
            "{\"text\": \"ok\", \"label\": 0}\n\n{\"text\": \"broken\", \n",
            Task::Classification,
            3,
            "(row)",
        ),
        (
            "notext.jsonl",
            "{\"text\": \"ok\"}\n{\"label\": 1}\n",
            Task::Classification,
            2,
            "text",
        ),
        (
            "textnum.jsonl",
            "{\"text\": 5}\n",
            Task::Classification,
            1,
            "text",
        ),
        (
            "cells.csv",
            "text,label\nok,1\ntoo,many,cells\n",
            Task::Classification,
            3,
            "(row)",
        ),
        (
            "quote.csv",
            "text,label\nok,1\n\"never closed,1\n",
            Task::Classification,
            3,
            "column 1",
        ),
        (
            "nerlen.jsonl",
            "{\"words\": [\"John\", \"lives\"], \"labels\": [\"B-PER\"]}\n",
            Task::TokenClassification,
            1,
            "labels",
        ),
        (
            "nerlen.csv",
            "words,labels\nJohn lives,B-PER O\nJohn lives,B-PER\n",
            Task::TokenClassification,
            3,
            "labels",
        ),
        (
            "mcopts.jsonl",
            "{\"question\": \"q\", \"options\": [\"a\"], \"label\": 0}\n",
            Task::MultipleChoice,
            1,
            "options",
        ),
        (
            "mclabel.csv",
            "question,option1,option2,label\nq,a,b,2\n",
            Task::MultipleChoice,
            2,
            "label",
        ),
        (
            "mclabel2.csv",
            "question,option1,option2,label\nq,a,b,first\n",
            Task::MultipleChoice,
            2,
            "label",
        ),
        (
            "qaspan.jsonl",
            "{\"question\": \"q?\", \"context\": \"The tower is in Paris.\", \"answer_text\": \"Paris\", \"answer_start\": 3}\n",
            Task::QuestionAnswering,
            1,
            "answer_start",
        ),
        (
            "qapast.csv",
            "question,context,answer_text,answer_start\nq?,short,Paris,3\n",
            Task::QuestionAnswering,
            2,
            "answer_start",
        ),
        (
            "qactx.jsonl",
            "{\"question\": \"q?\"}\n",
            Task::QuestionAnswering,
            1,
            "context",
        ),
    ];
    for (name, content, task, line, field) in cases {
        let p = tmp_file(name, content);
        let (row, f, msg) = dataset_error(&p, *task);
        assert_eq!((row, f.as_str()), (*line, *field), "{name}: {msg}");
        let shown = Error::Dataset {
            path: p.clone(),
            row,
            field: f.clone(),
            message: msg,
        }
        .to_string();
        assert!(
            shown.contains(&*p.to_string_lossy()) && shown.contains(&format!("line {line}")),
            "{shown}"
        );
    }
}

// ---------------------------------------------------------------- preparation

/// A file with bytes that are not UTF-8, through the library and through
/// every subcommand that takes `--data`: an input error (exit 2) naming the
/// file, the line and the byte.
#[test]
fn files_that_are_not_utf8_name_the_line() {
    let dir = std::env::temp_dir().join(format!("bert-wgpu-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jsonl = dir.join("bad.jsonl");
    std::fs::write(
        &jsonl,
        // Line 1 is a valid row for every task (the job streams: it runs
        // before line 2 is read).
        b"{\"text\": \"fine\", \"label\": 1, \"question\": \"q\", \"context\": \"c\", \"options\": [\"a\", \"b\"], \"words\": [\"fine\"], \"labels\": [\"O\"]}\n{\"text\": \"caf\xe9\", \"label\": 0}\n",
    )
    .unwrap();
    let csv = dir.join("bad.csv");
    std::fs::write(&csv, b"text,label\nfine,1\nok,0\n\xff\xfe,1\n").unwrap();
    for (path, line, byte) in [(&jsonl, 2, 14), (&csv, 4, 1)] {
        let (row, field, message) = dataset_error(path, Task::Classification);
        assert_eq!((row, field.as_str()), (line, ""), "{}", path.display());
        assert!(
            message.contains(&format!("byte {byte} of the line")) && message.contains("UTF-8"),
            "{message}"
        );
    }
    // Each subcommand with a model of its task: the data, read as the job
    // streams, is what fails.
    let dir_of = |name: &str| model_dir(name).to_str().unwrap().to_string();
    let (seqcls, ner, qa, mc) = (dir_of("seqcls"), dir_of("ner"), dir_of("qa"), dir_of("mc"));
    let j = jsonl.to_str().unwrap();
    for args in [
        vec!["embed", "--device", "cpu", "--model", &seqcls, "--data", j],
        vec![
            "classify", "--device", "cpu", "--model", &seqcls, "--data", j,
        ],
        vec!["ner", "--device", "cpu", "--model", &ner, "--data", j],
        vec!["qa", "--device", "cpu", "--model", &qa, "--data", j],
        vec!["choose", "--device", "cpu", "--model", &mc, "--data", j],
        vec![
            "eval", "--task", "classify", "--device", "cpu", "--model", &seqcls, "--data", j,
        ],
    ] {
        let out = bin(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("bad.jsonl: line 2:") && err.contains("not valid UTF-8"),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: one line: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn word_labels_to_sub_tokens_on_the_seed_sentence() {
    // "John lives in Paris!": John/B-PER lives/O in/O Paris/B-LOC !/O
    let m = model("ner");
    let cfg = m.config();
    let words: Vec<String> = ["John", "lives", "in", "Paris", "!"]
        .map(String::from)
        .to_vec();
    let labels: Vec<i64> = ["B-PER", "O", "O", "B-LOC", "O"]
        .iter()
        .map(|l| class_index(cfg, &LabelValue::Name(l.to_string())).unwrap())
        .collect();
    assert_eq!(labels, [1, 0, 0, 3, 0]);
    let tok = m.tokenizer().unwrap();
    let f = prepare_token_labels(tok, &words, &labels, false).unwrap();
    assert_eq!(
        f.encoded.tokens,
        ["[CLS]", "john", "live", "##s", "in", "paris", "!", "[SEP]"]
    );
    // first sub-token labelled, the rest and the specials -100
    assert_eq!(f.labels, [-100, 1, 0, -100, 0, 3, 0, -100]);
    let all = prepare_token_labels(tok, &words, &labels, true).unwrap();
    assert_eq!(all.labels, [-100, 1, 0, 0, 0, 3, 0, -100]);
}

#[test]
fn align_word_labels_variants() {
    let word_ids = [None, Some(0), Some(1), Some(1), Some(2), None];
    assert_eq!(
        align_word_labels(&word_ids, &[1, 3, 0], false, None),
        [-100, 1, 3, -100, 0, -100]
    );
    assert_eq!(
        align_word_labels(&word_ids, &[1, 3, 0], true, None),
        [-100, 1, 3, 3, 0, -100]
    );
    // run_ner.py's B- -> I- for the following sub-tokens.
    let m = model("ner");
    let map = b_to_i_map(m.config());
    assert_eq!(map, [0, 2, 2, 4, 4, 6, 6]);
    let f = move |l: i64| map[l as usize];
    assert_eq!(
        align_word_labels(&word_ids, &[1, 3, 0], true, Some(&f)),
        [-100, 1, 3, 4, 0, -100]
    );
}

#[test]
fn qa_span_of_the_seed_answer() {
    // The Eiffel Tower question: "Paris" starts at character 31.
    let m = model("qa");
    let tok = m.tokenizer().unwrap();
    let q = "Where is the Eiffel Tower located?";
    let c = "The Eiffel Tower is located in Paris.";
    assert_eq!(&c[31..36], "Paris");
    let f = prepare_qa_spans(tok, q, c, Some(("Paris", 31)), 384, 128).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].start_position, f[0].end_position), (21, 21));
    assert_eq!(f[0].encoded.tokens[21], "paris");
    let f = prepare_qa_spans(tok, q, c, Some(("Eiffel Tower", 4)), 384, 128).unwrap();
    assert_eq!(
        &f[0].encoded.tokens[f[0].start_position..=f[0].end_position],
        ["e", "##iff", "##el", "tower"]
    );
    // Small windows: the answer is wholly inside some windows, the others
    // point at [CLS] = 0.
    let long = format!(
        "{} {c} {}",
        "the old city has a long history .".repeat(3),
        "many quiet streets .".repeat(3)
    );
    let start = long.find("Paris").unwrap();
    let f = prepare_qa_spans(tok, q, &long, Some(("Paris", start)), 24, 4).unwrap();
    assert!(f.len() > 3, "{} windows", f.len());
    let mut found = 0;
    for w in &f {
        assert!(w.encoded.len() <= 24);
        if w.start_position == 0 {
            assert_eq!(w.end_position, 0);
            continue;
        }
        found += 1;
        assert_eq!(w.encoded.tokens[w.start_position], "paris");
        assert_eq!(w.start_position, w.end_position);
    }
    assert!(found >= 1);
    // An answer that ends the context (run_qa.py's unbounded scan would run
    // into [SEP] here; the course's bounded one does not).
    let f = prepare_qa_spans(
        tok,
        q,
        "The tower is in Paris",
        Some(("Paris", 16)),
        384,
        128,
    )
    .unwrap();
    assert_eq!(f[0].encoded.tokens[f[0].start_position], "paris");
    assert_eq!(f[0].start_position, f[0].end_position);
    assert_eq!(f[0].encoded.tokens[f[0].end_position + 1], "[SEP]");
    // No answer: every window on [CLS].
    assert!(prepare_qa_spans(tok, q, &long, None, 24, 4)
        .unwrap()
        .iter()
        .all(|w| (w.start_position, w.end_position) == (0, 0)));
}

#[test]
fn multiple_choice_pairing_of_the_seed_question() {
    let q = "Where is the Eiffel Tower located?";
    let c = "The Eiffel Tower is located in Paris.";
    let options: Vec<String> = ["London", "Paris", "Berlin", "Rome"]
        .map(String::from)
        .to_vec();
    let p = choice_pairs(Some(c), q, &options);
    assert_eq!(p[1], (c.to_string(), format!("{q} Paris")));
    let p = choice_pairs(None, q, &options);
    assert_eq!(p[3], (q.to_string(), "Rome".to_string()));
    let m = model("mc");
    let enc = pipelines::choice_encoding(m.tokenizer().unwrap(), Some(c), q, &options).unwrap();
    assert_eq!((enc.batch, enc.choices), (1, Some(4)));
    assert_eq!(enc.input_ids.len(), 4 * enc.seq);
    let cls = m.tokenizer().unwrap().cls_id().unwrap();
    for row in enc.input_ids.chunks(enc.seq) {
        assert_eq!(row[0], cls);
    }
}

// ---------------------------------------------------------------- eval

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bert-wgpu"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env("HF_HUB_OFFLINE", "1")
        .args(args)
        .output()
        .unwrap()
}

fn eval_json(model: &str, task: &str, file: &Path, extra: &[&str]) -> Value {
    let md = model_dir(model);
    let mut args = vec![
        "eval",
        "--task",
        task,
        "--model",
        md.to_str().unwrap(),
        "--device",
        "cpu",
        "--data",
        file.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = bin(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "eval {task} {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    serde_json::from_str(lines[0]).unwrap()
}

fn assert_metric(r: &Value, key: &str, want: f64, tol: f64) {
    let got = r[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no `{key}` in {r}"));
    assert!(
        (got - want).abs() <= tol,
        "{key}: eval printed {got}, computed {want} ({r})"
    );
}

/// -log softmax(row)[t], in f64.
fn nll(row: &[f32], t: usize) -> f64 {
    let max = row
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let lse = max
        + row
            .iter()
            .map(|&v| (f64::from(v) - max).exp())
            .sum::<f64>()
            .ln();
    lse - f64::from(row[t])
}

fn logits_of(m: &Model, texts: &[(&str, Option<&str>)]) -> Vec<Vec<f32>> {
    let tok = m.tokenizer().unwrap();
    texts
        .iter()
        .map(|(t, p)| {
            let e = tok.encode_one(t, *p).unwrap();
            let enc = batch_encoding(&[&e], tok.pad_id()).unwrap();
            m.forward(&enc).unwrap().logits.unwrap().data
        })
        .collect()
}

#[test]
fn eval_classification_equals_independent_metrics() {
    let m = model("seqcls");
    let Dataset::Classification(ex) =
        read_dataset(&data("seqcls.jsonl"), Task::Classification).unwrap()
    else {
        panic!()
    };
    let cfg = m.config();
    let gold: Vec<usize> = ex
        .iter()
        .map(|e| class_index(cfg, e.label.as_ref().unwrap()).unwrap() as usize)
        .collect();
    let inputs: Vec<(&str, Option<&str>)> = ex
        .iter()
        .map(|e| (e.text.as_str(), e.text_pair.as_deref()))
        .collect();
    // accuracy from the pipeline's top label
    let top = pipelines::classify_pairs(&m, &inputs, &ClassifyOptions::default()).unwrap();
    let pred: Vec<usize> = top
        .iter()
        .map(|l| {
            (0..cfg.num_labels)
                .find(|&i| cfg.label_name(i) == l[0].label)
                .unwrap()
        })
        .collect();
    let acc = metrics::accuracy(&pred, &gold);
    // loss: mean cross-entropy, each example run alone
    let logits = logits_of(&m, &inputs);
    let loss = logits
        .iter()
        .zip(&gold)
        .map(|(l, &g)| nll(l, g))
        .sum::<f64>()
        / ex.len() as f64;
    for file in ["seqcls.jsonl", "seqcls.csv"] {
        for bs in ["16", "2"] {
            let r = eval_json("seqcls", "classify", &data(file), &["--batch-size", bs]);
            assert_eq!(r["examples"], 6);
            assert_metric(&r, "accuracy", acc, 1e-12);
            assert_metric(&r, "loss", loss, 1e-5);
        }
    }
}

#[test]
fn eval_multilabel_and_regression() {
    // multi-label: BCE over every label; accuracy = all labels right at 0.5.
    let m = model("seqcls-multilabel");
    let rows: [(&str, [f32; 4]); 3] = [
        ("I love this movie!", [0.0, 0.0, 1.0, 1.0]),
        (
            "The city council meets every week to talk about new roads, schools and gardens.",
            [0.0, 1.0, 0.0, 0.0],
        ),
        (
            "Children play football in the park while their parents talk and read the news.",
            [1.0, 0.0, 0.0, 0.0],
        ),
    ];
    let inputs: Vec<(&str, Option<&str>)> = rows.iter().map(|(t, _)| (*t, None)).collect();
    let logits = logits_of(&m, &inputs);
    let mut bce = 0.0;
    let mut right = 0;
    for (l, (_, y)) in logits.iter().zip(&rows) {
        let mut all = true;
        for (&x, &t) in l.iter().zip(y) {
            let (x, t) = (f64::from(x), f64::from(t));
            bce += x.max(0.0) - x * t + (-x.abs()).exp().ln_1p();
            all &= (1.0 / (1.0 + (-x).exp()) >= 0.5) == (t >= 0.5);
        }
        right += usize::from(all);
    }
    let r = eval_json(
        "seqcls-multilabel",
        "classify",
        &data("seqcls-multilabel.jsonl"),
        &[],
    );
    assert_metric(&r, "loss", bce / 12.0, 1e-5);
    assert_metric(&r, "accuracy", right as f64 / 3.0, 1e-12);

    // regression: MSE
    let m = model("seqcls-regression");
    let rows = [
        ("I love this movie!", 0.9),
        ("This is the worst movie I've seen.", 0.1),
        ("John lives in Paris!", 0.5),
    ];
    let inputs: Vec<(&str, Option<&str>)> = rows.iter().map(|(t, _)| (*t, None)).collect();
    let logits = logits_of(&m, &inputs);
    let mse = logits
        .iter()
        .zip(&rows)
        .map(|(l, (_, y))| (f64::from(l[0]) - y).powi(2))
        .sum::<f64>()
        / 3.0;
    let r = eval_json(
        "seqcls-regression",
        "classify",
        &data("seqcls-regression.csv"),
        &[],
    );
    assert_metric(&r, "mse", mse, 1e-4);
    assert_metric(&r, "loss", mse, 1e-4);
}

#[test]
fn eval_token_classification_equals_independent_metrics() {
    let m = model("ner");
    let cfg = m.config().clone();
    let tok = m.tokenizer().unwrap();
    let Dataset::TokenClassification(ex) =
        read_dataset(&data("ner.jsonl"), Task::TokenClassification).unwrap()
    else {
        panic!()
    };
    let (mut gold, mut pred) = (Vec::new(), Vec::new());
    let (mut nll_sum, mut count, mut per_example) = (0.0, 0usize, 0.0);
    for e in &ex {
        let enc = tok.encode_words(&e.words).unwrap();
        let logits = m
            .forward(&batch_encoding(&[&enc], tok.pad_id()).unwrap())
            .unwrap()
            .logits
            .unwrap()
            .data;
        let n = cfg.num_labels;
        let (mut g, mut p) = (Vec::new(), Vec::new());
        let (mut s, mut c) = (0.0, 0usize);
        let mut prev = None;
        for (t, w) in enc.word_ids.iter().enumerate() {
            // the first sub-token of each word carries the word's label
            if w.is_none() || *w == prev {
                prev = *w;
                continue;
            }
            prev = *w;
            let label =
                class_index(&cfg, &e.labels.as_ref().unwrap()[w.unwrap() as usize]).unwrap();
            let row = &logits[t * n..(t + 1) * n];
            let best = (0..n).fold(0, |b, i| if row[i] > row[b] { i } else { b });
            g.push(cfg.label_name(label as usize));
            p.push(cfg.label_name(best));
            s += nll(row, label as usize);
            c += 1;
        }
        assert_eq!(g.len(), e.words.len());
        nll_sum += s;
        count += c;
        per_example += s / c as f64;
        gold.push(g);
        pred.push(p);
    }
    let scores = metrics::seqeval(&gold, &pred);
    let flat_g: Vec<&String> = gold.iter().flatten().collect();
    let flat_p: Vec<&String> = pred.iter().flatten().collect();
    let acc = metrics::accuracy(&flat_p, &flat_g);
    for file in ["ner.jsonl", "ner.csv"] {
        // one batch: the loss is the mean over all labelled tokens
        let r = eval_json("ner", "ner", &data(file), &[]);
        assert_metric(&r, "loss", nll_sum / count as f64, 1e-5);
        assert_metric(&r, "precision", scores.precision, 1e-12);
        assert_metric(&r, "recall", scores.recall, 1e-12);
        assert_metric(&r, "f1", scores.f1, 1e-12);
        assert_metric(&r, "accuracy", acc, 1e-12);
        // batches of one: the mean of the per-example losses
        let r = eval_json("ner", "ner", &data(file), &["--batch-size", "1"]);
        assert_metric(&r, "loss", per_example / ex.len() as f64, 1e-5);
        assert_metric(&r, "f1", scores.f1, 1e-12);
    }
    assert!(scores.gold > 0);
}

#[test]
fn eval_multiple_choice_equals_independent_metrics() {
    let m = model("mc");
    let Dataset::MultipleChoice(ex) =
        read_dataset(&data("mc.jsonl"), Task::MultipleChoice).unwrap()
    else {
        panic!()
    };
    let inputs: Vec<ChoiceInput> = ex
        .iter()
        .map(|e| ChoiceInput {
            context: e.context.clone(),
            question: e.question.clone(),
            options: e.options.clone(),
        })
        .collect();
    let out = pipelines::choose(&m, &inputs, &Default::default()).unwrap();
    let gold: Vec<usize> = ex.iter().map(|e| e.label.unwrap()).collect();
    let pred: Vec<usize> = out.iter().map(|c| c.choice).collect();
    let loss = out
        .iter()
        .zip(&gold)
        .map(|(c, &g)| nll(&c.logits, g))
        .sum::<f64>()
        / ex.len() as f64;
    for file in ["mc.jsonl", "mc.csv"] {
        for bs in ["16", "1"] {
            let r = eval_json("mc", "choose", &data(file), &["--batch-size", bs]);
            assert_eq!(r["examples"], 5);
            assert_metric(&r, "accuracy", metrics::accuracy(&pred, &gold), 1e-12);
            assert_metric(&r, "loss", loss, 1e-5);
        }
    }
}

#[test]
fn eval_question_answering_equals_independent_metrics() {
    let m = model("qa");
    let tok = m.tokenizer().unwrap();
    let Dataset::QuestionAnswering(ex) =
        read_dataset(&data("qa.jsonl"), Task::QuestionAnswering).unwrap()
    else {
        panic!()
    };
    let inputs: Vec<QaInput> = ex
        .iter()
        .map(|e| QaInput::new(e.question.clone(), e.context.clone()))
        .collect();
    let answers = pipelines::qa(&m, &inputs, &QaOptions::default()).unwrap();
    let pairs: Vec<(String, Vec<String>)> = answers
        .iter()
        .zip(&ex)
        .map(|(a, e)| {
            (
                a.first().map(|a| a.answer.clone()).unwrap_or_default(),
                e.answers.iter().map(|g| g.text.clone()).collect(),
            )
        })
        .collect();
    let squad = metrics::squad(&pairs);
    // loss: (CE(start) + CE(end)) / 2 per window, mean over windows
    let (mut loss, mut windows) = (0.0, 0usize);
    for e in &ex {
        let a = &e.answers[0];
        for f in prepare_qa_spans(
            tok,
            &e.question,
            &e.context,
            Some((&a.text, a.start)),
            384,
            128,
        )
        .unwrap()
        {
            let o = m
                .forward(&batch_encoding(&[&f.encoded], tok.pad_id()).unwrap())
                .unwrap();
            let (s, en) = (o.start_logits.unwrap().data, o.end_logits.unwrap().data);
            loss += (nll(&s, f.start_position) + nll(&en, f.end_position)) / 2.0;
            windows += 1;
        }
    }
    for file in ["qa.jsonl", "qa.csv"] {
        let r = eval_json("qa", "qa", &data(file), &[]);
        assert_eq!(r["examples"], 4);
        assert_metric(&r, "exact_match", squad.exact_match, 1e-9);
        assert_metric(&r, "f1", squad.f1, 1e-9);
        assert_metric(&r, "loss", loss / windows as f64, 1e-5);
    }
}

#[test]
fn eval_human_output_and_bad_rows() {
    let md = model_dir("seqcls");
    let out = bin(&[
        "eval",
        "--task",
        "classify",
        "--model",
        md.to_str().unwrap(),
        "--device",
        "cpu",
        "--data",
        data("seqcls.csv").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    for k in ["task", "examples", "loss", "accuracy"] {
        assert!(s.lines().any(|l| l.starts_with(k)), "{k} missing in:\n{s}");
    }
    // progress bar stays off when stderr is not a terminal
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A label the model does not have: the row and field are named, nothing printed.
    let p = tmp_file(
        "badlabel.jsonl",
        "{\"text\": \"a\", \"label\": \"POSITIVE\"}\n{\"text\": \"b\", \"label\": \"HAPPY\"}\n",
    );
    let out = bin(&[
        "eval",
        "--task",
        "classify",
        "--model",
        md.to_str().unwrap(),
        "--device",
        "cpu",
        "--data",
        p.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    for w in ["badlabel.jsonl", "line 2", "`label`", "HAPPY", "NEGATIVE"] {
        assert!(err.contains(w), "`{w}` not in {err}");
    }
    // A malformed row in a --data file of a pipeline subcommand: same.
    let p = tmp_file("broken.csv", "text\nfine\n\"open quote\n");
    let out = bin(&[
        "classify",
        "--model",
        md.to_str().unwrap(),
        "--device",
        "cpu",
        "--data",
        p.to_str().unwrap(),
        "first text on the command line",
    ]);
    assert_eq!(out.status.code(), Some(2));
    // Everything before the malformed row is written, in order, then its
    // error names the file and line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.find("first text on the command line");
    let fine = stdout.find("\"fine\"");
    assert!(
        matches!((first, fine), (Some(a), Some(b)) if a < b),
        "both rows before the bad one, in order: {stdout}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.csv") && err.contains("line 3"),
        "{err}"
    );
}

#[test]
fn eval_streams_windows_to_the_same_report() {
    // Windows of one or two rows (read, run and summed a window at a time)
    // give what one window over the whole file gives, for every task, when
    // batches are of one example (the loss then does not depend on how
    // examples are grouped).
    for (m, task, file) in [
        ("seqcls", "classify", "seqcls.jsonl"),
        ("ner", "ner", "ner.jsonl"),
        ("mc", "choose", "mc.jsonl"),
        ("qa", "qa", "qa.jsonl"),
    ] {
        let whole = eval_json(m, task, &data(file), &["--batch-size", "1"]);
        for w in ["1", "2"] {
            let r = eval_json(m, task, &data(file), &["--batch-size", "1", "--window", w]);
            let (a, b) = (whole.as_object().unwrap(), r.as_object().unwrap());
            assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
            for (k, v) in a {
                match v.as_f64() {
                    Some(x) => assert!(
                        (x - b[k].as_f64().unwrap()).abs() <= 1e-9,
                        "{task} window {w}: {k} {x} vs {}",
                        b[k]
                    ),
                    None => assert_eq!(v, &b[k]),
                }
            }
        }
    }
    // A bad row after good ones: the error names it, nothing is printed.
    let p = tmp_file(
        "late-bad.jsonl",
        &format!(
            "{}{{\"text\": \"b\", \"label\": \"HAPPY\"}}\n",
            "{\"text\": \"a\", \"label\": \"POSITIVE\"}\n".repeat(5)
        ),
    );
    let md = model_dir("seqcls");
    let out = bin(&[
        "eval",
        "--task",
        "classify",
        "--model",
        md.to_str().unwrap(),
        "--device",
        "cpu",
        "--data",
        p.to_str().unwrap(),
        "--window",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 6") && err.contains("HAPPY"), "{err}");
}
