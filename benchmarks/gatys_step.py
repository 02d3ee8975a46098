#!/usr/bin/env python
"""Time one Gatys optimization step (forward + backward + update) against the machine's peak.

For Adam and L-BFGS, at 256² and 512², with XLA off and on: the median wall time of a step, the
FLOP count of a step, a float32 matmul peak measured in the same run, and the ratio
``step time / (FLOPs / peak)`` (1.0 = the step runs at matmul peak speed).

The FLOP count comes from TensorFlow's own FLOP statistics — the per-op ``"flops"`` statistics
that ``tf.compat.v1.profiler`` sums with ``ProfileOptionBuilder.float_operation()`` (its raw total
is printed too) — on the step's concrete-function graph, frozen (variables → constants) and
pruned to what the loss and the gradient need. Pruning matters: the traced graph still holds the
convolution *filter* gradients that ``tape.gradient`` creates and Grappler removes before running
(the VGG weights are frozen), which would inflate the count by about half. One correction: the
registered (Batch)MatMul formula ignores the transpose flags, so the Gram matrices ``FᵀF`` are
recounted as 2·M·N·K. The optimizer update (a few element-wise passes; the L-BFGS two-loop,
~4·m·n FLOPs) is added analytically; an analytic count of the VGG convolutions is printed as a
cross-check.

Example:
    python benchmarks/gatys_step.py                       # full table, JSON in benchmarks/results/
    python benchmarks/gatys_step.py --sizes=256 --optimizers=adam --xla=off --steps=3

VGG19 has random weights (``weights=None``: no download) and the default layers; content and
style are seeded noise (the cost of a step does not depend on the pixel values).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="256,512", help="comma-separated square sizes")
    p.add_argument("--optimizers", default="adam,lbfgs")
    p.add_argument("--xla", default="both", choices=["both", "on", "off"])
    p.add_argument("--precisions", default="float32,bfloat16",
                   help="float32 and/or bfloat16 (oneDNN bf16 convolutions; XLA off only)")
    p.add_argument("--steps", type=int, default=0, help="timed steps per config (default: "
                   "10 at 256², 5 at 512²)")
    p.add_argument("--steps_per_call", type=int, default=1)
    p.add_argument("--no_freeze", action="store_true", help="keep the VGG weights as variables "
                   "(optimize_image freezes them into constants for long runs)")
    p.add_argument("--intra_op", type=int, default=0, help="intra-op threads (0: TF default)")
    p.add_argument("--inter_op", type=int, default=0, help="inter-op threads (0: TF default)")
    p.add_argument("--matmul", type=int, default=4096, help="matmul size for the peak")
    p.add_argument("--output", default=os.path.join(RESULTS, "gatys_step.json"))
    return p.parse_args(argv)


def matmul_peak(tf, n, repeats=7):
    """float32 ``n×n @ n×n`` GFLOP/s: the best and the median of ``repeats`` runs."""
    a = tf.random.stateless_normal([n, n], seed=[1, 2])
    b = tf.random.stateless_normal([n, n], seed=[3, 4])
    matmul = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    matmul(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        times.append(time.perf_counter() - start)
    flops = 2.0 * n ** 3
    return flops / min(times) / 1e9, flops / statistics.median(times) / 1e9


def _matmul_flops(op):
    """2·batch·M·N·K of a (Batch)MatMul, honouring its transpose / adjoint flags."""
    import numpy as np

    a, b = (t.shape.as_list() for t in op.inputs[:2])
    names = ("adj_x", "adj_y") if op.type.startswith("BatchMatMul") else ("transpose_a",
                                                                         "transpose_b")
    m, k = (a[-1], a[-2]) if op.get_attr(names[0]) else (a[-2], a[-1])
    n = b[-2] if op.get_attr(names[1]) else b[-1]
    batch = int(np.prod(op.outputs[0].shape.as_list()[:-2], dtype=np.int64))
    return 2 * batch * m * n * k


def profiler_flops(tf, objective, shape):
    """FLOPs of loss + gradient from TF's FLOP statistics on the frozen, pruned function graph.

    Returns ``(total, by_op_type, raw_profiler_total)``. Per node it uses the statistics that
    ``tf.compat.v1.profiler``'s ``float_operation()`` sums, except for (Batch)MatMul, whose
    registered formula ignores the transpose flags (the Gram matrices ``FᵀF`` are counted as
    ``[HW, C]·[HW, C]``, wrong in either direction); those are counted as 2·M·N·K here.
    """
    from tensorflow.python.framework import convert_to_constants
    from tensorflow.python.framework import ops as tf_ops

    @tf.function
    def loss_and_grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss, _ = objective(x)
        return loss, tape.gradient(loss, x)

    concrete = loss_and_grad.get_concrete_function(tf.TensorSpec(shape, tf.float32))
    frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
    graph_def = frozen.graph.as_graph_def()
    outputs = [t.name.split(":")[0] for t in frozen.outputs]
    pruned = tf.compat.v1.graph_util.extract_sub_graph(graph_def, outputs)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(pruned, name="")
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    raw = tf.compat.v1.profiler.profile(graph, options=options).total_float_ops
    by_op = {}
    for op in graph.get_operations():
        if op.type in ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
            flops = _matmul_flops(op)
        else:
            try:
                flops = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value or 0
            except ValueError:  # no statistics registered for this op type
                flops = 0
        if flops:
            by_op[op.type] = by_op.get(op.type, 0) + int(flops)
    return sum(by_op.values()), by_op, raw


def analytic_conv_flops(extractor, size):
    """2·k²·C_in·C_out·H·W per VGG convolution up to the deepest layer, forward + input grad."""
    import keras

    def conv_and_pool_layers(model):
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                yield from conv_and_pool_layers(layer)
            else:
                yield layer

    total, h = 0, size
    for layer in conv_and_pool_layers(extractor.model):
        if isinstance(layer, keras.layers.Conv2D):
            k = layer.kernel_size[0] * layer.kernel_size[1]
            forward = 2 * k * layer.kernel.shape[2] * layer.filters * h * h
            total += 2 * forward  # forward + gradient w.r.t. the input
        elif isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
            h //= 2
    return total


def update_flops(optimizer, n, memory=10):
    """Analytic FLOPs of the optimizer update on ``n`` pixels."""
    if optimizer == "adam":
        return 12 * n
    return (4 * memory + 10) * n  # two-loop recursion (2 dots + 2 axpys per pair) + bookkeeping


def time_steps(tf, objective, image, optimizer, jit, steps, steps_per_call, precision, freeze):
    """Median wall time of one step, as :func:`nst_tf.optimize.optimize_image` runs it."""
    from nst_tf.optimize import compute_precision, make_optimizer, make_step

    opt = make_optimizer(optimizer, image)
    step = make_step(objective, opt, jit, freeze=freeze)
    k = tf.constant(steps_per_call)
    with compute_precision(precision):
        start = time.perf_counter()
        step(k)[0].numpy()  # trace + compile
        compile_s = time.perf_counter() - start
        step(k)[0].numpy()  # warm-up
        times = []
        calls = max(1, steps // steps_per_call)
        for _ in range(calls):
            start = time.perf_counter()
            step(k)[0].numpy()
            times.append((time.perf_counter() - start) / steps_per_call)
    return statistics.median(times), times, compile_s


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # the v1 profiler's deprecation warnings
    if args.intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)
    if args.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    import numpy as np

    from nst_tf.features import FeatureExtractor, default_layers
    from nst_tf.objective import StyleObjective

    sizes = [int(s) for s in args.sizes.split(",")]
    optimizers = args.optimizers.split(",")
    xlas = {"both": [False, True], "on": [True], "off": [False]}[args.xla]
    precisions = args.precisions.split(",")

    peak_best, peak_median = matmul_peak(tf, args.matmul)
    print(f"matmul {args.matmul}² float32: peak {peak_best:.1f} GFLOP/s "
          f"(median {peak_median:.1f})", flush=True)
    content_layers, style_layers = default_layers("vgg19")
    extractor = FeatureExtractor("vgg19", list(content_layers) + list(style_layers),
                                 weights=None)
    rng = np.random.default_rng(0)
    rows = []
    for size in sizes:
        content = rng.uniform(0, 1, (size, size, 3)).astype(np.float32)
        style = rng.uniform(0, 1, (size, size, 3)).astype(np.float32)
        objective = StyleObjective(extractor, content, [style])
        flops, by_op, raw = profiler_flops(tf, objective, [1, size, size, 3])
        conv = analytic_conv_flops(extractor, size)
        print(f"{size}²: {flops / 1e9:.1f} GFLOP for loss + gradient (raw profiler total "
              f"{raw / 1e9:.1f}); analytic VGG convolutions {conv / 1e9:.1f} GFLOP", flush=True)
        top = sorted(by_op.items(), key=lambda kv: -kv[1])[:6]
        print("   by op: " + ", ".join(f"{k} {v / 1e9:.2f}G" for k, v in top), flush=True)
        steps = args.steps or (10 if size <= 256 else 5)
        for optimizer in optimizers:
            total = flops + update_flops(optimizer, size * size * 3)
            configs = [(jit, "float32") for jit in xlas if "float32" in precisions]
            configs += [(False, "bfloat16")] if "bfloat16" in precisions and False in xlas else []
            for jit, precision in configs:
                median, times, compile_s = time_steps(tf, objective, content[None], optimizer,
                                                      jit, steps, args.steps_per_call, precision,
                                                      not args.no_freeze)
                # Re-measure the peak after every configuration and keep the best: on a shared
                # machine a single measurement can be low, which would flatter the ratio.
                peak_best = max(peak_best, matmul_peak(tf, args.matmul, repeats=3)[0])
                ideal = total / (peak_best * 1e9)
                row = dict(optimizer=optimizer, size=size, xla=jit, precision=precision,
                           freeze=not args.no_freeze, median_s=median,
                           times_s=times, compile_s=compile_s, gflop=total / 1e9,
                           ideal_s=ideal, ratio=median / ideal, flops_by_op=by_op,
                           profiler_raw_gflop=raw / 1e9,
                           steps_per_call=args.steps_per_call)
                rows.append(row)
                print(f"  {optimizer:5s} xla={'on ' if jit else 'off'} {precision} "
                      f"median {median:.3f} s "
                      f"(trace+compile {compile_s:.1f} s) ratio {median / ideal:.2f}", flush=True)

    for r in rows:  # every ratio against the best peak seen in the whole run
        r["ideal_s"] = r["gflop"] / peak_best
        r["ratio"] = r["median_s"] / r["ideal_s"]
    print()
    header = (f"{'optimizer':9s} {'size':>5s} {'XLA':>4s} {'precision':>9s} {'step s':>8s} "
              f"{'GFLOP':>7s} {'FLOP/peak s':>11s} {'ratio':>6s}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['optimizer']:9s} {r['size']:5d} {'on' if r['xla'] else 'off':>4s} "
              f"{r['precision']:>9s} {r['median_s']:8.3f} {r['gflop']:7.1f} "
              f"{r['ideal_s']:11.3f} {r['ratio']:6.2f}")
    print(f"peak: {peak_best:.1f} GFLOP/s (float32 matmul {args.matmul}², best over the run); "
          f"weights {'as variables' if args.no_freeze else 'frozen to constants'}; FLOPs: "
          "TF's registered FLOP statistics on the frozen, pruned step graph (MatMul counted "
          "with its transpose flags) + analytic optimizer update; bfloat16 rows use the same "
          "float32 peak")

    result = dict(
        benchmark="gatys_step", time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        machine=dict(platform=platform.platform(), processor=platform.processor(),
                     cpus=os.cpu_count(), load_average=os.getloadavg()),
        tensorflow=tf.__version__, matmul_size=args.matmul, peak_gflops=peak_best,
        peak_gflops_median=peak_median, intra_op=args.intra_op, inter_op=args.inter_op,
        flop_source="TF's registered FLOP statistics (what tf.compat.v1.profiler "
                    "float_operation sums) on the frozen, pruned loss+gradient graph, MatMul "
                    "recounted with transpose flags, + analytic optimizer update",
        rows=rows)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
