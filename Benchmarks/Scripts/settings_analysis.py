#!/usr/bin/env python3
"""Compares scorer option sets, ensembles of them and threshold rules on the scores that
`settings_probe.py` saved, leave-one-data-set-out. numpy only; reads nothing else.

    python3 Benchmarks/Scripts/settings_analysis.py /tmp/probe/runs --shots 4
    python3 Benchmarks/Scripts/settings_analysis.py --rules screw.json tile.json cells.json

The second form reads `vinspect evaluate --json` reports made with the default settings
(one data set each) and prints, per threshold rule k, each set's gap between the best
single threshold's balanced accuracy and the rule's, the share of good parts passed, and
where new good parts and defects lie on the held-out scale.

For an ensemble, each member's raw score is put on the good parts' scale with the mean and
standard deviation of its held-out good scores (the deviation floored at 5 % of the mean,
as `ScoreNormalizer` does), and the members' normalised scores are averaged. A threshold
rule `k` puts the threshold at mean + k * std of the combined held-out good scores.
"""
import argparse, glob, itertools, json, os
import numpy as np

DATA = ["mvtec-screw", "magnetic-tile", "elpv-mono"]


def auroc(scores, labels):
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = scores[labels], scores[~labels]
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(allv))
    # average ranks for ties
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(allv)); r[order] = ranks
    return (r[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def balanced(scores, labels, t):
    scores, labels = np.asarray(scores), np.asarray(labels, bool)
    return ((scores[labels] >= t).mean() + (scores[~labels] < t).mean()) / 2


def best_balanced(scores, labels):
    scores = np.asarray(scores)
    cands = np.concatenate([np.unique(scores), [np.inf]])
    return max(balanced(scores, labels, t) for t in cands)


def normaliser(good):
    good = np.asarray(good, float)
    m = good.mean(); s = good.std(ddof=1) if len(good) > 1 else 0.0
    return m, max(s, 0.05 * abs(m), 1e-12)


def load(folder, shots):
    runs = {}
    for path in glob.glob(os.path.join(folder, f"*_{shots}_*.json")):
        name = os.path.basename(path)[:-5]
        data, _, opt = name.split("_", 2)
        with open(path) as f:
            doc = json.load(f)
        runs[(data, opt)] = doc
    return runs


COMBINE = "mean"


def combined(runs, data, members, seed_index):
    """Combined held-out and test scores of an ensemble for one seed's run."""
    held, test = [], []
    for m in members:
        r = runs[(data, m)]["runs"][seed_index]
        mu, sd = normaliser(r["heldOutGoodScores"])
        held.append((np.asarray(r["heldOutGoodScores"]) - mu) / sd)
        test.append((np.asarray(r["testScores"]) - mu) / sd)
    f = np.max if COMBINE == "max" else np.mean
    return f(held, axis=0), f(test, axis=0)


def evaluate(runs, data, members, k):
    """Per seed: AUROC, balanced accuracy at rule k, best balanced accuracy."""
    labels = runs[(data, members[0])]["labels"]
    out = []
    for s in range(len(runs[(data, members[0])]["runs"])):
        held, test = combined(runs, data, members, s)
        t = held.mean() + k * (held.std(ddof=1) if len(held) > 1 else 0)
        out.append((auroc(test, labels), balanced(test, labels, t), best_balanced(test, labels)))
    return np.array(out)


def rules(paths, ks):
    """Threshold rules on `vinspect evaluate --json` reports of the default settings."""
    docs = []
    for path in paths:
        with open(path) as f:
            docs.append(json.load(f))
    names = [os.path.basename(d["dataset"].rstrip("/")) for d in docs]
    print("k      " + "  ".join(f"{n:>28s}" for n in names) + "   (gap to the best threshold, good parts passed)")
    for k in ks:
        cells = []
        for doc in docs:
            labels = np.asarray(doc["labels"], bool)
            gaps, passed = [], []
            for run in doc["runs"]:
                held = np.asarray(run["heldOutGoodScores"]); test = np.asarray(run["testScores"])
                t = held.mean() + k * held.std(ddof=1)
                gaps.append(run["bestBalancedAccuracy"] - balanced(test, labels, t))
                passed.append((test[~labels] < t).mean())
            cells.append("%.3f (pass %.2f)" % (np.mean(gaps), np.mean(passed)))
        print("%-6s " % k + "  ".join(f"{c:>28s}" for c in cells))
    print("\nwhere new parts lie, in held-out spreads from the held-out mean (mean over seeds):")
    for name, doc in zip(names, docs):
        labels = np.asarray(doc["labels"], bool)
        rows = []
        for run in doc["runs"]:
            held = np.asarray(run["heldOutGoodScores"]); test = np.asarray(run["testScores"])
            sd = held.std(ddof=1)
            rows.append(((test[~labels].mean() - held.mean()) / sd, test[~labels].std() / sd,
                         (test[labels].mean() - held.mean()) / sd))
        r = np.mean(rows, axis=0)
        print(f"  {name}: good parts {r[0]:+.2f} (spread {r[1]:.2f}x the held-out one), defects {r[2]:+.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", nargs="?")
    ap.add_argument("--rules", nargs="+", help="vinspect evaluate --json reports (default settings) to test threshold rules on")
    ap.add_argument("--shots", default="4")
    ap.add_argument("--max-members", type=int, default=4)
    ap.add_argument("--ks", default="0,0.5,1,1.5,2,2.5,3,3.5,4,5,6")
    ap.add_argument("--combine", default="mean", choices=["mean", "max"])
    ap.add_argument("--sets", default=None, help="only these option sets")
    args = ap.parse_args()
    global COMBINE
    COMBINE = args.combine
    if args.rules:
        rules(args.rules, [float(x) for x in args.ks.split(",")])
        return
    runs = load(args.folder, args.shots)
    sets = sorted({opt for (_, opt) in runs if all((d, opt) in runs for d in DATA)})
    if args.sets:
        sets = [x for x in sets if x in args.sets.split(",")]
    def size_of(doc):
        o = doc["options"]
        return (o[0] if isinstance(o, list) else o)["imageSize"]
    sizes = {opt: size_of(runs[(DATA[0], opt)]) for opt in sets}
    ks = [float(x) for x in args.ks.split(",")]
    print(f"option sets on all of {DATA}: " + ", ".join(f"{s} ({sizes[s]} px)" for s in sets))

    print("\nsingle sets, the engine's own threshold (mean over seeds): AUROC / verdicts / best threshold")
    for opt in sets:
        cells = []
        for d in DATA:
            r = runs[(d, opt)]["runs"]
            cells.append("%.3f / %.3f / %.3f" % (np.mean([x["imageAUROC"] for x in r]), np.mean([x["balancedAccuracy"] for x in r]),
                                                 np.mean([x["bestBalancedAccuracy"] for x in r])))
        print(f"  {opt:10s} " + "   ".join(f"{d}: {c}" for d, c in zip(DATA, cells)))

    # Every ensemble of one input size, every rule k: mean over seeds per data set.
    table = {}
    for n in range(1, args.max_members + 1):
        for members in itertools.combinations(sets, n):
            if len({sizes[m] for m in members}) > 1:
                continue
            for k in ks:
                table[(members, k)] = {d: evaluate(runs, d, members, k).mean(axis=0) for d in DATA}

    def rank_key(metric):
        return lambda item: np.mean([item[1][d][metric] for d in DATA])

    print("\nbest ensembles by mean AUROC over the three sets (k does not change AUROC):")
    seen = set()
    for (members, k), cells in sorted(table.items(), key=rank_key(0), reverse=True):
        if members in seen:
            continue
        seen.add(members)
        print("  %-40s " % "+".join(members) + "  ".join("%s %.3f" % (d, cells[d][0]) for d in DATA)
              + "  mean %.3f" % np.mean([cells[d][0] for d in DATA]))
        if len(seen) >= 12:
            break

    print("\nleave one data set out: members and k chosen on the other two (mean AUROC, then mean verdict gap)")
    for held in DATA:
        others = [d for d in DATA if d != held]
        best_members = max({m for (m, _) in table}, key=lambda m: np.mean([table[(m, ks[0])][d][0] for d in others]))
        best_k = max(ks, key=lambda k: np.mean([table[(best_members, k)][d][1] for d in others]))
        c = table[(best_members, best_k)][held]
        print(f"  held out {held}: picked {'+'.join(best_members)}, k={best_k}: AUROC {c[0]:.3f}, verdicts {c[1]:.3f}, "
              f"best threshold {c[2]:.3f} (gap {c[2]-c[1]:.3f})")

    print("\nrule k for chosen ensembles (verdict balanced accuracy per data set; gap to best threshold):")
    for members in sorted({m for (m, _) in table}, key=lambda m: -np.mean([table[(m, ks[0])][d][0] for d in DATA]))[:5]:
        print("  " + "+".join(members))
        for k in ks:
            cells = table[(members, k)]
            print("    k=%-4s " % k + "  ".join("%s %.3f (gap %.3f)" % (d, cells[d][1], cells[d][2] - cells[d][1]) for d in DATA))


if __name__ == "__main__":
    main()
