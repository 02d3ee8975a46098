"""Shared fixtures. Real images come from tests/images (see its PROVENANCE.md); everything
else is generated. Nothing here looks outside the repository."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = os.path.join(ROOT, "tests", "images")


def test_image(name):
    """Path of a test image in tests/images (``"content_sq.jpg"``, ``"style/mauclair.jpg"``)."""
    path = os.path.join(IMAGES, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"test image missing from the repository: {path}")
    return path


test_image.__test__ = False  # a helper, not a test for pytest to collect


@pytest.fixture
def content_path():
    return test_image("content_sq.jpg")


@pytest.fixture
def style_path():
    return test_image("style/doesburg_sq.jpg")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def smooth_image(rng):
    """A deterministic 64x64 RGB image with structure (gradients plus noise), float32 in [0, 1]."""
    y, x = np.mgrid[0:64, 0:64] / 63.0
    base = np.stack([x, y, 0.5 * (x + y)], axis=-1)
    return np.clip(base + 0.05 * rng.standard_normal(base.shape), 0, 1).astype(np.float32)


class FakeClock:
    """A clock the test moves by hand: ``clock()`` reads it, ``clock.advance(s)`` moves it."""

    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def fake_clock():
    """A :class:`FakeClock` for code that takes ``clock=`` (timing without sleeping)."""
    return FakeClock()


def console(program):
    """The command line of the console script ``program`` (``"nst-stylize"``) as a user types
    it: the script installed beside this Python (``pip install -e .`` puts it there), else
    ``python scripts/<name>.py``. Run it with ``PYTHONPATH`` inherited, so it imports this tree."""
    import sys

    installed = os.path.join(os.path.dirname(sys.executable), program)
    if os.path.exists(installed):
        return [installed]
    name = program[len("nst-"):].replace("-", "_")
    return [sys.executable, os.path.join(ROOT, "scripts", f"{name}.py")]
