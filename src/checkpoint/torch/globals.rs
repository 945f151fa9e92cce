//! The allow-list: the only Python globals a checkpoint may name.
//!
//! A pickle names a callable as `module.name` and later calls it; a loader
//! that imports whatever is named runs whatever the file says. Here a name
//! is only ever looked up in this table, and what it maps to is data about
//! how torch lays tensors out, never code.

use safetensors::Dtype;

/// What a storage class (`torch.FloatStorage`, ...) says about its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Elem {
    /// A typed storage of this dtype.
    Typed(Dtype),
    /// `UntypedStorage`: bytes; the tensor's dtype comes from elsewhere
    /// (`_rebuild_tensor_v3`), or is `uint8`.
    Untyped,
    /// A storage we recognise but cannot hand out (complex, quantized),
    /// with its element size so the legacy format can still be laid out.
    Unsupported { name: &'static str, size: usize },
}

impl Elem {
    /// Bytes per element of the storage.
    pub(super) fn size(self) -> usize {
        match self {
            Elem::Typed(d) => byte_size(d),
            Elem::Untyped => 1,
            Elem::Unsupported { size, .. } => size,
        }
    }
}

/// Bytes per element; 0 for the sub-byte types, which torch cannot hold in
/// a storage of their own and this reader never produces.
pub(super) fn byte_size(d: Dtype) -> usize {
    if d.bitsize() % 8 == 0 {
        d.bitsize() / 8
    } else {
        0
    }
}

/// A `torch.<dtype>` object, as `_rebuild_tensor_v3` receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DtypeObj {
    Supported(Dtype),
    Unsupported(&'static str),
}

/// An allowed global.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Global {
    OrderedDict,
    /// `torch.Size`: a tuple.
    Size,
    RebuildTensor,
    RebuildTensorV2,
    RebuildTensorV3,
    RebuildParameter,
    RebuildParameterWithState,
    /// `torch._tensor._rebuild_from_type_v2`: a tensor that carries Python
    /// attributes; the attributes are dropped.
    RebuildFromTypeV2,
    /// `torch._utils._rebuild_qtensor`: recognised so that the error can name
    /// the key instead of the global.
    RebuildQTensor,
    /// `torch.Tensor` / `torch.nn.parameter.Parameter`, the classes that
    /// `_rebuild_from_type_v2` receives.
    TensorClass,
    Storage(Elem),
    Dtype(DtypeObj),
    /// `torch.per_tensor_affine` and friends (arguments of quantized tensors).
    QScheme,
}

/// Looks `module.name` up in the allow-list.
pub(super) fn lookup(module: &str, name: &str) -> Option<Global> {
    use Global::*;
    Some(match (module, name) {
        ("collections", "OrderedDict") => OrderedDict,
        ("torch", "Size") => Size,
        ("torch._utils", "_rebuild_tensor") => RebuildTensor,
        ("torch._utils", "_rebuild_tensor_v2") => RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor_v3") => RebuildTensorV3,
        ("torch._utils", "_rebuild_parameter") => RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => RebuildFromTypeV2,
        ("torch._utils", "_rebuild_qtensor") => RebuildQTensor,
        ("torch", "Tensor") | ("torch._tensor", "Tensor") => TensorClass,
        ("torch.nn.parameter", "Parameter") => TensorClass,
        ("torch", "UntypedStorage") | ("torch.storage", "UntypedStorage") => Storage(Elem::Untyped),
        ("torch", name) => {
            if let Some(elem) = storage_class(name) {
                Storage(elem)
            } else if let Some(dtype) = dtype_object(name) {
                Dtype(dtype)
            } else if matches!(
                name,
                "per_tensor_affine"
                    | "per_channel_affine"
                    | "per_tensor_symmetric"
                    | "per_channel_symmetric"
                    | "per_channel_affine_float_qparams"
            ) {
                QScheme
            } else {
                return None;
            }
        }
        _ => return None,
    })
}

/// `torch.<Name>Storage`, the typed storage classes of the persistent ids.
fn storage_class(name: &str) -> Option<Elem> {
    let typed = |d| Some(Elem::Typed(d));
    let unsupported = |name, size| Some(Elem::Unsupported { name, size });
    match name {
        "FloatStorage" => typed(Dtype::F32),
        "HalfStorage" => typed(Dtype::F16),
        "BFloat16Storage" => typed(Dtype::BF16),
        "DoubleStorage" => typed(Dtype::F64),
        "LongStorage" => typed(Dtype::I64),
        "IntStorage" => typed(Dtype::I32),
        "ShortStorage" => typed(Dtype::I16),
        "CharStorage" => typed(Dtype::I8),
        "ByteStorage" => typed(Dtype::U8),
        "BoolStorage" => typed(Dtype::BOOL),
        "ComplexFloatStorage" => unsupported("torch.ComplexFloatStorage (complex64)", 8),
        "ComplexDoubleStorage" => unsupported("torch.ComplexDoubleStorage (complex128)", 16),
        "QInt8Storage" => unsupported("torch.QInt8Storage (quantized)", 1),
        "QUInt8Storage" => unsupported("torch.QUInt8Storage (quantized)", 1),
        "QInt32Storage" => unsupported("torch.QInt32Storage (quantized)", 4),
        "QUInt4x2Storage" => unsupported("torch.QUInt4x2Storage (quantized)", 1),
        "QUInt2x4Storage" => unsupported("torch.QUInt2x4Storage (quantized)", 1),
        _ => None,
    }
}

/// `torch.<dtype>`, by the canonical name that `torch.dtype` pickles as.
fn dtype_object(name: &str) -> Option<DtypeObj> {
    use DtypeObj::{Supported as S, Unsupported as U};
    Some(match name {
        "float32" => S(Dtype::F32),
        "float16" => S(Dtype::F16),
        "bfloat16" => S(Dtype::BF16),
        "float64" => S(Dtype::F64),
        "int64" => S(Dtype::I64),
        "int32" => S(Dtype::I32),
        "int16" => S(Dtype::I16),
        "int8" => S(Dtype::I8),
        "uint8" => S(Dtype::U8),
        "bool" => S(Dtype::BOOL),
        "uint16" => S(Dtype::U16),
        "uint32" => S(Dtype::U32),
        "uint64" => S(Dtype::U64),
        "float8_e4m3fn" => S(Dtype::F8_E4M3),
        "float8_e5m2" => S(Dtype::F8_E5M2),
        "float8_e4m3fnuz" => S(Dtype::F8_E4M3FNUZ),
        "float8_e5m2fnuz" => S(Dtype::F8_E5M2FNUZ),
        "float8_e8m0fnu" => S(Dtype::F8_E8M0),
        "complex32" => U("torch.complex32"),
        "complex64" => U("torch.complex64"),
        "complex128" => U("torch.complex128"),
        "qint8" => U("torch.qint8 (quantized)"),
        "quint8" => U("torch.quint8 (quantized)"),
        "qint32" => U("torch.qint32 (quantized)"),
        "quint4x2" => U("torch.quint4x2 (quantized)"),
        "quint2x4" => U("torch.quint2x4 (quantized)"),
        "float4_e2m1fn_x2" => U("torch.float4_e2m1fn_x2 (packed)"),
        _ => return None,
    })
}
