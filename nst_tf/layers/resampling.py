"""Integer-factor nearest-neighbour upsampling (pixel repetition), alone or fused with the
reflect padding that follows it in the decoders.

Example:
    >>> import tensorflow as tf
    >>> nearest_upsample(tf.reshape(tf.range(2.0), [1, 1, 2, 1]), 2)[0, :, :, 0].numpy()
    array([[0., 0., 1., 1.],
           [0., 0., 1., 1.]], dtype=float32)
"""

import keras
import tensorflow as tf

from nst_tf.layers.registry import register


def nearest_upsample(x, factor):
    """Repeat every pixel of ``x`` [B,H,W,C] ``factor`` times along H and W (integer factor).

    Bit-identical to ``tf.image.resize_nearest_neighbor`` (TF1 defaults) to ``factor * size``.
    """
    if factor == 1:
        return x
    f = int(factor)
    shape = tf.shape(x)
    # [B,H,1,W,1,C] broadcast to [B,H,f,W,f,C], then merged: cheaper than two tf.repeat calls.
    # A reshape (not x[:, :, None, :, None, :]) so TFLite's built-in kernels, which take strided
    # slices of at most 5 dimensions, can run the exported model.
    expanded = tf.reshape(x, [shape[0], shape[1], 1, shape[2], 1, shape[3]])
    tiled = tf.broadcast_to(expanded, [shape[0], shape[1], f, shape[2], f, shape[3]])
    out = tf.reshape(tiled, [shape[0], shape[1] * f, shape[2] * f, shape[3]])
    b, h, w, c = x.shape
    out.set_shape([b, None if h is None else h * f, None if w is None else w * f, c])
    return out


@register
class NearestUpsample2D(keras.layers.Layer):
    """Nearest-neighbour upsampling by an integer factor: every pixel repeated ``factor`` times
    along H and W. Bit-identical to ``tf.image.resize_nearest_neighbor`` (TF1 defaults) to
    ``factor * size``.

    Example:
        >>> NearestUpsample2D(2)(tf.ones([1, 3, 5, 4])).shape
        TensorShape([1, 6, 10, 4])
    """

    def __init__(self, factor=2, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")

    def call(self, x):
        return nearest_upsample(x, self.factor)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        f = self.factor
        return (b, None if h is None else h * f, None if w is None else w * f, c)

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor)
        return config


def upsample_reflect_pad(x, factor, pad):
    """``reflect_pad(nearest_upsample(x, factor), pad)`` for ``pad < factor``, exactly, without
    the slow mirror-pad of the large tensor: reflecting the upsampled image by fewer than
    ``factor`` pixels repeats its edge pixel, so it equals upsampling ``x`` edge-padded by one
    pixel (``SYMMETRIC``, on the small tensor) and cropping ``factor - pad`` pixels per side."""
    if not 0 <= pad < factor:
        raise ValueError(f"upsample_reflect_pad needs 0 <= pad < factor, got {pad}, {factor}")
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    up = nearest_upsample(padded, factor)
    crop = factor - pad
    return up[:, crop:-crop, crop:-crop, :]
