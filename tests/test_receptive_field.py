"""Stride and receptive field from the layers (nst_tf.receptive_field).

The reference is measured, not derived: with the normalization statistics replayed (so the
network is local), the input rows with a non-zero gradient of an aligned block of output rows
are exactly the rows the block depends on.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nst_tf import norm_statistics
from nst_tf.errors import ConfigError
from nst_tf.networks import adain_network, johnson_network, pastiche_network, texture_network
from nst_tf.models.texture.network import with_noise_inputs
from nst_tf.receptive_field import Footprint, footprint, minimal_halo


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
        (keras.layers.Conv2D(3, 3, strides=2, padding="same"), "'same'-padded conv with stride"),
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
