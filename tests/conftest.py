"""Shared fixtures. Real images come from ../shared/data/images; everything else is generated."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_IMAGES = os.path.join(os.path.dirname(ROOT), "shared", "data", "images")


def shared_image(kind, name):
    """Path of a test image in ../shared/data/images/{content,style}; skips if shared/ is absent."""
    path = os.path.join(SHARED_IMAGES, kind, name)
    if not os.path.exists(path):
        pytest.skip(f"shared test image not found: {path}")
    return path


@pytest.fixture
def content_path():
    return shared_image("content", "golden_gate_sq.jpg")


@pytest.fixture
def style_path():
    return shared_image("style", "towers_1916_sq.jpg")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def smooth_image(rng):
    """A deterministic 64x64 RGB image with structure (gradients plus noise), float32 in [0, 1]."""
    y, x = np.mgrid[0:64, 0:64] / 63.0
    base = np.stack([x, y, 0.5 * (x + y)], axis=-1)
    return np.clip(base + 0.05 * rng.standard_normal(base.shape), 0, 1).astype(np.float32)
