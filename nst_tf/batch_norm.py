"""Batch normalization that normalizes by the *global* batch under any ``tf.distribute`` strategy.

In training mode a batch norm normalizes with the statistics of its batch. Under a strategy with
``R`` replicas (``MirroredStrategy`` over several devices, ``MultiWorkerMirroredStrategy`` over
several workers) Keras' layer computes them per replica, over ``1/R`` of the batch: the losses,
the gradients and the moving statistics are then not one device's. Here every replica computes
the statistics of the whole global batch (:func:`global_moments`, two all-reduces), so ``R``
replicas train exactly as one device does, to float32 rounding; on one replica nothing changes.

* :class:`BatchNorm`: ``keras.layers.BatchNormalization`` with global statistics (Ulyanov's
  texture networks).
* :class:`SlimBatchNorm`: the same computed as tf-slim's ``batch_norm`` computes it (Magenta's
  Inception trunk, the arbitrary-style transformer's contract convs, the MobileNetV2 predictor).

Example:
    >>> import tensorflow as tf
    >>> mean, variance, count = global_moments(tf.constant([[1.0], [3.0]]), axes=[0])
    >>> float(mean[0]), float(variance[0]), float(count)
    (2.0, 1.0, 2.0)
"""

import keras
import tensorflow as tf

_REGISTER = keras.saving.register_keras_serializable(package="nst_tf")


def replicas_in_sync():
    """How many replicas compute this step together (1 outside a strategy's ``run``)."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def global_moments(x, axes):
    """``(mean, variance, count)`` of ``x`` over ``axes`` and over every replica in sync: the
    moments of the global batch (population variance). Two passes as ``tf.nn.moments`` makes
    them (the mean, then the mean squared deviation from it), each summed over the replicas with
    one all-reduce, whose gradient is the all-reduce of the gradients: each replica's loss
    reaches every example of the global batch, as on one device. ``count`` is the number of
    values per channel in the global batch.
    """
    x = tf.convert_to_tensor(x)
    shape = tf.shape(x)
    count = tf.cast(tf.reduce_prod(tf.gather(shape, axes)), x.dtype)
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        mean, variance = tf.nn.moments(x, axes)
        return mean, variance, count
    sums = context.all_reduce(tf.distribute.ReduceOp.SUM,
                              tf.concat([tf.reduce_sum(x, axes), count[None]], 0))
    count = sums[-1]
    mean = sums[:-1] / count
    deviations = tf.reduce_sum(tf.math.squared_difference(x, mean), axes)
    variance = context.all_reduce(tf.distribute.ReduceOp.SUM, deviations) / count
    return mean, variance, count


@_REGISTER
class BatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` that, in training under several replicas, normalizes
    with the global batch's statistics (:func:`global_moments`) and moves its averages towards
    them; with one replica, or in inference, it is Keras' layer.

    The moving variance follows the batch's population variance, as Keras' does; a subclass with
    ``bessel = True`` follows ``count / (count - 1)`` times it, as tf-slim and Torch do.

    Example:
        >>> BatchNorm(momentum=0.9)(tf.ones([2, 4, 4, 3]), training=True).shape
        TensorShape([2, 4, 4, 3])
    """

    #: Move the variance average towards the unbiased (Bessel-corrected) batch variance.
    bessel = False

    def call(self, inputs, training=None, mask=None):
        if training and self.trainable and mask is None and replicas_in_sync() > 1:
            return self._normalize_globally(inputs)
        return super().call(inputs, training=training, mask=mask)

    def _affine(self, channels):
        scale = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels])
        offset = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels])
        return scale, offset

    def _normalize_globally(self, inputs):
        dtype = inputs.dtype
        x = tf.cast(inputs, tf.float32)
        axis = self.axis % len(x.shape)
        axes = [i for i in range(len(x.shape)) if i != axis]
        mean, variance, count = global_moments(x, axes)
        scale, offset = self._affine(x.shape[axis])
        shape = [1] * len(x.shape)
        shape[axis] = x.shape[axis]
        out = tf.nn.batch_normalization(x, tf.reshape(mean, shape), tf.reshape(variance, shape),
                                        tf.reshape(offset, shape), tf.reshape(scale, shape),
                                        self.epsilon)
        self._move_averages(mean, variance, count)
        return tf.cast(out, dtype)

    def _move_averages(self, mean, variance, count):
        if self.bessel:
            variance = variance * count / tf.maximum(count - 1.0, 1.0)
        for average, value in ((self.moving_mean, mean), (self.moving_variance, variance)):
            average.assign(average * self.momentum + tf.cast(value, average.dtype)
                           * (1.0 - self.momentum))


@_REGISTER
class SlimBatchNorm(BatchNorm):
    """Batch norm computed as tf-slim's ``batch_norm`` computes it: TensorFlow's fused kernel
    (Magenta's numbers), in inference and in training on one replica; on several, the global
    batch's statistics (:class:`BatchNorm`).

    In training (``training=True`` and trainable) it normalizes with the batch's statistics and
    moves the averages towards the batch mean and Bessel-corrected batch variance, as slim's
    fused batch norm does (Keras' own layer uses the uncorrected variance), with ``momentum`` as
    slim's ``decay``. Defaults are slim's: ``center=True, scale=False`` (no gamma),
    ``epsilon=1e-3``.

    Example:
        >>> SlimBatchNorm()(tf.ones([1, 2, 2, 4])).shape
        TensorShape([1, 2, 2, 4])
    """

    bessel = True

    def __init__(self, momentum=0.999, epsilon=1e-3, center=True, scale=False, **kwargs):
        super().__init__(momentum=momentum, epsilon=epsilon, center=center, scale=scale,
                         **kwargs)

    def call(self, inputs, training=None, mask=None):
        if mask is not None or self.axis not in (-1, 3) or len(inputs.shape) != 4:
            return super().call(inputs, training=training, mask=mask)
        if training and self.trainable and replicas_in_sync() > 1:
            return self._normalize_globally(inputs)
        dtype = inputs.dtype
        x = tf.cast(inputs, tf.float32)
        scale, offset = self._affine(x.shape[-1])
        if training and self.trainable:
            out, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, scale, offset, epsilon=self.epsilon, is_training=True)
            # The kernel's variance is already Bessel-corrected.
            for average, value in ((self.moving_mean, mean), (self.moving_variance, variance)):
                average.assign(average * self.momentum + tf.cast(value, average.dtype)
                               * (1.0 - self.momentum))
        else:
            out, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, scale, offset, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon,
                is_training=False)
        return tf.cast(out, dtype)
