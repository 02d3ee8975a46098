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

import collections
import math
import os
import time

import numpy as np

from nst_tf import images as _images
from nst_tf.errors import ConfigError, ImageError, LayerError, StyleWeightsError

__all__ = ["StyleObjective", "Term", "DEFAULT_CONTENT_WEIGHT", "DEFAULT_STYLE_WEIGHT",
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


def _same_specs(a, b):
    """Same structure, shapes and dtypes (the compiled step would not be traced again)."""
    import tensorflow as tf

    try:
        tf.nest.assert_same_structure(a, b)
    except (ValueError, TypeError):
        return False
    return all(x.shape == y.shape and x.dtype == y.dtype
               for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)))


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


class Term:
    """An extra loss term whose data are inputs of the compiled step, not constants inside it.

    ``Term(fn, **inputs)`` is the term ``fn(image, **inputs) -> scalar`` (already weighted). A
    :class:`StyleObjective` passes ``inputs`` to its compiled step as arguments, so a term with
    new data of the same shapes (the next video frame's warped output) runs in the same compiled
    step: :meth:`StyleObjective.retarget` swaps the inputs, nothing is traced again. Use a
    module-level ``fn`` (the step keeps the first term's ``fn``; a retarget with another ``fn``
    is refused).

    Example:
        >>> import numpy as np
        >>> import tensorflow as tf
        >>> def weighted_mse(image, target, weight):
        ...     return weight * tf.reduce_mean(tf.square(image - target))
        >>> term = Term(weighted_mse, target=np.zeros([1, 4, 4, 3], np.float32), weight=2.0)
        >>> float(term(tf.ones([1, 4, 4, 3])))
        2.0
    """

    def __init__(self, fn, **inputs):
        import tensorflow as tf

        if not callable(fn):
            raise ConfigError(f"Term needs a function fn(image, **inputs), got {fn!r}")
        self.fn = fn
        self.inputs = {name: tf.convert_to_tensor(value, dtype_hint=tf.float32)
                       for name, value in inputs.items()}

    def __call__(self, image, inputs=None):
        return self.fn(image, **(self.inputs if inputs is None else inputs))

    def __repr__(self):
        return f"Term({getattr(self.fn, '__name__', self.fn)}, inputs={sorted(self.inputs)})"


class StyleObjective:
    """Content + style + TV loss of an image, with all targets computed once.

    The targets (content features, style statistics, the inputs of :class:`Term` extra terms)
    form one nest, :attr:`targets`, and :meth:`loss` takes them as an argument: a compiled step
    that passes them in (:func:`nst_tf.optimize.make_step`) serves every content image of the
    same size, every video frame and every tile, without being traced again. ``objective(image)``
    is ``objective.loss(image, objective.targets)``. Content and style targets are computed on
    first use (a tiled objective, :class:`nst_tf.tiling.TiledObjective`, computes its own by
    tiles and never runs the backbone on the whole image).

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
        extra_terms: ``{name: term}``, already weighted, added to the total and reported as
            parts (a hook for terms the image optimization needs beyond content, style and TV,
            e.g. the temporal loss of :mod:`nst_tf.video`): a :class:`Term` (its data are step
            inputs) or any ``f(image) -> scalar`` (its data are constants of the step). TF ops
            only.

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
        for name, term in self.extra_terms.items():
            if not callable(term):
                raise ConfigError(f"extra term {name!r} must be a Term or a function of the "
                                  f"image, got {term!r}")

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
        if content_image is not None:
            self.content_image = _as_batch(content_image, "content image")
            _images.check_min_size(self.content_image, minimum, what="content image")
        self.style_images = []
        for i, style in enumerate(styles):
            array = _as_batch(style, f"style image {i}")
            _images.check_min_size(array, minimum, what=f"style image {i}")
            self.style_images.append(array)
        self._content_targets = None  # computed on first use
        self._style_targets = None
        self._content_features = None
        #: Seconds spent computing targets (``"content_targets"``, ``"style_targets"``).
        self.seconds = collections.Counter()

    # --- targets ---------------------------------------------------------------------------

    @property
    def content_targets(self):
        """``{layer: features of the content image}`` (computed on first use, eagerly even
        when first used while a ``tf.function`` traces)."""
        if self._content_targets is None:
            self._content_targets = self._eager_targets(
                "content_targets", lambda: {} if self.content_image is None
                else self.content_features(self.content_image))
        return self._content_targets

    @content_targets.setter
    def content_targets(self, value):
        self._content_targets = dict(value)

    @property
    def style_targets(self):
        """One ``{layer: statistics}`` per style image (computed on first use, eagerly even
        when first used while a ``tf.function`` traces)."""
        if self._style_targets is None:
            self._style_targets = self._eager_targets(
                "style_targets", lambda: [self._style_statistics(array)
                                          for array in self.style_images])
        return self._style_targets

    @style_targets.setter
    def style_targets(self, value):
        self._style_targets = list(value)

    def _eager_targets(self, name, compute):
        """``compute()`` outside any ``tf.function`` being traced (so the targets are constants,
        not tensors of that graph), its seconds added to ``self.seconds[name]``."""
        import tensorflow as tf

        start = time.perf_counter()
        with tf.init_scope():
            targets = compute()
        self.seconds[name] += time.perf_counter() - start
        return targets

    def _style_statistics(self, array):
        import tensorflow as tf

        feats = self.extractor(array)
        return {l: tf.nest.map_structure(tf.constant, self.style_loss.target(feats[l]))
                for l in self.style_layers}

    def content_features(self, image):
        """``{content layer: features}`` of an image ``[1, H, W, 3]`` (one compiled forward pass
        per image size)."""
        import tensorflow as tf

        if self._content_features is None:
            layers = list(self.content_layers)
            self._content_features = tf.function(
                lambda x: {l: f for l, f in self.extractor(x).items() if l in layers})
        return self._content_features(tf.convert_to_tensor(image, tf.float32))

    @property
    def targets(self):
        """Everything the loss compares with, as one nest of tensors (the compiled step's input):
        ``{"content": {layer: P}, "style": [{layer: stats}, ...], "terms": {name: inputs}}``."""
        return {"content": self.content_targets, "style": self.style_targets,
                "terms": self.term_inputs()}

    def term_inputs(self):
        """``{name: inputs}`` of the :class:`Term` extra terms."""
        return {name: term.inputs for name, term in self.extra_terms.items()
                if isinstance(term, Term)}

    def retarget(self, content_image=None, extra_terms=None):
        """Point the objective at a new content image and/or new :class:`Term` data, keeping
        everything else (styles, weights, layers) and the shapes, so compiled steps are reused.

        Args:
            content_image: the new content image, the same size as the old one (None: keep).
            extra_terms: ``{name: Term}`` with the same names and functions as the objective's
                (None: keep).

        Returns:
            ``True``; ``False`` (and nothing changed) when the new content or terms do not fit
            (a different size, other term names, a term that is not a :class:`Term` or has
            another function or input shapes). The caller then builds a new objective.
        """
        if content_image is not None:
            array = _as_batch(content_image, "content image")
            if self.content_image is None or array.shape != self.content_image.shape:
                return False
        if extra_terms is not None:
            extra_terms = dict(extra_terms)
            if set(extra_terms) != set(self.extra_terms):
                return False
            for name, term in extra_terms.items():
                old = self.extra_terms[name]
                if not (isinstance(term, Term) and isinstance(old, Term) and term.fn is old.fn
                        and _same_specs(term.inputs, old.inputs)):
                    return False
            self.extra_terms = extra_terms
        if content_image is not None:
            self.content_image = array
            self._content_targets = None  # recomputed on first use
        return True

    # --- the loss ---------------------------------------------------------------------------

    def content_part(self, feats, targets=None):
        """Unweighted content loss ``Σ_l a_l · mean((F_l − P_l)²)`` from extracted features."""
        import tensorflow as tf

        from nst_tf import losses

        targets = self.content_targets if targets is None else targets
        total = tf.constant(0.0)
        for layer, weight in self.content_layers.items():
            total += weight * losses.content_loss(feats[layer], targets[layer])
        return total

    def style_part(self, feats, targets=None):
        """Unweighted style loss ``Σ_i β_i Σ_l b_l · L_style`` from extracted features."""
        # The image's statistics are computed once per layer, whatever the style count.
        prepared = {layer: self.style_loss.prepare(feats[layer]) for layer in self.style_layers}
        return self.style_part_from_stats(prepared, targets)

    def style_part_from_stats(self, prepared, targets=None, dtype=None):
        """Unweighted style loss from the image's prepared statistics ``{layer: prepare(F_l)}``
        (or ``style_loss.from_moments`` of tiled sums); the blending and layer weights live here
        only, so the whole-image and the tiled objective share them."""
        import tensorflow as tf

        targets = self.style_targets if targets is None else targets
        total = None
        for layer, weight in self.style_layers.items():
            term = weight * self.style_loss.blended_compare(
                prepared[layer], [style[layer] for style in targets], self.style_blend_weights,
                dtype or tf.float32)
            total = term if total is None else total + term
        return tf.zeros([], dtype or tf.float32) if total is None else total

    def loss(self, image, targets):
        """``image [1, H, W, 3]`` float32 and :attr:`targets` → ``(total, {"content", "style",
        "tv", extra terms...})``, TF ops only."""
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
            "content": self.content_weight * self.content_part(feats, targets["content"]),
            "style": self.style_weight * tf.cast(self.style_part(feats, targets["style"]),
                                                 tf.float32),
            "tv": self.tv_weight * losses.total_variation_loss(image, self.tv_kind),
        }
        total = parts["content"] + parts["style"] + parts["tv"]
        for name, value in self.extra_parts(image, targets["terms"]).items():
            parts[name] = value
            total += value
        return total, parts

    def extra_parts(self, image, inputs):
        """``{name: value}`` of the extra terms on ``image`` (Terms read ``inputs[name]``)."""
        return {name: term(image, inputs[name]) if isinstance(term, Term) else term(image)
                for name, term in self.extra_terms.items()}

    def __call__(self, image):
        """``image [1, H, W, 3]`` float32 → ``(total, {"content", "style", "tv"})``, TF ops only."""
        return self.loss(image, self.targets)

    def __repr__(self):
        return (f"StyleObjective(content_layers={self.content_layers}, "
                f"style_layers={self.style_layers}, styles={len(self.style_images)}, "
                f"style_loss={self.style_loss.name!r}, content_weight={self.content_weight}, "
                f"style_weight={self.style_weight}, tv_weight={self.tv_weight})")

