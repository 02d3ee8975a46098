#!/usr/bin/env python
"""Forward speed of the pastiche network (nst_tf.stylize's compiled function) vs Magenta's graph.

For every image size and batch size, times

* ``nst_tf`` with XLA off and on: :func:`nst_tf.models.pastiche.family.forward_function` (the function
  :func:`nst_tf.stylize` runs), fed a ``tf.Tensor`` batch and fetched to NumPy. This is the
  default: Magenta's arithmetic (within 1e-5 of Magenta's graph, ``tests/test_magenta_parity.py``);
* ``nst_fast``, XLA off and on: ``stylize(..., fast=True)``: the same function in faster forms
  (sub-pixel / space-to-depth convs, moments by matmul), within float32 rounding of Magenta;
* ``nst_bf16``: ``stylize(..., fast=True, precision="bfloat16")``: bfloat16 convolutions (oneDNN
  AMX), ~1 grey level from Magenta's output (skip with ``--no_bfloat16``);
* ``magenta``: Magenta's own ``model.transform`` in a TF1 graph (mixture mode,
  ``weighted_instance_norm``, as its transform script builds it for a dict ``--which_styles``),
  built once per size and batch, timed with ``sess.run`` (feed a NumPy batch, fetch NumPy).
  Skipped with a note when Magenta's code is not installed.

The ``nst_fast`` and ``nst_bf16`` cases copy the network's weights into a twin network inside
each call (~7 MB), as :func:`nst_tf.stylize` does.
Networks have 32 styles ("varied") and random weights: speed does not depend on the values. The
first call (tracing, XLA compilation, graph optimization) is excluded and reported separately.
Each case runs until ``--min_seconds`` or ``--max_repeats``; the median is reported. Wall time and
process CPU time are both recorded: on a shared machine, CPU time is the steadier of the two.
GFLOP/s counts the model's convolution multiply-adds (2 FLOPs each, 78 GFLOP per 512² image).

Usage::

    python benchmarks/pastiche.py                           # 256², 512², 1024² x batch 1, 8
    python benchmarks/pastiche.py --sizes 512 --batches 1   # the headline case only

Prints a table and writes ``benchmarks/results/pastiche.json``.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")  # Magenta's graph code triggers TF1 deprecation notices

from benchmarks.common import measure, report  # noqa: E402
from nst_tf.networks import PASTICHE_LAYERS, pastiche_network, pastiche_widths  # noqa: E402
from nst_tf.models.pastiche.family import forward_function  # noqa: E402

NUM_STYLES = 32


def conv_flops(size, alpha=1.0):
    """Convolution FLOPs of one ``size``² image through the pastiche network (2 per MAC)."""
    widths = pastiche_widths(alpha)
    total, channels, side = 0, 3, size
    for spec in PASTICHE_LAYERS:
        side = side * spec.upsample
        side = -(-side // spec.stride)
        total += 2 * side * side * spec.kernel ** 2 * channels * widths[spec.scope]
        channels = widths[spec.scope]
    return total


def nst_case(network, batch, jit_compile, precision="float32", fast=False):
    forward = forward_function(network, jit_compile=jit_compile, precision=precision, fast=fast)
    weights = tf.constant(np.eye(NUM_STYLES, dtype=np.float32)[0])
    images = tf.constant(batch)
    return lambda: forward(images, weights).numpy()


def magenta_graph(magenta, shape):
    """Magenta's transform graph for one input shape: ``(graph, image placeholder, output, init)``.

    Mixture mode with style 0, as Magenta's transform script builds it for a dict
    ``--which_styles``.
    """
    model, ops = magenta
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, shape)
        weights = tf.constant(np.eye(NUM_STYLES, dtype=np.float32)[0])
        output = model.transform(image, normalizer_fn=ops.weighted_instance_norm,
                                 normalizer_params={"weights": weights,
                                                    "num_categories": NUM_STYLES,
                                                    "center": True, "scale": True})
        init = tf.compat.v1.global_variables_initializer()
    return graph, image, output, init


def magenta_case(magenta, batch):
    """Magenta's graph for this exact input shape, and a call that runs it."""
    graph, image, output, init = magenta_graph(magenta, batch.shape)
    session = tf.compat.v1.Session(graph=graph)
    session.run(init)
    return session, lambda: session.run(output, {image: batch})


def load_magenta():
    """Magenta's ``(model, ops)``, or ``(None, reason)`` when it is not installed."""
    try:
        from tests.magenta_reference import _import_magenta
        return _import_magenta(), None
    except ImportError as e:
        return None, f"Magenta's image_stylization code is not importable ({e})"


def run(args):
    network = pastiche_network(NUM_STYLES)
    magenta, magenta_note = (None, "disabled with --no_magenta") if args.no_magenta \
        else load_magenta()
    rng = np.random.default_rng(0)
    rows, notes = [], []
    if magenta_note:
        notes.append(magenta_note)
    for size in args.sizes:
        for batch_size in args.batches:
            if size >= 1024 and batch_size > 1 and not args.large_batches:
                notes.append(f"skipped {size}² x batch {batch_size}: ~1 GB per activation "
                             "tensor and minutes per case on 2 cores (use --large_batches)")
                continue
            batch = rng.random((batch_size, size, size, 3), dtype=np.float32)
            flops = conv_flops(size) * batch_size
            cases = [("nst_tf", False), ("nst_tf", True), ("nst_fast", False), ("nst_fast", True)]
            cases += [] if args.no_bfloat16 else [("nst_bf16", False)]
            cases += [("magenta", None)] if magenta else []
            for name, xla in cases:
                session = None
                if name.startswith("nst"):
                    call = nst_case(network, batch, xla,
                                    "bfloat16" if name == "nst_bf16" else "float32",
                                    fast=name != "nst_tf")
                else:
                    session, call = magenta_case(magenta, batch)
                stats = measure(call, args.min_seconds, args.max_repeats)
                first, wall, cpu, repeats = (stats["first_call_s"], stats["wall_s"],
                                             stats["cpu_s"], stats["repeats"])
                if session is not None:
                    session.close()
                rows.append({"impl": name, "xla": xla, "size": size, "batch": batch_size,
                             "first_call_s": first, "wall_s": wall, "cpu_s": cpu,
                             "ms_per_image": 1000 * wall / batch_size,
                             "images_per_s": batch_size / wall,
                             "gflops_per_s": flops / wall / 1e9, "repeats": repeats,
                             "load_average": os.getloadavg()[0]})
                print(_format_row(rows[-1]), flush=True)
    for row in rows:
        ref = next((r for r in rows if r["impl"] == "magenta" and r["size"] == row["size"]
                    and r["batch"] == row["batch"]), None)
        row["speedup_vs_magenta"] = None if ref is None else ref["wall_s"] / row["wall_s"]
        row["cpu_speedup_vs_magenta"] = None if ref is None else ref["cpu_s"] / row["cpu_s"]
    return rows, notes


HEADER = (f"{'impl':8s} {'xla':>5s} {'size':>5s} {'batch':>5s} {'ms/img':>9s} {'img/s':>7s} "
          f"{'GFLOP/s':>8s} {'first s':>8s} {'cpu s':>7s} {'x Magenta':>9s} {'cpu x Mag':>9s} "
          f"{'load':>5s}")


def _format_row(row):
    def ratio(value):
        return f"{value:9.2f}" if value is not None else f"{'-':>9s}"
    xla = "-" if row["xla"] is None else ("on" if row["xla"] else "off")
    return (f"{row['impl']:8s} {xla:>5s} {row['size']:5d} {row['batch']:5d} "
            f"{row['ms_per_image']:9.1f} {row['images_per_s']:7.2f} {row['gflops_per_s']:8.1f} "
            f"{row['first_call_s']:8.2f} {row['cpu_s']:7.2f} "
            f"{ratio(row.get('speedup_vs_magenta'))} {ratio(row.get('cpu_speedup_vs_magenta'))} "
            f"{row['load_average']:5.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--min_seconds", type=float, default=3.0,
                        help="time each case for at least this long (after 3 calls)")
    parser.add_argument("--max_repeats", type=int, default=10)
    parser.add_argument("--large_batches", action="store_true",
                        help="also run batch > 1 at 1024² (slow, several GB of memory)")
    parser.add_argument("--no_magenta", action="store_true")
    parser.add_argument("--no_bfloat16", action="store_true",
                        help="skip the precision='bfloat16' case")
    args = parser.parse_args(argv)

    print(f"TF {tf.__version__}, {os.cpu_count()} CPUs, intra-op threads "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, inter-op "
          f"{tf.config.threading.get_inter_op_parallelism_threads() or 'default'}; conv FLOPs "
          f"per 512² image {conv_flops(512) / 1e9:.1f} G")
    print(HEADER, flush=True)
    rows, notes = run(args)
    report("pastiche", "Summary (speed-ups from median wall time; 'cpu x Mag' from process CPU "
           "time):", HEADER, rows, _format_row, notes,
           conv_gflop_per_512_image=conv_flops(512) / 1e9)


if __name__ == "__main__":
    main()
