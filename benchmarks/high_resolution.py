#!/usr/bin/env python
"""Print-size Gatys: peak memory and seconds per step, whole image vs exact tiles; time to quality.

Three studies (run one, or all with ``all``):

* ``memory``: for each size (default 1024², 2048², 4096²) and mode (``whole``: the untiled
  compiled step; ``tilesN``: exact tiles with N px cores, :class:`nst_tf.tiling.TiledObjective`),
  one **fresh process** runs :func:`nst_tf.gatys.run` (VGG19, default layers, random weights:
  no download; L-BFGS, history 10) on a photo and a painting at that size for ``--steps``
  steps and reports its peak resident memory (``ru_maxrss``), the memory model's prediction
  (:func:`nst_tf.tiling.estimate_bytes`), the set-up and first step (building, targets,
  tracing) and the median seconds of the later steps, split for tiles into pass A (statistics),
  the adjoint, pass B (gradients), the whole-image terms (TV) and the rest (the optimizer
  update and bookkeeping). Cases whose predicted
  memory exceeds ``--max_memory`` are not run (the prediction is printed instead), so the
  script never pushes the machine into swap. Threads: 2 intra-op, 1 inter-op.
* ``paper``: the memory model's prediction for sizes too large to run here (8192², 16384²),
  whole and by tiles, for L-BFGS with 10, 5 and 3 pairs of history and for Adam.
* ``quality``: time to quality at ``--quality_size`` (1024): single-scale L-BFGS against the
  multi-scale warm start 256 → 512 → 1024 (:func:`nst_tf.transfer` with ``scales``; 300 and 100
  steps at the coarse levels, ``--coarse_steps``), each in its own process for ``--budget``
  seconds of its own CPU time (the steady measure on a shared machine; wall time is recorded
  too). Snapshots of the image (upsampled to full size when taken at a coarse level) are
  scored afterwards by **one** full-resolution objective (the same targets for both runs;
  scoring time is not counted); the table gives the loss at 25/50/100 % of the budget and the
  CPU seconds each run needs to come within 5 % and 1 % of the best loss either reaches, plus
  where the multi-scale run spent its time (per level).

Usage::

    python benchmarks/high_resolution.py memory --sizes 1024,2048 --steps 3
    python benchmarks/high_resolution.py memory --sizes 4096 --modes tiles1024 --steps 2
    python benchmarks/high_resolution.py paper         # predicted memory of 8192², 16384²
    python benchmarks/high_resolution.py quality --budget 1200

Prints tables and writes ``benchmarks/results/high_resolution_<study>.json``. Content:
the central 617² square of ``examples/images/coast_guard_boat.jpg``, style:
``examples/images/Theo_van_Doesburg_sq.jpg``, both resized to the size.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

RESULTS = os.path.join(ROOT, "benchmarks", "results")
IMAGES = os.path.join(ROOT, "examples", "images")  # in the repository (see its PROVENANCE.md)
CONTENT = os.path.join(IMAGES, "coast_guard_boat.jpg")
STYLE = os.path.join(IMAGES, "Theo_van_Doesburg_sq.jpg")


def load_pair(size):
    """The content's central square resized to ``size``², and the style at ``size``²."""
    from nst_tf import images, multiscale

    content, style = images.load_image(CONTENT), images.load_image(STYLE)
    side = min(content.shape[:2])
    top, left = (content.shape[0] - side) // 2, (content.shape[1] - side) // 2
    content = content[top:top + side, left:left + side]
    content = images.resize(content.astype(np.float32), multiscale.fit_size(content.shape, size))
    style = images.resize(style.astype(np.float32), multiscale.fit_size(style.shape, size))
    return content, style


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def pin_threads():
    """2 intra-op threads, 1 inter-op; a process whose TensorFlow already runs keeps its own
    (``all`` scores the quality snapshots in the process that ran the other studies)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(2)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # "cannot be modified after initialization"
        pass
    return tf


# --- memory: one case per process -----------------------------------------------------------

def memory_case(size, mode, steps, optimizer="lbfgs", history=10):
    """Run one case in this process, through :func:`nst_tf.gatys.run` as a user would (the
    peak includes its image copies); returns its row."""
    pin_threads()
    from nst_tf import gatys, tiling

    content, style = load_pair(size)
    core = int(mode[len("tiles"):]) if mode.startswith("tiles") else None
    cache = gatys.TransferCache()  # gives access to the objective (its seconds per pass)
    marks, cpu_marks, splits = [], [], []

    def seconds():
        objective = next(iter(cache.objectives.values()), None)
        return dict(getattr(objective, "seconds", {}))

    class Clock:
        def on_begin(self, steps):
            marks.append(time.perf_counter())
            cpu_marks.append(time.process_time())
            splits.append(seconds())

        def on_step(self, step, image, loss, parts):
            marks.append(time.perf_counter())
            cpu_marks.append(time.process_time())
            splits.append(seconds())
            print(f"    step {step}: {marks[-1] - marks[-2]:.1f} s", file=sys.stderr,
                  flush=True)

    start = time.perf_counter()
    gatys.run(content, style, size=size, steps=steps, weights=None, tile_size=core,
              callbacks=[Clock()], cache=cache, init="content", optimizer=optimizer,
              lbfgs_memory=history)
    times = list(np.diff(marks))
    objective = next(iter(cache.objectives.values()))
    extractor = cache.extractor
    tile_pixels = objective.grid.max_tile_pixels if core else None
    predicted = tiling.estimate_bytes(extractor, ["block4_conv2"], *content.shape[:2],
                                      tile_pixels=tile_pixels, optimizer=optimizer,
                                      memory=history)
    later = times[1:] or times
    cpu_times = list(np.diff(cpu_marks))
    row = {"cpu_step_s": float(np.median(cpu_times[1:] or cpu_times)), "cpu_times_s": cpu_times,
           "size": size, "mode": mode, "height": content.shape[0], "width": content.shape[1],
           "steps": steps, "optimizer": optimizer, "history": history,
           "peak_rss_gb": peak_rss_bytes() / 1e9,
           "predicted_gb": predicted / 1e9, "setup_s": marks[0] - start,
           "first_step_s": times[0], "step_s": float(np.median(later)), "times_s": times}
    if core:
        # The split of the later steps (the first one also computed the content targets and
        # traced every tile kind); the optimizer is what the step took besides the passes.
        per_step = []
        for (a, b), seconds_taken in zip(zip(splits, splits[1:]), times):
            split = {k: b.get(k, 0.0) - a.get(k, 0.0)
                     for k in ("pass_a", "adjoint", "pass_b", "full_image")}
            split["optimizer"] = seconds_taken - sum(split.values())
            per_step.append(split)
        later_splits = per_step[1:] or per_step
        split = {k: float(np.median([p[k] for p in later_splits])) for k in later_splits[0]}
        row.update(tiles=len(objective.grid), halo=objective.halo, core=core,
                   overhead=objective.grid.overhead, split_s=split, splits_s=per_step,
                   content_targets_s=objective.seconds["content_targets"])
    return row


def run_memory(args):
    rows = []
    from nst_tf import tiling
    from nst_tf.features import FeatureExtractor

    extractor = FeatureExtractor("vgg19", weights=None)
    budget = tiling.parse_memory(args.max_memory)
    for size in [int(s) for s in args.sizes.split(",")]:
        for mode in args.modes.split(","):
            core = int(mode[len("tiles"):]) if mode.startswith("tiles") else None
            if core and core >= size:
                continue
            tile = None if not core else min(size, core + 160) ** 2
            height, width = load_pair(size)[0].shape[:2]
            predicted = tiling.estimate_bytes(extractor, ["block4_conv2"], height, width,
                                              tile_pixels=tile, optimizer=args.optimizer,
                                              memory=args.lbfgs_memory)
            if predicted > budget:
                print(f"{size}² {mode}: predicted {predicted / 1e9:.1f} GB > "
                      f"{budget / 1e9:.0f} GB: not run", flush=True)
                rows.append({"size": size, "mode": mode, "height": height, "width": width,
                             "predicted_gb": predicted / 1e9, "skipped": True})
                continue
            print(f"{size}² {mode}: predicted {predicted / 1e9:.1f} GB, running "
                  f"{args.steps} steps in a fresh process...", flush=True)
            result = subprocess.run(
                [sys.executable, __file__, "case", "--size", str(size), "--mode", mode,
                 "--steps", str(args.steps), "--optimizer", args.optimizer, "--lbfgs_memory",
                 str(args.lbfgs_memory)], capture_output=True, text=True)
            sys.stderr.write(result.stderr[-3000:] if result.returncode else "")
            if result.returncode:
                rows.append({"size": size, "mode": mode, "failed": result.returncode})
                continue
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print("   ", format_memory_row(rows[-1]), flush=True)
    return rows


def format_memory_row(r):
    if r.get("skipped"):
        return (f"{r['size']:>5d}² {r['mode']:>10s} {'-':>6s} {r['predicted_gb']:7.1f} "
                f"(not run: predicted over --max_memory)")
    if r.get("failed"):
        return f"{r['size']:>5d}² {r['mode']:>10s} failed (exit {r['failed']})"
    cpu = f"{r['cpu_step_s']:7.1f}" if "cpu_step_s" in r else f"{'-':>7s}"
    text = (f"{r['size']:>5d}² {r['mode']:>10s} {r['peak_rss_gb']:6.1f} {r['predicted_gb']:7.1f} "
            f"{r['setup_s'] + r['first_step_s']:8.1f} {r['step_s']:7.1f} {cpu}")
    if "tiles" in r:
        split = r["split_s"]
        text += (f" {r['tiles']:5d} {r['overhead']:5.2f}  A {split['pass_a']:.1f}"
                 f" + adj {split['adjoint']:.2f} + B {split['pass_b']:.1f}"
                 f" + tv {split['full_image']:.2f} + opt {split['optimizer']:.2f}"
                 f" (content targets {r['content_targets_s']:.0f} s, once)")
    return text


MEMORY_HEADER = (f"{'size':>6s} {'mode':>10s} {'RSS GB':>6s} {'model GB':>7s} {'start s':>8s} "
                 f"{'step s':>7s} {'CPU s':>7s} {'tiles':>5s} {'px x':>5s}  split of a later "
                 "step (wall s)")


def run_paper(args):
    """Predicted peak memory (the fitted model) of sizes too large to run here, per optimizer."""
    from nst_tf import tiling
    from nst_tf.features import FeatureExtractor

    extractor = FeatureExtractor("vgg19", weights=None)
    halo, _ = tiling.halo_for(extractor, extractor.layers)
    rows = []
    for size in [int(s) for s in args.paper_sizes.split(",")]:
        for optimizer, memory in (("lbfgs", 10), ("lbfgs", 5), ("lbfgs", 3), ("adam", 0)):
            row = {"size": size, "optimizer": optimizer if optimizer == "adam"
                   else f"lbfgs m={memory}"}
            for mode, tile in (("whole", None), ("tiles1024", (1024 + 2 * halo) ** 2)):
                row[mode] = tiling.estimate_bytes(extractor, ["block4_conv2"], size, size,
                                                  tile_pixels=tile, optimizer=optimizer,
                                                  memory=memory or 10) / 1e9
            rows.append(row)
    return rows


# --- time to quality ------------------------------------------------------------------------

#: Steps at the coarse levels of the multi-scale run (jcjohnson/neural-style's 500 → 200 → ...
#: and SPST-fast's 600/3^s spend most steps at the coarsest level).
QUALITY_STEPS = [300, 100]


def quality_run(kind, size, budget, snapshot_every, schedule, coarse_steps=QUALITY_STEPS):
    """One optimization in this process for ``budget`` CPU seconds; snapshots go to an npz.

    Time is this process's CPU time (``time.process_time``): on a shared machine it is what the
    run itself got, whatever else ran; wall time is recorded too. Snapshot scoring happens
    later, in another process, so it is not counted.
    """
    pin_threads()
    from nst_tf import gatys, images

    content, style = load_pair(size)
    sizes = [int(v) for v in schedule.split(",")] if kind == "multiscale" else None
    steps = list(coarse_steps)[:len(sizes) - 1] + [100000] if sizes else 100000
    snapshots, marks = [], []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    state = {"last": -1e9, "level": 0}

    def now():
        return time.process_time() - cpu0, time.perf_counter() - wall0

    class Clock:
        def on_begin(self, steps):
            cpu, wall = now()
            marks.append((cpu, wall, f"level {sizes[state['level']] if sizes else size} px "
                                     "starts"))

        def on_step(self, step, image, loss, parts):
            cpu, wall = now()
            if cpu - state["last"] >= snapshot_every:
                snap = np.clip(np.asarray(image)[0], 0, 1)
                if snap.shape[:2] != content.shape[:2]:
                    snap = images.resize(snap, content.shape[:2])
                snapshots.append((cpu, wall, snap.astype(np.float16)))
                state["last"] = now()[0]  # the copy above is not the run's work
            if cpu > budget:
                raise KeyboardInterrupt  # gatys.run returns the image so far

        def on_end(self, step, image, loss, parts):
            cpu, wall = now()
            marks.append((cpu, wall, f"level ends after {step} steps"))
            state["level"] += 1

    result = gatys.run(content, style, size=size, scales=sizes, steps=steps, weights=None,
                       callbacks=[Clock()], seed=0, init="content")
    cpu, wall = now()
    snapshots.append((cpu, wall, result.image.astype(np.float16)))
    path = os.path.join(RESULTS, f"quality_{kind}.npz")
    np.savez(path, cpu=np.array([c for c, _, _ in snapshots]),
             wall=np.array([w for _, w, _ in snapshots]),
             images=np.stack([im for _, _, im in snapshots]))
    return {"kind": kind, "snapshots": path, "marks": marks, "steps": result.steps,
            "sizes": result.sizes, "peak_rss_gb": peak_rss_bytes() / 1e9}


def score(size, paths):
    """The full-resolution objective of every snapshot (one objective for all)."""
    tf = pin_threads()
    from nst_tf.features import FeatureExtractor
    from nst_tf.objective import StyleObjective

    content, style = load_pair(size)
    objective = StyleObjective(FeatureExtractor("vgg19", weights=None), content, [style])
    evaluate = tf.function(lambda x: objective(x)[0])
    curves = {}
    for kind, path in paths.items():
        data = np.load(path)
        curves[kind] = [(float(c), float(w), float(evaluate(tf.constant(
            im[None].astype(np.float32))))) for c, w, im in zip(data["cpu"], data["wall"],
                                                                data["images"])]
    return curves


def time_to(curve, target):
    """CPU seconds of the first snapshot at or below ``target`` (None: never)."""
    for cpu, _, loss in curve:
        if loss <= target:
            return cpu
    return None


def loss_at(curve, seconds):
    """The loss of the last snapshot taken by ``seconds`` CPU seconds (None before any)."""
    taken = [loss for cpu, _, loss in curve if cpu <= seconds]
    return taken[-1] if taken else None


def run_quality(args):
    runs = {}
    for kind in ("single", "multiscale"):
        print(f"{kind}: {args.budget:.0f} s at {args.quality_size} px in a fresh process...",
              flush=True)
        result = subprocess.run(
            [sys.executable, __file__, "quality_run", "--kind", kind, "--size",
             str(args.quality_size), "--budget", str(args.budget), "--snapshot_every",
             str(args.snapshot_every), "--schedule", args.schedule, "--coarse_steps",
             args.coarse_steps], capture_output=True,
            text=True)
        if result.returncode:
            sys.stderr.write(result.stderr[-3000:])
            raise SystemExit(f"{kind} run failed")
        runs[kind] = json.loads(result.stdout.strip().splitlines()[-1])
    curves = score(args.quality_size, {k: r["snapshots"] for k, r in runs.items()})
    best = min(loss for curve in curves.values() for _, _, loss in curve)
    rows = []
    for kind, curve in curves.items():
        row = {"kind": kind, "best_loss": min(l for _, _, l in curve),
               "steps": runs[kind]["steps"],
               "marks": runs[kind]["marks"], "peak_rss_gb": runs[kind]["peak_rss_gb"],
               "curve": curve}
        for eps in (0.05, 0.01):
            row[f"t_{int(eps * 100)}pct"] = time_to(curve, best * (1 + eps))
        for fraction in (0.25, 0.5, 1.0):
            row[f"loss_at_{int(fraction * 100)}pct"] = loss_at(curve, fraction * args.budget)
        rows.append(row)
    return rows, best


def format_quality_row(r):
    def sec(v):
        return f"{v:8.0f}" if v is not None else f"{'never':>8s}"

    def loss(v):
        return f"{v:10.4g}" if v is not None else f"{'-':>10s}"

    return (f"{r['kind']:>10s} {loss(r['loss_at_25pct'])} {loss(r['loss_at_50pct'])} "
            f"{loss(r['loss_at_100pct'])} {r['best_loss']:10.4g} {sec(r['t_5pct'])} "
            f"{sec(r['t_1pct'])} {r['steps']:6d}")


QUALITY_HEADER = (f"{'run':>10s} {'L @25%':>10s} {'L @50%':>10s} {'L @100%':>10s} "
                  f"{'best L':>10s} {'t(5%) s':>8s} {'t(1%) s':>8s} {'steps':>6s}  "
                  "(L @x%: loss at x % of the budget; t(e): CPU s to within e of the best)")


# --- main -------------------------------------------------------------------------------------

def write(name, payload):
    from nst_tf.io import atomic_write

    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"high_resolution_{name}.json")
    with atomic_write(path, "w") as f:
        json.dump(payload, f, indent=2)
    print("wrote", path)


def machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2 ** 30
    return {"cpu": cpu, "cpus": os.cpu_count(), "memory_gib": round(total, 1),
            "load_average": os.getloadavg()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study", choices=["memory", "paper", "quality", "all", "case",
                                          "quality_run"])
    parser.add_argument("--sizes", default="1024,2048,4096")
    parser.add_argument("--modes", default="whole,tiles512,tiles1024")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--optimizer", default="lbfgs", choices=["lbfgs", "adam"])
    parser.add_argument("--lbfgs_memory", type=int, default=10)
    parser.add_argument("--max_memory", default="20GB", help="cases predicted above it are "
                        "not run")
    parser.add_argument("--paper_sizes", default="4096,8192,16384")
    parser.add_argument("--quality_size", type=int, default=1024)
    parser.add_argument("--budget", type=float, default=1200.0, help="CPU seconds per run "
                        "(2 threads: about half as many wall seconds on a quiet machine)")
    parser.add_argument("--snapshot_every", type=float, default=30.0, help="CPU seconds")
    parser.add_argument("--schedule", default="256,512,1024", help="multi-scale sizes; the "
                        "coarse levels run --coarse_steps, the last one until the budget")
    parser.add_argument("--coarse_steps", default=",".join(map(str, QUALITY_STEPS)),
                        help="steps at the coarse levels of the multi-scale run")
    # internal: one case in this process
    parser.add_argument("--size", type=int)
    parser.add_argument("--mode")
    parser.add_argument("--kind")
    args = parser.parse_args()

    if args.study == "case":
        print(json.dumps(memory_case(args.size, args.mode, args.steps, args.optimizer,
                                     args.lbfgs_memory)))
        return
    if args.study == "quality_run":
        os.makedirs(RESULTS, exist_ok=True)
        print(json.dumps(quality_run(args.kind, args.size, args.budget, args.snapshot_every,
                                     args.schedule,
                                     [int(v) for v in args.coarse_steps.split(",")])))
        return
    import tensorflow as tf

    info = {"machine": machine(), "tensorflow": tf.__version__, "weights": "random (seeded)",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if args.study in ("memory", "all"):
        rows = run_memory(args)
        optimizer = ("Adam" if args.optimizer == "adam"
                     else f"L-BFGS (history {args.lbfgs_memory})")
        print(f"\nGatys, VGG19 default layers, {optimizer}; each case in its own process; "
              f"{info['machine']['cpu']}, {info['machine']['cpus']} cores, load average "
              f"{info['machine']['load_average'][0]:.1f}")
        print(MEMORY_HEADER)
        for row in rows:
            print(format_memory_row(row))
        write("memory", dict(info, args=vars(args), rows=rows))
    if args.study in ("paper", "all"):
        rows = run_paper(args)
        print("\nPredicted peak memory, GB (nst_tf.tiling.estimate_bytes, fitted to the measured "
              "peaks above); tiles: 1024 px cores")
        print(f"{'size':>7s} {'optimizer':>12s} {'whole':>8s} {'tiles1024':>10s}")
        for row in rows:
            print(f"{row['size']:>6d}² {row['optimizer']:>12s} {row['whole']:8.1f} "
                  f"{row['tiles1024']:10.1f}")
        write("paper", dict(info, args=vars(args), rows=rows))
    if args.study in ("quality", "all"):
        rows, best = run_quality(args)
        print(f"\nTime to quality at {args.quality_size} px, {args.budget:.0f} CPU s per run "
              f"(times below: CPU s of the run's own process), scored by one full-resolution "
              f"objective (best {best:.4g})")
        print(QUALITY_HEADER)
        for row in rows:
            print(format_quality_row(row))
        multi = next(r for r in rows if r["kind"] == "multiscale")
        print("multi-scale time line (CPU s / wall s): " + "; ".join(
            f"{cpu:.0f}/{wall:.0f} {what}" for cpu, wall, what in multi["marks"]))
        single = next(r for r in rows if r["kind"] == "single")
        for key in ("t_5pct", "t_1pct"):
            if single[key] and multi[key]:
                print(f"{key}: multi-scale {single[key] / multi[key]:.1f}x sooner")
        write("quality", dict(info, args=vars(args), best=best, rows=rows))


if __name__ == "__main__":
    main()
