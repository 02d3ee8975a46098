"""Per-call noise: the noise source of Ulyanov et al.'s texture networks (fresh seeded noise on
every call, a distinct stream per replica).

Example:
    >>> import tensorflow as tf
    >>> NoiseFill(3, ratio=4, seed=1)(tf.zeros([2, 8, 12, 3])).shape
    TensorShape([2, 2, 3, 3])
"""

import keras
import tensorflow as tf

from nst_tf.errors import ImageError
from nst_tf.layers.registry import register


def _noise_size_message(name, ratio, height=None, width=None):
    got = "got H, W =" if height is None else f"got {height}x{width}"
    return (f"{name}: the image height and width must be multiples of {ratio} (the coarsest "
            f"scale of this texture network is 1/{ratio} of the output size), {got}")


@register
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
