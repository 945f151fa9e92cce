//! What torch's allowed globals mean when a pickle calls them, and what a
//! persistent id names: descriptions of storages and strided tensors, built
//! from checked arguments. Nothing here touches tensor bytes.

use safetensors::Dtype;

use super::globals::{DtypeObj, Elem, Global};
use super::pickle::{kind, Machine, Obj, Res, Value};

/// Most dimensions a tensor may have (torch's own limit is 64 too).
const MAX_RANK: usize = 64;

/// A storage named by a persistent id: its bytes are elsewhere in the file.
#[derive(Debug)]
pub(super) struct Storage {
    /// Arena index of the key string (`"0"` in a zip, a number in legacy files).
    pub key: usize,
    pub elem: Elem,
    /// Elements, as the persistent id declares.
    pub numel: usize,
    /// Legacy storage views: (element offset, element count) into the root.
    pub view: Option<(usize, usize)>,
}

/// A strided view of a storage (`_rebuild_tensor*`).
#[derive(Debug)]
pub(super) struct Tensor {
    /// Arena index of an [`Obj::Storage`].
    pub storage: usize,
    pub dtype: Dtype,
    /// In elements of `dtype`.
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

impl Machine<'_, '_> {
    /// The items of an argument tuple, at most `max` of them (so that a large
    /// tuple fetched again and again by BINGET is never copied).
    fn args(&self, at: usize, what: &str, v: Value, min: usize, max: usize) -> Res<Vec<Value>> {
        match self.obj_at(v) {
            Some(Obj::Tuple(t)) if (min..=max).contains(&t.len()) => Ok(t.clone()),
            Some(Obj::Tuple(t)) => Err(self.err(
                at,
                format!("`{what}` takes {min} to {max} arguments, got {}", t.len()),
            )),
            _ => {
                let k = kind(&self.objs, v);
                Err(self.err(at, format!("arguments of `{what}` are a {k}, not a tuple")))
            }
        }
    }

    pub(super) fn call(&mut self, at: usize, callable: Value, args: Value) -> Res<Value> {
        let Some(Obj::Global { global, name }) = self.obj_at(callable) else {
            let k = kind(&self.objs, callable);
            return Err(self.err(at, format!("calls a {k}, not an allowed global")));
        };
        let (global, name) = (*global, name.clone());
        match global {
            Global::OrderedDict => {
                self.args(at, &name, args, 0, 0)?;
                Ok(self.new_obj(Obj::Dict(Vec::new())))
            }
            Global::Size => {
                let a = self.args(at, &name, args, 1, 1)?;
                match self.obj_at(a[0]) {
                    // Tuples are never mutated, so the size can share it.
                    Some(Obj::Tuple(_)) => Ok(a[0]),
                    _ => Err(self.err(at, "`torch.Size` of something other than a tuple")),
                }
            }
            Global::RebuildTensor => {
                let a = self.args(at, &name, args, 4, 4)?;
                self.tensor(at, &a, None)
            }
            Global::RebuildTensorV2 => {
                let a = self.args(at, &name, args, 6, 7)?;
                self.tensor(at, &a, None)
            }
            Global::RebuildTensorV3 => {
                let a = self.args(at, &name, args, 7, 8)?;
                let dtype = match self.obj_at(a[6]) {
                    Some(Obj::Global {
                        global: Global::Dtype(d),
                        ..
                    }) => *d,
                    _ => return Err(self.err(at, "`_rebuild_tensor_v3` without a torch dtype")),
                };
                self.tensor(at, &a, Some(dtype))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let a = self.args(at, &name, args, 3, 4)?;
                self.expect_tensor(at, &name, a[0])
            }
            Global::RebuildFromTypeV2 => {
                let a = self.args(at, &name, args, 4, 4)?;
                if !matches!(
                    self.obj_at(a[1]),
                    Some(Obj::Global {
                        global: Global::TensorClass,
                        ..
                    })
                ) {
                    return Err(
                        self.err(at, format!("`{name}` of a class other than torch.Tensor"))
                    );
                }
                let inner = match self.obj_at(a[0]) {
                    Some(Obj::Global { global, .. }) => *global,
                    _ => Global::OrderedDict,
                };
                if !matches!(
                    inner,
                    Global::RebuildTensor
                        | Global::RebuildTensorV2
                        | Global::RebuildTensorV3
                        | Global::RebuildParameter
                        | Global::RebuildParameterWithState
                        | Global::RebuildQTensor
                ) {
                    return Err(self.err(
                        at,
                        format!("`{name}` of something other than a tensor rebuild"),
                    ));
                }
                let v = self.call(at, a[0], a[2])?;
                self.expect_tensor(at, &name, v)
            }
            Global::RebuildQTensor => Ok(self.new_obj(Obj::Unsupported(
                "quantized tensors (torch._utils._rebuild_qtensor) are not supported".into(),
            ))),
            Global::TensorClass | Global::Storage(_) | Global::Dtype(_) | Global::QScheme => {
                Err(self.err(at, format!("`{name}` is not something a checkpoint calls")))
            }
        }
    }

    fn expect_tensor(&self, at: usize, what: &str, v: Value) -> Res<Value> {
        match self.obj_at(v) {
            Some(Obj::Tensor(_) | Obj::Unsupported(_)) => Ok(v),
            _ => {
                let k = kind(&self.objs, v);
                Err(self.err(at, format!("`{what}` of a {k}, not a tensor")))
            }
        }
    }

    fn int(&self, at: usize, what: &str, v: Value) -> Res<usize> {
        match v {
            Value::Int(i) => usize::try_from(i).map_err(|_| {
                self.err(
                    at,
                    format!("{what} is {i}, expected a non-negative integer"),
                )
            }),
            _ => {
                let k = kind(&self.objs, v);
                Err(self.err(at, format!("{what} is a {k}, expected an integer")))
            }
        }
    }

    fn dims(&self, at: usize, what: &str, v: Value) -> Res<Vec<usize>> {
        let items = match self.obj_at(v) {
            Some(Obj::Tuple(t) | Obj::List(t)) => t,
            _ => {
                let k = kind(&self.objs, v);
                return Err(self.err(at, format!("tensor {what} is a {k}, expected a tuple")));
            }
        };
        if items.len() > MAX_RANK {
            return Err(self.err(
                at,
                format!(
                    "tensor {what} has {} dimensions, more than {MAX_RANK}",
                    items.len()
                ),
            ));
        }
        items
            .iter()
            .map(|&d| self.int(at, &format!("a tensor {what} entry"), d))
            .collect()
    }

    /// `_rebuild_tensor{,_v2,_v3}(storage, storage_offset, size, stride, ...)`.
    fn tensor(&mut self, at: usize, a: &[Value], dtype: Option<DtypeObj>) -> Res<Value> {
        let storage = match a[0] {
            Value::Obj(i) if matches!(self.objs.get(i), Some(Obj::Storage(_))) => i,
            v => {
                let k = kind(&self.objs, v);
                return Err(self.err(at, format!("tensor rebuilt from a {k}, not a storage")));
            }
        };
        let elem = match self.objs.get(storage) {
            Some(Obj::Storage(s)) => s.elem,
            _ => return Err(self.err(at, "tensor rebuilt from something other than a storage")),
        };
        let dtype = match (elem, dtype) {
            (Elem::Unsupported { name, .. }, _) => {
                return Ok(self.new_obj(Obj::Unsupported(format!(
                    "{name} storages are not supported"
                ))))
            }
            (_, Some(DtypeObj::Unsupported(name))) => {
                return Ok(self.new_obj(Obj::Unsupported(format!("dtype {name} is not supported"))))
            }
            (Elem::Typed(d), None) => d,
            (Elem::Typed(d), Some(DtypeObj::Supported(t))) if d == t => d,
            (Elem::Typed(d), Some(DtypeObj::Supported(t))) => {
                return Err(self.err(at, format!("tensor of dtype {t:?} over a {d:?} storage")))
            }
            (Elem::Untyped, Some(DtypeObj::Supported(t))) => t,
            (Elem::Untyped, None) => Dtype::U8,
        };
        let offset = self.int(at, "storage offset", a[1])?;
        let shape = self.dims(at, "size", a[2])?;
        let stride = self.dims(at, "stride", a[3])?;
        if shape.len() != stride.len() {
            return Err(self.err(
                at,
                format!("tensor size {shape:?} and stride {stride:?} differ in rank"),
            ));
        }
        Ok(self.new_obj(Obj::Tensor(Tensor {
            storage,
            dtype,
            offset,
            shape,
            stride,
        })))
    }

    /// `('storage', storage_type, key, location, numel[, view_metadata])`.
    pub(super) fn persistent(&self, at: usize, pid: Value) -> Res<Storage> {
        let bad = |why: &str| self.err(at, format!("persistent id is not a torch storage: {why}"));
        let items = match self.obj_at(pid) {
            Some(Obj::Tuple(t)) if (5..=6).contains(&t.len()) => t,
            _ => return Err(bad(&format!("a {}", kind(&self.objs, pid)))),
        };
        if self.str_of(items[0]) != Some("storage") {
            return Err(bad("its tag is not 'storage'"));
        }
        let elem = match self.obj_at(items[1]) {
            Some(Obj::Global {
                global: Global::Storage(e),
                ..
            }) => *e,
            _ => return Err(bad("no storage class")),
        };
        let key = match items[2] {
            Value::Obj(i) if matches!(self.objs.get(i), Some(Obj::Str(_))) => i,
            _ => return Err(bad("its key is not a string")),
        };
        let numel = self.int(at, "storage size", items[4])?;
        let view = match items.get(5).copied() {
            None | Some(Value::None) => None,
            Some(v) => match self.obj_at(v) {
                // Legacy storage views: (view key, offset, size) in elements.
                Some(Obj::Tuple(t)) if t.len() == 3 => Some((
                    self.int(at, "storage view offset", t[1])?,
                    self.int(at, "storage view size", t[2])?,
                )),
                _ => return Err(bad("malformed view metadata")),
            },
        };
        Ok(Storage {
            key,
            elem,
            numel,
            view,
        })
    }
}
