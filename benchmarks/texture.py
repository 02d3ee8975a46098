#!/usr/bin/env python
"""Texture networks vs Gatys optimization: time per sample and time to the same Gram loss.

In one run:

1. train a texture network (Ulyanov et al.; ``nst_tf.training.train(mode="texture")``) briefly
   on one exemplar (``--train_steps`` at ``--train_size``²);
2. time a sample (``nst_tf.synthesize``, compiled, after a warm-up) at 256² and 512²: the median
   of ``--repeats`` calls, measured before and after step 3 (interleaved, since the machine may
   be shared), and count the parameters;
3. compute the Gram loss (the training objective: VGG-19 relu1_1 … relu5_1, the paper's
   per-layer weights) of the network's 256² sample, and run Gatys optimization (L-BFGS, nst_tf's
   ``StyleObjective`` + ``optimize_image``, from uniform noise) on the same exemplar at 256² until
   it reaches that loss (or ``--max_steps``).

The speed-up is (optimization steps to reach the loss × median step time) / (median time per
sample); the optimization's one-time tracing is reported separately and not counted, nor is the
network's. VGG-19 uses ImageNet weights if Keras has them cached, else seeded random weights
(random CNN features are valid texture statistics; the table says which).

Example:
    python benchmarks/texture.py                          # table + benchmarks/results/texture.json
    python benchmarks/texture.py --train_steps=50 --repeats=3 --max_steps=50
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--texture", default=None, help="exemplar image (default: a shared style "
                   "image, else a generated one)")
    p.add_argument("--num_scales", type=int, default=6)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--norm", default="instance", choices=["batch", "instance"])
    p.add_argument("--train_steps", type=int, default=60)
    p.add_argument("--train_size", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--learning_rate", type=float, default=0.05)
    p.add_argument("--repeats", type=int, default=3, help="timed samples per size and round")
    p.add_argument("--max_steps", type=int, default=100, help="L-BFGS step cap")
    p.add_argument("--weights", default="auto", help="auto (ImageNet if cached, else random), "
                   "imagenet or random")
    p.add_argument("--output", default=os.path.join(RESULTS, "texture.json"))
    return p.parse_args(argv)


def exemplar(path):
    from nst_tf import images

    if path:
        return images.load_image(path, max_size=256)
    shared = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "shared", "data", "images", "style")
    for name in sorted(os.listdir(shared)) if os.path.isdir(shared) else ():
        if name.endswith((".jpg", ".png")):
            return images.load_image(os.path.join(shared, name), max_size=256)
    import numpy as np

    blocks = np.random.default_rng(0).random((16, 16, 3)).astype("float32")
    return np.kron(blocks, np.ones((16, 16, 1), "float32"))


def resolve_weights(choice):
    from nst_tf.features import WEIGHTS_FILES, keras_cache_dir

    if choice != "auto":
        return None if choice == "random" else choice
    cached = os.path.exists(os.path.join(keras_cache_dir(), WEIGHTS_FILES["vgg19"]))
    return "imagenet" if cached else None


def time_samples(synthesize, net, size, repeats):
    synthesize(net, size, seed=0)                           # trace + warm up
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        synthesize(net, size, seed=i + 1)
        times.append(time.perf_counter() - start)
    return times


class _Reached(Exception):
    pass


def main(argv=None):
    args = parse_args(argv)
    import numpy as np
    import tensorflow as tf

    import nst_tf
    from nst_tf import images, training
    from nst_tf.features import FeatureExtractor
    from nst_tf.objective import StyleObjective
    from nst_tf.optimize import initial_image, optimize_image
    from nst_tf.models.texture.recipe import TEXTURE_STYLE_LAYERS, ulyanov_style_weights

    weights = resolve_weights(args.weights)
    style = exemplar(args.texture)
    work = tempfile.mkdtemp(prefix="texture_bench_")
    style_path = os.path.join(work, "exemplar.png")
    images.save_image(style_path, style)

    # 1. Train briefly.
    start = time.perf_counter()
    net = training.train(None, style_path, os.path.join(work, "run"), mode="texture",
                         train_steps=args.train_steps, image_size=args.train_size,
                         batch_size=args.batch_size, learning_rate=args.learning_rate,
                         lr_schedule="constant", weights=weights, verbose=0, log_dir="",
                         network_options=dict(num_scales=args.num_scales,
                                              channels=args.channels, norm=args.norm, seed=0))
    train_seconds = time.perf_counter() - start

    # 3a. The yardstick: the Gram loss of the network's 256² sample.
    extractor = FeatureExtractor("vgg19", list(TEXTURE_STYLE_LAYERS), weights=weights,
                                 pooling="max", preprocessing="magenta", seed=0)
    objective = StyleObjective(extractor, None, [style], style_layers=ulyanov_style_weights(1.0),
                               style_weight=1.0, tv_weight=0.0)
    sample = nst_tf.synthesize(net, 256, seed=123)
    target = float(objective(sample)[1]["style"])
    noise_loss = float(objective(initial_image("noise", shape=(256, 256), seed=0)[None])[1]
                       ["style"])

    # 2. Sample times, round 1.
    sample_times = {256: [], 512: []}
    for size in sample_times:
        sample_times[size] += time_samples(nst_tf.synthesize, net, size, args.repeats)

    # 3b. Gatys L-BFGS from noise until the network sample's loss is reached.
    record = {"step_ends": [], "losses": []}

    class Watch:
        def on_begin(self, steps):
            record["begin"] = time.perf_counter()

        def on_step(self, step, image, loss, parts):
            record["step_ends"].append(time.perf_counter())
            record["losses"].append(float(parts["style"]))
            if parts["style"] <= target:
                raise _Reached()

    try:
        optimize_image(objective, initial_image("noise", shape=(256, 256), seed=0),
                       optimizer="lbfgs", steps=args.max_steps, freeze=False,
                       callbacks=[Watch()])
    except _Reached:
        pass
    ends = [record["begin"]] + record["step_ends"]
    step_times = np.diff(ends)
    steps_run = len(record["losses"])
    reached = bool(record["losses"]) and record["losses"][-1] <= target
    step_median = float(np.median(step_times[1:])) if steps_run > 1 else float(step_times[0])
    optimize_seconds = steps_run * step_median              # steady state, tracing excluded
    first_step = float(step_times[0])

    # 2. Sample times, round 2 (after the optimization, interleaved).
    for size in sample_times:
        sample_times[size] += time_samples(nst_tf.synthesize, net, size, args.repeats)
    ms = {size: 1000 * statistics.median(t) for size, t in sample_times.items()}

    result = {
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "tensorflow": tf.__version__, "vgg19_weights": weights or "random (seed 0)",
        "network": dict(num_scales=args.num_scales, channels=args.channels, norm=args.norm,
                        parameters=int(net.count_params())),
        "training": dict(steps=args.train_steps, size=args.train_size,
                         batch_size=args.batch_size, seconds=round(train_seconds, 1)),
        "ms_per_sample": {f"{s}x{s}": round(v, 2) for s, v in ms.items()},
        "gram_loss": {"network_sample_256": target, "uniform_noise_256": noise_loss,
                      "lbfgs_final": record["losses"][-1] if record["losses"] else None},
        "lbfgs": {"steps_to_reach": steps_run if reached else None, "reached": reached,
                  "median_step_s": round(step_median, 4), "first_step_s_incl_tracing":
                  round(first_step, 2), "seconds_to_reach": round(optimize_seconds, 2)},
        "speedup_256": round(optimize_seconds / (ms[256] / 1000), 1) if reached else None,
    }
    rows = [
        ("texture network parameters", f"{result['network']['parameters']:,}"),
        ("ms per 256² sample (median)", f"{ms[256]:.1f}"),
        ("ms per 512² sample (median)", f"{ms[512]:.1f}"),
        ("Gram loss: noise / network sample (256²)", f"{noise_loss:.4g} / {target:.4g}"),
        ("L-BFGS steps to reach it (256²)",
         f"{steps_run}" if reached else f"not reached in {steps_run} (final "
                                        f"{record['losses'][-1]:.4g})"),
        ("L-BFGS median step / time to reach", f"{step_median * 1000:.0f} ms / "
                                               f"{optimize_seconds:.1f} s"),
        ("speed-up of a sample (256²)", f"{result['speedup_256']}×" if reached else
         f"> {optimize_seconds / (ms[256] / 1000):.0f}×"),
        ("training", f"{args.train_steps} steps, {args.train_size}², batch {args.batch_size}, "
                     f"{train_seconds:.0f} s"),
        ("VGG-19 weights", result["vgg19_weights"]),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"| {'texture networks (Ulyanov et al.)':<{width}} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name:<{width}} | {value} |")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    print(f"JSON: {args.output}")
    return result


if __name__ == "__main__":
    main()
