//! The format torch wrote before 1.6 (and still writes with
//! `_use_new_zipfile_serialization=False`): five pickles back to back —
//! a magic number, the protocol version (1001), system info (endianness),
//! the state dict, the list of storage keys — then, for each key in that
//! list, an 8-byte little-endian element count and the storage's raw bytes.
//! The element size comes from the storage class in the state dict, so the
//! state dict must be read before the data can be laid out.

use std::collections::HashMap;
use std::ops::Range;

use super::pickle::{self, Obj, Pickle, Source, Value};
use super::state_dict::{self, Storages};
use super::{TorchEntry, TorchError};

/// `0x1950a86a20f9469cfc6c` as LONG1, the first pickle's payload.
const MAGIC: &[u8] = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";
const PROTOCOL_VERSION: i64 = 1001;

pub(super) fn read(bytes: &[u8]) -> Result<Vec<TorchEntry>, TorchError> {
    let mut pos = 0;
    let magic = next(bytes, &mut pos, "the legacy magic-number pickle")?;
    let magic_bytes = bytes.get(..magic.end).unwrap_or_default();
    if !magic_bytes.windows(MAGIC.len()).any(|w| w == MAGIC) {
        return Err(TorchError::new(
            "a pickle without torch's magic number: not a torch.save file (a plain pickle?)",
        ));
    }
    let version = next(bytes, &mut pos, "the legacy protocol-version pickle")?;
    if version.root != Value::Int(PROTOCOL_VERSION) {
        return Err(TorchError::new(format!(
            "legacy protocol version {:?}, expected {PROTOCOL_VERSION}",
            version.root
        )));
    }
    let sys = next(bytes, &mut pos, "the legacy sys-info pickle")?;
    if let Some(Obj::Dict(items)) = sys.obj(sys.root) {
        let little = items
            .iter()
            .find(|(k, _)| sys.str(*k) == Some("little_endian"))
            .map(|(_, v)| *v);
        if little == Some(Value::Bool(false)) {
            return Err(TorchError::new(
                "the legacy sys info says big-endian: big-endian checkpoints are not supported",
            ));
        }
    }
    let main = next(bytes, &mut pos, "the legacy state-dict pickle")?;
    let keys = next(bytes, &mut pos, "the legacy storage-key pickle")?;
    let mut storages = LegacyStorages {
        ranges: layout(bytes, pos, &main, &keys)?,
    };
    state_dict::entries(bytes, &main, &mut storages)
}

/// Runs the pickle at `*pos` and moves past it.
fn next(bytes: &[u8], pos: &mut usize, name: &str) -> Result<Pickle, TorchError> {
    let source = Source {
        name,
        location: "file byte",
        base: *pos,
    };
    let p = pickle::unpickle(bytes.get(*pos..).unwrap_or_default(), &source)?;
    *pos += p.end;
    Ok(p)
}

/// Byte range of each storage's data, which follows the pickles at `pos`
/// in the order of the key list.
fn layout(
    bytes: &[u8],
    mut pos: usize,
    main: &Pickle,
    keys: &Pickle,
) -> Result<HashMap<String, Range<usize>>, TorchError> {
    // Element size per key, from the storage classes; each key string
    // object is hashed once however often it is referenced.
    let mut elem: HashMap<&str, usize> = HashMap::new();
    let mut seen = vec![false; main.objs.len()];
    for o in &main.objs {
        let Obj::Storage(s) = o else { continue };
        match seen.get_mut(s.key) {
            Some(seen) if !*seen => *seen = true,
            _ => continue,
        }
        let key = main.str(Value::Obj(s.key)).unwrap_or_default();
        let size = s.elem.size();
        if *elem.entry(key).or_insert(size) != size {
            return Err(TorchError::new(format!(
                "storage `{key}` is declared with two element sizes"
            )));
        }
    }
    let Some(Obj::List(list)) = keys.obj(keys.root) else {
        return Err(TorchError::new(format!(
            "the legacy storage-key pickle holds a {}, expected a list of keys",
            keys.kind(keys.root)
        )));
    };
    let mut ranges = HashMap::new();
    for &k in list {
        let key = keys.str(k).ok_or_else(|| {
            TorchError::new(format!(
                "a storage key is a {}, expected a string",
                keys.kind(k)
            ))
        })?;
        let size = *elem.get(key).ok_or_else(|| {
            TorchError::new(format!(
                "storage `{key}` is listed but no tensor uses it, so its element size is unknown"
            ))
        })?;
        let truncated = |what: &str| {
            TorchError::new(format!(
                "storage `{key}`: {what} at file byte {pos} runs past the end of the file ({} bytes): truncated?",
                bytes.len()
            ))
        };
        let count = bytes
            .get(pos..)
            .and_then(|b| b.first_chunk::<8>())
            .map(|b| u64::from_le_bytes(*b))
            .ok_or_else(|| truncated("the element count"))?;
        let start = pos + 8;
        let end = usize::try_from(count)
            .ok()
            .and_then(|n| n.checked_mul(size))
            .and_then(|n| n.checked_add(start))
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| truncated(&format!("the data ({count} elements of {size} bytes)")))?;
        if ranges.insert(key.to_string(), start..end).is_some() {
            return Err(TorchError::new(format!("storage `{key}` is listed twice")));
        }
        pos = end;
    }
    Ok(ranges)
}

struct LegacyStorages {
    ranges: HashMap<String, Range<usize>>,
}

impl Storages for LegacyStorages {
    fn root(&mut self, key: &str) -> Result<Range<usize>, TorchError> {
        self.ranges.get(key).cloned().ok_or_else(|| {
            TorchError::new(format!("storage `{key}` is not in the file's storage list"))
        })
    }
}
