#!/usr/bin/env python3
"""Peak memory and time of `vinspect train` on a folder of large frames.

Writes `--frames` RGB PNG frames of `--width` x `--height` (a striped surface with sensor
noise; the first 60 are distinct, the rest symbolic links to them), trains on them with
default settings and the given backbone, and prints the wall time and the peak resident
set size from /usr/bin/time. Give `--vinspect` an older build to compare.

    python3 Benchmarks/Scripts/train_memory.py --frames 120 [--vinspect .build/release/vinspect]
"""
import argparse, os, re, shutil, struct, subprocess, tempfile, zlib

import numpy as np


def write_png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--vinspect", default=".build/release/vinspect")
    p.add_argument("--backbone", default="default")
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--width", type=int, default=2000)
    p.add_argument("--height", type=int, default=1500)
    a = p.parse_args()
    root = tempfile.mkdtemp(prefix="train-memory-")
    good = os.path.join(root, "good")
    os.makedirs(good)
    rng = np.random.default_rng(0)
    xx = np.mgrid[0:a.height, 0:a.width][1]
    for i in range(min(a.frames, 60)):
        grey = 120 + 40 * np.sin(xx * 0.02 + rng.uniform(0, 0.7)) + rng.normal(0, 8, (a.height, a.width))
        grey = np.clip(grey, 0, 255).astype(np.uint8)
        write_png(os.path.join(good, "g%03d.png" % i), np.repeat(grey[:, :, None], 3, axis=2))
    for i in range(60, a.frames):
        os.symlink(os.path.join(good, "g%03d.png" % (i % 60)), os.path.join(good, "g%03d.png" % i))
    run = subprocess.run(["/usr/bin/time", "-v", a.vinspect, "train", "--good", good, "--backbone", a.backbone,
                          "--output", os.path.join(root, "m.vimodel")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time .*: (\S+)", run.stderr).group(1)
    print("%d frames of %d x %d: exit %d, %s wall, peak %.2f GB" % (a.frames, a.width, a.height, run.returncode, wall, peak / 1e6))
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
