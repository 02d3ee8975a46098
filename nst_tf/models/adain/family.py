"""Run AdaIN networks through :func:`nst_tf.stylize`: any style image, mixing, α, colour, masks.

``style`` is a style image (path or ``[h, w, 3]`` array) or a list of them; ``model`` is
``"adain"`` (pytorch-AdaIN's released weights, downloaded once), a folder holding
``vgg_normalised.pth`` and ``decoder.pth``, a ``nst-train --mode=adain`` train_dir (its latest
checkpoint) or a folder holding ``adain.keras``, a decoder ``.pth`` (with ``vgg_normalised.pth`` from
the same folder, else the released one), an ``.keras`` file of an AdaIN network, or a network
from :func:`nst_tf.load_adain` / :func:`nst_tf.networks.adain_network` / ``nst-train --mode=adain``.

Options (all keyword-only):

* ``strength`` = AdaIN's α in [0, 1]: ``t' = α·t + (1 − α)·f(c)`` (1: full style, 0: the content
  reconstructed by the decoder).
* ``style_weights``: with several styles, one output mixing them: the weighted sum of their AdaIN
  targets, weights normalised to sum 1 (pytorch-AdaIN's interpolation). Without weights, a list of
  styles gives **one output per style** (a style axis in the result).
* ``preserve_color=True``: each style image first takes the content's colour mean and covariance
  (:func:`nst_tf.images.coral`), as pytorch-AdaIN's ``--preserve_color``.
* ``mask``: spatial control with exactly two styles: an ``[H, W]`` image (path or array, any
  size; resized nearest to the relu4_1 grid, white ≥ 0.5) whose white part takes the first style
  and whose black part the second. Content statistics are computed per region (the authors'
  Torch ``test.lua`` scheme).
* ``style_size``: style images are resized so their shorter side is this (default 512, as
  ``test.py``; ``None`` keeps them). The content is used at its own size.
* ``crop``: the output is ``8·ceil(H/8) × 8·ceil(W/8)`` (ceil-mode pooling, top-left aligned);
  ``crop=True`` gives back ``H × W``.

Style statistics are computed once per (network, style image) and cached, so stylizing many
photos with one style encodes the style once.

========================  ===========================  ==============================
content                   one style / mix / mask       list of K styles, no weights
========================  ===========================  ==============================
path or ``[H, W, 3]``     ``[H', W', 3]``              ``[K, H', W', 3]``
``[B, H, W, 3]``          ``[B, H', W', 3]``           ``[B, K, H', W', 3]``
========================  ===========================  ==============================

Example:
    >>> import numpy as np
    >>> import nst_tf
    >>> from nst_tf.networks import adain_network
    >>> net = adain_network(channel_divisor=16)
    >>> photo, style = np.random.rand(30, 41, 3), np.random.rand(24, 24, 3)
    >>> nst_tf.stylize(photo, style, model=net, strength=0.5).shape
    (32, 48, 3)
    >>> nst_tf.stylize(photo, [style, style], model=net, crop=True).shape
    (2, 30, 41, 3)
"""

import collections
import hashlib
import numbers
import os

import numpy as np

from nst_tf import images
from nst_tf.errors import ConfigError, ImageError, StyleWeightsError
from nst_tf.families import Family
from torch_compat.adain import ADAIN_FILES, load_adain

__all__ = ["AdainFamily", "load_adain", "stylize_adain"]

#: What ``nst-train --mode=adain`` writes in its train_dir (a folder holding it is a model).
TRAINED_MODEL = "adain.keras"
_STATS_CACHE_SIZE = 32
_stats_cache = collections.OrderedDict()    # (id(network), digest) -> (network, mean, std)
_functions = {}                             # (id(network), jit) -> (network, functions)


def _body(network):
    """``body(content, style mean, style std, strength [1 or B, 1, 1, 1])``: encoder, AdaIN
    with α = strength, decoder, clipped to [0, 1]."""
    import tensorflow as tf

    from nst_tf.models.adain.network import adain

    encoder, decoder = network.get_layer("encoder"), network.get_layer("decoder")
    layer = network.get_layer("adain")

    def body(content, mean, std, strength):
        features = encoder(content)[-1]
        target = adain(features, mean, std, layer.convention, layer.epsilon)
        target = strength * target + (1.0 - strength) * features
        return tf.clip_by_value(tf.cast(decoder(target), tf.float32), 0.0, 1.0)
    return body


def _functions_of(network, jit):
    """Compiled, shape-polymorphic ``style_stats`` / ``run`` / ``run_masked`` of ``network``."""
    import tensorflow as tf

    key = (id(network), jit)
    if key in _functions:
        return _functions[key][1]
    from nst_tf.models.adain.network import adain

    encoder = network.get_layer("encoder")
    decoder = network.get_layer("decoder")
    layer = network.get_layer("adain")
    channels = encoder.outputs[-1].shape[-1]
    image = tf.TensorSpec([None, None, None, 3], tf.float32)
    stat = tf.TensorSpec([None, 1, 1, channels], tf.float32)
    strength_spec = tf.TensorSpec([None, 1, 1, 1], tf.float32)  # [1 or B, 1, 1, 1]

    @tf.function(input_signature=[image], jit_compile=jit)
    def style_stats(style):
        return layer.style_statistics(encoder(style)[-1])

    def finish(target, features, strength):
        target = strength * target + (1.0 - strength) * features
        return tf.clip_by_value(tf.cast(decoder(target), tf.float32), 0.0, 1.0)

    run = tf.function(_body(network), input_signature=[image, stat, stat, strength_spec],
                      jit_compile=jit)

    @tf.function(input_signature=[image, tf.TensorSpec([None, None, None, 1], tf.float32),
                                  stat, stat, stat, stat, strength_spec], jit_compile=jit)
    def run_masked(content, mask, fg_mean, fg_std, bg_mean, bg_std, strength):
        features = encoder(content)[-1]
        grid = tf.image.resize(mask, tf.shape(features)[1:3], method="nearest")
        fg = tf.cast(grid >= 0.5, tf.float32)
        parts = [adain(features, m, s, layer.convention, layer.epsilon, mask=region)
                 for m, s, region in ((fg_mean, fg_std, fg), (bg_mean, bg_std, 1.0 - fg))]
        return finish(fg * parts[0] + (1.0 - fg) * parts[1], features, strength)

    functions = (style_stats, run, run_masked)
    _functions.clear()  # one network at a time: keeps memory bounded
    _functions[key] = (network, functions)
    return functions


def _style_statistics(network, style, jit):
    """``(mean, std)`` ``[1, 1, 1, C]`` of one style image, cached on its bytes."""
    digest = hashlib.sha1(style.tobytes() + repr(style.shape).encode()).hexdigest()
    key = (id(network), jit, digest)
    if key in _stats_cache:
        _stats_cache.move_to_end(key)
        return _stats_cache[key][1:]
    mean, std = _functions_of(network, jit)[0](style[None])
    _stats_cache[key] = (network, mean.numpy(), std.numpy())
    while len(_stats_cache) > _STATS_CACHE_SIZE:
        _stats_cache.popitem(last=False)
    return _stats_cache[key][1:]


def _style_list(style, style_size):
    """``(list of float32 [h, w, 3] styles, several)`` from any accepted ``style``."""
    from nst_tf.models.adain.network import check_adain_input

    if style is None:
        raise ConfigError("an AdaIN model needs a style: a style image path or array, or a list "
                          "of them")
    several = isinstance(style, (list, tuple))
    items = list(style) if several else [style]
    if not several and not isinstance(style, (str, os.PathLike)) and np.ndim(style) == 4:
        items, several = list(np.asarray(style)), True
    if not items:
        raise ConfigError("the list of style images is empty")
    loaded = []
    for i, item in enumerate(items):
        what = f"style image {i}" if several else "style image"
        batch, single = images.image_batch(item, what=what)
        if not single:
            raise ImageError(f"{what} must be one [h, w, 3] image, got shape {batch.shape}")
        image = batch[0]
        if style_size is not None:
            from nst_tf.data import scale_short_side

            image = np.clip(scale_short_side(image, int(style_size)).numpy(), 0, 1)
        check_adain_input(image, what=what)
        loaded.append(np.ascontiguousarray(image, np.float32))
    return loaded, several


def _weights(style_weights, count):
    if style_weights is None:
        return None
    try:
        weights = np.asarray(style_weights, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise StyleWeightsError(f"style_weights must be {count} numbers, got "
                                f"{style_weights!r}") from None
    if weights.size != count:
        raise StyleWeightsError(f"got {weights.size} style_weights for {count} style images")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise StyleWeightsError(f"style_weights must be finite, >= 0 and not all 0, got "
                                f"{weights.tolist()}")
    return weights / weights.sum()


def _mask_image(mask):
    array = images.load_image(mask) if isinstance(mask, (str, os.PathLike)) else np.asarray(mask)
    if array.dtype == np.uint8:
        array = images.uint8_to_float(array)
    array = np.asarray(array, np.float32)
    if array.ndim == 3:
        array = array.mean(axis=-1)
    if array.ndim != 2 or min(array.shape) < 1 or not np.all(np.isfinite(array)):
        raise ImageError(f"mask must be an [H, W] (or [H, W, C]) image with finite values, got "
                         f"shape {np.shape(mask)}")
    return array[None, :, :, None]


def stylize_adain(network, content, style, *, style_weights=None, strength=1.0,
                  preserve_color=False, mask=None, style_size=512, crop=False, batch_size=4,
                  jit_compile="auto"):
    """Stylize ``content`` with an AdaIN ``network``; see the module docstring for the options
    and output shapes. Returns float32 in [0, 1].

    Raises:
        ImageError: unreadable / invalid images, sides below 9 pixels, a bad mask.
        StyleWeightsError: weights that do not fit the styles.
        ConfigError: strength outside [0, 1], a mask without exactly two styles, bad options.
    """
    from nst_tf.device import resolve_jit_compile
    from nst_tf.models.adain.network import check_adain_input

    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) \
            or not 0.0 <= float(strength) <= 1.0:
        raise ConfigError(f"strength (AdaIN's alpha) must be a number in [0, 1], got {strength!r}")
    styles, several = _style_list(style, style_size)
    weights = _weights(style_weights, len(styles))
    if mask is not None:
        if len(styles) != 2 or weights is not None:
            raise ConfigError(f"mask= needs exactly two styles (foreground, background) and no "
                              f"style_weights; got {len(styles)} style(s)")
        mask_array = _mask_image(mask)
    batch, single = images.image_batch(content, what="content image")
    check_adain_input(batch, what="content image")
    jit = resolve_jit_compile(jit_compile)
    _, run, run_masked = _functions_of(network, jit)
    alpha = np.full([1, 1, 1, 1], strength, np.float32)

    def statistics(content_image):
        """Style statistics for one content image (colour-matched styles) or for all."""
        stats = []
        for s in styles:
            source = images.coral(s, content_image) if preserve_color else s
            stats.append(_style_statistics(network, source, jit))
        return stats

    def forward(chunk, stats):
        if mask is not None:
            (fm, fs), (bm, bs) = stats
            masks = np.repeat(mask_array, len(chunk), axis=0)
            return [run_masked(chunk, masks, fm, fs, bm, bs, alpha).numpy()]
        return [run(chunk, m, s, alpha).numpy() for m, s in _targets(stats, weights)]

    step = 1 if preserve_color else batch_size
    shared = None if preserve_color else statistics(None)
    outputs = []                                       # per chunk: [K][b, H', W', 3]
    for i in range(0, len(batch), step):
        chunk = batch[i:i + step]
        outputs.append(forward(chunk, shared if shared is not None else statistics(chunk[0])))
    result = np.stack([np.concatenate([o[k] for o in outputs]) for k in range(len(outputs[0]))],
                      axis=1)                          # [B, K, H', W', 3]
    if crop:
        result = result[:, :, :batch.shape[1], :batch.shape[2]]
    if not (several and weights is None and mask is None):
        result = result[:, 0]
    if single:
        result = result[0]
    return np.ascontiguousarray(result, dtype=np.float32)


def _targets(stats, weights):
    """``(mean, std)`` of the style statistics per output: the ``weights`` mixture of all
    styles' (pytorch-AdaIN's interpolation) or each style's."""
    if weights is None:
        return list(stats)
    mean = sum(w * m for w, (m, _) in zip(weights, stats)).astype(np.float32)
    std = sum(w * s for w, (_, s) in zip(weights, stats)).astype(np.float32)
    return [(mean, std)]


class AdainFamily(Family):
    """:func:`nst_tf.stylize` adapter for AdaIN networks: ``style`` is a style image or a list
    of them (see :func:`stylize_adain`); preset ``"adain"`` = pytorch-AdaIN's released weights."""

    name = "adain"
    presets = ("adain",)
    runs_with = "nst-adain, nst_tf.stylize, nst-video or nst-stylize-dataset"

    def owns_network(self, network):
        from nst_tf.models.adain.network import is_adain_network

        return is_adain_network(network)

    def owns_path(self, path):
        if os.path.isdir(path):
            return any(os.path.isfile(os.path.join(path, name))
                       for name in (ADAIN_FILES["decoder"], TRAINED_MODEL))
        return path.endswith((".pth", ".pt"))

    def load(self, model):
        if model == "adain":
            from torch_compat.adain import adain_files

            return load_adain(*adain_files())
        if os.path.isdir(model) and os.path.isfile(os.path.join(model, TRAINED_MODEL)):
            from nst_tf.families import load_keras_file

            return load_keras_file(os.path.join(model, TRAINED_MODEL))
        if os.path.isdir(model):
            return load_adain(os.path.join(model, ADAIN_FILES["vgg"]),
                              os.path.join(model, ADAIN_FILES["decoder"]))
        vgg = os.path.join(os.path.dirname(os.path.abspath(model)), ADAIN_FILES["vgg"])
        if os.path.abspath(model) == vgg:
            raise ConfigError(f"{model} is the AdaIN encoder; pass the decoder .pth (or the "
                              "folder holding both) as model")
        return load_adain(vgg if os.path.isfile(vgg) else ADAIN_FILES["vgg"], model)

    def stylize(self, network, content, style, *, style_weights=None, strength=1.0,
                preserve_color=False, mask=None, style_size=512, crop=False, batch_size=4,
                jit_compile="auto"):
        return stylize_adain(network, content, style, style_weights=style_weights,
                             strength=strength, preserve_color=preserve_color, mask=mask,
                             style_size=style_size, crop=crop, batch_size=batch_size,
                             jit_compile=jit_compile)

    def patch_models(self, network, batch, style, *, style_weights=None, strength=1.0,
                     preserve_color=False, mask=None, style_size=512, crop=False, batch_size=4,
                     jit_compile="auto"):
        from nst_tf.device import resolve_jit_compile
        from nst_tf.models.adain.network import MIN_ADAIN_SIZE, check_adain_input
        from nst_tf.patches import PatchModel

        if mask is not None:
            raise ConfigError("mask= cannot be combined with tile_size: the masked statistics "
                              "of spatial control are not tiled; stylize without tile_size")
        if isinstance(strength, bool) or not isinstance(strength, numbers.Real) \
                or not 0.0 <= float(strength) <= 1.0:
            raise ConfigError(f"strength (AdaIN's alpha) must be a number in [0, 1], got "
                              f"{strength!r}")
        styles, several = _style_list(style, style_size)
        weights = _weights(style_weights, len(styles))
        check_adain_input(batch, what="content image")
        jit = resolve_jit_compile(jit_compile)
        alpha = np.full([1, 1, 1, 1], strength, np.float32)
        encoder, decoder = network.get_layer("encoder"), network.get_layer("decoder")
        chain = ((encoder, len(encoder.outputs) - 1), (decoder, 0))
        body = _body(network)
        models = []
        for image in batch:
            stats = [_style_statistics(network, images.coral(s, image) if preserve_color else s,
                                       jit) for s in styles]
            models.append([PatchModel(image, body, chain, extras=(mean, std, alpha),
                                      key=("adain", network, jit), jit_compile=jit,
                                      min_size=MIN_ADAIN_SIZE,
                                      crop=tuple(batch.shape[1:3]) if crop else None)
                           for mean, std in _targets(stats, weights)])
        return several and weights is None, models

    style_input = "image"

    def prepare_style(self, network, style, *, style_size=512, jit_compile="auto"):
        """The style's AdaIN statistics ``(mean, std)``, each ``[1, 1, 1, C]`` float32."""
        from nst_tf.device import resolve_jit_compile

        image = _style_list(style, style_size)[0][0]
        return tuple(_style_statistics(network, image, resolve_jit_compile(jit_compile)))

    def stylize_batch(self, network, batch, styles, strengths=None, *, jit_compile="auto"):
        """One forward pass, each image with its own statistics and strength (α)."""
        from nst_tf.device import resolve_jit_compile
        from nst_tf.models.adain.network import check_adain_input

        check_adain_input(batch, what="content image")
        alphas = np.ones(len(batch), np.float32) if strengths is None else \
            np.asarray(strengths, np.float32)
        if np.any(~(alphas >= 0.0) | (alphas > 1.0)):
            raise ConfigError(f"strength (AdaIN's alpha) must be in [0, 1], got "
                              f"{alphas.tolist()}")
        run = _functions_of(network, resolve_jit_compile(jit_compile))[1]
        mean = np.concatenate([m for m, _ in styles]).astype(np.float32)
        std = np.concatenate([s for _, s in styles]).astype(np.float32)
        out = run(np.ascontiguousarray(batch, np.float32), mean, std,
                  alphas.reshape(-1, 1, 1, 1)).numpy()
        return np.ascontiguousarray(out[:, :batch.shape[1], :batch.shape[2]])
