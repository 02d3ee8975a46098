#!/usr/bin/env python
"""Multi-worker training on one machine: steps per second of 1 and 2 local workers, and how long
the survivor takes to notice a dead worker.

Every run is ``tests/multiworker_worker.py`` on loopback (:mod:`nst_tf.training.local_cluster`),
each worker its own process with ``MultiWorkerMirroredStrategy`` from its ``TF_CONFIG`` (one
worker: a cluster of one). The training is a small CIN run (half-width pastiche network, random
VGG-16 cut at block 3, 3 styles, ``--image_size`` crops, global batch ``--batch_size``, the same
for 1 and 2 workers: two workers each take half of it). Rates are the trainer's own
``images_per_sec`` (:class:`nst_tf.training.ThroughputCallback`: the first, compiling step left
out) divided by the global batch.

Two workers on one machine share its cores: on a 2-core machine they cannot be faster than one
process using both cores, and the ring all-reduce over loopback adds its cost. The table measures
that overhead, not the scaling across hosts (which needs hosts).

Then the dead-worker check: worker 1 SIGKILLs itself after step ``--kill_step``; the time from its
death to worker 0's :class:`~nst_tf.training.distribute.WorkerLostError`.

Usage::

    python benchmarks/multiworker.py [--steps 12] [--batch_size 8] [--image_size 64] [--repeats 2]

Prints a table and writes ``benchmarks/results/multiworker.json``.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "multiworker_worker.py")
ENV = {"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}


def make_images(folder, count=32, seed=0, sizes=(96, 160), style_size=128):
    """``count`` content PNGs with sides drawn from ``sizes`` (low inclusive, high exclusive) and
    3 ``style_size`` square style PNGs (smooth random colour fields)."""
    from PIL import Image

    rng = np.random.default_rng(seed)

    def picture(height, width):
        coarse = (rng.random((max(2, height // 16), max(2, width // 16), 3)) * 255)
        return np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((width, height),
                                                                           Image.BICUBIC))

    content = os.path.join(folder, "content")
    os.makedirs(content)
    for i in range(count):
        Image.fromarray(picture(int(rng.integers(*sizes)), int(rng.integers(*sizes)))) \
            .save(os.path.join(content, f"c{i:03d}.png"))
    styles = []
    for i in range(3):
        styles.append(os.path.join(folder, f"style{i}.png"))
        Image.fromarray(picture(style_size, style_size)).save(styles[-1])
    return content, styles


def options(args, steps):
    return dict(mode="cin", batch_size=args.batch_size, image_size=args.image_size,
                weights=None, alpha=0.5, train_steps=steps, save_every=0, log_dir="",
                verbose=0, content_weights={"block3_conv3": 1.0},
                style_weights={"block1_conv2": 1e-3, "block2_conv2": 1e-3,
                               "block3_conv3": 1e-3})


def run(workers, spec, timeout):
    from nst_tf.training.local_cluster import run_workers

    start = time.perf_counter()
    results = run_workers(lambda i: [sys.executable, WORKER, json.dumps(spec)], workers=workers,
                          env=ENV, timeout=timeout)
    return results, time.perf_counter() - start


def result_of(output):
    lines = [json.loads(line[len("RESULT "):]) for line in output.splitlines()
             if line.startswith("RESULT ")]
    return lines[0] if lines else None


def throughput(args, folder, content, styles, workers, repeat):
    spec = {"runs": [{"content": content, "styles": styles,
                      "train_dir": os.path.join(folder, f"run{workers}-{repeat}"),
                      "options": options(args, args.steps)}]}
    results, wall = run(workers, spec, args.timeout)
    chief = result_of(results[0].output)
    if chief is None or any(r.returncode for r in results):
        raise SystemExit(f"{workers} worker(s) failed:\n" + results[0].output[-3000:])
    images_per_sec = chief["history"]["images_per_sec"][-1]
    return {"workers": workers, "repeat": repeat, "global_batch": args.batch_size,
            "per_worker_batch": args.batch_size // workers, "steps": args.steps,
            "steps_per_sec": images_per_sec / args.batch_size, "images_per_sec": images_per_sec,
            "train_call_s": chief["seconds"], "wall_s": wall}


def detection(args, folder, content, styles):
    spec = {"collective_timeout": args.collective_timeout, "runs": [{
        "content": content, "styles": styles, "train_dir": os.path.join(folder, "killed"),
        "options": options(args, args.kill_step + 4),
        "kill": {"task": 1, "step": args.kill_step}}]}
    results, _ = run(2, spec, args.timeout)
    killed = re.search(r"KILLED at step \d+ t=([\d.]+)", results[1].output)
    failed = re.search(r"FAILED t=([\d.]+)", results[0].output)
    error = next((line for line in results[0].output.splitlines() if line.startswith("ERROR")),
                 None)
    if not killed or not failed:
        raise SystemExit("the dead-worker run did not go as planned:\n"
                         + results[0].output[-3000:] + results[1].output[-3000:])
    return {"detect_s": float(failed.group(1)) - float(killed.group(1)),
            "exit_after_s": results[0].seconds - results[1].seconds,
            "returncode": results[0].returncode, "error": error}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--kill_step", type=int, default=3)
    parser.add_argument("--collective_timeout", type=float, default=60)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    from common import report

    with tempfile.TemporaryDirectory(prefix="nst-multiworker-") as folder:
        content, styles = make_images(folder)
        rows = [throughput(args, folder, content, styles, n, r)
                for r in range(args.repeats) for n in (1, 2)]     # alternating: 1, 2, 1, 2...
        dead = detection(args, folder, content, styles)
    median = {n: float(np.median([r["steps_per_sec"] for r in rows if r["workers"] == n]))
              for n in (1, 2)}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    notes = [f"2 workers / 1 worker = {median[2] / median[1]:.2f}x (medians of "
             f"{args.repeats} runs each) on {os.cpu_count()} cores: both workers share this "
             f"machine's cores, so this is the cost of the collectives and of a second process, "
             f"not scaling across hosts; load average at the end {load:.1f}",
             f"dead worker (SIGKILL after step {args.kill_step}): worker 0 raised its error "
             f"{dead['detect_s']:.1f} s after the death and exited with code "
             f"{dead['returncode']} {dead['exit_after_s']:.1f} s after it; "
             f"collective_timeout={args.collective_timeout:g} s",
             f"worker 0's error: {dead['error']}"]
    report("multiworker",
           f"Multi-worker CIN training on loopback ({args.image_size} px, global batch "
           f"{args.batch_size}, {args.steps} steps)",
           f"{'run':>3}  {'workers':>7}  {'batch/worker':>12}  {'steps/s':>8}  {'images/s':>8}  "
           f"{'train() s':>9}  {'wall s':>7}",
           rows, lambda r: f"{r['repeat']:>3}  {r['workers']:>7}  {r['per_worker_batch']:>12}  "
                           f"{r['steps_per_sec']:>8.2f}  {r['images_per_sec']:>8.1f}  "
                           f"{r['train_call_s']:>9.1f}  {r['wall_s']:>7.1f}",
           notes=notes, dead_worker=dead, args=vars(args))


if __name__ == "__main__":
    main()
