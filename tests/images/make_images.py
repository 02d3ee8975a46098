"""Make the test images from Magenta's originals (see PROVENANCE.md); not run by the tests.

    python tests/images/make_images.py --source=PATH   # folder holding content/ and style/
                                                       # with the originals named in PROVENANCE.md

Each output is a crop and/or a Lanczos downscale of one original, saved as JPEG quality 90
(greyscale: one-component JPEG), so the whole set stays small.
"""

import argparse
import hashlib
import os

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))

#: output → (original, crop box (left, top, right, bottom) or None, size (W, H), mode).
IMAGES = {
    "content_sq.jpg": ("content/benjamin_harrison.jpg", (0, 0, 500, 500), (256, 256), "RGB"),
    "content_tall.jpg": ("content/coast_guard_boat.jpg", None, (123, 165), "RGB"),
    "content_grey.jpg": ("content/coast_guard_boat.jpg", None, (96, 128), "L"),
    "style/doesburg_sq.jpg": ("style/Theo_van_Doesburg_sq.jpg", None, (128, 128), "RGB"),
    "style/mauclair_sq.jpg": ("style/Camille_Mauclair.jpg", (0, 18, 256, 274), (128, 128),
                              "RGB"),
    "style/mauclair.jpg": ("style/Camille_Mauclair.jpg", None, (128, 146), "RGB"),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True)
    args = parser.parse_args()
    for name, (original, box, size, mode) in IMAGES.items():
        with Image.open(os.path.join(args.source, original)) as img:
            img = img.convert("RGB")
            if box is not None:
                img = img.crop(box)
            img = img.resize(size, Image.LANCZOS).convert(mode)
            target = os.path.join(HERE, name)
            img.save(target, quality=90)
        digest = hashlib.sha256(open(target, "rb").read()).hexdigest()
        print(f"{digest}  {name}  {size[0]}x{size[1]} {mode}  {os.path.getsize(target)} bytes")


if __name__ == "__main__":
    main()
