"""Padding of H and W of NHWC tensors, with a readable error for inputs too small to pad.

* :func:`reflect_pad` / :class:`ReflectionPad2D`: TensorFlow ``REFLECT`` padding (the edge pixel
  not repeated), built from slices: the same values as ``MirrorPad``, faster on the CPU.
* :func:`circular_pad` / :class:`CircularPad2D`: periodic padding, for the tileable textures of
  Ulyanov et al.'s texture networks.

Example:
    >>> import tensorflow as tf
    >>> reflect_pad(tf.reshape(tf.range(3.0), [1, 1, 3, 1]), 0, 1)[0, 0, :, 0].numpy()
    array([1., 0., 1., 2., 1.], dtype=float32)
"""

import keras
import tensorflow as tf

from nst_tf.errors import ImageError
from nst_tf.layers.registry import register


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


@register
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


@register
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
