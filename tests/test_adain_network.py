"""nst_tf.models.adain.network: the AdaIN op against float64 NumPy, layers, shapes, .keras round trip."""

import numpy as np
import pytest
import tensorflow as tf

from nst_tf.errors import ConfigError
from nst_tf.networks import AdaptiveInstanceNorm, adain_config, adain_network, is_adain_network
from nst_tf.models.adain.network import (CONVENTIONS, DECODER, NORMALISED_VGG, adain,
                                   feature_statistics, torch_conv_indices)


def numpy_adain(content, style, convention, eps=1e-5, mask=None):
    """Reference in float64, written from the three papers' formulas."""
    c = content.astype(np.float64)
    s = style.astype(np.float64)
    ddof = 1 if convention == "pytorch" else 0
    weights = np.ones(c.shape[:3] + (1,)) if mask is None else mask.astype(np.float64)
    out = np.empty_like(c)
    for b in range(c.shape[0]):
        sel = weights[b, ..., 0] > 0.5
        pixels = c[b][sel]                                         # [N, C]
        mu_c, var_c = pixels.mean(0), pixels.var(0, ddof=ddof)
        flat = s[min(b, len(s) - 1)].reshape(-1, s.shape[-1])
        mu_s, var_s = flat.mean(0), flat.var(0, ddof=ddof)
        sigma_c = np.sqrt(var_c + eps)
        sigma_s = np.sqrt(var_s) if convention == "torch" else np.sqrt(var_s + eps)
        out[b] = sigma_s * (c[b] - mu_c) / sigma_c + mu_s
    return out


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_adain_op_matches_numpy(convention, rng):
    content = (rng.standard_normal((2, 5, 7, 6)) * 3 + 1).astype(np.float32)
    style = (rng.standard_normal((1, 4, 3, 6)) * 0.5 - 2).astype(np.float32)
    ours = AdaptiveInstanceNorm(convention)([content, style]).numpy()
    np.testing.assert_allclose(ours, numpy_adain(content, style, convention), rtol=1e-5,
                               atol=1e-5)


def test_conventions_differ_where_they_should(rng):
    content = rng.standard_normal((1, 3, 3, 4)).astype(np.float32)
    style = rng.standard_normal((1, 2, 2, 4)).astype(np.float32)
    outs = {c: AdaptiveInstanceNorm(c)([content, style]).numpy() for c in CONVENTIONS}
    assert np.abs(outs["pytorch"] - outs["keras"]).max() > 1e-2     # unbiased vs biased, 9 pixels
    assert np.abs(outs["torch"] - outs["keras"]).max() > 1e-7       # eps on the style side only
    with pytest.raises(ConfigError, match="convention"):
        AdaptiveInstanceNorm("caffe")


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_masked_statistics_match_numpy(convention, rng):
    content = rng.standard_normal((1, 6, 6, 3)).astype(np.float32)
    style = rng.standard_normal((1, 5, 5, 3)).astype(np.float32)
    mask = np.zeros((1, 6, 6, 1), np.float32)
    mask[:, :, :4] = 1
    layer = AdaptiveInstanceNorm(convention)
    mean, std = layer.style_statistics(tf.constant(style))
    ours = adain(tf.constant(content), mean, std, convention, mask=tf.constant(mask)).numpy()
    ref = numpy_adain(content, style, convention, mask=mask)
    sel = mask[..., 0] > 0.5
    np.testing.assert_allclose(ours[sel], ref[sel], rtol=1e-5, atol=1e-5)
    m, s = feature_statistics(tf.constant(content), convention, mask=tf.constant(mask))
    np.testing.assert_allclose(m.numpy()[0, 0, 0], content[0, :, :4].reshape(-1, 3).mean(0),
                               rtol=1e-5)


def test_published_layer_indices():
    vgg = torch_conv_indices(NORMALISED_VGG, 31)
    assert len(NORMALISED_VGG) == 53 and len(DECODER) == 29
    assert vgg == {"conv0": 0, "block1_conv1": 2, "block1_conv2": 5, "block2_conv1": 9,
                   "block2_conv2": 12, "block3_conv1": 16, "block3_conv2": 19,
                   "block3_conv3": 22, "block3_conv4": 25, "block4_conv1": 29}
    assert list(torch_conv_indices(DECODER).values()) == [1, 5, 8, 11, 14, 18, 21, 25, 28]


@pytest.mark.parametrize("size,expected", [((37, 50), (40, 56)), ((9, 16), (16, 16)),
                                           ((64, 64), (64, 64))])
def test_output_size_rounds_up_to_multiples_of_8(size, expected):
    net = adain_network(channel_divisor=16)
    out = net([np.random.rand(1, *size, 3).astype("float32"),
               np.random.rand(1, 20, 11, 3).astype("float32")])
    assert out.shape[1:3] == expected


def test_fast_decoder_equals_direct_decoder(rng):
    import keras

    keras.utils.set_random_seed(0)
    fast, direct = adain_network(channel_divisor=16, fast=True), adain_network(channel_divisor=16,
                                                                               fast=False)
    direct.set_weights(fast.get_weights())
    images = [rng.random((1, 27, 33, 3)).astype("float32"), rng.random((1, 16, 16, 3)).astype("float32")]
    got, want = fast(images).numpy(), direct(images).numpy()
    # float32 rounding of a different summation order, relative to the output's scale: measured
    # 0.8e-6 to 1.2e-5 of max|output| over six weight seeds (an absolute 2e-5 failed on large outputs).
    assert np.abs(got - want).max() <= 3e-5 * np.abs(want).max()


def test_keras_encoder_uses_keras_vgg19_layers(rng):
    net = adain_network("keras", convention="keras", channel_divisor=16)
    enc = net.get_layer("encoder")
    assert enc.get_layer("block4_conv1").__class__.__name__ == "Conv2D"
    assert adain_config(net) == {"encoder": "keras", "convention": "keras", "channel_divisor": 16}
    assert not enc.trainable_weights and net.get_layer("decoder").trainable_weights
    # The fixed input map: RGB in [0, 1] -> BGR*255 - mean.
    x = rng.random((1, 4, 4, 3)).astype("float32")
    mapped = enc.get_layer("conv0")(x).numpy()
    np.testing.assert_allclose(mapped, x[..., ::-1] * 255 - [103.939, 116.779, 123.68], atol=1e-3)
    with pytest.raises(ConfigError, match="channel_divisor=1"):
        adain_network("keras", channel_divisor=16, weights="imagenet")


def test_keras_round_trip(tmp_path, rng):
    import keras

    net = adain_network(channel_divisor=16, convention="torch")
    path = str(tmp_path / "adain.keras")
    net.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert is_adain_network(loaded) and adain_config(loaded) == adain_config(net)
    images = [rng.random((1, 24, 17, 3)).astype("float32"), rng.random((1, 12, 12, 3)).astype("float32")]
    np.testing.assert_array_equal(loaded(images).numpy(), net(images).numpy())
    layer = net.get_layer("adain")
    assert AdaptiveInstanceNorm.from_config(layer.get_config()).convention == "torch"


def test_bad_sizes():
    with pytest.raises(ConfigError, match="divide 64"):
        adain_network(channel_divisor=3)
