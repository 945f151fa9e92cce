//! `bert-wgpu serve` refusing what it should: the error table (a JSON
//! error naming the field, the server serving on), the API key, 429 past
//! `--max-concurrent-requests`, and SIGTERM finishing the request in flight.

mod common;
mod serve_util;

use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use serve_util::{check, embedder, encode_one, st_dir, vectors, Server};

#[test]
fn bad_requests_get_a_json_error_naming_the_field_and_the_server_keeps_serving() {
    let dir = st_dir("v6-mean-dense-norm");
    let server = Server::start_with(
        &dir,
        &["--payload-limit", "4000", "--max-client-batch-size", "4"],
    );
    let long = "river ".repeat(600);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("/embed", b"{\"inputs\": ".to_vec(), 400, "malformed JSON"),
        ("/embed", b"".to_vec(), 400, "no body"),
        (
            "/embed",
            br#"{"inputs": 3}"#.to_vec(),
            422,
            "inputs: expected a string",
        ),
        (
            "/embed",
            br#"{"text": "a"}"#.to_vec(),
            422,
            "missing field `inputs`",
        ),
        (
            "/embed",
            br#"{"inputs": []}"#.to_vec(),
            422,
            "inputs: must not be empty",
        ),
        (
            "/embed",
            br#"{"inputs": ["a", ""]}"#.to_vec(),
            422,
            "inputs[1]: is empty",
        ),
        (
            "/embed",
            br#"{"inputs": "a", "normalize": "yes"}"#.to_vec(),
            422,
            "normalize: invalid type",
        ),
        (
            "/embed",
            br#"{"inputs": ["a","b","c","d","e"]}"#.to_vec(),
            422,
            "max_client_batch_size",
        ),
        (
            "/embed",
            br#"{"inputs": "a", "dimensions": 0}"#.to_vec(),
            422,
            "dimensions",
        ),
        (
            "/embed",
            br#"{"inputs": "a", "prompt_name": "nope"}"#.to_vec(),
            422,
            "prompt_name: prompt name `nope`",
        ),
        (
            "/embed",
            br#"{"inputs": "a", "truncation_direction": "Left"}"#.to_vec(),
            422,
            "truncation_direction",
        ),
        (
            "/embed",
            json!({"inputs": ["a", long.trim()]})
                .to_string()
                .into_bytes(),
            413,
            "inputs[1]: longer than",
        ),
        (
            "/embed",
            json!({"inputs": "a".repeat(5000)}).to_string().into_bytes(),
            413,
            "payload_limit",
        ),
        (
            "/v1/embeddings",
            br#"{"input": "a", "encoding_format": "hex"}"#.to_vec(),
            422,
            "encoding_format",
        ),
        (
            "/v1/embeddings",
            br#"{"input": [1, 99999]}"#.to_vec(),
            422,
            "outside the vocabulary",
        ),
        (
            "/v1/embeddings",
            br#"{"input": {"a": 1}}"#.to_vec(),
            422,
            "input: expected a string",
        ),
        (
            "/rerank",
            br#"{"query": "a", "texts": ["b"]}"#.to_vec(),
            400,
            "needs a reranker",
        ),
        (
            "/predict",
            br#"{"inputs": "a"}"#.to_vec(),
            400,
            "needs a classifier or reranker",
        ),
        ("/tokenize", br#"{"inputs": null}"#.to_vec(), 422, "inputs"),
        ("/nowhere", b"{}".to_vec(), 404, "no route POST /nowhere"),
    ];
    for (path, body, status, needle) in &cases {
        let (got, v) = server.send(path, body, &[]);
        let msg = if path.starts_with("/v1/") {
            v["error"]["message"].as_str()
        } else {
            v["error"].as_str()
        }
        .unwrap_or_else(|| panic!("{path}: no error message in {v}"));
        assert_eq!(
            got,
            *status,
            "{path} {}: {v}",
            String::from_utf8_lossy(body)
        );
        assert!(msg.contains(needle), "{path}: `{msg}` lacks `{needle}`");
    }
    // Truncation asked for: the long text is cut, as the offline embedder
    // (which truncates at max_seq_length) does.
    let st = embedder(&dir);
    let got = vectors(&server.ok("/embed", &json!({"inputs": long, "truncate": true})));
    check("/embed truncate", &got, &encode_one(&st, &long));
    assert_eq!(server.get("/health").0, 200);
    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.contains("bert_wgpu_requests_total{route=\"embed\",code=\"422\"}"),
        "{metrics}"
    );
}

#[test]
fn api_key_is_required_when_set() {
    let server = Server::start(&st_dir("v6-mean"), &["--api-key", "s3cret"]);
    let body = br#"{"inputs": "a"}"#;
    let (status, v) = server.send("/embed", body, &[]);
    assert_eq!(status, 401, "{v}");
    let (status, _) = server.send("/embed", body, &[("Authorization", "Bearer wrong")]);
    assert_eq!(status, 401);
    let (status, v) = server.send("/v1/embeddings", br#"{"input": "a"}"#, &[]);
    assert_eq!(status, 401);
    assert!(v["error"]["message"].as_str().unwrap().contains("API key"));
    let (status, v) = server.send("/embed", body, &[("Authorization", "Bearer s3cret")]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(server.get("/metrics").0, 401);
}

#[test]
fn past_max_concurrent_requests_a_request_gets_429_at_once() {
    let server = Server::start(&st_dir("v6-mean"), &["--max-concurrent-requests", "1"]);
    // One admitted request, waiting for the rest of its body.
    let held = server.held("/embed", r#"{"inputs": ["a held request"]}"#);
    server.wait_in_flight(1);
    let (status, v) = server.post("/embed", &json!({"inputs": "b"}));
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error_type"], "overloaded");
    let (status, body) = held.finish();
    assert_eq!(status, 200, "{body}");
    // The slot is free again.
    let (status, v) = server.post("/embed", &json!({"inputs": "b"}));
    assert_eq!(status, 200, "{v}");
    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.contains("bert_wgpu_overloaded_total 1"),
        "{metrics}"
    );
}

#[cfg(unix)]
#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let mut server = Server::start(&st_dir("v6-mean"), &[]);
    let held = server.held("/embed", r#"{"inputs": ["in flight at shutdown"]}"#);
    server.wait_in_flight(1);
    let pid = server.child.id() as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid, which has not been waited on.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = held.finish();
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let code = server.child.wait().unwrap();
    assert_eq!(code.code(), Some(0), "serve exited with {code:?}");
    // Nothing listens any more.
    assert!(TcpStream::connect(&server.addr).is_err());
}
