# kiln_worker: the program a Kiln serving worker process runs (embedded in the
# kiln binary, started as `python3 -I -c <this> MODEL FORMAT DEVICE`). It loads
# one scanned model and answers predict frames on fd 3; see src/serve/frame.c.
import json
import os
import signal
import struct
import sys

sys.dont_write_bytecode = True
FRAME_MAX = 1 << 30
SOCK_FD = 3
retire = False  # set by SIGXCPU: finish the current answer, then exit cleanly


def on_xcpu(signum, frame):
    global retire
    retire = True


def read_exact(n):
    parts, got = [], 0
    while got < n:
        b = os.read(SOCK_FD, min(n - got, 1 << 20))
        if not b:
            return None
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def write_all(data):
    view = memoryview(data)
    while view:
        n = os.write(SOCK_FD, view)
        view = view[n:]


def frame(header, arrays=()):
    """One frame as byte strings: u32 rest length, u32 header length, JSON
    header, tensor bytes. Raises before anything is written."""
    metas, blobs = [], []
    for name, dtype, shape, raw in arrays:
        metas.append({"name": name, "datatype": dtype, "shape": list(shape), "nbytes": len(raw)})
        blobs.append(raw)
    header = dict(header)
    header["tensors"] = metas
    h = json.dumps(header, separators=(",", ":"), default=str).encode("utf-8")
    body = sum(len(b) for b in blobs) + 4 + len(h)
    if body > FRAME_MAX:
        raise MemoryError("the answer is larger than a frame may be (%d bytes)" % body)
    return [struct.pack("<II", body, len(h)) + h] + blobs


def send(header, arrays=()):
    for b in frame(header, arrays):
        if b:
            write_all(b)


def fail_kind(exc, torch_model):
    """Which error the server reports: the caller's input (400), memory, or the model's fault."""
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, (ValueError, TypeError, IndexError, KeyError)):
        return "user"
    if torch_model and isinstance(exc, RuntimeError):
        # TorchScript reports shape and dtype mismatches of its inputs as
        # RuntimeError; running out of (GPU) memory is the exception.
        return "memory" if "out of memory" in str(exc) else "user"
    return "internal"


def describe_exc(exc):
    msg = str(exc).strip().replace("\n", " ")
    if len(msg) > 400:
        msg = msg[:400] + "..."
    return "%s: %s" % (type(exc).__name__, msg) if msg else type(exc).__name__


np = None

DTYPES = {}  # V2 name -> numpy dtype, filled after numpy is imported


def numpy_setup():
    global np
    import numpy

    np = numpy
    DTYPES.update({
        "BOOL": np.dtype("?"), "UINT8": np.dtype("u1"), "UINT16": np.dtype("<u2"),
        "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"), "INT8": np.dtype("i1"),
        "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
        "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    })


def bytes_elements(raw, count):
    """V2's binary BYTES form -> list of str (bytes when not UTF-8)."""
    out, off = [], 0
    for _ in range(count):
        (n,) = struct.unpack_from("<I", raw, off)
        off += 4
        b = bytes(raw[off:off + n])
        off += n
        try:
            out.append(b.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(b)
    return out


def to_array(meta, raw):
    shape = tuple(meta["shape"])
    count = 1
    for d in shape:
        count *= d
    if meta["datatype"] == "BYTES":
        a = np.empty(count, dtype=object)
        a[:] = bytes_elements(raw, count)
        return a.reshape(shape)
    dt = DTYPES.get(meta["datatype"])
    if dt is None:
        raise TypeError("the worker cannot take %s tensors" % meta["datatype"])
    return np.frombuffer(raw, dtype=dt, count=count).reshape(shape)


def from_array(name, a):
    """A result as (name, V2 datatype, shape, little-endian bytes)."""
    a = np.asarray(a)
    if a.dtype.kind == "O":
        flat = a.ravel().tolist()
        if flat and all(isinstance(v, bool) for v in flat):
            a = a.astype(bool)
        elif flat and all(isinstance(v, int) and not isinstance(v, bool) for v in flat):
            a = a.astype(np.int64)
        elif flat and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
            a = a.astype(np.float64)
    k = a.dtype.kind
    if k in "OUS":
        parts = []
        for v in a.ravel().tolist():
            if isinstance(v, bytes):
                b = v
            else:
                b = str(v).encode("utf-8")
            parts.append(struct.pack("<I", len(b)))
            parts.append(b)
        return (name, "BYTES", a.shape, b"".join(parts))
    if k == "b":
        return (name, "BOOL", a.shape, np.ascontiguousarray(a, dtype=np.uint8).tobytes())
    if k in "iuf" and a.dtype.itemsize in (1, 2, 4, 8) and not (k == "f" and a.dtype.itemsize == 1):
        dt = a.dtype.newbyteorder("<")
        label = {"i": "INT", "u": "UINT", "f": "FP"}[k] + str(a.dtype.itemsize * 8)
        return (name, label, a.shape, np.ascontiguousarray(a, dtype=dt).tobytes())
    raise TypeError("the model answered %s values, which have no V2 datatype" % a.dtype)


def plain(v):
    """numpy scalars and arrays -> JSON-able Python values."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


class Sklearn:
    kind = "sklearn"

    def __init__(self, path, fmt):
        if fmt == "joblib":
            import joblib

            self.m = joblib.load(path)
        else:
            import pickle

            with open(path, "rb") as f:
                self.m = pickle.load(f)
        if not callable(getattr(self.m, "predict", None)):
            raise TypeError("the object (%s) has no predict method" % type(self.m).__name__)

    def hello(self):
        m = self.m
        h = {"kind": self.kind, "model_type": type(m).__name__, "device": "cpu",
             "proba": callable(getattr(m, "predict_proba", None)),
             "margin": callable(getattr(m, "decision_function", None))}
        n = getattr(m, "n_features_in_", None)
        if isinstance(n, (int, np.integer)) and n > 0:
            h["n_features_in"] = int(n)
        names = getattr(m, "feature_names_in_", None)
        if names is not None:
            names = [str(x) for x in plain(names)]
            if names and ("n_features_in" not in h or len(names) == h["n_features_in"]):
                h["feature_names"] = names
                h["n_features_in"] = len(names)
        classes = getattr(m, "classes_", None)
        if classes is not None and not isinstance(classes, list) and np.ndim(classes) == 1:
            h["classes"] = plain(classes)
        # One zero row tells the output types and widths the signature gives
        # (string labels vs int64, a multi-output regressor's width); a model
        # that refuses zeros simply keeps the defaults.
        if "n_features_in" in h:
            x = np.zeros((1, h["n_features_in"]), dtype=np.float64)
            for key, fn in (("predict", m.predict), ("proba", getattr(m, "predict_proba", None)),
                            ("margin", getattr(m, "decision_function", None))):
                if fn is None or (key != "predict" and not h[key]):
                    continue
                try:
                    _, dt, shape, _ = from_array("p", fn(x))
                    h["probe_" + key] = {"datatype": dt, "shape": [-1] + list(shape[1:])}
                except Exception:
                    pass
        return h

    def predict(self, header, arrays):
        if len(arrays) != 1:
            raise ValueError("the model takes one input table, got %d tensors" % len(arrays))
        x = arrays[0]
        if header.get("proba"):
            y = self.m.predict_proba(x)
        elif header.get("margin"):
            y = self.m.decision_function(x)
        else:
            y = self.m.predict(x)
        return [from_array("predictions", y)]


class TorchScript:
    kind = "torchscript"

    def __init__(self, path, want_device):
        import torch

        self.torch = torch
        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        # The profiling executor runs a model's first calls instrumented (ten
        # times slower with loops) and specializes on the shapes it saw, so
        # a dynamic batcher's varying batch sizes bring more slow calls;
        # the legacy executor optimizes once, for any shape.
        try:
            torch._C._jit_set_profiling_executor(False)
        except (AttributeError, RuntimeError):
            pass
        self.device = "cuda" if want_device == "cuda" and torch.cuda.is_available() else "cpu"
        self.m = torch.jit.load(path, map_location=self.device)
        self.m.eval()

    def hello(self):
        h = {"kind": self.kind, "model_type": getattr(self.m, "original_name", type(self.m).__name__),
             "device": self.device, "proba": False, "margin": False, "inputs_known": False}
        try:
            args = self.m.forward.schema.arguments[1:]  # [0] is self
            h["input_names"] = [a.name for a in args]
        except Exception:
            pass
        return h

    def predict(self, header, arrays):
        torch = self.torch
        if header.get("proba") or header.get("margin"):
            raise ValueError("a TorchScript model has no predict_proba or margin output")
        xs = []
        for a in arrays:
            if a.dtype == object:
                raise TypeError("a TorchScript model takes numeric tensors, not BYTES")
            xs.append(torch.from_numpy(np.array(a)).to(self.device))
        with torch.no_grad():
            y = self.m(*xs)
        if isinstance(y, dict):
            items = list(y.items())
        elif isinstance(y, (tuple, list)):
            items = [("output_%d" % i, v) for i, v in enumerate(y)]
        else:
            items = [("predictions", y)]
        out = []
        for name, v in items:
            if isinstance(v, torch.Tensor):
                v = v.detach().cpu().numpy()
            out.append(from_array(str(name), v))
        return out


def serve(model):
    torch_model = model.kind == "torchscript"
    while True:
        head = read_exact(4)
        if head is None:
            return 0  # the server closed its end: unload or shutdown
        (n,) = struct.unpack("<I", head)
        if n < 4 or n > FRAME_MAX:
            return 3
        body = read_exact(n)
        if body is None:
            return 0
        (hl,) = struct.unpack_from("<I", body, 0)
        if hl > n - 4:
            return 3
        header = json.loads(body[4:4 + hl].decode("utf-8"))
        # Told in this answer, so the server reaps and replaces the worker
        # instead of sending it the next request.
        leaving = retire
        try:
            arrays, off = [], 4 + hl
            for meta in header.get("tensors", []):
                nb = int(meta["nbytes"])
                arrays.append(to_array(meta, memoryview(body)[off:off + nb]))
                off += nb
            del body
            if header.get("op") != "predict":
                raise ValueError("unknown op %r" % header.get("op"))
            out = frame({"ok": True, "retiring": leaving}, model.predict(header, arrays))
        except BaseException as exc:  # the model's own failures are answers, not crashes
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            out = frame({"ok": False, "error": describe_exc(exc), "kind": fail_kind(exc, torch_model),
                         "retiring": leaving})
        for b in out:
            if b:
                write_all(b)
        if leaving:
            return 0


def main():
    import warnings

    warnings.simplefilter("ignore")
    signal.signal(signal.SIGXCPU, on_xcpu)
    if len(sys.argv) < 4:
        send({"ok": False, "error": "usage: kiln_worker MODEL FORMAT DEVICE", "kind": "internal"})
        return 2
    path, fmt, device = sys.argv[1], sys.argv[2], sys.argv[3]
    try:
        numpy_setup()
        if fmt in ("pickle", "joblib"):
            model = Sklearn(path, fmt)
        elif fmt == "torchscript":
            model = TorchScript(path, device)
        else:
            raise ValueError("the python worker does not load %r models" % fmt)
        hello = model.hello()
    except BaseException as exc:
        send({"ok": False, "error": describe_exc(exc), "kind": fail_kind(exc, False)})
        return 1
    hello.update({"ok": True, "op": "hello", "python": sys.version.split()[0]})
    send(hello)
    return serve(model)


if __name__ == "__main__":
    sys.exit(main())
