"""Stride and receptive field from the layers (nst_tf.receptive_field), both walks.

The reference is measured, not derived: the input rows and columns with a non-zero gradient of
an output element (or, with the normalization statistics replayed so the network is local, of an
aligned block of output rows) are exactly the ones it depends on.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nst_tf import norm_statistics
from nst_tf.errors import ConfigError
from nst_tf.features import FeatureExtractor
from nst_tf.networks import adain_network, johnson_network, pastiche_network, texture_network
from nst_tf.models.texture.network import with_noise_inputs
from nst_tf.receptive_field import (Footprint, activation_floats_per_pixel, footprint, minimal_halo,
                                    output_geometry)


def he_weights(network, seed=0):
    rng = np.random.default_rng(seed)
    for weight in network.weights:
        shape = tuple(weight.shape)
        if len(shape) == 4:
            weight.assign(rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1])))
    return network


def measured_reach(call, inputs, scales, stride, block_start):
    """``(before, after)`` input rows that output rows ``[block_start, block_start + stride)``
    depend on, from the gradient with the statistics of the same inputs replayed."""
    inputs = [tf.constant(x) for x in inputs]
    with norm_statistics.recording() as recorded:
        call(*inputs)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        with norm_statistics.replaying(recorded.statistics):
            out = call(*inputs)
        block = out[:, block_start:block_start + stride]
        loss = tf.reduce_sum(block * tf.random.stateless_normal(tf.shape(block), [1, 2]))
    first, last = [], []
    for gradient, scale in zip(tape.gradient(loss, inputs), scales):
        rows = np.nonzero(np.abs(gradient.numpy()).sum(axis=(0, 2, 3)))[0]
        first.append(rows.min() * scale)
        last.append((rows.max() + 1) * scale - 1)
    return block_start - min(first), max(last) - (block_start + stride - 1)


@pytest.mark.parametrize("make, styles", [
    (lambda: johnson_network(alpha=0.25, num_residual=2), None),
    (lambda: pastiche_network(2, alpha=0.25), tf.constant([[0.4, 0.6]])),
])
def test_footprint_of_the_transformers_matches_the_measured_dependency(make, styles):
    network = he_weights(make())
    fp = footprint([(network, 0)])
    assert fp.stride == 4
    image = np.random.default_rng(1).random((1, 176, 12, 3)).astype(np.float32)
    if styles is None:
        reach = measured_reach(lambda x: network(x), [image], [1], 4, 88)
    else:
        reach = measured_reach(lambda x: network([x, styles]), [image], [1], 4, 88)
    assert (fp.before, fp.after) == reach
    assert minimal_halo(fp) == 4 * -(-max(reach) // 4)


def test_footprint_of_a_texture_network_includes_its_noise_inputs():
    network = he_weights(with_noise_inputs(texture_network(num_scales=3, channels=4,
                                                           mode="stylize", norm="instance")))
    fp = footprint([(network, 0)])
    assert fp.stride == 4
    rng = np.random.default_rng(2)
    inputs = [rng.random((1, 96, 8, 3)).astype(np.float32)]
    inputs += [rng.random((1, 96 // r, 8 // r, 3)).astype(np.float32) for r in (4, 2, 1)]
    reach = measured_reach(lambda *x: network(list(x)), inputs, [1, 4, 2, 1], 4, 48)
    assert (fp.before, fp.after) == reach


def test_adain_stride_and_halo_cover_encoder_and_decoder():
    network = adain_network(channel_divisor=16)
    encoder, decoder = network.get_layer("encoder"), network.get_layer("decoder")
    fp = footprint([(encoder, 3), (decoder, 0)])
    # Three 2x2 poolings: stride 8; VGG to relu4_1 plus the decoder need a 64 px halo (the
    # reference's estimate from the layer list).
    assert fp.stride == 8 and minimal_halo(fp) == 64
    assert footprint([(encoder, 0)]) == Footprint(1, 1, 1)     # one 3x3 conv to relu1_1


def test_layers_without_a_known_footprint_are_config_errors():
    image = keras.Input((None, None, 3))
    cases = [
        (keras.layers.Conv2D(3, 3, strides=2, padding="same"), "'same' padding with stride"),
        (keras.layers.UpSampling2D(2, interpolation="bilinear"), "bilinear"),
        (keras.layers.GlobalAveragePooling2D(keepdims=True), "receptive field is unknown"),
    ]
    for layer, message in cases:
        with pytest.raises(ConfigError, match=message):
            footprint([(keras.Model(image, layer(image)), 0)])
    circular = texture_network(num_scales=2, channels=2, mode="texture", noise_input=True)
    with pytest.raises(ConfigError, match="circularly"):
        footprint([(circular, 0)])
    drawn = texture_network(num_scales=2, channels=2, mode="stylize")
    with pytest.raises(ConfigError, match="noise_input=True"):
        footprint([(drawn, 0)])


# --- Forward: an encoder's output geometry (exact tiled Gatys) ---

def support(model, output, shape, index):
    """Rows and columns of the input that output element ``index`` depends on (gradient != 0)."""
    x = tf.constant(np.random.default_rng(0).uniform(0.5, 1.0, (1, *shape, 1)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = model(x)[output][0, index[0], index[1], 0]
    grad = tape.gradient(y, x).numpy()[0, :, :, 0]
    rows, cols = np.nonzero(grad)
    return (rows.min(), rows.max() + 1), (cols.min(), cols.max() + 1)


def test_geometry_matches_the_gradient_support_of_a_mixed_model():
    # Positive weights and inputs, linear layers: an input pixel reaches an output element iff
    # it is in its receptive field, so the gradient's support *is* the receptive field.
    inputs = keras.Input((None, None, 1))
    ones = dict(kernel_initializer="ones", bias_initializer="zeros")
    a = keras.layers.ZeroPadding2D(((2, 1), (3, 0)))(inputs)
    a = keras.layers.Conv2D(1, 3, **ones)(a)                                   # valid
    b = keras.layers.AveragePooling2D(2)(a)
    b = keras.layers.Conv2D(1, 3, padding="same", dilation_rate=2, **ones)(b)
    c = keras.layers.Conv2D(1, (3, 5), strides=2, **ones)(b)                   # strided valid
    d = keras.layers.Cropping2D(((1, 0), (0, 2)))(c)
    e = keras.layers.Conv2D(1, 1, strides=2, padding="same", **ones)(d)        # k <= s: fine
    model = keras.Model(inputs, {"b": b, "d": d, "e": e})
    geometry = output_geometry(model)
    shape = (120, 130)
    for name, index in [("b", (20, 25)), ("d", (6, 7)), ("e", (3, 4))]:
        rows, cols = geometry[name]
        expected = ((rows.start + index[0] * rows.jump,
                     rows.start + index[0] * rows.jump + rows.size),
                    (cols.start + index[1] * cols.jump,
                     cols.start + index[1] * cols.jump + cols.size))
        assert support(model, name, shape, index) == expected, name
    assert (geometry["e"][0].jump, geometry["e"][1].jump) == (8, 8)


def test_vgg19_receptive_fields_and_activation_count():
    ex = FeatureExtractor("vgg19", weights=None)
    geometry = output_geometry(ex.model)
    assert geometry["block4_conv2"][0] == (8, -38, 84)     # relu4_2: 84 px
    assert geometry["block5_conv1"][1] == (16, -70, 156)   # relu5_1: 156 px, stride 16
    avg = output_geometry(FeatureExtractor("vgg19", weights=None, pooling="avg").model)
    assert avg == geometry
    # Σ channels / stride² over input, preprocessing and every layer up to block5_conv1.
    layers = [(3, 1), (3, 1), (64, 1), (64, 1), (64, 4), (128, 4), (128, 4), (128, 16)]
    layers += [(256, 16)] * 4 + [(256, 64)] + [(512, 64)] * 4 + [(512, 256), (512, 256)]
    assert activation_floats_per_pixel(ex.model) == sum(c / s for c, s in layers)


@pytest.mark.parametrize("layer, message", [
    (keras.layers.Conv2D(2, 3, strides=2, padding="same"), "padding depends on the image size"),
    (keras.layers.Dense(2), "receptive field is unknown"),
    (keras.layers.UpSampling2D(2), "upsamples"),
])
def test_layers_an_encoder_geometry_cannot_follow_are_refused(layer, message):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, {"out": layer(keras.layers.Conv2D(2, 3)(inputs))})
    with pytest.raises(ConfigError, match=message):
        output_geometry(model)
