#!/usr/bin/env python
"""Where the pastiche network's forward time goes, op by op, next to Magenta's graph.

``benchmarks/pastiche.py`` says how fast each implementation is; this script says why. For one
image (512² by default) it profiles

* ``nst_tf``: the default network (Magenta's arithmetic, within 1e-5 of its graph);
* ``nst_fast``: ``fast=True`` (sub-pixel and space-to-depth convs, matmul moments);
* ``magenta``: Magenta's own TF1 graph (``model.transform`` with ``weighted_instance_norm``),
  traced with ``RunOptions.FULL_TRACE``; skipped with a note when Magenta is not installed;

with one inter-op thread, so every op runs alone and its profiled duration is its own cost
(each op still uses all intra-op threads). Op time is grouped into

* ``conv``: the convolutions (with their FLOPs, from the kernel and output shapes of the traced
  graph, and the GFLOP/s they reach);
* ``norm stats``: instance-norm means and variances;
* ``norm apply+act``: ``x * inv + offset``, ReLU / sigmoid, residual adds;
* ``layout``: reflect padding, upsampling, space-to-depth / depth-to-space, crops;
* ``other``.

A float32 matmul peak is measured in the same run. The last lines print the time a 1.7x speed-up
over Magenta's median wall time allows, and how much of it the convolutions already use (at the
speed measured here, and at matmul peak).

Usage::

    python benchmarks/pastiche_breakdown.py                # 512², batch 1
    python benchmarks/pastiche_breakdown.py --size 1024

Prints a table and writes ``benchmarks/results/pastiche_breakdown.json``.
"""

import argparse
import collections
import glob
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_inter_op_parallelism_threads(1)  # must precede any op
tf.get_logger().setLevel("ERROR")

from benchmarks.gatys_step import matmul_peak  # noqa: E402
from benchmarks.pastiche import NUM_STYLES, load_magenta, magenta_graph  # noqa: E402
from nst_tf.io import atomic_write  # noqa: E402
from nst_tf.networks import pastiche_network  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
CATEGORIES = ("conv", "norm stats", "norm apply+act", "layout", "other")
_LAYOUT_OPS = {"ConcatV2", "MirrorPad", "Pad", "PadV2", "StridedSlice", "DepthToSpace",
               "SpaceToDepth", "ReverseV2", "Pack", "BroadcastTo", "Reshape", "Transpose",
               "_MklTranspose", "GatherV2", "Tile", "ResizeNearestNeighbor", "Slice"}
_STATS_OPS = {"Mean", "Sum", "SquaredDifference", "MatMul", "BatchMatMulV2", "_MklMatMul",
              "_MklBatchMatMulV2"}
_APPLY_OPS = {"Mul", "AddV2", "Add", "Sub", "Relu", "Sigmoid", "Rsqrt", "AddN"}


def category(name, op_type):
    """The bucket of one op, from its type and (for statistics) its name."""
    if "Conv2D" in op_type:
        return "conv"
    if op_type in _STATS_OPS and ("norm" in name.lower() or "moments" in name):
        return "norm stats"
    if op_type in _APPLY_OPS:
        return "norm apply+act"
    if op_type in _LAYOUT_OPS:
        return "layout"
    return "other"


def conv_flops_of(graph):
    """Multiply-add FLOPs (2 per MAC) of every Conv2D in ``graph`` with static shapes."""
    total = 0
    for op in graph.get_operations():
        if op.type == "Conv2D":
            kernel = op.inputs[1].shape.as_list()
            out = op.outputs[0].shape.as_list()
            total += 2 * int(np.prod(out)) * int(np.prod(kernel[:3]))
    return total


def median_wall(call, repeats):
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def profile_nst(network, image, weights, repeats):
    """(median wall s, conv FLOPs, {category: s}) of one forward pass of ``network``."""
    spec = tf.TensorSpec(image.shape, tf.float32)
    forward = tf.function(lambda x: network([x, weights[None]], training=False),
                          input_signature=[spec])
    flops = conv_flops_of(forward.get_concrete_function().graph)
    wall = median_wall(lambda: forward(image).numpy(), repeats)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(repeats):
            forward(image).numpy()
        tf.profiler.experimental.stop()
        path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
        events = _xplane_op_events(path)
    totals = collections.Counter()
    for name, op_type, seconds in events:
        totals[category(name, op_type)] += seconds / repeats
    return wall, flops, totals


def _xplane_op_events(path):
    """``(op name, op type, seconds)`` of every TF op the profiler recorded on compute threads."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    events = []
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                label = plane.event_metadata[event.metadata_id].name
                if ":" not in label or label.startswith("Executor"):
                    continue
                name, op_type = label.rsplit(":", 1)
                events.append((name, op_type, event.duration_ps * 1e-12))
    return events


def profile_magenta(magenta, image, repeats):
    """(median wall s, conv FLOPs, {category: s}) of Magenta's graph on ``image``."""
    graph, placeholder, output, init = magenta_graph(magenta, image.shape)
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=1)
    types = {op.name: op.type for op in graph.get_operations()}
    with tf.compat.v1.Session(graph=graph, config=config) as session:
        session.run(init)
        feed = {placeholder: image}
        wall = median_wall(lambda: session.run(output, feed), repeats)
        totals = collections.Counter()
        options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
        for _ in range(repeats):
            metadata = tf.compat.v1.RunMetadata()
            session.run(output, feed, options=options, run_metadata=metadata)
            for device in metadata.step_stats.dev_stats:
                for node in device.node_stats:
                    op_type = types.get(node.node_name, node.timeline_label.split("(")[0]
                                        .split("=")[-1].strip())
                    seconds = (node.all_end_rel_micros or node.op_end_rel_micros) * 1e-6
                    totals[category(node.node_name, op_type)] += seconds / repeats
    return wall, conv_flops_of(graph), totals


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", type=float, default=1.7,
                        help="speed-up over Magenta whose time budget is printed")
    args = parser.parse_args(argv)

    image = np.random.default_rng(0).random((1, args.size, args.size, 3), dtype=np.float32)
    weights = tf.constant(np.eye(NUM_STYLES, dtype=np.float32)[0])
    peak, _ = matmul_peak(tf, 4096)
    rows = {}
    for name, fast in (("nst_tf", False), ("nst_fast", True)):
        network = pastiche_network(NUM_STYLES, fast=fast)
        rows[name] = profile_nst(network, tf.constant(image), weights, args.repeats)
    magenta, note = load_magenta()
    if magenta is not None:
        rows["magenta"] = profile_magenta(magenta, image, args.repeats)

    print(f"{args.size}² x 1, one inter-op thread, ms per image (op time summed per category); "
          f"float32 matmul peak {peak:.0f} GFLOP/s")
    print(f"{'impl':9s} {'wall':>7s} " + " ".join(f"{c:>14s}" for c in CATEGORIES)
          + f" {'conv GFLOP':>10s} {'conv GF/s':>9s} {'at peak':>8s}")
    report = {"size": args.size, "matmul_peak_gflops": peak, "rows": {}}
    for name, (wall, flops, totals) in rows.items():
        conv = totals["conv"]
        print(f"{name:9s} {wall * 1e3:7.1f} "
              + " ".join(f"{totals[c] * 1e3:14.1f}" for c in CATEGORIES)
              + f" {flops / 1e9:10.1f} {flops / conv / 1e9 if conv else 0:9.0f}"
              f" {flops / peak / 1e6:8.1f}")
        report["rows"][name] = {"wall_ms": wall * 1e3, "conv_gflop": flops / 1e9,
                                **{f"{c}_ms": totals[c] * 1e3 for c in CATEGORIES}}
    if "magenta" in rows:
        budget = rows["magenta"][0] / args.target
        wall, flops, totals = rows["nst_fast"]
        rest = wall - totals["conv"]
        print(f"\n{args.target}x Magenta = {budget * 1e3:.0f} ms per image. nst_fast: convolutions "
              f"{totals['conv'] * 1e3:.0f} ms ({flops / peak / 1e6:.0f} ms even at matmul peak), "
              f"leaving {(budget - totals['conv']) * 1e3:.0f} ms for everything else, which "
              f"takes {rest * 1e3:.0f} ms now.")
        report.update(target=args.target, budget_ms=budget * 1e3)
    else:
        print("note:", note)
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "pastiche_breakdown.json")
    with atomic_write(path, mode="w") as f:
        json.dump(report, f, indent=2)
    print("wrote", path)


if __name__ == "__main__":
    main()
