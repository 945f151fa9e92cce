//! The server's counters and histograms, rendered in Prometheus' text
//! exposition format for `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A cumulative histogram with fixed upper bounds.
pub struct Histogram {
    bounds: Vec<f64>,
    inner: Mutex<HistogramState>,
}

#[derive(Default)]
struct HistogramState {
    /// Observations per bucket (not cumulative), the last for `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        Histogram {
            bounds: bounds.to_vec(),
            inner: Mutex::new(HistogramState {
                counts: vec![0; bounds.len() + 1],
                ..HistogramState::default()
            }),
        }
    }

    /// Records one observation.
    pub fn observe(&self, x: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| x <= b)
            .unwrap_or(self.bounds.len());
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.counts[i] += 1;
        s.sum += x;
        s.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let sep = if labels.is_empty() { "" } else { "," };
        let mut acc = 0;
        for (i, b) in self.bounds.iter().enumerate() {
            acc += s.counts[i];
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {acc}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", s.count);
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", s.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", s.count);
    }
}

const LATENCY: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const SIZES: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];
const TOKENS: [f64; 10] = [
    16.0, 64.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0,
];

/// Everything `/metrics` reports.
pub struct Metrics {
    /// Requests answered, by (route, status code).
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Seconds from a request's arrival to its answer, by route.
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    /// Seconds a row waited in the queue before its forward pass.
    pub queue_wait: Histogram,
    /// Seconds per forward pass.
    pub inference: Histogram,
    /// Rows per forward pass.
    pub batch_rows: Histogram,
    /// Padded tokens per forward pass.
    pub batch_tokens: Histogram,
    /// Rows waiting for a forward pass.
    pub queue_rows: AtomicU64,
    /// Requests with rows waiting or running.
    pub queue_requests: AtomicU64,
    /// Requests being handled (admitted, not yet answered).
    pub in_flight: AtomicU64,
    /// Inputs embedded / scored.
    pub inputs: AtomicU64,
    /// Real (unpadded) tokens run.
    pub tokens: AtomicU64,
    /// Requests refused with 429.
    pub overloaded: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            latency: Mutex::default(),
            queue_wait: Histogram::new(&LATENCY),
            inference: Histogram::new(&LATENCY),
            batch_rows: Histogram::new(&SIZES),
            batch_tokens: Histogram::new(&TOKENS),
            queue_rows: AtomicU64::new(0),
            queue_requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            inputs: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            overloaded: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Records an answered request.
    pub fn request(&self, route: &'static str, status: u16, seconds: f64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((route, status))
            .or_default() += 1;
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(route)
            .or_insert_with(|| Histogram::new(&LATENCY))
            .observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        out.push_str("# HELP bert_wgpu_requests_total Requests answered, by route and status code.\n# TYPE bert_wgpu_requests_total counter\n");
        for ((route, code), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "bert_wgpu_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP bert_wgpu_request_duration_seconds Seconds from a request's arrival to its answer.\n# TYPE bert_wgpu_request_duration_seconds histogram\n");
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            h.render(
                &mut out,
                "bert_wgpu_request_duration_seconds",
                &format!("route=\"{route}\""),
            );
        }
        let hist = |out: &mut String, name: &str, help: &str, h: &Histogram| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            h.render(out, name, "");
        };
        hist(
            &mut out,
            "bert_wgpu_queue_wait_seconds",
            "Seconds an input waited before its forward pass.",
            &self.queue_wait,
        );
        hist(
            &mut out,
            "bert_wgpu_inference_seconds",
            "Seconds per forward pass.",
            &self.inference,
        );
        hist(
            &mut out,
            "bert_wgpu_batch_size",
            "Inputs per forward pass.",
            &self.batch_rows,
        );
        hist(
            &mut out,
            "bert_wgpu_batch_tokens",
            "Padded tokens per forward pass.",
            &self.batch_tokens,
        );
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        gauge(
            &mut out,
            "bert_wgpu_queue_inputs",
            "Inputs waiting for a forward pass.",
            load(&self.queue_rows),
        );
        gauge(
            &mut out,
            "bert_wgpu_queue_requests",
            "Requests with inputs waiting or running.",
            load(&self.queue_requests),
        );
        gauge(
            &mut out,
            "bert_wgpu_in_flight_requests",
            "Requests being handled.",
            load(&self.in_flight),
        );
        counter(
            &mut out,
            "bert_wgpu_inputs_total",
            "Inputs run through the model.",
            load(&self.inputs),
        );
        counter(
            &mut out,
            "bert_wgpu_tokens_total",
            "Tokens run through the model (unpadded).",
            load(&self.tokens),
        );
        counter(
            &mut out,
            "bert_wgpu_overloaded_total",
            "Requests refused with 429 (max_concurrent_requests reached).",
            load(&self.overloaded),
        );
        out
    }
}
