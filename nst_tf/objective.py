"""The Gatys style-transfer objective: content + style + total variation, targets computed once.

``StyleObjective(extractor, content, styles)(image)`` returns ``(total, parts)`` with

    parts["content"] = content_weight · Σ_l a_l · mean((F_l(x) − F_l(content))²)
    parts["style"]   = style_weight   · Σ_i β_i Σ_l b_l · L_style(F_l(x), stats_l(style_i))
    parts["tv"]      = tv_weight      · total_variation_loss(x, tv_kind)
    total            = parts["content"] + parts["style"] + parts["tv"]

The parts are already weighted, so they add up to the total. Per-layer weights ``a_l``, ``b_l``
and style blend weights ``β_i`` are normalized to sum to 1 (see :class:`StyleObjective`), so
adding a layer or a style image does not change the scale of the loss; ``content_weight``,
``style_weight`` and ``tv_weight`` alone set the balance.

Default weights (VGG19, ImageNet weights, default layers, images in [0, 1])
----------------------------------------------------------------------------
They are jcjohnson/neural-style's defaults (content 5, style 100, TV 1e-3 on the same Caffe
VGG19 weights and layers) rewritten for this module's normalizations and content weight 1:

* Content: both use the mean squared error at relu4_2 → ``DEFAULT_CONTENT_WEIGHT = 1``.
* Style: neural-style's Gram is ``FᵀF/(C·H·W)`` = ours / C, its layer losses are summed,
  so its coefficient on our Gram loss at layer l is ``100 / C_l² / 5`` (÷5: content weight 5
  → 1). ImageNet Gram entries are largest at relu4_1 (mean ≈ 1e5, vs ≈ 3e2 at relu1_1 and
  1e3–1e4 elsewhere), so that layer dominates the style loss: matching its coefficient
  ``100/512²/5 = 7.6e-5 = style_weight · b_l`` with ``b_l = 1/5`` gives 3.8e-4, rounded to
  ``DEFAULT_STYLE_WEIGHT = 5e-4`` (our equal layer weights give relu1_1–3_1 less weight than
  neural-style's 1/C² does; the slightly larger weight compensates a little).
* TV: neural-style's TV is ``1e-3 · ½ Σ (dx² + dy²)`` on 0–255 pixels, summed over pixels;
  ours is a mean on [0, 1] pixels. The two agree at 512 px (neural-style's default size) for
  ``1e-3 · ½ · 255² · 3 · 512² / 5 ≈ 5e6`` → ``DEFAULT_TV_WEIGHT = 5e6``. Our TV does not grow
  with the image size, so the same weight smooths small and large images alike.
* Other style losses live on other scales: Gram losses grow like (activation)⁴, mean-std and
  sliced-Wasserstein like (activation)², Gaussian W2 like C·(activation)². With the ImageNet
  activation scales above this gives :data:`DEFAULT_STYLE_WEIGHTS` (same balance of content and
  style at the start of the optimization, to a factor of a few).

Example:
    >>> import numpy as np
    >>> from nst_tf.features import FeatureExtractor
    >>> from nst_tf.objective import StyleObjective
    >>> ex = FeatureExtractor("vgg19", ["conv1_1", "conv2_1"], weights=None)
    >>> content = np.random.default_rng(0).random((1, 32, 32, 3), np.float32)
    >>> objective = StyleObjective(ex, content, [content[:, ::-1]], content_layers=["conv2_1"],
    ...                            style_layers=["conv1_1", "conv2_1"])
    >>> total, parts = objective(content)
    >>> sorted(parts)
    ['content', 'style', 'tv']
"""

import math
import os

import numpy as np

from nst_tf import images as _images
from nst_tf.errors import ConfigError, ImageError, LayerError, StyleWeightsError

__all__ = ["StyleObjective", "DEFAULT_CONTENT_WEIGHT", "DEFAULT_STYLE_WEIGHT",
           "DEFAULT_STYLE_WEIGHTS", "DEFAULT_TV_WEIGHT", "DEFAULT_TV_KIND",
           "default_style_weight", "normalize_layer_weights", "normalize_blend_weights"]

#: Weight of the content loss.
DEFAULT_CONTENT_WEIGHT = 1.0
#: Weight of the Gram style loss (see the module docstring for the derivation).
DEFAULT_STYLE_WEIGHT = 5e-4
#: Default style weight per style loss (``style_weight=None`` picks the one of ``style_loss``).
DEFAULT_STYLE_WEIGHTS = {
    "gram": DEFAULT_STYLE_WEIGHT,
    "mean_std": 50.0,
    "sliced_wasserstein": 50.0,
    "gaussian_w2": 0.1,
}
#: Weight of the total-variation loss.
DEFAULT_TV_WEIGHT = 5e6
#: Kind of total variation: "l2" (squared differences) or "l1".
DEFAULT_TV_KIND = "l2"


def default_style_weight(style_loss="gram"):
    """The default ``style_weight`` for a style loss name (Gram's for custom losses)."""
    name = style_loss if isinstance(style_loss, str) else getattr(style_loss, "name", "")
    return DEFAULT_STYLE_WEIGHTS.get(name, DEFAULT_STYLE_WEIGHT)


def _finite_nonnegative(value, what, error=ConfigError):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise error(f"{what} must be a number, got {value!r}") from None
    if math.isnan(number) or math.isinf(number) or number < 0:
        raise error(f"{what} must be finite and >= 0, got {value!r}")
    return number


def normalize_layer_weights(layers, resolve, what):
    """``[names]`` (equal weights) or ``{name: weight}`` → ``{canonical name: weight / Σ}``."""
    if isinstance(layers, str):
        layers = [layers]
    if isinstance(layers, dict):
        items = list(layers.items())
    else:
        items = [(name, 1.0) for name in layers]
    if not items:
        raise LayerError(f"{what} is empty; give at least one layer")
    weights = {}
    for name, weight in items:
        canonical = resolve(name)
        weights[canonical] = weights.get(canonical, 0.0) + _finite_nonnegative(
            weight, f"weight of {what} {name!r}")
    total = sum(weights.values())
    if total <= 0:
        raise ConfigError(f"the weights of {what} are all zero: {dict(items)}")
    return {name: w / total for name, w in weights.items()}


def normalize_blend_weights(weights, count):
    """Style blend weights → a float64 array summing to 1; None means equal weights.

    Raises:
        StyleWeightsError: wrong count, NaN / inf / negative values, or all zero.
    """
    if count < 1:
        raise StyleWeightsError("style blend weights need at least one style image")
    if weights is None:
        return np.full(count, 1.0 / count)
    if isinstance(weights, dict):
        raise StyleWeightsError(f"style blend weights must be a list of numbers, got {weights!r}")
    values = list(np.asarray(weights, dtype=object).ravel())
    if len(values) != count:
        raise StyleWeightsError(f"got {len(values)} style blend weights {list(values)} for "
                                f"{count} style image{'s' if count != 1 else ''}; give one "
                                "weight per style image")
    out = np.array([_finite_nonnegative(v, f"style blend weight {i} ({v!r})", StyleWeightsError)
                    for i, v in enumerate(values)])
    if out.sum() <= 0:
        raise StyleWeightsError(f"style blend weights are all zero: {list(values)}")
    return out / out.sum()


def _as_batch(image, what):
    """A path or array → float32 ``[1, H, W, 3]``."""
    if isinstance(image, (str, os.PathLike)):
        array = _images.load_image(image)
    else:
        if hasattr(image, "numpy"):
            image = image.numpy()
        array = _images.as_float_image(image, what=what)
    if array.ndim == 3:
        array = array[None]
    if array.shape[0] != 1:
        raise ImageError(f"{what} must be one image, got a batch of shape {array.shape}")
    return np.ascontiguousarray(array, np.float32)


def _style_list(style_images):
    """One image or a list → a list of images; paths may be files, folders, globs or
    comma-separated lists of them (:func:`nst_tf.images.image_files`)."""
    if style_images is None:
        return []
    if isinstance(style_images, (str, os.PathLike)):
        style_images = [style_images]
    elif hasattr(style_images, "ndim") and style_images.ndim == 3:
        return [style_images]
    elif hasattr(style_images, "ndim") and style_images.ndim == 4:
        return [style_images[i] for i in range(style_images.shape[0])]
    styles = []
    for style in style_images:
        if isinstance(style, (str, os.PathLike)):
            styles.extend(_images.image_files(style, what="style image"))
        else:
            styles.append(style)
    return styles


class StyleObjective:
    """Content + style + TV loss of an image, with all targets computed once in ``__init__``.

    Args:
        extractor: a :class:`nst_tf.features.FeatureExtractor` whose layers include every
            content and style layer used here.
        content_image: ``[H, W, 3]`` / ``[1, H, W, 3]`` float in [0, 1], a path, or None
            (style only). The optimized image must have the same size.
        style_images: one image or a list (arrays or paths, any sizes); may be empty (content
            only).
        style_blend_weights: one weight β_i per style image, normalized to sum to 1 (None:
            equal). The style loss is ``Σ β_i · L_style(image, style_i)``. For the Gram loss this
            equals, up to a constant, the loss against the β-blended Gram target.
        content_layers, style_layers: a list of names (equal weights) or ``{name: weight}``;
            weights are normalized to sum to 1. None: ``default_layers(extractor.backbone)``.
        content_weight, style_weight, tv_weight: the balance; ``style_weight=None`` uses
            ``DEFAULT_STYLE_WEIGHTS[style_loss]``.
        tv_kind: "l2" or "l1" (see :func:`nst_tf.losses.total_variation_loss`).
        style_loss: a name in :data:`nst_tf.losses.STYLE_LOSSES` or a ``StyleLoss`` instance.
        extra_terms: ``{name: f(image) -> scalar}``, already weighted, added to the total and
            reported as parts (a hook for terms the image optimization needs beyond content,
            style and TV, e.g. the temporal loss of :mod:`nst_tf.video`). TF ops only.

    Raises:
        StyleWeightsError: bad blend weights.
        LayerError: a layer the extractor does not compute.
        ConfigError: bad weights or options.
        ImageError: bad or too small images.
    """

    def __init__(self, extractor, content_image, style_images, *, style_blend_weights=None,
                 content_layers=None, style_layers=None,
                 content_weight=DEFAULT_CONTENT_WEIGHT, style_weight=None,
                 tv_weight=DEFAULT_TV_WEIGHT, tv_kind=DEFAULT_TV_KIND, style_loss="gram",
                 extra_terms=None):
        import tensorflow as tf

        from nst_tf import features as _features
        from nst_tf import losses

        self.extractor = extractor
        self.style_loss = losses.get_style_loss(style_loss)
        if tv_kind not in ("l1", "l2"):
            raise ConfigError(f"tv_kind must be 'l1' or 'l2', got {tv_kind!r}")
        self.tv_kind = tv_kind
        if style_weight is None:
            style_weight = default_style_weight(self.style_loss)
        self.content_weight = _finite_nonnegative(content_weight, "content_weight")
        self.style_weight = _finite_nonnegative(style_weight, "style_weight")
        self.tv_weight = _finite_nonnegative(tv_weight, "tv_weight")
        self.extra_terms = dict(extra_terms or {})
        clash = sorted(set(self.extra_terms) & {"content", "style", "tv"})
        if clash:
            raise ConfigError(f"extra_terms cannot be named {clash}: those parts exist already")

        styles = _style_list(style_images)
        if content_image is None and not styles:
            raise ConfigError("StyleObjective needs a content image, a style image, or both")
        self.style_blend_weights = (normalize_blend_weights(style_blend_weights, len(styles))
                                    if styles else np.zeros(0))

        available = list(extractor.layers)

        def resolve(name):
            canonical = extractor.resolve_layer(name)
            if canonical not in available:
                raise LayerError(f"layer {name!r} ({canonical}) is not computed by the feature "
                                 f"extractor, which has {available}; build it with "
                                 f"FeatureExtractor(..., layers=[... {canonical!r}])")
            return canonical

        default_content, default_style = _features.default_layers(extractor.backbone)
        self.content_layers = {}
        if content_image is not None:
            self.content_layers = normalize_layer_weights(
                default_content if content_layers is None else content_layers, resolve,
                "content_layers")
        self.style_layers = {}
        if styles:
            self.style_layers = normalize_layer_weights(
                default_style if style_layers is None else style_layers, resolve,
                "style_layers")

        minimum = extractor.min_input_size
        self.content_image = None
        self.content_targets = {}
        if content_image is not None:
            self.content_image = _as_batch(content_image, "content image")
            _images.check_min_size(self.content_image, minimum, what="content image")
            feats = extractor(self.content_image)
            self.content_targets = {l: tf.constant(feats[l]) for l in self.content_layers}

        self.style_images = []
        self.style_targets = []  # one {layer: stats} per style image
        for i, style in enumerate(styles):
            array = _as_batch(style, f"style image {i}")
            _images.check_min_size(array, minimum, what=f"style image {i}")
            self.style_images.append(array)
            feats = extractor(array)
            self.style_targets.append({l: tf.nest.map_structure(tf.constant,
                                                                self.style_loss.target(feats[l]))
                                       for l in self.style_layers})

    def content_part(self, feats):
        """Unweighted content loss ``Σ_l a_l · mean((F_l − P_l)²)`` from extracted features."""
        import tensorflow as tf

        from nst_tf import losses

        total = tf.constant(0.0)
        for layer, weight in self.content_layers.items():
            total += weight * losses.content_loss(feats[layer], self.content_targets[layer])
        return total

    def style_part(self, feats):
        """Unweighted style loss ``Σ_i β_i Σ_l b_l · L_style`` from extracted features."""
        import tensorflow as tf

        total = tf.constant(0.0)
        for layer, weight in self.style_layers.items():
            # The image's statistics are computed once per layer, whatever the style count.
            total += weight * self.style_loss.blended_loss(
                feats[layer], [targets[layer] for targets in self.style_targets],
                self.style_blend_weights)
        return total

    def __call__(self, image):
        """``image [1, H, W, 3]`` float32 → ``(total, {"content", "style", "tv"})``, TF ops only."""
        import tensorflow as tf

        from nst_tf import losses

        image = tf.convert_to_tensor(image, tf.float32)
        if self.content_image is not None and image.shape.rank == 4:
            expected = self.content_image.shape[1:3]
            got = tuple(image.shape[1:3])
            if None not in got and got != tuple(expected):
                raise ImageError(f"the optimized image is {got[1]}x{got[0]} but the content "
                                 f"image is {expected[1]}x{expected[0]}; they must match")
        feats = self.extractor(image)
        parts = {
            "content": self.content_weight * self.content_part(feats),
            "style": self.style_weight * self.style_part(feats),
            "tv": self.tv_weight * losses.total_variation_loss(image, self.tv_kind),
        }
        total = parts["content"] + parts["style"] + parts["tv"]
        for name, term in self.extra_terms.items():
            parts[name] = term(image)
            total += parts[name]
        return total, parts

    def __repr__(self):
        return (f"StyleObjective(content_layers={self.content_layers}, "
                f"style_layers={self.style_layers}, styles={len(self.style_images)}, "
                f"style_loss={self.style_loss.name!r}, content_weight={self.content_weight}, "
                f"style_weight={self.style_weight}, tv_weight={self.tv_weight})")

