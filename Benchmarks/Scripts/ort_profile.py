#!/usr/bin/env python3
"""Per-node ONNX Runtime times for a backbone: where the peer's forward time goes.

The counterpart of `layer-profile` (which does the same for ours): ONNX Runtime's own
profiler (SessionOptions.enable_profiling) on batch 1, 224x224, one intra-op thread unless
told otherwise; prints the median time of every node over the timed runs, their sum, the
wall time per run, and a sum per op type.

    python3 ort_profile.py efficientnet-lite0            # seeded random weights (reference_nets)
    python3 ort_profile.py resnet18 --threads 2
    python3 ort_profile.py DIR/compact-frozen-logits.onnx

An .onnx path is profiled as it is. For the compact network: `backbone-bench --archs compact
--keep DIR` keeps the exported safetensors file, and `onnx_frozen.py --model
DIR/compact-frozen.safetensors --batch "" --save-onnx DIR` writes the graph.
"""
import argparse
import collections
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="resnet18, efficientnet-lite0, or an .onnx file")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=40)
    a = ap.parse_args()

    import onnx
    import onnxruntime as ort

    if a.model.endswith(".onnx"):
        model = onnx.load(a.model)
    else:
        import onnx_backbones as OB
        import reference_nets as R
        model = OB.build_model(a.model, R.random_weights(a.model, 1), (224, 224), ("logits",))
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.mkdtemp(prefix="ort_profile_"), "ort")
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((a.batch, 3, 224, 224)).astype(np.float32)
    for _ in range(5):
        sess.run(None, {name: x})
    start = time.perf_counter()
    for _ in range(a.runs):
        sess.run(None, {name: x})
    wall = (time.perf_counter() - start) / a.runs
    events = json.load(open(sess.end_profiling()))

    per_node = collections.OrderedDict()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node.setdefault(e["name"], []).append(e)
    print(f"onnxruntime {ort.__version__}, {a.threads} thread(s), batch {a.batch}, {a.runs} timed runs")
    print(f"{'ms':>7s}  {'op':18s} input -> output shapes")
    total, by_op = 0.0, collections.defaultdict(float)
    for node, evs in per_node.items():
        ms = float(np.median([e["dur"] for e in evs[-a.runs:]])) / 1e3
        args = evs[0]["args"]
        op = args.get("op_name", "?")
        shapes = [list(d.values())[0] for d in args.get("input_type_shape", [])]
        out = [list(d.values())[0] for d in args.get("output_type_shape", [])]
        total += ms
        by_op[op] += ms
        print(f"{ms:7.3f}  {op:18s} {shapes[:2]} -> {out}")
    print(f"sum of node medians {total:.2f} ms, wall {wall * 1e3:.2f} ms per run")
    print("per op type: " + ", ".join(f"{k} {v:.2f} ms" for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
