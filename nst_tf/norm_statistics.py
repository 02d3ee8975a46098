"""One record/replay point for the spatial statistics of normalization layers.

Every normalization in nst-tf that normalizes an image-shaped tensor by its own statistics takes
the per-image, per-channel mean and (biased) variance over H and W from :func:`moments`:
:func:`nst_tf.layers.instance_norm` (so :class:`~nst_tf.layers.InstanceNormalization`,
:class:`~nst_tf.layers.ConditionalInstanceNorm` and the arbitrary network's
``ConditionalStyleNorm``) and AdaIN's content statistics
(:func:`nst_tf.models.adain.network.feature_statistics`). Normally :func:`moments` just computes
them. Inside one of the contexts below it records them, replays given ones, or measures them on
part of the tensor, one entry per call in call order. This is what lets a network run on
patches of a large image with the statistics of another pass (:mod:`nst_tf.patches`):

* :func:`recording`: compute as usual and keep ``(mean, variance, count)`` of every call;
* :func:`replaying`: normalize with given statistics instead of the tensor's own;
* :func:`measuring`: replay the first ``index`` calls and measure call ``index`` on a crop
  (the core of a patch) as ``(count, mean, M2)``, to be summed over patches in float64
  (:func:`combine`);
* :func:`float64_reference`: compute every statistic in NumPy float64 instead (eager only; the
  independent reference of tests and benchmarks).

The contexts act while a function is *traced* (or run eagerly), not on flags read at run time:
a ``tf.function`` traced inside :func:`replaying` takes the statistics as tensors, so pass them
as inputs of the compiled function (one trace serves every patch), and a function traced inside
:func:`recording` should return the recorded tensors as outputs. Each layer keeps its own
convention: the point deals in the biased variance and the pixel count, from which AdaIN derives
its unbiased variance.

Example:
    >>> import tensorflow as tf
    >>> from nst_tf.layers import instance_norm
    >>> x = tf.random.uniform([1, 8, 8, 2])
    >>> with recording() as recorded:
    ...     y = instance_norm(x, 1.0, 0.0)
    >>> [tuple(t.shape) for t in recorded.statistics[0]]
    [(1, 1, 1, 2), (1, 1, 1, 2), ()]
    >>> with replaying(recorded.statistics):      # the same statistics: the same output
    ...     z = instance_norm(x[:, :4], 1.0, 0.0)
    >>> bool(tf.reduce_all(tf.abs(z - y[:, :4]) < 1e-6))
    True
"""

import contextlib
import threading

import numpy as np
import tensorflow as tf

_state = threading.local()


def pixel_count(x, dtype=tf.float32):
    """H·W of ``x`` [B,H,W,C] as a scalar of ``dtype``."""
    shape = tf.shape(x)
    return tf.cast(shape[1] * shape[2], dtype)


def spatial_sum(x):
    """Σ of ``x`` [B,H,W,C] over H and W, ``[B,1,1,C]`` in ``x``'s dtype: each row summed, then
    the row sums summed by a matrix product (a blocked sum).

    One long running sum over H·W float32 values (what ``tf.reduce_sum`` over both axes does on
    the CPU) has a rounding error that grows with the pixel count: the variance of a 4000x3000
    tensor came out 1.6e-3 off. Two short sums keep it near float32's resolution at any size
    (2e-7 there), with float32 ops only (TF Lite has no float64 sums).

    Example:
        >>> x = tf.fill([1, 3000, 4000, 1], 1.1)
        >>> abs(float(tf.reshape(spatial_sum(x), [])) / 12e6 - 1.1) < 1e-6
        True
    """
    shape = tf.shape(x)
    rows = tf.reduce_sum(x, axis=2)                                              # [B, H, C]
    total = tf.matmul(tf.ones([1, 1, shape[1]], x.dtype), rows)                  # [B, 1, C]
    return tf.reshape(total, [shape[0], 1, 1, shape[3]])


def two_pass_moments(x):
    """Mean and biased variance of ``x`` [B,H,W,C] over H and W, each ``[B,1,1,C]`` in ``x``'s
    dtype: the mean by :func:`spatial_sum`, then the mean squared deviation from it the same way
    (no gradient through the mean in the second pass, like ``tf.nn.moments``)."""
    count = pixel_count(x, x.dtype)
    mean = spatial_sum(x) / count
    variance = spatial_sum(tf.math.squared_difference(x, tf.stop_gradient(mean))) / count
    return mean, variance


def _stack():
    if not hasattr(_state, "stack"):
        _state.stack = []
    return _state.stack


def is_active():
    """True inside one of this module's contexts."""
    return bool(_stack())


def moments(x, compute):
    """``(mean, variance, count)`` of ``x`` [B,H,W,C] over H and W: the record/replay point.

    ``compute(x)`` returns the layer's own ``(mean, biased variance)``, each ``[B,1,1,C]``;
    ``count`` is the number of pixels they describe (a scalar of the statistics' dtype). Outside
    the contexts of this module that is just ``compute(x)`` and ``H·W``.
    """
    stack = _stack()
    if not stack or not tf.is_tensor(x):      # symbolic Keras tensors are never recorded
        mean, variance = compute(x)
        return mean, variance, pixel_count(x, mean.dtype)
    return stack[-1].moments(x, compute)


class _Mode:
    """Base of the contexts: counts the calls in order."""

    def __init__(self):
        self.calls = 0

    def moments(self, x, compute):
        index = self.calls
        self.calls += 1
        return self.call(index, x, compute)

    def call(self, index, x, compute):
        raise NotImplementedError


class _Record(_Mode):
    def __init__(self):
        super().__init__()
        self.statistics, self.sizes = [], []

    def call(self, index, x, compute):
        mean, variance = compute(x)
        count = pixel_count(x, mean.dtype)
        self.statistics.append((mean, variance, count))
        self.sizes.append(tf.shape(x)[1:3])
        return mean, variance, count


def _replayed(statistics, index, dtype):
    if index >= len(statistics):
        raise ValueError(f"the network normalizes more tensors ({index + 1}+) than statistics "
                         f"were given ({len(statistics)})")
    return tuple(tf.cast(t, dtype) for t in statistics[index])


class _Replay(_Mode):
    def __init__(self, statistics):
        super().__init__()
        self.statistics = list(statistics)

    def call(self, index, x, compute):
        return _replayed(self.statistics, index, _stat_dtype(x))


class _Measure(_Mode):
    def __init__(self, statistics, index, box, scale):
        super().__init__()
        self.statistics, self.index, self.box, self.scale = list(statistics), index, box, scale
        self.partial = None

    def call(self, index, x, compute):
        if index < self.index:
            return _replayed(self.statistics, index, _stat_dtype(x))
        self.partial = crop_moments(x, self.box, self.scale)
        raise _Measured()     # nothing after this call is needed: stop the body here


class _Float64(_Mode):
    rows = 64                 # rows per float64 copy: bounded memory at any image size

    def call(self, index, x, compute):
        if not tf.executing_eagerly():
            raise ValueError("float64_reference() computes statistics in NumPy: run the network "
                             "eagerly (not inside a tf.function)")
        values = x.numpy()
        total = np.zeros(values.shape[:1] + (1, 1) + values.shape[3:])
        for top in range(0, values.shape[1], self.rows):
            total += values[:, top:top + self.rows].astype(np.float64).sum((1, 2), keepdims=True)
        count = values.shape[1] * values.shape[2]
        mean = total / count
        m2 = np.zeros_like(total)
        for top in range(0, values.shape[1], self.rows):
            part = values[:, top:top + self.rows].astype(np.float64)
            m2 += ((part - mean) ** 2).sum((1, 2), keepdims=True)
        dtype = _stat_dtype(x)
        return (tf.constant(mean, dtype), tf.constant(m2 / count, dtype),
                tf.constant(count, dtype))


class _Measured(BaseException):
    """Ends the body of :func:`measuring` at the measured call. A BaseException, so that the
    ``except Exception`` of the layers it passes through (Keras adds context to errors) leave
    it alone; :func:`measuring` catches it."""


def _stat_dtype(x):
    return tf.float64 if x.dtype == tf.float64 else tf.float32


def crop_moments(x, box, scale):
    """``(count, mean, M2)`` of the rows / columns of ``x`` that a box of input pixels covers.

    ``box`` is an int32 tensor ``[top, left, bottom, right]`` in input pixels of a patch (a
    ``bottom`` / ``right`` past the patch's end means "to the end"); ``scale`` = input pixels
    per pixel of ``x`` as ``(numerator, denominator)``. ``mean`` ``[B,1,1,C]`` and ``M2`` (the sum
    of squared deviations from ``mean``) are float64, by two passes over the crop: each row
    summed in the crop's dtype, the rows in float64.
    """
    num, den = scale
    shape = tf.shape(x)
    top, left = box[0] * den // num, box[1] * den // num
    bottom = tf.minimum(box[2] * den // num, shape[1])
    right = tf.minimum(box[3] * den // num, shape[2])
    crop = tf.cast(x[:, top:bottom, left:right, :], _stat_dtype(x))

    def total(values):
        rows = tf.cast(tf.reduce_sum(values, axis=2, keepdims=True), tf.float64)
        return tf.reduce_sum(rows, axis=1, keepdims=True)
    count = pixel_count(crop, tf.float64)
    mean = total(crop) / count
    m2 = total(tf.math.squared_difference(crop, tf.cast(mean, crop.dtype)))
    return count, mean, m2


@contextlib.contextmanager
def _active(mode):
    stack = _stack()
    stack.append(mode)
    try:
        yield mode
    finally:
        stack.remove(mode)


@contextlib.contextmanager
def recording():
    """Keep the ``(mean, variance, count)`` of every normalization, in call order.

    Yields the mode; while the body runs it fills ``statistics`` with those triples and
    ``sizes`` with the ``[H, W]`` of each normalized tensor (tensors of the function being
    traced, or eager values)."""
    with _active(_Record()) as mode:
        yield mode


@contextlib.contextmanager
def replaying(statistics):
    """Normalize with ``statistics`` (a sequence of ``(mean, variance, count)``, one per call in
    call order, e.g. from :func:`recording` or :func:`combine`) instead of the tensors' own."""
    with _active(_Replay(statistics)) as mode:
        yield mode


@contextlib.contextmanager
def measuring(statistics, index, box, scale):
    """Replay ``statistics`` for the calls before ``index``; measure call ``index`` on the crop
    ``box`` (see :func:`crop_moments`), and stop the body there (the rest of the ``with`` block
    is skipped). Yields the mode; its ``partial`` is ``(count, mean, M2)`` afterwards.

    Example:
        >>> from nst_tf.layers import instance_norm
        >>> x = tf.reshape(tf.range(16.0), [1, 4, 4, 1])
        >>> with measuring([], 0, tf.constant([0, 0, 2, 4]), (1, 1)) as measured:
        ...     instance_norm(x, 1.0, 0.0)         # the top half of x
        ...     print("not reached")
        >>> [float(tf.reshape(t, [])) for t in measured.partial]    # count, mean, M2
        [8.0, 3.5, 42.0]
    """
    with contextlib.suppress(_Measured), _active(_Measure(statistics, index, box, scale)) as mode:
        yield mode
    if mode.partial is None:
        raise ValueError(f"the body normalized fewer than {index + 1} tensors")


@contextlib.contextmanager
def float64_reference():
    """Compute every normalization's mean and variance in NumPy float64 (two passes over the
    float64 values, in row blocks), then round them to the layer's dtype: the whole-image
    statistics as exactly as the tensor defines them. Eager execution only (a reference for
    tests and benchmarks, not fast).

    Example:
        >>> from nst_tf.layers import instance_norm
        >>> x = tf.constant(np.random.default_rng(0).random((1, 300, 200, 3)), tf.float32)
        >>> with float64_reference():
        ...     y = instance_norm(x, 1.0, 0.0)
        >>> bool(np.allclose(y, (x - np.mean(x, (1, 2), keepdims=True, dtype=np.float64))
        ...      / np.sqrt(np.var(x, (1, 2), keepdims=True, dtype=np.float64) + 1e-5), atol=1e-6))
        True
    """
    with _active(_Float64()) as mode:
        yield mode


class Accumulator:
    """Sums partial ``(count, mean, M2)`` of one statistic over patches in float64 (Chan et
    al.'s pairwise update) and gives the whole tensor's ``(mean, biased variance, count)``.

    Example:
        >>> data = np.random.default_rng(0).normal(3.0, 2.0, (1, 10, 4, 2))
        >>> total = Accumulator()
        >>> for part in (data[:, :3], data[:, 3:]):
        ...     total.add(part[0].shape[0] * part[0].shape[1], part.mean((1, 2), keepdims=True),
        ...               ((part - part.mean((1, 2), keepdims=True)) ** 2).sum((1, 2), keepdims=True))
        >>> mean, variance, count = total.result()
        >>> bool(np.allclose(variance, data.var((1, 2), keepdims=True))), count
        (True, 40.0)
    """

    def __init__(self):
        self.count, self.mean, self.m2 = 0.0, None, None

    def add(self, count, mean, m2):
        count = float(count)
        if count == 0:
            return
        mean, m2 = np.asarray(mean, np.float64), np.asarray(m2, np.float64)
        if self.mean is None:
            self.count, self.mean, self.m2 = count, mean, m2
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.count * count / total)
        self.count = total

    def result(self):
        """``(mean, biased variance, count)`` as float64 arrays and a float."""
        return self.mean, self.m2 / self.count, self.count


def combine(accumulators, dtype=np.float64):
    """The ``(mean, variance, count)`` triples of :func:`replaying` from :class:`Accumulator`\\s."""
    out = []
    for accumulator in accumulators:
        mean, variance, count = accumulator.result()
        out.append((mean.astype(dtype), variance.astype(dtype), np.asarray(count, dtype)))
    return out
