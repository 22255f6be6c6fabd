#!/usr/bin/env python3
"""The inspection pipeline of `vinspect train` / `vinspect inspect`, written with ONNX Runtime
and numpy: the end-to-end peer of issue #8.

Same job, step by step, as the Swift engine with its defaults (Sources/Anomaly,
Sources/VisualInspection):
  decode (Pillow) -> resize to S x S (area averaging when shrinking: each input pixel
  weighs by the fraction of it an output pixel covers; numpy, from a tap table) -> grey replicated to RGB -> (x/255 - mean)/std with the backbone's statistics
  -> backbone up to its stride-16 tap (ONNX Runtime; graph from onnx_backbones.py, pruned
     to the two taps feat_s8 / feat_s16) -> 3x3 average, stride 1, zero padding not counted
     (count_include_pad=False; none with --aggregation 1) -> stride-16 map resized
     bilinearly to the stride-8 grid (align_corners=False) -> channels concatenated
  train:   every patch of every good image -> greedy k-center coreset (random Gaussian
           projection to 128 dims, N(0, 1/128)) when there are more than --max-bank patches,
           to min(--max-bank, round(0.1 * patches)) rows -> threshold from held-out good
           scores (min(n, 5) folds, image i in fold i % folds, each fold scored against the
           bank without the rows that came from it; mean + z * std for the target
           false-reject rate, at least 1.05 x the largest score under 20 scores)
  inspect: exact nearest neighbour of every patch in the bank (numpy, blocked matmul,
           |q|^2 + |b|^2 - 2 q.b) -> sqrt -> bilinear upsample to S x S (align_corners=False)
           -> Gaussian blur, sigma 4, truncated at 4 sigma, reflected edges -> max = raw
           score; score = raw / (raw + threshold); mask > threshold -> 8-connected regions
           (scipy.ndimage.label) -> boxes in original-image pixels -> one JSON line per image
           with the fields of DESIGN.md's report record.

Where the peer takes a different road to the same numbers:
  * the resize is numpy, not Pillow: Pillow's BOX filter (train --resize box) gives each
    source pixel weight 1 or 0 by where its centre falls, so for 512 -> 224 (factor 2.29)
    it is not area averaging: it differs from the engine's resize in 43 % of the pixels of
    a screw image, by up to 12 grey levels, and moves the image scores by up to ~8 %;
  * upsample and blur are both linear maps along each axis, so they are applied as one
    precomputed [S, g] matrix M per axis: map = M G M^T (two tiny matmuls);
  * training keeps the patch features of the good images and reuses them for the held-out
    scores (the engine runs the backbone a second time there);
  * the projection matrix and the coreset's first point come from numpy's generator, not
    from the engine's Xoshiro256, so the banks of 320 images hold different (equally
    chosen) rows; with 8 images there is no coreset and the banks are the same patches;
  * --shots K --seed S draws the same files as `vinspect train --shots K --seed S`
    (Xoshiro256** seeded through SplitMix64, Swift's Fisher-Yates shuffle and Lemire's
    bounded draw, reproduced below).

Threads: --threads T sets ONNX Runtime's intra-op threads (inter-op 1, sequential) and,
before numpy is imported, OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS.
--jobs J (inspect) runs J images at a time on Python threads (ORT and BLAS release the GIL).

Usage:
  e2e_peer.py train --good DIR [--shots K] [--seed S] --weights CKPT.pth [--arch efficientnet-lite0]
                    [--image-size 224] [--aggregation 3] [--max-bank 16384] [--threads T] --output M.npz
  e2e_peer.py inspect M.npz PATH... [--report R.jsonl] [--threads T] [--jobs J]
  e2e_peer.py compare A.jsonl B.jsonl      # score agreement of two reports (e.g. vinspect's and ours)
  e2e_peer.py draw DIR --shots K --seed S  # the files `vinspect train --shots K --seed S` uses

The model file is an .npz (never commit it): the bank [B, D], the row owners, the threshold,
the pruned ONNX graph (bytes) and a JSON string of the options. Each command prints one JSON
object as its last stdout line (timings, counts; inspect adds seconds per stage).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

MASK64 = (1 << 64) - 1


# ----------------------------------------------------------------- the engine's file draw

class SplitMix64:
    def __init__(self, seed: int):
        self.state = seed & MASK64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)


class Xoshiro256:
    """xoshiro256** seeded through SplitMix64, as TensorCore/Random.swift."""

    def __init__(self, seed: int):
        m = SplitMix64(seed)
        self.s = [m.next(), m.next(), m.next(), m.next()]

    @staticmethod
    def _rotl(x: int, k: int) -> int:
        return ((x << k) | (x >> (64 - k))) & MASK64

    def next(self) -> int:
        s0, s1, s2, s3 = self.s
        result = (self._rotl((s1 * 5) & MASK64, 7) * 9) & MASK64
        t = (s1 << 17) & MASK64
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = self._rotl(s3, 45)
        self.s = [s0, s1, s2, s3]
        return result

    def next_below(self, bound: int) -> int:
        """Swift's RandomNumberGenerator.next(upperBound:): Lemire's multiply-and-reject."""
        m = self.next() * bound
        if (m & MASK64) < bound:
            t = ((-bound) & MASK64) % bound
            while (m & MASK64) < t:
                m = self.next() * bound
        return m >> 64


def swift_shuffled(items, rng: Xoshiro256):
    """Swift's MutableCollection.shuffle(using:) (Fisher-Yates from the front)."""
    a = list(items)
    amount, i = len(a), 0
    while amount > 1:
        j = rng.next_below(amount)
        amount -= 1
        a[i], a[i + j] = a[i + j], a[i]
        i += 1
    return a


def image_files_below(folder: str):
    """PNG/JPEG files below a folder, depth-first, entries sorted by their UTF-8 bytes and
    hidden ones skipped: the order of the engine's InputFiles."""
    out = []
    if os.path.isfile(folder):
        return [folder]
    for name in sorted(os.listdir(folder), key=lambda s: s.encode()):
        if name.startswith("."):
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            out += image_files_below(path)
        else:
            out.append(path)
    return out


def inputs_of(paths):
    out = []
    for p in paths:
        out += image_files_below(p) if os.path.isdir(p) else [p]
    return out


def draw_files(folder: str, shots, seed: int):
    files = [f for f in image_files_below(folder) if f.lower().endswith((".png", ".jpg", ".jpeg"))]
    if shots is None or shots >= len(files):
        return files
    return swift_shuffled(files, Xoshiro256(seed))[:shots]


# ----------------------------------------------------------------- pipeline (needs numpy)

ARCH_NORMALIZATION = {"efficientnet-lite0": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
                      "resnet18": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}


def import_numeric():
    """numpy, onnxruntime and friends, imported only after the thread variables are set."""
    global np, ort, PILImage, ndimage
    import numpy as np  # noqa: F811
    import onnxruntime as ort  # noqa: F811
    from PIL import Image as PILImage  # noqa: F811
    from scipy import ndimage  # noqa: F811


def pruned_backbone(arch: str, weights: str, size: int) -> bytes:
    """The ONNX graph of onnx_backbones.py with outputs feat_s8, feat_s16 and every node
    they do not need removed (the engine also stops after its last tap)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import onnx
    import onnx_backbones as OB
    import torch_pickle

    sd = torch_pickle.load_weights(weights)
    model = OB.build_model(arch, sd, (size, size), ("feat_s8", "feat_s16"))
    graph = model.graph
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
    keep.reverse()
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.node[:]
    graph.node.extend(keep)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def make_session(onnx_bytes: bytes, threads: int):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])


def decode(path: str):
    """The decoded image as Pillow holds it: 8-bit grey or RGB, alpha dropped (16-bit grey
    is brought to 8 bits here, where the engine keeps 16; the screw images are 8-bit)."""
    im = PILImage.open(path)
    im.load()
    if im.mode in ("L", "RGB"):
        return im
    if im.mode.startswith("I"):
        a = np.asarray(im, dtype=np.float64)
        return PILImage.fromarray(np.clip(a / 257.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode in ("LA", "1", "F"):
        return im.convert("L")
    return im.convert("RGB")


_RESAMPLE_TABLES: dict = {}


def resample_table(n_in: int, n_out: int):
    """Taps of one axis as ImageIO's ResampleTable: idx [n_out, T], weights [n_out, T]
    (zero-padded). Shrinking: area averaging, output o covers input [o*s, (o+1)*s) and
    every input pixel weighs by the part of it that is covered; enlarging: bilinear
    between pixel centres, edges clamped."""
    key = (n_in, n_out)
    if key not in _RESAMPLE_TABLES:
        scale = n_in / n_out
        taps = []
        for o in range(n_out):
            t = []
            if scale > 1:
                lo, hi = o * scale, (o + 1) * scale
                i = int(lo)
                while i < hi and i < n_in:
                    covered = min(hi, i + 1) - max(lo, i)
                    if covered > 1e-9:
                        t.append((i, covered / scale))
                    i += 1
            else:
                c = min(max((o + 0.5) * scale - 0.5, 0), n_in - 1)
                i0 = int(np.floor(c))
                i1 = min(i0 + 1, n_in - 1)
                f = c - i0
                t.append((i0, 1 - f))
                if i1 != i0 and f > 0:
                    t.append((i1, f))
            taps.append(t)
        width = max(len(t) for t in taps)
        idx = np.zeros((n_out, width), np.intp)
        w = np.zeros((n_out, width), np.float32)
        for o, t in enumerate(taps):
            for k, (i, wt) in enumerate(t):
                idx[o, k], w[o, k] = i, wt
        _RESAMPLE_TABLES[key] = (idx, w)
    return _RESAMPLE_TABLES[key]


def area_resize(a, size: int):
    """uint8 [H, W] or [H, W, C] -> [size, size(, C)] uint8, as Image.resized: horizontal
    then vertical pass in float32, clamped, rounded half up."""
    x = a.astype(np.float32)
    h, w = x.shape[:2]
    ix, wx = resample_table(w, size)
    iy, wy = resample_table(h, size)
    extra = (None,) * (x.ndim - 2)  # broadcast the weights over channels
    rows = x[:, ix[:, 0]] * wx[(None, slice(None), 0) + extra]
    for t in range(1, ix.shape[1]):  # at most a handful of taps: one gather each
        rows += x[:, ix[:, t]] * wx[(None, slice(None), t) + extra]
    out = rows[iy[:, 0]] * wy[(slice(None), 0, None) + extra]
    for t in range(1, iy.shape[1]):
        out += rows[iy[:, t]] * wy[(slice(None), t, None) + extra]
    return np.floor(np.clip(out, 0, 255) + 0.5).astype(np.uint8)


def preprocess(im, size: int, mean, std, resize: str = "area"):
    """[3, S, S] float32: resize (area averaging as the engine, or Pillow's BOX filter),
    grey replicated, normalised."""
    if im.size == (size, size):
        a = np.asarray(im)
    elif resize == "area":
        a = area_resize(np.asarray(im), size)
    else:
        a = np.asarray(im.resize((size, size), PILImage.BOX))
    a = a.astype(np.float32)
    if a.ndim == 2:
        a = np.repeat(a[None], 3, axis=0)
    else:
        a = a.transpose(2, 0, 1)
    m = np.asarray(mean, np.float32)[:, None, None]
    s = np.asarray(std, np.float32)[:, None, None]
    return (a * (1.0 / 255.0) - m) / s


def bilinear_matrix(n_in: int, n_out: int):
    """[n_out, n_in] float64: PyTorch bilinear, align_corners=False, source clamped at 0."""
    r = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        s = max((o + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(s), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        f = s - i0
        r[o, i0] += 1 - f
        r[o, i1] += f
    return r


def blur_matrix(n: int, sigma: float):
    """[n, n] float64: Gaussian, radius ceil(4 sigma), weights normalised, edges reflected
    (d c b a | a b c d), as AnomalyMap.gaussianBlur."""
    radius = max(1, int(np.ceil(4 * sigma)))
    k = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma * sigma))
    k /= k.sum()
    a = np.zeros((n, n))
    for x in range(n):
        for t, w in zip(range(-radius, radius + 1), k):
            j = x + t
            while j < 0 or j >= n:
                j = -j - 1 if j < 0 else 2 * n - j - 1
            a[x, j if n > 1 else 0] += w
    return a


def local_average(x, size: int):
    """x [N, C, H, W]: size x size mean, stride 1, zero padding not counted."""
    if size <= 1:
        return x
    r = size // 2
    n, c, h, w = x.shape
    p = np.zeros((n, c, h + 2 * r, w + 2 * r), np.float32)
    p[:, :, r:r + h, r:r + w] = x
    rows = sum(p[:, :, i:i + h, :] for i in range(size))
    out = sum(rows[:, :, :, j:j + w] for j in range(size))
    ones = np.zeros((h + 2 * r, w + 2 * r), np.float32)
    ones[r:r + h, r:r + w] = 1
    crow = sum(ones[i:i + h, :] for i in range(size))
    count = sum(crow[:, j:j + w] for j in range(size))
    return out / count


class PatchFeatures:
    """Stride-8 and stride-16 maps -> [N, h*w, D] patch rows (cell-major, channels last)."""

    def __init__(self, aggregation: int):
        self.aggregation = aggregation
        self.resize = None

    def __call__(self, s8, s16):
        a8 = local_average(s8, self.aggregation)
        a16 = local_average(s16, self.aggregation)
        n, c8, h, w = a8.shape
        if self.resize is None or self.resize[0].shape != (h, a16.shape[2]):
            self.resize = (bilinear_matrix(a16.shape[2], h).astype(np.float32),
                           bilinear_matrix(a16.shape[3], w).astype(np.float32))
        ry, rx = self.resize
        if a16.shape[2:] != (h, w):
            a16 = np.einsum("yi,ncij,xj->nyxc", ry, a16, rx, optimize=True)
        else:
            a16 = a16.transpose(0, 2, 3, 1)
        out = np.concatenate([a8.transpose(0, 2, 3, 1), a16], axis=3)
        return np.ascontiguousarray(out.reshape(n, h * w, -1), dtype=np.float32)


def nearest_sq(q, bank, bank_norms, block: int = 2048, with_indices: bool = False):
    """Exact squared distance to the nearest bank row, [Q] (and its index with
    with_indices): blocked -2 q.b^T + |b|^2, the row minimum per block, then + |q|^2
    (constant per row), clamped at 0. Ties keep the lower bank index."""
    best = np.full(q.shape[0], np.inf, np.float32)
    index = np.zeros(q.shape[0], np.int64) if with_indices else None
    rows = np.arange(q.shape[0])
    for s in range(0, bank.shape[0], block):
        t = q @ bank[s:s + block].T  # [Q, block], one sgemm
        t *= -2
        t += bank_norms[s:s + block]
        if with_indices:
            j = t.argmin(axis=1)
            v = t[rows, j]
            better = v < best
            best[better] = v[better]
            index[better] = j[better] + s
        else:
            np.minimum(best, t.min(axis=1), out=best)
    best += np.einsum("ij,ij->i", q, q)
    np.maximum(best, 0, out=best)
    return (best, index) if with_indices else best


class MapMaker:
    """Patch distances [h*w] -> anomaly map [S, S] (bilinear upsample, then blur)."""

    def __init__(self, grid_h: int, grid_w: int, size: int, sigma: float):
        my = bilinear_matrix(grid_h, size)
        mx = bilinear_matrix(grid_w, size)
        if sigma > 0:
            my = blur_matrix(size, sigma) @ my
            mx = blur_matrix(size, sigma) @ mx
        self.my = my.astype(np.float32)
        self.mxt = np.ascontiguousarray(mx.T.astype(np.float32))
        self.shape = (grid_h, grid_w)

    def __call__(self, distances):
        return self.my @ distances.reshape(self.shape) @ self.mxt


def threshold_from_good(scores, false_reject_rate: float) -> float:
    """mean + z * std (n - 1), at least 1.05 x the largest score under 20 scores."""
    from statistics import NormalDist

    s = np.asarray(scores, np.float64)
    z = NormalDist().inv_cdf(1 - false_reject_rate)
    std = s.std(ddof=1) if len(s) > 1 else 0.0
    t = s.mean() + z * std
    if len(s) < 20:
        t = max(t, s.max() * 1.05)
    return float(t)


def greedy_coreset(feats, count: int, seed: int, projection: int = 128):
    """Greedy k-center on a random Gaussian projection; returns row indices in order."""
    n, d = feats.shape
    rng = np.random.default_rng(seed)
    first = int(rng.integers(n))
    pts = feats
    if projection < d:
        r = (rng.standard_normal((d, projection)) / np.sqrt(projection)).astype(np.float32)
        pts = feats @ r
    pts = np.ascontiguousarray(pts, dtype=np.float32)
    norms = np.einsum("ij,ij->i", pts, pts)
    nearest = np.full(n, np.inf, np.float32)
    dist = np.empty(n, np.float32)
    selected = [first]
    center = first
    while len(selected) < count:
        nearest[center] = -1  # selected rows are never taken again
        np.dot(pts, pts[center], out=dist)  # sgemv: one pass over the points
        dist *= -2
        dist += norms
        dist += norms[center]
        np.minimum(nearest, dist, out=nearest)
        center = int(nearest.argmax())
        selected.append(center)
    return np.asarray(selected, np.int64)


# ----------------------------------------------------------------- train

def train(a) -> dict:
    t0 = time.perf_counter()
    mean, std = ARCH_NORMALIZATION[a.arch]
    files = draw_files(a.good, a.shots, a.seed)
    if not files:
        sys.exit(f"e2e_peer: no images in {a.good}")
    onnx_bytes = pruned_backbone(a.arch, a.weights, a.image_size)
    sess = make_session(onnx_bytes, a.threads)
    patches = PatchFeatures(a.aggregation)
    t_load = time.perf_counter()

    feats = []  # per image [h*w, D]
    unreadable = 0
    batch = []

    def flush():
        s8, s16 = sess.run(["feat_s8", "feat_s16"], {"input": np.stack(batch)})
        feats.extend(patches(s8, s16))
        batch.clear()

    grid = None
    for f in files:
        try:
            x = preprocess(decode(f), a.image_size, mean, std, a.resize)
        except Exception as e:  # unreadable files are skipped, as the engine does
            print(f"e2e_peer: skipped {f}: {e}", file=sys.stderr)
            unreadable += 1
            continue
        batch.append(x)
        if len(batch) == a.batch:
            flush()
    if batch:
        flush()
    t_feat = time.perf_counter()
    grid = a.image_size // 8
    cells = feats[0].shape[0]
    all_rows = np.concatenate(feats)  # [N*cells, D]
    owners = np.repeat(np.arange(len(feats)), cells)
    total = all_rows.shape[0]
    rows = np.arange(total)
    if total > a.max_bank:
        target = min(a.max_bank, max(1, int(round(total * a.coreset_fraction))))
        if target < total:
            rows = greedy_coreset(all_rows, target, a.seed)
    bank = np.ascontiguousarray(all_rows[rows])
    bank_owners = owners[rows]
    t_coreset = time.perf_counter()

    # Held-out good scores: each fold against the bank without its own rows.
    mapper = MapMaker(grid, grid, a.image_size, a.sigma)
    n = len(feats)
    good_scores = []
    if n >= 2:
        folds = min(n, 5)
        for fold in range(folds):
            held = [i for i in range(n) if i % folds == fold]
            keep = ~np.isin(bank_owners, held)
            b = np.ascontiguousarray(bank[keep])
            bn = np.einsum("ij,ij->i", b, b)
            q = np.concatenate([feats[i] for i in held])
            d = np.sqrt(nearest_sq(q, b, bn)).reshape(len(held), cells)
            good_scores += [float(mapper(di).max()) for di in d]
    else:
        sys.exit("e2e_peer: the single-image calibration (jittered views) is not reproduced; give >= 2 images")
    threshold = threshold_from_good(good_scores, a.false_reject_rate)
    t_cal = time.perf_counter()

    meta = {"arch": a.arch, "weights": os.path.abspath(a.weights), "image_size": a.image_size,
            "aggregation": a.aggregation, "sigma": a.sigma, "grid": grid, "mean": mean, "std": std,
            "min_defect_area": a.min_defect_area, "good_images": n, "patches": int(total),
            "seed": a.seed, "shots": a.shots, "resize": a.resize}
    np.savez(a.output, bank=bank, owners=bank_owners, threshold=np.float32(threshold),
             onnx=np.frombuffer(onnx_bytes, np.uint8), meta=np.array(json.dumps(meta)),
             good_scores=np.asarray(good_scores, np.float32))
    t_end = time.perf_counter()
    out = {"command": "train", "images": n, "unreadable": unreadable, "patches": int(total), "bank": int(bank.shape[0]),
           "dimension": int(bank.shape[1]), "threshold": threshold, "threads": a.threads,
           "seconds": round(t_end - t0, 3),
           "stages": {"setup": round(t_load - t0, 3), "features": round(t_feat - t_load, 3),
                      "coreset": round(t_coreset - t_feat, 3), "calibration": round(t_cal - t_coreset, 3),
                      "write": round(t_end - t_cal, 3)},
           "files": [os.path.basename(f) for f in files] if a.shots else None}
    print(f"trained in {t_end - t0:.2f} s -> {a.output}: {n} images, bank {bank.shape[0]} x {bank.shape[1]} "
          f"(from {total} patches), threshold {threshold:.4f}", file=sys.stderr)
    return out


# ----------------------------------------------------------------- inspect

class Inspector:
    def __init__(self, model_path: str, threads: int):
        z = np.load(model_path)
        self.meta = json.loads(str(z["meta"]))
        self.bank = np.ascontiguousarray(z["bank"])
        self.norms = np.einsum("ij,ij->i", self.bank, self.bank)
        self.threshold = float(z["threshold"])
        self.sess = make_session(z["onnx"].tobytes(), threads)
        m = self.meta
        self.patches = PatchFeatures(m["aggregation"])
        self.mapper = MapMaker(m["grid"], m["grid"], m["image_size"], m["sigma"])
        self.structure = np.ones((3, 3), bool)

    def normalized(self, raw: float) -> float:
        if self.threshold <= 0:
            return 1.0 if raw > 0 else 0.0
        r = max(raw, 0.0)
        return r / (r + self.threshold)

    def inspect(self, path: str, stages: dict) -> dict:
        m = self.meta
        size = m["image_size"]
        t0 = time.perf_counter()
        try:
            im = decode(path)
        except Exception as e:
            return {"path": path, "verdict": "error", "score": None, "anomaly_score": None, "threshold": None,
                    "defect_type": None, "type_confidence": None, "boxes": [], "heatmap": None,
                    "error": f"{path}: {e}", "milliseconds": round((time.perf_counter() - t0) * 1e3, 2)}
        width, height = im.size
        t1 = time.perf_counter()
        x = preprocess(im, size, m["mean"], m["std"], m.get("resize", "area"))[None]
        t2 = time.perf_counter()
        s8, s16 = self.sess.run(["feat_s8", "feat_s16"], {"input": x})
        t3 = time.perf_counter()
        q = self.patches(s8, s16)[0]
        t4 = time.perf_counter()
        d = np.sqrt(nearest_sq(q, self.bank, self.norms))
        t5 = time.perf_counter()
        amap = self.mapper(d)
        raw = float(amap.max())
        t6 = time.perf_counter()
        score = self.normalized(raw)
        boxes = []
        mask = amap > self.threshold
        if mask.any():
            sx, sy = width / size, height / size
            min_area = max(1, int(np.ceil(m["min_defect_area"] / (sx * sy))))
            labels, count = ndimage.label(mask, structure=self.structure)
            areas = np.bincount(labels.ravel(), minlength=count + 1)
            peaks = ndimage.maximum(amap, labels, index=np.arange(1, count + 1))
            for i, sl in enumerate(ndimage.find_objects(labels)):
                if areas[i + 1] < min_area:
                    continue
                y0, x0 = int(np.floor(sl[0].start * sy)), int(np.floor(sl[1].start * sx))
                y1, x1 = min(height, int(np.ceil(sl[0].stop * sy))), min(width, int(np.ceil(sl[1].stop * sx)))
                boxes.append({"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0,
                              "area": int(round(areas[i + 1] * sx * sy)), "score": self.normalized(float(peaks[i]))})
            boxes.sort(key=lambda b: -b["score"])
        t7 = time.perf_counter()
        for key, dt in (("decode", t1 - t0), ("resize_normalize", t2 - t1), ("backbone", t3 - t2),
                        ("patch_features", t4 - t3), ("knn", t5 - t4), ("map_blur", t6 - t5), ("mask_boxes", t7 - t6)):
            stages[key] = stages.get(key, 0.0) + dt
        return {"path": path, "verdict": "defect" if score >= 0.5 else "ok", "score": score, "anomaly_score": raw,
                "threshold": self.threshold, "defect_type": None, "type_confidence": None, "boxes": boxes,
                "heatmap": None, "error": None, "milliseconds": round((time.perf_counter() - t0) * 1e3, 2)}


def inspect(a) -> dict:
    t_start = time.perf_counter()
    insp = Inspector(a.model, a.threads)
    files = inputs_of(a.paths)
    out = open(a.report, "w") if a.report else sys.stdout
    stages: dict = {}
    counts = {"ok": 0, "defect": 0, "error": 0}
    start = time.perf_counter()

    def emit(rec):
        counts[rec["verdict"]] += 1
        out.write(json.dumps(rec) + "\n")
        out.flush()

    if a.jobs <= 1:
        for f in files:
            emit(insp.inspect(f, stages))
    else:
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        per_job = [dict() for _ in range(a.jobs)]
        import threading
        local = threading.local()
        slots = iter(range(a.jobs))
        lock = threading.Lock()

        def work(f):
            if not hasattr(local, "stages"):
                with lock:
                    local.stages = per_job[next(slots)]
            return insp.inspect(f, local.stages)

        with ThreadPoolExecutor(a.jobs) as ex:
            pending = deque()
            for f in files:  # at most 2 * jobs in flight, records in input order
                pending.append(ex.submit(work, f))
                if len(pending) >= 2 * a.jobs:
                    emit(pending.popleft().result())
            while pending:
                emit(pending.popleft().result())
        for s in per_job:
            for k, v in s.items():
                stages[k] = stages.get(k, 0.0) + v
    seconds = time.perf_counter() - start
    if out is not sys.stdout:
        out.close()
    n = len(files)
    print(f"{n} image(s) in {seconds:.2f} s ({n / max(seconds, 1e-9):.2f} images/s, {a.threads} thread(s), "
          f"{a.jobs} job(s)): {counts['ok']} ok, {counts['defect']} defect, {counts['error']} error", file=sys.stderr)
    return {"command": "inspect", "images": n, "seconds": round(seconds, 4), "images_per_s": round(n / max(seconds, 1e-9), 3),
            "setup_seconds": round(start - t_start, 3), "threads": a.threads, "jobs": a.jobs, **counts,
            "stage_seconds": {k: round(v, 4) for k, v in stages.items()}}


# ----------------------------------------------------------------- compare

def auroc(scores, labels) -> float:
    """Area under the ROC curve (ties count one half), from ranks."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, bool)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    npos, nneg = y.sum(), (~y).sum()
    return float((ranks[y].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def spearman(a, b) -> float:
    ra = np.argsort(np.argsort(a, kind="mergesort"), kind="mergesort").astype(np.float64)
    rb = np.argsort(np.argsort(b, kind="mergesort"), kind="mergesort").astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1])


def compare_reports(path_a: str, path_b: str) -> dict:
    """Agreement of the raw scores of two reports over the paths they share; labels from
    the MVTec layout (a parent folder named good = OK)."""
    def load(p):
        with open(p) as f:
            return {r["path"]: r for r in map(json.loads, f) if r.get("anomaly_score") is not None}

    ra, rb = load(path_a), load(path_b)
    paths = [p for p in ra if p in rb]
    sa = np.array([ra[p]["anomaly_score"] for p in paths])
    sb = np.array([rb[p]["anomaly_score"] for p in paths])
    labels = np.array([os.path.basename(os.path.dirname(p)) != "good" for p in paths])
    res = {"images": len(paths), "spearman": round(spearman(sa, sb), 5),
           "max_rel_diff": float(f"{np.max(np.abs(sa - sb) / np.maximum(np.abs(sa), 1e-12)):.3g}"),
           "median_rel_diff": float(f"{np.median(np.abs(sa - sb) / np.maximum(np.abs(sa), 1e-12)):.3g}"),
           "verdict_agreement": round(float(np.mean([ra[p]["verdict"] == rb[p]["verdict"] for p in paths])), 4)}
    if labels.any() and (~labels).any():
        res["auroc_a"], res["auroc_b"] = round(auroc(sa, labels), 4), round(auroc(sb, labels), 4)
    return res


# ----------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--good", required=True)
    t.add_argument("--shots", type=int)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--weights", required=True, help="PyTorch .pth or .safetensors (PyTorch names)")
    t.add_argument("--arch", default="efficientnet-lite0", choices=sorted(ARCH_NORMALIZATION))
    t.add_argument("--image-size", type=int, default=224)
    t.add_argument("--aggregation", type=int, default=3)
    t.add_argument("--coreset-fraction", type=float, default=0.1)
    t.add_argument("--max-bank", type=int, default=16384)
    t.add_argument("--sigma", type=float, default=4.0)
    t.add_argument("--false-reject-rate", type=float, default=0.01)
    t.add_argument("--min-defect-area", type=int, default=16)
    t.add_argument("--resize", choices=["area", "box"], default="area",
                   help="area: exact area averaging as the engine (numpy); box: Pillow's BOX filter")
    t.add_argument("--batch", type=int, default=8, help="images per ONNX Runtime call while training")
    t.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    t.add_argument("--output", required=True)
    i = sub.add_parser("inspect")
    i.add_argument("model")
    i.add_argument("paths", nargs="+")
    i.add_argument("--report")
    i.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    i.add_argument("--jobs", type=int, default=1)
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    d = sub.add_parser("draw")
    d.add_argument("folder")
    d.add_argument("--shots", type=int, required=True)
    d.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    if a.command == "draw":
        print("\n".join(draw_files(a.folder, a.shots, a.seed)))
        return
    threads = getattr(a, "threads", 1)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)  # read once when the BLAS library loads
    import_numeric()
    if a.command == "train":
        res = train(a)
    elif a.command == "inspect":
        res = inspect(a)
    else:
        res = compare_reports(a.a, a.b)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
