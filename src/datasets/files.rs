//! Reading dataset files: UTF-8 text, JSON lines and CSV (with a header row)
//! into [`Row`]s of named fields, with errors naming file, line and field.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::infer::json_kind as kind;

/// A raw field value from a row: JSON as written, or a CSV cell (a string).
#[derive(Debug, Clone)]
pub struct Row {
    /// 1-based line of the row (for CSV, where its record starts).
    pub line: usize,
    /// Field name → value. CSV cells are JSON strings.
    pub fields: BTreeMap<String, Value>,
    /// Whether the row came from CSV (cells are strings to be parsed).
    pub csv: bool,
}

/// The file's format, from its extension: `.csv` is CSV, anything else
/// (`.jsonl`, `.json`, `.ndjson`) JSON lines.
pub fn is_csv(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// The file's text; bytes that are not UTF-8 are a [`Error::Dataset`] naming
/// the line and the byte within it.
pub fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let line_start = bytes[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
        bad(
            path,
            line,
            "",
            format!(
                "byte {} of the line (0x{:02x}) is not valid UTF-8; save the file as UTF-8",
                at - line_start + 1,
                bytes[at]
            ),
        )
    })
}

/// Reads every row of a JSONL or CSV file.
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let text = read_utf8(path)?;
    if is_csv(path) {
        parse_csv(path, &text)
    } else {
        parse_jsonl(path, &text)
    }
}

pub(super) fn bad(path: &Path, row: usize, field: &str, message: impl Into<String>) -> Error {
    Error::Dataset {
        path: path.to_path_buf(),
        row,
        field: field.to_string(),
        message: message.into(),
    }
}

/// Parses JSON lines: one object per non-empty line.
pub fn parse_jsonl(path: &Path, text: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(l)
            .map_err(|e| bad(path, line_no, "(row)", format!("invalid JSON: {e}")))?;
        let Value::Object(map) = v else {
            return Err(bad(
                path,
                line_no,
                "(row)",
                format!("expected a JSON object, got {}", kind(&v)),
            ));
        };
        rows.push(Row {
            line: line_no,
            fields: map.into_iter().collect(),
            csv: false,
        });
    }
    Ok(rows)
}

/// Parses RFC 4180 CSV with a header row: fields separated by commas,
/// optionally quoted with `"` (`""` inside quotes is a quote; quoted fields
/// may span lines). A row with a different number of cells than the header
/// is an error.
pub fn parse_csv(path: &Path, text: &str) -> Result<Vec<Row>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records: Vec<(usize, Vec<String>)> = Vec::new();
    let mut line = 1usize;
    let mut start_line = 1usize;
    let mut field = String::new();
    let mut record: Vec<String> = Vec::new();
    let mut in_quotes = false;
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !quoted => {
                in_quotes = true;
                quoted = true;
                any = true;
            }
            '"' => return Err(bad(
                path,
                line,
                &format!("column {}", record.len() + 1),
                "a quote inside an unquoted field (quote the whole field and double inner quotes)",
            )),
            ',' => {
                record.push(std::mem::take(&mut field));
                quoted = false;
                any = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if any || !field.is_empty() {
                    record.push(std::mem::take(&mut field));
                    records.push((start_line, std::mem::take(&mut record)));
                }
                quoted = false;
                any = false;
                line += 1;
                start_line = line;
            }
            _ => {
                if quoted {
                    return Err(bad(
                        path,
                        line,
                        &format!("column {}", record.len() + 1),
                        "text after a closing quote",
                    ));
                }
                field.push(c);
                any = true;
            }
        }
    }
    if in_quotes {
        return Err(bad(
            path,
            start_line,
            &format!("column {}", record.len() + 1),
            "unterminated quoted field",
        ));
    }
    if any || !field.is_empty() {
        record.push(field);
        records.push((start_line, record));
    }
    let mut it = records.into_iter();
    let Some((hline, header)) = it.next() else {
        return Ok(Vec::new());
    };
    let header: Vec<String> = header.into_iter().map(|h| h.trim().to_string()).collect();
    for (i, h) in header.iter().enumerate() {
        if h.is_empty() {
            return Err(bad(
                path,
                hline,
                &format!("column {}", i + 1),
                "empty column name in the header",
            ));
        }
        if header[..i].contains(h) {
            return Err(bad(path, hline, h, "column named twice in the header"));
        }
    }
    let mut rows = Vec::new();
    for (line, cells) in it {
        if cells.len() != header.len() {
            return Err(bad(
                path,
                line,
                "(row)",
                format!(
                    "{} cells, but the header has {} columns",
                    cells.len(),
                    header.len()
                ),
            ));
        }
        rows.push(Row {
            line,
            fields: header
                .iter()
                .cloned()
                .zip(cells.into_iter().map(Value::String))
                .collect(),
            csv: true,
        });
    }
    Ok(rows)
}
