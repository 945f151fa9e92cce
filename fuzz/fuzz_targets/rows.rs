//! Arbitrary bytes → `RowReader` (the streaming JSONL / CSV / text reader
//! every `--data` job reads through); the first byte picks the format. Rows
//! must come with strictly increasing line numbers inside the input, CSV
//! rows with one value per header column, and the first error ends the
//! stream.
#![no_main]

use std::path::PathBuf;

use bert_wgpu::datasets::{Format, RowReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let format = match pick % 3 {
        0 => Format::Jsonl,
        1 => Format::Csv,
        _ => Format::Text,
    };
    let lines = rest.iter().filter(|&&b| b == b'\n').count() + 1;
    let reader = RowReader::new(
        Box::new(std::io::Cursor::new(rest.to_vec())),
        PathBuf::from("fuzz"),
        format,
    );
    let mut last = 0usize;
    let mut width = None;
    let mut ended = false;
    for row in reader {
        assert!(!ended, "a row after an error");
        match row {
            Ok(r) => {
                assert!(r.line > last && r.line <= lines, "line {} after {last} (of {lines})", r.line);
                last = r.line;
                if format == Format::Csv {
                    let w = *width.get_or_insert(r.fields.len());
                    assert_eq!(r.fields.len(), w, "a CSV row of another width");
                }
                if format == Format::Text {
                    assert_eq!(r.fields.len(), 1);
                }
            }
            Err(e) => {
                let _ = e.to_string();
                ended = true;
            }
        }
    }
});
