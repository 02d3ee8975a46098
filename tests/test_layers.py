"""nst_tf.layers against NumPy float64 references; configs and .keras round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nst_tf.errors import ImageError, StyleWeightsError
from nst_tf.layers import (ConditionalInstanceNorm, InstanceNormalization, NearestUpsample2D,
                           ReflectionPad2D)


def numpy_instance_norm(x, gamma, beta, eps=1e-5):
    """float64 reference: (x - mean) / sqrt(var + eps) * gamma + beta over H, W."""
    x = x.astype(np.float64)
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=(1, 2), keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def random_cin(num_styles, channels, rng):
    layer = ConditionalInstanceNorm(num_styles)
    layer.build([(None, None, None, channels), (None,)])
    layer.gamma.assign(rng.uniform(0.5, 2.0, (num_styles, channels)).astype(np.float32))
    layer.beta.assign(rng.normal(0, 1, (num_styles, channels)).astype(np.float32))
    return layer


def test_cin_labels_select_rows(rng):
    layer = random_cin(5, 7, rng)
    x = (rng.normal(2.0, 3.0, (3, 6, 9, 7))).astype(np.float32)
    labels = np.array([4, 0, 4])
    out = layer([x, labels]).numpy()
    gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
    expected = numpy_instance_norm(x, gamma[labels][:, None, None], beta[labels][:, None, None])
    np.testing.assert_allclose(out, expected, atol=2e-5)


def test_cin_single_mixture_and_per_example_mixtures(rng):
    layer = random_cin(4, 3, rng)
    x = rng.random((2, 5, 5, 3)).astype(np.float32)
    gamma, beta = layer.gamma.numpy().astype(np.float64), layer.beta.numpy().astype(np.float64)
    weights = np.array([0.2, 0.0, 1.5, -0.3], np.float32)     # not normalized, on purpose
    expected = numpy_instance_norm(x, weights @ gamma, weights @ beta)
    np.testing.assert_allclose(layer([x, weights]).numpy(), expected, atol=2e-5)
    # [1, N] broadcasts one mixture over the batch exactly like [N].
    np.testing.assert_array_equal(layer([x, weights[None]]).numpy(), layer([x, weights]).numpy())
    # [B, N]: one mixture per image.
    per_image = rng.random((2, 4)).astype(np.float32)
    out = layer([x, per_image]).numpy()
    for b in range(2):
        ref = numpy_instance_norm(x[b:b + 1], per_image[b] @ gamma, per_image[b] @ beta)
        np.testing.assert_allclose(out[b:b + 1], ref, atol=2e-5)


def test_cin_one_hot_weights_equal_labels_bitwise(rng):
    layer = random_cin(6, 4, rng)
    x = rng.random((3, 8, 8, 4)).astype(np.float32)
    labels = np.array([5, 1, 2])
    one_hot = np.eye(6, dtype=np.float32)[labels]
    np.testing.assert_array_equal(layer([x, one_hot]).numpy(), layer([x, labels]).numpy())


def test_cin_rejects_bad_style_shapes(rng):
    layer = random_cin(2, 3, rng)
    x = np.zeros((1, 4, 4, 3), np.float32)
    with pytest.raises(ValueError, match="style"):
        layer([x, np.zeros((1, 1, 2), np.float32)])
    with pytest.raises(StyleWeightsError, match="length 5 .* expected num_styles=2"):
        layer([x, np.zeros(5, np.float32)])


def test_cin_mixed_precision_and_xla(rng):
    """float16 activations: statistics in float32 (no overflow for large values), fp16 out."""
    layer = random_cin(3, 4, rng)
    x = (rng.normal(0, 1, (2, 16, 16, 4)) * 300.0).astype(np.float16)  # x² overflows fp16
    weights = np.array([0.5, 0.5, 0.0], np.float32)
    out = layer([tf.constant(x), weights])
    assert out.dtype == tf.float16
    expected = numpy_instance_norm(x.astype(np.float32), weights @ layer.gamma.numpy(),
                                   weights @ layer.beta.numpy())
    np.testing.assert_allclose(out.numpy().astype(np.float64), expected,
                               atol=4e-3)   # measured max error 0.0019
    compiled = tf.function(lambda a, w: layer([a, w]), jit_compile=True)
    x32 = x.astype(np.float32) / 300.0
    np.testing.assert_allclose(compiled(x32, weights).numpy(), layer([x32, weights]).numpy(),
                               atol=1e-5)


def test_cin_gradient_matches_finite_differences(rng):
    layer = random_cin(2, 2, rng)
    x = tf.constant(rng.random((1, 4, 4, 2)), tf.float64)
    layer64 = ConditionalInstanceNorm(2, dtype="float64")
    layer64.build([(None, None, None, 2), (None,)])
    layer64.set_weights([w.astype(np.float64) for w in layer.get_weights()])
    weights = tf.constant([0.3, 0.7], tf.float64)
    theoretical, numerical = tf.test.compute_gradient(
        lambda t: tf.reduce_sum(layer64([t, weights]) ** 3), [x])
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-4, atol=1e-6)


def test_instance_normalization(rng):
    layer = InstanceNormalization()
    x = rng.normal(1.0, 2.0, (2, 5, 7, 3)).astype(np.float32)
    layer.build(x.shape)
    layer.gamma.assign([1.0, 2.0, 0.5])
    layer.beta.assign([0.0, -1.0, 3.0])
    np.testing.assert_allclose(layer(x).numpy(),
                               numpy_instance_norm(x, np.array([1.0, 2.0, 0.5]),
                                                   np.array([0.0, -1.0, 3.0])), atol=2e-5)
    plain = InstanceNormalization(center=False, scale=False)
    np.testing.assert_allclose(plain(x).numpy(), numpy_instance_norm(x, 1.0, 0.0), atol=2e-5)
    assert plain.weights == []


@pytest.mark.parametrize("padding", [1, 4, (2, 3)])
def test_reflection_pad_matches_numpy(rng, padding):
    x = rng.random((2, 6, 7, 3)).astype(np.float32)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    expected = np.pad(x, [(0, 0), (ph, ph), (pw, pw), (0, 0)], mode="reflect")
    np.testing.assert_array_equal(ReflectionPad2D(padding)(x).numpy(), expected)


def test_reflection_pad_too_small_input():
    with pytest.raises(ImageError, match=r"at least 5x5 pixels .* got 4x9"):
        ReflectionPad2D(4, name="pad")(np.zeros((1, 4, 9, 3), np.float32))
    traced = tf.function(lambda t: ReflectionPad2D(2)(t),
                         input_signature=[tf.TensorSpec([None, None, None, 1])])
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least 3x3"):
        traced(tf.zeros([1, 2, 8, 1]))


def test_nearest_upsample_matches_numpy_repeat(rng):
    x = rng.random((2, 3, 5, 4)).astype(np.float32)
    expected = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    np.testing.assert_array_equal(NearestUpsample2D(2)(x).numpy(), expected)
    # ...which is what TF1's resize_nearest_neighbor (Magenta's upsampling) computes.
    np.testing.assert_array_equal(
        tf.compat.v1.image.resize_nearest_neighbor(x, [6, 10]).numpy(), expected)
    np.testing.assert_array_equal(NearestUpsample2D(1)(x).numpy(), x)


@pytest.mark.parametrize("layer", [
    ConditionalInstanceNorm(7, epsilon=1e-3, name="cin"),
    InstanceNormalization(epsilon=1e-4, center=False, name="inorm"),
    ReflectionPad2D((1, 2), name="pad"),
    NearestUpsample2D(3, name="up"),
], ids=lambda layer: type(layer).__name__)
def test_get_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    # get_config holds the constructor arguments and nothing else than Keras' base keys.
    own = {k: v for k, v in config.items() if k not in ("name", "trainable", "dtype")}
    type(layer)(**own)


def test_keras_file_round_trip(tmp_path, rng):
    image = keras.Input((None, None, 3))
    style = keras.Input((4,))
    x = ReflectionPad2D(1)(image)
    x = keras.layers.Conv2D(5, 3, use_bias=False)(x)
    x = ConditionalInstanceNorm(4)([x, style])
    x = NearestUpsample2D(2)(x)
    x = InstanceNormalization()(x)
    model = keras.Model([image, style], x)
    for weight in model.weights:
        weight.assign(rng.normal(0, 1, weight.shape).astype(np.float32))
    path = str(tmp_path / "layers.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    inputs = [rng.random((2, 6, 7, 3)).astype(np.float32), rng.random((1, 4)).astype(np.float32)]
    np.testing.assert_array_equal(restored(inputs).numpy(), model(inputs).numpy())


def test_a_keras_file_saved_before_the_layers_moved_still_loads():
    """``every_layer.keras`` holds every layer class, written when they all lived in one module
    ``nst_tf/layers.py`` (tests/fixtures/layers/make_keras_file.py): a file names a layer by its
    registered name (``nst_tf>ReflectConv2D``), so it loads from today's modules and computes
    what it computed then (within 1e-5: instance norm's moments are summed by rows since the
    file was made, measured 1.4e-6 apart on these values)."""
    import os

    import nst_tf.layers

    folder = os.path.join(os.path.dirname(__file__), "fixtures", "layers")
    recorded = np.load(os.path.join(folder, "every_layer.npz"))
    model = keras.saving.load_model(os.path.join(folder, "every_layer.keras"))
    found = {type(layer).__name__: type(layer).__module__ for layer in model.layers}
    assert {name for name, module in found.items() if module.startswith("nst_tf.")} == \
        {name for name in nst_tf.layers.__all__ if name[0].isupper()}
    np.testing.assert_allclose(model([recorded["image"], recorded["weights"]]),
                               recorded["output"], rtol=0, atol=1e-5)


def test_instance_norm_layer_stays_at_float32_resolution_at_print_size():
    """The layers normalize with the row-summed moments (:mod:`nst_tf.norm_statistics`): at
    1100x1500 the output is within 2e-6 of NumPy float64 (``tf.nn.moments``' one running float32
    sum per channel: measured 7e-4 off here)."""
    rng = np.random.default_rng(0)
    x = (1.0 + 2.0 * rng.random((1, 1100, 1500, 2))).astype(np.float32)
    out = InstanceNormalization(center=False, scale=False)(x).numpy()
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(1, 2), keepdims=True)
    expected = (x64 - mean) / np.sqrt(x64.var(axis=(1, 2), keepdims=True) + 1e-5)
    assert np.abs(out - expected).max() < 2e-6
