#!/usr/bin/env python3
"""Writes Fixtures/golden/codec.json: what a reference decoder (Pillow, built on libpng and
libjpeg-turbo like ours) gives for every codec fixture, as a checksum of the pixels.

    python3 Fixtures/Scripts/golden.py

Each entry: file, the mode the pixels are compared in, width, height and the 64-bit
FNV-1a hash (hex) of the samples in row-major interleaved order (16-bit samples as
little-endian byte pairs). How the test maps our decoder's output onto each mode:
  L, LA, RGB, RGBA  8-bit samples; 16-bit files are compared by their high byte
                    (which is what Pillow keeps of them)
  I;16              16-bit grey samples, compared exactly
  CMYK->RGB         Pillow's CMYK samples (ink amounts) mapped to RGB with
                    round((255-C)(255-K)/255), the rule our decoder applies
"""
import json
import os
import sys

import numpy as np
import PIL
from PIL import Image

CODEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "codec")


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def reference(path):
    image = Image.open(path)
    image.load()
    mode = image.mode
    if mode == "CMYK":
        ink = np.asarray(image).astype(np.uint32)
        paper = 255 - ink
        rgb = (paper[..., :3] * paper[..., 3:4] + 127) // 255
        return "CMYK->RGB", rgb.astype(np.uint8)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode in ("L", "RGB") and "transparency" in image.info:
        image = image.convert("LA" if mode == "L" else "RGBA")
    elif mode in ("I;16", "I;16B", "I"):
        return "I;16", np.asarray(image).astype("<u2")
    return image.mode, np.asarray(image)


def main():
    entries = []
    for name in sorted(os.listdir(CODEC)):
        if not name.lower().endswith((".png", ".jpg")):
            continue
        mode, pixels = reference(os.path.join(CODEC, name))
        pixels = np.ascontiguousarray(pixels)
        entries.append({"file": name, "mode": mode, "width": int(pixels.shape[1]),
                        "height": int(pixels.shape[0]), "fnv1a64": fnv1a64(pixels.tobytes())})
    document = {"generator": f"Fixtures/Scripts/golden.py with Pillow {PIL.__version__}, numpy {np.__version__}",
                "entries": entries}
    with open(os.path.join(CODEC, "..", "golden", "codec.json"), "w") as handle:
        json.dump(document, handle, indent=1)
        handle.write("\n")
    print(f"{len(entries)} golden entries", file=sys.stderr)


if __name__ == "__main__":
    main()
