//! The server's dynamic batcher: rows of every request share forward
//! passes under one token budget, on one worker thread that owns the model.
//!
//! Fairness: each cycle the worker takes rows round-robin over the waiting
//! requests, oldest first (one row of each in turn), until the cycle's pool
//! is full, so a request of many rows shares the model with the ones behind
//! it instead of holding it. The pool is then sorted by length and cut into
//! forward passes under the budget ([`schedule::plan`]), as the offline
//! batcher does with a window. A request is answered as soon as its last
//! row is done.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::oneshot;

use super::engine::{Engine, Row};
use super::metrics::Metrics;
use crate::batch::{schedule, Limits, Shape};
use crate::error::{Error, Result};

/// Outputs of one request's rows, in its order, or why the model failed.
pub type Reply = std::result::Result<Vec<Vec<f32>>, String>;

struct Pending {
    id: u64,
    rows: Vec<Row>,
    /// Next row to hand to the model.
    next: usize,
    /// Rows done.
    done: usize,
    results: Vec<Vec<f32>>,
    reply: Option<oneshot::Sender<Reply>>,
    arrived: Instant,
}

impl Pending {
    fn new(id: u64, rows: Vec<Row>, reply: oneshot::Sender<Reply>) -> Self {
        Pending {
            id,
            results: vec![Vec::new(); rows.len()],
            rows,
            next: 0,
            done: 0,
            reply: Some(reply),
            arrived: Instant::now(),
        }
    }
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Pending>,
    next_id: u64,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Handle to the batcher: submit requests, close it.
pub struct Batcher {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Batcher {
    /// Starts the worker thread for `engine`: forward passes under
    /// `limits`, pools of up to `pool_tokens` real tokens per cycle.
    pub fn start(
        engine: Arc<Engine>,
        limits: Limits,
        pool_tokens: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            wake: Condvar::new(),
        });
        let worker = {
            let (shared, metrics) = (shared.clone(), metrics.clone());
            std::thread::Builder::new()
                .name("bert-wgpu-batcher".into())
                .spawn(move || work(&engine, &shared, &metrics, limits, pool_tokens))
                .map_err(|e| Error::Unsupported(format!("cannot start the batcher thread: {e}")))?
        };
        Ok(Batcher {
            shared,
            metrics,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// Queues one request's rows; the receiver gets their outputs.
    pub fn submit(&self, rows: Vec<Row>) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        if rows.is_empty() {
            let _ = tx.send(Ok(Vec::new()));
            return rx;
        }
        let mut st = self.shared.lock();
        if st.closed {
            let _ = tx.send(Err("the server is shutting down".into()));
            return rx;
        }
        let id = st.next_id;
        st.next_id += 1;
        self.metrics
            .queue_rows
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        self.metrics.queue_requests.fetch_add(1, Ordering::Relaxed);
        st.waiting.push_back(Pending::new(id, rows, tx));
        drop(st);
        self.shared.wake.notify_one();
        rx
    }

    /// Stops the worker after it has run every queued row.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
        let handle = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.close();
    }
}

/// A row taken for this cycle: whose it is and which.
struct Taken {
    request: u64,
    index: usize,
    row: Row,
    arrived: Instant,
}

fn work(engine: &Engine, shared: &Shared, metrics: &Metrics, limits: Limits, pool_tokens: usize) {
    loop {
        let pool = {
            let mut st = shared.lock();
            while st.waiting.is_empty() && !st.closed {
                st = shared.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.waiting.is_empty() {
                return;
            }
            drop_abandoned(&mut st, metrics);
            if st.waiting.is_empty() {
                continue;
            }
            take_pool(&mut st, pool_tokens, limits.max_sequences.saturating_mul(4))
        };
        metrics
            .queue_rows
            .fetch_sub(pool.len() as u64, Ordering::Relaxed);
        let shapes: Vec<Shape> = pool.iter().map(|t| t.row.shape()).collect();
        for batch in schedule::plan(&shapes, limits) {
            let rows: Vec<&Row> = batch.iter().map(|&i| &pool[i].row).collect();
            let started = Instant::now();
            for &i in &batch {
                metrics
                    .queue_wait
                    .observe(started.duration_since(pool[i].arrived).as_secs_f64());
            }
            let out = engine.run(&rows);
            let longest = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
            metrics.inference.observe(started.elapsed().as_secs_f64());
            metrics.batch_rows.observe(rows.len() as f64);
            metrics.batch_tokens.observe((rows.len() * longest) as f64);
            let mut st = shared.lock();
            match out {
                Ok(outs) if outs.len() == batch.len() => {
                    metrics
                        .inputs
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    metrics.tokens.fetch_add(
                        rows.iter().map(|r| r.ids.len() as u64).sum(),
                        Ordering::Relaxed,
                    );
                    for (&i, o) in batch.iter().zip(outs) {
                        deliver(&mut st, metrics, &pool[i], Ok(o));
                    }
                }
                Ok(outs) => {
                    let msg = format!(
                        "internal: a batch of {} inputs gave {} outputs",
                        batch.len(),
                        outs.len()
                    );
                    for &i in &batch {
                        deliver(&mut st, metrics, &pool[i], Err(msg.clone()));
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for &i in &batch {
                        deliver(&mut st, metrics, &pool[i], Err(msg.clone()));
                    }
                }
            }
        }
    }
}

/// Drops requests whose client has gone (the receiver was dropped): their
/// rows not yet run are not worth a forward pass.
fn drop_abandoned(st: &mut State, metrics: &Metrics) {
    st.waiting.retain(|p| {
        let gone = p.reply.as_ref().is_none_or(|tx| tx.is_closed());
        if gone {
            metrics
                .queue_rows
                .fetch_sub((p.rows.len() - p.next) as u64, Ordering::Relaxed);
            metrics.queue_requests.fetch_sub(1, Ordering::Relaxed);
        }
        !gone
    });
}

/// Rows round-robin over the waiting requests, oldest first, until
/// `pool_tokens` real tokens or `max_rows` rows (at least one row).
fn take_pool(st: &mut State, pool_tokens: usize, max_rows: usize) -> Vec<Taken> {
    let mut pool = Vec::new();
    let mut tokens = 0usize;
    'rounds: loop {
        let mut took = false;
        for p in st.waiting.iter_mut() {
            if p.next == p.rows.len() {
                continue;
            }
            let len = p.rows[p.next].ids.len();
            if !pool.is_empty() && (tokens + len > pool_tokens || pool.len() >= max_rows) {
                break 'rounds;
            }
            tokens += len;
            pool.push(Taken {
                request: p.id,
                index: p.next,
                row: std::mem::take(&mut p.rows[p.next]),
                arrived: p.arrived,
            });
            p.next += 1;
            took = true;
        }
        if !took {
            break;
        }
    }
    pool
}

/// Hands one row's output to its request; answers and drops the request
/// when it is complete, or at its first error (its other rows are dropped
/// unrun).
fn deliver(
    st: &mut State,
    metrics: &Metrics,
    t: &Taken,
    out: std::result::Result<Vec<f32>, String>,
) {
    let Some(pos) = st.waiting.iter().position(|p| p.id == t.request) else {
        return; // already failed
    };
    let p = &mut st.waiting[pos];
    let finished = match out {
        Ok(v) => {
            p.results[t.index] = v;
            p.done += 1;
            (p.done == p.results.len()).then(|| Ok(std::mem::take(&mut p.results)))
        }
        Err(msg) => Some(Err(msg)),
    };
    if let Some(reply) = finished {
        if let Some(p) = st.waiting.remove(pos) {
            let unrun = (p.rows.len() - p.next) as u64;
            metrics.queue_rows.fetch_sub(unrun, Ordering::Relaxed);
            metrics.queue_requests.fetch_sub(1, Ordering::Relaxed);
            if let Some(tx) = p.reply {
                let _ = tx.send(reply);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: u64, rows: usize, len: usize) -> (Pending, oneshot::Receiver<Reply>) {
        let (tx, rx) = oneshot::channel();
        let rows: Vec<Row> = (0..rows)
            .map(|_| Row {
                ids: vec![7; len],
                types: vec![0; len],
                prompt_tokens: 0,
            })
            .collect();
        (Pending::new(id, rows, tx), rx)
    }

    #[test]
    fn a_big_request_shares_each_pool_with_the_ones_behind_it() {
        let mut st = State::default();
        let (big, _rx1) = pending(0, 100, 10);
        let (small, _rx2) = pending(1, 2, 10);
        let (gone, rx3) = pending(2, 5, 10);
        st.waiting.extend([big, small, gone]);
        drop(rx3);
        let metrics = Metrics::default();
        metrics.queue_rows.store(107, Ordering::Relaxed);
        metrics.queue_requests.store(3, Ordering::Relaxed);
        drop_abandoned(&mut st, &metrics);
        assert_eq!(st.waiting.len(), 2, "the abandoned request is dropped");
        assert_eq!(metrics.queue_rows.load(Ordering::Relaxed), 102);
        // 60 tokens: six rows, taken in turns, so both of the small
        // request's rows come in the first pool.
        let pool = take_pool(&mut st, 60, 1000);
        let owners: Vec<u64> = pool.iter().map(|t| t.request).collect();
        assert_eq!(owners, vec![0, 1, 0, 1, 0, 0]);
        assert_eq!(
            pool.iter().map(|t| t.index).collect::<Vec<_>>(),
            vec![0, 0, 1, 1, 2, 3]
        );
        // The row cap binds too, and a pool always takes one row.
        assert_eq!(take_pool(&mut st, 1000, 3).len(), 3);
        assert_eq!(take_pool(&mut st, 1, 3).len(), 1);
    }
}
