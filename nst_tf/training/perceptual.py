"""The perceptual loss of feed-forward training, and the recipe base of the modes that use it.

* :func:`parse_layer_weights` / :func:`resolve_loss_layer`: ``{layer: weight}`` from a dict or
  Magenta's JSON flag, with Magenta's slim end points (``vgg_16/conv3``), Keras names or Caffe
  aliases.
* :class:`PerceptualLoss`: content + Gram style + total-variation (+ diversity) loss on a frozen
  loss network, the Gram matrices of every style computed once (``[N, C, C]`` per layer) and
  gathered by each example's style label. Reductions follow Magenta's ``learning.py``: per
  example, the content term is ``mean_{h,w,c}(φ(x) − φ(c))²`` and the style term
  ``mean_{i,j}(G(φ(x)) − G_s)²`` (``G = FᵀF/(H·W)``); each is multiplied by its layer weight,
  then averaged over the batch.
* :class:`PerceptualRecipe`: the :class:`~nst_tf.training.Recipe` base of the modes trained
  with that loss on fixed style images (``cin``, ``johnson``, ``finetune``, ``texture``,
  ``texture_stylize``): its options, the loss network, the content stream with style labels.

Example:
    >>> parse_layer_weights({"vgg_16/conv3": 1.0, "relu1_2": 0.5}, "vgg16")
    {'block3_conv3': 1.0, 'block1_conv2': 0.5}
"""

import json
import math

import tensorflow as tf

from nst_tf import data, losses
from nst_tf.device import dtype_policy
from nst_tf.errors import ConfigError
from nst_tf.training.distribute import check_mixed_precision
from nst_tf.training.recipe import Recipe
from nst_tf.training.schedules import SCHEDULES, learning_rate_schedule
from nst_tf.training.trainer import StyleTrainer

#: Magenta's defaults (image_stylization_train.py), on its VGG-16 end points.
MAGENTA_CONTENT_WEIGHTS = {"vgg_16/conv3": 1.0}
#: Magenta's style layer weights: 1e-4 on ``vgg_16/conv1`` ... ``conv4``.
MAGENTA_STYLE_WEIGHTS = {"vgg_16/conv1": 1e-4, "vgg_16/conv2": 1e-4, "vgg_16/conv3": 1e-4,
                         "vgg_16/conv4": 1e-4}

#: Magenta / slim VGG end points ``vgg_16/convK`` are the outputs of block K (last conv + ReLU).
_SLIM_BLOCK_ENDS = {"vgg16": ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3",
                              "block5_conv3"),
                    "vgg19": ("block1_conv2", "block2_conv2", "block3_conv4", "block4_conv4",
                              "block5_conv4")}


# --- Layer weights ----------------------------------------------------------------------------------

def resolve_loss_layer(backbone, name):
    """Keras layer name for ``name``: Magenta's ``vgg_16/conv3`` (= ``block3_conv3``), a Keras name
    or a Caffe alias (``conv3_3``, ``relu3_3``; see :func:`nst_tf.features.resolve_layer_name`).

    Example:
        >>> resolve_loss_layer("vgg19", "vgg_19/conv4"), resolve_loss_layer("vgg19", "relu4_2")
        ('block4_conv4', 'block4_conv2')
    """
    from nst_tf.features import resolve_layer_name

    text = str(name).strip()
    if "/" in text:
        net, _, end = text.partition("/")
        ends = _SLIM_BLOCK_ENDS.get(backbone)
        if ends is not None and net.replace("_", "") == backbone and end.startswith("conv") \
                and end[4:].isdigit() and 1 <= int(end[4:]) <= 5:
            return ends[int(end[4:]) - 1]
        raise ConfigError(f"unknown layer {text!r} for backbone {backbone}: slim end points are "
                          f"'{backbone[:3]}_{backbone[3:]}/conv1' ... '/conv5'")
    return resolve_layer_name(backbone, text)


def parse_layer_weights(weights, backbone, what="layer weights"):
    """``{keras layer name: float}`` from a dict or a JSON string (Magenta's flag format).

    Example:
        >>> parse_layer_weights('{"vgg_16/conv3": 1.0}', "vgg16")
        {'block3_conv3': 1.0}
    """
    if isinstance(weights, str):
        try:
            weights = json.loads(weights)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{what} must be a JSON object like '{{\"vgg_16/conv3\": 1.0}}', "
                              f"got {weights!r} ({exc.msg})") from None
    if isinstance(weights, (list, tuple)):
        weights = {name: 1.0 for name in weights}
    if not isinstance(weights, dict):
        raise ConfigError(f"{what} must be a dict {{layer: weight}}, got {weights!r}")
    resolved = {}
    for name, value in weights.items():
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{what}: weight of {name!r} is not a number: {value!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{what}: weight of {name!r} must be finite and >= 0, got {value}")
        layer = resolve_loss_layer(backbone, name)
        resolved[layer] = resolved.get(layer, 0.0) + value
    return resolved


def _non_negative(value, name):
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be finite and >= 0, got {value}")
    return value


# --- Loss -------------------------------------------------------------------------------------------

class PerceptualLoss:
    """Content, Gram style and total-variation loss of stylized images, style targets precomputed.

    Args:
        extractor: a float32 :class:`~nst_tf.features.FeatureExtractor` whose layers include every
            content and style layer.
        styles: list of N style images ``[H, W, 3]`` in [0, 1]; label ``i`` means ``styles[i]``.
        content_weights, style_weights: ``{layer: weight}`` (any names :func:`parse_layer_weights`
            accepts, or a JSON string).
        tv_weight: weight of :func:`nst_tf.losses.total_variation_loss` (L2; Magenta's CIN
            training uses 0).
        diversity_weight: weight λ of :func:`nst_tf.losses.diversity_loss` (Ulyanov et al. 2017:
            rewards samples that differ from each other; needs batches of >= 2).
        diversity_layer: the embedding of the diversity term: ``"pixels"`` or a layer of the
            extractor.

    Call ``loss(stylized, content, labels)`` with float32 ``[B, H, W, 3]`` images and int labels
    ``[B]`` → ``(total, {"content", "style", "tv"[, "diversity"]})``, TF ops only (usable inside
    XLA). Without content weights the content images are not run through the loss network.

    Example:
        >>> import numpy as np
        >>> from nst_tf.features import FeatureExtractor
        >>> fx = FeatureExtractor("vgg16", ["block1_conv2", "block2_conv2"], weights=None)
        >>> loss = PerceptualLoss(fx, [np.ones((32, 32, 3), "float32")],
        ...                       {"block2_conv2": 1.0}, {"block1_conv2": 1e-4})
        >>> x = tf.zeros([2, 32, 32, 3])
        >>> float(loss(x, x, tf.zeros([2], tf.int32))[1]["content"])
        0.0
    """

    def __init__(self, extractor, styles, content_weights, style_weights, tv_weight=0.0,
                 diversity_weight=0.0, diversity_layer="pixels"):
        self._set_terms(extractor, content_weights, style_weights, tv_weight, diversity_weight,
                        diversity_layer)
        if not styles:
            raise ConfigError("at least one style image is needed")
        self.num_styles = len(styles)
        self.style_grams = data.style_gram_targets(extractor, styles, list(self.style_weights))

    def _set_terms(self, extractor, content_weights, style_weights, tv_weight, diversity_weight,
                   diversity_layer):
        """Check and store everything but the style targets."""
        backbone = extractor.backbone
        self.extractor = extractor
        self.content_weights = parse_layer_weights(content_weights, backbone, "content weights")
        self.style_weights = parse_layer_weights(style_weights, backbone, "style weights")
        if not self.content_weights and not self.style_weights:
            raise ConfigError("content and style weights are both empty: nothing to train")
        missing = sorted((set(self.content_weights) | set(self.style_weights))
                         - set(extractor.layers))
        if missing:
            raise ConfigError(f"the loss network does not output layers {missing}; "
                              f"it has {extractor.layers}")
        self.tv_weight = _non_negative(tv_weight, "tv_weight")
        self.diversity_weight = _non_negative(diversity_weight, "diversity_weight")
        self.diversity_layer = None if diversity_layer in (None, "pixels") else \
            resolve_loss_layer(backbone, diversity_layer)
        if self.diversity_layer is not None and self.diversity_layer not in extractor.layers:
            raise ConfigError(f"the loss network does not output the diversity layer "
                              f"{self.diversity_layer}; it has {extractor.layers}")

    def __call__(self, stylized, content, labels):
        stylized = tf.cast(stylized, tf.float32)
        content = tf.cast(content, tf.float32)
        features = self.extractor(tf.concat([stylized, content], axis=0) if self.content_weights
                                  else stylized)
        targets = {name: tf.gather(self.style_grams[name], labels) for name in self.style_weights}
        return self.terms(stylized, features, targets)

    def terms(self, stylized, features, style_targets):
        """``(total, parts)`` from the loss network's ``features`` of ``[stylized, content, ...]``
        (stacked on the batch axis, stylized first) and per-example Gram targets
        ``{layer: [B, C, C]}``."""
        batch = tf.shape(stylized)[0]
        content_loss = tf.constant(0.0)
        for name, weight in self.content_weights.items():
            ours = features[name][:batch]
            target = tf.stop_gradient(features[name][batch:2 * batch])
            per_example = tf.reduce_mean(tf.math.squared_difference(ours, target), axis=[1, 2, 3])
            content_loss += tf.reduce_mean(weight * per_example)
        style_loss = tf.constant(0.0)
        for name, weight in self.style_weights.items():
            gram = losses.gram_matrix(features[name][:batch])
            per_example = tf.reduce_mean(
                tf.math.squared_difference(gram, tf.stop_gradient(style_targets[name])),
                axis=[1, 2])
            style_loss += tf.reduce_mean(weight * per_example)
        tv_loss = (self.tv_weight * losses.total_variation_loss(stylized)
                   if self.tv_weight else tf.constant(0.0))
        total = content_loss + style_loss + tv_loss
        parts = {"content": content_loss, "style": style_loss, "tv": tv_loss}
        if self.diversity_weight:
            embedding = (stylized if self.diversity_layer is None
                         else features[self.diversity_layer][:batch])
            parts["diversity"] = self.diversity_weight * losses.diversity_loss(embedding)
            total += parts["diversity"]
        return total, parts


# --- Recipe base ------------------------------------------------------------------------------------

class PerceptualRecipe(Recipe):
    """Base of the modes trained with a :class:`PerceptualLoss` on fixed style images.

    Options (defaults are Magenta's; subclasses change what differs):

    * ``style_size``: resize style images so their shorter side is this (None: native size).
    * ``content_weights``, ``style_weights``: ``{layer: weight}`` dicts or JSON strings.
    * ``tv_weight``: weight of :func:`nst_tf.losses.total_variation_loss`.
    * ``backbone``, ``pooling``, ``preprocessing``, ``weights``: the loss network
      (:class:`~nst_tf.features.FeatureExtractor`; ``weights`` None for random, or a ``.h5``).
    * ``mixed_precision``: None, ``"mixed_float16"`` or ``"mixed_bfloat16"`` for the trained
      network; the loss network and Gram matrices stay float32.
    * ``diversity_weight``, ``diversity_layer``: the 2017 diversity term (``"pixels"`` or a
      loss-network layer).
    * ``lr_schedule``: ``"constant"`` or ``"ulyanov"``
      (:class:`~nst_tf.training.schedules.UlyanovSchedule`).

    Subclasses implement :meth:`~nst_tf.training.Recipe.build_network`; with a labels-input (conditional) network each
    example gets a style label from ``(seed, batch index)``.
    """

    options = {"style_size": None, "content_weights": MAGENTA_CONTENT_WEIGHTS,
               "style_weights": MAGENTA_STYLE_WEIGHTS, "tv_weight": 0.0, "backbone": "vgg16",
               "pooling": "avg", "preprocessing": "magenta", "weights": "imagenet",
               "mixed_precision": None, "diversity_weight": 0.0, "diversity_layer": "pixels",
               "lr_schedule": "constant"}
    #: True for modes that train exactly one style image.
    one_style = False

    def check(self):
        self.check_loss_options()
        self.styles = data.style_images(self.style_images,
                                        style_size=self.options.get("style_size"))
        self.num_styles = len(self.styles)
        if self.one_style and self.num_styles != 1:
            raise ConfigError(f"mode {self.mode!r} trains one style, got {self.num_styles} style "
                              "images; use --mode cin for several")

    def check_loss_options(self):
        """Check the precision, the schedule and the loss options; parse the layer weights."""
        options = self.options
        check_mixed_precision(options.get("mixed_precision"))
        if options["lr_schedule"] not in SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, got "
                              f"{options['lr_schedule']!r}")
        if options.get("diversity_weight") and self.batch_size < 2:
            raise ConfigError(f"the diversity term compares the samples of a batch: batch_size "
                              f"must be >= 2, got {self.batch_size}")
        backbone = options["backbone"]
        self.content_weights = parse_layer_weights(options["content_weights"], backbone,
                                                   "content weights")
        self.style_weights = parse_layer_weights(options["style_weights"], backbone,
                                                 "style weights")

    def loss_layers(self):
        """The loss network's layers: content, style, then the diversity layer."""
        layer = self.options.get("diversity_layer")
        extra = [] if layer in (None, "pixels") else \
            [resolve_loss_layer(self.options["backbone"], layer)]
        return list(dict.fromkeys([*self.content_weights, *self.style_weights, *extra]))

    def loss_network(self):
        """The float32 :class:`~nst_tf.features.FeatureExtractor` of the loss."""
        from nst_tf.features import FeatureExtractor

        options = self.options
        with dtype_policy("float32"):
            return FeatureExtractor(options["backbone"], self.loss_layers(),
                                    weights=options["weights"], pooling=options["pooling"],
                                    preprocessing=options["preprocessing"], seed=self.seed)

    def build(self):
        options = self.options
        loss = PerceptualLoss(self.loss_network(), self.styles, self.content_weights,
                              self.style_weights, options["tv_weight"],
                              options["diversity_weight"], options["diversity_layer"])
        with dtype_policy(options["mixed_precision"]):
            self.network, self.label_offset = type(self).build_network(self.num_styles,
                                                                       **options)
        self.trainer = StyleTrainer(self.network, loss, label_offset=self.label_offset)
        return self.trainer

    def learning_rate(self, base):
        return learning_rate_schedule(self.options["lr_schedule"], base)

    def config(self):
        return {"mode": self.mode, "num_styles": self.num_styles,
                "label_offset": self.label_offset, "alpha": self.options.get("alpha"),
                "backbone": self.options["backbone"]}

    def dataset(self, start_step):
        dataset = data.content_dataset(self.content_images, image_size=self.image_size,
                                       batch_size=self.batch_size, seed=self.seed,
                                       start_batch=start_step)
        if self.trainer.conditional:
            dataset = data.with_style_labels(dataset, self.num_styles, seed=self.seed,
                                             start_batch=start_step)
        return dataset
