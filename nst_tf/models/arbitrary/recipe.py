"""Train Magenta's arbitrary-style network (Ghiasi et al. 2017): ``nst-train --mode=arbitrary``.

What Magenta's ``arbitrary_image_stylization_train.py`` does, on :func:`nst_tf.training.train`:

* Two shuffled image streams. Content: shorter side ``image_size + 2``, centre crop
  (Magenta's ``imagenet_inputs``). Style (:func:`style_stream`, Magenta's
  ``arbitrary_style_image_inputs`` with augmentation): shorter side random in
  ``[image_size + 2, image_size + 200)``, random crop, then random brightness (±0.8),
  saturation (×0.5…1.5), hue (±0.2) and horizontal / vertical flips (:func:`augment_style`);
  each batch of styles is then resized to a random side in ``[128, 300)`` (scaled by
  ``image_size / 256``, at least 43). Every random choice is a stateless function of the seed
  and the image's (or batch's) index, so a resumed run sees exactly the batches of an
  uninterrupted one.
* The network: :func:`~nst_tf.networks.arbitrary_network`, the Inception-v3 style network
  started from ``keras.applications.InceptionV3``'s ImageNet weights
  (:func:`~nst_tf.models.arbitrary.inception.load_keras_inception_weights`; Magenta starts from
  slim's copy of the same network) or random, or everything from a Magenta checkpoint; the style
  network and the transformer are trained together, batch norm in training mode.
  ``predictor="mobilenet_v2"`` is Magenta's ``arbitrary_image_stylization_train_mobile.py``
  (:data:`PREDICTOR_TRAINING`): the MobileNetV2 trunk starts from
  ``keras.applications.MobileNetV2``'s ImageNet weights
  (:func:`~nst_tf.models.arbitrary.mobilenet.load_keras_mobilenet_weights`) and runs with batch
  norm in inference mode; the bottleneck conv keeps its random start, frozen; the transformer
  (``alpha=0.25`` by default) is trained. Magenta's ``mobilenet_trainable=False`` does just
  that: ``nets.mobilenet``'s ``training_scope(is_training=False)`` sets the trunk's batch norm
  mode only, so the trunk's weights stay trainable variables that Adam updates, while
  ``mobilenet_conv`` is built with ``trainable=False``.
* The loss (:class:`ArbitraryLoss`): Magenta's ``arbitrary_image_stylization_losses.total_loss``
  on its VGG-16 (average pooling, Magenta's preprocessing): content ``vgg_16/conv3`` weight 1,
  style ``vgg_16/conv1..4`` weight 0.5e-3 each against the Gram matrices of each example's own
  style image, total variation 1e4 (Magenta's formula); Adam 1e-5.
* ``--export_magenta`` writes Magenta's checkpoint
  (:func:`magenta_compat.write_arbitrary_checkpoint`); :func:`nst_tf.stylize` takes the train_dir
  itself as ``model=``.

Example:
    >>> from nst_tf.training import train
    >>> net = train("imagenet/", "paintings/", "runs/arbitrary", mode="arbitrary",
    ...             batch_size=8)                                              # doctest: +SKIP
"""

import dataclasses

import tensorflow as tf

from nst_tf import data, losses
from nst_tf.errors import ConfigError
from nst_tf.training.perceptual import PerceptualLoss, PerceptualRecipe
from nst_tf.training.trainer import ImagePairTrainer

#: Magenta's defaults (``arbitrary_image_stylization_train.py``).
ARBITRARY_CONTENT_WEIGHTS = {"vgg_16/conv3": 1.0}
ARBITRARY_STYLE_WEIGHTS = {"vgg_16/conv1": 0.5e-3, "vgg_16/conv2": 0.5e-3,
                           "vgg_16/conv3": 0.5e-3, "vgg_16/conv4": 0.5e-3}
ARBITRARY_TV_WEIGHT = 1e4
#: Magenta's random side of a style batch at ``image_size`` 256: ``[128, 300)``.
STYLE_BATCH_SIDES = (128, 300)


@dataclasses.dataclass(frozen=True)
class PredictorTraining:
    """How Magenta trains the arbitrary-style network with one style trunk.

    Attributes:
        alpha: the transformer's default width multiplier with this trunk.
        load_imagenet: ``load_imagenet(style_predictor)`` copies the trunk's ImageNet weights
            from ``keras.applications`` (the bottleneck keeps its random start).
        batch_norm_training: the style prediction network runs in training mode (batch
            statistics, moving averages updated); False: inference mode.
        frozen: layers of the style prediction network that are not trained.
        tflite: Magenta publishes this model as TF Lite files, which ``--export_tflite`` writes
            (:func:`nst_tf.export.export_mobile_tflite`).
        script: Magenta's training script (documentation).
    """

    alpha: float
    load_imagenet: object
    batch_norm_training: bool
    frozen: tuple
    tflite: bool
    script: str


def _load_inception(predictor):
    from nst_tf.models.arbitrary.inception import load_keras_inception_weights

    return load_keras_inception_weights(predictor)


def _load_mobilenet(predictor):
    from nst_tf.models.arbitrary.mobilenet import load_keras_mobilenet_weights

    return load_keras_mobilenet_weights(predictor)


#: :class:`PredictorTraining` by ``predictor=`` name (:data:`nst_tf.models.arbitrary.network.PREDICTORS`).
PREDICTOR_TRAINING = {
    "inception_v3": PredictorTraining(1.0, _load_inception, batch_norm_training=True,
                                      frozen=(), tflite=False,
                                      script="arbitrary_image_stylization_train.py"),
    "mobilenet_v2": PredictorTraining(0.25, _load_mobilenet, batch_norm_training=False,
                                      frozen=("bottleneck",), tflite=True,
                                      script="arbitrary_image_stylization_train_mobile.py"),
}


def predictor_training(name):
    """The :class:`PredictorTraining` of predictor ``name``; ConfigError naming the predictors."""
    from nst_tf.models.arbitrary.network import predictor_kind

    return PREDICTOR_TRAINING[predictor_kind(name).name]


def prepare_predictor(network):
    """Freeze the layers of ``network``'s style prediction network that its trunk's
    :class:`PredictorTraining` leaves untrained; returns that :class:`PredictorTraining`."""
    from nst_tf.models.arbitrary.network import predictor_of_network, style_predictor_of

    setup = PREDICTOR_TRAINING[predictor_of_network(network).name]
    for name in setup.frozen:
        style_predictor_of(network).get_layer(name).trainable = False
    return setup


class ArbitraryTrainer(ImagePairTrainer):
    """:class:`~nst_tf.training.trainer.ImagePairTrainer` of an arbitrary-style network whose
    style prediction network runs in training mode only when ``style_training`` (Magenta's
    ``train_mobile`` runs MobileNetV2's batch norm in inference mode while training it)."""

    def __init__(self, network, loss, style_training=True, **kwargs):
        super().__init__(network, loss, **kwargs)
        self.style_training = bool(style_training)

    def call(self, inputs, training=False):
        from nst_tf.models.arbitrary.network import style_predictor_of, transformer_of

        images, styles = inputs
        if styles.dtype.is_integer:
            styles = tf.gather(self.perceptual_loss.validation_styles, styles)
        embedding = style_predictor_of(self.network)(styles,
                                                     training=training and self.style_training)
        return transformer_of(self.network)([images, embedding], training=training)


class ArbitraryLoss(PerceptualLoss):
    """Magenta's arbitrary-style loss: content, Gram style against each example's style image,
    total variation.

    Args:
        extractor: the float32 loss network (:class:`~nst_tf.features.FeatureExtractor`).
        content_weights, style_weights: ``{layer: weight}`` (Magenta's end points, Keras names
            or Caffe aliases).
        tv_weight: Magenta's ``total_variation_weight``. Magenta's total variation is
            ``(l2(dy)/((H-1)·W·C) + l2(dx)/(H·(W-1)·C)) / B`` with ``l2 = ½·Σ²``: half of
            :func:`nst_tf.losses.total_variation_loss`, so the term is
            ``tv_weight / 2 · total_variation_loss``.
        validation_styles: float32 ``[S, h, w, 3]`` that integer labels refer to (TensorBoard).

    Call ``loss(stylized, content, style)`` with ``[B, H, W, 3]`` images and style images
    ``[B, h, w, 3]`` (any ``h, w``) → ``(total, {"content", "style", "tv"})``. Content and style
    terms are per-example means averaged over the batch, which is Magenta's
    ``reduce_mean`` over the batch for same-sized images.

    Example:
        >>> from nst_tf.features import FeatureExtractor
        >>> fx = FeatureExtractor("vgg16", ["block1_conv2", "block3_conv3"], weights=None)
        >>> loss = ArbitraryLoss(fx, {"block3_conv3": 1.0}, {"block1_conv2": 1e-3})
        >>> x = tf.random.uniform([2, 32, 32, 3])
        >>> float(loss(x, x, tf.random.uniform([2, 48, 40, 3]))[1]["content"])
        0.0
    """

    def __init__(self, extractor, content_weights=ARBITRARY_CONTENT_WEIGHTS,
                 style_weights=ARBITRARY_STYLE_WEIGHTS, tv_weight=ARBITRARY_TV_WEIGHT,
                 validation_styles=None):
        self._set_terms(extractor, content_weights, style_weights, 0.0, 0.0, "pixels")
        if not float(tv_weight) >= 0:
            raise ConfigError(f"tv_weight must be finite and >= 0, got {tv_weight}")
        self.tv_weight = float(tv_weight) / 2.0   # Magenta's l2_loss is half a sum of squares
        self.validation_styles = (None if validation_styles is None
                                  else tf.constant(validation_styles, tf.float32))
        self.num_styles = 1 if validation_styles is None else len(validation_styles)

    def __call__(self, stylized, content, style):
        stylized = tf.cast(stylized, tf.float32)
        features = self.extractor(tf.concat([stylized, tf.cast(content, tf.float32)], axis=0))
        style_features = self.extractor(tf.cast(style, tf.float32))
        targets = {name: losses.gram_matrix(style_features[name]) for name in self.style_weights}
        return self.terms(stylized, features, targets)


def copy_network(model):
    """A new :func:`~nst_tf.networks.arbitrary_network` holding the weights of ``model`` (any
    arbitrary-style model :func:`nst_tf.stylize` takes): training changes the copy, never the
    cached network that :func:`nst_tf.stylize` runs.

    Raises:
        ConfigError: ``model`` has no Keras weights (a TF-Hub module).
    """
    from nst_tf.models.arbitrary.family import load_model
    from nst_tf.models.arbitrary.network import (arbitrary_config, arbitrary_network,
                                                 is_arbitrary_network)

    source = load_model(model)
    if not is_arbitrary_network(source):
        raise ConfigError(f"cannot train from {model!r}: it is not a Keras arbitrary-style "
                          "network (a TF-Hub module has no weights to train)")
    network = arbitrary_network(**arbitrary_config(source))
    network.set_weights(source.get_weights())
    return network


def augment_style(image, key):
    """Magenta's style augmentation of one ``[H, W, 3]`` image in [0, 1], drawn from the stateless
    ``key``: brightness ±0.8, saturation ×[0.5, 1.5], hue ±0.2, left-right and up-down flips.
    Magenta applies them to uint8 images, so each result saturates to [0, 1].

    Example:
        >>> image = tf.random.uniform([8, 8, 3])
        >>> bool(tf.reduce_all(augment_style(image, [1, 2]) == augment_style(image, [1, 2])))
        True
    """
    keys = tf.random.experimental.stateless_split(tf.cast(key, tf.int64), 5)
    image = tf.clip_by_value(tf.image.stateless_random_brightness(image, 0.8, keys[0]), 0.0, 1.0)
    image = tf.clip_by_value(tf.image.stateless_random_saturation(image, 0.5, 1.5, keys[1]),
                             0.0, 1.0)
    image = tf.clip_by_value(tf.image.stateless_random_hue(image, 0.2, keys[2]), 0.0, 1.0)
    image = tf.image.stateless_random_flip_left_right(image, keys[3])
    return tf.image.stateless_random_flip_up_down(image, keys[4])


def style_batch_sides(image_size):
    """``[low, high)`` of the random side of a style batch: Magenta's ``[128, 300)`` scaled by
    ``image_size / 256``, at least the style network's minimum (43).

    Example:
        >>> style_batch_sides(256), style_batch_sides(64)
        ((128, 300), (43, 75))
    """
    from nst_tf.models.arbitrary.network import MIN_STYLE_SIZE

    low, high = (max(MIN_STYLE_SIZE, round(side * image_size / 256)) for side in STYLE_BATCH_SIDES)
    return low, max(high, low + 1)


def style_stream(style_images, image_size, batch_size, seed=0, start_batch=0, augment=True,
                 random_size=True, batch_slice=None):
    """Style batches from batch ``start_batch`` on; a second stream with its own shuffle
    (seed + 1); with a ``batch_slice`` (:class:`nst_tf.data.BatchSlice`), its slots of every
    batch (the batch's random side is drawn per global batch, so it is every worker's).

    ``augment`` (Magenta's ``augment_style_images``): a random shorter side in
    ``[image_size + 2, image_size + 200)``, a random crop and :func:`augment_style`; else the
    shorter side ``image_size + 2`` and a centre crop (Magenta's ``center_crop``).
    ``random_size`` (Magenta's ``random_style_image_size``): each batch is then resized to a
    random side in :func:`style_batch_sides`.
    """
    sides = (image_size + 2, image_size + 200) if augment else image_size + 2
    batches = data.content_dataset(style_images, image_size=image_size, batch_size=batch_size,
                                   seed=seed + 1, start_batch=start_batch,
                                   resize_short_side=sides,
                                   crop_mode="random" if augment else "center",
                                   augment=augment_style if augment else None,
                                   batch_slice=batch_slice)
    if not random_size:
        return batches
    low, high = style_batch_sides(image_size)

    def resize(index, styles):
        side = tf.random.stateless_uniform([], tf.stack([tf.cast(seed + 2, tf.int64), index]),
                                           minval=low, maxval=high, dtype=tf.int32)
        resized = tf.image.resize(styles, tf.stack([side, side]), method="bilinear",
                                  antialias=True)
        return tf.clip_by_value(resized, 0.0, 1.0)

    return batches.enumerate(start=int(start_batch)).map(resize)


class ArbitraryRecipe(PerceptualRecipe):
    """``mode="arbitrary"``: Magenta's arbitrary-style network, style network and transformer
    trained together on a content stream and a style stream.

    Options:

    * ``content_weights``, ``style_weights``, ``tv_weight``: :class:`ArbitraryLoss` (Magenta's
      defaults: content ``vgg_16/conv3`` 1, style ``vgg_16/conv1..4`` 0.5e-3, TV 1e4);
    * ``backbone``, ``pooling``, ``preprocessing``: the loss network (Magenta's VGG-16 with
      average pooling by default);
    * ``weights``: ``"imagenet"`` (the VGG-16 loss network and the style trunk's start, Keras'
      cached downloads), ``"random"`` / None (both random), or a VGG ``.h5`` (the trunk from
      ImageNet);
    * ``predictor``: the style trunk, ``"inception_v3"`` (Magenta's ``train``) or
      ``"mobilenet_v2"`` (its ``train_mobile``: batch norm of the style trunk in inference
      mode, the bottleneck frozen; see :data:`PREDICTOR_TRAINING`);
    * ``alpha``: the transformer's width multiplier (default: the predictor's, 1 or 0.25);
      ``depth_multiplier``: the style trunk's (ImageNet weights need 1);
    * ``checkpoint``: start every weight from another arbitrary-style model instead — anything
      :func:`nst_tf.stylize` takes (a Magenta checkpoint, the presets ``"arbitrary"`` and
      ``"arbitrary-mobile"``, a folder holding the mobile model's TF Lite / ONNX files, a
      ``.keras`` file, a train_dir); its predictor, widths and embedding size come along, and
      its predictor's :class:`PredictorTraining`;
    * ``augment_style_images``, ``random_style_image_size``: Magenta's flags of the same names
      (both on by default; see :func:`style_stream`);
    * ``lr_schedule``: ``"constant"`` (Magenta's) or ``"ulyanov"``.
    """

    mode = "arbitrary"
    summary = ("Magenta's arbitrary-style network (style network and transformer; "
               "--style_images is a second image stream)")
    defaults = {"learning_rate": 1e-5, "train_steps": 8_000_000}
    options = {"content_weights": ARBITRARY_CONTENT_WEIGHTS,
               "style_weights": ARBITRARY_STYLE_WEIGHTS, "tv_weight": ARBITRARY_TV_WEIGHT,
               "backbone": "vgg16", "pooling": "avg", "preprocessing": "magenta",
               "weights": "imagenet", "lr_schedule": "constant", "predictor": "inception_v3",
               "alpha": None, "depth_multiplier": 1.0, "checkpoint": None,
               "augment_style_images": True, "random_style_image_size": True}
    exports_magenta = True
    exports_tflite = True

    def check(self):
        from nst_tf.models.arbitrary.network import MIN_STYLE_SIZE

        options = self.options
        if self.image_size < MIN_STYLE_SIZE:
            raise ConfigError(f"mode 'arbitrary' crops style images to image_size, which must "
                              f"be at least {MIN_STYLE_SIZE} (the style network's minimum), got "
                              f"{self.image_size}")
        predictor_training(options["predictor"])
        if options["weights"] not in (None, "random") and options["depth_multiplier"] != 1.0 \
                and not options["checkpoint"]:
            raise ConfigError(f"ImageNet {options['predictor']} weights need depth_multiplier=1; "
                              "use weights='random' for another width")
        self.check_loss_options()

    @classmethod
    def check_tflite_export(cls, options):
        """Magenta's TF Lite files hold the mobile model: a run from ``checkpoint`` is checked
        when it is written; otherwise ``predictor`` must be one Magenta publishes as TF Lite."""
        predictor = options.get("predictor", cls.options["predictor"])
        if not options.get("checkpoint") and not predictor_training(predictor).tflite:
            raise ConfigError(f"--export_tflite writes Magenta's mobile model (MobileNetV2 style "
                              f"predictor); add --predictor=mobilenet_v2 (got {predictor!r})")

    def build(self):
        self.network, _ = self.build_network(**self.options)
        loss = ArbitraryLoss(self.loss_network(), self.content_weights, self.style_weights,
                             self.options["tv_weight"],
                             data.validation_batch(self.style_images, self.image_size, count=4))
        setup = prepare_predictor(self.network)
        self.trainer = ArbitraryTrainer(self.network, loss,
                                        style_training=setup.batch_norm_training)
        return self.trainer

    @classmethod
    def build_network(cls, num_styles=1, **options):
        """``(network, 0)``: the arbitrary-style network to train (``num_styles`` is unused:
        it takes any style), with the layers that Magenta's recipe does not train frozen
        (:func:`prepare_predictor`)."""
        from nst_tf.models.arbitrary.network import arbitrary_network, style_predictor_of

        if options["checkpoint"]:
            network = copy_network(options["checkpoint"])
            prepare_predictor(network)
            return network, 0
        setup = predictor_training(options["predictor"])
        alpha = setup.alpha if options["alpha"] is None else options["alpha"]
        network = arbitrary_network(alpha=alpha, depth_multiplier=options["depth_multiplier"],
                                    predictor=options["predictor"])
        if options["weights"] not in (None, "random"):
            setup.load_imagenet(style_predictor_of(network))
        prepare_predictor(network)
        return network, 0

    @classmethod
    def network_from_config(cls, config):
        from nst_tf.models.arbitrary.network import arbitrary_network

        return arbitrary_network(config["embedding_size"], alpha=config["alpha"],
                                 depth_multiplier=config["depth_multiplier"],
                                 predictor=config.get("predictor", "inception_v3"))

    def config(self):
        from nst_tf.models.arbitrary.network import arbitrary_config

        return {"mode": self.mode, **arbitrary_config(self.network),
                "backbone": self.options["backbone"]}

    def dataset(self, start_step, batch_slice=None):
        content = data.content_dataset(self.content_images, image_size=self.image_size,
                                       batch_size=self.batch_size, seed=self.seed,
                                       start_batch=start_step,
                                       resize_short_side=self.image_size + 2,
                                       crop_mode="center", batch_slice=batch_slice)
        styles = style_stream(self.style_images, self.image_size, self.batch_size,
                              seed=self.seed, start_batch=start_step,
                              augment=self.options["augment_style_images"],
                              random_size=self.options["random_style_image_size"],
                              batch_slice=batch_slice)
        pairs = tf.data.Dataset.zip((content, styles))
        pairs.decode_counter = content.decode_counter
        return pairs
