#!/usr/bin/env python3
"""What --heatmaps costs `vinspect inspect`: images per second with and without heat maps.

Generates 8 good and 40 line images (800 x 600 grey PNG, a striped plate with a disc; every
fourth line image has a dark bar), trains a model with default settings and the given
backbone, then inspects the line images `--copies` times over (as symbolic links) with and
without `--heatmaps`, `--repeats` times each, and prints the rates and the throughput lost.

    python3 Benchmarks/Scripts/heatmap_cost.py --vinspect .build/release/vinspect --backbone lite0.vimodel
"""
import argparse, os, re, shutil, struct, subprocess, tempfile, zlib

import numpy as np


def write_png(path, a):
    h, w = a.shape
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--vinspect", default=".build/release/vinspect")
    p.add_argument("--backbone", default="default")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--copies", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--worst-case", action="store_true",
                   help="line parts unlike the good ones: every part a defect, every heat map tinted all over")
    a = p.parse_args()
    root = tempfile.mkdtemp(prefix="heatmap-cost-")
    good, line, many = (os.path.join(root, d) for d in ("good", "line", "many"))
    for d in (good, line, many):
        os.makedirs(d)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:600, 0:800]
    for i in range(48):
        # Good and line parts alike: the stripes' phase varies within one range, so that
        # the model passes the good line parts. --worst-case puts the line parts' phases
        # beyond the training range: every part is a defect, tinted all over.
        phase = i * 0.1 if a.worst_case else rng.uniform(0, 0.7)
        img = 120 + 40 * np.sin(xx * 0.05 + phase) + rng.normal(0, 8, (600, 800))
        img[(xx - 400) ** 2 + (yy - 300) ** 2 < 150 ** 2] += 50
        if i >= 8 and i % 4 == 0:
            img[280:290, 300:500] = 20
        name = os.path.join(good, "g%02d.png" % i) if i < 8 else os.path.join(line, "p%02d.png" % i)
        write_png(name, np.clip(img, 0, 255).astype(np.uint8))
    for k in range(a.copies):
        for f in sorted(os.listdir(line)):
            os.symlink(os.path.join(line, f), os.path.join(many, "k%d_%s" % (k, f)))
    model = os.path.join(root, "m.vimodel")
    subprocess.run([a.vinspect, "train", "--good", good, "--backbone", a.backbone, "--output", model], check=True,
                   stdout=subprocess.DEVNULL)

    def rate(heatmaps):
        args = [a.vinspect, "inspect", model, many, "--jobs", str(a.jobs), "--quiet"]
        if heatmaps:
            args += ["--heatmaps", os.path.join(root, "hm")]
        err = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True).stderr
        verdicts.add(re.search(r"[0-9]+ ok, [0-9]+ defect, [0-9]+ error", err).group(0))
        return float(re.search(r"\(([0-9.]+) images/s", err).group(1))

    verdicts = set()

    plain = [rate(False) for _ in range(a.repeats)]
    with_maps = [rate(True) for _ in range(a.repeats)]
    best_plain, best_maps = max(plain), max(with_maps)
    print("verdicts: %s" % "; ".join(sorted(verdicts)))
    print("without heat maps: %s images/s" % " ".join("%.1f" % r for r in plain))
    print("with heat maps:    %s images/s" % " ".join("%.1f" % r for r in with_maps))
    print("throughput lost to heat maps (best runs): %.0f %%" % (100 * (1 - best_maps / best_plain)))
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
