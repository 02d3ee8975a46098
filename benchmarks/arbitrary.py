#!/usr/bin/env python
"""Forward speed of the arbitrary-style network (Ghiasi et al.) vs Magenta's own graph.

For every content size (style image 256x256, Magenta's training and default size), times

* ``full``: style embedding + transformer, as a call that gets a new style image each time;
* ``transformer``: the transformer alone with a cached embedding (what :func:`nst_tf.stylize`
  does for a style it has seen: embeddings are computed once per style);

for three implementations:

* ``nst_tf``: the compiled functions :func:`nst_tf.stylize` runs (exact mode, Magenta's
  arithmetic; measured max difference to Magenta ~1e-5);
* ``nst_fast``: ``fast=True`` (sub-pixel / space-to-depth convs and moments by matrix products
  in the transformer), within float32 rounding of Magenta's output;
* ``magenta``: Magenta's ``build_model`` graph (tf.compat.v1, the import shims of
  ``tests/arbitrary_reference.py``) run with ``sess.run`` in **its own process** (a worker
  started by this script, one per size, so its thread pools and graph do not share a process with
  TF2's). ``transformer`` feeds ``bottleneck_feat`` directly, as Magenta's
  ``arbitrary_image_stylization_with_weights`` does for its interpolations (TF prunes the style
  network).

Weights are random: speed does not depend on the values. The first call (tracing, graph
optimization) is excluded and reported separately. Each case runs until ``--min_seconds`` or
``--max_repeats``; the median is reported, with wall and process CPU time. The machine may be
shared: cases are interleaved per size (nst_tf, nst_fast, magenta), and the load average is
recorded with each row.

Usage::

    python benchmarks/arbitrary.py                      # 256², 512², 1024²
    python benchmarks/arbitrary.py --sizes 512          # the headline case only

Prints a table and writes ``benchmarks/results/arbitrary.json``.
"""

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402

from benchmarks.common import measure, report  # noqa: E402

STYLE_SIZE = 256


def inputs(size):
    rng = np.random.default_rng(size)
    return (rng.random((1, size, size, 3), dtype=np.float32),
            rng.random((1, STYLE_SIZE, STYLE_SIZE, 3), dtype=np.float32))


def nst_cases(network, size, fast, args):
    """``{"full": stats, "transformer": stats}`` for nst_tf's compiled functions."""
    from nst_tf.models.arbitrary.family import runner_for

    runner = runner_for(network, jit_compile=False, fast=fast)
    content, style = inputs(size)
    embedding = runner.embed(style)
    return {"full": measure(lambda: runner.transform(content, runner.embed(style)),
                            args.min_seconds, args.max_repeats),
            "transformer": measure(lambda: runner.transform(content, embedding),
                                   args.min_seconds, args.max_repeats)}


def magenta_worker(size, min_seconds, max_repeats):
    """Run in a separate process: time Magenta's graph at one size, print JSON."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    from tests.arbitrary_reference import import_arbitrary

    build_model, _ = import_arbitrary()
    import tf_slim as slim

    content, style = inputs(size)
    graph = tf.Graph()
    with graph.as_default():
        content_ph = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        style_ph = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        with slim.arg_scope([slim.batch_norm], updates_collections=None):
            output, _, _, bottleneck = build_model.build_model(
                content_ph, style_ph, trainable=False, is_training=False, adds_losses=False)
        init = tf.compat.v1.global_variables_initializer()
    with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(init)
        cached = sess.run(bottleneck, {style_ph: style})
        result = {
            "full": measure(lambda: sess.run(output, {content_ph: content, style_ph: style}),
                            min_seconds, max_repeats),
            "transformer": measure(lambda: sess.run(output, {content_ph: content,
                                                             bottleneck: cached}),
                                   min_seconds, max_repeats)}
    print("RESULT " + json.dumps(result))


def magenta_cases(size, args):
    """Magenta's numbers at ``size`` from a worker process, or ``(None, reason)``."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", str(size),
               "--min_seconds", str(args.min_seconds), "--max_repeats", str(args.max_repeats)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=os.path.dirname(HERE))
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):]), None
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return None, f"Magenta worker failed at {size}²: {tail}"


def run(args):
    from nst_tf.networks import arbitrary_network

    network = arbitrary_network()
    rows, notes = [], []
    for size in args.sizes:
        measured = {"nst_tf": nst_cases(network, size, False, args),
                    "nst_fast": nst_cases(network, size, True, args)}
        if not args.no_magenta:
            magenta, note = magenta_cases(size, args)
            if magenta is None:
                notes.append(note)
            else:
                measured["magenta"] = magenta
        for impl, cases in measured.items():
            for case, stats in cases.items():
                rows.append({"impl": impl, "case": case, "size": size,
                             "ms": 1000 * stats["wall_s"], **stats,
                             "load_average": os.getloadavg()[0]})
                print(_format_row(rows[-1]), flush=True)
    for row in rows:
        ref = next((r for r in rows if r["impl"] == "magenta" and r["size"] == row["size"]
                    and r["case"] == row["case"]), None)
        row["speedup_vs_magenta"] = None if ref is None else ref["wall_s"] / row["wall_s"]
        row["cpu_speedup_vs_magenta"] = None if ref is None else ref["cpu_s"] / row["cpu_s"]
    return rows, notes


HEADER = (f"{'impl':9s} {'case':12s} {'size':>5s} {'ms':>9s} {'first s':>8s} {'cpu s':>7s} "
          f"{'x Magenta':>9s} {'cpu x Mag':>9s} {'load':>5s}")


def _format_row(row):
    def ratio(value):
        return f"{value:9.2f}" if value is not None else f"{'-':>9s}"
    return (f"{row['impl']:9s} {row['case']:12s} {row['size']:5d} {row['ms']:9.1f} "
            f"{row['first_call_s']:8.2f} {row['cpu_s']:7.2f} "
            f"{ratio(row.get('speedup_vs_magenta'))} {ratio(row.get('cpu_speedup_vs_magenta'))} "
            f"{row['load_average']:5.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--min_seconds", type=float, default=3.0,
                        help="time each case for at least this long (after 3 calls)")
    parser.add_argument("--max_repeats", type=int, default=10)
    parser.add_argument("--no_magenta", action="store_true")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return magenta_worker(args.worker, args.min_seconds, args.max_repeats)

    import tensorflow as tf

    print(f"TF {tf.__version__}, {os.cpu_count()} CPUs; style image {STYLE_SIZE}x{STYLE_SIZE}, "
          "batch 1, wall-clock medians (load = 1-min load average)")
    print(HEADER, flush=True)
    rows, notes = run(args)
    report("arbitrary", "Summary ('x Magenta' from median wall time, 'cpu x Mag' from process "
           "CPU time):", HEADER, rows, _format_row, notes, style_size=STYLE_SIZE)


if __name__ == "__main__":
    main()
