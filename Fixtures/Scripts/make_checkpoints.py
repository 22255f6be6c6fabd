#!/usr/bin/env python3
"""Writes the small weight files under Fixtures/checkpoints/ that the ModelFile tests read.

No torch needed: fake `torch` and `torch._utils` modules are registered in sys.modules so
that pickle writes exactly the references torch writes, and a Pickler subclass emits the
persistent ids torch's serializer emits:

  legacy format (torch.save(..., _use_new_zipfile_serialization=False)): five pickles
    (magic number, protocol version 1001, sys_info, the object, sorted storage keys), then
    for each storage an 8-byte little-endian element count and its raw little-endian data;
    persistent ids ('storage', storage_type, key, location, numel, view_metadata)
  zip format (torch >= 1.6): archive/data.pkl, archive/data/<key>, archive/version,
    archive/byteorder; persistent ids ('storage', storage_type, key, location, numel)

Tensors pickle as REDUCE of torch._utils._rebuild_tensor_v2(storage, storage_offset,
size, stride, requires_grad, backward_hooks=OrderedDict()), and the state dict as an
OrderedDict with a `_metadata` attribute (a BUILD), as `pickletools.dis` shows for a
real checkpoint (efficientnet-lite0-57934424.pth).

Also writes safetensors files, hostile pickles, and expected.json (names, shapes, source
types, sums and first values of every tensor of the valid files).

Run from the repository root:  python3 Fixtures/Scripts/make_checkpoints.py
Generated with Python 3 and numpy (version recorded in expected.json).
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "checkpoints")

# --- fake torch ---------------------------------------------------------------------

torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
torch._utils = torch_utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils

STORAGE_DTYPES = {  # storage class name -> numpy dtype (little-endian)
    "FloatStorage": "<f4", "HalfStorage": "<f2", "DoubleStorage": "<f8",
    "BFloat16Storage": "<u2", "LongStorage": "<i8", "IntStorage": "<i4",
}
for _name in STORAGE_DTYPES:
    _cls = type(_name, (), {"__module__": "torch"})
    setattr(torch, _name, _cls)


def _rebuild_tensor_v2(*args):
    raise RuntimeError("never called")


def _rebuild_parameter(*args):
    raise RuntimeError("never called")


for _f in (_rebuild_tensor_v2, _rebuild_parameter):
    _f.__module__ = "torch._utils"
    _f.__qualname__ = _f.__name__
    setattr(torch_utils, _f.__name__, _f)


class Storage:
    """A typed storage: its data is a flat numpy array in the storage's dtype."""
    def __init__(self, kind, data, key):
        self.kind, self.data, self.key = kind, np.ascontiguousarray(data).reshape(-1), key


class Tensor:
    def __init__(self, storage, offset, size, stride, parameter=False):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)
        self.parameter = parameter

    def values(self):
        """The tensor's elements as float64, gathered through the strides."""
        data = self.storage.data
        if self.storage.kind == "BFloat16Storage":
            data = (data.astype(np.uint32) << 16).view(np.float32)
        out = np.zeros(self.size, dtype=np.float64)
        for index in np.ndindex(*self.size):
            out[index] = float(data[self.offset + sum(i * s for i, s in zip(index, self.stride))])
        return out.reshape(-1)


def contiguous(kind, array, key):
    array = np.asarray(array)
    strides = [int(np.prod(array.shape[i + 1:])) for i in range(array.ndim)]
    if kind == "BFloat16Storage":
        data = (array.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    else:
        data = array.astype(STORAGE_DTYPES[kind])
    return Tensor(Storage(kind, data, key), 0, array.shape, strides)


class TorchLikePickler(pickle.Pickler):
    def __init__(self, file, legacy, protocol=2):
        super().__init__(file, protocol=protocol)
        self.legacy, self.storages = legacy, {}

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            self.storages[obj.key] = obj
            pid = ("storage", getattr(torch, obj.kind), obj.key, "cpu", obj.data.size)
            return pid + (None,) if self.legacy else pid
        return None

    def reducer_override(self, obj):
        if isinstance(obj, Tensor):
            args = (obj.storage, obj.offset, obj.size, obj.stride, False, collections.OrderedDict())
            if obj.parameter:
                inner = Tensor(obj.storage, obj.offset, obj.size, obj.stride)
                return (_rebuild_parameter, (inner, True, collections.OrderedDict()))
            return (_rebuild_tensor_v2, args)
        return NotImplemented


def state_dict(entries):
    sd = collections.OrderedDict(entries)
    sd._metadata = collections.OrderedDict([("", {"version": 1})])
    return sd


def save_legacy(path, obj):
    buffer = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001,
                   {"protocol_version": 1001, "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, buffer, protocol=2)
    pickler = TorchLikePickler(buffer, legacy=True)
    pickler.dump(obj)
    keys = sorted(pickler.storages)
    pickle.dump(keys, buffer, protocol=2)
    for key in keys:
        data = pickler.storages[key].data
        buffer.write(struct.pack("<q", data.size))
        buffer.write(data.tobytes())
    write(path, buffer.getvalue())


def save_zip(path, obj, protocol=2):
    pkl = io.BytesIO()
    pickler = TorchLikePickler(pkl, legacy=False, protocol=protocol)
    pickler.dump(obj)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        def add(name, data):
            info = zipfile.ZipInfo("archive/" + name, date_time=(2024, 1, 1, 0, 0, 0))
            archive.writestr(info, data)
        add("data.pkl", pkl.getvalue())
        add("byteorder", b"little")
        for key in sorted(pickler.storages):
            add("data/" + key, pickler.storages[key].data.tobytes())
        add("version", b"3\n")
    write(path, buffer.getvalue())


def save_safetensors(path, tensors, metadata):
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, array in tensors:
        raw = array.tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    write(path, struct.pack("<Q", len(text)) + text + b"".join(blobs))


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def describe(tensors):
    """name -> (tensor, source type) in order, for expected.json."""
    return [{"name": name, "shape": list(t.size), "type": kind,
             "sum": float(t.values().sum()), "first": [float(v) for v in t.values()[:4]]}
            for name, t, kind in tensors]


# --- the valid checkpoints -----------------------------------------------------------

rng = np.random.default_rng(20240601)


def small_model(prefix=""):
    """A small conv + batch-norm + linear state dict with every storage kind and views."""
    conv = contiguous("FloatStorage", rng.standard_normal((4, 3, 3, 3)), prefix + "0")
    bias = contiguous("FloatStorage", rng.standard_normal(4), prefix + "1")
    mean = contiguous("HalfStorage", rng.standard_normal(4), prefix + "2")
    var = contiguous("DoubleStorage", rng.random(4) + 0.5, prefix + "3")
    tracked = contiguous("LongStorage", np.array(123456), prefix + "4")
    bf = contiguous("BFloat16Storage", rng.standard_normal((2, 3)), prefix + "5")
    # One storage shared by two views: a [2, 3] block at offset 2, and its transpose.
    shared = Storage("FloatStorage", rng.standard_normal(10).astype(np.float32), prefix + "6")
    block = Tensor(shared, 2, (2, 3), (3, 1))
    transposed = Tensor(shared, 2, (3, 2), (1, 3))
    index = contiguous("IntStorage", np.array([[1, -2], [3, 4]]), prefix + "7")
    entries = [
        ("features.0.weight", conv, "float32"), ("features.0.bias", bias, "float32"),
        ("features.1.running_mean", mean, "float16"), ("features.1.running_var", var, "float64"),
        ("features.1.num_batches_tracked", tracked, "int64"), ("head.bf16", bf, "bfloat16"),
        ("head.block", block, "float32"), ("head.block_t", transposed, "float32"),
        ("head.index", index, "int32"),
    ]
    return entries


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {"generator": "Fixtures/Scripts/make_checkpoints.py, numpy " + np.__version__, "files": {}}

    entries = small_model()
    sd = state_dict([(n, t) for n, t, _ in entries])
    save_legacy("legacy_state_dict.pt", sd)
    expected["files"]["legacy_state_dict.pt"] = describe(entries)
    save_zip("zip_state_dict.pt", sd)
    expected["files"]["zip_state_dict.pt"] = describe(entries)

    # Protocol 4 (FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL) and a training checkpoint
    # whose weights sit under "state_dict" beside other things.
    entries4 = small_model("p4-")
    training = {"epoch": 7, "state_dict": state_dict([(n, t) for n, t, _ in entries4]),
                "optimizer": {"lr": 0.01, "momentum": [0.9, 0.99]}, "note": "best"}
    save_zip("zip_protocol4_training.pt", training, protocol=4)
    expected["files"]["zip_protocol4_training.pt"] = describe(entries4)

    # No state_dict key: everything reachable is flattened with dotted names.
    w1 = contiguous("FloatStorage", rng.standard_normal((3, 2)), "a")
    w2 = contiguous("FloatStorage", rng.standard_normal(5), "b")
    p = contiguous("FloatStorage", rng.standard_normal(2), "c")
    p.parameter = True
    nested = {"encoder": {"w": w1, "p": p}, "decoder": [w2, "not a tensor", 3]}
    save_legacy("legacy_nested.pt", nested)
    expected["files"]["legacy_nested.pt"] = describe(
        [("encoder.w", w1, "float32"), ("encoder.p", p, "float32"), ("decoder.0", w2, "float32")])

    sf = [("conv.weight", "F32", rng.standard_normal((2, 3, 3)).astype("<f4")),
          ("conv.bias", "F16", rng.standard_normal(2).astype("<f2")),
          ("scale", "F64", np.array(2.5, dtype="<f8")),
          ("steps", "I64", np.array([1, -7, 1 << 20], dtype="<i8")),
          ("mask", "BOOL", np.array([True, False, True], dtype="u1")),
          ("bf", "BF16", (rng.standard_normal(4).astype(np.float32).view(np.uint32) >> 16).astype("<u2"))]
    save_safetensors("model.safetensors", sf, {"format": "pt", "note": "fixture"})
    sf_types = {"F32": "float32", "F16": "float16", "F64": "float64", "I64": "int64", "BOOL": "bool", "BF16": "bfloat16"}

    def sf_values(dtype, array):
        if dtype == "BF16":
            return (array.astype(np.uint32) << 16).view(np.float32).astype(np.float64).reshape(-1)
        return array.astype(np.float64).reshape(-1)
    expected["files"]["model.safetensors"] = [
        {"name": n, "shape": list(a.shape), "type": sf_types[d], "sum": float(sf_values(d, a).sum()),
         "first": [float(v) for v in sf_values(d, a)[:4]]} for n, d, a in sf]

    # --- hostile files: each must be refused with a typed error ---------------------
    P2 = b"\x80\x02"
    write("hostile_os_system.pt", P2 + b"cos\nsystem\nX\x04\x00\x00\x00echo\x85R.")
    write("hostile_builtins_eval.pt", b"\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00"
          b"\x8c\x08builtins\x8c\x04eval\x93\x8c\x041+1;\x85R.")
    write("hostile_getattr.pt", P2 + b"c__builtin__\ngetattr\n)R.")
    write("hostile_huge_memo.pt", P2 + b"Nr\xff\xff\xff\xffj\xfe\xff\xff\xff.")
    write("hostile_deep_marks.pt", P2 + b"(" * 3000 + b"t" * 3000 + b".")
    write("hostile_unknown_opcode.pt", P2 + b"N\xff.")

    def with_tensor(offset, size, stride, numel=4):
        storage = Storage("FloatStorage", np.arange(numel, dtype="<f4"), "0")
        return state_dict([("w", Tensor(storage, offset, size, stride))])
    save_zip("hostile_storage_offset.pt", with_tensor(10, (2,), (1,)))
    save_zip("hostile_negative_shape.pt", with_tensor(0, (-1, 4), (4, 1)))
    save_zip("hostile_stride_overrun.pt", with_tensor(0, (2, 2), (1, 3)))
    save_zip("hostile_broadcast_bomb.pt", with_tensor(0, (1 << 40,), (0,)))
    save_legacy("hostile_storage_offset_legacy.pt", with_tensor(3, (2, 2), (2, 1)))

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
