#!/usr/bin/env python
"""The peer of ``benchmarks/dataset.py``: bethgelab/stylize-datasets' loop, in PyTorch.

Written from the published algorithm (``stylize.py`` of bethgelab/stylize-datasets, itself
Geirhos et al.'s Stylized-ImageNet code generalised), not from its code: for each content image
in turn, batch 1, on the CPU:

1. open it with PIL, ``convert("RGB")``, the recipe's transform (``Resize(256)`` +
   ``CenterCrop(224)``, torchvision's arithmetic on PIL images, written out here because
   torchvision is not installed beside this torch);
2. draw a style image (``random.sample`` of the style files; seeded here, unseeded there; or
   the one a manifest names, ``--manifest``, to compare outputs with nst-tf's), open it, ``convert("RGB")``, the style transform (Stylized-ImageNet's centre square crop +
   ``thumbnail(224)``), for every content image;
3. ``vgg(content)``, ``vgg(style)`` (pytorch-AdaIN's ``vgg_normalised`` to relu4_1), AdaIN
   (unbiased std + 1e-5), α = 1, ``decoder(...)`` under ``torch.no_grad()``;
4. ``save_image``: ``x·255 + 0.5`` clamped to uint8, a PNG named after the content file.

Weights come from ``--weights`` (an ``.npz`` of pytorch-AdaIN state-dict entries ``vgg.<i>.weight``
/ ``decoder.<i>.weight``, made by ``benchmarks/dataset.py``). Prints one JSON line: images, wall
and CPU seconds, and the seconds spent in each step.

Needs torch (not a dependency of nst-tf): run it with a Python that has it.
"""

import argparse
import json
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
from PIL import Image


def conv(cin, cout, kernel=3):
    pad = [nn.ReflectionPad2d((1, 1, 1, 1))] if kernel == 3 else []
    return pad + [nn.Conv2d(cin, cout, (kernel, kernel))]


def networks(weights):
    """pytorch-AdaIN's ``vgg[:31]`` and ``decoder`` with the given state-dict entries."""
    vgg = conv(3, 3, 1)
    cin = 3
    for block, (width, count) in enumerate(zip((64, 128, 256, 512), (2, 2, 4, 1)), start=1):
        for _ in range(count):
            vgg += conv(cin, width) + [nn.ReLU()]
            cin = width
        if block < 4:
            vgg.append(nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True))
    decoder = []
    for item in [(512, 256), "up", (256, 256), (256, 256), (256, 256), (256, 128), "up",
                 (128, 128), (128, 64), "up", (64, 64), (64, 3)]:
        if item == "up":
            decoder.append(nn.Upsample(scale_factor=2, mode="nearest"))
        else:
            decoder += conv(*item) + ([nn.ReLU()] if item[1] != 3 else [])
    vgg, decoder = nn.Sequential(*vgg).eval(), nn.Sequential(*decoder).eval()
    for prefix, module in (("vgg", vgg), ("decoder", decoder)):
        state = {key[len(prefix) + 1:]: torch.from_numpy(weights[key])
                 for key in weights.files if key.startswith(prefix + ".")}
        module.load_state_dict(state)
    return vgg, decoder


def mean_std(features, eps=1e-5):
    n, c = features.shape[:2]
    flat = features.reshape(n, c, -1)
    return (flat.mean(2).reshape(n, c, 1, 1),
            (flat.var(2) + eps).sqrt().reshape(n, c, 1, 1))


def resize_crop(image, size=256, crop=224):
    """torchvision ``Resize(size)`` + ``CenterCrop(crop)`` on a PIL image."""
    width, height = image.size
    if width <= height:
        new = (size, int(size * height / width))
    else:
        new = (int(size * width / height), size)
    if new != (width, height):
        image = image.resize(new, Image.BILINEAR)
    top = int(round((new[1] - crop) / 2.0))
    left = int(round((new[0] - crop) / 2.0))
    return image.crop((left, top, left + crop, top + crop))


def square_thumbnail(image, size=224):
    width, height = image.size
    side = min(width, height)
    left, top = int((width - side) / 2), int((height - side) / 2)
    image = image.crop((left, top, left + side, top + side))
    image.thumbnail((size, size), Image.LANCZOS)
    return image


def to_tensor(image):
    return torch.from_numpy(np.asarray(image, np.float32) / 255.0).permute(2, 0, 1)[None]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--content", required=True, help="folder of content images")
    parser.add_argument("--styles", required=True, help="folder of style images")
    parser.add_argument("--output", required=True)
    parser.add_argument("--limit", type=int, default=0, help="first N content images (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--manifest", default=None,
                        help="take each photo's style from this manifest.jsonl (nst-tf's choice; "
                        "stylize-datasets PR #18's content_style_map) instead of random.sample")
    args = parser.parse_args()

    vgg, decoder = networks(np.load(args.weights))
    contents = sorted(os.path.join(folder, name) for folder, _, names in os.walk(args.content)
                      for name in names)
    contents = contents[:args.limit or None]
    styles = sorted(os.path.join(args.styles, name) for name in os.listdir(args.styles))
    random.seed(args.seed)
    chosen = {}
    if args.manifest:
        with open(args.manifest, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        chosen = {row["content"]: os.path.join(args.styles, row["style"]) for row in rows}
    steps = dict.fromkeys(("content", "style", "encoder", "decoder", "save"), 0.0)
    wall, cpu = time.perf_counter(), time.process_time()
    for path in contents:
        t0 = time.perf_counter()
        content = to_tensor(resize_crop(Image.open(path).convert("RGB")))
        t1 = time.perf_counter()
        rel = os.path.relpath(path, args.content).replace(os.sep, "/")
        style_path = chosen[rel] if chosen else random.sample(styles, 1)[0]
        style = to_tensor(square_thumbnail(Image.open(style_path).convert("RGB")))
        t2 = time.perf_counter()
        with torch.no_grad():
            content_f, style_f = vgg(content), vgg(style)
            t3 = time.perf_counter()
            mean, std = mean_std(content_f)
            style_mean, style_std = mean_std(style_f)
            output = decoder((content_f - mean) / std * style_std + style_mean)
        t4 = time.perf_counter()
        pixels = output[0].mul(255).add(0.5).clamp(0, 255).permute(1, 2, 0).to(torch.uint8)
        target = os.path.join(args.output, os.path.splitext(rel)[0] + ".png")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        Image.fromarray(pixels.numpy()).save(target)
        t5 = time.perf_counter()
        for name, seconds in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            steps[name] += seconds
    print(json.dumps({"images": len(contents), "wall_s": time.perf_counter() - wall,
                      "cpu_s": time.process_time() - cpu, "steps_s": steps,
                      "torch": torch.__version__, "threads": torch.get_num_threads()}),
          flush=True)


if __name__ == "__main__":
    main()
