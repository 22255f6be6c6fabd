#!/usr/bin/env python3
"""Read PyTorch checkpoints without torch; read and write safetensors with numpy.

Why: the project compares its Swift backbones with reference outputs, and the real
EfficientNet-Lite0 weights ship as a PyTorch `.pth`. torch itself is too large to
install here, and `torch.load` runs arbitrary pickles; this reader allows only the
handful of globals a state dict needs.

## Legacy PyTorch format (torch.save with _use_new_zipfile_serialization=False)
A plain byte stream, no container:
  1. pickle: magic number 0x1950a86a20f9469cfc6c
  2. pickle: protocol version (1001)
  3. pickle: sys_info dict (little_endian, type sizes)
  4. pickle: the object (usually an OrderedDict name -> tensor). Each storage is a
     persistent id ('storage', StorageType, key, location, numel, view_metadata);
     tensors are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`.
  5. pickle: list of storage keys, in the order their data follows
  6. per key: int64 little-endian element count, then count * element_size raw bytes
     (little-endian, C order of the storage, not of the tensor view).

## Zip format (torch.save default since 1.6)
A zip archive `<name>/data.pkl` (the object; persistent id
('storage', StorageType, key, location, numel)) and `<name>/data/<key>` (raw bytes of
each storage). `<name>/byteorder` may say "big"; only little-endian is supported.

## safetensors
  8 bytes: u64 little-endian N, the header length
  N bytes: UTF-8 JSON {name: {"dtype": "F32", "shape": [...], "data_offsets": [b, e]},
                       "__metadata__": {str: str}}  (padded with spaces to 8 bytes)
  then the data buffer; offsets are relative to its start, each tensor C-contiguous LE.

Usage:
  python3 torch_pickle.py FILE.pth [--to-safetensors OUT.safetensors]  # list / convert
  python3 torch_pickle.py --selftest
"""
from __future__ import annotations

import argparse
import collections
import io
import json
import pickle
import struct
import sys
import zipfile
from typing import Any, Dict, Optional

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# Storage class name -> numpy dtype. bfloat16 has no numpy dtype: read as uint16 and
# widened by hand in `_as_float32`.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """Stands in for torch.FloatStorage & co.: only its name and dtype matter."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage whose bytes may arrive after the pickle that names it (legacy format)."""

    def __init__(self, stype: _StorageType, key: str, numel: int):
        self.stype, self.key, self.numel = stype, key, numel
        self.data: Optional[np.ndarray] = None  # 1-D, filled later


class _LazyTensor:
    """The arguments of _rebuild_tensor_v2, resolved once the storage is read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)

    def materialize(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise ValueError(f"storage {self.storage.key} was never read")
        if len(self.size) == 0:
            return np.array(data[self.offset])
        needed = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1
        if min(self.size) > 0 and needed > data.size:
            raise ValueError(f"tensor view {self.size}/{self.stride}+{self.offset} exceeds "
                             f"storage {self.storage.key} of {data.size} elements")
        base = data[self.offset:]
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            base, shape=self.size, strides=tuple(s * item for s in self.stride), writeable=False)
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    # nn.Parameter wraps a tensor; state dicts seldom hold one, but it is harmless.
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a state dict needs."""

    def __init__(self, file, storages: Dict[str, _Storage], read_zip_storage=None):
        super().__init__(file, encoding="latin1")
        self._storages = storages
        self._read_zip_storage = read_zip_storage

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a checkpoint")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        stype, key, _location, numel = pid[1], str(pid[2]), pid[3], int(pid[4])
        if not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {stype!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (view_metadata) are not supported")
        st = self._storages.get(key)
        if st is None:
            st = _Storage(stype, key, numel)
            self._storages[key] = st
            if self._read_zip_storage is not None:
                st.data = self._read_zip_storage(key, stype.dtype)
        return st


def _resolve(obj):
    """Replace every _LazyTensor inside dicts/lists/tuples by a numpy array."""
    if isinstance(obj, _LazyTensor):
        return obj.materialize()
    if isinstance(obj, dict):
        out = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _resolve(v)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def _load_legacy(f) -> Any:
    safe = lambda: _RestrictedUnpickler(f, {}).load()  # noqa: E731 - small pickles only
    magic = safe()
    if magic != LEGACY_MAGIC:
        raise ValueError("not a legacy PyTorch checkpoint (bad magic number)")
    protocol = safe()
    if protocol != 1001:
        raise ValueError(f"unsupported legacy protocol version {protocol}")
    sys_info = safe()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise ValueError("big-endian checkpoints are not supported")
    storages: Dict[str, _Storage] = {}
    obj = _RestrictedUnpickler(f, storages).load()
    keys = safe()
    for key in keys:
        st = storages[str(key)]
        (count,) = struct.unpack("<q", f.read(8))
        nbytes = count * st.stype.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise ValueError(f"file truncated in storage {key}")
        st.data = np.frombuffer(raw, dtype=st.stype.dtype.newbyteorder("<"))
    return _resolve(obj)


def _load_zip(path) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise ValueError(f"{path}: expected one data.pkl in the archive, found {pkl}")
        prefix = pkl[0][: -len("data.pkl")]
        if prefix + "byteorder" in names and zf.read(prefix + "byteorder").strip() != b"little":
            raise ValueError("big-endian checkpoints are not supported")

        def read_storage(key, dtype):
            return np.frombuffer(zf.read(f"{prefix}data/{key}"), dtype=dtype.newbyteorder("<"))

        obj = _RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), {}, read_storage).load()
        return _resolve(obj)


def _as_float32(a: np.ndarray, storage_dtype=None) -> np.ndarray:
    if a.dtype == np.uint16 and storage_dtype == "bf16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    if np.issubdtype(a.dtype, np.floating):
        return a.astype(np.float32)
    return a


def load_torch_checkpoint(path: str, float32: bool = True) -> "collections.OrderedDict[str, np.ndarray]":
    """Load a PyTorch state dict (legacy or zip format) as name -> numpy array.

    Floating tensors become float32 (when `float32`); integer ones such as
    `num_batches_tracked` keep their integer dtype. A checkpoint that wraps the state
    dict (`{"state_dict": ...}` or `{"model": ...}`) is unwrapped.
    """
    if zipfile.is_zipfile(path):
        obj = _load_zip(path)
    else:
        with open(path, "rb") as f:
            obj = _load_legacy(f)
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    out = collections.OrderedDict()
    for k, v in obj.items():
        if not isinstance(v, np.ndarray):
            continue  # e.g. metadata entries
        out[k] = _as_float32(v) if float32 else v
    return out


# ---------------------------------------------------------------- safetensors

_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
              "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_ST_NAMES = {np.dtype(v): k for k, v in _ST_DTYPES.items()}


def save_safetensors(path: str, tensors: Dict[str, np.ndarray],
                     metadata: Optional[Dict[str, str]] = None) -> None:
    """Write `tensors` (in insertion order) as a safetensors file."""
    header: Dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    blobs = []
    for name, arr in tensors.items():
        arr = np.asarray(arr, order="C")  # ascontiguousarray would turn 0-d into 1-d
        if arr.dtype not in _ST_NAMES:
            raise ValueError(f"{name}: dtype {arr.dtype} not supported in safetensors writer")
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _ST_NAMES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)  # keeps the data buffer 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def load_safetensors(path: str, with_metadata: bool = False):
    """Read a safetensors file as an ordered dict name -> numpy array (file order)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for safetensors")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} exceeds the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    buf = memoryview(raw)[8 + n:]
    items = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    out = collections.OrderedDict()
    for name, info in items:
        dt = np.dtype(_ST_DTYPES[info["dtype"]]).newbyteorder("<")
        b, e = info["data_offsets"]
        if e > len(buf) or e - b != dt.itemsize * int(np.prod(info["shape"], dtype=np.int64)):
            raise ValueError(f"{path}: tensor {name} has inconsistent offsets")
        out[name] = np.frombuffer(buf[b:e], dtype=dt).reshape(tuple(info["shape"])).astype(dt.newbyteorder("="))
    return (out, meta) if with_metadata else out


def load_weights(path: str) -> "collections.OrderedDict[str, np.ndarray]":
    """Load .safetensors or a PyTorch checkpoint, floats as float32."""
    if path.endswith(".safetensors"):
        return collections.OrderedDict((k, _as_float32(v)) for k, v in load_safetensors(path).items())
    return load_torch_checkpoint(path)


# ---------------------------------------------------------------- self-test

def _selftest() -> None:
    """Write small legacy and zip checkpoints the way torch.save lays them out, read back.

    torch is absent, so the writer pickles stand-in objects under torch's global names
    (a fake `torch` module in sys.modules for the duration of the test).
    """
    import types
    import tempfile
    import os

    rng = np.random.default_rng(0)
    ref = collections.OrderedDict()
    ref["a.weight"] = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    ref["a.bias"] = rng.standard_normal(4).astype(np.float32)
    ref["bn.num_batches_tracked"] = np.array(7, dtype=np.int64)
    base = rng.standard_normal((5, 6)).astype(np.float32)
    ref["t.weight"] = base.T  # non-contiguous view: exercises strides

    torch_mod = types.ModuleType("torch")
    utils_mod = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*a):  # only its name is pickled
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2
    classes = {}
    for nm in ("FloatStorage", "LongStorage"):
        c = type(nm, (), {"__module__": "torch"})
        setattr(torch_mod, nm, c)
        classes[nm] = c
    torch_mod._utils = utils_mod
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch_mod, utils_mod

    class S:  # a storage: pickled as a persistent id
        def __init__(self, key, arr):
            self.key, self.sarr = key, arr

    class T:  # a tensor view over a storage, pickled like torch does
        def __init__(self, key, arr, storage_arr, offset, stride):
            self.arr, self.sarr, self.offset, self.stride = arr, storage_arr, offset, stride
            self.storage = S(key, storage_arr)

        def __reduce__(self):
            return (_rebuild_tensor_v2, (self.storage, self.offset, self.arr.shape, self.stride,
                                         False, collections.OrderedDict()))

    def make_views():
        views, stor = collections.OrderedDict(), collections.OrderedDict()
        for i, (k, v) in enumerate(ref.items()):
            if k == "t.weight":
                sarr = np.concatenate([np.zeros(3, np.float32), base.ravel()])
                views[k] = T(str(i), v, sarr, 3, (1, 6))
            else:
                views[k] = T(str(i), v, v.ravel(), 0, tuple(s // v.itemsize for s in v.strides))
            stor[str(i)] = views[k].sarr
        return views, stor

    class P(pickle.Pickler):
        def __init__(self, f, legacy):
            super().__init__(f, protocol=2)
            self.legacy = legacy

        def persistent_id(self, obj):
            if isinstance(obj, S):
                cls = classes["LongStorage" if obj.sarr.dtype == np.int64 else "FloatStorage"]
                pid = ("storage", cls, obj.key, "cpu", obj.sarr.size)
                return pid + (None,) if self.legacy else pid
            return None

    try:
        views, stor = make_views()
        with tempfile.TemporaryDirectory() as d:
            legacy = os.path.join(d, "l.pth")
            with open(legacy, "wb") as f:
                pickle.dump(LEGACY_MAGIC, f, protocol=2)
                pickle.dump(1001, f, protocol=2)
                pickle.dump({"little_endian": True}, f, protocol=2)
                P(f, True).dump(views)
                pickle.dump(list(stor.keys()), f, protocol=2)
                for arr in stor.values():
                    f.write(struct.pack("<q", arr.size))
                    f.write(arr.tobytes())
            zpath = os.path.join(d, "z.pth")
            with zipfile.ZipFile(zpath, "w") as zf:
                b = io.BytesIO()
                P(b, False).dump(views)
                zf.writestr("archive/data.pkl", b.getvalue())
                zf.writestr("archive/byteorder", "little")
                for k, arr in stor.items():
                    zf.writestr(f"archive/data/{k}", arr.tobytes())
            for p in (legacy, zpath):
                got = load_torch_checkpoint(p)
                assert list(got) == list(ref), (list(got), list(ref))
                for k in ref:
                    assert got[k].dtype == ref[k].dtype and np.array_equal(got[k], ref[k]), k
            st = os.path.join(d, "w.safetensors")
            save_safetensors(st, ref, {"note": "selftest"})
            back, meta = load_safetensors(st, with_metadata=True)
            assert meta == {"note": "selftest"}
            for k in ref:
                assert back[k].shape == ref[k].shape and np.array_equal(back[k], ref[k]), (k, back[k], ref[k])
            # A pickle naming any other global is refused.
            evil = pickle.dumps(os.system, protocol=2)  # names posix.system
            try:
                _RestrictedUnpickler(io.BytesIO(evil), {}).load()
                raise AssertionError("restricted unpickler let a foreign global through")
            except pickle.UnpicklingError:
                pass
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    print("torch_pickle selftest: 3 passed, 0 failed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--to-safetensors", metavar="OUT")
    ap.add_argument("--selftest", action="store_true")
    a = ap.parse_args()
    if a.selftest:
        _selftest()
        return
    if not a.checkpoint:
        ap.error("give a checkpoint or --selftest")
    sd = load_weights(a.checkpoint)
    total = 0
    for k, v in sd.items():
        print(f"{k:60s} {str(v.dtype):8s} {tuple(v.shape)}")
        if np.issubdtype(v.dtype, np.floating):
            total += v.size
    print(f"{len(sd)} entries, {total} floating-point parameters")
    if a.to_safetensors:
        save_safetensors(a.to_safetensors, sd, {"source": a.checkpoint.rsplit("/", 1)[-1]})
        print(f"wrote {a.to_safetensors}")


if __name__ == "__main__":
    main()
