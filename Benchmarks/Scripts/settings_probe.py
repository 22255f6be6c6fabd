#!/usr/bin/env python3
"""Scores of several scorer option sets on the development data, for choosing defaults.

Runs `vinspect evaluate --json` once per (data set, shots, option set) and keeps each JSON
(per seed: held-out good scores, the test scores, the engine's threshold) in OUT, skipping
runs already there. `settings_analysis.py` then compares single sets, ensembles and
threshold rules leave-one-data-set-out from these files alone.

    python3 Benchmarks/Scripts/settings_probe.py --vinspect .build/release/vinspect \\
        --backbone lite0.vimodel --data ../shared/data --out /tmp/probe --shots 4 --seeds 0,1,2
"""
import argparse, os, subprocess, sys, time

OPTION_SETS = {
    "default": [],
    "gauss": ["--mode", "gaussian", "--layers", "2", "--top-fraction", "0.05"],
    "s320a1": ["--image-size", "320", "--aggregation", "1"],
    "rot": ["--augment", "rotate45Mirrored", "--aggregation", "1"],
    "rot320": ["--augment", "rotate45Mirrored", "--aggregation", "1", "--image-size", "320"],
    "gaussmir": ["--mode", "gaussian", "--layers", "2", "--top-fraction", "0.05", "--augment", "mirrors"],
    "a1": ["--aggregation", "1"],
    "g320": ["--mode", "gaussian", "--layers", "2", "--top-fraction", "0.05", "--image-size", "320"],
    "rot320b4k": ["--augment", "rotate45Mirrored", "--aggregation", "1", "--image-size", "320", "--max-bank", "4096"],
}
DATA = ["mvtec-screw", "magnetic-tile", "elpv-mono"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vinspect", default=".build/release/vinspect")
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", required=True)
    ap.add_argument("--shots", default="4", help="K, or 'all'")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--sets", default=",".join(OPTION_SETS))
    ap.add_argument("--datasets", default=",".join(DATA))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in args.sets.split(","):
        for data in args.datasets.split(","):
            target = os.path.join(args.out, f"{data}_{args.shots}_{name}.json")
            if os.path.exists(target):
                continue
            command = [args.vinspect, "evaluate", os.path.join(args.data, data), "--backbone", args.backbone,
                       "--seeds", args.seeds if args.shots != "all" else args.seeds.split(",")[0], "--json"]
            if args.shots != "all":
                command += ["--shots", args.shots]
            command += OPTION_SETS[name]
            start = time.time()
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                print(f"{target}: failed\n{result.stderr}", file=sys.stderr)
                continue
            with open(target + ".tmp", "w") as f:
                f.write(result.stdout)
            os.replace(target + ".tmp", target)
            print(f"{target}: {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
