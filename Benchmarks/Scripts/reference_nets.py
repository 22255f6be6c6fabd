#!/usr/bin/env python3
"""Plain numpy reference forwards for ResNet-18 and EfficientNet-Lite0/1/2.

Written for correctness, not speed: NCHW layout, every convolution is a loop over the
kernel taps accumulating in float64, every layer spelled out. The Swift backbones and
the ONNX graphs (onnx_backbones.py) are checked against these functions.

Both forwards take a state dict (name -> float array, PyTorch naming) and an input
batch x [N, 3, H, W] (already normalised, see `preprocess`) and return a dict:

  logits     [N, classes]   the classifier output (no softmax)
  embedding  [N, C]         global average pool of the last feature map, before the fc
  feat_s4    [N, C4, H/4, W/4]    stride-4 feature map
  feat_s8    [N, C8, H/8, W/8]    stride-8 feature map
  feat_s16   [N, C16, H/16, W/16] stride-16 feature map
  feat_s32   [N, C32, H/32, W/32] stride-32 feature map (last stage, before the head)

Which layer outputs are the taps (all after the block's residual add and activation):
  ResNet-18:  s4 = layer1 (64 ch), s8 = layer2 (128), s16 = layer3 (256), s32 = layer4 (512);
              embedding = avgpool(layer4) (512).
  Lite0:      s4 = _blocks.2 (end of the 24-ch stage), s8 = _blocks.4 (40 ch),
              s16 = _blocks.10 (end of the 112-ch stage; the 80-ch stage, blocks 5-7, is
              also stride 16 but is not the tap), s32 = _blocks.15 (320 ch, before
              _conv_head); embedding = avgpool(relu6(_bn1(_conv_head(...)))) (1280).
  Lite0 blocks end with the projection conv + BN (+ residual), with no activation.
  Lite1/2:    Lite0 scaled by (width, depth) (1.0, 1.1) / (1.1, 1.2), see lite_stages:
              s4 = _blocks.3, s8 = _blocks.6, s16 = _blocks.14, s32 = _blocks.20; channels
              24 / 40 / 112 / 320 (Lite1), 24 / 48 / 120 / 352 (Lite2); embedding 1280.

Architecture facts (EfficientNet-Lite0, per shared/FACTS.md): TensorFlow "SAME" padding
(pad total = max((ceil(in/s)-1)*s + k - in, 0), the smaller half at top/left, so for
stride 2 the extra row/column goes at the bottom/right), BN eps 1e-3, ReLU6, no
squeeze-excite, input (x/255 - 0.5)/0.5. ResNet-18: torchvision's definition, BN eps
1e-5, ImageNet mean/std input normalisation.

CLI:
  python3 reference_nets.py random --arch resnet18|efficientnet-lite0|1|2 --seed S --out W.safetensors
  python3 reference_nets.py photos --weights efficientnet-lite0-57934424.pth [--save-input photos.npy]
  python3 reference_nets.py photos --arch efficientnet-lite2 --weights efficientnet-lite2-9656183e.pth \
      [--size 260] [--photo-arrays chelsea.npy ...] [--save-outputs out.npz]
"""
from __future__ import annotations

import argparse
import collections
import functools
import itertools
import json
import math
import os
import sys
from typing import Dict, List, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_pickle  # noqa: E402

StateDict = Dict[str, np.ndarray]

# ------------------------------------------------------------------ primitives


def conv2d(x: np.ndarray, w: np.ndarray, stride: int = 1,
           pads: Tuple[int, int, int, int] = (0, 0, 0, 0), groups: int = 1,
           bias: np.ndarray = None) -> np.ndarray:
    """x [N, C, H, W], w [O, C/groups, kh, kw] -> [N, O, Ho, Wo], float64.

    pads = (top, bottom, left, right), zero padding. groups must be 1 or C (= O, depthwise).
    """
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    pt, pb, pl, pr = pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ho = (h + pt + pb - kh) // stride + 1
    wo = (wd + pl + pr - kw) // stride + 1
    out = np.zeros((n, o, ho, wo), np.float64)
    for i in range(kh):
        for j in range(kw):
            # the input pixels that kernel tap (i, j) sees, for every output position
            patch = xp[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            if groups == 1:
                assert cg == c, f"conv: input has {c} channels, weight expects {cg}"
                out += np.tensordot(patch, w[:, :, i, j], axes=([1], [1])).transpose(0, 3, 1, 2)
            elif groups == c and cg == 1 and o == c:
                out += patch * w[:, 0, i, j][None, :, None, None]
            else:
                raise ValueError(f"groups={groups} with C={c}, O={o} is not supported")
    if bias is not None:
        out += np.asarray(bias, np.float64)[None, :, None, None]
    return out


def batch_norm(x: np.ndarray, sd: StateDict, prefix: str, eps: float) -> np.ndarray:
    """Inference batch norm with running statistics; x [N, C, H, W]."""
    g = sd[prefix + ".weight"].astype(np.float64)
    b = sd[prefix + ".bias"].astype(np.float64)
    m = sd[prefix + ".running_mean"].astype(np.float64)
    v = sd[prefix + ".running_var"].astype(np.float64)
    scale = g / np.sqrt(v + eps)
    return (x - m[None, :, None, None]) * scale[None, :, None, None] + b[None, :, None, None]


def relu(x):
    return np.maximum(x, 0.0)


def relu6(x):
    return np.clip(x, 0.0, 6.0)


def max_pool(x: np.ndarray, k: int, stride: int, pad: int) -> np.ndarray:
    """PyTorch MaxPool2d: padding counts as -inf."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    ho = (h + 2 * pad - k) // stride + 1
    wo = (w + 2 * pad - k) // stride + 1
    out = np.full((n, c, ho, wo), -np.inf)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, xp[:, :, i:i + stride * (ho - 1) + 1:stride,
                                     j:j + stride * (wo - 1) + 1:stride])
    return out


def tf_same_pads(size_hw: Tuple[int, int], k: int, stride: int) -> Tuple[int, int, int, int]:
    """TensorFlow "SAME" padding as (top, bottom, left, right): the extra one at bottom/right."""
    pads = []
    for n in size_hw:
        out = -(-n // stride)
        total = max((out - 1) * stride + k - n, 0)
        pads.append((total // 2, total - total // 2))
    (t, b), (l, r) = pads
    return t, b, l, r


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return x @ w.astype(np.float64).T + b.astype(np.float64)


# ------------------------------------------------------------------ ResNet-18

RESNET18_EPS = 1e-5
RESNET18_STAGES = [(64, 1), (128, 2), (256, 2), (512, 2)]  # (channels, first stride)


def resnet18_param_shapes(classes: int = 1000) -> "collections.OrderedDict[str, Tuple[tuple, str]]":
    """torchvision ResNet-18 state-dict names -> (shape, kind), in torchvision's order."""
    spec = collections.OrderedDict()

    def bn(p, c):
        for s in ("weight", "bias", "running_mean", "running_var"):
            spec[f"{p}.{s}"] = ((c,), "bn_" + s)
        spec[f"{p}.num_batches_tracked"] = ((), "count")

    spec["conv1.weight"] = ((64, 3, 7, 7), "conv")
    bn("bn1", 64)
    cin = 64
    for li, (c, s) in enumerate(RESNET18_STAGES, start=1):
        for bi in range(2):
            p = f"layer{li}.{bi}"
            stride = s if bi == 0 else 1
            spec[f"{p}.conv1.weight"] = ((c, cin, 3, 3), "conv")
            bn(f"{p}.bn1", c)
            spec[f"{p}.conv2.weight"] = ((c, c, 3, 3), "conv")
            bn(f"{p}.bn2", c)
            if stride != 1 or cin != c:
                spec[f"{p}.downsample.0.weight"] = ((c, cin, 1, 1), "conv_linear")
                bn(f"{p}.downsample.1", c)
            cin = c
    spec["fc.weight"] = ((classes, 512), "fc_weight")
    spec["fc.bias"] = ((classes,), "fc_bias")
    return spec


def resnet18_forward(sd: StateDict, x: np.ndarray) -> Dict[str, np.ndarray]:
    """torchvision ResNet-18 at inference. x [N, 3, H, W] -> see module doc."""
    eps = RESNET18_EPS
    feats = {}
    x = conv2d(x, sd["conv1.weight"], 2, (3, 3, 3, 3))
    x = relu(batch_norm(x, sd, "bn1", eps))
    x = max_pool(x, 3, 2, 1)
    for li, (c, s) in enumerate(RESNET18_STAGES, start=1):
        for bi in range(2):
            p = f"layer{li}.{bi}"
            stride = s if bi == 0 else 1
            identity = x
            out = relu(batch_norm(conv2d(x, sd[f"{p}.conv1.weight"], stride, (1, 1, 1, 1)),
                                  sd, f"{p}.bn1", eps))
            out = batch_norm(conv2d(out, sd[f"{p}.conv2.weight"], 1, (1, 1, 1, 1)), sd, f"{p}.bn2", eps)
            if f"{p}.downsample.0.weight" in sd:
                identity = batch_norm(conv2d(x, sd[f"{p}.downsample.0.weight"], stride),
                                      sd, f"{p}.downsample.1", eps)
            x = relu(out + identity)
        feats[f"feat_s{4 * 2 ** (li - 1)}"] = x
    emb = x.mean(axis=(2, 3))
    return {"logits": linear(emb, sd["fc.weight"], sd["fc.bias"]), "embedding": emb, **feats}


# ------------------------------------------------------------------ EfficientNet-Lite0/1/2

LITE0_EPS = 1e-3
# (expand ratio, kernel, stride, out channels, repeats), from shared/FACTS.md
LITE0_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
LITE0_STEM, LITE0_HEAD = 32, 1280
# Block index whose output is each feature tap (see module doc).
LITE0_TAPS = {"feat_s4": 2, "feat_s8": 4, "feat_s16": 10, "feat_s32": 15}
# (width, depth, resolution) per variant, as the TF lite reference's efficientnet_lite_params.
LITE_VARIANTS = {"efficientnet-lite0": (1.0, 1.0, 224), "efficientnet-lite1": (1.0, 1.1, 240),
                 "efficientnet-lite2": (1.1, 1.2, 260)}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """TF's round_filters: nearest multiple of `divisor`, at least `divisor`, never 10 % low."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def lite_stages(arch: str = "efficientnet-lite0") -> List[tuple]:
    """LITE0_STAGES scaled for `arch` the lite way (fix_head_stem): stem 32 and head 1280
    stay, the first and last stage keep 1 block, the others get ceil(depth * repeats);
    every stage's channels go through round_filters."""
    width, depth, _ = LITE_VARIANTS[arch]
    last = len(LITE0_STAGES) - 1
    return [(e, k, s, round_filters(c, width), r if i in (0, last) else int(math.ceil(depth * r)))
            for i, (e, k, s, c, r) in enumerate(LITE0_STAGES)]


def lite_blocks(arch: str = "efficientnet-lite0") -> List[dict]:
    """One dict per MBConv block: in/out channels, expand ratio, kernel, stride, skip."""
    blocks, cin = [], LITE0_STEM
    for e, k, s, c, r in lite_stages(arch):
        for i in range(r):
            stride = s if i == 0 else 1
            blocks.append(dict(cin=cin, cout=c, expand=e, k=k, stride=stride,
                               skip=(stride == 1 and cin == c)))
            cin = c
    return blocks


def lite0_blocks() -> List[dict]:
    return lite_blocks("efficientnet-lite0")


def lite_taps(arch: str = "efficientnet-lite0") -> Dict[str, int]:
    """Tap name -> block index: the ends of stages 1, 2, 4 and the last block."""
    ends = list(itertools.accumulate(r for *_, r in lite_stages(arch)))
    return {"feat_s4": ends[1] - 1, "feat_s8": ends[2] - 1, "feat_s16": ends[4] - 1, "feat_s32": ends[-1] - 1}


def lite_param_shapes(arch: str, classes: int = 1000) -> "collections.OrderedDict[str, Tuple[tuple, str]]":
    """EfficientNet-PyTorch Lite state-dict names -> (shape, kind), in the checkpoint's order."""
    spec = collections.OrderedDict()

    def bn(p, c):
        for s in ("weight", "bias", "running_mean", "running_var"):
            spec[f"{p}.{s}"] = ((c,), "bn_" + s)
        spec[f"{p}.num_batches_tracked"] = ((), "count")

    spec["_conv_stem.weight"] = ((LITE0_STEM, 3, 3, 3), "conv")
    bn("_bn0", LITE0_STEM)
    blocks = lite_blocks(arch)
    for n, b in enumerate(blocks):
        p = f"_blocks.{n}"
        mid = b["cin"] * b["expand"]
        if b["expand"] != 1:
            spec[f"{p}._expand_conv.weight"] = ((mid, b["cin"], 1, 1), "conv")
            bn(f"{p}._bn0", mid)
        spec[f"{p}._depthwise_conv.weight"] = ((mid, 1, b["k"], b["k"]), "conv")
        bn(f"{p}._bn1", mid)
        spec[f"{p}._project_conv.weight"] = ((b["cout"], mid, 1, 1), "conv")
        bn(f"{p}._bn2", b["cout"])
    spec["_conv_head.weight"] = ((LITE0_HEAD, blocks[-1]["cout"], 1, 1), "conv")
    bn("_bn1", LITE0_HEAD)
    spec["_fc.weight"] = ((classes, LITE0_HEAD), "fc_weight")
    spec["_fc.bias"] = ((classes,), "fc_bias")
    return spec


def lite0_param_shapes(classes: int = 1000) -> "collections.OrderedDict[str, Tuple[tuple, str]]":
    return lite_param_shapes("efficientnet-lite0", classes)


def efficientnet_lite_forward(arch: str, sd: StateDict, x: np.ndarray) -> Dict[str, np.ndarray]:
    """EfficientNet-Lite0/1/2 at inference. x [N, 3, H, W] -> see module doc."""
    eps = LITE0_EPS
    feats = {}
    x = conv2d(x, sd["_conv_stem.weight"], 2, tf_same_pads(x.shape[2:], 3, 2))
    x = relu6(batch_norm(x, sd, "_bn0", eps))
    taps = {v: k for k, v in lite_taps(arch).items()}
    for n, b in enumerate(lite_blocks(arch)):
        p = f"_blocks.{n}"
        inp = x
        if b["expand"] != 1:
            x = relu6(batch_norm(conv2d(x, sd[f"{p}._expand_conv.weight"]), sd, f"{p}._bn0", eps))
        x = conv2d(x, sd[f"{p}._depthwise_conv.weight"], b["stride"],
                   tf_same_pads(x.shape[2:], b["k"], b["stride"]), groups=x.shape[1])
        x = relu6(batch_norm(x, sd, f"{p}._bn1", eps))
        x = batch_norm(conv2d(x, sd[f"{p}._project_conv.weight"]), sd, f"{p}._bn2", eps)
        if b["skip"]:
            x = x + inp
        if n in taps:
            feats[taps[n]] = x
    x = relu6(batch_norm(conv2d(x, sd["_conv_head.weight"]), sd, "_bn1", eps))
    emb = x.mean(axis=(2, 3))
    return {"logits": linear(emb, sd["_fc.weight"], sd["_fc.bias"]), "embedding": emb, **feats}


def efficientnet_lite0_forward(sd: StateDict, x: np.ndarray) -> Dict[str, np.ndarray]:
    return efficientnet_lite_forward("efficientnet-lite0", sd, x)


# ------------------------------------------------------------------ registry, weights

ARCHS = {
    "resnet18": (resnet18_param_shapes, resnet18_forward),
    **{arch: (functools.partial(lite_param_shapes, arch), functools.partial(efficientnet_lite_forward, arch))
       for arch in LITE_VARIANTS},
}


def forward(arch: str, sd: StateDict, x: np.ndarray) -> Dict[str, np.ndarray]:
    return ARCHS[arch][1](sd, x)


def check_state_dict(arch: str, sd: StateDict) -> int:
    """Raise if names or shapes disagree with the architecture; return the class count."""
    classes = sd["fc.weight" if arch == "resnet18" else "_fc.weight"].shape[0]
    spec = ARCHS[arch][0](classes)
    missing = [k for k, (_, kind) in spec.items() if k not in sd and kind != "count"]
    extra = [k for k in sd if k not in spec]
    bad = [f"{k}: file {sd[k].shape}, expected {shape}" for k, (shape, kind) in spec.items()
           if k in sd and tuple(sd[k].shape) != tuple(shape)]
    if missing or extra or bad:
        raise ValueError(f"{arch} weights do not match: missing {missing[:5]}, unexpected "
                         f"{extra[:5]}, shape mismatches {bad[:5]}")
    return classes


def random_weights(arch: str, seed: int, classes: int = 1000) -> "collections.OrderedDict[str, np.ndarray]":
    """Seeded random weights with the architecture's names and shapes (float32).

    Convolutions: N(0, 2/fan_in) (Kaiming, fan_in = C/groups*kh*kw) so activations stay
    O(1), except ResNet's 1x1 downsample convs, N(0, 1/fan_in): no ReLU follows them, and
    with the Kaiming gain the sums grew ~3x over the network; BN: gamma U(0.8, 1.2), beta N(0, 0.1), running_mean N(0, 0.1), running_var
    U(0.5, 1.5) (so folding BN is exercised with non-trivial numbers); the last BN of a
    residual branch gets gamma * 0.5 so the sums do not grow with depth; fc:
    N(0, 1/fan_in), bias N(0, 0.01); num_batches_tracked = 0 (int64).
    """
    rng = np.random.default_rng(seed)
    out = collections.OrderedDict()
    for name, (shape, kind) in ARCHS[arch][0](classes).items():
        if kind in ("conv", "conv_linear"):
            fan_in = int(np.prod(shape[1:]))
            gain = 2.0 if kind == "conv" else 1.0
            a = rng.standard_normal(shape) * math.sqrt(gain / fan_in)
        elif kind == "bn_weight":
            a = rng.uniform(0.8, 1.2, shape)
            if name.endswith((".bn2.weight", "._bn2.weight")):
                a *= 0.5
        elif kind in ("bn_bias", "bn_running_mean"):
            a = rng.standard_normal(shape) * 0.1
        elif kind == "bn_running_var":
            a = rng.uniform(0.5, 1.5, shape)
        elif kind == "fc_weight":
            a = rng.standard_normal(shape) * math.sqrt(1.0 / shape[1])
        elif kind == "fc_bias":
            a = rng.standard_normal(shape) * 0.01
        elif kind == "count":
            out[name] = np.array(0, np.int64)
            continue
        else:
            raise AssertionError(kind)
        out[name] = a.astype(np.float32)
    return out


# ------------------------------------------------------------------ images

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def resize_bilinear(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Plain bilinear resize of an [H, W, C] image, half-pixel centres, no antialiasing.

    Source coordinate of output pixel i: (i + 0.5) * H / out_h - 0.5, clamped to [0, H-1]
    (PyTorch's align_corners=False without antialias). Returns float64 in the input's range.
    """
    img = np.asarray(img, np.float64)
    h, w = img.shape[:2]

    def axis(n_out, n_in):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    y0, y1, fy = axis(out_h, h)
    x0, x1, fx = axis(out_w, w)
    top = img[y0][:, x0] * (1 - fx)[None, :, None] + img[y0][:, x1] * fx[None, :, None]
    bot = img[y1][:, x0] * (1 - fx)[None, :, None] + img[y1][:, x1] * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bot * fy[:, None, None]


def preprocess(arch: str, img_uint8: np.ndarray, size: int = 224) -> np.ndarray:
    """[H, W, 3] uint8 RGB -> [1, 3, size, size] float32 network input.

    Bilinear resize of the whole image (see resize_bilinear), then Lite0/1/2:
    (x/255-0.5)/0.5; ResNet-18: ImageNet mean/std.
    """
    x = resize_bilinear(img_uint8[..., :3], size, size) / 255.0
    if arch in LITE_VARIANTS:
        x = (x - 0.5) / 0.5
    else:
        x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return x.transpose(2, 0, 1)[None].astype(np.float32)


# A few ImageNet-1k class indices, only those needed to read the photo results.
KNOWN_CLASSES = {
    281: "tabby cat", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat",
    285: "Egyptian cat", 287: "lynx", 504: "coffee mug", 967: "espresso", 968: "cup",
    812: "space shuttle", 657: "missile", 744: "projectile, missile",
}


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


PHOTOS = ["chelsea", "coffee", "astronaut", "rocket"]  # skimage.data sample photographs


def photo_batch(arch: str = "efficientnet-lite0", size: int = 224, arrays: List[str] = None) -> np.ndarray:
    """The PHOTOS, preprocessed for `arch`, as one float32 [4, 3, size, size] batch.

    `arrays`: the photos as .npy files of uint8 [H, W, 3] instead (decoded elsewhere, for a
    machine without scikit-image; its wheel holds them as skimage/data/*.png, rocket.jpg).
    """
    if arrays:
        images = [np.load(a) for a in arrays]
    else:
        from skimage import data

        images = [getattr(data, p)() for p in PHOTOS]
    return np.concatenate([preprocess(arch, image, size) for image in images])


def classify_photos(weights: str, arch: str = "efficientnet-lite0", save_input: str = None, size: int = None,
                    arrays: List[str] = None, save_outputs: str = None) -> List[dict]:
    """Top-5 on scikit-image's sample photographs; prints a table, returns the rows."""
    sd = torch_pickle.load_weights(weights)
    check_state_dict(arch, sd)
    photos = [os.path.splitext(os.path.basename(a))[0] for a in arrays] if arrays else PHOTOS
    size = size or (LITE_VARIANTS[arch][2] if arch in LITE_VARIANTS else 224)
    x = photo_batch(arch, size, arrays)
    if save_input:
        np.save(save_input, x)
    outputs = forward(arch, sd, x)
    if save_outputs:
        np.savez(save_outputs, **outputs)
    prob = softmax(outputs["logits"])
    rows = []
    for p, pr in zip(photos, prob):
        top = np.argsort(-pr)[:5]
        rows.append({"photo": p, "top5": [[int(i), round(float(pr[i]), 4)] for i in top]})
        desc = ", ".join(f"{i} {KNOWN_CLASSES.get(int(i), '')} {pr[i]:.3f}".replace("  ", " ") for i in top)
        print(f"{p:10s} {desc}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description="numpy reference backbones")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("random", help="write seeded random weights as safetensors")
    r.add_argument("--arch", choices=sorted(ARCHS), required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--classes", type=int, default=1000)
    r.add_argument("--out", required=True)
    ph = sub.add_parser("photos", help="top-5 of a Lite model on scikit-image photographs")
    ph.add_argument("--weights", required=True)
    ph.add_argument("--arch", choices=sorted(LITE_VARIANTS), default="efficientnet-lite0")
    ph.add_argument("--size", type=int, help="input side (default: the variant's 224 / 240 / 260)")
    ph.add_argument("--photo-arrays", nargs="+", metavar="NPY",
                    help="the photos as uint8 [H, W, 3] .npy files instead of skimage.data")
    ph.add_argument("--json", action="store_true", help="also print the rows as one JSON line")
    ph.add_argument("--save-input", metavar="NPY", help="write the preprocessed batch [N,3,size,size]")
    ph.add_argument("--save-outputs", metavar="NPZ", help="write logits, embedding and feature maps (NCHW)")
    a = ap.parse_args()
    if a.cmd == "random":
        sd = random_weights(a.arch, a.seed, a.classes)
        torch_pickle.save_safetensors(a.out, sd, {"arch": a.arch, "seed": str(a.seed),
                                                   "generator": "reference_nets.random_weights"})
        print(f"wrote {a.out}: {len(sd)} tensors")
    else:
        rows = classify_photos(a.weights, a.arch, save_input=a.save_input, size=a.size, arrays=a.photo_arrays,
                               save_outputs=a.save_outputs)
        if a.json:
            print(json.dumps(rows))


if __name__ == "__main__":
    main()
