"""reconstruct(): what one layer keeps, with random VGG19 weights; and the nst-reconstruct CLI."""

import os

import numpy as np
import pytest

from nst_tf import images
from nst_tf.cli import reconstruct as cli
from nst_tf.errors import ConfigError, LayerError
from nst_tf.features import FeatureExtractor
from nst_tf.reconstruction import reconstruct

from conftest import test_image


@pytest.fixture(scope="module")
def image48():
    return images.load_image(test_image("content_sq.jpg"), max_size=48)


def test_content_shallow_layer_gives_the_image_back_deep_layer_does_not(image48):
    noise_error = np.abs(np.random.default_rng(0).uniform(0, 1, image48.shape) - image48).mean()
    shallow = reconstruct(image48, "conv1_1", "content", steps=40, weights=None)
    deep = reconstruct(image48, "conv3_1", "content", steps=40, weights=None)
    assert shallow.shape == image48.shape and shallow.dtype == np.float32
    shallow_error = np.abs(shallow - image48).mean()
    deep_error = np.abs(deep - image48).mean()
    assert shallow_error < 0.01 * noise_error
    assert deep_error > 10 * shallow_error


def _gram64(features):
    f = np.asarray(features, np.float64).reshape(-1, features.shape[-1])
    return f.T @ f / f.shape[0]


def test_style_reconstruction_matches_the_gram_not_the_layout(image48):
    out = reconstruct(image48, "relu2_1", "style", steps=40, weights=None)
    extractor = FeatureExtractor("vgg19", ["relu2_1"], weights=None)  # same seed, same weights
    noise = np.random.default_rng(0).uniform(0, 1, image48.shape).astype(np.float32)
    target = _gram64(extractor(image48[None])["block2_conv1"])

    def gram_error(x):
        return np.abs(_gram64(extractor(x[None])["block2_conv1"]) - target).mean()

    assert gram_error(out) < 0.1 * gram_error(noise)   # measured 0.053 on content_sq.jpg
    assert np.abs(out - image48).mean() > 0.05  # the arrangement is not recovered


def test_bad_arguments(image48):
    with pytest.raises(ConfigError, match="kind"):
        reconstruct(image48, "conv1_1", "texture", weights=None)
    with pytest.raises(LayerError, match="conv9_9"):
        reconstruct(image48, "conv9_9", weights=None)


def test_cli(tmp_path, capsys):
    out = tmp_path / "rec.png"
    args = ["nst-reconstruct", f"--image={test_image('style/mauclair.jpg')}",
            "--layer=relu1_1", "--kind=style", "--size=32", "--steps=3", "--weights=random",
            "--noprogress"]
    assert cli.main(args + [f"--output={out}"]) == 0
    assert images.load_image(out).shape[:2] == (32, 28)   # mauclair.jpg is 128 x 146 (W x H)
    assert cli.main(args + [f"--output={tmp_path / 'no' / 'rec.png'}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nst-reconstruct: error:")
    assert os.listdir(tmp_path) == ["rec.png"]
