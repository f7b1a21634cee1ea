"""Request building and answer decoding for :meth:`kiln.Client.predict`.

Two wire formats: MLflow's scoring payloads on ``/api/v1/.../predict`` (JSON,
for lists, dicts and small arrays) and the KServe V2 binary tensor extension
on ``/v2/models/.../infer`` (raw little-endian tensors after a JSON header,
for large numeric numpy arrays). numpy is optional: it is imported only when
the data is a numpy array or a binary answer has to be decoded.
"""

from __future__ import annotations

import json as _jsonlib
import math
import struct
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = ["BINARY_MIN_ELEMENTS", "is_numpy", "mlflow_payload", "encode_binary", "decode_v2"]

#: Numeric numpy input with more elements than this goes over the binary
#: tensor extension (JSON text costs ~10x the bytes and a parse per number).
BINARY_MIN_ELEMENTS = 1000

# numpy dtype (kind, itemsize) <-> V2 datatype
_V2_OF = {
    ("b", 1): "BOOL",
    ("u", 1): "UINT8", ("u", 2): "UINT16", ("u", 4): "UINT32", ("u", 8): "UINT64",
    ("i", 1): "INT8", ("i", 2): "INT16", ("i", 4): "INT32", ("i", 8): "INT64",
    ("f", 2): "FP16", ("f", 4): "FP32", ("f", 8): "FP64",
}
_NUMPY_OF = {
    "BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
    # numpy has no bfloat16: its raw 16-bit patterns are returned
    "BF16": "<u2",
}


def is_numpy(value: Any) -> bool:
    """True for a numpy array, without importing numpy when it is not loaded."""
    t = type(value)
    return t.__module__ == "numpy" and t.__name__ == "ndarray"


def _is_dataframe(value: Any) -> bool:
    t = type(value)
    return t.__name__ == "DataFrame" and t.__module__.startswith("pandas")


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy arrays and scalars to Python, NaN to null
    (missing; JSON has no NaN), tuples to lists."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return _plain(tolist())
    if isinstance(value, bytes):
        return value.decode("utf-8")
    raise TypeError(f"cannot send a {type(value).__name__} as model input")


def _is_column(value: Any) -> bool:
    """A column of a dict of columns: a flat sequence of scalars."""
    if is_numpy(value):
        return value.ndim == 1
    if isinstance(value, (list, tuple)):
        return all(not isinstance(v, (list, tuple, Mapping)) and not is_numpy(v) for v in value)
    return False


def mlflow_payload(data: Any, proba: bool, output_margin: bool) -> Dict[str, Any]:
    """The MLflow scoring payload for ``data``:

    - a dict of columns ``{col: [values]}`` -> ``dataframe_split``;
      a dict of scalars ``{col: value}`` -> one record;
      a dict of tensors ``{input: [[...]]}`` -> ``inputs`` (several inputs);
    - a list of dicts -> ``dataframe_records``;
    - a pandas DataFrame -> ``dataframe_split`` with its column names;
    - a list of rows, or a numpy array (first dimension = rows) -> ``instances``.
    """
    body: Dict[str, Any]
    if _is_dataframe(data):
        body = {"dataframe_split": {"columns": [str(c) for c in data.columns],
                                    "data": _plain(data.to_numpy().tolist())}}
    elif isinstance(data, Mapping):
        if not data:
            raise ValueError("data has no columns")
        values = list(data.values())
        if all(_is_column(v) for v in values):
            lengths = {len(v) for v in values}
            if len(lengths) != 1:
                raise ValueError(f"the columns of data have different lengths: {sorted(lengths)}")
            cols = [_plain(v) for v in values]
            body = {"dataframe_split": {"columns": [str(k) for k in data.keys()],
                                        "data": [list(row) for row in zip(*cols)]}}
        elif all(not isinstance(v, (list, tuple, Mapping)) and not is_numpy(v) for v in values):
            body = {"dataframe_records": [_plain(data)]}
        else:
            body = {"inputs": {str(k): _plain(v) for k, v in data.items()}}
    elif is_numpy(data):
        body = {"instances": _plain(data)}
    elif isinstance(data, (list, tuple)):
        if not data:
            raise ValueError("data has no rows")
        if all(isinstance(r, Mapping) for r in data):
            body = {"dataframe_records": [_plain(r) for r in data]}
        else:
            body = {"instances": _plain(data)}
    else:
        raise TypeError("data must be a list of rows, a dict of columns, a list of dicts, "
                        f"a numpy array or a pandas DataFrame, not {type(data).__name__}")
    params = {}
    if proba:
        params["predict_proba"] = True
    if output_margin:
        params["output_margin"] = True
    if params:
        body["params"] = params
    return body


def numeric_numpy(data: Any) -> bool:
    """A numpy array (or a dict of them) whose every array is numeric."""
    arrays = list(data.values()) if isinstance(data, Mapping) else [data]
    return bool(arrays) and all(is_numpy(a) and (a.dtype.kind in "biuf") for a in arrays)


def numpy_elements(data: Any) -> int:
    arrays = list(data.values()) if isinstance(data, Mapping) else [data]
    return sum(int(a.size) for a in arrays)


def encode_binary(inputs: Sequence[Tuple[str, Any]], proba: bool, output_margin: bool) -> Tuple[bytes, int]:
    """A V2 inference request with every input as a binary tensor and binary
    outputs asked for. Returns the body and the JSON header's length (the
    ``Inference-Header-Content-Length`` header)."""
    import numpy as np

    metas: List[Dict[str, Any]] = []
    blobs: List[bytes] = []
    for name, arr in inputs:
        key = (arr.dtype.kind, arr.dtype.itemsize)
        if key not in _V2_OF:
            raise TypeError(f"input {name}: numpy dtype {arr.dtype} has no V2 datatype")
        little = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        raw = little.tobytes()
        metas.append({"name": name, "shape": [int(d) for d in arr.shape], "datatype": _V2_OF[key],
                      "parameters": {"binary_data_size": len(raw)}})
        blobs.append(raw)
    params: Dict[str, Any] = {"binary_data_output": True}
    if proba:
        params["predict_proba"] = True
    if output_margin:
        params["output_margin"] = True
    header = _jsonlib.dumps({"inputs": metas, "parameters": params}, separators=(",", ":")).encode("utf-8")
    return header + b"".join(blobs), len(header)


def _bytes_elements(raw: bytes, count: int) -> List[bytes]:
    """V2's BYTES layout: each element a 4-byte little-endian length, then the bytes."""
    out: List[bytes] = []
    at = 0
    for _ in range(count):
        if at + 4 > len(raw):
            raise ValueError("a BYTES tensor ends inside an element's length")
        (n,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + n > len(raw):
            raise ValueError("a BYTES tensor ends inside an element")
        out.append(raw[at:at + n])
        at += n
    return out


def decode_v2(body: bytes, header_length: Optional[int]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Splits a V2 inference answer into its JSON part and its outputs as
    numpy arrays (by name, in the answer's order). Binary parts follow the
    JSON header in the order of the outputs that declare
    ``parameters.binary_data_size``; others carry ``data`` in the JSON."""
    import numpy as np

    if header_length is None:
        header_length = len(body)
    if header_length < 0 or header_length > len(body):
        raise ValueError(f"Inference-Header-Content-Length {header_length} is outside the body ({len(body)} bytes)")
    head = _jsonlib.loads(body[:header_length].decode("utf-8"))
    if not isinstance(head, dict) or not isinstance(head.get("outputs"), list):
        raise ValueError("the inference answer has no outputs list")
    at = header_length
    arrays: Dict[str, Any] = {}
    for out in head["outputs"]:
        name, dtype = str(out.get("name")), str(out.get("datatype"))
        shape = tuple(int(d) for d in out.get("shape") or [])
        count = 1
        for d in shape:
            count *= d
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            size = int(size)
            if size < 0 or at + size > len(body):
                raise ValueError(f"output {name}: binary_data_size {size} runs past the body")
            raw = body[at:at + size]
            at += size
            if dtype == "BYTES":
                arr = np.empty(count, dtype=object)
                arr[:] = _bytes_elements(raw, count)
                arrays[name] = arr.reshape(shape)
            elif dtype in _NUMPY_OF:
                arrays[name] = np.frombuffer(raw, dtype=_NUMPY_OF[dtype]).reshape(shape).copy()
            else:
                raise ValueError(f"output {name}: unknown datatype {dtype}")
        else:
            data = out.get("data")
            if dtype == "BYTES":
                arr = np.empty(count, dtype=object)
                arr[:] = list(data or [])
                arrays[name] = arr.reshape(shape)
            else:
                arrays[name] = np.asarray(data, dtype=_NUMPY_OF.get(dtype)).reshape(shape)
    return head, arrays
