#!/usr/bin/env python3
"""k-NN against a memory bank: the engine's MemoryBank.nearest (Benchmarks/Sources/knn-bench)
next to faiss-cpu's exact IndexFlatL2 search and numpy (e2e_peer.nearest_sq: blocked matmul,
|q|^2 + |b|^2 - 2 q.b), on the same data, interleaved, in one run.

  python3 knn_bench.py [--knn-bench ../.build/release/knn-bench] [--bank 16384] [--queries 784]
                       [--dimension 384] [--seed 0] [--threads 1,2] [--rounds 5] [--repeats 7]
                       [--workdir /tmp/vinspect-knn] [--json results.json]

Data: bank [B, D] and queries [Q, D], float32 N(0, 1) from numpy's default_rng(seed) (bank
first, then queries), written to WORKDIR/bank.npy and queries.npy (never commit them);
knn-bench reads them with its own .npy reader.

Timing: every contender runs in its own process per thread count (OpenBLAS reads its thread
count once, at load), times k = 1 search of all queries `--repeats` times after one
warm-up run and reports the median. The driver runs ours, faiss, numpy, ours, faiss,
numpy, ... for `--rounds` rounds and reports the median over rounds of those medians, so
that load from other processes falls on all three alike. /proc/loadavg is printed before
and after. The process CPU time of the search (all threads) is reported too: on a loaded
machine the 1-thread CPU-time ratio is the steadier figure (with 2 threads it also counts
spin-waiting).

Threads: ours ThreadPool(threadCount: T) (1: the calling thread only); faiss
omp_set_num_threads(T) with OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = T; numpy
OPENBLAS_NUM_THREADS = T.

Check: every contender's nearest index against an exact float64 search done here; a
mismatch counts as a near-tie when the chosen row's float64 distance is within 1e-5
(relative) of the true minimum.

`knn_bench.py peer --engine faiss|numpy --threads T --workdir D --repeats R` is the peer
process the driver starts; it prints one JSON object and writes its indices.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from machine import cpu_name  # noqa: E402


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return f.read().strip()


def peer(a) -> None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    import numpy as np

    bank = np.load(os.path.join(a.workdir, "bank.npy"))
    queries = np.load(os.path.join(a.workdir, "queries.npy"))
    if a.engine == "faiss":
        import faiss

        faiss.omp_set_num_threads(a.threads)
        index = faiss.IndexFlatL2(bank.shape[1])
        index.add(bank)

        def search():
            d, i = index.search(queries, 1)
            return d[:, 0], i[:, 0]
        version = faiss.__version__
    else:
        sys.path.insert(0, HERE)
        import e2e_peer as E

        E.import_numeric()
        norms = np.einsum("ij,ij->i", bank, bank)

        def search():
            return E.nearest_sq(queries, bank, norms, with_indices=True)
        version = np.__version__
    d, i = search()  # warm-up
    times, cpu = [], []
    for _ in range(a.repeats):
        c, t = time.process_time(), time.perf_counter()
        d, i = search()
        times.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    np.save(os.path.join(a.workdir, f"{a.engine}_t{a.threads}_indices.npy"), np.asarray(i, np.int32))
    q, b, dim = queries.shape[0], bank.shape[0], bank.shape[1]
    med = statistics.median(times)
    print(json.dumps({"engine": a.engine, "version": version, "threads": a.threads, "ms": [round(t, 3) for t in times],
                      "ms_median": round(med, 3), "ms_best": round(min(times), 3),
                      "cpu_ms_median": round(statistics.median(cpu), 3), "gflop_per_s": round(2.0 * q * b * dim / (med * 1e-3) / 1e9, 2)}))


def run_json(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"knn_bench: {' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def driver(a) -> None:
    import numpy as np

    os.makedirs(a.workdir, exist_ok=True)
    before = loadavg()
    print(f"CPU {cpu_name()} ({os.cpu_count()} cores); loadavg before: {before}")
    rng = np.random.default_rng(a.seed)
    bank = rng.standard_normal((a.bank, a.dimension), dtype=np.float32)
    queries = rng.standard_normal((a.queries, a.dimension), dtype=np.float32)
    np.save(os.path.join(a.workdir, "bank.npy"), bank)
    np.save(os.path.join(a.workdir, "queries.npy"), queries)
    print(f"data: bank [{a.bank}, {a.dimension}], queries [{a.queries}, {a.dimension}], float32 N(0,1), "
          f"numpy default_rng({a.seed}); k = 1; {a.rounds} rounds x {a.repeats} repeats (median of medians)")

    threads = [int(t) for t in a.threads.split(",") if t.strip()]
    engines = ["ours", "faiss", "numpy"]
    results = {t: {e: [] for e in engines} for t in threads}
    cpu = {t: {e: [] for e in engines} for t in threads}
    versions = {}
    for t in threads:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t))
        for r in range(a.rounds):
            for e in engines:
                if e == "ours":
                    res = run_json([a.knn_bench, "--bank", os.path.join(a.workdir, "bank.npy"),
                                    "--queries", os.path.join(a.workdir, "queries.npy"), "--threads", str(t),
                                    "--repeats", str(a.repeats),
                                    "--save-indices", os.path.join(a.workdir, f"ours_t{t}_indices.npy")], env)
                else:
                    res = run_json([sys.executable, os.path.abspath(__file__), "peer", "--engine", e, "--threads", str(t),
                                    "--workdir", a.workdir, "--repeats", str(a.repeats)], env)
                    versions[e] = res["version"]
                results[t][e].append(res["ms_median"])
                cpu[t][e].append(res["cpu_ms_median"])
            print(f"  threads {t} round {r + 1}: " + ", ".join(f"{e} {results[t][e][-1]:.1f} ms" for e in engines)
                  + f"  (loadavg {loadavg().split()[0]})", flush=True)

    # Exact float64 reference, in blocks of queries.
    b64 = bank.astype(np.float64)
    true_d = np.empty(a.queries)
    all_d = []
    for s in range(0, a.queries, 128):
        q = queries[s:s + 128].astype(np.float64)
        d = (q * q).sum(1)[:, None] + (b64 * b64).sum(1)[None, :] - 2 * q @ b64.T
        all_d.append(d)
        true_d[s:s + 128] = d.min(1)
    dmat = np.concatenate(all_d)
    true_i = dmat.argmin(1)
    check = {}
    for t in threads:
        for e in engines:
            idx = np.load(os.path.join(a.workdir, f"{e}_t{t}_indices.npy")).astype(np.int64)
            same = idx == true_i
            chosen = dmat[np.arange(a.queries), idx]
            gap = np.abs(chosen - true_d) / np.maximum(np.abs(true_d), 1e-30)
            check[f"{e}_t{t}"] = {"same_index": int(same.sum()), "near_ties": int(((~same) & (gap <= 1e-5)).sum()),
                                  "wrong": int(((~same) & (gap > 1e-5)).sum()), "max_rel_gap": float(gap.max())}
    after = loadavg()

    flops = 2.0 * a.queries * a.bank * a.dimension
    print(f"\nk-NN, {a.queries} queries x [{a.bank}, {a.dimension}] bank, k = 1 ({flops / 1e9:.2f} GFLOP); "
          f"faiss {versions.get('faiss')}, numpy {versions.get('numpy')}")
    print("| threads | ours ms | faiss ms | numpy ms | ours GFLOP/s | ours/faiss | ours/numpy "
          "| CPU ms ours / faiss / numpy | CPU-time ratio ours/faiss, ours/numpy | same index as float64 (ours / faiss / numpy) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    table = []
    for t in threads:
        med = {e: statistics.median(results[t][e]) for e in engines}
        row = {"threads": t, **{f"{e}_ms": round(med[e], 2) for e in engines},
               "ours_gflop_per_s": round(flops / (med["ours"] * 1e-3) / 1e9, 1),
               "ours_over_faiss": round(med["faiss"] / med["ours"], 3),
               "ours_over_numpy": round(med["numpy"] / med["ours"], 3),
               "rounds": {e: results[t][e] for e in engines},
               "cpu_ms": {e: statistics.median(cpu[t][e]) for e in engines}}
        table.append(row)
        agree = " / ".join(f"{check[f'{e}_t{t}']['same_index']}" + (f" (+{check[f'{e}_t{t}']['near_ties']} ties)"
                                                                     if check[f'{e}_t{t}']['near_ties'] else "")
                           for e in engines)
        print(f"| {t} | {med['ours']:.1f} | {med['faiss']:.1f} | {med['numpy']:.1f} | {row['ours_gflop_per_s']} | "
              f"{row['ours_over_faiss']:.2f} | {row['ours_over_numpy']:.2f} | "
              + " / ".join(f"{row['cpu_ms'][e]:.0f}" for e in engines) + " | "
              + f"{row['cpu_ms']['faiss'] / row['cpu_ms']['ours']:.2f}, {row['cpu_ms']['numpy'] / row['cpu_ms']['ours']:.2f} | "
              + f"{agree} of {a.queries} |")
    print("(ratios are throughput, ours/peer = peer time / our time: above 1 means ours is faster)")
    print(f"loadavg after: {after}")
    if any(c["wrong"] for c in check.values()):
        print("WARNING: some contender returned a row that is not the nearest: " + json.dumps(check))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"cpu": cpu_name(), "loadavg_before": before, "loadavg_after": after, "seed": a.seed,
                       "shape": {"bank": [a.bank, a.dimension], "queries": [a.queries, a.dimension]},
                       "versions": versions, "table": table, "check": check}, f, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    if len(sys.argv) > 1 and sys.argv[1] == "peer":
        ap.add_argument("mode")
        ap.add_argument("--engine", choices=["faiss", "numpy"], required=True)
        ap.add_argument("--threads", type=int, default=1)
        ap.add_argument("--workdir", required=True)
        ap.add_argument("--repeats", type=int, default=7)
        peer(ap.parse_args())
        return
    default_bench = os.path.normpath(os.path.join(HERE, "..", ".build", "release", "knn-bench"))
    ap.add_argument("--knn-bench", default=default_bench, help="the built knn-bench executable")
    ap.add_argument("--bank", type=int, default=16384)
    ap.add_argument("--queries", type=int, default=784)
    ap.add_argument("--dimension", type=int, default=384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--workdir", default="/tmp/vinspect-knn")
    ap.add_argument("--json")
    driver(ap.parse_args())


if __name__ == "__main__":
    main()
