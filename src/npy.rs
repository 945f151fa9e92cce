//! A float32 `.npy` writer (numpy's format 1.0: magic, header dict, then
//! little-endian rows) that streams rows of unknown count: the header is
//! written with room to spare and its shape rewritten by [`NpyWriter::finish`].

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The whole header, magic included: a multiple of 64 as numpy asks, with
/// room for any row count.
const HEADER_LEN: usize = 128;

/// Rows of `cols` float32 values into a `.npy` file of shape (rows, cols).
pub struct NpyWriter {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    cols: usize,
    rows: u64,
}

fn header(rows: u64, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    let body = HEADER_LEN - h.len() - 2;
    h.extend_from_slice(&(body as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(HEADER_LEN - 1, b' ');
    h.push(b'\n');
    h
}

impl NpyWriter {
    /// Creates `path` for rows of `cols` values.
    pub fn create(path: &Path, cols: usize) -> Result<Self> {
        let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let mut w = NpyWriter {
            file: std::io::BufWriter::new(f),
            path: path.to_path_buf(),
            cols,
            rows: 0,
        };
        let h = header(0, cols);
        w.file.write_all(&h).map_err(|e| Error::io(path, e))?;
        Ok(w)
    }

    /// Appends one row.
    pub fn write_row(&mut self, row: &[f32]) -> Result<()> {
        if row.len() != self.cols {
            return Err(Error::input(format!(
                "a row of {} values for a .npy file of {} columns",
                row.len(),
                self.cols
            )));
        }
        let mut bytes = Vec::with_capacity(row.len() * 4);
        for v in row {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.file
            .write_all(&bytes)
            .map_err(|e| Error::io(&self.path, e))?;
        self.rows += 1;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the final shape into the header and flushes.
    pub fn finish(mut self) -> Result<()> {
        let io = |e| Error::io(&self.path, e);
        self.file.flush().map_err(io)?;
        let f = self.file.get_mut();
        f.seek(SeekFrom::Start(0)).map_err(io)?;
        f.write_all(&header(self.rows, self.cols)).map_err(io)?;
        f.flush().map_err(io)
    }
}
