#!/usr/bin/env python3
"""Writes the codec fixtures: small procedural images in every PNG and JPEG variant the
decoder must handle, and a set of deliberately broken files.

    python3 Fixtures/Scripts/make_codec_fixtures.py      # writes Fixtures/codec, Fixtures/broken

PNG files are written by the minimal encoder below (every colour type, bit depths 1-16,
palette, tRNS, Adam7 interlacing: more variants than Pillow's writer offers). JPEG files
are written by Pillow. The images are generated from a fixed seed, so the output is the
same on every run with the same numpy and Pillow. After changing anything here, run
golden.py to refresh the checksums the tests compare against.
"""
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CODEC = os.path.join(ROOT, "codec")
BROKEN = os.path.join(ROOT, "broken")

# Odd sizes on purpose: rows that are not a multiple of 8 pixels exercise the sub-byte
# packing and the partial Adam7 passes.
W, H = 37, 29


def texture(seed, width=W, height=H):
    """A machined-metal-like texture in [0, 1]: brushed stripes, a bright circular
    part with a dark hole, smooth noise, and a thin scratch."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    stripes = 0.5 + 0.15 * np.sin(x * 0.9 + rng.uniform(0, 6)) + 0.05 * np.sin(y * 0.3)
    coarse = rng.normal(0, 1, (height // 4 + 2, width // 4 + 2))
    smooth = np.kron(coarse, np.ones((4, 4)))[:height, :width] * 0.05
    cx, cy, r = width * 0.55, height * 0.5, min(width, height) * 0.35
    d = np.hypot(x - cx, y - cy)
    part = np.where(d < r, 0.25, 0.0) - np.where(d < r * 0.35, 0.45, 0.0)
    scratch = np.where(np.abs((y - 0.4 * x) - 3) < 0.7, -0.3, 0.0)
    return np.clip(stripes + smooth + part + scratch, 0, 1)


def colour(seed):
    t = texture(seed)
    return np.stack([t, np.clip(t * 0.8 + 0.1, 0, 1), np.clip(1 - t * 0.7, 0, 1)], axis=-1)


def quantise(values, depth):
    return np.round(values * ((1 << depth) - 1)).astype(np.uint16)


# --- A minimal PNG encoder ---------------------------------------------------------------

def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def pack_row(samples, depth):
    """One scanline's samples (a flat uint16 array) to bytes at the given bit depth."""
    if depth == 16:
        return samples.astype(">u2").tobytes()
    if depth == 8:
        return samples.astype(np.uint8).tobytes()
    per_byte = 8 // depth
    out = bytearray()
    for i in range(0, len(samples), per_byte):
        byte = 0
        group = samples[i:i + per_byte]
        for j, value in enumerate(group):
            byte |= int(value) << (8 - depth * (j + 1))
        out.append(byte)
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_bytes(samples, colour_type, depth, palette=None, trns=None, interlace=False):
    """samples: [H, W, C] uint16 array already at `depth` (palette: indices)."""
    height, width = samples.shape[:2]
    flat = samples.reshape(height, width, -1)

    def scanlines(image):
        raw = bytearray()
        for row in image:
            raw.append(0)  # filter type None: the decoder's unfiltering is tested by Pillow-made files
            raw += pack_row(row.reshape(-1), depth)
        return bytes(raw)

    if interlace:
        data = b""
        for x0, y0, dx, dy in ADAM7:
            sub = flat[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                data += scanlines(sub)
    else:
        data = scanlines(flat)
    out = b"\x89PNG\r\n\x1a\n"
    out += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 1 if interlace else 0))
    if palette is not None:
        out += chunk(b"PLTE", bytes(np.asarray(palette, dtype=np.uint8).reshape(-1)))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    out += chunk(b"IDAT", zlib.compress(data, 9))
    out += chunk(b"IEND", b"")
    return out


def write(path, data):
    with open(path, "wb") as handle:
        handle.write(data)


def make_png_variants():
    grey = texture(1)
    rgb = colour(2)
    alpha = np.clip(texture(3) * 1.3, 0, 1)
    for depth in (1, 2, 4, 8, 16):
        write(os.path.join(CODEC, f"grey{depth}.png"), png_bytes(quantise(grey, depth)[..., None], 0, depth))
    write(os.path.join(CODEC, "grey1-interlaced.png"), png_bytes(quantise(grey, 1)[..., None], 0, 1, interlace=True))
    write(os.path.join(CODEC, "grey8-interlaced.png"), png_bytes(quantise(grey, 8)[..., None], 0, 8, interlace=True))
    for depth in (8, 16):
        ga = np.stack([quantise(grey, depth), quantise(alpha, depth)], axis=-1)
        write(os.path.join(CODEC, f"grey-alpha{depth}.png"), png_bytes(ga, 4, depth))
        write(os.path.join(CODEC, f"rgb{depth}.png"), png_bytes(quantise(rgb, depth), 2, depth))
        rgba = np.concatenate([quantise(rgb, depth), quantise(alpha, depth)[..., None]], axis=-1)
        write(os.path.join(CODEC, f"rgba{depth}.png"), png_bytes(rgba, 6, depth))
    rgba16 = np.concatenate([quantise(rgb, 16), quantise(alpha, 16)[..., None]], axis=-1)
    write(os.path.join(CODEC, "rgba16-interlaced.png"), png_bytes(rgba16, 6, 16, interlace=True))
    write(os.path.join(CODEC, "rgb8-interlaced.png"), png_bytes(quantise(rgb, 8), 2, 8, interlace=True))
    # Palettes: a colour ramp with as many entries as the depth allows.
    for depth in (1, 2, 4, 8):
        n = 1 << depth
        ramp = np.linspace(0, 1, n)
        palette = np.stack([ramp * 255, (1 - ramp) * 200 + 20, np.full(n, 90.0)], axis=-1).round()
        indices = quantise(grey, depth)[..., None]
        write(os.path.join(CODEC, f"palette{depth}.png"), png_bytes(indices, 3, depth, palette=palette))
        if depth == 4:
            write(os.path.join(CODEC, "palette4-interlaced.png"),
                  png_bytes(indices, 3, depth, palette=palette, interlace=True))
            trns = bytes(int(v) for v in np.linspace(0, 255, n).round())
            write(os.path.join(CODEC, "palette4-trns.png"), png_bytes(indices, 3, depth, palette=palette, trns=trns))
    # Single-colour transparency for grey and RGB.
    grey8 = quantise(grey, 8)
    key = int(grey8[0, 0])
    write(os.path.join(CODEC, "grey8-trns.png"), png_bytes(grey8[..., None], 0, 8, trns=struct.pack(">H", key)))
    rgb8 = quantise(rgb, 8)
    r, g, b = (int(v) for v in rgb8[0, 0])
    write(os.path.join(CODEC, "rgb8-trns.png"), png_bytes(rgb8, 2, 8, trns=struct.pack(">HHH", r, g, b)))
    # A file written by Pillow too: zlib's adaptive filters (Sub, Up, Average, Paeth).
    Image.fromarray(quantise(colour(4), 8).astype(np.uint8), "RGB").save(
        os.path.join(CODEC, "rgb8-filtered.png"), optimize=True)


def make_jpeg_variants():
    grey = (texture(5, 61, 45) * 255).round().astype(np.uint8)
    rgb = (np.stack([texture(6, 61, 45), texture(7, 61, 45), texture(8, 61, 45)], -1) * 255).round().astype(np.uint8)
    Image.fromarray(grey, "L").save(os.path.join(CODEC, "grey-baseline.jpg"), quality=90)
    Image.fromarray(grey, "L").save(os.path.join(CODEC, "grey-progressive.jpg"), quality=90, progressive=True)
    Image.fromarray(rgb, "RGB").save(os.path.join(CODEC, "rgb-baseline-420.jpg"), quality=85, subsampling=2)
    Image.fromarray(rgb, "RGB").save(os.path.join(CODEC, "rgb-baseline-444.jpg"), quality=95, subsampling=0)
    Image.fromarray(rgb, "RGB").save(os.path.join(CODEC, "rgb-progressive.jpg"), quality=85, progressive=True)
    Image.fromarray(rgb, "RGB").save(os.path.join(CODEC, "rgb-optimized-restart.jpg"), quality=80,
                                     optimize=True, restart_marker_blocks=4)
    Image.fromarray(rgb, "RGB").convert("CMYK").save(os.path.join(CODEC, "cmyk.jpg"), quality=95)


def make_broken():
    good_png = open(os.path.join(CODEC, "rgb8.png"), "rb").read()
    good_jpg = open(os.path.join(CODEC, "rgb-baseline-420.jpg"), "rb").read()
    write(os.path.join(BROKEN, "empty.png"), b"")
    write(os.path.join(BROKEN, "truncated.png"), good_png[: len(good_png) // 2])
    write(os.path.join(BROKEN, "truncated.jpg"), good_jpg[: len(good_jpg) // 2])
    write(os.path.join(BROKEN, "header-only.jpg"), good_jpg[:200])
    write(os.path.join(BROKEN, "document.png"),
          b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
    write(os.path.join(BROKEN, "notes.jpg"), b"inspection notes: part 17 looked fine\n")
    bad_crc = bytearray(good_png)
    bad_crc[29] ^= 0xFF  # inside the IHDR CRC
    write(os.path.join(BROKEN, "bad-crc.png"), bytes(bad_crc))
    bad_signature = bytearray(good_png)
    bad_signature[1] = ord("Q")
    write(os.path.join(BROKEN, "bad-signature.png"), bytes(bad_signature))
    # A decompression bomb header: 100 000 x 100 000 grey pixels declared, almost no data.
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0))
    bomb += chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")
    write(os.path.join(BROKEN, "huge-dimensions.png"), bomb)
    # The same for JPEG: patch the SOF0 frame size to 60 000 x 60 000.
    jpg = bytearray(good_jpg)
    sof = jpg.find(b"\xff\xc0")
    jpg[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)
    write(os.path.join(BROKEN, "huge-dimensions.jpg"), bytes(jpg))
    zero = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 10, 8, 0, 0, 0, 0))
    zero += chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    write(os.path.join(BROKEN, "zero-width.png"), zero)
    # Scrambled entropy-coded data after a valid header.
    scrambled = bytearray(good_jpg)
    sos = scrambled.find(b"\xff\xda")
    rng = np.random.default_rng(9)
    for i in range(sos + 20, len(scrambled) - 2, 7):
        scrambled[i] = int(rng.integers(0, 255))
    write(os.path.join(BROKEN, "scrambled.jpg"), bytes(scrambled))
    idat = bytearray(good_png)
    start = idat.find(b"IDAT") + 10
    idat[start:start + 8] = b"\x00" * 8
    write(os.path.join(BROKEN, "bad-zlib.png"), bytes(idat))


if __name__ == "__main__":
    os.makedirs(CODEC, exist_ok=True)
    os.makedirs(BROKEN, exist_ok=True)
    make_png_variants()
    make_jpeg_variants()
    make_broken()
    print("wrote", len(os.listdir(CODEC)), "codec fixtures and", len(os.listdir(BROKEN)), "broken files")
