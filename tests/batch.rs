//! The streaming batcher on its own (a job that needs no model): batches
//! under the limits, outputs in input order, everything before a bad input
//! handed out before its error; the lazy row reader; the .npy writer.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use bert_wgpu::batch::{self, schedule, Job, Limits, Shape};
use bert_wgpu::datasets::{Format, RowReader};
use bert_wgpu::npy::NpyWriter;
use bert_wgpu::{Error, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn plan_respects_limits_groups_and_covers_every_input_once() {
    let mut rng = StdRng::seed_from_u64(7);
    for trial in 0..200 {
        let n = rng.random_range(0..300);
        let shapes: Vec<Shape> = (0..n)
            .map(|_| Shape {
                sequences: rng.random_range(1..5),
                len: rng.random_range(1..520),
                group: rng.random_range(0..3),
            })
            .collect();
        let limits = Limits {
            max_tokens: rng.random_range(1..5000),
            max_sequences: rng.random_range(1..64),
            min_fill: if trial % 2 == 0 {
                0.0
            } else {
                rng.random_range(0.1..0.95)
            },
        };
        let batches = schedule::plan(&shapes, limits);
        let mut seen = vec![false; n];
        for b in &batches {
            assert!(!b.is_empty(), "trial {trial}: an empty batch");
            let g = shapes[b[0]].group;
            let seqs: usize = b.iter().map(|&i| shapes[i].sequences).sum();
            let len = b.iter().map(|&i| shapes[i].len).max().unwrap();
            assert!(
                b.iter().all(|&i| shapes[i].group == g),
                "trial {trial}: groups mixed"
            );
            if b.len() > 1 {
                assert!(
                    seqs <= limits.max_sequences,
                    "trial {trial}: {seqs} sequences"
                );
                assert!(
                    seqs * len <= limits.max_tokens,
                    "trial {trial}: {} tokens",
                    seqs * len
                );
                let real: usize = b.iter().map(|&i| shapes[i].sequences * shapes[i].len).sum();
                assert!(
                    real as f32 >= limits.min_fill * (seqs * len) as f32,
                    "trial {trial}: fill {real}/{} under {}",
                    seqs * len,
                    limits.min_fill
                );
            }
            for &i in b {
                assert!(!seen[i], "trial {trial}: input {i} twice");
                seen[i] = true;
            }
        }
        assert!(seen.iter().all(|&s| s), "trial {trial}: an input left out");
    }
}

#[test]
fn plan_sorts_by_length_so_batches_pad_little() {
    let lens = [5, 300, 7, 290, 6, 310, 8, 295];
    let shapes: Vec<Shape> = lens
        .iter()
        .map(|&len| Shape {
            sequences: 1,
            len,
            group: 0,
        })
        .collect();
    let b = schedule::plan(
        &shapes,
        Limits {
            max_tokens: 1200,
            max_sequences: 4,
            min_fill: 0.0,
        },
    );
    // The four short ones together, then the long ones (4 × 310 > 1200).
    assert_eq!(b[0], vec![0, 4, 2, 6]);
    assert!(b[1..].iter().all(|x| x.iter().all(|&i| lens[i] >= 290)));
}

/// Doubles a number; inputs below zero are refused; batches are recorded.
struct Doubler {
    batches: AtomicUsize,
    max_seen: AtomicUsize,
}

impl Job for Doubler {
    type Input = i64;
    type Item = i64;
    type Output = i64;
    fn prepare(&self, x: i64) -> Result<i64> {
        if x < 0 {
            return Err(Error::Input(format!("{x} is negative")));
        }
        Ok(x)
    }
    fn shape(&self, x: &i64) -> Shape {
        Shape {
            sequences: 1,
            len: 1 + (*x as usize % 50),
            group: 0,
        }
    }
    fn run(&self, items: &[&i64]) -> Result<Vec<i64>> {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.max_seen.fetch_max(items.len(), Ordering::Relaxed);
        Ok(items.iter().map(|x| **x * 2).collect())
    }
}

fn doubler() -> Doubler {
    Doubler {
        batches: AtomicUsize::new(0),
        max_seen: AtomicUsize::new(0),
    }
}

#[test]
fn outputs_come_in_input_order_across_windows() {
    let job = doubler();
    let inputs: Vec<i64> = (0..1000).map(|i| (i * 7919) % 1013).collect();
    let mut out = Vec::new();
    let p = batch::run(
        &job,
        inputs.iter().enumerate().map(|(i, &x)| Ok((i + 1, x))),
        Limits {
            max_tokens: 200,
            max_sequences: 16,
            min_fill: 0.0,
        },
        64,
        &mut |o| {
            out.push(o);
            Ok(())
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(out, inputs.iter().map(|x| x * 2).collect::<Vec<_>>());
    assert_eq!(p.inputs, 1000);
    assert!(job.max_seen.load(Ordering::Relaxed) <= 16);
    assert!(job.batches.load(Ordering::Relaxed) >= 1000 / 16);
}

#[test]
fn everything_before_a_bad_input_is_written_then_its_line_is_named() {
    for window in [1, 3, 4, 100] {
        let job = doubler();
        let inputs = [1i64, 2, 3, 4, 5, 6, -7, 8, 9];
        let mut out = Vec::new();
        let err = batch::run(
            &job,
            inputs.iter().enumerate().map(|(i, &x)| Ok((i + 1, x))),
            Limits {
                max_tokens: 100,
                max_sequences: 2,
                min_fill: 0.0,
            },
            window,
            &mut |o| {
                out.push(o);
                Ok(())
            },
            &mut |_| {},
        )
        .unwrap_err();
        assert_eq!(out, vec![2, 4, 6, 8, 10, 12], "window {window}");
        let msg = err.to_string();
        assert!(
            msg.contains("line 7") && msg.contains("-7 is negative"),
            "{msg}"
        );
    }
}

#[test]
fn a_malformed_row_stops_the_stream_after_the_rows_before_it() {
    let mut text = String::new();
    for i in 1..=9 {
        text.push_str(&format!("{{\"x\": {i}}}\n"));
    }
    text.push_str("{\"x\": oops}\n{\"x\": 11}\n");
    let reader = RowReader::new(
        Box::new(std::io::Cursor::new(text.into_bytes())),
        PathBuf::from("numbers.jsonl"),
        Format::Jsonl,
    );
    let inputs = reader.map(|r| {
        let row = r?;
        Ok((row.line, row.fields["x"].as_i64().unwrap()))
    });
    let mut out = Vec::new();
    let err = batch::run(
        &doubler(),
        inputs,
        Limits {
            max_tokens: 100,
            max_sequences: 4,
            min_fill: 0.0,
        },
        4,
        &mut |o| {
            out.push(o);
            Ok(())
        },
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(out, (1..=9).map(|i| i * 2).collect::<Vec<_>>());
    let msg = err.to_string();
    assert!(
        msg.contains("numbers.jsonl") && msg.contains("line 10") && msg.contains("invalid JSON"),
        "{msg}"
    );
}

#[test]
fn row_reader_streams_csv_text_and_jsonl() {
    let csv = "text,label\n\"a, quoted\nline\",1\nplain,2\n\"he said \"\"hi\"\"\",3";
    let rows: Vec<_> = RowReader::new(
        Box::new(std::io::Cursor::new(csv.as_bytes().to_vec())),
        PathBuf::from("x.csv"),
        Format::Csv,
    )
    .collect::<Result<_>>()
    .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].fields["text"], "a, quoted\nline");
    assert_eq!((rows[0].line, rows[1].line, rows[2].line), (2, 4, 5));
    assert_eq!(rows[2].fields["text"], "he said \"hi\"");
    // Text: every line is a text, empty lines too, \r\n stripped.
    let rows: Vec<_> = RowReader::new(
        Box::new(std::io::Cursor::new(b"one\r\n\nthree".to_vec())),
        PathBuf::from("x.txt"),
        Format::Text,
    )
    .collect::<Result<_>>()
    .unwrap();
    let texts: Vec<&str> = rows
        .iter()
        .map(|r| r.fields["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "", "three"]);
    // Bytes that are not UTF-8 name the line and byte.
    let err = RowReader::new(
        Box::new(std::io::Cursor::new(
            b"{\"text\": \"ok\"}\n{\"text\": \"\xff\"}\n".to_vec(),
        )),
        PathBuf::from("bad.jsonl"),
        Format::Jsonl,
    )
    .collect::<Result<Vec<_>>>()
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("line 2") && err.contains("0xff") && err.contains("byte 11"),
        "{err}"
    );
    // An unterminated quote is an error at the record's first line.
    let err = RowReader::new(
        Box::new(std::io::Cursor::new(b"text\n\"open\nstill".to_vec())),
        PathBuf::from("q.csv"),
        Format::Csv,
    )
    .collect::<Result<Vec<_>>>()
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("line 2") && err.contains("unterminated"),
        "{err}"
    );
}

#[test]
fn the_reader_holds_one_row_at_a_time() {
    // A source that yields rows forever: reading three must not read it all.
    struct Endless(u64);
    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let line = format!("{{\"text\": \"row {}\"}}\n", self.0);
            self.0 += 1;
            let n = line.len().min(buf.len());
            buf[..n].copy_from_slice(&line.as_bytes()[..n]);
            Ok(n)
        }
    }
    let reader = RowReader::new(
        Box::new(std::io::BufReader::with_capacity(64, Endless(0))),
        PathBuf::from("endless"),
        Format::Jsonl,
    );
    let bytes = reader.bytes_read();
    let first: Vec<_> = reader.take(3).collect::<Result<_>>().unwrap();
    assert_eq!(first[2].fields["text"], "row 2");
    assert!(bytes.load(Ordering::Relaxed) < 200);
}

#[test]
fn npy_writer_writes_numpy_format_with_the_final_row_count() {
    let path = std::env::temp_dir().join(format!("bert-wgpu-npy-{}.npy", std::process::id()));
    let mut w = NpyWriter::create(&path, 3).unwrap();
    w.write_row(&[1.0, -2.5, 3.25]).unwrap();
    w.write_row(&[0.0, 1e-8, f32::MAX]).unwrap();
    assert!(w.write_row(&[1.0]).is_err(), "a row of the wrong width");
    w.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0, "header padded to 64 bytes");
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(
        header.contains("'descr': '<f4'") && header.contains("'shape': (2, 3)"),
        "{header}"
    );
    assert!(header.ends_with('\n'));
    let data: Vec<f32> = bytes[10 + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(data, vec![1.0, -2.5, 3.25, 0.0, 1e-8, f32::MAX]);
}
