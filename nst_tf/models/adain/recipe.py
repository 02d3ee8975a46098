"""Train an AdaIN decoder (``nst-train --mode=adain``) with the one trainer of :mod:`nst_tf.training`.

What this mode brings (the loop, checkpoints, resume, Ctrl-C handling and TensorBoard are
:func:`nst_tf.training.train`'s), gathered by :class:`AdainRecipe`:

* :class:`AdainLoss`: pytorch-AdaIN's objective. With ``t = AdaIN(f(c), f(s))`` and ``g(t)`` the
  decoded image, ``L = w_c·MSE(f₄(g(t)), t) + Σ_l w_l·[MSE(μ(f_l(g(t))), μ(f_l(s))) +
  MSE(σ(f_l(g(t))), σ(f_l(s)))]`` over relu1_1 … relu4_1 (``f_l``), weights 1 and 10
  (``train.py``'s ``--content_weight`` / ``--style_weight``); σ as the network's AdaIN
  convention computes it for content features (with ε). The encoder is frozen; only the decoder
  trains.
* :class:`AdainTrainer`: :class:`~nst_tf.training.trainer.ImagePairTrainer` (batches
  ``(content, style)`` of images) whose loss runs the network itself.
* :func:`style_batches`: the style images through the same ``tf.data`` pipeline as the content
  (folders, globs, TFRecords; random crops), shuffled independently and zipped with the content.
* :func:`build`: the network (encoder ``"normalised"`` with ``vgg_normalised.pth``'s weights, or
  ``"keras"`` VGG19), an optional published ``decoder.pth`` to start from, the loss and the
  optimizer's learning rate ``lr / (1 + 5e-5·step)`` (pytorch-AdaIN's decay, Adam 1e-4).
* At the end of a complete run it writes ``<train_dir>/adain.keras`` (:func:`save_network`).

Example:
    >>> from nst_tf.training import train
    >>> net = train("coco/", "wikiart/", "runs/adain", mode="adain", batch_size=8,
    ...             train_steps=160000)                                    # doctest: +SKIP
"""

import os

import tensorflow as tf

from nst_tf import data
from nst_tf.errors import ConfigError
from nst_tf.training.perceptual import parse_layer_weights
from nst_tf.training.recipe import Recipe
from nst_tf.training.schedules import inverse_time_decay
from nst_tf.training.trainer import ImagePairTrainer

#: pytorch-AdaIN's defaults (``train.py``): content weight 1 at relu4_1, style weight 10 per layer.
ADAIN_CONTENT_WEIGHTS = {"relu4_1": 1.0}
ADAIN_STYLE_WEIGHTS = {"relu1_1": 10.0, "relu2_1": 10.0, "relu3_1": 10.0, "relu4_1": 10.0}
#: Adam learning rate and its decay ``lr / (1 + decay·step)``.
ADAIN_LEARNING_RATE = 1e-4
ADAIN_LR_DECAY = 5e-5


class AdainLoss:
    """pytorch-AdaIN's content + mean/std style loss of an :func:`~nst_tf.networks.adain_network`.

    Args:
        content_weights, style_weights: ``{layer: weight}`` (``relu4_1`` / ``block4_conv1``
            style names; content only at relu4_1, style at relu1_1 … relu4_1).
        validation_styles: float32 ``[S, h, w, 3]`` images that integer labels refer to.

    ``loss(network, content, style)`` → ``(total, {"content", "style"})``.

    Example:
        >>> from nst_tf.networks import adain_network
        >>> net = adain_network(channel_divisor=16)
        >>> loss = AdainLoss()
        >>> x = tf.random.uniform([2, 32, 32, 3])
        >>> sorted(loss(net, x, x)[1])
        ['content', 'style']
    """

    def __init__(self, content_weights=None, style_weights=None, validation_styles=None):
        from nst_tf.models.adain.network import ENCODER_LAYERS

        content = parse_layer_weights(ADAIN_CONTENT_WEIGHTS if content_weights is None
                                      else content_weights, "vgg19", "content weights")
        style = parse_layer_weights(ADAIN_STYLE_WEIGHTS if style_weights is None
                                    else style_weights, "vgg19", "style weights")
        if set(content) - {ENCODER_LAYERS[-1]}:
            raise ConfigError(f"AdaIN's content loss is at relu4_1 (block4_conv1) only, got "
                              f"{sorted(content)}")
        if set(style) - set(ENCODER_LAYERS):
            raise ConfigError(f"AdaIN's style loss layers are relu1_1 ... relu4_1 "
                              f"({', '.join(ENCODER_LAYERS)}), got {sorted(style)}")
        self.content_weight = content.get(ENCODER_LAYERS[-1], 0.0)
        self.style_weights = [style.get(name, 0.0) for name in ENCODER_LAYERS]
        self.validation_styles = (None if validation_styles is None
                                  else tf.constant(validation_styles, tf.float32))
        self.num_styles = 1 if validation_styles is None else len(validation_styles)

    def __call__(self, network, content, style, training=False):
        from nst_tf.models.adain.network import feature_statistics

        encoder, decoder = network.get_layer("encoder"), network.get_layer("decoder")
        layer = network.get_layer("adain")
        content, style = tf.cast(content, tf.float32), tf.cast(style, tf.float32)
        if content.shape[1:3].is_fully_defined() and content.shape[1:3] == style.shape[1:3]:
            both = encoder(tf.concat([content, style], axis=0))   # one pass for both (training)
            batch = tf.shape(content)[0]
            content_features = both[-1][:batch]
            style_features = [f[batch:] for f in both]
        else:
            style_features = encoder(style)
            content_features = encoder(content)[-1]
        target = tf.stop_gradient(layer([content_features, style_features[-1]]))
        stylized = tf.cast(decoder(target, training=training), tf.float32)
        stylized = stylized[:, :tf.shape(content)[1], :tf.shape(content)[2]]
        ours = encoder(stylized)

        def mse(a, b):
            return tf.reduce_mean(tf.math.squared_difference(a, tf.stop_gradient(b)))

        content_loss = self.content_weight * mse(ours[-1], target)
        style_loss = tf.constant(0.0)
        for weight, mine, theirs in zip(self.style_weights, ours, style_features):
            if not weight:
                continue
            m1, s1 = feature_statistics(mine, layer.convention, "content", layer.epsilon)
            m2, s2 = feature_statistics(theirs, layer.convention, "content", layer.epsilon)
            style_loss += weight * (mse(m1, m2) + mse(s1, s2))
        return content_loss + style_loss, {"content": content_loss, "style": style_loss}


class AdainTrainer(ImagePairTrainer):
    """:class:`~nst_tf.training.trainer.ImagePairTrainer` for AdaIN: the loss runs the network
    itself (it needs the AdaIN target)."""

    def compute_losses(self, images, styles, training=False):
        return self.perceptual_loss(self.network, images, styles, training=training)


def style_batches(content, style_images, image_size, batch_size, seed=0, start_batch=0,
                  batch_slice=None):
    """Zip ``content`` batches with style batches from ``style_images`` (same pipeline, own
    shuffle, shorter side ``2·image_size`` then random crops): ``(content, style)``. With a
    ``batch_slice`` both streams keep the same slots (every worker sees the whole style pool
    and decodes the style images of its own slots)."""
    styles = data.content_dataset(style_images, image_size=image_size, batch_size=batch_size,
                                  seed=seed + 1, start_batch=start_batch,
                                  resize_short_side=2 * image_size, batch_slice=batch_slice)
    zipped = tf.data.Dataset.zip((content, styles))
    zipped.decode_counter = content.decode_counter
    return zipped


def _load_decoder(network, path):
    """Copy a decoder from a pytorch-AdaIN ``.pth`` or an AdaIN ``.keras`` file."""
    path = os.fspath(path)
    if path.endswith(".keras"):
        from nst_tf.families import load_keras_file

        source = load_keras_file(path)
        network.get_layer("decoder").set_weights(source.get_layer("decoder").get_weights())
        return
    from torch_compat.adain import load_adain_state
    from torch_compat.pth import read_state_dict

    load_adain_state(network, decoder_state=read_state_dict(path), decoder_source=path)


def build(encoder="normalised", weights="imagenet", alpha=1.0, init_decoder=None,
          content_weights=None, style_weights=None, validation_styles=None, seed=0,
          convention="pytorch"):
    """``(network, loss)`` to train.

    ``weights`` are the encoder's: ``"imagenet"`` means the published ``vgg_normalised.pth``
    (cached download) for ``encoder="normalised"`` and Keras' ImageNet VGG19 for ``"keras"``;
    ``"random"`` / ``None`` (tests); or a local ``.pth`` (normalised) / ``.h5`` (keras) file.
    ``alpha`` is a width multiplier (``1/alpha`` must be an integer dividing 64).
    """
    from nst_tf.models.adain.network import adain_network

    divisor = channel_divisor(alpha)
    random = weights in (None, "random")
    keras_weights = weights if encoder == "keras" else None
    network = adain_network(encoder, convention=convention, channel_divisor=divisor,
                            weights=keras_weights, seed=seed)
    if encoder == "normalised" and not random:
        from torch_compat.adain import adain_files, load_adain_state
        from torch_compat.pth import read_state_dict

        path = adain_files()[0] if weights == "imagenet" else os.fspath(weights)
        load_adain_state(network, vgg_state=read_state_dict(path), vgg_source=path)
    if init_decoder:
        _load_decoder(network, init_decoder)
    loss = AdainLoss(content_weights, style_weights, validation_styles)
    return network, loss


def channel_divisor(alpha):
    """``k`` for a width multiplier ``alpha = 1/k``; ConfigError unless ``k`` divides 64."""
    divisor = round(1.0 / alpha) if alpha > 0 else 0
    if divisor < 1 or abs(divisor * alpha - 1.0) > 1e-6 or 64 % divisor:
        raise ConfigError(f"AdaIN's alpha must be 1/k with k dividing 64 (1, 0.5, 0.25, ...), "
                          f"got {alpha}")
    return divisor


def learning_rate(initial=ADAIN_LEARNING_RATE, decay=ADAIN_LR_DECAY):
    """pytorch-AdaIN's schedule ``initial / (1 + decay·step)``."""
    return inverse_time_decay(initial, decay)


def save_network(network, train_dir):
    """Write the trained network as ``<train_dir>/adain.keras`` (atomically); returns the path.
    :func:`nst_tf.stylize` takes it as ``model=``."""
    from nst_tf.models.adain.family import TRAINED_MODEL

    path = os.path.join(os.fspath(train_dir), TRAINED_MODEL)
    partial = os.path.join(os.fspath(train_dir), ".adain.partial.keras")
    network.save(partial)
    os.replace(partial, path)
    return path


class AdainRecipe(Recipe):
    """``mode="adain"``: an AdaIN decoder for any style; style images are a second shuffled
    image stream (pytorch-AdaIN's recipe: Adam 1e-4 decayed as ``lr / (1 + lr_decay·step)``).

    Options:

    * ``encoder``: ``"normalised"`` (the published normalised VGG-19) or ``"keras"``
      (``keras.applications.VGG19``);
    * ``weights``: the encoder's: ``"imagenet"`` (``vgg_normalised.pth``, cached download, or
      Keras' ImageNet VGG19), ``"random"`` / None, or a local ``.pth`` / ``.h5``;
    * ``alpha``: width multiplier ``1/k``, ``k`` dividing 64;
    * ``init_decoder``: start from a decoder (pytorch-AdaIN ``decoder.pth`` or an AdaIN
      ``.keras``);
    * ``lr_decay``: the decay of the learning rate (default 5e-5);
    * ``content_weights``, ``style_weights``: :class:`AdainLoss`'s (content relu4_1: 1, style
      relu1_1 … relu4_1: 10).

    At the end it writes ``<train_dir>/adain.keras``, which :func:`nst_tf.stylize` takes as
    ``model=`` (as it takes the train_dir itself, even of an interrupted run).
    """

    mode = "adain"
    summary = ("an AdaIN decoder for any style (--style_images is a second image stream; "
               "writes <train_dir>/adain.keras)")
    defaults = {"learning_rate": ADAIN_LEARNING_RATE, "train_steps": 40000}
    options = {"encoder": "normalised", "weights": "imagenet", "alpha": 1.0,
               "init_decoder": None, "lr_decay": ADAIN_LR_DECAY,
               "content_weights": ADAIN_CONTENT_WEIGHTS, "style_weights": ADAIN_STYLE_WEIGHTS}

    def check(self):
        from nst_tf.models.adain.network import ENCODERS

        if self.options["encoder"] not in ENCODERS:
            raise ConfigError(f"encoder must be one of {', '.join(ENCODERS)}, got "
                              f"{self.options['encoder']!r}")
        channel_divisor(self.options["alpha"])

    def build(self):
        options = self.options
        styles = data.validation_batch(self.style_images, self.image_size, count=4)
        self.network, loss = build(options["encoder"], options["weights"], options["alpha"],
                                   options["init_decoder"], options["content_weights"],
                                   options["style_weights"], styles, self.seed)
        self.trainer = AdainTrainer(self.network, loss)
        return self.trainer

    def learning_rate(self, base):
        return learning_rate(base, self.options["lr_decay"])

    def config(self):
        return {"mode": self.mode, "alpha": self.options["alpha"],
                "backbone": f"adain-{self.options['encoder']}"}

    @classmethod
    def network_from_config(cls, config):
        from nst_tf.models.adain.network import adain_network

        return adain_network(config["backbone"].split("-", 1)[1],
                             channel_divisor=channel_divisor(config["alpha"]))

    def dataset(self, start_step, batch_slice=None):
        content = data.content_dataset(self.content_images, image_size=self.image_size,
                                       batch_size=self.batch_size, seed=self.seed,
                                       start_batch=start_step,
                                       resize_short_side=2 * self.image_size,
                                       batch_slice=batch_slice)
        return style_batches(content, self.style_images, self.image_size, self.batch_size,
                             seed=self.seed, start_batch=start_step, batch_slice=batch_slice)

    def finish(self, train_dir):
        return [save_network(self.network, train_dir)]
