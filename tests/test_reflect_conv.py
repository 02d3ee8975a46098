"""ReflectConv2D (fast and exact forms) against a NumPy float64 reference and Magenta's graph."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nst_tf.errors import ImageError
from nst_tf.layers import (ConditionalInstanceNorm, ReflectConv2D, nearest_upsample, reflect_pad,
                           space_to_depth_conv, spatial_moments, upsample2_conv3,
                           upsample_reflect_pad)


def numpy_reflect_conv(x, kernel, stride=1, upsample=1):
    """float64 reference: np.repeat upsampling, np.pad reflect, sliding-window correlation."""
    x = np.repeat(np.repeat(x.astype(np.float64), upsample, 1), upsample, 2)
    pad = kernel.shape[0] // 2
    x = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)], mode="reflect")
    k = kernel.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # B,H,W,C,k,k
    windows = windows[:, ::stride, ::stride]
    return np.einsum("bhwcij,ijco->bhwo", windows, kernel.astype(np.float64))


def direct_tf(x, kernel, stride=1, upsample=1):
    """Magenta's op sequence in float32: TF1 nearest resize, tf.pad REFLECT, conv2d."""
    if upsample > 1:
        height, width = x.shape[1], x.shape[2]
        x = tf.compat.v1.image.resize_nearest_neighbor(x, [height * upsample, width * upsample])
    pad = kernel.shape[0] // 2
    x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    return tf.nn.conv2d(x, kernel, stride, "VALID")


# (height, width, cin, filters, kernel, stride, upsample): every code path of ReflectConv2D.
CASES = [(7, 9, 4, 3, 9, 1, 1),     # few filters, 9x9: space-to-depth when fast
         (5, 5, 3, 2, 9, 1, 1),     # smallest input for a 9x9 reflect pad
         (13, 6, 5, 3, 5, 1, 1),    # 5x5 on the space-to-depth grid, sizes not multiples of 4
         (6, 7, 4, 8, 3, 1, 2),     # x2 upsampling + 3x3: sub-pixel conv when fast
         (1, 3, 2, 5, 3, 1, 2),     # one-pixel-high input to the upsampling conv
         (9, 8, 3, 6, 3, 2, 1),     # strided conv (direct)
         (8, 8, 3, 4, 3, 1, 3),     # x3 upsampling (no sub-pixel form)
         (10, 11, 3, 16, 9, 1, 1)]  # 9x9 with many filters (direct)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_matches_float64_reference(rng, case, fast):
    height, width, cin, filters, k, stride, upsample = case
    layer = ReflectConv2D(filters, k, strides=stride, upsample=upsample, fast=fast)
    x = rng.random((2, height, width, cin)).astype(np.float32)
    out = layer(x).numpy()
    expected = numpy_reflect_conv(x, layer.kernel.numpy(), stride, upsample)
    assert out.shape == expected.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(out, expected, atol=2e-6, rtol=0)
    # Unknown H, W while tracing (the network's case), with and without XLA.
    spec = [tf.TensorSpec([None, None, None, cin], tf.float32)]
    for jit in (False, True):
        traced = tf.function(layer.call, input_signature=spec, jit_compile=jit)
        np.testing.assert_allclose(traced(x).numpy(), expected, atol=2e-6, rtol=0)


@pytest.mark.parametrize("case", CASES)
def test_exact_form_is_bit_identical_to_magenta_ops(rng, case):
    height, width, cin, filters, k, stride, upsample = case
    layer = ReflectConv2D(filters, k, strides=stride, upsample=upsample, fast=False)
    x = rng.random((2, height, width, cin)).astype(np.float32)
    np.testing.assert_array_equal(layer(x).numpy(),
                                  direct_tf(x, layer.kernel, stride, upsample).numpy())


def test_copy_helpers_are_exact(rng):
    x = rng.random((2, 6, 5, 3)).astype(np.float32)
    for pads in [(1, 1), (4, 2), (0, 3), (5, 4)]:
        expected = tf.pad(x, [[0, 0], [pads[0]] * 2, [pads[1]] * 2, [0, 0]], mode="REFLECT")
        np.testing.assert_array_equal(reflect_pad(x, *pads).numpy(), expected.numpy())
    for factor, pad in [(2, 1), (3, 1), (3, 2), (2, 0)]:
        np.testing.assert_array_equal(upsample_reflect_pad(x, factor, pad).numpy(),
                                      reflect_pad(nearest_upsample(x, factor), pad, pad).numpy())
    with pytest.raises(ValueError, match="pad < factor"):
        upsample_reflect_pad(x, 2, 2)


def test_functional_helpers_match_direct_conv(rng):
    x = rng.random((1, 11, 14, 6)).astype(np.float32)
    k3 = rng.normal(0, 0.3, (3, 3, 6, 5)).astype(np.float32)
    np.testing.assert_allclose(upsample2_conv3(x, k3).numpy(),
                               numpy_reflect_conv(x, k3, upsample=2), rtol=2e-6, atol=2e-6)
    k7 = rng.normal(0, 0.3, (7, 7, 6, 2)).astype(np.float32)
    padded = np.pad(x, [(0, 0), (3, 3), (3, 3), (0, 0)], mode="reflect")
    for block in (2, 3, 4):
        np.testing.assert_allclose(space_to_depth_conv(padded, k7, block).numpy(),
                                   numpy_reflect_conv(x, k7), rtol=2e-6, atol=2e-6)


def test_gradients_of_fast_and_exact_forms_agree(rng):
    x = tf.constant(rng.random((1, 6, 7, 4)).astype(np.float32))
    for filters, k, upsample in [(5, 3, 2), (3, 9, 1)]:
        fast = ReflectConv2D(filters, k, upsample=upsample, fast=True)
        exact = ReflectConv2D(filters, k, upsample=upsample, fast=False)
        fast.build(x.shape)
        exact.build(x.shape)
        exact.kernel.assign(fast.kernel)
        grads = []
        for layer in (fast, exact):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.sin(layer(x)))
            grads.append(tape.gradient(loss, [x, layer.kernel]))
        for g_fast, g_exact in zip(*grads):
            np.testing.assert_allclose(g_fast.numpy(), g_exact.numpy(), rtol=1e-5, atol=1e-5)


def test_too_small_input_and_bad_arguments():
    with pytest.raises(ImageError, match="at least 5x5"):
        ReflectConv2D(3, 9, name="conv")(np.zeros((1, 4, 9, 3), np.float32))
    with pytest.raises(ValueError, match="odd"):
        ReflectConv2D(3, 4)
    with pytest.raises(ValueError, match=">= 1"):
        ReflectConv2D(3, 3, upsample=0)


def test_config_and_keras_file_round_trip(tmp_path, rng):
    layer = ReflectConv2D(4, 3, strides=1, upsample=2, fast=False, name="up",
                          kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01))
    config = layer.get_config()
    assert {k: config[k] for k in ("filters", "kernel_size", "strides", "upsample", "fast")} == \
        {"filters": 4, "kernel_size": 3, "strides": 1, "upsample": 2, "fast": False}
    clone = ReflectConv2D.from_config(config)
    assert clone.get_config() == config
    model = keras.Sequential([keras.Input((None, None, 3)), layer])
    path = str(tmp_path / "conv.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    x = rng.random((1, 5, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(restored(x).numpy(), model(x).numpy())
    assert restored.layers[0].fast is False


def test_matmul_moments_are_accurate(rng):
    """Both moment forms against float64; the matmul form is the more accurate one at size."""
    x = rng.normal(3.0, 2.0, (2, 256, 192, 8)).astype(np.float32)
    x64 = x.astype(np.float64)
    mean64 = x64.mean(axis=(1, 2), keepdims=True)
    var64 = ((x64 - mean64) ** 2).mean(axis=(1, 2), keepdims=True)
    errors = {}
    for matmul in (False, True):
        mean, var = spatial_moments(tf.constant(x), matmul=matmul)
        assert mean.shape == var.shape == (2, 1, 1, 8)
        errors[matmul] = (np.abs(mean.numpy() - mean64).max(), np.abs(var.numpy() - var64).max())
        np.testing.assert_allclose(mean.numpy(), mean64, rtol=1e-4)
        np.testing.assert_allclose(var.numpy(), var64, rtol=1e-4)
    assert errors[True][0] <= errors[False][0] and errors[True][1] <= errors[False][1]
    # Unknown H, W while tracing, and XLA.
    spec = [tf.TensorSpec([None, None, None, 8], tf.float32)]
    traced = tf.function(lambda t: spatial_moments(t, matmul=True), input_signature=spec,
                         jit_compile=True)
    np.testing.assert_allclose(traced(x)[0].numpy(), mean64, rtol=1e-5)


def test_fast_cin_matches_exact_cin(rng):
    exact = ConditionalInstanceNorm(4)
    fast = ConditionalInstanceNorm(4, fast=True)
    x = rng.normal(1.0, 2.0, (2, 9, 7, 5)).astype(np.float32)
    weights = np.array([0.3, 0.0, 1.2, -0.4], np.float32)
    exact([x, weights])
    fast([x, weights])
    fast.set_weights([rng.uniform(0.5, 1.5, (4, 5)), rng.normal(0, 1, (4, 5))])
    exact.set_weights(fast.get_weights())
    np.testing.assert_allclose(fast([x, weights]).numpy(), exact([x, weights]).numpy(),
                               atol=1e-5)
    assert fast.get_config()["fast"] is True
    assert ConditionalInstanceNorm.from_config(fast.get_config()).fast is True


@pytest.mark.magenta
def test_pastiche_network_fast_and_exact_against_magenta(rng):
    """fast=False (Magenta's kernels, instance-norm moments summed by rows instead of
    ``tf.nn.moments``' one running sum) and fast=True (set_fast on the same network, or built
    so) are about as close to a float64 evaluation of the same network as Magenta's own float32
    graph is."""
    from magenta_compat.checkpoint import variable_slots as _network_slots
    from nst_tf.networks import pastiche_network, set_fast
    from tests.magenta_reference import MagentaTransformer

    num_styles = 10
    ref = MagentaTransformer(num_styles, alpha=0.5, seed=5)
    values = ref.get_values()

    def build(fast):
        network = pastiche_network(num_styles, alpha=0.5, fast=fast)
        for name, variable in _network_slots(network).items():
            variable.assign(values[name].astype(variable.dtype))
        return network

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        network64 = build(fast=False)
    finally:
        keras.config.set_dtype_policy(previous)
    image = rng.random((2, 37, 30, 3)).astype(np.float32)
    weights = rng.uniform(0.0, 1.0, num_styles).astype(np.float32)
    theirs = ref.run_mixture(image, weights).astype(np.float64)
    truth = network64([image.astype(np.float64), weights[None].astype(np.float64)]).numpy()
    magenta_error = np.abs(theirs - truth).max()
    assert 0 < magenta_error < 1e-4

    network = build(fast=False)
    exact = network([image, weights[None]]).numpy().astype(np.float64)
    assert np.abs(exact - theirs).max() < 1e-4
    assert np.abs(exact - truth).max() <= 2.0 * magenta_error + 1e-6
    assert set_fast(network) == 32
    fast = network([image, weights[None]]).numpy().astype(np.float64)
    np.testing.assert_allclose(fast, build(fast=True)([image, weights[None]]).numpy(), atol=1e-7)
    assert np.abs(fast - theirs).max() < 1e-4
    assert np.abs(fast - truth).max() <= 2.0 * magenta_error + 1e-6
