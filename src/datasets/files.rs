//! Reading dataset files: UTF-8 text, JSON lines, CSV (with a header row) or
//! plain text lines into [`Row`]s of named fields, streamed a line at a time
//! ([`RowReader`]), with errors naming file, line and field.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

/// How a data file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line; empty lines are skipped.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One text per line (the field `text`); every line counts, empty ones
    /// too, so outputs line up with inputs in a pipe.
    Text,
}

impl Format {
    /// From a file's extension: `.csv` is CSV, `.txt` plain text, anything
    /// else (`.jsonl`, `.json`, `.ndjson`, stdin) JSON lines.
    pub fn of_path(path: &Path) -> Format {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => Format::Csv,
            Some("txt") => Format::Text,
            _ => Format::Jsonl,
        }
    }
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "jsonl" | "json" | "ndjson" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "text" | "txt" => Ok(Format::Text),
            o => Err(Error::input(format!(
                "unknown data format `{o}` (expected jsonl, csv or text)"
            ))),
        }
    }
}

/// The file's format, from its extension (see [`Format::of_path`]).
pub fn is_csv(path: &Path) -> bool {
    Format::of_path(path) == Format::Csv
}

pub(super) fn bad(path: &Path, row: usize, field: &str, message: impl Into<String>) -> Error {
    Error::Dataset {
        path: path.to_path_buf(),
        row,
        field: field.to_string(),
        message: message.into(),
    }
}

/// One line's bytes as text, or an error naming the line and the byte.
fn utf8_line(path: &Path, line: usize, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let byte = e.as_bytes()[at];
        bad(
            path,
            line,
            "",
            format!(
                "byte {} of the line (0x{byte:02x}) is not valid UTF-8; save the file as UTF-8",
                at + 1
            ),
        )
    })
}

/// Rows of a data file, read lazily: memory holds one row at a time,
/// whatever the file's size.
pub struct RowReader {
    src: Box<dyn BufRead + Send>,
    path: PathBuf,
    format: Format,
    /// Lines read so far.
    line: usize,
    csv: CsvParser,
    header: Option<Vec<String>>,
    bytes: Arc<AtomicU64>,
    done: bool,
}

impl RowReader {
    /// Opens `path` (`-` is stdin), in `format` or the one its extension says.
    pub fn open(path: &Path, format: Option<Format>) -> Result<Self> {
        let src: Box<dyn BufRead + Send> = if path == Path::new("-") {
            Box::new(std::io::BufReader::new(std::io::stdin()))
        } else {
            let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            Box::new(std::io::BufReader::with_capacity(1 << 16, f))
        };
        let name = if path == Path::new("-") {
            PathBuf::from("<stdin>")
        } else {
            path.to_path_buf()
        };
        Ok(Self::new(
            src,
            name,
            format.unwrap_or_else(|| Format::of_path(path)),
        ))
    }

    /// Reads rows from `src`; `path` names it in errors.
    pub fn new(src: Box<dyn BufRead + Send>, path: PathBuf, format: Format) -> Self {
        RowReader {
            src,
            path,
            format,
            line: 0,
            csv: CsvParser::default(),
            header: None,
            bytes: Arc::new(AtomicU64::new(0)),
            done: false,
        }
    }

    /// Bytes read so far, shared: a progress bar can watch it from another
    /// thread while the reader is consumed.
    pub fn bytes_read(&self) -> Arc<AtomicU64> {
        self.bytes.clone()
    }

    /// The next physical line (with its `\n`), or `None` at the end.
    fn next_line(&mut self) -> Result<Option<String>> {
        let mut buf = Vec::new();
        let n = self
            .src
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(&self.path, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let mut text = utf8_line(&self.path, self.line, buf)?;
        if self.line == 1 {
            if let Some(t) = text.strip_prefix('\u{feff}') {
                text = t.to_string();
            }
        }
        Ok(Some(text))
    }

    fn next_row(&mut self) -> Result<Option<Row>> {
        match self.format {
            Format::Jsonl => loop {
                let Some(text) = self.next_line()? else {
                    return Ok(None);
                };
                if let Some(r) = parse_json_row(&self.path, self.line, &text)? {
                    return Ok(Some(r));
                }
            },
            Format::Text => {
                let Some(text) = self.next_line()? else {
                    return Ok(None);
                };
                let t = text.strip_suffix('\n').unwrap_or(&text);
                let t = t.strip_suffix('\r').unwrap_or(t);
                Ok(Some(Row {
                    line: self.line,
                    fields: BTreeMap::from([("text".to_string(), Value::String(t.to_string()))]),
                    csv: false,
                }))
            }
            Format::Csv => loop {
                let record = match self.next_line()? {
                    Some(text) => self.csv.feed(&self.path, &text)?,
                    None => match self.csv.finish(&self.path)? {
                        Some(r) => Some(r),
                        None => return Ok(None),
                    },
                };
                let Some((line, cells)) = record else {
                    continue;
                };
                match &self.header {
                    None => self.header = Some(check_header(&self.path, line, cells)?),
                    Some(header) => {
                        if cells.len() != header.len() {
                            return Err(bad(
                                &self.path,
                                line,
                                "(row)",
                                format!(
                                    "{} cells, but the header has {} columns",
                                    cells.len(),
                                    header.len()
                                ),
                            ));
                        }
                        return Ok(Some(Row {
                            line,
                            fields: header
                                .iter()
                                .cloned()
                                .zip(cells.into_iter().map(Value::String))
                                .collect(),
                            csv: true,
                        }));
                    }
                }
            },
        }
    }
}

impl Iterator for RowReader {
    type Item = Result<Row>;
    fn next(&mut self) -> Option<Result<Row>> {
        if self.done {
            return None;
        }
        let r = self.next_row().transpose();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }
}

/// Reads every row of a JSONL or CSV file (by its extension).
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    RowReader::open(path, None)?.collect()
}

fn text_rows(path: &Path, text: &str, format: Format) -> Result<Vec<Row>> {
    let src = std::io::Cursor::new(text.as_bytes().to_vec());
    RowReader::new(Box::new(src), path.to_path_buf(), format).collect()
}

/// Parses JSON lines: one object per non-empty line.
pub fn parse_jsonl(path: &Path, text: &str) -> Result<Vec<Row>> {
    text_rows(path, text, Format::Jsonl)
}

/// Parses RFC 4180 CSV with a header row: fields separated by commas,
/// optionally quoted with `"` (`""` inside quotes is a quote; quoted fields
/// may span lines). A row with a different number of cells than the header
/// is an error.
pub fn parse_csv(path: &Path, text: &str) -> Result<Vec<Row>> {
    text_rows(path, text, Format::Csv)
}

/// One JSONL line: a row, `None` for a blank line.
fn parse_json_row(path: &Path, line: usize, text: &str) -> Result<Option<Row>> {
    let l = text.trim();
    if l.is_empty() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(l)
        .map_err(|e| bad(path, line, "(row)", format!("invalid JSON: {e}")))?;
    let Value::Object(map) = v else {
        return Err(bad(
            path,
            line,
            "(row)",
            format!("expected a JSON object, got {}", kind(&v)),
        ));
    };
    Ok(Some(Row {
        line,
        fields: map.into_iter().collect(),
        csv: false,
    }))
}

fn check_header(path: &Path, line: usize, header: Vec<String>) -> Result<Vec<String>> {
    let header: Vec<String> = header.into_iter().map(|h| h.trim().to_string()).collect();
    for (i, h) in header.iter().enumerate() {
        if h.is_empty() {
            return Err(bad(
                path,
                line,
                &format!("column {}", i + 1),
                "empty column name in the header",
            ));
        }
        if header[..i].contains(h) {
            return Err(bad(path, line, h, "column named twice in the header"));
        }
    }
    Ok(header)
}

/// CSV records from physical lines: the quoting state carries across lines
/// (a quoted field may hold newlines).
#[derive(Debug)]
struct CsvParser {
    /// Physical line being read (1-based).
    line: usize,
    /// Where the current record started.
    start_line: usize,
    field: String,
    record: Vec<String>,
    in_quotes: bool,
    quoted: bool,
    any: bool,
}

impl Default for CsvParser {
    fn default() -> Self {
        CsvParser {
            line: 1,
            start_line: 1,
            field: String::new(),
            record: Vec::new(),
            in_quotes: false,
            quoted: false,
            any: false,
        }
    }
}

impl CsvParser {
    /// Feeds one physical line (with its `\n`, if any); returns the record
    /// it ends, as (start line, cells).
    fn feed(&mut self, path: &Path, text: &str) -> Result<Option<(usize, Vec<String>)>> {
        let mut chars = text.chars().peekable();
        let mut out = None;
        while let Some(c) = chars.next() {
            if self.in_quotes {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        self.field.push('"');
                    }
                    '"' => self.in_quotes = false,
                    '\n' => {
                        self.line += 1;
                        self.field.push(c);
                    }
                    _ => self.field.push(c),
                }
                continue;
            }
            match c {
                '"' if self.field.is_empty() && !self.quoted => {
                    self.in_quotes = true;
                    self.quoted = true;
                    self.any = true;
                }
                '"' => {
                    return Err(bad(
                        path,
                        self.line,
                        &format!("column {}", self.record.len() + 1),
                        "a quote inside an unquoted field (quote the whole field and double inner quotes)",
                    ))
                }
                ',' => {
                    self.record.push(std::mem::take(&mut self.field));
                    self.quoted = false;
                    self.any = true;
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' => {
                    if self.any || !self.field.is_empty() {
                        self.record.push(std::mem::take(&mut self.field));
                        out = Some((self.start_line, std::mem::take(&mut self.record)));
                    }
                    self.quoted = false;
                    self.any = false;
                    self.line += 1;
                    self.start_line = self.line;
                }
                _ => {
                    if self.quoted {
                        return Err(bad(
                            path,
                            self.line,
                            &format!("column {}", self.record.len() + 1),
                            "text after a closing quote",
                        ));
                    }
                    self.field.push(c);
                    self.any = true;
                }
            }
        }
        Ok(out)
    }

    /// The end of the input: the last record, if it had no newline.
    fn finish(&mut self, path: &Path) -> Result<Option<(usize, Vec<String>)>> {
        if self.in_quotes {
            return Err(bad(
                path,
                self.start_line,
                &format!("column {}", self.record.len() + 1),
                "unterminated quoted field",
            ));
        }
        if self.any || !self.field.is_empty() {
            self.record.push(std::mem::take(&mut self.field));
            self.any = false;
            return Ok(Some((self.start_line, std::mem::take(&mut self.record))));
        }
        Ok(None)
    }
}
