//! The server under test: `bert-wgpu serve` started on a loopback port,
//! a small HTTP client for it, and the offline answers to compare with.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use bert_wgpu::embed::{EmbedderOptions, EncodeOptions, SentenceEmbedder};
use bert_wgpu::{Device, LoadOptions};
use serde_json::Value;

use super::common;

pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    /// `serve --auto-truncate` (the fixtures' max_seq_length is short,
    /// and the offline embedder truncates) on the CPU, any free port.
    pub fn start(model: &Path, extra: &[&str]) -> Server {
        Self::start_with(model, &[&["--auto-truncate"], extra].concat())
    }

    pub fn start_with(model: &Path, extra: &[&str]) -> Server {
        let mut child = common::bin_command()
            .args(["serve", "--device", "cpu", "--port", "0", "--model"])
            .arg(model)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start bert-wgpu serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line from serve: {line:?}"))
            .to_string();
        Server { child, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs `body` (raw bytes) with `headers`; returns (status, JSON body).
    pub fn send(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = ureq::post(&self.url(path)).set("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let resp = match req.send_bytes(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("POST {path}: {e}"),
        };
        let status = resp.status();
        let text = resp.into_string().unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("POST {path}: answer {status} is not JSON ({e}): {text}"));
        (status, v)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(path, body.to_string().as_bytes(), &[])
    }

    /// POSTs and expects 200.
    pub fn ok(&self, path: &str, body: &Value) -> Value {
        let (status, v) = self.post(path, body);
        assert_eq!(status, 200, "POST {path} {body}: {v}");
        v
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        match ureq::get(&self.url(path)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap()),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// Waits (up to 60 s) until the server counts `n` requests in flight.
    pub fn wait_in_flight(&self, n: u64) {
        let want = format!("bert_wgpu_in_flight_requests {n}\n");
        for _ in 0..600 {
            if self.get("/metrics").1.contains(&want) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the server never had {n} requests in flight");
    }

    /// Opens a request whose body is only half sent: the server has
    /// admitted it and waits for the rest.
    pub fn held(&self, path: &str, body: &str) -> Held {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let half = body.len() / 2;
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            self.addr,
            body.len(),
            &body[..half]
        )
        .unwrap();
        s.flush().unwrap();
        Held {
            stream: s,
            rest: body[half..].to_string(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request waiting for the rest of its body.
pub struct Held {
    stream: TcpStream,
    rest: String,
}

impl Held {
    /// Sends the rest; returns the status line's code and the body.
    pub fn finish(mut self) -> (u16, String) {
        self.stream.write_all(self.rest.as_bytes()).unwrap();
        let mut answer = String::new();
        self.stream.read_to_string(&mut answer).unwrap();
        let code = answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status in {answer:?}"));
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (code, body)
    }
}

pub fn st_dir(name: &str) -> PathBuf {
    common::fixtures().join("st").join(name)
}

pub fn cpu() -> LoadOptions {
    LoadOptions {
        device: Device::Cpu,
        ..Default::default()
    }
}

pub fn embedder(dir: &Path) -> SentenceEmbedder {
    SentenceEmbedder::load(dir.to_str().unwrap(), &cpu(), &EmbedderOptions::default()).unwrap()
}

pub fn vectors(v: &Value) -> Vec<Vec<f32>> {
    v.as_array().unwrap().iter().map(common::floats).collect()
}

/// Largest |got - want|; panics past `atol + rtol |want|`.
pub fn check(what: &str, got: &[Vec<f32>], want: &[Vec<f32>]) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: count");
    let mut worst = 0f32;
    for (r, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: row {r} width");
        for (c, (a, b)) in g.iter().zip(w).enumerate() {
            let d = (a - b).abs();
            assert!(
                d <= 1e-5 + 1e-4 * b.abs(),
                "{what}: row {r} col {c}: got {a}, want {b}"
            );
            worst = worst.max(d);
        }
    }
    worst
}

/// Texts of mixed lengths (1 to ~120 words), deterministic.
pub fn texts(n: usize, seed: u64) -> Vec<String> {
    const WORDS: [&str; 16] = [
        "the", "river", "runs", "quickly", "under", "old", "stone", "bridges", "while", "children",
        "watch", "boats", "drift", "past", "green", "hills",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = 1 + (x >> 33) as usize % 120;
            (0..len)
                .map(|j| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    WORDS[((x >> 40) as usize + j) % WORDS.len()]
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

pub fn encode_one(st: &SentenceEmbedder, text: &str) -> Vec<Vec<f32>> {
    st.encode(&[text], &EncodeOptions::default()).unwrap()
}
