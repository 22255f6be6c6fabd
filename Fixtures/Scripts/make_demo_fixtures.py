#!/usr/bin/env python3
"""Writes the images `vinspect demo` trains on and inspects: a machined washer on a
brushed-metal plate, photographed from above, good or with one of four synthetic defects.

    python3 Fixtures/Scripts/make_demo_fixtures.py      # writes Fixtures/demo

Layout:
    demo/train/good/            12 good parts (the anomaly scorer learns from these)
    demo/train/defects/<type>/  3 examples each of scratch, stain, crack (the classifier)
    demo/line/                  16 parts "from the line": good, the three known defect
                                types, and a dent, a type the model was never shown
Every image is generated from a fixed seed (the same files on every run with the same numpy
and Pillow); the file names in demo/line start with the truth, so the demo can say how many
verdicts it got right.
"""
import os
import shutil

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo")
SIZE = 128


def part(rng):
    """A good part: brushed plate, a washer with small position and lighting changes."""
    streaks = rng.normal(0, 1, (SIZE, 1)) * 6 + rng.normal(0, 1, (SIZE, SIZE)) * 2.5
    plate = 95 + streaks + np.linspace(-6, 6, SIZE)[None, :] * rng.uniform(-1, 1)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    cx = SIZE / 2 + rng.uniform(-2, 2)
    cy = SIZE / 2 + rng.uniform(-2, 2)
    r = np.hypot(xx - cx, yy - cy)
    ring = (r > 18) & (r < 40)
    shade = 170 + 25 * np.cos(np.arctan2(yy - cy, xx - cx) - rng.uniform(0, 2 * np.pi)) * (r / 40)
    img = np.where(ring, shade + rng.normal(0, 2, (SIZE, SIZE)), plate)
    img = np.where(r <= 18, 40 + rng.normal(0, 2, (SIZE, SIZE)), img)  # the hole
    edge = np.exp(-((r - 40) ** 2) / 2.0) * 30 + np.exp(-((r - 18) ** 2) / 2.0) * 25
    img = img + edge
    gain = rng.uniform(0.94, 1.06)
    return np.clip(img * gain, 0, 255), (cx, cy)


def on_ring(rng, centre, radius=(22, 36)):
    angle = rng.uniform(0, 2 * np.pi)
    rad = rng.uniform(*radius)
    return centre[0] + rad * np.cos(angle), centre[1] + rad * np.sin(angle), angle


def scratch(img, rng, centre):
    x, y, _ = on_ring(rng, centre)
    a = rng.uniform(0, np.pi)
    length = rng.uniform(16, 26)
    layer = Image.new("L", (SIZE, SIZE), 0)
    d = ImageDraw.Draw(layer)
    d.line([(x - length / 2 * np.cos(a), y - length / 2 * np.sin(a)), (x + length / 2 * np.cos(a), y + length / 2 * np.sin(a))],
           fill=255, width=2)
    m = np.asarray(layer.filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float64) / 255
    return img * (1 - m) + 250 * m


def stain(img, rng, centre):
    x, y, _ = on_ring(rng, centre)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    rx, ry = rng.uniform(5, 8), rng.uniform(3.5, 6)
    blob = np.exp(-(((xx - x) / rx) ** 2 + ((yy - y) / ry) ** 2) * 1.5)
    return img * (1 - 0.65 * blob) + 35 * 0.65 * blob


def crack(img, rng, centre):
    x, y, angle = on_ring(rng, centre, (38, 40))
    points = [(x, y)]
    heading = angle + np.pi + rng.uniform(-0.4, 0.4)
    for _ in range(7):
        heading += rng.uniform(-0.7, 0.7)
        x += 3 * np.cos(heading)
        y += 3 * np.sin(heading)
        points.append((x, y))
    layer = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(layer).line(points, fill=255, width=1)
    m = np.asarray(layer, dtype=np.float64) / 255
    return img * (1 - 0.9 * m) + 20 * 0.9 * m


def dent(img, rng, centre):
    x, y, _ = on_ring(rng, centre)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    d2 = ((xx - x) ** 2 + (yy - y) ** 2) / 16
    # A dent: a bright crescent next to a dark one (light from one side).
    return np.clip(img + 70 * np.exp(-d2) * np.sign(xx - x + 0.5) , 0, 255)


DEFECTS = {"scratch": scratch, "stain": stain, "crack": crack, "dent": dent}


def save(img, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L").save(path, optimize=True)


def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    rng = np.random.default_rng(2026)
    for i in range(12):
        img, _ = part(rng)
        save(img, os.path.join(ROOT, "train", "good", f"good_{i:02d}.png"))
    for name in ["scratch", "stain", "crack"]:
        for i in range(3):
            img, c = part(rng)
            save(DEFECTS[name](img, rng, c), os.path.join(ROOT, "train", "defects", name, f"{name}_{i:02d}.png"))
    line = ["good"] * 8 + ["scratch"] * 2 + ["stain"] * 2 + ["crack"] * 2 + ["dent"] * 2
    for i, kind in enumerate(line):
        img, c = part(rng)
        if kind != "good":
            img = DEFECTS[kind](img, rng, c)
        save(img, os.path.join(ROOT, "line", f"{kind}_{i:02d}.png"))


if __name__ == "__main__":
    main()
