"""The one Keras trainer of feed-forward style training: :class:`StyleTrainer`.

A ``keras.Model`` whose ``train_step`` minimizes a loss for a transformer network, so ``fit()``,
callbacks, ``tf.distribute`` strategies and XLA (``jit_compile="auto"``) work; float16 mixed
precision gets a ``LossScaleOptimizer``. Every mode trains through it (or a subclass that reads
its batches differently: AdaIN's and the arbitrary-style network's ``(content, style)`` pairs).

Example:
    >>> import numpy as np
    >>> from nst_tf.networks import johnson_network
    >>> from nst_tf.training import PerceptualLoss
    >>> from nst_tf.features import FeatureExtractor
    >>> fx = FeatureExtractor("vgg16", ["block1_conv2"], weights=None)
    >>> loss = PerceptualLoss(fx, [np.ones((16, 16, 3), "float32")], {}, {"block1_conv2": 1.0})
    >>> trainer = StyleTrainer(johnson_network(alpha=0.25), loss)
    >>> trainer.compile(learning_rate=1e-3)
    >>> logs = trainer.train_step(tf.random.uniform([2, 16, 16, 3]))
    >>> sorted(logs)
    ['content', 'loss', 'style', 'tv']
"""

import keras
import tensorflow as tf

from nst_tf.device import resolve_jit_compile
from nst_tf.errors import ConfigError


class StyleTrainer(keras.Model):
    """Trains ``network`` to minimize a :class:`~nst_tf.training.PerceptualLoss` with ``fit()``.

    Data: batches of content images ``[B, H, W, 3]``, or ``(images, labels[B])`` with style labels
    in ``[0, loss.num_styles)`` (see :func:`nst_tf.data.with_style_labels`); without labels every
    example uses style 0. A conditional (pastiche) network receives ``labels + label_offset`` (the
    row of the style in its CIN layers; fine-tuning trains rows ``N_old...``).

    Build it, and ``compile`` it, inside the ``strategy.scope()`` of a distribution strategy. Under
    ``N`` replicas each computes the mean loss of its share of the global batch and its gradient is
    divided by ``N`` before Keras sums them, so the update equals the one-device update.

    Example:
        >>> trainer = StyleTrainer(net, loss)                          # doctest: +SKIP
        >>> trainer.compile(learning_rate=1e-3)                        # doctest: +SKIP
        >>> trainer.fit(dataset, steps_per_epoch=1000)                 # doctest: +SKIP
    """

    def __init__(self, network, loss, label_offset=0, name="style_trainer", **kwargs):
        super().__init__(name=name, **kwargs)
        self.network = network
        self.perceptual_loss = loss
        self.label_offset = int(label_offset)
        # [image, style] inputs (nst_tf.networks.is_conditional)
        self.conditional = len(network.inputs) == 2
        if not self.conditional and loss.num_styles != 1:
            raise ConfigError(f"a single-style network trains on one style image, got "
                              f"{loss.num_styles}; use a pastiche network (mode 'cin')")

    def compile(self, optimizer=None, learning_rate=1e-3, jit_compile="auto", **kwargs):
        """Adam(``learning_rate``) unless ``optimizer`` is given; float16 networks get loss
        scaling; ``jit_compile`` goes through :func:`nst_tf.device.resolve_jit_compile`."""
        if optimizer is None:
            optimizer = keras.optimizers.Adam(learning_rate)
        policy = self.network.dtype_policy.name
        if policy == "mixed_float16" and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        kwargs.setdefault("auto_scale_loss", False)
        super().compile(optimizer=optimizer, jit_compile=resolve_jit_compile(jit_compile), **kwargs)

    def call(self, inputs, training=False):
        """Stylize ``(images, labels)``, or bare ``images`` in style 0."""
        images, labels = self._unpack(inputs)
        if self.conditional:
            return self.network([images, tf.cast(labels, tf.int32) + self.label_offset],
                                training=training)
        return self.network(images, training=training)

    def _unpack(self, batch):
        if isinstance(batch, (tuple, list)):
            images, labels = batch[0], batch[1]
        else:
            images, labels = batch, tf.zeros([tf.shape(batch)[0]], tf.int32)
        return tf.cast(images, tf.float32), tf.cast(labels, tf.int32)

    def compute_losses(self, images, labels, training=False):
        """``(total, parts)`` for content ``images`` and style ``labels``: the objective itself."""
        stylized = self((images, labels), training=training)
        stylized = stylized[:, :tf.shape(images)[1], :tf.shape(images)[2], :]
        return self.perceptual_loss(stylized, images, labels)

    def train_step(self, batch):
        images, labels = self._unpack(batch)
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            total, parts = self.compute_losses(images, labels, training=True)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(total / replicas)
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return {"loss": total, **parts}

    def test_step(self, batch):
        images, labels = self._unpack(batch)
        total, parts = self.compute_losses(images, labels)
        return {"loss": total, **parts}


class ImagePairTrainer(StyleTrainer):
    """:class:`StyleTrainer` for networks that take ``[content, style image]``: batches are
    ``(content, style)`` image pairs, and an integer "label" (TensorBoard's grid) picks one of
    the loss's ``validation_styles`` ``[S, h, w, 3]``. The loss is called as
    ``loss(stylized, content, style)``."""

    def call(self, inputs, training=False):
        """Stylize ``(content, style images)``, or ``(content, int labels)`` with the loss's
        validation styles."""
        images, styles = inputs
        if styles.dtype.is_integer:
            styles = tf.gather(self.perceptual_loss.validation_styles, styles)
        return self.network([images, styles], training=training)

    def _unpack(self, batch):
        return tf.cast(batch[0], tf.float32), batch[1]
