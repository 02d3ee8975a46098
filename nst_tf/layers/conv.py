"""Reflect-padded convolution: Magenta's ``conv2d`` / ``upsampling`` blocks as one Keras layer,
computed directly or in the faster equivalent forms of :mod:`nst_tf.layers.fast_conv`.

Example:
    >>> import tensorflow as tf
    >>> ReflectConv2D(8, 3, upsample=2, fast=True)(tf.zeros([1, 5, 6, 4])).shape
    TensorShape([1, 10, 12, 8])
"""

import keras
import tensorflow as tf

from nst_tf.layers.fast_conv import space_to_depth_conv, upsample2_conv3
from nst_tf.layers.padding import reflect_pad
from nst_tf.layers.registry import register
from nst_tf.layers.resampling import nearest_upsample, upsample_reflect_pad


@register
class ReflectConv2D(keras.layers.Layer):
    """[nearest-neighbour upsampling →] reflect padding by ``kernel_size // 2`` → VALID conv,
    no bias: Magenta's ``conv2d`` / ``upsampling`` blocks as one layer.

    The layer holds one ``kernel`` ``[k, k, Cin, filters]`` (Magenta's ``.../weights``). With
    ``fast=True`` it computes the same function in a faster form where one exists:

    * ``upsample=2``, 3x3: :func:`upsample2_conv3` (no upsampled copy, 4/9 of the FLOPs);
    * stride 1, fewer than 8 filters, ``k >= 5``: :func:`space_to_depth_conv` (the 9x9 RGB
      output conv runs 2-4x faster);
    * otherwise reflect pad (:func:`reflect_pad`) then ``tf.nn.conv2d``.

    These sum the same products in another order (taps are pre-summed), so outputs differ from
    the direct form by float32 rounding: ~1e-6 relative per conv; through Magenta's whole
    network up to ~3e-5 on the [0, 1] output, while Magenta's own float32 output is ~4e-5 away
    from a float64 evaluation (see ``tests/test_reflect_conv.py``). ``fast=False`` keeps Magenta's
    arithmetic (one ``conv2d`` of the reflect-padded, upsampled input; only the copies are done
    by faster kernels): on the CPU its outputs equal Magenta's bit for bit.

    Args:
        filters: output channels.
        kernel_size: odd int ``k``.
        strides: int stride.
        upsample: integer nearest-neighbour upsampling factor applied first.
        kernel_initializer: Keras initializer (name, config or object).
        fast: use the reformulated convs, or (default) the direct ones. Can be changed on a
            built layer (e.g. with :func:`nst_tf.networks.set_fast`) before tracing.

    Example:
        >>> layer = ReflectConv2D(8, 3, upsample=2, fast=True)
        >>> layer(tf.zeros([1, 5, 6, 4])).shape
        TensorShape([1, 10, 12, 8])
    """

    def __init__(self, filters, kernel_size, strides=1, upsample=1,
                 kernel_initializer="glorot_uniform", fast=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.upsample = int(upsample)
        self.fast = bool(fast)
        if self.kernel_size < 1 or self.kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size}")
        if self.filters < 1 or self.strides < 1 or self.upsample < 1:
            raise ValueError(f"filters, strides and upsample must be >= 1, got {filters}, "
                             f"{strides}, {upsample}")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("ReflectConv2D needs a known channel dimension")
        k = self.kernel_size
        self.kernel = self.add_weight(name="kernel", shape=(k, k, int(channels), self.filters),
                                      initializer=self.kernel_initializer)

    def call(self, x):
        kernel = tf.cast(self.kernel, x.dtype)
        k, pad, up = self.kernel_size, self.kernel_size // 2, self.upsample
        if self.fast and up == 2 and k == 3 and self.strides == 1:
            return upsample2_conv3(x, kernel)
        if up > 1 and pad < up:
            padded = upsample_reflect_pad(x, up, pad)
        else:
            padded = reflect_pad(nearest_upsample(x, up), pad, pad, name=self.name)
        if self.fast and self.strides == 1 and self.filters < 8 and k >= 5:
            return space_to_depth_conv(padded, kernel)
        return tf.nn.conv2d(padded, kernel, self.strides, "VALID")

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape

        def size(n):
            return None if n is None else (n * self.upsample - 1) // self.strides + 1
        return (b, size(h), size(w), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                      upsample=self.upsample,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      fast=self.fast)
        return config
