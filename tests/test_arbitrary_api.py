"""nst_tf.stylize with arbitrary-style models: style arguments, options, errors, caching, files.

A thin random network (alpha 0.25, trunk depth multiplier 0.25) keeps these fast; parity with
Magenta's own graph is in test_arbitrary_parity.py.
"""

import functools
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import nst_tf
from magenta_compat import arbitrary as arb
from magenta_compat.checkpoint import write_checkpoint, write_tensors
from nst_tf import families
from nst_tf.models.arbitrary import family as arbitrary
from nst_tf.models.arbitrary.family import ArbitraryFamily
from nst_tf.errors import (CheckpointError, ConfigError, ImageError, StyleWeightsError,
                           WeightsUnavailableError)
from nst_tf.networks import (arbitrary_config, arbitrary_network, style_predictor_of,
                             transformer_of)
from pastiche_helpers import random_pastiche


@functools.lru_cache(maxsize=None)
def random_arbitrary(seed=0):
    """A thin arbitrary-style network with benign random weights; one per seed for the whole
    session (test files share it, so its functions are compiled once). Do not modify it."""
    net = arbitrary_network(alpha=0.25, depth_multiplier=0.25)
    rng = np.random.default_rng(seed)
    for w in net.weights:
        if "moving_variance" in w.path:
            w.assign(rng.uniform(0.5, 2.0, w.shape).astype(np.float32))
        elif "gamma_bias" in w.path:
            w.assign(np.ones(w.shape, np.float32))
        elif len(w.shape) == 4:
            w.assign(rng.normal(0, np.sqrt(2.0 / np.prod(w.shape[:3])), w.shape)
                     .astype(np.float32))
    return net


@pytest.fixture(scope="module")
def net():
    return random_arbitrary()


@pytest.fixture(scope="module")
def checkpoint(net, tmp_path_factory):
    return arb.write_arbitrary_checkpoint(net, str(tmp_path_factory.mktemp("arb") / "model.ckpt"))


def photo(height=30, width=41, seed=0):
    return np.random.default_rng(seed).random((height, width, 3), np.float32)


def test_config_and_round_trip_through_keras_file(net, tmp_path):
    assert arbitrary_config(net) == {"embedding_size": 100, "alpha": 0.25,
                                     "depth_multiplier": 0.25, "predictor": "inception_v3"}
    path = str(tmp_path / "arb.keras")
    net.save(path)
    content, style = photo(), photo(64, 70, 1)
    expected = nst_tf.stylize(content, style, model=net, style_size=64)
    np.testing.assert_array_equal(nst_tf.stylize(content, style, model=path, style_size=64),
                                  expected)


def test_stylize_equals_the_two_halves(net):
    content, style = photo(), photo(64, 70, 1)
    embedding = style_predictor_of(net)(style[None]).numpy()
    expected = transformer_of(net)([content[None], embedding]).numpy()[0, :30, :41]
    np.testing.assert_allclose(nst_tf.stylize(content, style, model=net, style_size=None),
                               expected, atol=1e-5)
    np.testing.assert_allclose(nst_tf.style_embedding(style, model=net, style_size=None),
                               embedding, atol=1e-5)
    np.testing.assert_allclose(nst_tf.stylize_from_embedding(content, embedding[0], model=net),
                               expected, atol=1e-5)


def test_output_shapes(net):
    styles = [photo(64, 64, 1), photo(70, 64, 2), photo(64, 90, 3)]
    one = photo()
    batch = np.stack([photo(seed=4), photo(seed=5)])
    assert nst_tf.stylize(one, styles[0], model=net, style_size=64).shape == (30, 41, 3)
    assert nst_tf.stylize(one, styles, model=net, style_size=64).shape == (3, 30, 41, 3)
    assert nst_tf.stylize(one, styles[:1], model=net, style_size=64).shape == (1, 30, 41, 3)
    assert nst_tf.stylize(batch, styles, model=net, style_size=64).shape == (2, 3, 30, 41, 3)
    assert nst_tf.stylize(batch, styles[:2], model=net, style_weights=[1, 1],
                          style_size=64).shape == (2, 30, 41, 3)
    assert nst_tf.stylize(one, styles[0], model=net, style_size=64, crop=False).shape == \
        (32, 44, 3)
    assert nst_tf.stylize(one, styles[0], model=net, style_size=64, size=20).shape == (20, 27, 3)


def test_list_outputs_equal_single_calls_and_mixture_is_normalized(net):
    content, styles = photo(), [photo(64, 64, 1), photo(64, 80, 2)]
    several = nst_tf.stylize(content, styles, model=net, style_size=64)
    for k, style in enumerate(styles):
        np.testing.assert_allclose(several[k], nst_tf.stylize(content, style, model=net,
                                                              style_size=64), atol=1e-5)
    e = nst_tf.style_embedding(styles, model=net, style_size=64)
    mix = nst_tf.stylize(content, styles, model=net, style_weights=[2.0, 6.0], style_size=64)
    np.testing.assert_allclose(
        mix, nst_tf.stylize_from_embedding(content, 0.25 * e[0] + 0.75 * e[1], model=net),
        atol=1e-5)
    # A weight vector on one style is that style.
    np.testing.assert_allclose(nst_tf.stylize(content, styles, model=net, style_weights=[0, 1],
                                              style_size=64), several[1], atol=1e-5)


def test_strength_interpolates_with_the_content_embedding(net):
    content, style = photo(), photo(64, 64, 1)
    e_style = nst_tf.style_embedding(style, model=net, style_size=64)[0]
    e_content = nst_tf.style_embedding(content, model=net, style_size=64)[0]
    for s in (0.0, 0.4):
        np.testing.assert_allclose(
            nst_tf.stylize(content, style, model=net, strength=s, style_size=64),
            nst_tf.stylize_from_embedding(content, s * e_style + (1 - s) * e_content,
                                          model=net), atol=1e-5)


def test_style_folder_and_paths(net, tmp_path):
    folder = tmp_path / "styles"
    folder.mkdir()
    for name, seed in (("b.png", 1), ("a.png", 2)):
        nst_tf.save_image(str(folder / name), photo(64, 64, seed))
    (folder / "notes.txt").write_text("not an image")
    out = nst_tf.stylize(photo(), str(folder), model=net, style_size=64)
    assert out.shape == (2, 30, 41, 3)
    np.testing.assert_array_equal(out[0], nst_tf.stylize(photo(), str(folder / "a.png"),
                                                         model=net, style_size=64))


def test_embeddings_are_computed_once_per_style(net, monkeypatch):
    runner = arbitrary.runner_for(net)
    calls = []
    original = runner.embed
    monkeypatch.setattr(runner, "embed", lambda batch: calls.append(batch.shape) or
                        original(batch))
    style = photo(64, 66, 42)
    for _ in range(3):
        nst_tf.stylize(photo(), style, model=net, style_size=64)
    nst_tf.stylize(photo(), [style, style], model=net, style_weights=[0.5, 0.5], style_size=64)
    assert len(calls) == 1
    nst_tf.stylize(photo(), style, model=net, style_size=48)   # another preprocessing
    assert len(calls) == 2


def test_cached_style_files_are_not_decoded_again(net, tmp_path, monkeypatch):
    path = str(tmp_path / "style.png")
    nst_tf.save_image(path, photo(64, 64, 43))
    first = nst_tf.stylize(photo(), path, model=net, style_size=64)
    loads = []
    original = nst_tf.images.load_image
    monkeypatch.setattr(nst_tf.images, "load_image",
                        lambda *a, **k: loads.append(a) or original(*a, **k))
    np.testing.assert_array_equal(nst_tf.stylize(photo(), path, model=net, style_size=64), first)
    assert loads == []
    nst_tf.save_image(path, photo(64, 64, 44))        # a rewritten file is read again
    os.utime(path, ns=(1, 1))
    assert np.max(np.abs(nst_tf.stylize(photo(), path, model=net, style_size=64) - first)) > 0
    assert len(loads) == 1


def test_small_style_is_resized_up_with_a_warning(net):
    with pytest.warns(UserWarning, match="at least 43 px"):
        out = nst_tf.stylize(photo(), photo(20, 30, 1), model=net, style_size=None)
    assert out.shape == (30, 41, 3) and np.all(np.isfinite(out))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nst_tf.stylize(photo(), photo(20, 30, 1), model=net, style_size=64)  # 64 > 43: fine


@pytest.mark.parametrize("weights, match", [
    ([0.5], "1 style weight"), ([0.5, float("nan")], "finite"), ([1.0, -0.2], "negative"),
    ([0, 0], "sum to 0"), ("x", "list of 2 numbers|style weight")])
def test_bad_style_weights(net, weights, match):
    with pytest.raises(StyleWeightsError, match=match):
        nst_tf.stylize(photo(), [photo(64, 64, 1), photo(64, 64, 2)], model=net,
                       style_weights=weights)


def test_bad_inputs_are_one_line_errors(net, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    cases = [(lambda: nst_tf.stylize(photo(), str(broken), model=net), ImageError),
             (lambda: nst_tf.stylize(photo(), str(tmp_path / "missing.jpg"), model=net),
              ImageError),
             (lambda: nst_tf.stylize(photo(), None, model=net), StyleWeightsError),
             (lambda: nst_tf.stylize(photo(), [], model=net), StyleWeightsError),
             (lambda: nst_tf.stylize(photo(), photo(64, 64), model=net, strength=1.5),
              ConfigError),
             (lambda: nst_tf.stylize(photo(), photo(64, 64), model=net, style_size=0),
              ConfigError),
             (lambda: nst_tf.stylize(photo(), photo(64, 64), model=net, which=1), ConfigError),
             (lambda: nst_tf.stylize(photo(3, 3), photo(64, 64), model=net), ImageError),
             (lambda: nst_tf.stylize_from_embedding(photo(), np.zeros(7), model=net),
              StyleWeightsError)]
    for call, error in cases:
        with pytest.raises(error) as info:
            call()
        assert "\n" not in str(info.value)
    with pytest.raises(ImageError, match="broken.jpg"):
        nst_tf.stylize(photo(), [photo(64, 64), str(broken)], model=net)


def test_checkpoint_kind_is_read_from_its_variables(net, checkpoint, tmp_path):
    family, loaded = families.resolve(checkpoint)
    assert isinstance(family, ArbitraryFamily)
    ours = arb.network_variables(loaded)
    for name, value in arb.network_variables(net).items():
        np.testing.assert_array_equal(ours[name], value, err_msg=name)
    pastiche_path = write_checkpoint(random_pastiche(2), str(tmp_path / "pastiche.ckpt"))
    assert families.resolve(pastiche_path)[0].name == "pastiche"


def test_misfit_checkpoint_lists_names_with_both_shapes(net, tmp_path):
    tensors = arb.network_variables(net)
    name = "style_params/transformer/residual/residual2/conv1/StyleNorm/Conv_1/weights"
    tensors[name] = np.zeros((1, 1, 100, 7), np.float32)
    del tensors["InceptionV3/Mixed_5c/Branch_1/Conv_1_0c_5x5/weights"]
    tensors["transformer/extra/weights"] = np.zeros((3, 3), np.float32)
    tensors["global_step"] = np.int64(5)                         # ignored
    tensors["transformer/contract/conv1/weights/Adam"] = tensors[
        "transformer/contract/conv1/weights"]                    # slot: ignored
    path = write_tensors(tensors, str(tmp_path / "bad.ckpt"))
    with pytest.raises(CheckpointError) as info:
        arb.load_arbitrary_network(path)
    message = str(info.value)
    assert f"{name}: [1, 1, 100, 7] vs [1, 1, 100, 32]" in message
    assert "InceptionV3/Mixed_5c/Branch_1/Conv_1_0c_5x5/weights [5, 5, 16, 16]" in message
    assert "transformer/extra/weights [3, 3]" in message
    assert "global_step" not in message and "Adam" not in message and path in message


def test_tarball_errors(tmp_path):
    bad = tmp_path / "broken.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(CheckpointError, match="broken.tar.gz"):
        arb.load_arbitrary_network(str(bad))


def test_offline_preset_names_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(WeightsUnavailableError) as info:
        arb.resolve("arbitrary", download=False)
    message = str(info.value)
    assert arb.PRESETS["arbitrary"].url in message
    assert os.path.join(str(tmp_path / "keras"), "models", "magenta",
                        "arbitrary_style_transfer.tar.gz") in message
    assert arb.PRESETS["arbitrary"].url == ("https://storage.googleapis.com/download.magenta."
                                            "tensorflow.org/models/arbitrary_style_transfer.tar.gz")


def test_importing_does_not_load_tensorflow_hub():
    code = ("import sys, nst_tf, magenta_compat; nst_tf.families; "
            "print('tensorflow_hub' in sys.modules, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
