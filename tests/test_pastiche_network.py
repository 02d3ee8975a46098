"""nst_tf.networks.pastiche_network: topology, shapes, names, config, input checks."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from nst_tf.errors import ImageError
from nst_tf.layers import ConditionalInstanceNorm
from nst_tf.networks import (PASTICHE_LAYERS, check_pastiche_input, keras_name,
                             magenta_variable_names, pastiche_config, pastiche_network,
                             pastiche_output_size)


@pytest.fixture(scope="module")
def small_net():
    return pastiche_network(3, alpha=0.25)


def test_parameter_count_matches_magenta():
    """1,674,432 conv weights + 3,206 CIN parameters per style at alpha=1 (no biases)."""
    for num_styles in (32, 10):
        net = pastiche_network(num_styles)
        assert net.count_params() == 1_674_432 + 3_206 * num_styles
        assert len(net.weights) == 48
        assert not any("bias" in w.path for w in net.weights)


def test_layer_table_and_names():
    assert len(PASTICHE_LAYERS) == 16
    scopes = [spec.scope for spec in PASTICHE_LAYERS]
    assert scopes[0] == "contract/conv1" and scopes[-1] == "expand/conv3/conv"
    assert "residual/residual3/conv2" in scopes
    assert keras_name("residual/residual3/conv2") == "residual_residual3_conv2"
    assert magenta_variable_names("expand/conv1/conv") == {
        "kernel": "transformer/expand/conv1/conv/weights",
        "gamma": "transformer/expand/conv1/conv/InstanceNorm/gamma",
        "beta": "transformer/expand/conv1/conv/InstanceNorm/beta"}
    net = pastiche_network(2)
    norms = [layer for layer in net.layers if isinstance(layer, ConditionalInstanceNorm)]
    assert len(norms) == 16  # CIN on every conv, the last one included
    assert net.get_layer("expand_conv3_conv_norm").gamma.shape == (2, 3)
    assert net.get_layer("contract_conv1").kernel.shape == (9, 9, 3, 32)
    assert net.get_layer("expand_conv1_conv").kernel.shape == (3, 3, 128, 64)


@pytest.mark.parametrize("size", [(5, 5), (37, 53), (64, 64), (21, 8)])
def test_output_size_rule(small_net, size, rng):
    height, width = size
    image = rng.random((2, height, width, 3)).astype(np.float32)
    out = small_net([image, np.full((1, 3), 1 / 3, np.float32)]).numpy()
    expected = (4 * math.ceil(height / 4), 4 * math.ceil(width / 4))
    assert pastiche_output_size(height, width) == expected
    assert out.shape == (2, *expected, 3)
    assert out.dtype == np.float32 and np.all((out >= 0) & (out <= 1))


def test_labels_and_weights_inputs(rng):
    net_w = pastiche_network(4, alpha=0.25)
    net_l = pastiche_network(4, alpha=0.25, style_input="labels")
    net_l.set_weights(net_w.get_weights())
    for weight in net_w.weights:
        if "gamma" in weight.path or "beta" in weight.path:
            weight.assign(rng.normal(1.0, 0.5, weight.shape).astype(np.float32))
    net_l.set_weights(net_w.get_weights())
    image = rng.random((2, 16, 16, 3)).astype(np.float32)
    by_label = net_l([image, np.array([3, 1], np.int32)]).numpy()
    by_one_hot = net_w([image, np.eye(4, dtype=np.float32)[[3, 1]]]).numpy()
    np.testing.assert_array_equal(by_label, by_one_hot)
    assert np.abs(by_label[0] - net_l([image, np.array([0, 1])]).numpy()[0]).max() > 1e-3
    assert pastiche_config(net_l) == {"num_styles": 4, "alpha": 0.25, "style_input": "labels"}


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.25, 0.3])
def test_config_recovers_widths(alpha):
    net = pastiche_network(2, alpha=alpha)
    config = pastiche_config(net)
    rebuilt = pastiche_network(config["num_styles"], alpha=config["alpha"])
    assert [w.shape for w in rebuilt.weights] == [w.shape for w in net.weights]
    assert config["num_styles"] == 2


def test_check_pastiche_input():
    check_pastiche_input(np.zeros((5, 5, 3)))
    check_pastiche_input(np.zeros((2, 8, 5, 3)))
    with pytest.raises(ImageError, match="4x9 pixels"):
        check_pastiche_input(np.zeros((1, 9, 4, 3)))
    with pytest.raises(ImageError, match="shape"):
        check_pastiche_input(np.zeros((8, 8, 4)))
    with pytest.raises(ImageError, match="shape"):
        check_pastiche_input(np.zeros((8, 8)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="style_input"):
        pastiche_network(2, style_input="onehot")
    with pytest.raises(ValueError, match="num_styles"):
        pastiche_network(0)
    with pytest.raises(ValueError, match="alpha"):
        pastiche_network(2, alpha=0.01)


def test_compiled_and_xla_match_eager(small_net, rng):
    image = rng.random((1, 24, 20, 3)).astype(np.float32)
    weights = rng.random((1, 3)).astype(np.float32)
    eager = small_net([image, weights]).numpy()
    for jit in (False, True):
        forward = tf.function(lambda x, w: small_net([x, w]), jit_compile=jit)
        np.testing.assert_allclose(forward(image, weights).numpy(), eager, atol=1e-5)


def test_mixed_precision_forward(rng):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        net16 = pastiche_network(2, alpha=0.25)
    finally:
        keras.config.set_dtype_policy(previous)
    net32 = pastiche_network(2, alpha=0.25)
    net32.set_weights(net16.get_weights())
    image = rng.random((1, 32, 32, 3)).astype(np.float32)
    weights = np.array([[0.5, 0.5]], np.float32)
    out16 = net16([image, weights])
    assert out16.dtype == tf.float32
    np.testing.assert_allclose(out16.numpy(), net32([image, weights]).numpy(),
                               atol=1e-2)   # measured max error 0.0048


def test_keras_round_trip(tmp_path, small_net, rng):
    for weight in small_net.weights:
        weight.assign(weight + rng.normal(0, 0.1, weight.shape).astype(np.float32))
    path = str(tmp_path / "pastiche.keras")
    small_net.save(path)
    restored = keras.models.load_model(path)
    image = rng.random((1, 13, 17, 3)).astype(np.float32)
    weights = np.array([[0.2, 0.3, 0.5]], np.float32)
    np.testing.assert_array_equal(restored([image, weights]).numpy(),
                                  small_net([image, weights]).numpy())
    assert pastiche_config(restored) == pastiche_config(small_net)
