//! Bad `infer` lines: every one is `Error::Line` with the right line number and
//! a message naming the field; valid lines for every head parse and run.

mod common;

use bert_wgpu::infer::{parse_request, run_line};
use bert_wgpu::{Error, Model};
use common::{cpu_model, minilm_dir, tiny_dir};
use serde_json::Value;

/// Runs `line` as line `line_no` and returns the message of the
/// `Error::Line` it must fail with.
fn line_error(model: &Model, tag: &str, line_no: usize, line: &str) -> String {
    match run_line(model, line_no, line) {
        Ok(out) => panic!(
            "{tag}: line accepted: {line}\n -> {}",
            &out[..out.len().min(200)]
        ),
        Err(Error::Line { line, message }) => {
            assert_eq!(line, line_no, "{tag}: wrong line number ({message})");
            let text = Error::Line {
                line,
                message: message.clone(),
            }
            .to_string();
            assert!(
                text.starts_with(&format!("input line {line_no}: ")),
                "{tag}: {text}"
            );
            assert!(
                !message.contains('\n'),
                "{tag}: multi-line message: {message}"
            );
            message
        }
        Err(other) => panic!("{tag}: expected Error::Line, got {other:?}"),
    }
}

/// Table runner: (tag, line, words the message must contain).
fn check_table(model: &Model, cases: &[(&str, String, Vec<&str>)]) {
    for (i, (tag, line, words)) in cases.iter().enumerate() {
        let line_no = 3 * i + 2;
        let msg = line_error(model, tag, line_no, line);
        for w in words {
            assert!(msg.contains(w), "{tag}: `{w}` not in: {msg}");
        }
    }
}

fn s(x: &str) -> String {
    x.to_string()
}

#[test]
fn bad_inputs_base_model() {
    let model = cpu_model(&tiny_dir("base-gelu"));
    let long: Vec<u32> = (0..513).map(|i| 1 + i % 90).collect();
    let ids_513 = serde_json::to_string(&vec![long]).unwrap();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        // Ranges (checked against config.json).
        (
            "id_eq_vocab",
            s(r#"{"input_ids": [[2, 5, 99]]}"#),
            vec!["input_ids[0][2]", "99", "< 99"],
        ),
        (
            "id_far_past_vocab",
            s(r#"{"input_ids": [[2, 5], [7, 100000]]}"#),
            vec!["input_ids[1][1]", "100000", "< 99"],
        ),
        (
            "type_id_eq_type_vocab",
            s(r#"{"input_ids": [[2, 5]], "token_type_ids": [[0, 2]]}"#),
            vec!["token_type_ids[0][1]", "2", "< 2"],
        ),
        (
            "mask_value_2",
            s(r#"{"input_ids": [[2, 5]], "attention_mask": [[2, 1]]}"#),
            vec!["attention_mask[0][0]", "< 2"],
        ),
        (
            "seq_513",
            format!(r#"{{"input_ids": {ids_513}}}"#),
            vec!["513", "max_position_embeddings", "512"],
        ),
        // Shapes.
        (
            "ragged_rows",
            s(r#"{"input_ids": [[2, 5, 6], [2, 5]]}"#),
            vec!["input_ids[1]", "2 entries", "3"],
        ),
        (
            "ragged_nesting",
            s(r#"{"input_ids": [[2, [5]]]}"#),
            vec!["input_ids[0][1]"],
        ),
        (
            "ragged_nesting_number_first",
            s(r#"{"input_ids": [[2, 5], 6]}"#),
            vec!["input_ids[1]"],
        ),
        (
            "mask_longer_than_ids",
            s(r#"{"input_ids": [[2, 5]], "attention_mask": [[1, 1, 1]]}"#),
            vec!["attention_mask", "[1, 3]", "[1, 2]"],
        ),
        (
            "mask_more_rows",
            s(r#"{"input_ids": [[2, 5]], "attention_mask": [[1, 1], [1, 1]]}"#),
            vec!["attention_mask", "[2, 2]", "[1, 2]"],
        ),
        (
            "mask_1d",
            s(r#"{"input_ids": [[2, 5]], "attention_mask": [1, 1]}"#),
            vec!["attention_mask", "[2]"],
        ),
        (
            "types_shape",
            s(r#"{"input_ids": [[2, 5]], "token_type_ids": [[0]]}"#),
            vec!["token_type_ids", "[1, 1]", "[1, 2]"],
        ),
        (
            "ids_1d",
            s(r#"{"input_ids": [2, 5]}"#),
            vec!["input_ids", "2-D", "1-D"],
        ),
        (
            "ids_3d_on_base",
            s(r#"{"input_ids": [[[2, 5]]]}"#),
            vec!["input_ids", "2-D", "3-D"],
        ),
        (
            "ids_scalar",
            s(r#"{"input_ids": 5}"#),
            vec!["input_ids", "0-D"],
        ),
        // Not non-negative integers.
        (
            "float",
            s(r#"{"input_ids": [[2, 1.5]]}"#),
            vec!["input_ids[0][1]", "1.5"],
        ),
        (
            "float_integral",
            s(r#"{"input_ids": [[2, 7.0]]}"#),
            vec!["input_ids[0][1]", "7.0"],
        ),
        (
            "string",
            s(r#"{"input_ids": [[2, "7"]]}"#),
            vec!["input_ids[0][1]", "string"],
        ),
        (
            "bool",
            s(r#"{"input_ids": [[2, true]]}"#),
            vec!["input_ids[0][1]", "boolean"],
        ),
        (
            "null",
            s(r#"{"input_ids": [[2, null]]}"#),
            vec!["input_ids[0][1]", "null"],
        ),
        (
            "negative",
            s(r#"{"input_ids": [[2, -1]]}"#),
            vec!["input_ids[0][1]", "-1"],
        ),
        (
            "two_pow_40",
            s(r#"{"input_ids": [[2, 1099511627776]]}"#),
            vec!["input_ids[0][1]", "1099511627776"],
        ),
        (
            "u64_max",
            s(r#"{"input_ids": [[2, 18446744073709551615]]}"#),
            vec!["input_ids[0][1]", "18446744073709551615"],
        ),
        (
            "mask_float",
            s(r#"{"input_ids": [[2, 5]], "attention_mask": [[1, 0.5]]}"#),
            vec!["attention_mask[0][1]", "0.5"],
        ),
        (
            "types_negative",
            s(r#"{"input_ids": [[2, 5]], "token_type_ids": [[-1, 0]]}"#),
            vec!["token_type_ids[0][0]", "-1"],
        ),
        (
            "ids_null",
            s(r#"{"input_ids": null}"#),
            vec!["input_ids", "null"],
        ),
        // Not JSON, not an object.
        (
            "unterminated",
            s(r#"{"input_ids": [[2, 5]]"#),
            vec!["invalid JSON"],
        ),
        (
            "unquoted_key",
            s(r#"{input_ids: [[2, 5]]}"#),
            vec!["invalid JSON"],
        ),
        (
            "trailing_garbage",
            s(r#"{"input_ids": [[2, 5]]} x"#),
            vec!["invalid JSON"],
        ),
        (
            "nan",
            s(r#"{"input_ids": [[2, NaN]]}"#),
            vec!["invalid JSON"],
        ),
        (
            "array_not_object",
            s(r#"[[2, 5]]"#),
            vec!["JSON object", "array"],
        ),
        (
            "string_not_object",
            s(r#""hello""#),
            vec!["JSON object", "string"],
        ),
        ("number_not_object", s("42"), vec!["JSON object", "number"]),
        // Empty.
        (
            "empty_batch",
            s(r#"{"input_ids": []}"#),
            vec!["input_ids", "empty"],
        ),
        (
            "empty_row",
            s(r#"{"input_ids": [[]]}"#),
            vec!["input_ids", "empty"],
        ),
        (
            "empty_rows",
            s(r#"{"input_ids": [[], []]}"#),
            vec!["input_ids", "empty"],
        ),
        ("empty_object", s("{}"), vec!["input_ids", "text"]),
        // Keys.
        (
            "unknown_key",
            s(r#"{"input_ids": [[2, 5]], "inputs_ids": [[1]]}"#),
            vec!["unknown key", "inputs_ids"],
        ),
        (
            "both_text_and_ids",
            s(r#"{"input_ids": [[2, 5]], "text": ["hello"]}"#),
            vec!["input_ids", "text"],
        ),
        (
            "text_pair_with_ids",
            s(r#"{"input_ids": [[2, 5]], "text_pair": ["hello"]}"#),
            vec!["text_pair", "input_ids"],
        ),
        (
            "text_without_tokenizer",
            s(r#"{"text": ["hello"]}"#),
            vec!["tokenizer", "input_ids"],
        ),
        (
            "text_string_without_tokenizer",
            s(r#"{"text": "hello"}"#),
            vec!["tokenizer"],
        ),
        (
            "mask_with_text",
            s(r#"{"text": ["hello"], "attention_mask": [[1]]}"#),
            vec!["attention_mask", "text"],
        ),
        // Labels on the base model.
        (
            "labels_on_base",
            s(r#"{"input_ids": [[2, 5]], "labels": [0]}"#),
            vec!["labels", "base"],
        ),
        (
            "positions_on_base",
            s(r#"{"input_ids": [[2, 5]], "start_positions": [0], "end_positions": [1]}"#),
            vec!["start_positions", "question-answering"],
        ),
    ];
    check_table(&model, &cases);
}

#[test]
fn bad_labels_sequence_classification() {
    let model = cpu_model(&tiny_dir("seqcls-single"));
    assert_eq!(model.config().num_labels, 3);
    let ids = r#""input_ids": [[2, 5, 6, 3]]"#;
    let l = |labels: &str| format!(r#"{{{ids}, "labels": {labels}}}"#);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "class_eq_num_labels",
            l("[3]"),
            vec!["labels[0]", "3", "[0, 3)"],
        ),
        (
            "class_far",
            l("[1000]"),
            vec!["labels[0]", "1000", "[0, 3)"],
        ),
        ("class_negative", l("[-1]"), vec!["labels[0]", "-1"]),
        ("class_minus_100", l("[-100]"), vec!["labels[0]", "-100"]),
        (
            "second_row_bad",
            s(r#"{"input_ids": [[2, 5], [2, 6]], "labels": [0, 7]}"#),
            vec!["labels[1]", "7"],
        ),
        ("too_many", l("[0, 1]"), vec!["labels", "[1]", "[2]"]),
        ("scalar", l("1"), vec!["labels", "[1]"]),
        ("string", l(r#"["POS"]"#), vec!["labels[0]", "string"]),
        (
            "multi_hot_wrong_width",
            l("[[0, 1]]"),
            vec!["labels", "[batch][num_labels]", "[1, 3]", "[1, 2]"],
        ),
        ("float_not_multi_hot", l("[1.5]"), vec!["labels", "3"]),
        ("empty", l("[]"), vec!["labels", "[1]", "[0]"]),
        (
            "positions_on_seqcls",
            format!(r#"{{{ids}, "start_positions": [0]}}"#),
            vec!["start_positions", "sequence-classification"],
        ),
        (
            "3d_ids",
            s(r#"{"input_ids": [[[2, 5]]], "labels": [0]}"#),
            vec!["input_ids", "3-D"],
        ),
    ];
    check_table(&model, &cases);
}

#[test]
fn bad_labels_token_classification() {
    let model = cpu_model(&tiny_dir("tokcls"));
    assert_eq!(model.config().num_labels, 5);
    let ids = r#""input_ids": [[2, 5, 6]]"#;
    let l = |labels: &str| format!(r#"{{{ids}, "labels": {labels}}}"#);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "class_eq_num_labels",
            l("[[0, 5, 1]]"),
            vec!["labels[0][1]", "5", "[0, 5)"],
        ),
        ("negative", l("[[0, -1, 1]]"), vec!["labels[0][1]", "-1"]),
        (
            "minus_101",
            l("[[0, -100, -101]]"),
            vec!["labels[0][2]", "-101"],
        ),
        (
            "per_sequence",
            l("[1]"),
            vec!["labels", "[batch][seq]", "[1, 3]", "[1]"],
        ),
        (
            "flat",
            l("[0, 1, 2]"),
            vec!["labels", "[batch][seq]", "[1, 3]", "[3]"],
        ),
        (
            "short_row",
            l("[[0, 1]]"),
            vec!["labels", "[1, 3]", "[1, 2]"],
        ),
        (
            "extra_row",
            l("[[0, 1, 2], [0, 1, 2]]"),
            vec!["labels", "[1, 3]", "[2, 3]"],
        ),
        ("float", l("[[0, 1.5, 1]]"), vec!["labels", "integer"]),
        ("ragged", l("[[0, 1, 2, 3]]"), vec!["labels", "[1, 4]"]),
    ];
    check_table(&model, &cases);
}

#[test]
fn bad_inputs_multiple_choice() {
    let model = cpu_model(&tiny_dir("mc"));
    let ids = r#""input_ids": [[[2, 5, 3], [2, 6, 3]]]"#;
    let l = |labels: &str| format!(r#"{{{ids}, "labels": {labels}}}"#);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "ids_2d",
            s(r#"{"input_ids": [[2, 5, 3]]}"#),
            vec!["multiple-choice", "3-D", "2-D"],
        ),
        (
            "ids_4d",
            s(r#"{"input_ids": [[[[2, 5, 3]]]]}"#),
            vec!["3-D", "4-D"],
        ),
        (
            "ragged_choice_length",
            s(r#"{"input_ids": [[[2, 5, 3], [2, 6]]]}"#),
            vec!["input_ids[0][1]", "2 entries", "3"],
        ),
        (
            "ragged_choice_count",
            s(r#"{"input_ids": [[[2, 5], [2, 6]], [[2, 7]]]}"#),
            vec!["input_ids[1]", "1 entries", "2"],
        ),
        ("no_choices", s(r#"{"input_ids": [[]]}"#), vec!["input_ids"]),
        (
            "mask_2d",
            format!(r#"{{{ids}, "attention_mask": [[1, 1, 1]]}}"#),
            vec!["attention_mask", "[1, 3]", "[1, 2, 3]"],
        ),
        (
            "label_eq_choices",
            l("[2]"),
            vec!["labels[0]", "2", "[0, 2)"],
        ),
        ("label_negative", l("[-1]"), vec!["labels[0]", "-1"]),
        (
            "labels_per_choice",
            l("[[0, 1]]"),
            vec!["labels", "[batch]", "[1]"],
        ),
        ("labels_float", l("[0.5]"), vec!["labels", "integer"]),
        (
            "id_out_of_vocab",
            s(r#"{"input_ids": [[[2, 5, 3], [2, 99, 3]]]}"#),
            vec!["input_ids[1][1]", "99"],
        ),
        (
            "text_without_tokenizer",
            s(r#"{"text": ["q"], "text_pair": [["a", "b"]]}"#),
            vec!["tokenizer"],
        ),
    ];
    check_table(&model, &cases);
}

#[test]
fn bad_labels_question_answering() {
    let model = cpu_model(&tiny_dir("qa"));
    let ids = r#""input_ids": [[2, 5, 3, 6, 7, 3]]"#;
    let l = |rest: &str| format!(r#"{{{ids}, {rest}}}"#);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "only_start",
            l(r#""start_positions": [1]"#),
            vec!["start_positions", "end_positions"],
        ),
        (
            "only_end",
            l(r#""end_positions": [1]"#),
            vec!["start_positions", "end_positions"],
        ),
        (
            "start_wrong_length",
            l(r#""start_positions": [1, 2], "end_positions": [3]"#),
            vec!["start_positions", "[1]", "[2]"],
        ),
        (
            "end_2d",
            l(r#""start_positions": [1], "end_positions": [[3]]"#),
            vec!["end_positions", "[1, 1]"],
        ),
        (
            "start_float",
            l(r#""start_positions": [1.5], "end_positions": [3]"#),
            vec!["start_positions[0]", "1.5"],
        ),
        (
            "end_string",
            l(r#""start_positions": [1], "end_positions": ["3"]"#),
            vec!["end_positions[0]", "string"],
        ),
        (
            "labels_on_qa",
            l(r#""labels": [1]"#),
            vec!["labels", "start_positions"],
        ),
        (
            "3d_ids",
            s(r#"{"input_ids": [[[2, 5]]]}"#),
            vec!["input_ids", "3-D"],
        ),
    ];
    check_table(&model, &cases);
}

#[test]
fn text_errors_with_a_tokenizer() {
    let model = cpu_model(&minilm_dir());
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("text_number", s(r#"{"text": 5}"#), vec!["text", "number"]),
        (
            "text_item_number",
            s(r#"{"text": ["a", 5]}"#),
            vec!["text[1]", "number"],
        ),
        ("text_empty", s(r#"{"text": []}"#), vec!["text", "empty"]),
        (
            "pairs_count",
            s(r#"{"text": ["a", "b"], "text_pair": ["c"]}"#),
            vec!["2 texts", "1 text_pair"],
        ),
        (
            "pair_item_not_string",
            s(r#"{"text": ["a"], "text_pair": [["c"]]}"#),
            vec!["text_pair[0]", "array"],
        ),
        (
            "types_with_text",
            s(r#"{"text": ["a"], "token_type_ids": [[0]]}"#),
            vec!["token_type_ids", "text"],
        ),
        (
            "labels_on_base",
            s(r#"{"text": ["a"], "labels": [1]}"#),
            vec!["labels", "base"],
        ),
        (
            "id_past_vocab",
            s(r#"{"input_ids": [[101, 30522, 102]]}"#),
            vec!["input_ids[0][1]", "30522"],
        ),
    ];
    check_table(&model, &cases);

    // Text works, a single string included, and the ids are echoed.
    let out = run_line(&model, 1, r#"{"text": "I love this movie!"}"#).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["input_ids"],
        serde_json::json!([[101, 1045, 2293, 2023, 3185, 999, 102]])
    );
    assert_eq!(shape(&v["last_hidden_state"]), vec![1, 7, 384]);
}

// ------------------------------------------------------- positive controls

fn shape(v: &Value) -> Vec<usize> {
    let mut out = Vec::new();
    let mut cur = v;
    while let Value::Array(items) = cur {
        out.push(items.len());
        match items.first() {
            Some(x) => cur = x,
            None => break,
        }
    }
    out
}

fn all_finite(v: &Value) -> bool {
    match v {
        Value::Array(items) => items.iter().all(all_finite),
        Value::Number(n) => n.as_f64().is_some_and(f64::is_finite),
        _ => false,
    }
}

/// Runs a valid line and checks the output keys and their shapes.
fn run_ok(model: &Model, tag: &str, line: &str, want: &[(&str, Vec<usize>)]) -> Value {
    parse_request(line, model).unwrap_or_else(|e| panic!("{tag}: parse: {e}"));
    let out = run_line(model, 1, line).unwrap_or_else(|e| panic!("{tag}: {e}"));
    assert!(!out.contains('\n'), "{tag}: output is not one line");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{tag}: {e}: {out}"));
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{tag}: not an object"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want_keys: Vec<&str> = want.iter().map(|(k, _)| *k).collect();
    want_keys.sort_unstable();
    assert_eq!(keys, want_keys, "{tag}: output keys");
    for (k, shp) in want {
        if *k == "loss" {
            assert!(
                obj[*k].as_f64().is_some_and(f64::is_finite),
                "{tag}: loss {}",
                obj[*k]
            );
        } else {
            assert_eq!(&shape(&obj[*k]), shp, "{tag}: shape of {k}");
            assert!(all_finite(&obj[*k]), "{tag}: {k} has non-numbers");
        }
    }
    v
}

#[test]
fn valid_lines_for_every_head() {
    let base = cpu_model(&tiny_dir("base-gelu"));
    run_ok(
        &base,
        "base",
        r#"{"input_ids": [[2, 5, 3]]}"#,
        &[
            ("last_hidden_state", vec![1, 3, 32]),
            ("pooler_output", vec![1, 32]),
        ],
    );
    run_ok(
        &base,
        "base_full",
        r#"{"input_ids": [[2, 5, 3], [2, 7, 0]], "attention_mask": [[1, 1, 1], [1, 1, 0]], "token_type_ids": [[0, 0, 1], [0, 1, 0]]}"#,
        &[
            ("last_hidden_state", vec![2, 3, 32]),
            ("pooler_output", vec![2, 32]),
        ],
    );
    // The longest sequence allowed, and the largest ids.
    let long: Vec<u32> = (0..512).map(|i| 98 - i % 90).collect();
    run_ok(
        &base,
        "base_512",
        &format!(
            r#"{{"input_ids": {}}}"#,
            serde_json::to_string(&vec![long]).unwrap()
        ),
        &[
            ("last_hidden_state", vec![1, 512, 32]),
            ("pooler_output", vec![1, 32]),
        ],
    );

    let seqcls = cpu_model(&tiny_dir("seqcls-single"));
    run_ok(
        &seqcls,
        "seqcls",
        r#"{"input_ids": [[2, 5, 3]]}"#,
        &[("logits", vec![1, 3])],
    );
    run_ok(
        &seqcls,
        "seqcls_labels",
        r#"{"input_ids": [[2, 5, 3], [2, 6, 3]], "labels": [2, 0]}"#,
        &[("logits", vec![2, 3]), ("loss", vec![])],
    );
    run_ok(
        &seqcls,
        "seqcls_multi_hot",
        r#"{"input_ids": [[2, 5, 3]], "labels": [[0.0, 1.0, 1.0]]}"#,
        &[("logits", vec![1, 3]), ("loss", vec![])],
    );

    let tokcls = cpu_model(&tiny_dir("tokcls"));
    run_ok(
        &tokcls,
        "tokcls_labels",
        r#"{"input_ids": [[2, 5, 3]], "labels": [[-100, 4, 0]]}"#,
        &[("logits", vec![1, 3, 5]), ("loss", vec![])],
    );

    let mc = cpu_model(&tiny_dir("mc"));
    run_ok(
        &mc,
        "mc_labels",
        r#"{"input_ids": [[[2, 5, 3], [2, 6, 3]]], "labels": [1]}"#,
        &[("logits", vec![1, 2]), ("loss", vec![])],
    );

    let qa = cpu_model(&tiny_dir("qa"));
    run_ok(
        &qa,
        "qa",
        r#"{"input_ids": [[2, 5, 3, 6, 7, 3]]}"#,
        &[("start_logits", vec![1, 6]), ("end_logits", vec![1, 6])],
    );
    run_ok(
        &qa,
        "qa_positions",
        r#"{"input_ids": [[2, 5, 3, 6, 7, 3]], "start_positions": [3], "end_positions": [4]}"#,
        &[
            ("start_logits", vec![1, 6]),
            ("end_logits", vec![1, 6]),
            ("loss", vec![]),
        ],
    );
    // Positions past the sequence are clamped and ignored, as in HF: a loss
    // that is NaN (all ignored) comes back as null, still valid JSON.
    let out = run_line(
        &qa,
        1,
        r#"{"input_ids": [[2, 5, 3]], "start_positions": [50], "end_positions": [50]}"#,
    )
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["loss"].is_null(), "{}", v["loss"]);
}

#[test]
fn line_numbers_follow_the_caller() {
    let model = cpu_model(&tiny_dir("base-gelu"));
    for n in [1, 2, 17, 100_000] {
        let msg = line_error(&model, "numbered", n, r#"{"input_ids": [[2, 99]]}"#);
        assert!(msg.contains("input_ids[0][1]"), "{msg}");
    }
}

/// Asserts `r` is an `Error::Input` whose message holds every word.
fn no<T: std::fmt::Debug>(r: bert_wgpu::Result<T>, words: &[&str]) {
    match r {
        Err(Error::Input(m)) => {
            for w in words {
                assert!(m.contains(w), "`{w}` not in: {m}");
            }
        }
        other => panic!("expected Error::Input with {words:?}, got {other:?}"),
    }
}

/// The typed head accessors return exactly what `forward` does, and a head
/// without the output is one `Error::Input` naming its class, before any run.
#[test]
fn typed_head_outputs() {
    let ids = bert_wgpu::Encoding::from_ids(&[vec![2, 5, 3, 6], vec![2, 7, 3, 0]]).unwrap();
    let base = cpu_model(&tiny_dir("base-gelu"));
    no(base.logits(&ids), &["logits", "BertModel"]);
    no(
        base.span_logits(&ids),
        &["start_logits/end_logits", "BertModel"],
    );
    let out = base.forward(&ids).unwrap();
    no(out.require_logits(), &["logits"]);
    assert_eq!(
        base.hidden_states(&ids).unwrap(),
        out.last_hidden_state.unwrap()
    );

    let seqcls = cpu_model(&tiny_dir("seqcls-single"));
    let logits = seqcls.logits(&ids).unwrap();
    assert_eq!(logits.shape, vec![2, 3]);
    let out = seqcls.forward(&ids).unwrap();
    assert_eq!(out.require_logits().unwrap(), &logits);
    no(
        seqcls.span_logits(&ids),
        &["start_logits/end_logits", "BertForSequenceClassification"],
    );

    let qa = cpu_model(&tiny_dir("qa"));
    no(qa.logits(&ids), &["logits", "BertForQuestionAnswering"]);
    let (start, end) = qa.span_logits(&ids).unwrap();
    let out = qa.forward(&ids).unwrap();
    assert_eq!((Some(start), Some(end)), (out.start_logits, out.end_logits));

    // Multiple choice keeps its 3-D rule on the typed path too.
    let mc = cpu_model(&tiny_dir("mc"));
    no(mc.logits(&ids), &["multiple-choice", "3-D"]);
    // Bad values are still caught (by the executor), with the same message.
    let bad = bert_wgpu::Encoding::from_ids(&[vec![2, 99]]).unwrap();
    no(seqcls.logits(&bad), &["input_ids[0][1]", "< 99"]);
    no(base.hidden_states(&bad), &["input_ids[0][1]", "< 99"]);
}

/// `CpuExecutor::run` is a public entry point: it validates the encoding
/// itself (out-of-range ids are an error, not an out-of-bounds index) and
/// names an output the graph lacks.
#[test]
fn cpu_executor_validates_inputs() {
    use bert_wgpu::checkpoint::Checkpoint;
    use bert_wgpu::cpu::CpuExecutor;
    use bert_wgpu::graph::{Graph, Head, Output};
    use bert_wgpu::weights::Weights;

    let dir = tiny_dir("base-gelu");
    let cfg = bert_wgpu::BertConfig::from_file(&dir.join("config.json")).unwrap();
    let ckpt = Checkpoint::open_all(&[dir.join("model.safetensors")]).unwrap();
    let graph = Graph::build(&cfg, Head::Base, ckpt.contains("pooler.dense.weight"));
    let weights = Weights::load(&graph, &ckpt).unwrap();
    let exec = CpuExecutor::new(&cfg, graph, weights).unwrap();

    let good = bert_wgpu::Encoding::from_ids(&[vec![2, 5, 3]]).unwrap();
    let got = exec.run(&good, &[Output::LastHiddenState]).unwrap();
    assert_eq!(got[0].shape, vec![3, 32]);
    for (ids, words) in [
        (vec![2, 99], vec!["input_ids[0][1]", "99", "< 99"]),
        (vec![2, 100_000], vec!["input_ids[0][1]", "100000"]),
    ] {
        let enc = bert_wgpu::Encoding::from_ids(&[ids]).unwrap();
        match exec.run(&enc, &[Output::LastHiddenState]) {
            Err(Error::Input(m)) => {
                for w in words {
                    assert!(m.contains(w), "`{w}` not in: {m}");
                }
            }
            other => panic!("expected Error::Input, got {other:?}"),
        }
    }
    match exec.run(&good, &[Output::Logits]) {
        Err(Error::Input(m)) => assert!(m.contains("no output `logits`"), "{m}"),
        other => panic!("expected Error::Input, got {other:?}"),
    }
}
