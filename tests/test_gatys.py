"""Gatys transfer end to end on small images with random VGG19 weights (weights=None)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from nst_tf import gatys, images, multiscale
from nst_tf.errors import ConfigError, ImageError, LayerError, NSTError, StyleWeightsError
from nst_tf.features import FeatureExtractor, default_layers
from nst_tf.io import OutputPathError
from nst_tf.objective import StyleObjective
from nst_tf.optimize import optimize_image

from conftest import test_image


@pytest.fixture(scope="module")
def content64():
    return images.load_image(test_image("content_sq.jpg"), max_size=64)


@pytest.fixture(scope="module")
def style64():
    return images.load_image(test_image("style/doesburg_sq.jpg"), max_size=64)


@pytest.fixture(scope="module")
def objective(content64, style64):
    content_layers, style_layers = default_layers("vgg19")
    extractor = FeatureExtractor("vgg19", list(content_layers) + list(style_layers), weights=None)
    return StyleObjective(extractor, content64, [style64])


@pytest.mark.parametrize("optimizer, steps", [("lbfgs", 30), ("adam", 60)])
def test_optimization_halves_the_total_loss(objective, content64, optimizer, steps):
    start = float(objective(content64[None])[0])
    result = optimize_image(objective, content64, optimizer=optimizer, steps=steps)
    end = float(objective(result.image)[0])
    assert end <= 0.5 * start, (start, end)
    assert result.losses[0] == pytest.approx(start, rel=1e-5)


def test_same_seed_same_image_and_different_seeds_differ(content64, style64):
    options = dict(size=32, steps=4, init="noise", weights=None)
    a = gatys.transfer(content64, style64, seed=1, **options)
    b = gatys.transfer(content64, style64, seed=1, **options)
    c = gatys.transfer(content64, style64, seed=2, **options)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3
    assert a.shape == (32, 32, 3) and a.dtype == np.float32


def test_multiscale_returns_the_final_size_and_saves_with_global_steps(tmp_path, style64):
    content = images.load_image(test_image("content_tall.jpg"), max_size=80)
    pattern = str(tmp_path / "step_{step:03d}.png")
    result = gatys.run(content, [style64], size=999, scales=[32, 48], steps=[3, 2],
                       weights=None, optimizer="adam", save_every=2, save_pattern=pattern)
    expected = multiscale.fit_size(content.shape, 48)
    assert result.image.shape == expected + (3,)
    assert result.sizes == [32, 48] and result.steps == 5 and len(result.losses) == 5
    # Level 1 saves at 2 and its last step 3; level 2 continues the numbering: 5 (= 3 + 2).
    assert sorted(os.listdir(tmp_path)) == ["step_002.png", "step_003.png", "step_005.png"]
    assert images.load_image(tmp_path / "step_005.png").shape == expected + (3,)


def test_schedule():
    assert multiscale.schedule(512) == [512]
    assert multiscale.schedule(512, 3) == [256, 362, 512]
    assert multiscale.schedule(None, [64, 128]) == [64, 128]
    for bad in (0, [128, 64], [64, -1], [64.5, 128], "abc"):
        with pytest.raises(ConfigError):
            multiscale.schedule(512, bad)
    assert multiscale.steps_per_level(10, 2) == [10, 10]
    with pytest.raises(ConfigError):
        multiscale.steps_per_level([10], 2)


def _iq(image):
    return images.rgb_to_yiq(image)[..., 1:]


@pytest.mark.parametrize("mode", ["luminance", "luminance_only"])
def test_preserve_color_keeps_content_chroma(content64, style64, mode):
    out = gatys.transfer(content64, style64, size=48, steps=5, weights=None,
                         preserve_color=mode, init="noise")
    content = images.resize(content64, (48, 48))
    # Chroma (I, Q) is the content's except where RGB clipping moved it (a few pixels at most).
    diff = np.abs(_iq(out) - _iq(content))
    assert np.median(diff) < 1e-4 and np.mean(diff < 1e-3) > 0.9
    # ... and the luminance is the optimized one, not the content's.
    assert np.abs(images.luminance(out) - images.luminance(content)).mean() > 0.01


def test_luminance_only_optimizes_a_grey_image(content64, style64, monkeypatch):
    seen = []
    original = optimize_image

    def spy(objective, init, **kwargs):
        seen.append(np.shape(init))
        return original(objective, init, **kwargs)

    monkeypatch.setattr(multiscale, "optimize_image", spy)
    gatys.transfer(content64, style64, size=32, steps=2, weights=None,
                   preserve_color="luminance_only")
    assert seen == [(32, 32, 1)]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(style_weights=[1.0, 2.0]), StyleWeightsError, "2 style blend weights"),
    (dict(style_weights=[float("nan")]), StyleWeightsError, "nan"),
    (dict(style_weights=[float("inf")]), StyleWeightsError, "inf"),
    (dict(style_weights=[-1.0]), StyleWeightsError, "-1"),
    (dict(content_layers=["conv9_9"]), LayerError, "conv9_9"),
    (dict(backbone="alexnet"), LayerError, "alexnet"),
    (dict(optimizer="sgd"), ConfigError, "sgd"),
    (dict(style_weight=float("nan")), ConfigError, "style_weight"),
    (dict(content_weight=-1.0), ConfigError, "content_weight"),
    (dict(stpes=3), ConfigError, "did you mean 'steps'"),
    (dict(preserve_color="yuv"), ConfigError, "yuv"),
    (dict(init="nosie"), ConfigError, "nosie"),
    (dict(scales=[64, 32]), ConfigError, "increase"),
])
def test_bad_options_raise_nst_errors(content64, style64, kwargs, error, match):
    style_weights = kwargs.pop("style_weights", None)
    with pytest.raises(error, match=match):
        gatys.transfer(content64, style64, style_weights, size=32, steps=1, weights=None,
                       **kwargs)


def test_tiny_images_are_rejected(content64, style64):
    tiny = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ImageError, match="8x8"):
        gatys.transfer(tiny, style64, size=8, steps=1, weights=None)
    with pytest.raises(ImageError, match="style image 0"):
        gatys.transfer(content64, style64, size=32, style_scale=0.25, steps=1, weights=None)
    with pytest.raises(ImageError, match="not found"):
        gatys.transfer("no/such/content.jpg", style64, steps=1, weights=None)


def test_output_in_missing_folder_fails_before_running_and_leaves_nothing(tmp_path, content64,
                                                                           style64):
    pattern = str(tmp_path / "missing" / "out_{step}.png")
    with pytest.raises(OutputPathError):
        gatys.transfer(content64, style64, size=32, steps=1, weights=None, save_every=1,
                       save_pattern=pattern)
    with pytest.raises(ConfigError, match="save_pattern"):
        gatys.transfer(content64, style64, size=32, steps=1, weights=None, save_every=1)
    assert os.listdir(tmp_path) == []


def test_nan_during_optimization_is_an_nst_error(content64, style64, tmp_path):
    pattern = str(tmp_path / "out_{step}.png")
    with pytest.raises(NSTError, match="step"):
        gatys.transfer(content64, style64, size=32, steps=5, weights=None, optimizer="adam",
                       content_weight=1e38, save_every=10, save_pattern=pattern)
    assert os.listdir(tmp_path) == []


def test_styles_as_paths_and_blend(content64):
    style_a = test_image("style/doesburg_sq.jpg")
    style_b = test_image("style/mauclair.jpg")
    out = gatys.transfer(content64, [style_a, style_b], [0.7, 0.3], size=32, steps=2,
                         weights=None, style_loss="mean_std")
    assert out.shape == (32, 32, 3) and np.all(np.isfinite(out))
    assert tf.reduce_min(out) >= 0 and tf.reduce_max(out) <= 1
