"""Family.prepare_style / Family.stylize_batch: many images, one (prepared) style each.

Each batched result is checked against one ``nst_tf.stylize`` call per image with the public
options, so a prepared style mixes exactly like the style it came from.
"""

import os

import numpy as np
import pytest

import nst_tf
from nst_tf import families
from nst_tf.errors import ConfigError, ImageError
from nst_tf.networks import johnson_network
from pastiche_helpers import random_pastiche
from test_arbitrary_api import random_arbitrary
from torch_compat.adain import load_adain

ADAIN = os.path.join(os.path.dirname(__file__), "fixtures", "adain")


def _batch(count, height=20, width=27, seed=0):
    return np.random.default_rng(seed).random((count, height, width, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def adain():
    return load_adain(os.path.join(ADAIN, "vgg_normalised.pth"),
                      os.path.join(ADAIN, "decoder.pth"))


def test_adain_mixes_statistics_and_strength_per_image(adain):
    family, network = families.resolve(adain)
    assert family.style_input == "image"
    styles = list(_batch(2, 33, 29, seed=1))
    batch = _batch(3)
    prepared = [family.prepare_style(network, s, style_size=None) for s in styles]
    assert prepared[0][0].shape == (1, 1, 1, 32)          # AdaIN mean and std of relu4_1
    out = family.stylize_batch(network, batch, [prepared[0], prepared[1], prepared[0]],
                               [1.0, 0.5, 0.25])
    assert out.shape == batch.shape and out.dtype == np.float32
    for image, style, strength, result in zip(batch, [0, 1, 0], [1.0, 0.5, 0.25], out):
        expected = nst_tf.stylize(image, styles[style], model=network, strength=strength,
                                  style_size=None, crop=True)
        np.testing.assert_array_equal(result, expected)
    with pytest.raises(ConfigError, match="alpha"):
        family.stylize_batch(network, batch[:1], prepared[:1], [1.5])
    with pytest.raises(ImageError, match="at least 9x9"):
        family.stylize_batch(network, _batch(1, 6, 6), prepared[:1])


def test_adain_style_size_is_the_models_own_resizing(adain):
    family, network = families.resolve(adain)
    style = _batch(1, 40, 50, seed=2)[0]
    mean, std = family.prepare_style(network, style, style_size=24)
    out = family.stylize_batch(network, _batch(1), [(mean, std)])
    np.testing.assert_array_equal(out[0], nst_tf.stylize(_batch(1)[0], style, model=network,
                                                         style_size=24, crop=True))


def test_arbitrary_uses_embeddings_and_identity_interpolation():
    family, network = families.resolve(random_arbitrary())
    assert family.style_input == "image"
    styles = list(_batch(2, 50, 60, seed=3))
    batch = _batch(2, 24, 30)
    prepared = [family.prepare_style(network, s, style_size=64) for s in styles]
    np.testing.assert_array_equal(np.stack(prepared),
                                  nst_tf.style_embedding(styles, model=network, style_size=64))
    out = family.stylize_batch(network, batch, prepared[::-1], [1.0, 0.4], style_size=64)
    for image, style, strength, result in zip(batch, styles[::-1], [1.0, 0.4], out):
        expected = nst_tf.stylize(image, style, model=network, strength=strength, style_size=64)
        np.testing.assert_allclose(result, expected, atol=1e-6)


def test_default_runs_equal_styles_together():
    family, network = families.resolve(random_pastiche(3, seed=4))
    assert family.style_input == "index" and family.num_styles(network) == 3
    batch = _batch(4, 18, 22)
    styles = [family.prepare_style(network, s) for s in (2, 0, 0, 1)]
    out = family.stylize_batch(network, batch, styles)
    assert out.shape == batch.shape
    for image, style, result in zip(batch, styles, out):
        expected = nst_tf.stylize(image, style, model=network, crop=True)
        np.testing.assert_allclose(result, expected, atol=1e-6)
    assert not np.allclose(out[1], out[3], atol=0.05)     # styles differ


def test_single_style_networks_take_no_style():
    johnson = johnson_network(alpha=0.25, num_residual=1)
    family, network = families.resolve(johnson)
    assert family.style_input is None
    batch = _batch(3, 17, 19)
    out = family.stylize_batch(network, batch, [None] * 3)
    np.testing.assert_allclose(out, nst_tf.stylize(batch, model=network, crop=True), atol=1e-6)
    with pytest.raises(ConfigError, match="no numbered styles"):
        family.num_styles(network)
