#!/usr/bin/env python3
"""Export ResNet-18 / EfficientNet-Lite0 to ONNX, time them in ONNX Runtime, and check
them against the numpy reference (reference_nets.py).

The graphs are built node by node with `onnx.helper` (opset 17) from a weights file
(.safetensors or PyTorch .pth, PyTorch naming). Batch norm is folded into the preceding
convolution at export (w' = w * g/sqrt(v+eps), b' = beta - mean * g/sqrt(v+eps)) unless
--no-fold-bn, which keeps BatchNormalization nodes. Lite0's TensorFlow "SAME" padding is
written as explicit asymmetric Conv `pads` [top, left, bottom, right] for the chosen
input size (so a graph is built for one H x W; the batch dimension is symbolic, "N").

Two graphs per run:
  logits graph    input -> logits                       (timed)
  features graph  input -> logits, embedding, feat_s4, feat_s8, feat_s16, feat_s32
                                                         (checked, saved; timed with --time-features)
The feature taps are the layers listed in reference_nets.py's module doc.

## File exchange with the Swift benchmark
--input in.npy      float32 [N, 3, H, W], NCHW, already normalised network input
                    (Lite0: (x/255-0.5)/0.5; ResNet-18: ImageNet mean/std; see
                    reference_nets.preprocess). Always NCHW, whatever --layout says.
--save-outputs o.npz  (or o.safetensors, same keys, "meta" in the header metadata)
                    keys (all float32, C order):
                    input [N,3,H,W]; logits [N,K]; embedding [N,C]; feat_s4 [N,C,H/4,W/4];
                    feat_s8; feat_s16; feat_s32 (NCHW): ONNX Runtime's outputs of the
                    features graph; the same keys prefixed "ref_" from the numpy reference
                    (float64 accumulation, stored as float32); "meta": a 0-d string array
                    holding JSON (arch, weights, seed, size, onnxruntime version, errors).
--save-onnx DIR     writes DIR/<arch>-logits.onnx and DIR/<arch>-features.onnx.
--weights FILE with --random-seed S: random weights (reference_nets.random_weights) are
                    made and written to FILE (.safetensors), so the Swift side can load the
                    very same weights; without --random-seed FILE is read.

The last line printed is one JSON object: {"arch", "cpu", "onnxruntime", "layout", "size",
"fold_bn", "loadavg_before", "gflop_per_image", "timings": [{"batch", "threads", "graph", "images_per_s" (from the
median), "ms_per_batch_median", "ms_per_batch_best", "cpu_ms_per_batch" (process CPU time per
run, all threads), "gflop_per_s", "runs"}], "check": {output: {"max_abs", "max_rel"}}}; max_rel = max|ort - ref| / max|ref|.

Example:
  python3 onnx_backbones.py --arch resnet18 --weights /tmp/r18.safetensors --random-seed 0 \
      --threads 1,2 --batch 1,8
  python3 onnx_backbones.py --arch efficientnet-lite0 --weights efficientnet-lite0-57934424.pth \
      --input in.npy --save-outputs out.npz
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_nets as R  # noqa: E402
from machine import cpu_name  # noqa: E402
import torch_pickle  # noqa: E402

OPSET = 17
OUTPUT_KEYS = ["logits", "embedding", "feat_s4", "feat_s8", "feat_s16", "feat_s32"]


class GraphBuilder:
    """Collects nodes and initializers; every method returns the output tensor name."""

    def __init__(self, sd: Dict[str, np.ndarray], fold_bn: bool):
        self.sd, self.fold_bn = sd, fold_bn
        self.nodes: List[onnx.NodeProto] = []
        self.inits: List[onnx.TensorProto] = []
        self.n = 0

    def _name(self, hint: str) -> str:
        self.n += 1
        return f"{hint}_{self.n}"

    def const(self, hint: str, arr: np.ndarray) -> str:
        name = self._name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(self, op_type: str, inputs: List[str], hint: str = None, **attrs) -> str:
        out = self._name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def conv_bn(self, x: str, wkey: str, bn: str, eps: float, stride: int = 1,
                pads=(0, 0, 0, 0), groups: int = 1) -> str:
        """Conv (no bias in the checkpoint) followed by inference batch norm.

        pads = (top, bottom, left, right) as in reference_nets; ONNX wants
        [top, left, bottom, right].
        """
        w = self.sd[wkey].astype(np.float64)
        k = w.shape[2:]
        attrs = dict(kernel_shape=list(k), strides=[stride, stride],
                     pads=[pads[0], pads[2], pads[1], pads[3]], group=groups)
        g, b, m, v = (self.sd[f"{bn}.{s}"].astype(np.float64)
                      for s in ("weight", "bias", "running_mean", "running_var"))
        if self.fold_bn:
            scale = g / np.sqrt(v + eps)
            wf = (w * scale[:, None, None, None]).astype(np.float32)
            bf = (b - m * scale).astype(np.float32)
            return self.op("Conv", [x, self.const(wkey, wf), self.const(wkey + ".bias", bf)], "conv", **attrs)
        y = self.op("Conv", [x, self.const(wkey, w.astype(np.float32))], "conv", **attrs)
        ins = [y] + [self.const(f"{bn}.{s}", a.astype(np.float32)) for s, a in
                     (("weight", g), ("bias", b), ("running_mean", m), ("running_var", v))]
        return self.op("BatchNormalization", ins, "bn", epsilon=eps)

    def relu(self, x):
        return self.op("Relu", [x])

    def relu6(self, x):
        if not hasattr(self, "_c6"):
            self._c6 = (self.const("zero", np.array(0, np.float32)), self.const("six", np.array(6, np.float32)))
        return self.op("Clip", [x, *self._c6], "relu6")

    def head(self, x: str, fc: str):
        """Global average pool -> embedding [N, C] -> Gemm -> logits [N, K]."""
        emb = self.op("Flatten", [self.op("GlobalAveragePool", [x])], "embedding", axis=1)
        logits = self.op("Gemm", [emb, self.const(fc + ".weight", self.sd[fc + ".weight"]),
                                  self.const(fc + ".bias", self.sd[fc + ".bias"])], "logits", transB=1)
        return emb, logits


def build_resnet18(b: GraphBuilder, x: str, size) -> Dict[str, str]:
    eps = R.RESNET18_EPS
    out = {}
    x = b.relu(b.conv_bn(x, "conv1.weight", "bn1", eps, 2, (3, 3, 3, 3)))
    x = b.op("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    for li, (c, s) in enumerate(R.RESNET18_STAGES, start=1):
        for bi in range(2):
            p = f"layer{li}.{bi}"
            stride = s if bi == 0 else 1
            y = b.relu(b.conv_bn(x, f"{p}.conv1.weight", f"{p}.bn1", eps, stride, (1, 1, 1, 1)))
            y = b.conv_bn(y, f"{p}.conv2.weight", f"{p}.bn2", eps, 1, (1, 1, 1, 1))
            idn = x
            if f"{p}.downsample.0.weight" in b.sd:
                idn = b.conv_bn(x, f"{p}.downsample.0.weight", f"{p}.downsample.1", eps, stride)
            x = b.relu(b.op("Add", [y, idn]))
        out[f"feat_s{4 * 2 ** (li - 1)}"] = x
    out["embedding"], out["logits"] = b.head(x, "fc")
    return out


def build_lite0(b: GraphBuilder, x: str, size) -> Dict[str, str]:
    eps = R.LITE0_EPS
    out = {}
    taps = {v: k for k, v in R.LITE0_TAPS.items()}
    hw = tuple(size)

    def down(hw, s):
        return tuple(-(-n // s) for n in hw)  # SAME: ceil(n / s)

    x = b.relu6(b.conv_bn(x, "_conv_stem.weight", "_bn0", eps, 2, R.tf_same_pads(hw, 3, 2)))
    hw = down(hw, 2)
    for n, blk in enumerate(R.lite0_blocks()):
        p = f"_blocks.{n}"
        inp = x
        if blk["expand"] != 1:
            x = b.relu6(b.conv_bn(x, f"{p}._expand_conv.weight", f"{p}._bn0", eps))
        mid = blk["cin"] * blk["expand"]
        x = b.relu6(b.conv_bn(x, f"{p}._depthwise_conv.weight", f"{p}._bn1", eps, blk["stride"],
                              R.tf_same_pads(hw, blk["k"], blk["stride"]), groups=mid))
        hw = down(hw, blk["stride"])
        x = b.conv_bn(x, f"{p}._project_conv.weight", f"{p}._bn2", eps)
        if blk["skip"]:
            x = b.op("Add", [x, inp])
        if n in taps:
            out[taps[n]] = x
    x = b.relu6(b.conv_bn(x, "_conv_head.weight", "_bn1", eps))
    out["embedding"], out["logits"] = b.head(x, "_fc")
    return out


BUILDERS = {"resnet18": build_resnet18, "efficientnet-lite0": build_lite0}


def build_model(arch: str, sd, size=(224, 224), outputs=("logits",), layout="nchw",
                fold_bn=True) -> onnx.ModelProto:
    """The ONNX model of `arch` with the requested outputs (names from OUTPUT_KEYS)."""
    b = GraphBuilder(sd, fold_bn)
    h, w = size
    if layout == "nhwc-input":
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", h, w, 3])
        x = b.op("Transpose", ["input"], "to_nchw", perm=[0, 3, 1, 2])
    else:
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, h, w])
        x = "input"
    named = BUILDERS[arch](b, x, size)
    outs = []
    for key in outputs:
        b.nodes.append(helper.make_node("Identity", [named[key]], [key], name="out_" + key))
        dims = ["N", key + "_C"] + ([key + "_H", key + "_W"] if key.startswith("feat") else [])
        outs.append(helper.make_tensor_value_info(key, TensorProto.FLOAT, dims))
    graph = helper.make_graph(b.nodes, f"{arch}-{'features' if len(outputs) > 1 else 'logits'}",
                              [inp], outs, initializer=b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="vinspect onnx_backbones.py")
    model.ir_version = 8  # opset 17 needs IR >= 8; older runtimes refuse newer IR numbers
    onnx.checker.check_model(model)
    return model


def graph_flops(model: onnx.ModelProto) -> float:
    """FLOPs per image (2 x multiply-adds of Conv and Gemm), from ONNX shape inference."""
    inf = onnx.shape_inference.infer_shapes(model)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(inf.graph.value_info) + list(inf.graph.output) + list(inf.graph.input)}
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            out = shapes[node.output[0]][1:]  # drop the symbolic batch
            w = inits[node.input[1]]
            per_out = int(np.prod(w[1:])) if node.op_type == "Conv" else w[1]
            macs += int(np.prod(out)) * per_out
    return 2.0 * macs


def session(model: onnx.ModelProto, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def time_session(sess, x: np.ndarray, min_time: float, min_runs: int = 5) -> dict:
    """Median latency over repeated runs after 3 warm-up runs."""
    feed = {"input": x}
    for _ in range(3):
        sess.run(None, feed)
    times = []
    start, cpu0 = time.perf_counter(), time.process_time()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t)
    # Process CPU time (all ORT threads): on a shared machine the wall clock includes time
    # spent waiting for other processes; for 1 thread CPU time is close to the uncontended
    # latency. With 2 threads it also counts ORT's spin-waiting.
    cpu = (time.process_time() - cpu0) / len(times)
    med = float(np.median(times))
    return {"ms_per_batch_median": round(med * 1e3, 3), "images_per_s": round(x.shape[0] / med, 2),
            "ms_per_batch_best": round(min(times) * 1e3, 3), "cpu_ms_per_batch": round(cpu * 1e3, 3),
            "runs": len(times)}


def errors(ort_out: Dict[str, np.ndarray], ref_out: Dict[str, np.ndarray]) -> Dict[str, dict]:
    res = {}
    for k in OUTPUT_KEYS:
        a, r = ort_out[k].astype(np.float64), ref_out[k]
        if a.shape != r.shape:
            raise AssertionError(f"{k}: ONNX Runtime {a.shape} vs reference {r.shape}")
        d = float(np.abs(a - r).max())
        res[k] = {"max_abs": d, "max_rel": d / max(float(np.abs(r).max()), 1e-30)}
    return res


def to_layout(x_nchw: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)) if layout == "nhwc-input" else x_nchw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--arch", choices=sorted(BUILDERS), required=True)
    ap.add_argument("--weights", required=True, help=".safetensors or .pth (written when --random-seed)")
    ap.add_argument("--random-seed", type=int, help="make random weights and write them to --weights")
    ap.add_argument("--threads", default="1,2", help="intra-op thread counts to time, e.g. 1,2")
    ap.add_argument("--batch", default="1,8", help="batch sizes to time, e.g. 1,8 (empty: no timing)")
    ap.add_argument("--layout", choices=["nchw", "nhwc-input"], default="nchw",
                    help="graph input layout (the --input file is NCHW either way)")
    ap.add_argument("--size", type=int, default=224, help="input height = width")
    ap.add_argument("--no-fold-bn", action="store_true", help="keep BatchNormalization nodes")
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds of timed runs per configuration")
    ap.add_argument("--time-features", action="store_true", help="also time the features graph")
    ap.add_argument("--input", help="NCHW float32 .npy fed to the check (default: seeded N(0,1))")
    ap.add_argument("--check-batch", type=int, default=2, help="batch of the random check input")
    ap.add_argument("--skip-check", action="store_true", help="no numpy reference run")
    ap.add_argument("--save-outputs", metavar="NPZ")
    ap.add_argument("--save-onnx", metavar="DIR")
    a = ap.parse_args()

    import onnxruntime as ort

    if a.random_seed is not None:
        if not a.weights.endswith(".safetensors"):
            ap.error("--random-seed writes the weights: --weights must end in .safetensors")
        sd = R.random_weights(a.arch, a.random_seed)
        torch_pickle.save_safetensors(a.weights, sd, {"arch": a.arch, "seed": str(a.random_seed),
                                                      "generator": "reference_nets.random_weights"})
        print(f"random weights (seed {a.random_seed}) written to {a.weights}")
    else:
        sd = torch_pickle.load_weights(a.weights)
    classes = R.check_state_dict(a.arch, sd)
    size = (a.size, a.size)
    fold = not a.no_fold_bn
    m_logits = build_model(a.arch, sd, size, ("logits",), a.layout, fold)
    m_feats = build_model(a.arch, sd, size, tuple(OUTPUT_KEYS), a.layout, fold)
    if a.save_onnx:
        os.makedirs(a.save_onnx, exist_ok=True)
        for tag, m in (("logits", m_logits), ("features", m_feats)):
            onnx.save(m, os.path.join(a.save_onnx, f"{a.arch}-{tag}.onnx"))
    report = {"arch": a.arch, "cpu": cpu_name(), "cores": os.cpu_count(), "onnxruntime": ort.__version__,
              "numpy": np.__version__, "layout": a.layout, "size": a.size, "fold_bn": fold,
              "classes": classes, "weights": os.path.basename(a.weights), "seed": a.random_seed,
              "loadavg_before": [round(v, 2) for v in os.getloadavg()],
              "gflop_per_image": round(graph_flops(m_logits) / 1e9, 4), "timings": [], "check": None}
    print(f"{a.arch} {a.size}x{a.size} ({report['gflop_per_image']} GFLOP/image), layout {a.layout}, BN {'folded' if fold else 'kept'}, "
          f"onnxruntime {ort.__version__}, CPU {report['cpu']} ({os.cpu_count()} cores), "
          f"load average {report['loadavg_before'][0]} (other processes skew timings)")

    # ---- timing
    batches = [int(s) for s in a.batch.split(",") if s.strip()]
    threads = [int(s) for s in a.threads.split(",") if s.strip()]
    graphs = [("logits", m_logits)] + ([("features", m_feats)] if a.time_features else [])
    if batches:
        print(f"{'graph':9s} {'threads':>7s} {'batch':>5s} {'ms/batch':>9s} {'images/s':>9s} "
              f"{'best ms':>9s} {'cpu ms':>9s} {'runs':>5s}")
    rng = np.random.default_rng(1234)
    for gname, model in graphs:
        for t in threads:
            sess = session(model, t)
            for bsz in batches:
                x = to_layout(rng.standard_normal((bsz, 3, *size)).astype(np.float32), a.layout)
                r = time_session(sess, x, a.min_time)
                r.update(graph=gname, threads=t, batch=bsz,
                         gflop_per_s=round(report["gflop_per_image"] * r["images_per_s"], 1))
                report["timings"].append(r)
                print(f"{gname:9s} {t:7d} {bsz:5d} {r['ms_per_batch_median']:9.2f} "
                      f"{r['images_per_s']:9.1f} {r['ms_per_batch_best']:9.2f} {r['cpu_ms_per_batch']:9.2f} "
                      f"{r['runs']:5d}")

    # ---- check against the numpy reference, optional file exchange
    if a.input:
        x = np.load(a.input)
        if x.dtype != np.float32 or x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != size:
            sys.exit(f"{a.input}: expected float32 [N, 3, {a.size}, {a.size}] (NCHW), "
                     f"got {x.dtype} {list(x.shape)}")
    else:
        x = np.random.default_rng(a.random_seed or 0).standard_normal(
            (a.check_batch, 3, *size)).astype(np.float32)
    if not a.skip_check or a.save_outputs:
        sess = session(m_feats, max(threads) if threads else 1)
        got = dict(zip(OUTPUT_KEYS, sess.run(OUTPUT_KEYS, {"input": to_layout(x, a.layout)})))
        ref = None
        if not a.skip_check:
            t0 = time.perf_counter()
            ref = R.forward(a.arch, sd, x)
            report["check"] = errors(got, ref)
            report["check_batch"] = int(x.shape[0])
            print(f"check vs numpy reference (batch {x.shape[0]}, reference took "
                  f"{time.perf_counter() - t0:.1f} s):")
            print(f"  {'output':10s} {'shape':22s} {'max_abs':>10s} {'max_rel':>10s}")
            for k, e in report["check"].items():
                print(f"  {k:10s} {str(list(got[k].shape)):22s} {e['max_abs']:10.3e} {e['max_rel']:10.3e}")
            agree = (got["logits"].argmax(1) == ref["logits"].argmax(1)).mean()
            report["top1_agreement"] = float(agree)
            print(f"  top-1 agreement {agree:.3f}")
        if a.save_outputs:
            arrays = {"input": x, **{k: v.astype(np.float32) for k, v in got.items()}}
            if ref is not None:
                arrays.update({"ref_" + k: v.astype(np.float32) for k, v in ref.items()})
            meta = {k: report[k] for k in ("arch", "weights", "seed", "size", "onnxruntime", "fold_bn", "check")}
            if a.save_outputs.endswith(".safetensors"):
                # The Swift benchmark reads safetensors with the project's own importer.
                torch_pickle.save_safetensors(a.save_outputs, {k: np.ascontiguousarray(v) for k, v in arrays.items()},
                                              {"meta": json.dumps(meta)})
            else:
                np.savez(a.save_outputs, meta=np.array(json.dumps(meta)), **arrays)
            print(f"wrote {a.save_outputs}: {', '.join(arrays)}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
