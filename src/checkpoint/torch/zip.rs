//! The zip container torch ≥ 1.6 writes: `<archive>/data.pkl` (the pickle),
//! `<archive>/data/<key>` (one entry per storage, raw little-endian bytes),
//! `<archive>/byteorder`, `<archive>/version`. Torch stores every entry
//! uncompressed and aligned, so a storage is a span of the file itself.

use std::io::Cursor;
use std::ops::Range;

use zip::{CompressionMethod, ZipArchive};

use super::pickle::{self, Source};
use super::state_dict::{self, Storages};
use super::{TorchEntry, TorchError};

type Archive<'a> = ZipArchive<Cursor<&'a [u8]>>;

pub(super) fn read(bytes: &[u8]) -> Result<Vec<TorchEntry>, TorchError> {
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        TorchError::new(format!(
            "not a readable zip archive (a truncated or damaged download?): {e}"
        ))
    })?;
    let pkl = data_pkl(&archive)?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();

    // Torch writes `byteorder` since 1.10 and assumed little-endian before.
    let order = format!("{prefix}byteorder");
    if let Some(r) = stored(&mut archive, bytes, &order)? {
        match bytes.get(r).unwrap_or_default() {
            b"little" => {}
            b"big" => {
                return Err(TorchError::new(format!(
                    "entry `{order}` says big: big-endian checkpoints are not supported, re-save it on a little-endian machine"
                )))
            }
            other => {
                return Err(TorchError::new(format!(
                    "entry `{order}` holds {:?}, expected \"little\"",
                    String::from_utf8_lossy(other)
                )))
            }
        }
    }

    let range = stored(&mut archive, bytes, &pkl)?
        .ok_or_else(|| TorchError::new(format!("entry `{pkl}` vanished")))?;
    let location = format!("entry `{pkl}` byte");
    let source = Source {
        name: "data.pkl",
        location: &location,
        base: 0,
    };
    let pickle = pickle::unpickle(bytes.get(range).unwrap_or_default(), &source)?;
    let mut storages = ZipStorages {
        archive,
        bytes,
        prefix,
    };
    state_dict::entries(bytes, &pickle, &mut storages)
}

/// The name of the one `<archive>/data.pkl` entry; the archive folder is
/// named after the file torch wrote, so it varies.
fn data_pkl(archive: &Archive) -> Result<String, TorchError> {
    let mut found = archive.file_names_raw().filter(|n| {
        n.strip_suffix(b"/data.pkl")
            .is_some_and(|dir| !dir.is_empty() && !dir.contains(&b'/'))
    });
    let first = found.next().ok_or_else(|| {
        TorchError::new(
            "zip archive without an `<archive>/data.pkl` entry: not a torch.save checkpoint",
        )
    })?;
    if let Some(second) = found.next() {
        return Err(TorchError::new(format!(
            "zip archive with two pickles, `{}` and `{}`: not a single torch.save checkpoint",
            String::from_utf8_lossy(first),
            String::from_utf8_lossy(second)
        )));
    }
    String::from_utf8(first.to_vec())
        .map_err(|_| TorchError::new("the `data.pkl` entry's folder name is not UTF-8"))
}

/// The byte range of entry `name` in `bytes`, if present; refuses entries
/// that are compressed or encrypted, or that run past the end of the file.
fn stored(
    archive: &mut Archive,
    bytes: &[u8],
    name: &str,
) -> Result<Option<Range<usize>>, TorchError> {
    let Some(index) = archive.index_for_name_raw(name.as_bytes()) else {
        return Ok(None);
    };
    let bad = |m: String| TorchError::new(format!("entry `{name}`: {m}"));
    let file = archive
        .by_index_raw(index)
        .map_err(|e| bad(e.to_string()))?;
    if file.compression() != CompressionMethod::Stored {
        return Err(bad(format!(
            "compressed ({}); torch writes stored (uncompressed) entries, so this file was repacked: re-save it with torch.save",
            file.compression()
        )));
    }
    if file.encrypted() {
        return Err(bad("encrypted".into()));
    }
    let size = file.size();
    if file.compressed_size() != size {
        return Err(bad(format!(
            "stored entry whose sizes disagree ({} vs {size} bytes)",
            file.compressed_size()
        )));
    }
    let start = file
        .data_start()
        .ok_or_else(|| bad("no data offset".into()))?;
    let range = usize::try_from(start)
        .ok()
        .zip(usize::try_from(size).ok())
        .and_then(|(s, n)| Some(s..s.checked_add(n)?))
        .filter(|r| r.end <= bytes.len())
        .ok_or_else(|| {
            bad(format!(
                "{size} bytes at offset {start} run past the end of the file ({} bytes): truncated?",
                bytes.len()
            ))
        })?;
    Ok(Some(range))
}

struct ZipStorages<'a> {
    archive: Archive<'a>,
    bytes: &'a [u8],
    prefix: String,
}

impl Storages for ZipStorages<'_> {
    fn root(&mut self, key: &str) -> Result<Range<usize>, TorchError> {
        let name = format!("{}data/{key}", self.prefix);
        stored(&mut self.archive, self.bytes, &name)?.ok_or_else(|| {
            TorchError::new(format!("storage `{key}`: no entry `{name}` in the archive"))
        })
    }
}
