"""Instance normalization: the statistics and the two layers feed-forward networks use.

* :func:`spatial_moments` / :func:`instance_norm`: per-image, per-channel statistics over H and W
  (through :mod:`nst_tf.norm_statistics`, so tiled stylization can record and replay them).
* :class:`ConditionalInstanceNorm`: one ``gamma``/``beta`` row per style (Dumoulin et al. 2017),
  conditioned by integer labels or by mixing weights (:func:`select_style_params`), with the
  exact arithmetic of Magenta's ``conditional_instance_norm`` / ``weighted_instance_norm``.
* :class:`InstanceNormalization`: the single-style case (one learnable scale and offset).

Example:
    >>> import numpy as np
    >>> cin = ConditionalInstanceNorm(num_styles=4)
    >>> x = np.random.rand(2, 8, 8, 16).astype("float32")
    >>> cin([x, np.array([0, 3])]).shape                       # one style label per image
    TensorShape([2, 8, 8, 16])
    >>> cin([x, np.array([0.5, 0.5, 0, 0], "float32")]).shape  # one mixture for the batch
    TensorShape([2, 8, 8, 16])
"""

import functools

import keras
import tensorflow as tf

from nst_tf import norm_statistics
from nst_tf.errors import StyleWeightsError
from nst_tf.layers.registry import register


def spatial_moments(x, matmul=False):
    """Mean and (biased, two-pass) variance of ``x`` [B,H,W,C] over H and W, each ``[B,1,1,C]``.

    Both values of ``matmul`` compute them the same way now
    (:func:`nst_tf.norm_statistics.two_pass_moments`: rows, then the row sums by a matrix
    product), accurate to float32's resolution at any image size. ``tf.reduce_mean`` (Magenta's
    ``tf.nn.moments``) drifts with the pixel count (1.6e-3 of the variance at 4000x3000).

    This goes through the record/replay point :func:`nst_tf.norm_statistics.moments`: inside its
    contexts the statistics are recorded, or replayed from another pass (tiled stylization).
    """
    mean, variance, _ = norm_statistics.moments(x, functools.partial(_moments, matmul=matmul))
    return mean, variance


def _moments(x, matmul=False):
    return norm_statistics.two_pass_moments(x)


def instance_norm(x, gamma, beta, epsilon=1e-5, matmul_moments=False):
    """Normalize ``x`` [B,H,W,C] over H,W, then scale by ``gamma`` and shift by ``beta``.

    ``gamma`` and ``beta`` broadcast against ``[B,1,1,C]``. The op order is the one of
    ``tf.nn.moments`` + ``tf.nn.batch_normalization`` (two-pass variance, ``rsqrt(var + eps) *
    gamma``, then ``x * inv + (beta - mean * inv)``); the moments are summed more accurately
    than Magenta's (:func:`spatial_moments`), so results match it to ~1e-7 at small sizes and
    stay within float32's resolution of float64 statistics at large ones. Statistics are
    computed in float32 for float16/bfloat16 inputs (float64 stays float64); the result has the
    dtype of ``x``.
    """
    dtype = x.dtype
    stat_dtype = tf.float64 if dtype == tf.float64 else tf.float32
    x = tf.cast(x, stat_dtype)
    mean, variance = spatial_moments(x, matmul=matmul_moments)
    inv = tf.math.rsqrt(variance + epsilon) * tf.cast(gamma, stat_dtype)
    out = x * inv + (tf.cast(beta, stat_dtype) - mean * inv)
    return tf.cast(out, dtype)


def select_style_params(params, style):
    """Rows of ``params`` [N, C] chosen or mixed by ``style``, shaped ``[B or 1, 1, 1, C]``.

    ``style`` is one of:

    * integer labels ``[B]``: row ``labels[b]`` for image ``b`` (``tf.gather``);
    * float weights ``[N]``: one mixture ``sum_i w_i * params[i]`` for the whole batch, computed as
      an elementwise product then a sum over styles (Magenta's order; weights are not normalized);
    * float weights ``[B, N]`` (``B`` may be 1): one mixture per image.
    """
    if style.dtype.is_integer:
        if style.shape.rank not in (None, 1):
            raise ValueError(f"style labels must have shape [batch], got {style.shape}")
        chosen = tf.gather(params, style)                                   # [B, C]
    elif style.shape.rank == 1:
        weights = tf.cast(style, params.dtype)[:, None]                     # [N, 1]
        chosen = tf.reduce_sum(weights * params, axis=0, keepdims=True)     # [1, C]
    elif style.shape.rank == 2:
        weights = tf.cast(style, params.dtype)[:, :, None]                  # [B, N, 1]
        chosen = tf.reduce_sum(weights * params[None], axis=1)              # [B, C]
    else:
        raise ValueError("style must be int labels [batch], or float weights [num_styles] or "
                         f"[batch, num_styles]; got shape {style.shape} dtype {style.dtype}")
    return chosen[:, None, None, :]


@register
class ConditionalInstanceNorm(keras.layers.Layer):
    """Instance normalization with a learned ``gamma``/``beta`` row per style.

    Call it as ``layer([x, style])`` with ``x`` [B,H,W,C] and ``style`` either int labels ``[B]``
    or float mixing weights ``[N]`` / ``[B, N]`` (see :func:`select_style_params`). Weights
    ``gamma`` (init 1) and ``beta`` (init 0) have shape ``[num_styles, C]``, the layout of
    Magenta's ``InstanceNorm/gamma`` and ``InstanceNorm/beta`` checkpoint variables.

    Args:
        num_styles: number of styles N.
        epsilon: added to the variance (Magenta uses 1e-5).
        fast: kept for saved configurations; the moments are computed one way now
            (:func:`spatial_moments`).

    Example:
        >>> layer = ConditionalInstanceNorm(3)
        >>> _ = layer([tf.zeros([1, 4, 4, 2]), tf.constant([2])])
        >>> tuple(layer.gamma.shape)
        (3, 2)
    """

    def __init__(self, num_styles, epsilon=1e-5, fast=False, **kwargs):
        # Variables stay float32 under mixed precision: statistics are computed in float32.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if int(num_styles) < 1:
            raise ValueError(f"num_styles must be >= 1, got {num_styles}")
        self.num_styles = int(num_styles)
        self.epsilon = float(epsilon)
        self.fast = bool(fast)

    def build(self, input_shape):
        channels = input_shape[0][-1]
        if channels is None:
            raise ValueError("ConditionalInstanceNorm needs a known channel dimension")
        shape = (self.num_styles, int(channels))
        self.gamma = self.add_weight(name="gamma", shape=shape, initializer="ones")
        self.beta = self.add_weight(name="beta", shape=shape, initializer="zeros")

    def call(self, inputs):
        x, style = inputs
        style = tf.convert_to_tensor(style)
        if not style.dtype.is_integer and style.shape.rank and style.shape[-1] is not None \
                and style.shape[-1] != self.num_styles:
            raise StyleWeightsError(f"{self.name}: style weights have length {style.shape[-1]} "
                                    f"(shape {style.shape}), expected num_styles={self.num_styles}")
        gamma = select_style_params(tf.convert_to_tensor(self.gamma), style)
        beta = select_style_params(tf.convert_to_tensor(self.beta), style)
        return instance_norm(x, gamma, beta, self.epsilon, matmul_moments=self.fast)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(num_styles=self.num_styles, epsilon=self.epsilon, fast=self.fast)
        return config


@register
class InstanceNormalization(keras.layers.Layer):
    """Instance normalization with one learnable per-channel ``scale`` (init 1) and ``offset``
    (init 0): the single-style network's normalization. Same arithmetic as
    :class:`ConditionalInstanceNorm`.

    Example:
        >>> InstanceNormalization()(tf.ones([1, 4, 4, 2])).shape
        TensorShape([1, 4, 4, 2])
    """

    def __init__(self, epsilon=1e-5, center=True, scale=True, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("InstanceNormalization needs a known channel dimension")
        self.gamma = (self.add_weight(name="scale", shape=(int(channels),), initializer="ones")
                      if self.scale else None)
        self.beta = (self.add_weight(name="offset", shape=(int(channels),), initializer="zeros")
                     if self.center else None)

    def call(self, x):
        gamma = tf.convert_to_tensor(self.gamma) if self.scale else tf.constant(1.0)
        beta = tf.convert_to_tensor(self.beta) if self.center else tf.constant(0.0)
        return instance_norm(x, gamma, beta, self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon, center=self.center, scale=self.scale)
        return config
