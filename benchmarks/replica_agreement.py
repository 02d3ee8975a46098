#!/usr/bin/env python
"""Do replicas agree with one device? Arbitrary-style training (batch norm in training mode in
the Inception trunk and the contract convs), first step, on one device, on two replicas of one
process (``MirroredStrategy`` over two logical CPUs) and on two workers over loopback.

Each run is its own process (the strategy, and the logical CPUs, must exist before any
TensorFlow op): ``--mode=arbitrary``, random weights (quarter-width networks), ``--image_size``
crops, global batch ``--batch_size``, one step. It reports the first step's loss (computed before
any update) and the batch-norm moving statistics after that step, which depend on that step's
batch statistics alone. With per-replica statistics each replica normalizes its own share of
the batch; with cross-replica statistics (:mod:`nst_tf.batch_norm`) every configuration should
give one device's numbers to float32 rounding.

Usage::

    python benchmarks/replica_agreement.py [--image_size 96] [--batch_size 4] [--parallel]

Prints a table and writes ``benchmarks/results/replica_agreement.json``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
ENV = {"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}


def make_images(folder, count=12, seed=0):
    """``count`` content PNGs of mixed sizes (110 to 159 px) and 3 style PNGs of 160 px: the
    multi-worker benchmark's images (smooth random colour fields)."""
    from multiworker import make_images as smooth_images

    return smooth_images(folder, count, seed, sizes=(110, 160), style_size=160)


def child(spec):
    """One run (in its own process): print ``RESULT {json}``; the moving statistics go to
    ``spec["stats"]`` (.npz)."""
    import tensorflow as tf

    if spec["how"] == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from nst_tf.training import make_strategy, train

    strategy = make_strategy({"one": "default", "mirrored": "mirrored",
                              "workers": "multi_worker"}[spec["how"]])
    net = train(spec["content"], spec["styles"], spec["train_dir"], mode="arbitrary",
                batch_size=spec["batch_size"], image_size=spec["image_size"], train_steps=1,
                strategy=strategy, weights="random", alpha=0.25, depth_multiplier=0.25,
                content_weights={"block2_conv2": 1.0}, style_weights={"block1_conv2": 1e-3},
                save_every=0, log_dir="", verbose=0)
    stats = {w.path: w.numpy() for w in net.weights if "moving_" in w.path}
    if net.worker.is_chief:
        np.savez(spec["stats"], **stats)
    print("RESULT " + json.dumps({"loss": float(net.train_history["loss"][-1]),
                                  "replicas": strategy.num_replicas_in_sync}), flush=True)


def run(how, args, folder, content, styles):
    """One configuration: ``{"loss", "stats", "replicas", "seconds"}``."""
    from nst_tf.training.local_cluster import run_workers

    stats = os.path.join(folder, f"{how}.npz")
    spec = {"how": how, "content": content, "styles": styles, "stats": stats,
            "train_dir": os.path.join(folder, how), "image_size": args.image_size,
            "batch_size": args.batch_size}
    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
    start = time.perf_counter()
    if how == "workers":
        results = run_workers(lambda i: command, workers=2, env=ENV, timeout=args.timeout)
        outputs = [r.output for r in results]
        failed = any(r.returncode != 0 for r in results)
    else:
        try:
            done = subprocess.run(command, env={**os.environ, **ENV}, capture_output=True,
                                  text=True, timeout=args.timeout)
            outputs, failed = [done.stdout + done.stderr], done.returncode != 0
        except subprocess.TimeoutExpired:
            outputs, failed = [f"still running after --timeout={args.timeout:g} s"], True
    lines = [line for line in outputs[0].splitlines() if line.startswith("RESULT ")]
    if failed or not lines:
        raise SystemExit(f"{how} failed:\n" + "\n".join(o[-3000:] for o in outputs))
    result = json.loads(lines[0][len("RESULT "):])
    with np.load(stats) as f:
        result["stats"] = {k: f[k] for k in f.files}
    result["seconds"] = time.perf_counter() - start
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--parallel", action="store_true",
                        help="run the three configurations at once (shorter, seconds mean less)")
    parser.add_argument("--label", default="", help="a word for the notes (e.g. before/after)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child))

    from common import report

    with tempfile.TemporaryDirectory(prefix="nst-replicas-") as folder:
        content, styles = make_images(folder)
        hows = ("one", "mirrored", "workers")
        if args.parallel:      # each in its own processes anyway: only the seconds change
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(hows)) as pool:
                futures = {how: pool.submit(run, how, args, folder, content, styles)
                           for how in hows}
                runs = {how: future.result() for how, future in futures.items()}
        else:
            runs = {how: run(how, args, folder, content, styles) for how in hows}
    one = runs["one"]
    rows = []
    for how, r in runs.items():
        stats = [np.abs(r["stats"][k] - one["stats"][k]).max() / max(np.abs(one["stats"][k])
                                                                     .max(), 1e-30)
                 for k in one["stats"]]
        absolute = max(float(np.abs(r["stats"][k] - one["stats"][k]).max())
                       for k in one["stats"])
        rows.append({"run": how, "replicas": r["replicas"], "loss": r["loss"],
                     "loss_rel_diff": abs(r["loss"] - one["loss"]) / abs(one["loss"]),
                     "stats_max_abs_diff": absolute, "stats_max_rel_diff": float(max(stats)),
                     "seconds": r["seconds"]})
    names = {"one": "one device", "mirrored": "2 replicas (MirroredStrategy, 2 logical CPUs)",
             "workers": "2 workers (loopback)"}
    report("replica_agreement",
           f"Arbitrary-style first step: replicas vs one device ({args.image_size} px crops, "
           f"global batch {args.batch_size}, {len(one['stats'])} moving statistics)",
           f"{'run':<46}  {'first-step loss':>15}  {'rel. diff':>9}  {'stats |diff|':>12}  "
           f"{'stats rel.':>10}  {'s':>5}",
           rows, lambda r: f"{names[r['run']]:<46}  {r['loss']:>15.3f}  "
                           f"{r['loss_rel_diff']:>9.2e}  {r['stats_max_abs_diff']:>12.2e}  "
                           f"{r['stats_max_rel_diff']:>10.2e}  {r['seconds']:>5.0f}",
           notes=[f"{args.label}: diffs are against one device; stats rel. = max |diff| of a "
                  f"moving statistic / its largest value"] if args.label else [],
           args=vars(args))


if __name__ == "__main__":
    main()
