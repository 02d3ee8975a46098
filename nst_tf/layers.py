"""Keras layers for feed-forward style networks.

* :class:`ConditionalInstanceNorm`: instance norm with one ``gamma``/``beta`` row per style
  (Dumoulin et al. 2017), conditioned by integer labels or by mixing weights, with the exact
  arithmetic of Magenta's ``conditional_instance_norm`` / ``weighted_instance_norm``.
* :class:`InstanceNormalization`: the single-style case (one learnable scale and offset).
* :class:`ReflectionPad2D`: TensorFlow ``REFLECT`` padding, with a readable error for tiny inputs.
* :class:`NearestUpsample2D`: integer-factor nearest-neighbour upsampling (pixel repetition).

Every layer is registered under the ``nst_tf`` package, so models using them round-trip through
``.keras`` files, and ``get_config()`` returns exactly the constructor arguments.

Example:
    >>> import numpy as np
    >>> from nst_tf.layers import ConditionalInstanceNorm
    >>> cin = ConditionalInstanceNorm(num_styles=4)
    >>> x = np.random.rand(2, 8, 8, 16).astype("float32")
    >>> cin([x, np.array([0, 3])]).shape                       # one style label per image
    TensorShape([2, 8, 8, 16])
    >>> cin([x, np.array([0.5, 0.5, 0, 0], "float32")]).shape  # one mixture for the batch
    TensorShape([2, 8, 8, 16])
"""

import keras
import tensorflow as tf

from nst_tf.errors import ImageError, StyleWeightsError

_REGISTER = keras.saving.register_keras_serializable(package="nst_tf")


def instance_norm(x, gamma, beta, epsilon=1e-5):
    """Normalize ``x`` [B,H,W,C] over H,W, then scale by ``gamma`` and shift by ``beta``.

    ``gamma`` and ``beta`` broadcast against ``[B,1,1,C]``. The op order is the one of
    ``tf.nn.moments`` + ``tf.nn.batch_normalization`` (two-pass variance, ``rsqrt(var + eps) *
    gamma``, then ``x * inv + (beta - mean * inv)``), so results match Magenta bit for bit on the
    same kernels. Statistics are computed in float32 for float16/bfloat16 inputs (float64 stays
    float64); the result has the dtype of ``x``.
    """
    dtype = x.dtype
    stat_dtype = tf.float64 if dtype == tf.float64 else tf.float32
    x = tf.cast(x, stat_dtype)
    mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    variance = tf.reduce_mean(tf.math.squared_difference(x, tf.stop_gradient(mean)),
                              axis=[1, 2], keepdims=True)
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


@_REGISTER
class ConditionalInstanceNorm(keras.layers.Layer):
    """Instance normalization with a learned ``gamma``/``beta`` row per style.

    Call it as ``layer([x, style])`` with ``x`` [B,H,W,C] and ``style`` either int labels ``[B]``
    or float mixing weights ``[N]`` / ``[B, N]`` (see :func:`select_style_params`). Weights
    ``gamma`` (init 1) and ``beta`` (init 0) have shape ``[num_styles, C]``, the layout of
    Magenta's ``InstanceNorm/gamma`` and ``InstanceNorm/beta`` checkpoint variables.

    Args:
        num_styles: number of styles N.
        epsilon: added to the variance (Magenta uses 1e-5).

    Example:
        >>> layer = ConditionalInstanceNorm(3)
        >>> _ = layer([tf.zeros([1, 4, 4, 2]), tf.constant([2])])
        >>> tuple(layer.gamma.shape)
        (3, 2)
    """

    def __init__(self, num_styles, epsilon=1e-5, **kwargs):
        # Variables stay float32 under mixed precision: statistics are computed in float32.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if int(num_styles) < 1:
            raise ValueError(f"num_styles must be >= 1, got {num_styles}")
        self.num_styles = int(num_styles)
        self.epsilon = float(epsilon)

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
        return instance_norm(x, gamma, beta, self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(num_styles=self.num_styles, epsilon=self.epsilon)
        return config


@_REGISTER
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


def _pair(value, what):
    if isinstance(value, int):
        return int(value), int(value)
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"{what} must be an int or a pair of ints, got {value}")
    return value


@_REGISTER
class ReflectionPad2D(keras.layers.Layer):
    """Pad H and W of an NHWC tensor by reflection, without repeating the edge pixel.

    Same semantics as ``tf.pad(mode="REFLECT")`` and ``numpy.pad(mode="reflect")``:
    ``[1, 2, 3]`` padded by 2 gives ``[3, 2, 1, 2, 3, 2, 1]``. Each side padded by ``p`` needs
    ``p + 1`` pixels; smaller inputs raise :class:`~nst_tf.errors.ImageError` (when the size is
    known while tracing) or an ``InvalidArgumentError`` with the same message at run time
    (except under XLA, which drops run-time assertions: validate sizes before calling, e.g. with
    :func:`nst_tf.networks.check_pastiche_input`).

    Args:
        padding: int (same on all sides) or ``(pad_h, pad_w)``.

    Example:
        >>> ReflectionPad2D(1)(tf.reshape(tf.range(9.0), [1, 3, 3, 1]))[0, :, :, 0].numpy()[0]
        array([4., 3., 4., 5., 4.], dtype=float32)
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = _pair(padding, "padding")

    def _message(self, height=None, width=None):
        ph, pw = self.padding
        got = "got H, W =" if height is None else f"got {height}x{width}"
        return (f"{self.name}: reflect padding by {ph}x{pw} needs an input of at least "
                f"{ph + 1}x{pw + 1} pixels (H x W), {got}")

    def call(self, x):
        ph, pw = self.padding
        height, width = x.shape[1], x.shape[2]
        if (height is not None and height <= ph) or (width is not None and width <= pw):
            raise ImageError(self._message(height, width))
        if height is None or width is None:
            shape = tf.shape(x)
            ok = tf.logical_and(shape[1] > ph, shape[2] > pw)
            check = tf.debugging.Assert(ok, [self._message(), shape[1], shape[2]])
            with tf.control_dependencies([check]):  # check before the pad op fails obscurely
                x = tf.identity(x)
        return tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, input_shape):
        ph, pw = self.padding
        b, h, w, c = input_shape
        return (b, None if h is None else h + 2 * ph, None if w is None else w + 2 * pw, c)

    def get_config(self):
        config = super().get_config()
        config.update(padding=self.padding)
        return config


@_REGISTER
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
        if self.factor == 1:
            return x
        f = self.factor
        shape = tf.shape(x)
        # [B,H,1,W,1,C] broadcast to [B,H,f,W,f,C], then merged: cheaper than two tf.repeat calls.
        x6 = x[:, :, None, :, None, :]
        tiled = tf.broadcast_to(x6, [shape[0], shape[1], f, shape[2], f, shape[3]])
        out = tf.reshape(tiled, [shape[0], shape[1] * f, shape[2] * f, shape[3]])
        b, h, w, c = x.shape
        out.set_shape([b, None if h is None else h * f, None if w is None else w * f, c])
        return out

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        f = self.factor
        return (b, None if h is None else h * f, None if w is None else w * f, c)

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor)
        return config
