#!/usr/bin/env python
"""Whole-dataset stylization speed: the Stylized-ImageNet recipe on Beam vs stylize-datasets.

One generated dataset (ImageNet-like JPEGs in class folders, one painting per 16 photos as in
Stylized-ImageNet: 1.28 M / 79,395), one set of random full-size AdaIN weights (pytorch-AdaIN's
layout, made here and used by both sides), and three runs, each in its own process:

* ``pytorch``: ``benchmarks/stylize_datasets_loop.py``, the bethgelab/stylize-datasets loop
  (batch 1; the style image read, preprocessed and encoded again for every photo), under
  ``--torch_python``;
* ``beam-1``: ``nst-stylize-dataset --recipe=stylized-imagenet`` on the DirectRunner, one worker
  (in-process);
* ``beam-2``: the same with ``--direct_num_workers=2 --direct_running_mode=multi_processing``.

Each is run on one image and on all of them; the *steady* rate ``(N − 1) / (t_N − t_1)`` leaves
out start-up (imports, model loading, tracing), which a 1.28 M-image run does not notice. CPU
seconds are those of the process and its children (Beam's workers included), so
"images per CPU-second" is the per-core rate. Then, in this process, where an image's time goes
in nst-tf's steps (decode, resize + crop, encoder, AdaIN + decoder, PNG encode, the style's
share), and what is left for Beam.

Usage::

    python benchmarks/dataset.py --torch_python=/path/to/python-with-torch [--images 48]

Prints a table and writes ``benchmarks/results/dataset.json``.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
PHOTO_SIZES = ((375, 500), (500, 375), (333, 500), (400, 500), (500, 400), (281, 500))


def picture(rng, height, width):
    """A photo-like image: smooth random colour fields plus fine noise (uint8)."""
    from PIL import Image

    coarse = rng.random((max(2, height // 24), max(2, width // 24), 3)) * 255
    smooth = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((width, height),
                                                                         Image.BICUBIC))
    return np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)


def make_dataset(folder, images, seed=0):
    """``(content, styles)``: ``images`` JPEG photos in 4 class folders, images/16 paintings."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    content, styles = os.path.join(folder, "train"), os.path.join(folder, "paintings")
    os.makedirs(styles)
    for i in range(images):
        klass = os.path.join(content, f"n{i % 4:08d}")
        os.makedirs(klass, exist_ok=True)
        height, width = PHOTO_SIZES[i % len(PHOTO_SIZES)]
        Image.fromarray(picture(rng, height, width)).save(
            os.path.join(klass, f"img_{i:05d}.JPEG"), quality=90)
    for i in range(max(2, images // 16)):
        Image.fromarray(picture(rng, 800 + 40 * (i % 3), 1000)).save(
            os.path.join(styles, f"painting_{i:05d}.jpg"), quality=90)
    return content, styles


def make_weights(folder, content, styles, seed=0):
    """Random full-size AdaIN weights in pytorch-AdaIN's state-dict layout (``.npz``), and the
    same network as an nst-tf ``.keras`` file: ``(npz path, keras path)``.

    He-normal kernels; the decoder's last layer is then rescaled so that one of the photos
    comes out as a mid-grey image with a standard deviation of 0.2 rather than saturated noise,
    so PNG encoding costs what it costs for pictures and the two sides can be compared."""
    from nst_tf.networks import adain_network
    from nst_tf.models.adain.network import (DECODER, ENCODER_DEPTH, NORMALISED_VGG,
                                       caffe_input_weights)
    from torch_compat.adain import load_adain_state

    rng = np.random.default_rng(seed)
    states = {"vgg": {}, "decoder": {}}
    for prefix, sequence, depth in (("vgg", NORMALISED_VGG, ENCODER_DEPTH),
                                    ("decoder", DECODER, None)):
        for index, layer in enumerate(sequence[:depth]):
            if layer.kind != "conv":
                continue
            if index == 0 and prefix == "vgg":     # the fixed RGB -> Caffe BGR map
                kernel, bias = caffe_input_weights()
                weight = kernel.transpose(3, 2, 0, 1)
            else:
                scale = np.sqrt(2.0 / (9 * layer.cin))
                weight = rng.normal(0, scale, (layer.cout, layer.cin, 3, 3))
                bias = np.zeros(layer.cout)
            states[prefix][f"{index}.weight"] = weight.astype(np.float32)
            states[prefix][f"{index}.bias"] = np.asarray(bias, np.float32)
    network = load_adain_state(adain_network(), states["vgg"], states["decoder"])
    photo, painting = (first_image(content, 256, 224), first_image(styles, 224, None))
    raw = network([photo[None], painting[None]]).numpy()
    last = max(i for i, layer in enumerate(DECODER) if layer.kind == "conv")
    scale = 0.2 / max(float(raw.std()), 1e-6)
    states["decoder"][f"{last}.weight"] *= np.float32(scale)
    states["decoder"][f"{last}.bias"] = np.float32(0.5 - scale * raw.mean(axis=(0, 1, 2)))
    network = load_adain_state(network, None, states["decoder"])
    npz = os.path.join(folder, "adain_weights.npz")
    np.savez(npz, **{f"{p}.{k}": v for p, state in states.items() for k, v in state.items()})
    keras_path = os.path.join(folder, "adain.keras")
    network.save(keras_path)
    return npz, keras_path


def first_image(folder, size, crop):
    """The first image below ``folder`` as the recipe prepares it (float32): photos resized
    and cropped, paintings (``crop`` None) square-cropped to ``size``."""
    from nst_tf.images import decode_image, float_to_uint8, uint8_to_float
    from nst_tf.scale.preprocess import prepare_content, square_thumbnail

    path = sorted(os.path.join(d, n) for d, _, names in os.walk(folder) for n in names)[0]
    with open(path, "rb") as f:
        image = float_to_uint8(decode_image(f.read()))
    image = prepare_content(image, size, crop) if crop else square_thumbnail(image, size)
    return uint8_to_float(image)


def compare_outputs(ours, theirs):
    """Grey-level differences between the two runs' PNGs of the same photos."""
    from PIL import Image

    diffs = []
    for folder, _, names in os.walk(theirs):
        for name in names:
            rel = os.path.relpath(os.path.join(folder, name), theirs)
            a = np.asarray(Image.open(os.path.join(ours, rel)), np.int16)
            b = np.asarray(Image.open(os.path.join(theirs, rel)), np.int16)
            diffs.append(np.abs(a - b))
    if not diffs:
        return None
    flat = np.concatenate([d.ravel() for d in diffs])
    return {"images": len(diffs), "max": int(flat.max()), "mean": float(flat.mean()),
            "share_over_1": float((flat > 1).mean())}


def run_process(command, env=None):
    """``(wall seconds, CPU seconds of it and its children, stdout)``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"{command[:3]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def subset(content, count, folder):
    """A content folder holding the first ``count`` images (hard links)."""
    files = sorted(os.path.join(d, n) for d, _, names in os.walk(content) for n in names)
    for path in files[:count]:
        target = os.path.join(folder, os.path.relpath(path, content))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.link(path, target)
    return folder


def beam_command(content, styles, output, model, workers):
    command = [sys.executable, os.path.join(ROOT, "scripts", "stylize_dataset.py"),
               f"--content={content}", f"--styles={styles}", f"--output={output}",
               f"--model={model}", "--recipe=stylized-imagenet", "--progress_seconds=0", "--"]
    if workers > 1:
        command += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    return command


def measure(name, command_for, images, work):
    """Run on 1 image and on all: end-to-end and steady rates, CPU per image."""
    results = {}
    for count in (1, images):
        content = subset(work["content"], count, os.path.join(work["dir"], f"{name}-in-{count}"))
        output = os.path.join(work["dir"], f"{name}-out-{count}")
        wall, cpu, stdout = run_process(command_for(content, output))
        results[count] = (wall, cpu, stdout)
        print(f"  {name}: {count} image(s) in {wall:.1f} s (CPU {cpu:.1f} s)", flush=True)
    (w1, c1, _), (wn, cn, stdout) = results[1], results[images]
    steady = (images - 1) / max(wn - w1, 1e-9)
    cpu_per_image = max(cn - c1, 1e-9) / (images - 1)
    return {"name": name, "images": images, "wall_s": wn, "cpu_s": cn, "wall_1_s": w1,
            "cpu_1_s": c1, "images_per_s": images / wn, "steady_images_per_s": steady,
            "cpu_s_per_image": cpu_per_image, "images_per_cpu_s": 1.0 / cpu_per_image,
            "stdout_tail": stdout.strip().splitlines()[-1] if stdout.strip() else ""}


def breakdown(content, styles, keras_path, count=16):
    """Median milliseconds per image of each nst-tf step, in this process (2 cores)."""
    import io

    from PIL import Image

    from nst_tf import families
    from nst_tf.images import decode_image, float_to_uint8, uint8_to_float
    from nst_tf.scale.preprocess import prepare_content, square_thumbnail

    family, network = families.resolve(keras_path)
    encoder = network.get_layer("encoder")
    import tensorflow as tf

    encode = tf.function(lambda x: encoder(x)[-1],
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    files = sorted(os.path.join(d, n) for d, _, names in os.walk(content) for n in names)[:count]
    painting = sorted(os.path.join(styles, n) for n in os.listdir(styles))[0]
    times = {k: [] for k in ("decode", "resize_crop", "encoder", "adain_decoder", "png",
                             "style_prep")}

    def timed(key, function, *args):
        start = time.process_time()
        value = function(*args)
        times[key].append(time.process_time() - start)
        return value

    def prepare_style():
        image = uint8_to_float(square_thumbnail(float_to_uint8(decode_image(
            open(painting, "rb").read())), 224))
        return family.prepare_style(network, image, style_size=None)

    style = prepare_style()
    batch = uint8_to_float(np.stack([prepare_content(float_to_uint8(decode_image(
        open(f, "rb").read())), 256, 224) for f in files[:1]]))
    family.stylize_batch(network, batch, [style])                   # trace
    encode(batch)
    for path in files:
        data = open(path, "rb").read()
        image = timed("decode", lambda: float_to_uint8(decode_image(data)))
        pixels = timed("resize_crop", prepare_content, image, 256, 224)
        batch = uint8_to_float(pixels[None])
        timed("encoder", encode, batch)
        out = timed("adain_decoder", family.stylize_batch, network, batch, [style])
        times["adain_decoder"][-1] -= times["encoder"][-1]           # stylize_batch = both
        timed("png", lambda: Image.fromarray(float_to_uint8(out[0])).save(io.BytesIO(), "PNG"))
        timed("style_prep", prepare_style)
    result = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    result["style_prep"] /= 16.0                # one painting per 16 photos
    # A batch of 8 through encoder + AdaIN + decoder, per image.
    eight = np.repeat(batch, 8, axis=0)
    family.stylize_batch(network, eight, [style] * 8)
    start = time.process_time()
    family.stylize_batch(network, eight, [style] * 8)
    result["network_batch8_per_image"] = 1e3 * (time.process_time() - start) / 8
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--torch_python", default=None,
                        help="a Python with torch installed (the peer is skipped without it)")
    parser.add_argument("--keep", default=None, help="keep the generated data in this folder")
    args = parser.parse_args()

    from benchmarks.common import report

    folder = args.keep or tempfile.mkdtemp(prefix="nst-dataset-bench-")
    os.makedirs(folder, exist_ok=True)
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"({os.cpu_count()} CPUs)", flush=True)
    try:
        content, styles = make_dataset(os.path.join(folder, "data"), args.images)
        npz, keras_path = make_weights(folder, content, styles)
        work = {"dir": folder, "content": content}
        rows, agreement = [], None
        for workers in (1, 2):
            rows.append(measure(f"beam-{workers}", lambda c, o, w=workers: beam_command(
                c, styles, o, keras_path, w), args.images, work))
        if args.torch_python:
            # The peer takes nst-tf's style choices (beam-1's manifest), so outputs compare.
            ours = os.path.join(folder, f"beam-1-out-{args.images}")
            peer = os.path.join(ROOT, "benchmarks", "stylize_datasets_loop.py")
            rows.insert(0, measure("pytorch", lambda c, o: [
                args.torch_python, peer, f"--weights={npz}", f"--content={c}",
                f"--styles={styles}", f"--output={o}",
                f"--manifest={os.path.join(ours, 'manifest.jsonl')}"], args.images, work))
            agreement = compare_outputs(ours, os.path.join(folder, f"pytorch-out-{args.images}"))
        steps = breakdown(content, styles, keras_path)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    after = os.getloadavg()
    base = rows[0] if rows[0]["name"] == "pytorch" else None
    for row in rows:
        row["per_core_vs_pytorch"] = (row["images_per_cpu_s"] / base["images_per_cpu_s"]
                                      if base else None)
        row["steady_vs_pytorch"] = (row["steady_images_per_s"] / base["steady_images_per_s"]
                                    if base else None)

    def format_row(row):
        ratio = "-" if row["per_core_vs_pytorch"] is None else \
            f"{row['per_core_vs_pytorch']:.2f}x"
        steady = "-" if row["steady_vs_pytorch"] is None else f"{row['steady_vs_pytorch']:.2f}x"
        return (f"{row['name']:<8} {row['images']:>6} {row['wall_s']:>8.1f} "
                f"{row['images_per_s']:>8.2f} {row['steady_images_per_s']:>8.2f} {steady:>7} "
                f"{row['cpu_s_per_image']:>9.3f} {row['images_per_cpu_s']:>9.2f} {ratio:>8}")

    header = (f"{'run':<8} {'images':>6} {'wall s':>8} {'img/s':>8} {'steady':>8} {'vs pt':>7} "
              f"{'CPU s/img':>9} {'img/CPU-s':>9} {'per core':>8}")
    notes = [f"load average {load[0]:.2f} before, {after[0]:.2f} after, on {os.cpu_count()} CPUs",
             "steady = (N - 1) / (t_N - t_1): start-up (imports, model load, tracing) left out",
             "per core = images per CPU-second (process + children) relative to the PyTorch loop",
             "nst-tf steps, ms of CPU per image (batch 1 unless noted): " +
             ", ".join(f"{k} {v:.1f}" for k, v in steps.items())]
    if agreement:
        notes.append(f"same photos, styles and weights: outputs differ by at most "
                     f"{agreement['max']} grey levels (mean {agreement['mean']:.3f}, "
                     f"{100 * agreement['share_over_1']:.3f} % over 1) over "
                     f"{agreement['images']} images")
    report("dataset", "Stylized-ImageNet recipe (224², AdaIN full size, random weights)",
           header, rows, format_row, notes=notes, steps_ms=steps, load_before=load,
           load_after=after, agreement=agreement)


if __name__ == "__main__":
    main()
