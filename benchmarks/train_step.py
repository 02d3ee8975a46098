#!/usr/bin/env python
"""Speed of one training step of a feed-forward style network: images/s and achieved GFLOP/s.

Runs :class:`nst_tf.training.StyleTrainer` steps (CIN pastiche network, VGG-16 loss network with
average pooling, Magenta's layers and weights) on an in-memory batch, so the input pipeline is not
measured. Every combination of batch size, XLA on/off and mixed precision (none, mixed_float16,
mixed_bfloat16) is tried; a combination that fails is reported with its error and skipped.

GFLOP/s counts only convolution multiply-adds (2 FLOPs each), computed from the layer shapes:
the transformer's forward and backward passes (≈ 3× forward: input and weight gradients), the
loss network's forward pass on the stylized and content images and its backward pass to the
stylized image (input gradients only: its weights are frozen). Element-wise ops are ignored.

Usage::

    python benchmarks/train_step.py                       # 256², batch 4 and 16, all modes
    python benchmarks/train_step.py --size 128 --batches 4 --steps 2

Prints a table and writes ``benchmarks/results/train_step.json``. Timings on a shared machine
vary; the first step (tracing / XLA compilation) is excluded and reported separately.
"""

import argparse
import json
import os
import platform
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")  # one trainer per case: Keras' retracing warnings are expected

from nst_tf import training  # noqa: E402
from nst_tf.device import has_accelerator  # noqa: E402
from nst_tf.features import FeatureExtractor  # noqa: E402
from nst_tf.io import atomic_write  # noqa: E402
from nst_tf.networks import pastiche_network  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
#: VGG-16 convs up to block4_conv3 (Magenta's deepest loss layer): (input scale 1/2^k, Cin, Cout).
VGG16_TO_BLOCK4 = [(0, 3, 64), (0, 64, 64), (1, 64, 128), (1, 128, 128), (2, 128, 256),
                   (2, 256, 256), (2, 256, 256), (3, 256, 512), (3, 512, 512), (3, 512, 512)]


def transformer_conv_flops(network, size):
    """Forward conv FLOPs of one ``size``² image through ``network`` (from real output shapes)."""
    convs = [layer for layer in network.layers  # any layer with a 2-D conv kernel [kh,kw,in,out]
             if len(getattr(getattr(layer, "kernel", None), "shape", ())) == 4]
    probe = keras.Model(network.inputs, [layer.output for layer in convs])
    outputs = probe([np.zeros((1, size, size, 3), np.float32), np.zeros([1], np.int32)])
    total = 0
    for layer, out in zip(convs, outputs):
        kh, kw, cin, cout = layer.kernel.shape
        total += 2 * out.shape[1] * out.shape[2] * kh * kw * cin * cout
    return total


def vgg_conv_flops(size):
    """Forward conv FLOPs of one ``size``² image through VGG-16 up to block4_conv3."""
    return sum(2 * (size >> k) ** 2 * 9 * cin * cout for k, cin, cout in VGG16_TO_BLOCK4)


def step_flops(network, size, batch):
    """Approximate conv FLOPs of one training step (see the module docstring)."""
    return batch * (3 * transformer_conv_flops(network, size) + 3 * vgg_conv_flops(size))


def run_case(size, batch, xla, precision, steps, styles):
    """Time ``steps`` training steps after one warm-up step; returns a result dict."""
    keras.utils.set_random_seed(0)
    with training.dtype_policy("float32"):
        extractor = FeatureExtractor("vgg16", ["block1_conv2", "block2_conv2", "block3_conv3",
                                               "block4_conv3"], weights=None, pooling="avg",
                                     preprocessing="magenta")
        loss = training.PerceptualLoss(extractor, styles, training.MAGENTA_CONTENT_WEIGHTS,
                                       training.MAGENTA_STYLE_WEIGHTS)
    with training.dtype_policy(precision):
        network = pastiche_network(len(styles), style_input="labels")
    trainer = training.StyleTrainer(network, loss)
    trainer.compile(learning_rate=1e-3, jit_compile=xla)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((batch, size, size, 3), dtype=np.float32))
    labels = tf.constant(rng.integers(0, len(styles), batch).astype(np.int32))
    data = tf.data.Dataset.from_tensors((images, labels)).repeat()
    times = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, b, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, b, logs=None):
            times.append(time.perf_counter() - self.start)
            self.loss = float(logs["loss"])

    timer = Timer()
    trainer.fit(data, epochs=1, steps_per_epoch=steps + 1, verbose=0, callbacks=[timer],
                shuffle=False)
    if not np.isfinite(timer.loss):
        raise FloatingPointError(f"loss is {timer.loss}")
    per_step = float(np.median(times[1:]))
    flops = step_flops(network, size, batch)
    return {"size": size, "batch": batch, "xla": xla, "precision": precision or "float32",
            "first_step_s": times[0], "step_s": per_step, "images_per_s": batch / per_step,
            "gflop_per_step": flops / 1e9, "gflop_per_s": flops / 1e9 / per_step,
            "loss": timer.loss}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case")
    parser.add_argument("--precisions", nargs="+", default=["none", "mixed_float16",
                                                            "mixed_bfloat16"])
    parser.add_argument("--xla", nargs="+", default=["off", "on"])
    parser.add_argument("--output", default=os.path.join(RESULTS, "train_step.json"))
    parser.add_argument("--force", action="store_true",
                        help="also run float16 without XLA on the CPU (very slow)")
    args = parser.parse_args()

    styles = [np.random.default_rng(i).random((args.size, args.size, 3), dtype=np.float32)
              for i in range(4)]
    rows, failures = [], []
    header = (f"{'batch':>5} {'xla':>4} {'precision':>15} {'first s':>8} {'step s':>7} "
              f"{'img/s':>7} {'GFLOP':>7} {'GFLOP/s':>8}")
    print(f"train step, {args.size}x{args.size}, CIN pastiche network (N=4) + VGG-16 loss, "
          f"{os.cpu_count()} CPU cores, TF {tf.__version__}")
    print(header)
    print("-" * len(header))
    on_cpu = not has_accelerator()
    for batch in args.batches:
        for xla in args.xla:
            for precision in args.precisions:
                mp = None if precision == "none" else precision
                if on_cpu and xla == "off" and precision == "mixed_float16" and not args.force:
                    note = ("skipped: float16 without XLA on the CPU runs ~50x slower than "
                            "float32 (28 s vs 0.53 s per step at 64x64, batch 2); --force runs it")
                    failures.append({"batch": batch, "xla": False, "precision": precision,
                                     "error": note})
                    print(f"{batch:>5} {xla:>4} {precision:>15}  {note[:84]}")
                    continue
                try:
                    row = run_case(args.size, batch, xla == "on", mp, args.steps, styles)
                except Exception as exc:  # report and continue with the next combination
                    message = " ".join(str(exc).split())[:160] or type(exc).__name__
                    failures.append({"batch": batch, "xla": xla == "on", "precision": precision,
                                     "error": f"{type(exc).__name__}: {message}"})
                    print(f"{batch:>5} {xla:>4} {precision:>15}  FAILED: {type(exc).__name__}: "
                          f"{message[:90]}")
                    if os.environ.get("BENCH_DEBUG"):
                        traceback.print_exc()
                    continue
                rows.append(row)
                print(f"{batch:>5} {xla:>4} {row['precision']:>15} {row['first_step_s']:>8.1f} "
                      f"{row['step_s']:>7.2f} {row['images_per_s']:>7.2f} "
                      f"{row['gflop_per_step']:>7.0f} {row['gflop_per_s']:>8.1f}", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    report = {"benchmark": "train_step", "machine": {"cpu_count": os.cpu_count(),
                                                      "platform": platform.platform(),
                                                      "tensorflow": tf.__version__,
                                                      "keras": keras.__version__},
              "args": vars(args), "results": rows, "failures": failures}
    with atomic_write(args.output, mode="w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
