"""Keras layers for feed-forward style networks.

* :class:`ConditionalInstanceNorm`: instance norm with one ``gamma``/``beta`` row per style
  (Dumoulin et al. 2017), conditioned by integer labels or by mixing weights, with the exact
  arithmetic of Magenta's ``conditional_instance_norm`` / ``weighted_instance_norm``.
* :class:`InstanceNormalization`: the single-style case (one learnable scale and offset).
* :class:`ReflectionPad2D`: TensorFlow ``REFLECT`` padding, with a readable error for tiny inputs.
* :class:`NearestUpsample2D`: integer-factor nearest-neighbour upsampling (pixel repetition).
* :class:`ReflectConv2D`: [upsample →] reflect pad → VALID conv in one layer, computed in a
  faster equivalent form (sub-pixel conv for upsampling, space-to-depth for few output channels).
* :class:`CircularPad2D` (periodic padding, for tileable textures) and :class:`NoiseFill` (fresh
  seeded noise on every call): the texture network's layers (Ulyanov et al. 2016).

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

import functools

import keras
import tensorflow as tf

from nst_tf import norm_statistics
from nst_tf.errors import ImageError, StyleWeightsError

_REGISTER = keras.saving.register_keras_serializable(package="nst_tf")


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


def _pad_message(name, kind, ph, pw, min_h, min_w, height=None, width=None):
    got = "got H, W =" if height is None else f"got {height}x{width}"
    return (f"{name}: {kind} padding by {ph}x{pw} needs an input of at least "
            f"{min_h}x{min_w} pixels (H x W), {got}")


def _check_pad_input(x, name, kind, ph, pw, min_h, min_w):
    """``x`` after checking that H >= ``min_h`` and W >= ``min_w``: an ImageError when the size
    is known while tracing, else a run-time assertion (checked before slices fail obscurely)."""
    height, width = x.shape[1], x.shape[2]
    if (height is not None and height < min_h) or (width is not None and width < min_w):
        raise ImageError(_pad_message(name, kind, ph, pw, min_h, min_w, height, width))
    if height is None or width is None:
        shape = tf.shape(x)
        ok = tf.logical_and(shape[1] >= min_h, shape[2] >= min_w)
        message = _pad_message(name, kind, ph, pw, min_h, min_w)
        with tf.control_dependencies([tf.debugging.Assert(ok, [message, shape[1], shape[2]])]):
            x = tf.identity(x)
    return x


def _reflect_axis(x, pad, axis):
    """Reflect-pad one axis by copying the mirrored edge slices (exactly ``tf.pad(REFLECT)``)."""
    if pad == 0:
        return x
    head = [slice(None)] * 4
    tail = [slice(None)] * 4
    head[axis] = slice(1, pad + 1)
    tail[axis] = slice(-pad - 1, -1)
    return tf.concat([tf.reverse(x[tuple(head)], [axis]), x,
                      tf.reverse(x[tuple(tail)], [axis])], axis)


def reflect_pad(x, pad_h, pad_w, name="reflect_pad"):
    """``tf.pad(x, ..., mode="REFLECT")`` on H and W of an NHWC tensor, with a size check.

    Built from slices, ``tf.reverse`` and ``tf.concat`` (memcpy-like kernels): the same values as
    TensorFlow's ``MirrorPad`` kernel, which is slower on the CPU (1.3-3x in our measurements). Inputs smaller
    than ``pad + 1`` raise :class:`~nst_tf.errors.ImageError` when the size is known while tracing,
    or an ``InvalidArgumentError`` with the same message at run time (not under XLA, which drops
    run-time assertions).

    Example:
        >>> reflect_pad(tf.reshape(tf.range(3.0), [1, 1, 3, 1]), 0, 2)[0, 0, :, 0].numpy()
        array([2., 1., 0., 1., 2., 1., 0.], dtype=float32)
    """
    x = _check_pad_input(x, name, "reflect", pad_h, pad_w, pad_h + 1, pad_w + 1)
    return _reflect_axis(_reflect_axis(x, pad_h, 1), pad_w, 2)


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


class _Pad2D(keras.layers.Layer):
    """Base of the padding layers: ``padding`` (int or ``(pad_h, pad_w)``) on H and W of NHWC."""

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = _pair(padding, "padding")

    def compute_output_shape(self, input_shape):
        ph, pw = self.padding
        b, h, w, c = input_shape
        return (b, None if h is None else h + 2 * ph, None if w is None else w + 2 * pw, c)

    def get_config(self):
        config = super().get_config()
        config.update(padding=self.padding)
        return config


@_REGISTER
class ReflectionPad2D(_Pad2D):
    """Pad H and W of an NHWC tensor by reflection, without repeating the edge pixel.

    Same semantics as ``tf.pad(mode="REFLECT")`` and ``numpy.pad(mode="reflect")``:
    ``[1, 2, 3]`` padded by 2 gives ``[3, 2, 1, 2, 3, 2, 1]``. Each side padded by ``p`` needs
    ``p + 1`` pixels; smaller inputs raise :class:`~nst_tf.errors.ImageError` (when the size is
    known while tracing) or an ``InvalidArgumentError`` with the same message at run time
    (except under XLA, which drops run-time assertions: validate sizes before calling, e.g. with
    :func:`nst_tf.networks.check_pastiche_input`). See :func:`reflect_pad`.

    Args:
        padding: int (same on all sides) or ``(pad_h, pad_w)``.

    Example:
        >>> ReflectionPad2D(1)(tf.reshape(tf.range(9.0), [1, 3, 3, 1]))[0, :, :, 0].numpy()[0]
        array([4., 3., 4., 5., 4.], dtype=float32)
    """

    def call(self, x):
        return reflect_pad(x, *self.padding, name=self.name)


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
        return nearest_upsample(x, self.factor)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        f = self.factor
        return (b, None if h is None else h * f, None if w is None else w * f, c)

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor)
        return config


# --- Reflect-padded convolution ------------------------------------------------------------------

def upsample2_conv3_kernel(kernel):
    """Kernel ``[2, 2, Cin, 4*Cout]`` that turns "upsample x2 → reflect pad 1 → 3x3 conv" into
    one 2x2 conv on the edge-padded low-resolution input (see :func:`upsample2_conv3`).

    Along one axis, output pixel ``2i`` reads low-res pixels ``i, i+1`` (of the input padded by
    one edge pixel) with taps ``[w0, w1 + w2]`` and pixel ``2i - 1`` reads the same two with
    ``[w0 + w1, w2]``. Output channels are ordered (row phase, column phase, Cout) with the odd
    phase first, for ``tf.nn.depth_to_space``.
    """
    def phases(w):  # w: taps along axis 0 -> [(odd tap0, odd tap1), (even tap0, even tap1)]
        return ((w[0] + w[1], w[2]), (w[0], w[1] + w[2]))

    taps = [[None, None], [None, None]]                       # taps[t][s]: [Cin, 4*Cout]
    rows = phases(kernel)                                     # rows[p][t]: [3, Cin, Cout]
    for t in range(2):
        for s in range(2):
            parts = []
            for p in range(2):
                cols = phases(rows[p][t])                     # cols[q][s]: [Cin, Cout]
                parts += [cols[0][s], cols[1][s]]
            taps[t][s] = tf.concat(parts, axis=-1)
    return tf.stack([tf.stack(taps[0]), tf.stack(taps[1])])


def upsample2_conv3(x, kernel):
    """``conv3x3_valid(reflect_pad(nearest_upsample(x, 2), 1), kernel)`` without materializing
    the upsampled image: 4/9 of the multiply-adds and no large pad/resize copies.

    Reflect-padding the upsampled image by one pixel equals upsampling ``x`` edge-padded by one
    pixel (``SYMMETRIC``), so every output pixel is a 2x2 window of that padded input with one of
    four phase kernels (:func:`upsample2_conv3_kernel`). The results equal the direct form up to
    float rounding (taps are pre-summed).
    """
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    phases = tf.nn.conv2d(padded, upsample2_conv3_kernel(kernel), 1, "VALID")   # [B,H+1,W+1,4C]
    return tf.nn.depth_to_space(phases, 2)[:, 1:-1, 1:-1, :]


def space_to_depth_kernel(kernel, block):
    """Kernel ``[kk, kk, block²·Cin, block²·Cout]`` of a stride-1 ``k x k`` conv rewritten on the
    ``tf.nn.space_to_depth(block)`` grid, ``kk = ceil((k - 1) / block) + 1`` (zero taps where a
    phase pair does not meet). Channel orders follow ``space_to_depth`` / ``depth_to_space``.
    """
    k = int(kernel.shape[0])
    taps = -(-(k - 1) // block) + 1
    # index[d, p, a]: kernel row read by block offset d, input phase p, output phase a (k: zero).
    index = [[[block * d + p - a if 0 <= block * d + p - a < k else k
               for a in range(block)] for p in range(block)] for d in range(taps)]
    padded = tf.pad(kernel, [[0, 1], [0, 1], [0, 0], [0, 0]])      # row/column k is zero
    rows = tf.gather(padded, index, axis=0)                        # [kk, p, a, k+1, Cin, Cout]
    both = tf.gather(rows, index, axis=3)                          # [kk, p, a, kk, q, b, Cin, Cout]
    both = tf.transpose(both, [0, 3, 1, 4, 6, 2, 5, 7])            # [kk, kk, p, q, Cin, a, b, Cout]
    cin, cout = int(kernel.shape[2]), int(kernel.shape[3])
    return tf.reshape(both, [taps, taps, block * block * cin, block * block * cout])


def space_to_depth_conv(padded, kernel, block=4):
    """Stride-1 VALID conv of ``padded`` computed on the space-to-depth grid.

    For convs with few output channels (the 9x9 RGB output conv) the direct kernel uses a
    fraction of the SIMD lanes; on the ``block x block`` grid the same conv has ``block²`` times
    more input and output channels and a ``kk x kk`` kernel, which runs several times faster on
    the CPU despite the zero taps. The input is zero-extended to a multiple of ``block`` (those
    rows only reach outputs that are cropped away); the result equals ``tf.nn.conv2d(padded,
    kernel, 1, "VALID")`` up to float rounding.
    """
    k = int(kernel.shape[0])
    taps = -(-(k - 1) // block) + 1
    shape = tf.shape(padded)
    out_h, out_w = shape[1] - k + 1, shape[2] - k + 1
    reach = block * (taps - 1)                                     # rows consumed beyond the output
    ext_h = (-(out_h + reach)) % block + (out_h + reach) - shape[1]
    ext_w = (-(out_w + reach)) % block + (out_w + reach) - shape[2]
    grid = tf.pad(padded, [[0, 0], [0, ext_h], [0, ext_w], [0, 0]])
    out = tf.nn.conv2d(tf.nn.space_to_depth(grid, block),
                       space_to_depth_kernel(kernel, block), 1, "VALID")
    return tf.nn.depth_to_space(out, block)[:, :out_h, :out_w, :]


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


@_REGISTER
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


# --- Texture networks: circular padding and per-call noise ------------------------------------------

def _wrap_axis(x, pad, axis):
    if pad == 0:
        return x
    head = [slice(None)] * 4
    tail = [slice(None)] * 4
    head[axis] = slice(-pad, None)
    tail[axis] = slice(0, pad)
    return tf.concat([x[tuple(head)], x, x[tuple(tail)]], axis)


def circular_pad(x, pad_h, pad_w, name="circular_pad"):
    """Pad H and W of an NHWC tensor periodically: ``numpy.pad(mode="wrap")``.

    ``[1, 2, 3]`` padded by 2 gives ``[2, 3, 1, 2, 3, 1, 2]``: a convolution of the padded tensor
    is the convolution on a torus, so a network built from such convolutions (and pooling /
    upsampling by factors that divide the size) makes images that tile without seams. Each side
    padded by ``p`` needs at least ``p`` pixels (:class:`~nst_tf.errors.ImageError` otherwise
    when the size is known while tracing, an ``InvalidArgumentError`` at run time).

    Example:
        >>> circular_pad(tf.reshape(tf.range(3.0), [1, 1, 3, 1]), 0, 2)[0, 0, :, 0].numpy()
        array([1., 2., 0., 1., 2., 0., 1.], dtype=float32)
    """
    x = _check_pad_input(x, name, "circular", pad_h, pad_w, pad_h, pad_w)
    return _wrap_axis(_wrap_axis(x, pad_h, 1), pad_w, 2)


@_REGISTER
class CircularPad2D(_Pad2D):
    """Periodic ("wrap", "circular") padding of H and W, as ``numpy.pad(mode="wrap")``.

    The padding Ulyanov et al.'s texture networks use for tileable textures (see
    :func:`circular_pad`).

    Args:
        padding: int (same on all sides) or ``(pad_h, pad_w)``.

    Example:
        >>> CircularPad2D(1)(tf.reshape(tf.range(3.0), [1, 1, 3, 1]))[0, 1, :, 0].numpy()
        array([2., 0., 1., 2., 0.], dtype=float32)
    """

    def call(self, x):
        return circular_pad(x, *self.padding, name=self.name)


def _noise_size_message(name, ratio, height=None, width=None):
    got = "got H, W =" if height is None else f"got {height}x{width}"
    return (f"{name}: the image height and width must be multiples of {ratio} (the coarsest "
            f"scale of this texture network is 1/{ratio} of the output size), {got}")


@_REGISTER
class NoiseFill(keras.layers.Layer):
    """Fresh uniform noise in [0, 1) on every call: the noise source of a texture network.

    ``NoiseFill(channels, ratio)(x)`` returns noise ``[B, H/ratio, W/ratio, channels]`` for
    ``x`` ``[B, H, W, *]`` (only the shape of ``x`` is used; H and W must be multiples of
    ``ratio``, else :class:`~nst_tf.errors.ImageError`, or an ``InvalidArgumentError`` with the
    same message for sizes only known at run time). The noise comes from a
    ``keras.random.SeedGenerator``: each call draws new noise and advances the generator, so the
    sequence of draws is fixed by ``seed`` (reset it with :meth:`reseed`). Under a
    ``tf.distribute`` strategy with ``R`` replicas each replica draws the noise of the global
    batch and keeps its rows: the replicas together get one device's noise. Calling
    ``layer([x, noise])`` returns the given ``noise`` instead (checked against the expected
    shape): networks built that way take explicit noise inputs, e.g. for tests.

    Args:
        channels: noise channels.
        ratio: the output is ``1/ratio`` of the input's size.
        seed: int seed of the generator (None: drawn from Keras' global seed, which
            ``keras.utils.set_random_seed`` fixes).

    Example:
        >>> layer = NoiseFill(3, ratio=4, seed=1)
        >>> layer(tf.zeros([2, 8, 12, 3])).shape
        TensorShape([2, 2, 3, 3])
    """

    def __init__(self, channels=3, ratio=1, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.ratio = int(ratio)
        if self.channels < 1 or self.ratio < 1:
            raise ValueError(f"channels and ratio must be >= 1, got {channels}, {ratio}")
        self.seed = None if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def reseed(self, seed):
        """Restart the noise sequence from ``seed`` (an int in [0, 2³²))."""
        self.seed_generator.state.assign(tf.constant([int(seed) % 2**32, 0], tf.uint32))

    def _check(self, x):
        height, width, r = x.shape[1], x.shape[2], self.ratio
        if (height is not None and height % r) or (width is not None and width % r):
            raise ImageError(_noise_size_message(self.name, r, height, width))
        if r > 1 and (height is None or width is None):
            shape = tf.shape(x)
            ok = tf.logical_and(tf.equal(shape[1] % r, 0), tf.equal(shape[2] % r, 0))
            check = tf.debugging.Assert(ok, [_noise_size_message(self.name, r), shape[1],
                                             shape[2]])
            with tf.control_dependencies([check]):
                x = tf.identity(x)
        return x

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            x, noise = inputs
            x = self._check(x)
            noise = tf.cast(noise, self.compute_dtype)
            shape = tf.shape(x)
            expected = tf.stack([shape[0], shape[1] // self.ratio, shape[2] // self.ratio,
                                 self.channels])
            check = tf.debugging.assert_equal(
                tf.shape(noise), expected,
                message=f"{self.name}: explicit noise must have shape [B, H/{self.ratio}, "
                        f"W/{self.ratio}, {self.channels}]")
            with tf.control_dependencies([check]):
                return tf.identity(noise)
        x = self._check(inputs)
        shape = tf.shape(x)
        return self.draw(shape[0], shape[1], shape[2])

    def draw(self, batch, height, width):
        """The noise this layer gives for an input ``[batch, height, width, *]`` (and the next
        draw of its generator): ``[batch, height / ratio, width / ratio, channels]``. ``call``
        uses it; tiled stylization draws the whole image's noise with it and crops it."""
        seed = tf.cast(self.seed_generator.next(), tf.int64)
        context = tf.distribute.get_replica_context()
        replicas = 1 if context is None else context.num_replicas_in_sync
        size = tf.stack([batch * replicas, height // self.ratio, width // self.ratio,
                         self.channels])
        noise = tf.random.stateless_uniform(size, seed=seed, dtype=tf.float32)
        if replicas > 1:
            # Every replica reads the same generator state and draws the global batch's noise:
            # its share is one device's rows of it (the replicas' input shares are in order).
            first = tf.cast(context.replica_id_in_sync_group, tf.int32) * batch
            noise = noise[first:first + batch]
        return tf.cast(noise, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and input_shape and \
                isinstance(input_shape[0], (list, tuple)):
            input_shape = input_shape[0]
        b, h, w, _ = input_shape
        r = self.ratio
        return (b, None if h is None else h // r, None if w is None else w // r, self.channels)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, ratio=self.ratio, seed=self.seed)
        return config
