"""Neural style transfer by image optimization (Gatys, Ecker & Bethge 2016), end to end.

:func:`transfer` loads and validates everything up front, builds one frozen feature extractor,
and optimizes the pixels of the output image (L-BFGS or Adam) against a
:class:`nst_tf.objective.StyleObjective`, optionally coarse to fine (``scales``) and with colour
preservation:

* ``preserve_color="luminance"``: post-hoc, keep the output's luminance and the content's chroma
  (YIQ), as neural-style's ``-original_colors``;
* ``preserve_color="luminance_only"``: Gatys et al. 2017, "Controlling perceptual factors":
  content and style are reduced to luminance, the style luminance is histogram-matched to the
  content's, a grey image (Y repeated 3×) is optimized, and its Y is recombined with the
  content's chroma.

Every option and its default is in :data:`DEFAULTS` (the CLI reads its defaults from there).

Example:
    >>> import nst_tf
    >>> out = nst_tf.transfer("content.jpg", ["style.jpg"], size=256, steps=100)  # doctest: +SKIP
    >>> out.shape, out.dtype                                                      # doctest: +SKIP
    ((256, 256, 3), dtype('float32'))
"""

import dataclasses
import difflib
import math
import numbers
import os

import numpy as np

from nst_tf import images, multiscale
from nst_tf.device import resolve_jit_compile
from nst_tf.errors import ConfigError, ImageError, LayerError
from nst_tf.grid import check_tile_size, parse_tile_size
from nst_tf.io import check_output_dir
from nst_tf.objective import DEFAULT_CONTENT_WEIGHT, DEFAULT_TV_WEIGHT, normalize_blend_weights
from nst_tf.optimize import (INITS, OPTIMIZERS, PRECISIONS, Progbar, SaveEvery,
                             initial_image)

#: Every option of :func:`transfer` with its default — the one place defaults are defined.
DEFAULTS = {
    "size": 512,              # longest side of the output, pixels
    "steps": 300,             # optimizer steps (per scale; or a list, one per scale)
    "optimizer": "lbfgs",     # "lbfgs" | "adam"
    "learning_rate": None,    # None: 1.0 (L-BFGS first step length) / 0.02 (Adam)
    "init": "content",        # "content" | "style" | "noise" | an image path or array
    "content_weight": DEFAULT_CONTENT_WEIGHT,
    "style_weight": None,     # None: the style loss's own default (objective.DEFAULT_STYLE_WEIGHTS)
    "tv_weight": DEFAULT_TV_WEIGHT,
    "backbone": "vgg19",      # "vgg19" | "vgg16" | "resnet50" | "inception_v3"
    "content_layers": None,   # None: the backbone's defaults; list or {name: weight}
    "style_layers": None,
    "style_loss": "gram",     # "gram" | "sliced_wasserstein" | "gaussian_w2" | "mean_std"
    "pooling": "max",         # "max" | "avg" (VGG only)
    "preserve_color": None,   # None | "luminance" | "luminance_only"
    "scales": None,           # None | number of √2 levels | list of sizes (coarse → fine)
    "style_scale": 1.0,       # style images resized to style_scale × the level size
    "seed": 0,                # noise init and random weights
    "weights": "imagenet",    # "imagenet" | "random" / None | path to a .h5
    "jit_compile": "auto",    # XLA on GPU/TPU only
    "steps_per_call": 1,      # optimizer steps per compiled call
    "precision": "float32",   # "float32" | "bfloat16" (oneDNN bf16 convolutions on x86 CPUs)
    "progress": False,        # show a progress line (optimize.Progbar)
    "callbacks": (),          # objects with on_step(step, image, loss, parts)
    "save_every": None,       # save intermediate images every N steps...
    "save_pattern": None,     # ...to this file name pattern, e.g. "out_{step:05d}.png"
    "lbfgs_memory": 10,       # L-BFGS history length (2 full-size images per pair)
    "tile_size": None,        # None | core size in px (exact tiles, nst_tf.tiling) | "auto"
    "max_memory": None,       # "auto" tiles' budget, e.g. "20GB"; None: 80 % of the RAM
    "checkpoint": None,       # .npz path: save image + optimizer state; an existing one resumes
    "checkpoint_every": None,  # ...every N steps (None: at level ends and on Ctrl-C only)
}

PRESERVE_COLOR = (None, "luminance", "luminance_only")


@dataclasses.dataclass
class TransferResult:
    """What :func:`run` returns: the image ``[H, W, 3]``, the loss per step, interruption."""

    image: np.ndarray
    losses: np.ndarray
    steps: int
    interrupted: bool
    sizes: list


# --- Validation --------------------------------------------------------------------------------

def _unknown_option(name):
    close = difflib.get_close_matches(name, DEFAULTS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown option {name!r}{hint} (valid: {', '.join(sorted(DEFAULTS))})")


def _number(options, name, minimum=0.0, strict=False):
    value = options[name]
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value < minimum or (strict and value == minimum):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _positive_int(options, name):
    value = options[name]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _layers(value, backbone, what):
    """None / a name / a list / a {name: weight} dict, with every name checked."""
    from nst_tf.features import resolve_layer_name

    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, dict):
        for name, weight in value.items():
            resolve_layer_name(backbone, name)
            if isinstance(weight, bool) or not isinstance(weight, numbers.Real) \
                    or not math.isfinite(weight) or weight < 0:
                raise ConfigError(f"{what} weight of {name!r} must be a finite number >= 0, "
                                  f"got {weight!r}")
        return dict(value)
    value = list(value)
    for name in value:
        resolve_layer_name(backbone, name)
    return value


def validate_options(options):
    """Fill in defaults and check every option; returns the complete, normalized dict.

    Raises:
        ConfigError, LayerError: the first bad option, named in the message.
    """
    from nst_tf.features import BACKBONES
    from nst_tf.losses import STYLE_LOSSES

    for name in options:
        if name not in DEFAULTS:
            raise _unknown_option(name)
    opts = dict(DEFAULTS, **options)
    opts["size"] = _positive_int(opts, "size")
    steps = opts["steps"]
    if isinstance(steps, (list, tuple)):
        opts["steps"] = [_positive_int({"steps": s}, "steps") for s in steps]
    else:
        opts["steps"] = _positive_int(opts, "steps")
    opts["steps_per_call"] = _positive_int(opts, "steps_per_call")
    opts["optimizer"] = str(opts["optimizer"]).lower()
    if opts["optimizer"] not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {opts['optimizer']!r}")
    if opts["learning_rate"] is not None:
        opts["learning_rate"] = _number(opts, "learning_rate", 0.0, strict=True)
    for name in ("content_weight", "style_weight", "tv_weight"):
        if not (name == "style_weight" and opts[name] is None):
            opts[name] = _number(opts, name)
    opts["style_scale"] = _number(opts, "style_scale", 0.0, strict=True)
    if opts["backbone"] not in BACKBONES:
        raise LayerError(f"unknown backbone {opts['backbone']!r}; valid: {', '.join(BACKBONES)}")
    opts["content_layers"] = _layers(opts["content_layers"], opts["backbone"], "content layer")
    opts["style_layers"] = _layers(opts["style_layers"], opts["backbone"], "style layer")
    if opts["style_loss"] not in STYLE_LOSSES:
        raise ConfigError(f"style_loss must be one of {sorted(STYLE_LOSSES)}, "
                          f"got {opts['style_loss']!r}")
    if opts["pooling"] not in ("max", "avg"):
        raise ConfigError(f"pooling must be 'max' or 'avg', got {opts['pooling']!r}")
    if opts["preserve_color"] in ("none", "None", "", False):
        opts["preserve_color"] = None
    if opts["preserve_color"] not in PRESERVE_COLOR:
        raise ConfigError(f"preserve_color must be one of {PRESERVE_COLOR}, "
                          f"got {opts['preserve_color']!r}")
    opts["sizes"] = multiscale.schedule(opts["size"], opts["scales"])
    multiscale.steps_per_level(opts["steps"], len(opts["sizes"]))
    if isinstance(opts["init"], str) and opts["init"] not in INITS \
            and not os.path.exists(opts["init"]):
        raise ConfigError(f"init must be one of {INITS} or an existing image path, "
                          f"got {opts['init']!r}")
    if isinstance(opts["seed"], bool) or not isinstance(opts["seed"], numbers.Integral):
        raise ConfigError(f"seed must be an integer, got {opts['seed']!r}")
    if isinstance(opts["weights"], str) and opts["weights"].lower() == "random":
        opts["weights"] = None
    resolve_jit_compile(opts["jit_compile"])
    if opts["precision"] not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {opts['precision']!r}")
    if opts["save_every"] is not None:
        opts["save_every"] = _positive_int(opts, "save_every")
        if not opts["save_pattern"]:
            raise ConfigError("save_every needs save_pattern, e.g. 'out_{step:05d}.png'")
    if opts["save_pattern"]:
        check_output_dir(opts["save_pattern"])
    opts["lbfgs_memory"] = _positive_int(opts, "lbfgs_memory")
    opts["tile_size"] = parse_tile_size(opts["tile_size"], words=("auto",))
    if opts["max_memory"] is not None:
        from nst_tf.tiling import parse_memory

        opts["max_memory"] = parse_memory(opts["max_memory"])
        if opts["tile_size"] != "auto":
            raise ConfigError(f"max_memory is the budget of tile_size='auto', but tile_size is "
                              f"{opts['tile_size']!r}; pass tile_size='auto' (--tile_size=auto) "
                              "to tile only what does not fit")
    if opts["tile_size"] is not None and opts["style_loss"] == "sliced_wasserstein":
        raise ConfigError("style_loss='sliced_wasserstein' cannot be tiled exactly (it sorts "
                          "every pixel of a layer, which is not a sum over tiles); use "
                          "tile_size=None, or 'gram', 'mean_std' or 'gaussian_w2'")
    if opts["checkpoint_every"] is not None:
        opts["checkpoint_every"] = _positive_int(opts, "checkpoint_every")
        if not opts["checkpoint"]:
            raise ConfigError("checkpoint_every needs checkpoint, the .npz file to write")
    if opts["checkpoint"]:
        opts["checkpoint"] = os.fspath(opts["checkpoint"])
        check_output_dir(opts["checkpoint"])
    return opts


#: Options that do not change the result (left out of a checkpoint's fingerprint; ``steps`` is
#: left out so that a finished run can be continued with more steps).
_NOT_FINGERPRINTED = ("progress", "callbacks", "save_every", "save_pattern", "checkpoint",
                      "checkpoint_every", "steps_per_call", "steps")


# --- Colour ----------------------------------------------------------------------------------

def _recombine_luminance(luma, content):
    """Y from the optimized grey image, I and Q from the content."""
    yiq = images.rgb_to_yiq(content)
    yiq[..., 0] = luma
    return np.clip(images.yiq_to_rgb(yiq), 0.0, 1.0).astype(np.float32)


def _postprocess(mode, content):
    """``[1, H, W, C]`` optimized image → final ``[H, W, 3]`` RGB for ``preserve_color=mode``."""

    def finish(image):
        image = np.asarray(image, np.float32)[0]
        target = content if content.shape[:2] == image.shape[:2] else images.resize(
            content, image.shape[:2])
        if mode == "luminance_only":
            return _recombine_luminance(np.clip(image[..., 0], 0.0, 1.0), target)
        if mode == "luminance":
            return images.transfer_luminance(np.clip(image, 0.0, 1.0), target)
        return np.clip(image, 0.0, 1.0)
    return finish


class _Grey:
    """Objective on a one-channel image: the channel is repeated to RGB before ``objective``."""

    def __init__(self, objective):
        self.objective = objective

    @property
    def targets(self):
        return self.objective.targets

    def loss(self, luma, targets):
        return self.objective.loss(images.grey_to_rgb(luma), targets)

    def retarget(self, content_image=None, extra_terms=None):
        return self.objective.retarget(content_image, extra_terms)

    def __call__(self, luma):
        return self.objective(images.grey_to_rgb(luma))


# --- Transfer --------------------------------------------------------------------------------

def _style_list(styles):
    if isinstance(styles, (str, os.PathLike)) or (isinstance(styles, np.ndarray)
                                                  and styles.ndim == 3):
        styles = [styles]
    styles = list(styles)
    if not styles:
        raise ImageError("at least one style image is needed")
    return styles


def feature_extractor(opts):
    """The :class:`~nst_tf.features.FeatureExtractor` that :func:`run` builds for validated
    options ``opts`` (callers running many images with the same options build it once)."""
    from nst_tf.features import FeatureExtractor, default_layers

    default_content, default_style = default_layers(opts["backbone"])
    content_layers = opts["content_layers"] or list(default_content)
    style_layers = opts["style_layers"] or list(default_style)
    return FeatureExtractor(opts["backbone"],
                            layers=list(dict.fromkeys(list(content_layers) + list(style_layers))),
                            weights=opts["weights"], pooling=opts["pooling"], seed=opts["seed"])


class TransferCache:
    """What consecutive :func:`run` calls with the same styles and options share (video frames).

    The feature extractor, each level's objective — retargeted to the new content image and
    extra-term inputs (:meth:`~nst_tf.objective.StyleObjective.retarget`) instead of rebuilt, so
    the style targets are not recomputed — and the optimizer variables with their compiled steps
    (:class:`~nst_tf.optimize.StepCache`). A call with other styles or options empties it.

    Attributes:
        steps: the :class:`~nst_tf.optimize.StepCache` (its ``tracing_counts()`` show reuse).
        built: how many objectives were built (not retargeted) so far.
    """

    def __init__(self):
        from nst_tf.optimize import StepCache

        self.extractor = None
        self.key = None
        self.objectives = {}
        self.steps = StepCache()
        self.built = 0

    def check(self, key):
        """Forget everything when ``key`` (styles + options) changed."""
        from nst_tf.optimize import StepCache

        if key != self.key:
            self.key, self.objectives, self.steps = key, {}, StepCache()
            self.extractor = None


def _resized(image, shape):
    """``image`` at ``shape`` (itself when it has that size already: no copy of a print-size
    image)."""
    if tuple(image.shape[:2]) == tuple(shape):
        return image
    return images.resize(image, tuple(shape))


def _fingerprint(content_image, style_images, blend, opts):
    """What identifies a run's result: images, blend weights and the options that matter."""
    from nst_tf.resume import fingerprint

    arrays = [content_image, *style_images]
    options = {k: v for k, v in opts.items() if k not in _NOT_FINGERPRINTED}
    if isinstance(options.get("init"), np.ndarray):
        arrays.append(options.pop("init"))
    options["blend"] = None if blend is None else [float(b) for b in blend]
    return fingerprint(arrays, options)


def _level_tile_sizes(opts, extractor, content_layers, style_layers, shapes, channels):
    """The core size of each level's tiles, or None where a level runs whole (see
    ``tile_size``). Decided before the first step, so a tile size off the stride or a budget too
    small fails before any work, not after the coarse levels have run."""
    from nst_tf import tiling

    tile = opts["tile_size"]
    if tile is None:
        return [None] * len(shapes)
    def names(layers):  # a name, a list of names or {name: weight}, aliases resolved
        return [extractor.resolve_layer(n) for n in ([layers] if isinstance(layers, str)
                                                      else layers)]

    content = list(dict.fromkeys(names(content_layers)))
    layers = list(dict.fromkeys(content + names(style_layers)))
    if tile != "auto":
        check_tile_size(tile, tiling.halo_for(extractor, layers)[1])
        return [tile if max(shape) > tile else None for shape in shapes]  # else one tile
    budget = opts["max_memory"] or tiling.default_max_memory()
    return [tiling.plan_tile_size(extractor, layers, content, shape[0], shape[1], budget,
                                  channels=channels, optimizer=opts["optimizer"],
                                  memory=opts["lbfgs_memory"]) for shape in shapes]


def run(content, styles, style_weights=None, *, extractor=None, extra_terms=None, cache=None,
        **options):
    """Like :func:`transfer`, but returns a :class:`TransferResult` (losses, interruption).

    Hooks for callers that drive many optimizations (video frames):

    * ``extractor``: a :class:`~nst_tf.features.FeatureExtractor` from :func:`feature_extractor`
      with the same options, reused instead of building the backbone again;
    * ``extra_terms``: ``f((height, width)) -> {name: term}`` called once per scale; the terms
      are added to each scale's :class:`~nst_tf.objective.StyleObjective` (see its
      ``extra_terms``; :class:`~nst_tf.objective.Term` terms keep compiled steps reusable);
    * ``cache``: a :class:`TransferCache` shared by the calls: same-size contents reuse the
      objectives, the optimizer and the compiled steps (no new trace, no style targets).
    """
    from nst_tf.features import default_layers
    from nst_tf.objective import StyleObjective
    from nst_tf.resume import RunCheckpoint
    from nst_tf.tiling import TiledObjective

    opts = validate_options(options)
    styles = _style_list(styles)
    blend = None if style_weights is None else normalize_blend_weights(style_weights,
                                                                       len(styles))
    content_image = images.load_or_validate(content, what="content image")
    if content_image.ndim == 4:
        if content_image.shape[0] != 1:
            raise ImageError(f"content must be one image, got shape {content_image.shape}")
        content_image = content_image[0]
    style_images = [images.load_or_validate(s, what=f"style image {i}")
                    for i, s in enumerate(styles)]
    style_images = [s[0] if s.ndim == 4 else s for s in style_images]
    mode = opts["preserve_color"]
    sizes = opts["sizes"]

    # The output size: the content resized so that its longest side is the last scale.
    full_shape = multiscale.fit_size(content_image.shape, sizes[-1])
    content_full = _resized(content_image, full_shape)
    if mode == "luminance_only":
        content_luma = images.luminance(content_full)
        opt_content = images.grey_to_rgb(content_luma[..., None])
        opt_styles = [images.grey_to_rgb(images.match_histograms(images.luminance(s),
                                                                 content_luma)[..., None])
                      for s in style_images]
    else:
        opt_content, opt_styles = content_full, style_images

    default_content, default_style = default_layers(opts["backbone"])
    content_layers = opts["content_layers"] or list(default_content)
    style_layers = opts["style_layers"] or list(default_style)
    if cache is not None:
        shared = {k: v for k, v in opts.items()
                  if k not in _NOT_FINGERPRINTED and k != "init"}
        cache.check(_fingerprint(np.zeros(0), opt_styles, blend, shared))
        extractor = extractor or cache.extractor
    if extractor is None:
        extractor = feature_extractor(opts)
    if cache is not None:
        cache.extractor = extractor
    level_content, level_styles = [], []
    for size in sizes:  # validate every level before the first step
        shape = multiscale.fit_size(content_full.shape, size)
        c = _resized(opt_content, shape)
        images.check_min_size(c, extractor.min_input_size,
                              what=f"content image at size {size} ({extractor.backbone})")
        s_list = []
        for i, s in enumerate(opt_styles):
            s_shape = multiscale.fit_size(s.shape, max(1, round(opts["style_scale"] * size)))
            s_list.append(_resized(s, s_shape))
            images.check_min_size(s_list[-1], extractor.min_input_size,
                                  what=f"style image {i} at size {max(s_shape)}")
        level_content.append(c)
        level_styles.append(s_list)
    level_tiles = _level_tile_sizes(opts, extractor, content_layers, style_layers,
                                    [c.shape[:2] for c in level_content],
                                    1 if mode == "luminance_only" else 3)

    def make_level(level, size):
        shape = level_content[level].shape[:2]
        terms = extra_terms(shape) if extra_terms else None
        key = (level, tuple(shape))
        if cache is not None and key in cache.objectives:
            reused = cache.objectives[key]
            if reused.retarget(level_content[level][None], terms):
                return reused, shape
        objective = StyleObjective(
            extractor, level_content[level][None], [s[None] for s in level_styles[level]],
            style_blend_weights=blend, content_layers=content_layers, style_layers=style_layers,
            content_weight=opts["content_weight"], style_weight=opts["style_weight"],
            tv_weight=opts["tv_weight"], style_loss=opts["style_loss"], extra_terms=terms)
        grey = mode == "luminance_only"
        tile = level_tiles[level]
        if tile is not None:
            if opts["progress"]:
                print(f"{shape[1]}x{shape[0]}: exact tiles of {tile} px")
            objective = TiledObjective(objective, tile,
                                       transform=images.grey_to_rgb if grey else None,
                                       jit_compile=opts["jit_compile"])
        elif grey:
            objective = _Grey(objective)
        if cache is not None:
            cache.objectives[key] = objective
            cache.built += 1
        return objective, shape

    def first_init(shape):
        # initial_image resizes paths / arrays / the style to the first level's content size.
        start = initial_image(opts["init"], level_content[0], level_styles[0][0], opts["seed"])
        return images.luminance(start)[..., None] if mode == "luminance_only" else start

    finish = _postprocess(mode, content_full)

    def level_callbacks(level, steps, offset):
        callbacks = list(opts["callbacks"] or ())
        if opts["progress"]:
            if len(sizes) > 1:
                print(f"scale {level + 1}/{len(sizes)}: {sizes[level]} px, {steps} steps")
            callbacks.append(Progbar())
        if opts["save_every"]:
            callbacks.append(SaveEvery(opts["save_every"], opts["save_pattern"],
                                       postprocess=finish, offset=offset))
        return callbacks

    checkpoint = None
    if opts["checkpoint"]:
        checkpoint = RunCheckpoint(opts["checkpoint"], opts["checkpoint_every"],
                                   _fingerprint(content_image, style_images, blend, opts))
        if opts["progress"] and checkpoint.saved is not None:
            print(f"resuming from {opts['checkpoint']}: scale {checkpoint.start_level + 1}, "
                  f"step {checkpoint.saved['steps']}")
    results = multiscale.run(
        sizes, make_level, first_init, steps=opts["steps"], level_callbacks=level_callbacks,
        checkpoint=checkpoint, optimizer=opts["optimizer"], learning_rate=opts["learning_rate"],
        jit_compile=opts["jit_compile"], steps_per_call=opts["steps_per_call"],
        precision=opts["precision"], memory=opts["lbfgs_memory"],
        cache=cache.steps if cache is not None else None)
    last = results[-1]
    return TransferResult(image=finish(last.image),
                          losses=np.concatenate([r.losses for r in results]),
                          steps=sum(r.steps for r in results),
                          interrupted=last.interrupted, sizes=sizes[:len(results)])


def transfer(content, styles, style_weights=None, **options):
    """Stylize ``content`` with ``styles`` by optimizing the image; returns float32 ``[H, W, 3]``.

    Args:
        content: path or float array ``[H, W, 3]`` in [0, 1] (uint8 arrays are converted).
        styles: one path / array, or a list of them.
        style_weights: blend weights, one per style (default: equal); finite and >= 0.
        **options: see :data:`DEFAULTS` — ``size``, ``steps``, ``optimizer``, ``learning_rate``,
            ``init``, ``content_weight``, ``style_weight``, ``tv_weight``, ``backbone``,
            ``content_layers``, ``style_layers``, ``style_loss``, ``pooling``, ``preserve_color``,
            ``scales``, ``style_scale``, ``seed``, ``weights``, ``jit_compile``,
            ``steps_per_call``, ``precision``, ``progress``, ``callbacks``, ``save_every``,
            ``save_pattern``, ``lbfgs_memory``, ``tile_size``, ``max_memory``, ``checkpoint``,
            ``checkpoint_every``.

    Large images: ``tile_size=N`` computes the objective by exact tiles of N px (a multiple of
    the deepest layer's stride, 16 for VGG19's default layers; :mod:`nst_tf.tiling`): the same
    loss and gradient as the whole image, with the backbone's memory of one tile.
    ``tile_size="auto"`` tiles only the levels whose whole-image run would not fit
    ``max_memory`` (``"20GB"``; default 80 % of the RAM). With a multi-scale schedule the coarse
    levels then run whole and fast, only the finest in tiles. ``checkpoint="run.npz"`` (with
    ``checkpoint_every=N``) saves the image and optimizer state; running again with the same
    arguments resumes from it.

    Returns:
        float32 ``[H, W, 3]`` in [0, 1]; the longest side is ``size`` (or the last of ``scales``).

    Raises:
        ImageError: unreadable or too small images.
        StyleWeightsError: wrong count, NaN, inf or negative style weights.
        LayerError: unknown backbone or layer.
        ConfigError: any other bad option.
        WeightsUnavailableError: ImageNet weights not cached and offline.
        OptimizationError: the loss became NaN/inf.

    Example:
        >>> out = transfer("content.jpg", "style.jpg", size=256, steps=50,  # doctest: +SKIP
        ...                preserve_color="luminance")
    """
    return run(content, styles, style_weights, **options).image
