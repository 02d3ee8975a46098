"""Distil the arbitrary-style network's style predictor into MobileNetV2: ``nst-train --mode=distill``.

What Magenta's ``arbitrary_image_stylization_distill_mobilenet.py`` does, on
:func:`nst_tf.training.train`:

* The *teacher* is a trained arbitrary-style network (``checkpoint``; Magenta's
  ``--initial_checkpoint``, by default the released Inception-v3 model, preset ``"arbitrary"``):
  its style prediction network runs frozen, batch norm in inference mode.
* The *student* is :func:`~nst_tf.networks.arbitrary_network` ``(predictor="mobilenet_v2")``:
  the teacher's transformer and style projections, copied and frozen (Magenta restores
  ``style_params`` and ``transformer`` from the same checkpoint and does not train them), and a
  MobileNetV2 trunk started from ImageNet weights (``keras.applications.MobileNetV2``; Magenta
  starts from slim's ``mobilenet_v2_1.0_224.ckpt``, the same network) or random, plus a random
  bottleneck conv; trunk and bottleneck are trained, the trunk's batch norm in training mode.
* The loss (:class:`DistillLoss`): ``tf.losses.mean_squared_error(teacher, student)``, the mean
  of the squared difference over every element of the ``[B, 100]`` embeddings of the same style
  batch. Magenta's ``--use_true_loss`` adds ``true_loss_weight`` (Magenta: 1e-9) times the
  arbitrary-style loss of the student's stylized content images
  (:class:`~nst_tf.models.arbitrary.recipe.ArbitraryLoss`: content, style, total variation);
  here ``true_loss_weight > 0`` turns it on.
* Data as ``--mode=arbitrary`` (content stream, augmented style stream of random sizes); Adam
  1e-5.

The train_dir holds the student, a complete mobile arbitrary-style network: ``nst_tf.stylize(...,
model=train_dir)``, ``nst-export --model=train_dir`` and ``nst-train --export_tflite`` take it.

Example:
    >>> from nst_tf.training import train
    >>> net = train("imagenet/", "paintings/", "runs/distill", mode="distill",
    ...             checkpoint="arbitrary", batch_size=8)                     # doctest: +SKIP
"""

import tensorflow as tf

from nst_tf import data
from nst_tf.errors import ConfigError
from nst_tf.models.arbitrary.recipe import ArbitraryLoss, ArbitraryRecipe, copy_network
from nst_tf.training.trainer import ImagePairTrainer


def embedding_mse(target, prediction):
    """``tf.losses.mean_squared_error(target, prediction)``: the mean over every element of the
    squared difference of two embedding batches (float32).

    Example:
        >>> float(embedding_mse(tf.zeros([2, 3]), tf.ones([2, 3])))
        1.0
    """
    difference = tf.cast(target, tf.float32) - tf.cast(prediction, tf.float32)
    return tf.reduce_mean(tf.square(difference))


class DistillLoss:
    """Magenta's distillation loss: the student's style embedding against the teacher's.

    Args:
        teacher: the teacher's style prediction network (style images → ``[B, E]``), frozen.
        true_loss: an :class:`~nst_tf.models.arbitrary.recipe.ArbitraryLoss`, or None (Magenta's
            default ``--use_true_loss=false``).
        true_loss_weight: its weight (Magenta's ``--true_loss_weight``, 1e-9).
        validation_styles: float32 ``[S, h, w, 3]`` that integer labels refer to (TensorBoard).

    Call ``loss(network, content, style, training)`` with the student (an arbitrary-style
    network), ``[B, H, W, 3]`` content and ``[B, h, w, 3]`` style images →
    ``(total, {"mse"[, "true_loss"]})``; ``true_loss`` is already weighted, as Magenta's summary.

    Example:
        >>> from nst_tf.networks import arbitrary_network, style_predictor_of
        >>> teacher = style_predictor_of(arbitrary_network(alpha=0.25, depth_multiplier=0.25))
        >>> student = arbitrary_network(alpha=0.25, depth_multiplier=0.35,
        ...                             predictor="mobilenet_v2")
        >>> total, parts = DistillLoss(teacher)(student, tf.zeros([1, 32, 32, 3]),
        ...                                     tf.random.uniform([1, 64, 64, 3]))
        >>> sorted(parts)
        ['mse']
    """

    def __init__(self, teacher, true_loss=None, true_loss_weight=0.0, validation_styles=None):
        self.teacher = teacher
        self.true_loss = true_loss
        self.true_loss_weight = float(true_loss_weight)
        self.validation_styles = (None if validation_styles is None
                                  else tf.constant(validation_styles, tf.float32))
        self.num_styles = 1 if validation_styles is None else len(validation_styles)

    def __call__(self, network, content, style, training=False):
        from nst_tf.models.arbitrary.network import style_predictor_of, transformer_of

        style = tf.cast(style, tf.float32)
        student = style_predictor_of(network)(style, training=training)
        mse = embedding_mse(self.teacher(style, training=False), student)
        if self.true_loss is None:
            return mse, {"mse": mse}
        content = tf.cast(content, tf.float32)
        stylized = transformer_of(network)([content, student], training=training)
        stylized = stylized[:, :tf.shape(content)[1], :tf.shape(content)[2], :]
        true_loss = self.true_loss_weight * self.true_loss(stylized, content, style)[0]
        return mse + true_loss, {"mse": mse, "true_loss": true_loss}


class DistillTrainer(ImagePairTrainer):
    """:class:`~nst_tf.training.trainer.ImagePairTrainer` whose loss is a :class:`DistillLoss`
    of the network's style embeddings; the stylized images (``trainer((content, style))``) are
    the student's, for TensorBoard."""

    def compute_losses(self, images, styles, training=False):
        if styles.dtype.is_integer:
            styles = tf.gather(self.perceptual_loss.validation_styles, styles)
        return self.perceptual_loss(self.network, images, styles, training=training)


class DistillRecipe(ArbitraryRecipe):
    """``mode="distill"``: a MobileNetV2 style predictor learns a trained arbitrary-style
    network's embeddings (Magenta's ``distill_mobilenet``); see the module's description.

    Options:

    * ``checkpoint``: the teacher, anything :func:`nst_tf.stylize` takes as an arbitrary-style
      model (default ``"arbitrary"``, Magenta's released Inception-v3 model); its transformer,
      width and embedding size become the student's;
    * ``weights``: ``"imagenet"`` (the MobileNetV2 start and, with the true loss, the VGG-16
      loss network), ``"random"`` / None, or a VGG ``.h5`` (MobileNetV2 from ImageNet);
    * ``depth_multiplier``: the MobileNetV2 trunk's width (ImageNet weights need 1);
    * ``true_loss_weight``: 0 (Magenta's default) or the weight of the arbitrary-style loss
      added to the embedding error (Magenta's ``--use_true_loss --true_loss_weight=1e-9``);
      ``content_weights``, ``style_weights``, ``tv_weight``, ``backbone``, ``pooling``,
      ``preprocessing``: that loss, as ``--mode=arbitrary``;
    * ``augment_style_images``, ``random_style_image_size``, ``lr_schedule``: as
      ``--mode=arbitrary``.
    """

    mode = "distill"
    summary = ("a MobileNetV2 style predictor learns an arbitrary-style model's embeddings "
               "(Magenta's distill_mobilenet; --checkpoint is the teacher)")
    options = {**{k: v for k, v in ArbitraryRecipe.options.items()
                  if k not in ("predictor", "alpha")},
               "checkpoint": "arbitrary", "true_loss_weight": 0.0}
    exports_magenta = True
    exports_tflite = True

    @classmethod
    def check_tflite_export(cls, options):
        """The student always has a MobileNetV2 style predictor: ``--export_tflite`` writes it."""

    def check(self):
        from nst_tf.models.arbitrary.network import MIN_STYLE_SIZE

        options = self.options
        if self.image_size < MIN_STYLE_SIZE:
            raise ConfigError(f"mode 'distill' crops style images to image_size, which must be "
                              f"at least {MIN_STYLE_SIZE} (the teacher's minimum), got "
                              f"{self.image_size}")
        if not options["checkpoint"]:
            raise ConfigError("mode 'distill' needs the teacher: --checkpoint, a trained "
                              "arbitrary-style model (e.g. the preset 'arbitrary')")
        if not float(options["true_loss_weight"]) >= 0:
            raise ConfigError(f"true_loss_weight must be >= 0, got "
                              f"{options['true_loss_weight']}")
        if options["weights"] not in (None, "random") and options["depth_multiplier"] != 1.0:
            raise ConfigError("ImageNet MobileNetV2 weights need depth_multiplier=1; use "
                              "weights='random' for another width")
        self.check_loss_options()

    def build(self):
        from nst_tf.models.arbitrary.network import style_predictor_of

        options = self.options
        teacher = style_predictor_of(copy_network(options["checkpoint"]))
        teacher.trainable = False
        self.network, _ = self.build_network(**options)
        true_loss = None
        if options["true_loss_weight"]:
            true_loss = ArbitraryLoss(self.loss_network(), self.content_weights,
                                      self.style_weights, options["tv_weight"])
        loss = DistillLoss(teacher, true_loss, options["true_loss_weight"],
                           data.validation_batch(self.style_images, self.image_size, count=4))
        self.trainer = DistillTrainer(self.network, loss)
        return self.trainer

    @classmethod
    def build_network(cls, num_styles=1, **options):
        """``(student, 0)``: the mobile arbitrary-style network that learns the embeddings of
        the teacher ``options["checkpoint"]``: its transformer copied and frozen, a new
        MobileNetV2 style network (ImageNet or random) trained."""
        from nst_tf.models.arbitrary.family import load_model
        from nst_tf.models.arbitrary.mobilenet import load_keras_mobilenet_weights
        from nst_tf.models.arbitrary.network import (arbitrary_config, arbitrary_network,
                                                     style_predictor_of, transformer_of)

        source = load_model(options["checkpoint"])
        config = arbitrary_config(source)
        student = arbitrary_network(config["embedding_size"], alpha=config["alpha"],
                                    depth_multiplier=options["depth_multiplier"],
                                    predictor="mobilenet_v2")
        transformer = transformer_of(student)
        transformer.set_weights(transformer_of(source).get_weights())
        transformer.trainable = False
        if options["weights"] not in (None, "random"):
            load_keras_mobilenet_weights(style_predictor_of(student))
        return student, 0

    def config(self):
        from nst_tf.models.arbitrary.network import arbitrary_config

        return {"mode": self.mode, **arbitrary_config(self.network)}
