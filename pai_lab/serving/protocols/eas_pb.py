"""The TF processor's protobuf messages (``PredictRequest`` / ``PredictResponse``), built from a
descriptor at import time so that no generated code ties us to one protobuf release."""

from __future__ import annotations

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

DT = {
    "DT_INVALID": 0,
    "DT_FLOAT": 1,
    "DT_DOUBLE": 2,
    "DT_INT32": 3,
    "DT_UINT8": 4,
    "DT_INT16": 5,
    "DT_INT8": 6,
    "DT_STRING": 7,
    "DT_COMPLEX64": 8,
    "DT_INT64": 9,
    "DT_BOOL": 10,
    "DT_QINT8": 11,
    "DT_QUINT8": 12,
    "DT_QINT32": 13,
    "DT_BFLOAT16": 14,
    "DT_QINT16": 15,
    "DT_QUINT16": 16,
    "DT_UINT16": 17,
    "DT_COMPLEX128": 18,
    "DT_HALF": 19,
    "DT_RESOURCE": 20,
    "DT_VARIANT": 21,
}
DT_NAME = {v: k for k, v in DT.items()}

# dtype -> (field holding the values, numpy dtype)
_FIELD = {
    1: ("float_val", np.float32),
    2: ("double_val", np.float64),
    3: ("int_val", np.int32),
    4: ("int_val", np.uint8),
    5: ("int_val", np.int16),
    6: ("int_val", np.int8),
    7: ("string_val", object),
    9: ("int64_val", np.int64),
    10: ("bool_val", np.bool_),
    17: ("int_val", np.uint16),
    19: ("float_val", np.float16),
}
_BY_NUMPY = {
    np.dtype(np.float32): 1,
    np.dtype(np.float64): 2,
    np.dtype(np.int32): 3,
    np.dtype(np.uint8): 4,
    np.dtype(np.int16): 5,
    np.dtype(np.int8): 6,
    np.dtype(np.int64): 9,
    np.dtype(np.bool_): 10,
    np.dtype(np.uint16): 17,
    np.dtype(np.float16): 19,
}


def _build():
    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(
        name="pai_lab_eas_tf_predict.proto", package="tensorflow.eas", syntax="proto3"
    )
    enum = fd.enum_type.add(name="ArrayDataType")
    for name, number in DT.items():
        enum.value.add(name=name, number=number)

    def field(msg, name, number, ftype, label=F.LABEL_OPTIONAL, type_name=None, packed=False):
        f = msg.field.add(name=name, number=number, type=ftype, label=label)
        if type_name:
            f.type_name = type_name
        if packed:
            f.options.packed = True
        return f

    shape = fd.message_type.add(name="ArrayShape")
    field(shape, "dim", 1, F.TYPE_INT64, F.LABEL_REPEATED, packed=True)
    arr = fd.message_type.add(name="ArrayProto")
    field(arr, "dtype", 1, F.TYPE_ENUM, type_name=".tensorflow.eas.ArrayDataType")
    field(arr, "array_shape", 2, F.TYPE_MESSAGE, type_name=".tensorflow.eas.ArrayShape")
    for name, number, ftype in (
        ("float_val", 3, F.TYPE_FLOAT),
        ("double_val", 4, F.TYPE_DOUBLE),
        ("int_val", 5, F.TYPE_INT32),
        ("int64_val", 7, F.TYPE_INT64),
        ("bool_val", 8, F.TYPE_BOOL),
    ):
        field(arr, name, number, ftype, F.LABEL_REPEATED, packed=True)
    field(arr, "string_val", 6, F.TYPE_BYTES, F.LABEL_REPEATED)

    def map_of(msg, entry_name, fname, number):
        entry = msg.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        field(entry, "key", 1, F.TYPE_STRING)
        field(entry, "value", 2, F.TYPE_MESSAGE, type_name=".tensorflow.eas.ArrayProto")
        field(
            msg, fname, number, F.TYPE_MESSAGE, F.LABEL_REPEATED, type_name=f".tensorflow.eas.{msg.name}.{entry_name}"
        )

    req = fd.message_type.add(name="PredictRequest")
    field(req, "signature_name", 1, F.TYPE_STRING)
    map_of(req, "InputsEntry", "inputs", 2)
    field(req, "output_filter", 3, F.TYPE_STRING, F.LABEL_REPEATED)
    resp = fd.message_type.add(name="PredictResponse")
    map_of(resp, "OutputsEntry", "outputs", 1)

    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    get = message_factory.GetMessageClass
    return (
        get(pool.FindMessageTypeByName("tensorflow.eas.PredictRequest")),
        get(pool.FindMessageTypeByName("tensorflow.eas.PredictResponse")),
        get(pool.FindMessageTypeByName("tensorflow.eas.ArrayProto")),
    )


PredictRequest, PredictResponse, ArrayProto = _build()


def array_to_numpy(proto) -> np.ndarray:
    field, dtype = _FIELD.get(proto.dtype, (None, None))
    if field is None:
        raise ValueError(f"unsupported dtype {DT_NAME.get(proto.dtype, proto.dtype)}")
    values = getattr(proto, field)
    arr = np.array(list(values), dtype=object) if dtype is object else np.asarray(values, dtype=dtype)
    dims = list(proto.array_shape.dim)
    return arr.reshape(dims) if dims else arr


def fill_array(proto, arr: np.ndarray) -> None:
    arr = np.asarray(arr)
    if arr.dtype.kind in "SUO":
        proto.dtype = DT["DT_STRING"]
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode() for v in arr.reshape(-1))
    else:
        code = _BY_NUMPY.get(arr.dtype)
        if code is None:
            arr, code = arr.astype(np.float32), 1
        proto.dtype = code
        getattr(proto, _FIELD[code][0]).extend(arr.reshape(-1).tolist())
    proto.array_shape.dim.extend(arr.shape)
