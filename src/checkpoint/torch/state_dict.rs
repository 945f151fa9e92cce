//! From the unpickled object to the list of entries: walks the top-level
//! dict (flattening nested dicts), resolves each tensor's storage through
//! the container format, and lays its bytes out.
//!
//! The walk is paid for from a budget sized by the input: a pickle can
//! share one dict under many keys (and nest that), which would otherwise
//! describe exponentially many entries in a few bytes.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use super::layout;
use super::pickle::{Obj, Pickle, Storage, Tensor, Value};
use super::{TorchEntry, TorchError};

/// Deepest dict nesting followed (a self-containing dict stops here).
const MAX_DEPTH: usize = 16;

/// Where the container format keeps the storages.
pub(super) trait Storages {
    /// The byte range in the input of the storage named `key`.
    fn root(&mut self, key: &str) -> Result<Range<usize>, TorchError>;
}

/// The state dict of `pickle`, whose storages `storages` finds in `input`.
pub(super) fn entries(
    input: &[u8],
    pickle: &Pickle,
    storages: &mut dyn Storages,
) -> Result<Vec<TorchEntry>, TorchError> {
    if !matches!(pickle.obj(pickle.root), Some(Obj::Dict(_))) {
        return Err(TorchError::new(format!(
            "the checkpoint holds a {}, expected a dict (state dict) of tensors",
            pickle.kind(pickle.root)
        )));
    }
    let mut walk = Walk {
        input,
        pickle,
        storages,
        // Each dict item costs 1 + its key's length, twice, plus its rank;
        // a real file pays for that with its own bytes.
        work: input.len().saturating_mul(4).saturating_add(4096),
        gather: input.len(),
        resolved: HashMap::new(),
        seen: HashSet::new(),
        out: Vec::new(),
    };
    walk.dict(pickle.root, "", 0)?;
    Ok(walk.out)
}

struct Walk<'a> {
    input: &'a [u8],
    pickle: &'a Pickle,
    storages: &'a mut dyn Storages,
    work: usize,
    gather: usize,
    /// Storage key (arena index of its string) → byte range.
    resolved: HashMap<usize, Range<usize>>,
    seen: HashSet<String>,
    out: Vec<TorchEntry>,
}

impl Walk<'_> {
    fn charge(&mut self, units: usize) -> Result<(), TorchError> {
        self.work = self.work.checked_sub(units.saturating_add(1)).ok_or_else(|| {
            TorchError::new(
                "the state dict describes more entries than the file could hold (dicts shared under many keys?)",
            )
        })?;
        Ok(())
    }

    fn dict(&mut self, v: Value, prefix: &str, depth: usize) -> Result<(), TorchError> {
        let pickle = self.pickle;
        let Some(Obj::Dict(items)) = pickle.obj(v) else {
            return Ok(());
        };
        // Python dict semantics: a repeated key keeps its first position and
        // takes its last value.
        let mut span: HashMap<&str, (usize, usize)> = HashMap::new();
        for (i, (k, _)) in items.iter().enumerate() {
            let key = pickle.str(*k);
            self.charge(key.map_or(0, str::len))?;
            if let Some(key) = key {
                span.entry(key).and_modify(|s| s.1 = i).or_insert((i, i));
            }
        }
        for (i, (k, _)) in items.iter().enumerate() {
            // Non-string keys (an optimizer's per-parameter state) are skipped.
            let Some(key) = pickle.str(*k) else { continue };
            let Some(&(first, last)) = span.get(key) else {
                continue;
            };
            if first != i {
                continue;
            }
            let value = items[last].1;
            let full = format!("{prefix}{key}");
            self.charge(full.len())?;
            match pickle.obj(value) {
                Some(Obj::Tensor(t)) => self.tensor(full, t)?,
                Some(Obj::Unsupported(why)) => {
                    return Err(TorchError::new(format!("`{full}`: {why}")));
                }
                Some(Obj::Dict(_)) => {
                    if depth >= MAX_DEPTH {
                        return Err(TorchError::new(format!(
                            "`{full}`: dicts nested more than {MAX_DEPTH} deep"
                        )));
                    }
                    self.dict(value, &format!("{full}."), depth + 1)?;
                }
                // `_metadata`, epochs, configs, lists: not tensors.
                _ => {}
            }
        }
        Ok(())
    }

    fn tensor(&mut self, key: String, t: &Tensor) -> Result<(), TorchError> {
        self.charge(t.shape.len())?;
        let at = |e: TorchError| e.context(format!("`{key}`"));
        let Some(Obj::Storage(storage)) = self.pickle.objs.get(t.storage) else {
            return Err(at(TorchError::new("tensor without a storage")));
        };
        let range = self.storage(storage).map_err(at)?;
        let data = layout::data(self.input, range, t, &mut self.gather)
            .map_err(|m| at(TorchError::new(m)))?;
        if !self.seen.insert(key.clone()) {
            return Err(TorchError::new(format!(
                "`{key}` appears twice once nested dicts are flattened"
            )));
        }
        self.out.push(TorchEntry {
            key,
            dtype: t.dtype,
            shape: t.shape.clone(),
            data,
        });
        Ok(())
    }

    /// The bytes of `s` (a legacy view narrows its root storage).
    fn storage(&mut self, s: &Storage) -> Result<Range<usize>, TorchError> {
        let name = self.pickle.str(Value::Obj(s.key)).unwrap_or_default();
        let root = match self.resolved.get(&s.key) {
            Some(r) => r.clone(),
            None => {
                let r = self.storages.root(name)?;
                self.resolved.insert(s.key, r.clone());
                r
            }
        };
        let elem = s.elem.size();
        if s.numel.checked_mul(elem) != Some(root.len()) {
            return Err(TorchError::new(format!(
                "storage `{name}` holds {} bytes, but the pickle declares {} elements of {elem} bytes",
                root.len(),
                s.numel
            )));
        }
        let Some((offset, count)) = s.view else {
            return Ok(root);
        };
        offset
            .checked_add(count)
            .filter(|&end| end <= s.numel)
            .map(|end| root.start + offset * elem..root.start + end * elem)
            .ok_or_else(|| {
                TorchError::new(format!(
                    "view of elements {offset}..+{count} of storage `{name}`, which holds {}",
                    s.numel
                ))
            })
    }
}
