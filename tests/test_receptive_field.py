"""Receptive fields read from Keras layers, checked against gradient supports."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nst_tf.errors import ConfigError
from nst_tf.features import FeatureExtractor
from nst_tf.receptive_field import activation_floats_per_pixel, output_geometry


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
    (keras.layers.Conv2D(2, 3, strides=2, padding="same"), "padding depends on the input size"),
    (keras.layers.Dense(2), "not local"),
    (keras.layers.UpSampling2D(2), "not local"),
])
def test_layers_that_cannot_be_tiled_exactly_are_refused(layer, message):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, {"out": layer(keras.layers.Conv2D(2, 3)(inputs))})
    with pytest.raises(ConfigError, match=message):
        output_geometry(model)
