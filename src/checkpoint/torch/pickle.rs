//! A restricted pickle machine: it reads the opcodes that `torch.save`
//! writes (protocols 2–5) and builds plain data from them, never code.
//!
//! Globals are looked up in [`super::globals`] and anything else is refused
//! when it is named, before it could be called. "Calling" an allowed global
//! only builds a description (`rebuild.rs`: a [`Tensor`] is a storage key,
//! an offset, a shape and strides); bytes are looked at later, by the caller.
//!
//! Objects live in an arena and values refer to them by index, so `BINGET`
//! is O(1) and cannot be used to copy a large object many times; a
//! self-referencing container is a cycle of indices, freed with the arena.
//! Each opcode consumes at least one input byte and does O(1) amortised work
//! (the few that copy are capped: call arities, tensor rank), so work and
//! memory are linear in the input.

use std::collections::HashMap;
use std::fmt::Display;

use super::globals::{self, Global};
pub(super) use super::rebuild::{Storage, Tensor};
use super::TorchError;

/// Most values on the stack at once.
const MAX_STACK: usize = 1 << 20;
/// Most open MARKs at once.
const MAX_MARKS: usize = 1 << 16;
/// Most memo entries.
const MAX_MEMO: usize = 1 << 22;

/// A pickle value. Containers and strings live in the arena ([`Obj`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Something only ever skipped (bytes, an int wider than 64 bits, a set).
    Opaque(&'static str),
    /// Index into [`Pickle::objs`].
    Obj(usize),
}

#[derive(Debug)]
pub(super) enum Obj {
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Items in insertion order; duplicates are resolved by the reader.
    Dict(Vec<(Value, Value)>),
    Global {
        global: Global,
        name: String,
    },
    Storage(Storage),
    Tensor(Tensor),
    /// A tensor torch can hold but this reader cannot hand out, and why.
    Unsupported(String),
}

/// The result of one pickle.
pub(super) struct Pickle {
    pub objs: Vec<Obj>,
    pub root: Value,
    /// Offset just past STOP, relative to the bytes given.
    pub end: usize,
}

impl Pickle {
    pub(super) fn obj(&self, v: Value) -> Option<&Obj> {
        match v {
            Value::Obj(i) => self.objs.get(i),
            _ => None,
        }
    }

    pub(super) fn str(&self, v: Value) -> Option<&str> {
        match self.obj(v) {
            Some(Obj::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// A short name of what `v` is, for error messages.
    pub(super) fn kind(&self, v: Value) -> &'static str {
        kind(&self.objs, v)
    }
}

pub(super) fn kind(objs: &[Obj], v: Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Opaque(k) => k,
        Value::Obj(i) => match objs.get(i) {
            Some(Obj::Str(_)) => "str",
            Some(Obj::Tuple(_)) => "tuple",
            Some(Obj::List(_)) => "list",
            Some(Obj::Dict(_)) => "dict",
            Some(Obj::Global { .. }) => "global",
            Some(Obj::Storage(_)) => "storage",
            Some(Obj::Tensor(_)) | Some(Obj::Unsupported(_)) => "tensor",
            None => "dangling reference",
        },
    }
}

/// Where a pickle sits, for error messages.
pub(super) struct Source<'a> {
    /// What the pickle is: `data.pkl`, `the legacy state-dict pickle`.
    pub name: &'a str,
    /// Where its bytes are counted from: "entry `archive/data.pkl` byte", "file byte".
    pub location: &'a str,
    /// Added to positions in messages.
    pub base: usize,
}

/// Runs the pickle at the start of `bytes` up to its STOP.
pub(super) fn unpickle(bytes: &[u8], source: &Source) -> Result<Pickle, TorchError> {
    let mut m = Machine {
        bytes,
        pos: 0,
        source,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        objs: Vec::new(),
    };
    let (root, end) = m.run()?;
    Ok(Pickle {
        objs: m.objs,
        root,
        end,
    })
}

pub(super) struct Machine<'a, 's> {
    bytes: &'a [u8],
    pos: usize,
    source: &'s Source<'s>,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    pub(super) objs: Vec<Obj>,
}

pub(super) type Res<T> = Result<T, TorchError>;

/// At most this many characters of a refused name are echoed.
fn shorten(s: &str) -> String {
    const MAX: usize = 100;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

impl Machine<'_, '_> {
    pub(super) fn err(&self, at: usize, msg: impl Display) -> TorchError {
        let s = self.source;
        TorchError::new(format!(
            "{}: {msg} ({} {})",
            s.name,
            s.location,
            s.base.saturating_add(at)
        ))
    }

    fn run(&mut self) -> Res<(Value, usize)> {
        loop {
            let at = self.pos;
            let op = *self
                .bytes
                .get(at)
                .ok_or_else(|| self.err(at, "ends before its STOP opcode (truncated?)"))?;
            self.pos += 1;
            match op {
                0x80 => {
                    let v = self.take(at, 1)?[0];
                    if v > 5 {
                        return Err(self.err(at, format!("pickle protocol {v} is newer than 5")));
                    }
                }
                // FRAME only tells buffered readers how much to fetch.
                0x95 => {
                    self.take(at, 8)?;
                }
                b'}' => self.push_obj(at, Obj::Dict(Vec::new()))?,
                b']' => self.push_obj(at, Obj::List(Vec::new()))?,
                b')' => self.push_obj(at, Obj::Tuple(Vec::new()))?,
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let len = self.stack.len();
                    if len < n {
                        return Err(self.err(at, format!("TUPLE{n} on a stack of {len}")));
                    }
                    let items = self.stack.split_off(len - n);
                    self.push_obj(at, Obj::Tuple(items))?;
                }
                b't' => {
                    let items = self.pop_mark(at)?;
                    self.push_obj(at, Obj::Tuple(items))?;
                }
                b'l' => {
                    let items = self.pop_mark(at)?;
                    self.push_obj(at, Obj::List(items))?;
                }
                b'd' => {
                    let items = self.pop_mark(at)?;
                    let pairs = self.pairs(at, items)?;
                    self.push_obj(at, Obj::Dict(pairs))?;
                }
                b'(' => {
                    if self.marks.len() >= MAX_MARKS {
                        return Err(self.err(at, format!("more than {MAX_MARKS} open MARKs")));
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    self.pop(at)?;
                }
                b'1' => {
                    self.pop_mark(at)?;
                }
                b'2' => {
                    let top = self.top(at)?;
                    self.push(at, top)?;
                }
                b'X' => {
                    let n = self.len_u32(at)?;
                    self.string(at, n)?;
                }
                0x8c => {
                    let n = usize::from(self.take(at, 1)?[0]);
                    self.string(at, n)?;
                }
                0x8d => {
                    let n = self.len_u64(at)?;
                    self.string(at, n)?;
                }
                b'T' => {
                    let n = self.i32(at)?;
                    let n = usize::try_from(n)
                        .map_err(|_| self.err(at, format!("BINSTRING of negative length {n}")))?;
                    self.string(at, n)?;
                }
                b'U' => {
                    let n = usize::from(self.take(at, 1)?[0]);
                    self.string(at, n)?;
                }
                b'B' => {
                    let n = self.len_u32(at)?;
                    self.skip_bytes(at, n)?;
                }
                b'C' => {
                    let n = usize::from(self.take(at, 1)?[0]);
                    self.skip_bytes(at, n)?;
                }
                0x8e | 0x96 => {
                    let n = self.len_u64(at)?;
                    self.skip_bytes(at, n)?;
                }
                b'J' => {
                    let v = self.i32(at)?;
                    self.push(at, Value::Int(v.into()))?;
                }
                b'K' => {
                    let v = self.take(at, 1)?[0];
                    self.push(at, Value::Int(v.into()))?;
                }
                b'M' => {
                    let b = self.take(at, 2)?;
                    let v = u16::from_le_bytes([b[0], b[1]]);
                    self.push(at, Value::Int(v.into()))?;
                }
                0x8a => {
                    let n = usize::from(self.take(at, 1)?[0]);
                    self.long(at, n)?;
                }
                0x8b => {
                    let n = self.len_u32(at)?;
                    self.long(at, n)?;
                }
                b'G' => {
                    let b = self.take(at, 8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(at, Value::Float(f64::from_be_bytes(a)))?;
                }
                0x88 => self.push(at, Value::Bool(true))?,
                0x89 => self.push(at, Value::Bool(false))?,
                b'N' => self.push(at, Value::None)?,
                b'q' => {
                    let k = self.take(at, 1)?[0];
                    self.put(at, k.into())?;
                }
                b'r' => {
                    let k = self.u32(at)?;
                    self.put(at, k)?;
                }
                0x94 => {
                    let k = u32::try_from(self.memo.len())
                        .map_err(|_| self.err(at, "memo overflow"))?;
                    self.put(at, k)?;
                }
                b'h' => {
                    let k = self.take(at, 1)?[0];
                    self.get(at, k.into())?;
                }
                b'j' => {
                    let k = self.u32(at)?;
                    self.get(at, k)?;
                }
                b's' => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    self.set_items(at, vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark(at)?;
                    let pairs = self.pairs(at, items)?;
                    self.set_items(at, pairs)?;
                }
                b'a' => {
                    let v = self.pop(at)?;
                    self.append(at, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark(at)?;
                    self.append(at, items)?;
                }
                0x8f => self.push(at, Value::Opaque("set"))?,
                0x90 => {
                    self.pop_mark(at)?;
                    match self.top(at)? {
                        Value::Opaque("set") => {}
                        v => {
                            let k = kind(&self.objs, v);
                            return Err(self.err(at, format!("ADDITEMS on a {k}")));
                        }
                    }
                }
                0x91 => {
                    self.pop_mark(at)?;
                    self.push(at, Value::Opaque("frozenset"))?;
                }
                b'c' => {
                    let module = self.line(at)?;
                    let name = self.line(at)?;
                    self.global(at, &module, &name)?;
                }
                0x93 => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let (Some(module), Some(name)) = (self.str_of(module), self.str_of(name))
                    else {
                        return Err(self.err(at, "STACK_GLOBAL needs two strings"));
                    };
                    let (module, name) = (module.to_string(), name.to_string());
                    self.global(at, &module, &name)?;
                }
                b'R' | 0x81 => {
                    let args = self.pop(at)?;
                    let callable = self.pop(at)?;
                    let v = self.call(at, callable, args)?;
                    self.push(at, v)?;
                }
                0x92 => {
                    let kwargs = self.pop(at)?;
                    let args = self.pop(at)?;
                    let cls = self.pop(at)?;
                    if !matches!(self.obj_at(kwargs), Some(Obj::Dict(d)) if d.is_empty()) {
                        return Err(self.err(at, "NEWOBJ_EX with keyword arguments"));
                    }
                    let v = self.call(at, cls, args)?;
                    self.push(at, v)?;
                }
                b'b' => {
                    // The state is dropped: torch only BUILDs an OrderedDict's
                    // `_metadata` (per-module versions), which no reader needs.
                    self.pop(at)?;
                    let target = self.top(at)?;
                    if !matches!(self.obj_at(target), Some(Obj::Dict(_))) {
                        let k = kind(&self.objs, target);
                        return Err(self.err(
                            at,
                            format!("BUILD on a {k}: only a dict's attributes (`_metadata`) are accepted"),
                        ));
                    }
                }
                b'Q' => {
                    let pid = self.pop(at)?;
                    let storage = self.persistent(at, pid)?;
                    self.push_obj(at, Obj::Storage(storage))?;
                }
                b'.' => {
                    let root = self.pop(at)?;
                    return Ok((root, self.pos));
                }
                0x82..=0x84 => {
                    return Err(self.err(
                        at,
                        "refused extension-registry global (EXT opcode): only tensor rebuilds and plain containers are allowed",
                    ))
                }
                0x97 | 0x98 => {
                    return Err(self.err(at, "out-of-band buffers (pickle protocol 5) are not supported"))
                }
                _ => {
                    let shown = if op.is_ascii_graphic() {
                        format!(" ('{}')", char::from(op))
                    } else {
                        String::new()
                    };
                    return Err(self.err(at, format!("unknown or unsupported opcode 0x{op:02x}{shown}")));
                }
            }
        }
    }

    fn take(&mut self, at: usize, n: usize) -> Res<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                let left = self.bytes.len().saturating_sub(self.pos);
                self.err(
                    at,
                    format!("opcode needs {n} more bytes, {left} left (truncated?)"),
                )
            })?;
        let b = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn u32(&mut self, at: usize) -> Res<u32> {
        let b = self.take(at, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self, at: usize) -> Res<i32> {
        let b = self.take(at, 4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn len_u32(&mut self, at: usize) -> Res<usize> {
        let n = self.u32(at)?;
        usize::try_from(n).map_err(|_| self.err(at, format!("length {n} too large")))
    }

    fn len_u64(&mut self, at: usize) -> Res<usize> {
        let b = self.take(at, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        let n = u64::from_le_bytes(a);
        usize::try_from(n).map_err(|_| self.err(at, format!("length {n} too large")))
    }

    fn string(&mut self, at: usize, n: usize) -> Res<()> {
        let s = std::str::from_utf8(self.take(at, n)?).map(str::to_string);
        let s = s.map_err(|e| self.err(at, format!("string is not UTF-8: {e}")))?;
        self.push_obj(at, Obj::Str(s))
    }

    fn skip_bytes(&mut self, at: usize, n: usize) -> Res<()> {
        self.take(at, n)?;
        self.push(at, Value::Opaque("bytes"))
    }

    /// LONG1/LONG4: little-endian two's complement. Wider than 64 bits is
    /// kept opaque: no size or offset that large can describe real data.
    fn long(&mut self, at: usize, n: usize) -> Res<()> {
        let b = self.take(at, n)?;
        let v = match b.last() {
            None => Value::Int(0),
            Some(_) if n > 8 => Value::Opaque("int wider than 64 bits"),
            Some(&last) => {
                let fill = if last & 0x80 != 0 { 0xff } else { 0 };
                let mut a = [fill; 8];
                a[..n].copy_from_slice(b);
                Value::Int(i64::from_le_bytes(a))
            }
        };
        self.push(at, v)
    }

    /// One `\n`-terminated line of a GLOBAL opcode.
    fn line(&mut self, at: usize) -> Res<String> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err(at, "GLOBAL name without its newline (truncated?)"))?;
        let line = self.take(at, n + 1)?;
        let s = String::from_utf8_lossy(&line[..n]).into_owned();
        Ok(s)
    }

    fn push(&mut self, at: usize, v: Value) -> Res<()> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.err(at, format!("stack deeper than {MAX_STACK}")));
        }
        self.stack.push(v);
        Ok(())
    }

    fn push_obj(&mut self, at: usize, o: Obj) -> Res<()> {
        let v = self.new_obj(o);
        self.push(at, v)
    }

    pub(super) fn new_obj(&mut self, o: Obj) -> Value {
        self.objs.push(o);
        Value::Obj(self.objs.len() - 1)
    }

    fn pop(&mut self, at: usize) -> Res<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err(at, "pops an empty stack (or past a MARK)"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.err(at, "pops an empty stack"))
    }

    fn top(&self, at: usize) -> Res<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(&v) if self.stack.len() > floor => Ok(v),
            _ => Err(self.err(at, "needs a value on the stack")),
        }
    }

    fn pop_mark(&mut self, at: usize) -> Res<Vec<Value>> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.err(at, "no MARK to pop to"))?;
        // A mark never lies above the stack: pops stop at the innermost mark.
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn pairs(&self, at: usize, items: Vec<Value>) -> Res<Vec<(Value, Value)>> {
        if items.len() % 2 != 0 {
            return Err(self.err(
                at,
                format!("odd number of items ({}) for a dict", items.len()),
            ));
        }
        Ok(items.chunks_exact(2).map(|c| (c[0], c[1])).collect())
    }

    fn put(&mut self, at: usize, k: u32) -> Res<()> {
        let v = self.top(at)?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&k) {
            return Err(self.err(at, format!("more than {MAX_MEMO} memo entries")));
        }
        self.memo.insert(k, v);
        Ok(())
    }

    fn get(&mut self, at: usize, k: u32) -> Res<()> {
        let v = *self
            .memo
            .get(&k)
            .ok_or_else(|| self.err(at, format!("memo key {k} is not defined")))?;
        self.push(at, v)
    }

    pub(super) fn obj_at(&self, v: Value) -> Option<&Obj> {
        match v {
            Value::Obj(i) => self.objs.get(i),
            _ => None,
        }
    }

    pub(super) fn str_of(&self, v: Value) -> Option<&str> {
        match self.obj_at(v) {
            Some(Obj::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn set_items(&mut self, at: usize, mut pairs: Vec<(Value, Value)>) -> Res<()> {
        let target = self.top(at)?;
        let k = kind(&self.objs, target);
        match target {
            Value::Obj(i) => match self.objs.get_mut(i) {
                Some(Obj::Dict(d)) => {
                    d.append(&mut pairs);
                    Ok(())
                }
                _ => Err(self.err(at, format!("SETITEM(S) on a {k}"))),
            },
            _ => Err(self.err(at, format!("SETITEM(S) on a {k}"))),
        }
    }

    fn append(&mut self, at: usize, mut items: Vec<Value>) -> Res<()> {
        let target = self.top(at)?;
        let k = kind(&self.objs, target);
        match target {
            Value::Obj(i) => match self.objs.get_mut(i) {
                Some(Obj::List(l)) => {
                    l.append(&mut items);
                    Ok(())
                }
                _ => Err(self.err(at, format!("APPEND(S) on a {k}"))),
            },
            _ => Err(self.err(at, format!("APPEND(S) on a {k}"))),
        }
    }

    fn global(&mut self, at: usize, module: &str, name: &str) -> Res<()> {
        let Some(global) = globals::lookup(module, name) else {
            let s = self.source;
            return Err(TorchError::new(format!(
                "refused global `{}.{}` in {}: only tensor rebuilds and plain containers are allowed ({} {})",
                shorten(module),
                shorten(name),
                s.name,
                s.location,
                s.base.saturating_add(at)
            )));
        };
        let name = format!("{module}.{name}");
        self.push_obj(at, Obj::Global { global, name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<Pickle, TorchError> {
        let source = Source {
            name: "data.pkl",
            location: "byte",
            base: 0,
        };
        unpickle(bytes, &source)
    }

    fn err(bytes: &[u8]) -> String {
        match run(bytes) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn plain_containers() {
        // {'a': [1, -2, 3.5, True, None, 'x']} with memo traffic.
        let p = b"\x80\x02}q\x00X\x01\x00\x00\x00a](K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00\x88NX\x01\x00\x00\x00xe\x94s.";
        let p = run(p).unwrap();
        let Some(Obj::Dict(d)) = p.obj(p.root) else {
            panic!()
        };
        assert_eq!(d.len(), 1);
        let Some(Obj::List(l)) = p.obj(d[0].1) else {
            panic!()
        };
        assert_eq!(
            &l[..5],
            &[
                Value::Int(1),
                Value::Int(-2),
                Value::Float(3.5),
                Value::Bool(true),
                Value::None
            ]
        );
    }

    #[test]
    fn long1_sign_extends() {
        let p = run(b"\x8a\x02\x00\xff.").unwrap();
        assert_eq!(p.root, Value::Int(-256));
        let p = run(b"\x8a\x00.").unwrap();
        assert_eq!(p.root, Value::Int(0));
        let p = run(b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.").unwrap();
        assert!(matches!(p.root, Value::Opaque(_)));
    }

    #[test]
    fn refuses_globals_by_name() {
        let m = err(b"\x80\x02c__builtin__\ngetattr\n.");
        assert!(
            m.starts_with("refused global `__builtin__.getattr` in data.pkl: only tensor rebuilds"),
            "{m}"
        );
        let m = err(b"\x8c\x05numpy\x8c\x0fcore.multiarray\x93.");
        assert!(m.contains("`numpy.core.multiarray`"), "{m}");
        let m = err(b"\x82\x01.");
        assert!(m.contains("extension-registry"), "{m}");
    }

    #[test]
    fn errors_name_opcode_and_position() {
        let m = err(b"\x80\x02}\xff.");
        assert!(m.contains("opcode 0xff") && m.ends_with("byte 3)"), "{m}");
        let m = err(b"\x80\x02X\x10\x00\x00\x00ab");
        assert!(m.contains("needs 16 more bytes, 2 left"), "{m}");
        assert!(err(b"\x80\x02}").contains("before its STOP"));
        assert!(err(b"h\x07.").contains("memo key 7"));
        assert!(err(b"\x80\x09.").contains("protocol 9"));
        assert!(err(b"(s.").contains("empty stack"));
        assert!(err(b"K\x01K\x02K\x03s.").contains("SETITEM(S) on a int"));
    }

    #[test]
    fn build_only_on_dicts() {
        assert!(run(b"}}b.").is_ok());
        assert!(err(b"]}b.").contains("BUILD on a list"));
    }

    #[test]
    fn calls_only_allowed_callables() {
        // OrderedDict(1): arguments refused rather than interpreted.
        let m = err(b"ccollections\nOrderedDict\nK\x01\x85R.");
        assert!(m.contains("takes 0 to 0 arguments"), "{m}");
        let m = err(b"ctorch\nFloatStorage\n)R.");
        assert!(m.contains("not something a checkpoint calls"), "{m}");
        let m = err(b"K\x01)R.");
        assert!(m.contains("calls a int"), "{m}");
    }

    #[test]
    fn self_referencing_list_is_fine() {
        // l = []; l.append(l)
        let p = run(b"]q\x00h\x00a.").unwrap();
        assert!(matches!(p.obj(p.root), Some(Obj::List(l)) if l.len() == 1));
    }
}
