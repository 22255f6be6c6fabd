#!/usr/bin/env python3
"""Defect typing through `vinspect train --classes` + `vinspect inspect`, with and without
`--refine-types` (the README's transductive-typing figures).

For each seed and shot count, K images per class folder are drawn with
`random.Random(10 * seed + K)` as the support, the next `--queries` as the line; a
classes-only model is trained on the support and the line inspected with `--refine-types 0`
and `--refine-types 3`; the share of line images given their own folder's type is printed.

    python3 Benchmarks/Scripts/refine_types.py ../shared/data/neu-cls --backbone lite0.vimodel
    python3 Benchmarks/Scripts/refine_types.py ../shared/data/magnetic-tile --exclude MT_Free --images Imgs --queries 15 --backbone lite0.vimodel
"""
import argparse, json, os, random, subprocess, tempfile


def main():
    p = argparse.ArgumentParser()
    p.add_argument("classes")
    p.add_argument("--vinspect", default=".build/release/vinspect")
    p.add_argument("--backbone", default="default")
    p.add_argument("--exclude", default="")
    p.add_argument("--images", default="", help="sub-folder of each class holding the images (magnetic tile: Imgs)")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--shots", default="1,5")
    a = p.parse_args()
    names = sorted(c for c in os.listdir(a.classes) if os.path.isdir(os.path.join(a.classes, c)) and c not in a.exclude.split(","))
    for shots in map(int, a.shots.split(",")):
        for seed in map(int, a.seeds.split(",")):
            root = tempfile.mkdtemp(prefix="refine-types-")
            rnd = random.Random(10 * seed + shots)
            for c in names:
                folder = os.path.join(a.classes, c, a.images)
                files = sorted(f for f in os.listdir(folder) if f.lower().endswith((".jpg", ".jpeg")) or
                               (f.lower().endswith(".png") and not os.path.exists(os.path.join(folder, f[:-4] + ".jpg"))))
                rnd.shuffle(files)
                for part, chosen in (("support", files[:shots]), ("query", files[shots:shots + a.queries])):
                    os.makedirs(os.path.join(root, part, c))
                    for f in chosen:
                        os.symlink(os.path.abspath(os.path.join(folder, f)), os.path.join(root, part, c, f))
            model = os.path.join(root, "m.vimodel")
            subprocess.run([a.vinspect, "train", "--classes", os.path.join(root, "support"), "--backbone", a.backbone,
                            "--output", model], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            line = []
            for steps in (0, 3):
                report = os.path.join(root, "r%d.jsonl" % steps)
                subprocess.run([a.vinspect, "inspect", model, os.path.join(root, "query"), "--refine-types", str(steps),
                                "--report", report, "--quiet", "--jobs", "2"], stderr=subprocess.DEVNULL)
                records = [json.loads(l) for l in open(report)]
                right = sum(r["defect_type"] == r["path"].split("/")[-2] for r in records)
                line.append("%.2f %%" % (100 * right / len(records)))
            print("%d shot(s), seed %d: alone %s, together %s (%d line images)" % (shots, seed, line[0], line[1], len(records)))


if __name__ == "__main__":
    main()
