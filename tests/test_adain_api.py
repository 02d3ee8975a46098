"""nst_tf.stylize with AdaIN models: test.py parity (PyTorch fixture), controls, shapes, errors."""

import os
import shutil

import numpy as np
import pytest

import nst_tf
from nst_tf.models.adain import family as adain_family
from nst_tf.errors import ConfigError, ImageError, StyleWeightsError
from torch_compat.adain import load_adain

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "adain")


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(os.path.join(FIXTURE, "expected.npz")))


@pytest.fixture(scope="module")
def net():
    return load_adain(os.path.join(FIXTURE, "vgg_normalised.pth"),
                      os.path.join(FIXTURE, "decoder.pth"))


def run(expected, net, style, **options):
    options.setdefault("style_size", None)
    return nst_tf.stylize(expected["content"], style, model=net, **options)


@pytest.mark.parametrize("key,style_keys,options", [
    ("output", ("style_a",), {}),
    ("output_alpha", ("style_a",), {"strength": 0.6}),
    ("output_mix", ("style_a", "style_b"), {"style_weights": [1, 3]}),
    ("output_color", ("style_a",), {"preserve_color": True}),
])
def test_matches_pytorch_adain_test_py(expected, net, key, style_keys, options):
    styles = [expected[k] for k in style_keys]
    out = run(expected, net, styles if len(styles) > 1 else styles[0], **options)
    assert out.shape == (40, 48, 3)
    assert np.abs(out - np.clip(expected[key], 0, 1)).max() <= 1e-4


def test_coral_matches_pytorch(expected):
    ours = nst_tf.images.coral(expected["style_a"], expected["content"])
    np.testing.assert_allclose(ours, expected["style_a_color"], atol=1e-4)


def test_list_of_styles_gives_one_output_each_and_crop(expected, net):
    styles = [expected["style_a"], expected["style_b"]]
    out = run(expected, net, styles, crop=True)
    assert out.shape == (2, 37, 45, 3)
    assert np.abs(out[0] - np.clip(expected["output"], 0, 1)[:37, :45]).max() <= 1e-4
    batch = np.stack([expected["content"]] * 3)
    out = nst_tf.stylize(batch, styles, model=net, style_size=None, batch_size=2)
    assert out.shape == (3, 2, 40, 48, 3)
    np.testing.assert_allclose(out[2, 0], np.clip(expected["output"], 0, 1), atol=1e-4)


def test_strength_zero_reconstructs_content_features(expected, net):
    a = run(expected, net, expected["style_a"], strength=0.0)
    b = run(expected, net, expected["style_b"], strength=0.0)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_mask_runs_adain_per_region(expected, net):
    from tests.test_adain_network import numpy_adain

    import tensorflow as tf

    mask = np.zeros((37, 45), np.float32)
    mask[:, :20] = 1.0
    out = run(expected, net, [expected["style_a"], expected["style_b"]], mask=mask)
    encoder, decoder = net.get_layer("encoder"), net.get_layer("decoder")
    features = encoder(expected["content"][None])[-1].numpy()
    grid = tf.image.resize(mask[None, :, :, None], features.shape[1:3], "nearest").numpy()
    fg = (grid >= 0.5).astype(np.float64)
    parts = [numpy_adain(features, encoder(expected[k][None])[-1].numpy(), "pytorch", mask=m)
             for k, m in (("style_a", fg), ("style_b", 1 - fg))]
    target = fg * parts[0] + (1 - fg) * parts[1]
    ref = np.clip(decoder(target.astype(np.float32)).numpy()[0], 0, 1)
    assert 0 < fg.mean() < 1
    assert np.abs(out - ref).max() <= 1e-4


def test_style_statistics_are_cached(expected, net, monkeypatch):
    calls = []
    original = adain_family._functions_of(net, False)[0]

    def counting(image):
        calls.append(image.shape)
        return original(image)

    monkeypatch.setitem(adain_family._functions, (id(net), False),
                        (net, (counting,) + adain_family._functions_of(net, False)[1:]))
    adain_family._stats_cache.clear()
    for _ in range(3):
        run(expected, net, expected["style_a"], strength=0.5)
    assert len(calls) == 1


def test_models_from_paths(expected, net, tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in ("vgg_normalised.pth", "decoder.pth"):
        shutil.copy(os.path.join(FIXTURE, name), folder / name)
    reference = run(expected, net, expected["style_a"])
    for model in (str(folder), str(folder / "decoder.pth")):
        out = nst_tf.stylize(expected["content"], expected["style_a"], model=model,
                             style_size=None)
        np.testing.assert_allclose(out, reference, atol=1e-6)
    keras_path = str(tmp_path / "adain.keras")
    net.save(keras_path)
    out = nst_tf.stylize(expected["content"], expected["style_a"], model=keras_path,
                         style_size=None)
    np.testing.assert_allclose(out, reference, atol=1e-6)


@pytest.mark.parametrize("style_key,size,shape", [
    ("style_a", 64, (78, 64)),     # 40 x 33 (H x W): the width is the short side; upscaled
    ("style_b", 20, (20, 24)),     # 29 x 35: the height is; downscaled
])
def test_style_size_resizes_the_shorter_side(expected, net, monkeypatch, style_key, size,
                                             shape):
    """The style the network receives is measured: whatever resized it, it has the short side
    ``style_size`` and the aspect ratio of the original (shape = rounded ``H·s/min``,
    ``W·s/min``, written out above), and feeding that image unresized gives the same output."""
    from nst_tf import data

    seen = []
    real = data.scale_short_side

    def spy(image, target):
        out = real(image, target)
        seen.append(np.clip(out.numpy(), 0, 1))
        return out

    monkeypatch.setattr(data, "scale_short_side", spy)
    a = run(expected, net, expected[style_key], style_size=size)
    monkeypatch.undo()
    assert [image.shape for image in seen] == [shape + (3,)]
    assert min(seen[0].shape[:2]) == size
    b = run(expected, net, seen[0])
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - run(expected, net, expected[style_key])).max() > 1e-3  # size matters


def test_errors(expected, net):
    c, s = expected["content"], expected["style_a"]
    with pytest.raises(ConfigError, match="needs a style"):
        nst_tf.stylize(c, model=net)
    with pytest.raises(ConfigError, match="strength"):
        nst_tf.stylize(c, s, model=net, strength=1.5)
    with pytest.raises(StyleWeightsError, match="2 style_weights for 1"):
        nst_tf.stylize(c, [s], model=net, style_weights=[1, 2])
    with pytest.raises(ConfigError, match="exactly two styles"):
        nst_tf.stylize(c, s, model=net, mask=np.ones((4, 4)))
    with pytest.raises(ImageError, match="at least 9x9"):
        nst_tf.stylize(c[:8], s, model=net)
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        nst_tf.stylize(c * 255, s, model=net)
    with pytest.raises(ConfigError, match="does not apply to adain models"):
        nst_tf.stylize(c, s, model=net, precision="bfloat16")
