#!/usr/bin/env python3
"""Build an ONNX graph from a frozen network exported by backbone-bench, time it in ONNX
Runtime, and save its outputs for a fixed input.

Works for any `FrozenBackbone` (Sources/NeuralNet/Frozen.swift): ResNet-18,
EfficientNet-Lite0, the project's compact network, or anything else made of the same parts.
The architecture is not known here: the graph follows the exported description.

## The exported file (written by backbone-bench, FrozenExport.swift)
A safetensors file. Tensors, float32, in our layout:
  <name>.weight  [KH, KW, Cin/groups, Cout] (HWIO)   -> ONNX Conv W [Cout, Cin/groups, KH, KW]
  <name>.bias    [Cout]
  classifier.weight [K, D], classifier.bias [K]      -> Gemm(transB=1)
Header metadata "frozen": JSON
  {"format": "vinspect-frozen/1", "architecture": "compact", "input": [H, W, C],
   "layers": [{"type": "block", "convs": [CONV, ...], "shortcut": "none" | "identity" | CONV}
              | {"type": "maxpool", "kernel": k, "stride": s, "pads": [t, l, b, r]}],
   "taps": [layer index, ...], "classifier": {"weight": name, "bias": name} | null}
  CONV = {"weight": name, "bias": name, "kernel": [kh, kw], "stride": [sh, sw],
          "pads": [top, left, bottom, right], "dilation": [dh, dw], "groups": g,
          "activation": "none" | "relu" | "relu6" | "silu" | "leaky-relu", "slope": a (leaky only)}
Pads are already resolved for the exported input size (Padding.resolve), so the graph is
built for that H x W only (the batch dimension is symbolic, "N").

A block is `act_last(conv_last(...conv_1(x)) + shortcut(x))`: every conv but the last is
Conv -> activation; the last is Conv -> Add(shortcut) -> activation. A projection shortcut
is a Conv (with its own activation, normally none) of the block input.

## Graphs
  logits graph    input -> logits (or -> embedding when there is no classifier)   (timed)
  features graph  input -> logits, embedding, map0, map1, ... (the taps, NCHW)   (saved)
input is float32 [N, C, H, W], NCHW; the Swift side transposes.

## Output
--save-outputs out.safetensors: input [N, C, H, W] (seeded N(0, 1), --check-batch images,
or --input FILE.npy), and ONNX Runtime's outputs of the features graph under their names
(float32, NCHW), "meta" JSON in the header metadata.
Timing protocol and the last stdout line (one JSON object) as in onnx_backbones.py:
intra_op_num_threads = threads, inter_op_num_threads = 1, sequential, ORT_ENABLE_ALL;
3 warm-up runs, then >= 5 runs and >= --min-time seconds; images/s from the median batch
time; "timings": [{"batch", "threads", "graph", "images_per_s", "ms_per_batch_median",
"ms_per_batch_best", "cpu_ms_per_batch", "gflop_per_s", "runs"}].

Example:
  python3 onnx_frozen.py --model compact-frozen.safetensors --threads 1,2 --batch 1,8 \
      --save-outputs out.safetensors
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
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import cpu_name  # noqa: E402
import torch_pickle  # noqa: E402
from onnx_backbones import GraphBuilder, graph_flops, session, time_session, OPSET  # noqa: E402

FORMAT = "vinspect-frozen/1"


def load_frozen(path: str):
    tensors, meta = torch_pickle.load_safetensors(path, with_metadata=True)
    if "frozen" not in meta:
        sys.exit(f"{path}: no 'frozen' description in the safetensors metadata")
    desc = json.loads(meta["frozen"])
    if desc.get("format") != FORMAT:
        sys.exit(f"{path}: format {desc.get('format')!r}, expected {FORMAT!r}")
    return {k: np.asarray(v, np.float32) for k, v in tensors.items()}, desc


class FrozenGraph(GraphBuilder):
    def activation(self, x: str, conv: dict) -> str:
        act = conv["activation"]
        if act == "none":
            return x
        if act == "relu":
            return self.relu(x)
        if act == "relu6":
            return self.relu6(x)  # Clip(0, 6)
        if act == "leaky-relu":
            return self.op("LeakyRelu", [x], "leaky", alpha=float(conv["slope"]))
        if act == "silu":
            return self.op("Mul", [x, self.op("Sigmoid", [x])], "silu")
        raise ValueError(f"activation {act!r} not supported")

    def conv(self, x: str, c: dict) -> str:
        """Conv with bias (no activation): HWIO weight -> OIHW."""
        w = np.ascontiguousarray(self.sd[c["weight"]].transpose(3, 2, 0, 1))
        kh, kw = c["kernel"]
        if w.shape[2:] != (kh, kw):
            raise ValueError(f"{c['weight']}: shape {w.shape} vs kernel {c['kernel']}")
        return self.op("Conv", [x, self.const(c["weight"], w), self.const(c["bias"], self.sd[c["bias"]])], "conv",
                       kernel_shape=[kh, kw], strides=list(c["stride"]), pads=list(c["pads"]),
                       dilations=list(c["dilation"]), group=int(c["groups"]))

    def block(self, x: str, layer: dict) -> str:
        convs = layer["convs"]
        h = x
        for c in convs[:-1]:
            h = self.activation(self.conv(h, c), c)
        h = self.conv(h, convs[-1])
        sc = layer["shortcut"]
        if sc == "identity":
            h = self.op("Add", [h, x], "residual")
        elif isinstance(sc, dict):
            h = self.op("Add", [h, self.activation(self.conv(x, sc), sc)], "residual")
        elif sc != "none":
            raise ValueError(f"shortcut {sc!r}")
        return self.activation(h, convs[-1])


def build_model(sd: Dict[str, np.ndarray], desc: dict, outputs: List[str]) -> onnx.ModelProto:
    """The ONNX model of the frozen network with the requested outputs."""
    b = FrozenGraph(sd, fold_bn=True)
    h, w, c = desc["input"]
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", c, h, w])
    x = "input"
    named = {}
    taps = list(desc["taps"])
    for index, layer in enumerate(desc["layers"]):
        if layer["type"] == "block":
            x = b.block(x, layer)
        elif layer["type"] == "maxpool":
            k, s = layer["kernel"], layer["stride"]
            x = b.op("MaxPool", [x], "maxpool", kernel_shape=[k, k], strides=[s, s], pads=list(layer["pads"]))
        else:
            raise ValueError(f"layer type {layer['type']!r}")
        if index in taps:
            named[f"map{taps.index(index)}"] = x
    named["embedding"] = b.op("Flatten", [b.op("GlobalAveragePool", [x])], "embedding", axis=1)
    cls = desc.get("classifier")
    if cls:
        named["logits"] = b.op("Gemm", [named["embedding"], b.const("classifier.weight", sd[cls["weight"]]),
                                        b.const("classifier.bias", sd[cls["bias"]])], "logits", transB=1)
    outs = []
    for key in outputs:
        b.nodes.append(helper.make_node("Identity", [named[key]], [key], name="out_" + key))
        dims = ["N", key + "_C"] + ([key + "_H", key + "_W"] if key.startswith("map") else [])
        outs.append(helper.make_tensor_value_info(key, TensorProto.FLOAT, dims))
    graph = helper.make_graph(b.nodes, f"{desc['architecture']}-{'features' if len(outputs) > 1 else outputs[0]}",
                              [inp], outs, initializer=b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="vinspect onnx_frozen.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--model", required=True, help="safetensors file exported by backbone-bench")
    ap.add_argument("--threads", default="1,2", help="intra-op thread counts to time, e.g. 1,2")
    ap.add_argument("--batch", default="1,8", help="batch sizes to time, e.g. 1,8 (empty: no timing)")
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds of timed runs per configuration")
    ap.add_argument("--input", help="NCHW float32 .npy for the saved outputs (default: seeded N(0,1))")
    ap.add_argument("--check-batch", type=int, default=2, help="batch of the random input")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random input")
    ap.add_argument("--save-outputs", metavar="SAFETENSORS")
    ap.add_argument("--save-onnx", metavar="DIR")
    a = ap.parse_args()

    import onnxruntime as ort

    sd, desc = load_frozen(a.model)
    h, w, c = desc["input"]
    ntaps = len(desc["taps"])
    head = "logits" if desc.get("classifier") else "embedding"
    out_keys = (["logits"] if head == "logits" else []) + ["embedding"] + [f"map{i}" for i in range(ntaps)]
    m_head = build_model(sd, desc, [head])
    m_feats = build_model(sd, desc, out_keys)
    arch = desc["architecture"]
    if a.save_onnx:
        os.makedirs(a.save_onnx, exist_ok=True)
        for tag, m in ((head, m_head), ("features", m_feats)):
            onnx.save(m, os.path.join(a.save_onnx, f"{arch}-frozen-{tag}.onnx"))
    report = {"arch": arch, "exporter": "onnx_frozen.py", "cpu": cpu_name(), "cores": os.cpu_count(),
              "onnxruntime": ort.__version__, "numpy": np.__version__, "layout": "nchw", "size": h,
              "fold_bn": True, "weights": os.path.basename(a.model),
              "loadavg_before": [round(v, 2) for v in os.getloadavg()],
              "gflop_per_image": round(graph_flops(m_head) / 1e9, 4), "nodes": len(m_head.graph.node),
              "timings": []}
    print(f"{arch} (frozen export) {h}x{w} ({report['gflop_per_image']} GFLOP/image, {report['nodes']} nodes), "
          f"onnxruntime {ort.__version__}, CPU {report['cpu']} ({os.cpu_count()} cores), "
          f"load average {report['loadavg_before'][0]} (other processes skew timings)")

    batches = [int(s) for s in a.batch.split(",") if s.strip()]
    threads = [int(s) for s in a.threads.split(",") if s.strip()]
    if batches:
        print(f"{'graph':9s} {'threads':>7s} {'batch':>5s} {'ms/batch':>9s} {'images/s':>9s} "
              f"{'best ms':>9s} {'cpu ms':>9s} {'runs':>5s}")
    rng = np.random.default_rng(1234)
    for t in threads if batches else []:
        sess = session(m_head, t)
        for bsz in batches:
            x = rng.standard_normal((bsz, c, h, w)).astype(np.float32)
            r = time_session(sess, x, a.min_time)
            r.update(graph=head, threads=t, batch=bsz,
                     gflop_per_s=round(report["gflop_per_image"] * r["images_per_s"], 1))
            report["timings"].append(r)
            print(f"{head:9s} {t:7d} {bsz:5d} {r['ms_per_batch_median']:9.2f} "
                  f"{r['images_per_s']:9.1f} {r['ms_per_batch_best']:9.2f} {r['cpu_ms_per_batch']:9.2f} "
                  f"{r['runs']:5d}")

    if a.save_outputs:
        if a.input:
            x = np.load(a.input)
            if x.dtype != np.float32 or x.shape[1:] != (c, h, w):
                sys.exit(f"{a.input}: expected float32 [N, {c}, {h}, {w}], got {x.dtype} {list(x.shape)}")
        else:
            x = np.random.default_rng(a.seed).standard_normal((a.check_batch, c, h, w)).astype(np.float32)
        sess = session(m_feats, max(threads) if threads else 1)
        got = dict(zip(out_keys, sess.run(out_keys, {"input": x})))
        arrays = {"input": x, **{k: np.ascontiguousarray(v.astype(np.float32)) for k, v in got.items()}}
        meta = {k: report[k] for k in ("arch", "exporter", "weights", "size", "onnxruntime")}
        torch_pickle.save_safetensors(a.save_outputs, arrays, {"meta": json.dumps(meta)})
        print(f"wrote {a.save_outputs}: " + ", ".join(f"{k} {list(v.shape)}" for k, v in arrays.items()))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
