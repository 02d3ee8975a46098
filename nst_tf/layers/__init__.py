"""Keras layers for feed-forward style networks, one module per concept:

* :mod:`~nst_tf.layers.normalization`: :class:`ConditionalInstanceNorm` (one ``gamma``/``beta``
  row per style, Dumoulin et al. 2017, with the exact arithmetic of Magenta's
  ``conditional_instance_norm`` / ``weighted_instance_norm``), :class:`InstanceNormalization`
  (the single-style case) and their statistics (:func:`instance_norm`, :func:`spatial_moments`).
* :mod:`~nst_tf.layers.padding`: :class:`ReflectionPad2D` (TensorFlow ``REFLECT`` padding, with a
  readable error for tiny inputs) and :class:`CircularPad2D` (periodic, for tileable textures).
* :mod:`~nst_tf.layers.resampling`: :class:`NearestUpsample2D` (integer-factor pixel repetition).
* :mod:`~nst_tf.layers.conv`: :class:`ReflectConv2D`, [upsample →] reflect pad → VALID conv in
  one layer, computed directly or in the faster equivalent forms of
  :mod:`~nst_tf.layers.fast_conv` (sub-pixel conv for upsampling, space-to-depth for few output
  channels).
* :mod:`~nst_tf.layers.noise`: :class:`NoiseFill`, fresh seeded noise on every call (the texture
  network's noise source, Ulyanov et al. 2016).

Every layer is registered under the ``nst_tf`` package (:mod:`~nst_tf.layers.registry`), so
models using them round-trip through ``.keras`` files, and ``get_config()`` returns exactly the
constructor arguments. Importing this package imports every layer module (what loading a
``.keras`` file needs).

Example:
    >>> import numpy as np
    >>> from nst_tf.layers import ConditionalInstanceNorm
    >>> cin = ConditionalInstanceNorm(num_styles=4)
    >>> x = np.random.rand(2, 8, 8, 16).astype("float32")
    >>> cin([x, np.array([0, 3])]).shape                       # one style label per image
    TensorShape([2, 8, 8, 16])
"""

from nst_tf.layers.conv import ReflectConv2D
from nst_tf.layers.fast_conv import (space_to_depth_conv, space_to_depth_kernel, upsample2_conv3,
                                     upsample2_conv3_kernel)
from nst_tf.layers.noise import NoiseFill
from nst_tf.layers.normalization import (ConditionalInstanceNorm, InstanceNormalization,
                                         instance_norm, select_style_params, spatial_moments)
from nst_tf.layers.padding import CircularPad2D, ReflectionPad2D, circular_pad, reflect_pad
from nst_tf.layers.resampling import NearestUpsample2D, nearest_upsample, upsample_reflect_pad

__all__ = [
    "ConditionalInstanceNorm", "InstanceNormalization", "instance_norm", "select_style_params",
    "spatial_moments",
    "ReflectionPad2D", "CircularPad2D", "reflect_pad", "circular_pad",
    "NearestUpsample2D", "nearest_upsample", "upsample_reflect_pad",
    "ReflectConv2D",
    "upsample2_conv3", "upsample2_conv3_kernel", "space_to_depth_conv", "space_to_depth_kernel",
    "NoiseFill",
]
