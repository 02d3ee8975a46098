#!/usr/bin/env python
"""AdaIN stylize speed: nst_tf vs pytorch-AdaIN's forward, at 256², 512² and 1024².

Times one content image through encoder (VGG to relu4_1) + AdaIN + decoder with the style's
statistics already cached (the style image is encoded once, outside the timing):

* ``nst_tf``: :func:`nst_tf.stylize` itself (image validation, the compiled forward function,
  clamping, NumPy out) on a full-size :func:`nst_tf.networks.adain_network` (fast decoder, the
  default of :func:`nst_tf.load_adain`), XLA off as ``jit_compile="auto"`` picks on a CPU;
* ``pytorch``: pytorch-AdaIN's forward (``decoder(adain(vgg(content), cached style features))``
  under ``torch.no_grad()``, NCHW float32, the same random-weight architecture written out from
  its ``net.py``) in **its own process** (``--torch_python``, default ``/work/venvs/torch``'s
  python when it exists; skipped with a note otherwise).

Weights are random (speed does not depend on them). The first call is excluded. The two run
interleaved, round by round (``--rounds``), so a busy neighbour on a shared machine slows both;
the median of all rounds is reported, with wall and CPU time.

Usage::

    python benchmarks/adain.py                        # 256, 512, 1024
    python benchmarks/adain.py --sizes 512 --rounds 5

Prints a table and writes ``benchmarks/results/adain.json``.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
DEFAULT_TORCH = "/work/venvs/torch/bin/python"

# The PyTorch worker: reads "size repeats" lines, answers "wall cpu" medians (JSON) per line.
TORCH_WORKER = r"""
import json, sys, time
import numpy as np
import torch
import torch.nn as nn

def conv(cin, cout):
    return [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(cin, cout, (3, 3))]

vgg = [nn.Conv2d(3, 3, (1, 1))]
cin = 3
for block, (w, n) in enumerate(zip((64, 128, 256, 512), (2, 2, 4, 1)), start=1):
    for _ in range(n):
        vgg += conv(cin, w) + [nn.ReLU()]
        cin = w
    if block < 4:
        vgg.append(nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True))
vgg = nn.Sequential(*vgg).eval()
dec = []
for item in [(512, 256), "up", (256, 256), (256, 256), (256, 256), (256, 128), "up",
             (128, 128), (128, 64), "up", (64, 64), (64, 3)]:
    if item == "up":
        dec.append(nn.Upsample(scale_factor=2, mode="nearest"))
    else:
        dec += conv(*item) + ([nn.ReLU()] if item[1] != 3 else [])
decoder = nn.Sequential(*dec).eval()

def mean_std(f, eps=1e-5):
    n, c = f.shape[:2]
    flat = f.reshape(n, c, -1)
    return flat.mean(2).reshape(n, c, 1, 1), (flat.var(2) + eps).sqrt().reshape(n, c, 1, 1)

with torch.no_grad():
    style_mean, style_std = mean_std(vgg(torch.rand(1, 3, 512, 512)))

def forward(content):
    with torch.no_grad():
        f = vgg(content)
        m, s = mean_std(f)
        return decoder((f - m) / s * style_std + style_mean).clamp(0, 1).numpy()

print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
for line in sys.stdin:
    size, repeats = map(int, line.split())
    x = torch.rand(1, 3, size, size)
    forward(x)
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        forward(x)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    print(json.dumps({"wall": walls, "cpu": cpus}), flush=True)
"""


class TorchWorker:
    """pytorch-AdaIN's forward in a child process."""

    def __init__(self, python):
        self.process = subprocess.Popen([python, "-c", TORCH_WORKER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self.process.stdout.readline())

    def run(self, size, repeats):
        self.process.stdin.write(f"{size} {repeats}\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per size")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per round")
    parser.add_argument("--torch_python", default=DEFAULT_TORCH if os.path.exists(DEFAULT_TORCH)
                        else None, help="python with torch installed ('' to skip PyTorch)")
    args = parser.parse_args()

    sys.path.insert(0, ROOT)
    import numpy as np
    import tensorflow as tf

    import nst_tf
    from nst_tf.io import atomic_write
    from nst_tf.networks import adain_network

    net = adain_network()
    rng = np.random.default_rng(0)
    style = rng.random((512, 512, 3), dtype=np.float32)
    worker = TorchWorker(args.torch_python) if args.torch_python else None
    if worker is None:
        print("PyTorch: skipped (no --torch_python)")
    rows = []
    for size in args.sizes:
        content = rng.random((size, size, 3), dtype=np.float32)

        def ours():
            return nst_tf.stylize(content, style, model=net, style_size=None)

        ours()  # traces, encodes and caches the style
        tf_wall, tf_cpu, pt_wall, pt_cpu = [], [], [], []
        repeats = args.repeats if size < 1024 else 1     # keeps the default run to minutes
        for _ in range(args.rounds):
            for _ in range(repeats):
                w, c = time.perf_counter(), time.process_time()
                ours()
                tf_wall.append(time.perf_counter() - w)
                tf_cpu.append(time.process_time() - c)
            if worker:
                result = worker.run(size, repeats)
                pt_wall += result["wall"]
                pt_cpu += result["cpu"]
        row = {"size": size, "nst_tf_ms": 1e3 * float(np.median(tf_wall)),
               "nst_tf_cpu_ms": 1e3 * float(np.median(tf_cpu))}
        if worker:
            row.update(pytorch_ms=1e3 * float(np.median(pt_wall)),
                       pytorch_cpu_ms=1e3 * float(np.median(pt_cpu)))
            row["speedup"] = row["pytorch_ms"] / row["nst_tf_ms"]
        rows.append(row)
        print(f"  {size}²: {row}", flush=True)
    if worker:
        worker.close()

    print("\nAdaIN stylize, one image, style statistics cached (medians; wall and process CPU)")
    print(f"{'size':>6} {'nst_tf ms':>10} {'(cpu)':>8} {'pytorch ms':>11} {'(cpu)':>8} "
          f"{'speedup':>8} {'(cpu)':>6}")
    for r in rows:
        pt = (f"{r['pytorch_ms']:11.1f} {r['pytorch_cpu_ms']:8.1f} {r['speedup']:7.2f}x "
              f"{r['pytorch_cpu_ms'] / r['nst_tf_cpu_ms']:5.2f}x") if "pytorch_ms" in r else \
            f"{'-':>11} {'-':>8} {'-':>8} {'-':>6}"
        print(f"{str(r['size']) + '²':>6} {r['nst_tf_ms']:10.1f} {r['nst_tf_cpu_ms']:8.1f} {pt}")
    record = {"benchmark": "adain", "rows": rows, "tensorflow": tf.__version__,
              "torch": worker.info if worker else None, "machine": platform.platform(),
              "cpus": os.cpu_count(), "rounds": args.rounds, "repeats": args.repeats}
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "adain.json")
    with atomic_write(path, mode="w") as f:
        json.dump(record, f, indent=1)
    print(json.dumps(record))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
