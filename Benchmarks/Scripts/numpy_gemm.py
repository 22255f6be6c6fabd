#!/usr/bin/env python3
"""numpy (OpenBLAS) sgemm peer for gemm-bench.

Usage: numpy_gemm.py M N K [M N K ...]

The thread count is taken from OPENBLAS_NUM_THREADS, which the caller sets before the
process starts (OpenBLAS reads it once, at load time). Prints one JSON object per line:
first {"kernel": ..., "config": ..., "threads": ..., "numpy": ...}, then for each size
{"m": M, "n": N, "k": K, "gflops": best-of-repeats GFLOP/s}. Inputs are float32, seeded.
"""
import ctypes
import glob
import json
import os
import sys
import time

import numpy as np


def blas_info():
    """Which OpenBLAS kernel (core type) numpy uses at run time, and how many threads."""
    try:
        from threadpoolctl import threadpool_info  # preferred when installed

        for entry in threadpool_info():
            if entry.get("user_api") == "blas":
                return {"kernel": entry.get("architecture"), "config": entry.get("version"),
                        "threads": entry.get("num_threads"), "source": "threadpoolctl"}
    except ImportError:
        pass
    # numpy's wheels bundle scipy-openblas; ask it directly through ctypes.
    libdir = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libdir, "libscipy_openblas*.so*")):
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "")):
            try:
                corename = getattr(lib, prefix + "get_corename" + suffix)
                config = getattr(lib, prefix + "get_config" + suffix)
                threads = getattr(lib, prefix + "get_num_threads" + suffix)
            except AttributeError:
                continue
            corename.restype = ctypes.c_char_p
            config.restype = ctypes.c_char_p
            return {"kernel": corename().decode(), "config": config().decode().strip(),
                    "threads": threads(), "source": "ctypes"}
    # Last resort: the build-time configuration that numpy.show_config reports.
    cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return {"kernel": None, "config": cfg.get("openblas configuration"), "threads": None,
            "source": "numpy.show_config"}


def measure(m, n, k, seconds=1.0):
    rng = np.random.default_rng(42)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b, out=c)  # warm-up: thread start, page faults
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return 2.0 * m * n * k / best / 1e9


def main(argv):
    sizes = [int(x) for x in argv[1:]]
    if not sizes or len(sizes) % 3:
        sys.exit("usage: numpy_gemm.py M N K [M N K ...]")
    info = blas_info()
    info["numpy"] = np.__version__
    print(json.dumps(info), flush=True)
    for i in range(0, len(sizes), 3):
        m, n, k = sizes[i:i + 3]
        print(json.dumps({"m": m, "n": n, "k": k, "gflops": measure(m, n, k)}), flush=True)


if __name__ == "__main__":
    main(sys.argv)
