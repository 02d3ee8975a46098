"""Stylize with any style image: Magenta's arbitrary-style network (Ghiasi et al. 2017).

A style image goes through the style prediction network once and becomes a 100-d *embedding*;
the transformer turns a content image and an embedding into the stylized image. So:

* :func:`style_embedding` computes embeddings (cached per style image: a style used again is not
  recomputed), which can be stored, averaged or edited;
* :func:`stylize_from_embedding` runs the transformer with any embedding;
* ``nst_tf.stylize(content, style, model="arbitrary", ...)`` does both, with Magenta's
  preprocessing and options (see :meth:`ArbitraryFamily.stylize`).

Preprocessing is Magenta's (``arbitrary_image_stylization_with_weights``): the style image is
resized (bilinear, TF1 ``resize_bilinear`` arithmetic, no crop) so that its shorter side is
``style_size`` = 256; the content image is used as is unless ``size`` is given (then its shorter
side is resized the same way). ``strength`` is Magenta's identity interpolation: the embedding
``s·e_style + (1 - s)·e_content``, where ``e_content`` is the content image's own embedding
(computed with the style preprocessing); ``s = 1`` is full style, ``s = 0`` about the identity.

Models: ``"arbitrary"`` (the released checkpoint, downloaded once), a checkpoint prefix, folder or
``.tar.gz``, a ``.keras`` file, a network from :func:`nst_tf.networks.arbitrary_network`, or
``"hub:<handle or folder>"``: a TF-Hub module with the signature of
``magenta/arbitrary-image-stylization-v1-256`` (see :mod:`nst_tf.hub`).

Example:
    >>> import nst_tf
    >>> out = nst_tf.stylize("photo.jpg", ["a.jpg", "b.jpg"], model="arbitrary",
    ...                      style_weights=[0.3, 0.7], strength=0.8)      # doctest: +SKIP
    >>> e = nst_tf.style_embedding(["a.jpg", "b.jpg"])                     # doctest: +SKIP
    >>> out = nst_tf.stylize_from_embedding("photo.jpg", e.mean(axis=0))   # doctest: +SKIP
"""

import collections
import functools
import hashlib
import numbers
import os
import warnings

import numpy as np

from nst_tf import images
from nst_tf.errors import ConfigError, ImageError, StyleWeightsError
from nst_tf.families import Family, load_keras_file

_NETWORK_CACHE_SIZE = 2
_EMBEDDING_CACHE_SIZE = 256
_embeddings = collections.OrderedDict()   # (runner key, image key, style_size) -> [E] array

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


# --- Preprocessing -----------------------------------------------------------------------------

def shorter_side_size(height, width, side):
    """Magenta's ``_smallest_size_at_least``: ``(new_h, new_w)`` with the shorter side ``side``,
    computed in float32 and truncated, as ``image_utils`` does."""
    h, w, s = np.float32(height), np.float32(width), np.float32(side)
    scale = s / w if h > w else s / h
    return int(np.float32(h * scale)), int(np.float32(w * scale))


def resize_bilinear_tf1(image, size):
    """``tf.compat.v1.image.resize_bilinear`` (``align_corners=False``, no half-pixel centres):
    Magenta's resize. ``image`` ``[H, W, C]`` or ``[B, H, W, C]`` float32; ``size`` (h, w)."""
    import tensorflow as tf

    array = np.asarray(image, np.float32)
    if tuple(array.shape[-3:-1]) == tuple(size):
        return array
    batch = array if array.ndim == 4 else array[None]
    out = tf.raw_ops.ResizeBilinear(images=batch, size=list(size), align_corners=False,
                                    half_pixel_centers=False).numpy()
    return out if array.ndim == 4 else out[0]


def preprocess_style(image, style_size=256, what="style image"):
    """A style image ``[h, w, 3]`` resized as Magenta does (shorter side ``style_size``, bilinear,
    no crop); ``style_size=None`` keeps its size. A result smaller than the trunk accepts
    (:data:`~nst_tf.networks.MIN_STYLE_SIZE`, 43 px) is resized up with a warning.

    Example:
        >>> preprocess_style(np.zeros((300, 400, 3), np.float32)).shape
        (256, 341, 3)
    """
    from nst_tf.networks import MIN_STYLE_SIZE

    image = np.asarray(image, np.float32)
    height, width = image.shape[:2]
    if style_size is not None:
        image = resize_bilinear_tf1(image, shorter_side_size(height, width, style_size))
    if min(image.shape[:2]) < MIN_STYLE_SIZE:
        size = shorter_side_size(*image.shape[:2], MIN_STYLE_SIZE)
        size = (max(size[0], MIN_STYLE_SIZE), max(size[1], MIN_STYLE_SIZE))
        warnings.warn(f"{what} is {image.shape[1]}x{image.shape[0]} pixels (W x H) after "
                      f"preprocessing; the style network needs at least {MIN_STYLE_SIZE} px per "
                      f"side, so it is resized up to {size[1]}x{size[0]}", stacklevel=3)
        image = resize_bilinear_tf1(image, size)
    return image


def _check_style_size(style_size, name="style_size"):
    if style_size is None:
        return None
    if isinstance(style_size, bool) or not isinstance(style_size, numbers.Integral) \
            or style_size < 1:
        raise ConfigError(f"{name} must be a positive int (or None), got {style_size!r}")
    return int(style_size)


# --- Style inputs ------------------------------------------------------------------------------

def _folder_images(folder):
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(_IMAGE_EXTENSIONS))
    if not names:
        raise ImageError(f"style folder {folder} holds no image files "
                         f"({', '.join(_IMAGE_EXTENSIONS)})")
    return [os.path.join(folder, n) for n in names]


def style_sources(style):
    """The style images of ``style`` as a list of paths and ``[h, w, 3]`` arrays.

    ``style`` is a path, a folder (its image files, sorted by name), an ``[h, w, 3]`` array, a
    ``[K, h, w, 3]`` array, or a list / tuple of paths and arrays.
    """
    if style is None:
        raise StyleWeightsError("an arbitrary-style model needs a style: an image path or "
                                "array, a folder or a list of images")
    if isinstance(style, (str, os.PathLike)):
        path = os.fspath(style)
        return _folder_images(path) if os.path.isdir(path) else [path]
    if isinstance(style, (list, tuple)):
        if not style:
            raise StyleWeightsError("the list of style images is empty")
        sources = []
        for item in style:
            if isinstance(item, (str, os.PathLike)) and os.path.isdir(item):
                sources += _folder_images(os.fspath(item))
            elif isinstance(item, (str, os.PathLike)):
                sources.append(os.fspath(item))
            else:
                sources.append(_style_array(item))
        return sources
    array = _style_array(style, allow_batch=True)
    return list(array) if array.ndim == 4 else [array]


def _style_array(item, allow_batch=False):
    try:
        array = np.asarray(item)
    except Exception:  # noqa: BLE001  ragged lists and the like
        array = None
    if array is None or array.dtype == object or \
            array.ndim not in ((3, 4) if allow_batch else (3,)) or array.shape[-1] != 3:
        raise ImageError(f"a style image must be a path or an [h, w, 3] array"
                         f"{' (or a [K, h, w, 3] batch)' if allow_batch else ''}; got "
                         f"{type(item).__name__} of shape {getattr(array, 'shape', '?')}")
    return array


def _load_style(source, index):
    what = f"style image {source}" if isinstance(source, str) else f"style image #{index}"
    batch, _ = images.image_batch(source, what=what)
    return batch[0], what


def _image_key(source, index):
    """``(cache key, loaded image or None, description)``: a readable file is keyed by its path,
    size and mtime without decoding it; an array (or an unreadable path, which then raises a
    readable ImageError) is loaded and keyed by its contents."""
    if isinstance(source, str) and os.path.isfile(source):
        stat = os.stat(source)
        key = ("file", os.path.realpath(source), stat.st_mtime_ns, stat.st_size)
        return key, None, f"style image {source}"
    image, what = _load_style(source, index)
    digest = hashlib.sha1(np.ascontiguousarray(image, np.float32).tobytes()).hexdigest()
    return ("array", image.shape, digest), image, what


def check_style_weights(style_weights, count):
    """``style_weights`` as float32 weights summing to 1, after checking them.

    Raises:
        StyleWeightsError: not ``count`` numbers, NaN / inf, a negative weight, or all zero.
    """
    try:
        array = np.asarray(style_weights, np.float64)
    except (TypeError, ValueError):
        raise StyleWeightsError(f"style_weights must be a list of {count} numbers, got "
                                f"{style_weights!r}") from None
    if array.ndim != 1 or array.size != count:
        raise StyleWeightsError(f"got {array.size} style weight(s) {np.ravel(array).tolist()} for "
                                f"{count} style image(s); give one weight per style image")
    if not np.all(np.isfinite(array)):
        raise StyleWeightsError(f"style weights must be finite, got {array.tolist()}")
    if np.any(array < 0):
        raise StyleWeightsError(f"style weights must not be negative, got {array.tolist()}")
    if array.sum() <= 0:
        raise StyleWeightsError(f"style weights sum to 0 ({array.tolist()}); at least one must be "
                                "positive")
    return (array / array.sum()).astype(np.float32)


def _check_strength(strength):
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) \
            or not 0.0 <= float(strength) <= 1.0:
        raise ConfigError(f"strength must be a number in [0, 1] (1 = full style, 0 = about "
                          f"the content image), got {strength!r}")
    return float(strength)


# --- Runners: the two compiled halves of a model -----------------------------------------------

class _KerasRunner:
    """``embed(images [B,h,w,3]) -> [B, E]`` and ``transform(content, embedding [S, E])`` of an
    :func:`~nst_tf.networks.arbitrary_network`, compiled once (shape-polymorphic)."""

    full = None

    def __init__(self, network, jit, fast):
        import tensorflow as tf

        from nst_tf.networks import arbitrary_config, style_predictor_of, transformer_of

        self.network = network
        self.key = ("keras", id(network))
        predictor, transformer = style_predictor_of(network), transformer_of(network)
        self.embedding_size = size = arbitrary_config(network)["embedding_size"]
        image = tf.TensorSpec([None, None, None, 3], tf.float32)
        self._embed = tf.function(lambda x: predictor(x, training=False),
                                  input_signature=[image], jit_compile=jit)
        self._transform = tf.function(
            lambda x, e: tf.cast(transformer([x, e], training=False), tf.float32),
            input_signature=[image, tf.TensorSpec([None, size], tf.float32)], jit_compile=jit)
        # Trace now in the requested form; the traced graph keeps it, the network is unchanged.
        switches = [layer for layer in transformer._flatten_layers(include_self=False)
                    if hasattr(layer, "fast")]
        saved = [layer.fast for layer in switches]
        for layer in switches:
            layer.fast = layer.fast or fast
        try:
            self._transform.get_concrete_function()
        finally:
            for layer, flag in zip(switches, saved):
                layer.fast = flag

    def embed(self, batch):
        return self._embed(batch).numpy()

    def transform(self, content, embedding):
        return self._transform(content, embedding).numpy()


_RUNNERS = collections.OrderedDict()   # (id(network), jit, fast) -> (network, runner)


def runner_for(network, jit_compile="auto", fast=False):
    """The (cached) compiled runner of a Keras arbitrary-style network or a hub model."""
    from nst_tf.device import resolve_jit_compile
    from nst_tf.hub import HubModel

    if isinstance(network, HubModel):
        return network
    jit = resolve_jit_compile(jit_compile)
    key = (id(network), jit, bool(fast))
    if key not in _RUNNERS:
        _RUNNERS[key] = (network, _KerasRunner(network, jit, bool(fast)))
        while len(_RUNNERS) > 4:
            _RUNNERS.popitem(last=False)
    _RUNNERS.move_to_end(key)
    return _RUNNERS[key][1]


# --- Models ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=_NETWORK_CACHE_SIZE)
def _load_checkpoint_cached(path, mtime_ns, size):
    del mtime_ns, size  # cache key only
    from magenta_compat.arbitrary import load_arbitrary_network

    return load_arbitrary_network(path)


def load_model(model="arbitrary"):
    """An arbitrary-style model from a preset name, a checkpoint (prefix, folder, ``.tar.gz``),
    a ``.keras`` file, ``"hub:<handle>"``, or a network (returned as is). Cached."""
    from nst_tf.networks import is_arbitrary_network

    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if isinstance(model, str):
        if model.startswith("hub:"):
            from nst_tf.hub import load_hub

            return load_hub(model[len("hub:"):])
        if model.endswith(".keras"):
            network = load_keras_file(model)
        else:
            from magenta_compat.arbitrary import checkpoint_prefix

            prefix = checkpoint_prefix(model)
            probe = prefix + ".index" if os.path.isfile(prefix + ".index") else prefix
            stat = os.stat(probe)
            network = _load_checkpoint_cached(os.path.realpath(prefix), stat.st_mtime_ns,
                                              stat.st_size)
    else:
        network = model
    from nst_tf.hub import HubModel

    if not isinstance(network, HubModel) and not is_arbitrary_network(network):
        raise ConfigError(f"model {getattr(network, 'name', network)!r} is not an "
                          "arbitrary-style network (nst_tf.networks.arbitrary_network)")
    return network


# --- Public helpers ----------------------------------------------------------------------------

def _embeddings_of(runner, sources, style_size):
    """``[K, E]`` embeddings of ``sources`` (paths / arrays), from the cache when possible."""
    result, todo = [None] * len(sources), {}
    for index, source in enumerate(sources):
        key, image, what = _image_key(source, index)
        key = (runner.key, key, style_size)
        if key in _embeddings:
            _embeddings.move_to_end(key)
            result[index] = _embeddings[key]
        else:
            todo.setdefault(key, []).append((index, source, image, what))
    for key, entries in todo.items():
        index, source, image, what = entries[0]
        if image is None:
            image, what = _load_style(source, index)
        prepared = preprocess_style(image, style_size, what=what)
        embedding = np.asarray(runner.embed(prepared[None]), np.float32).reshape(-1)
        _embeddings[key] = embedding
        while len(_embeddings) > _EMBEDDING_CACHE_SIZE:
            _embeddings.popitem(last=False)
        for entry in entries:
            result[entry[0]] = embedding
    return np.stack(result)


def _require_embeddings(runner, what):
    if getattr(runner, "embed", None) is None:
        raise ConfigError(f"{what} needs the style embedding, which this TF-Hub module does not "
                          "expose (Magenta's hub module only maps (content, style) to an image); "
                          "use the 'arbitrary' checkpoint or a SavedModel exported by "
                          "nst_tf.hub.export_hub_module")


def style_embedding(style, model="arbitrary", *, style_size=256, jit_compile="auto"):
    """Style embeddings ``[K, E]`` (E = 100) of K style images, with Magenta's preprocessing.

    Args:
        style: an image path, a folder, an ``[h, w, 3]`` array, a ``[K, h, w, 3]`` array or a list
            of paths / arrays.
        model: any arbitrary-style model (see :func:`load_model`).
        style_size: shorter side the style is resized to (Magenta: 256); None keeps the size.

    Embeddings are cached per (model, image file or array content, style_size).

    Example:
        >>> from nst_tf.networks import arbitrary_network
        >>> net = arbitrary_network(alpha=0.25, depth_multiplier=0.25)
        >>> style_embedding(np.random.rand(50, 60, 3), model=net, style_size=64).shape
        (1, 100)
    """
    runner = runner_for(load_model(model), jit_compile)
    _require_embeddings(runner, "style_embedding")
    return _embeddings_of(runner, style_sources(style), _check_style_size(style_size))


def _content_batch(content, size):
    from nst_tf.networks import check_pastiche_input

    batch, single = images.image_batch(content, what="content image")
    if size is not None:
        size = _check_style_size(size, "size")
        new = shorter_side_size(batch.shape[1], batch.shape[2], size)
        batch = np.clip(resize_bilinear_tf1(batch, new), 0.0, 1.0)
    check_pastiche_input(batch, what="content image")
    return np.ascontiguousarray(batch, np.float32), single


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def _run_transformer(runner, batch, embeddings, batch_size):
    """``[B, H', W', 3]`` from ``batch`` and ``embeddings`` ``[1, E]`` or ``[B, E]``."""
    chunks = []
    for start in range(0, len(batch), batch_size):
        stop = min(start + batch_size, len(batch))
        emb = embeddings if len(embeddings) == 1 else embeddings[start:stop]
        chunks.append(runner.transform(batch[start:stop], np.ascontiguousarray(emb, np.float32)))
    return np.concatenate(chunks)


def stylize_from_embedding(content, embedding, model="arbitrary", *, crop=True, size=None,
                           batch_size=4, jit_compile="auto", fast=False):
    """Run the transformer on ``content`` with a given style ``embedding``.

    Args:
        content: an image path, ``[H, W, 3]`` image or ``[B, H, W, 3]`` batch in [0, 1].
        embedding: ``[E]`` or ``[1, E]`` (one style for every image) or ``[B, E]`` (one per
            image), e.g. from :func:`style_embedding`, averaged or edited.
        model: any arbitrary-style model that exposes embeddings.
        crop: cut the ``4·ceil(H/4) x 4·ceil(W/4)`` output back to ``H x W`` (default True).
        size: resize the content so that its shorter side is ``size`` first (default: no).
        fast: faster forms of the transformer (float32-rounding different from Magenta).

    Returns:
        float32 ``[H, W, 3]`` for one image, ``[B, H, W, 3]`` for a batch.

    Example:
        >>> from nst_tf.networks import arbitrary_network
        >>> net = arbitrary_network(alpha=0.25, depth_multiplier=0.25)
        >>> stylize_from_embedding(np.random.rand(30, 41, 3), np.zeros(100), model=net).shape
        (30, 41, 3)
    """
    runner = runner_for(load_model(model), jit_compile, fast)
    _require_embeddings(runner, "stylize_from_embedding")
    batch, single = _content_batch(content, size)
    emb = np.asarray(embedding, np.float32)
    emb = emb[None] if emb.ndim == 1 else emb
    size = getattr(runner, "embedding_size", None) or emb.shape[-1]
    if emb.ndim != 2 or len(emb) not in (1, len(batch)) or emb.shape[-1] != size \
            or not np.all(np.isfinite(emb)):
        raise StyleWeightsError(f"embedding must be finite, shaped [E], [1, E] or [B, E] with "
                                f"E={size}, B={len(batch)}; got shape {np.shape(embedding)}")
    out = _run_transformer(runner, batch, emb, _check_batch_size(batch_size))
    if crop:
        out = out[:, :batch.shape[1], :batch.shape[2]]
    return np.ascontiguousarray(out[0] if single else out, np.float32)


def stylize(content, style, model="arbitrary", *, style_weights=None, strength=1.0,
            style_size=256, size=None, crop=True, batch_size=4, jit_compile="auto",
            fast=False):
    """Stylize ``content`` with one or more style images (see :meth:`ArbitraryFamily.stylize`)."""
    strength = _check_strength(strength)
    style_size = _check_style_size(style_size)
    batch_size = _check_batch_size(batch_size)
    runner = runner_for(load_model(model), jit_compile, fast)
    sources = style_sources(style)
    one_style = (isinstance(style, (str, os.PathLike)) and not os.path.isdir(style)) or \
        (isinstance(style, np.ndarray) and style.ndim == 3)
    weights = None if style_weights is None else check_style_weights(style_weights, len(sources))
    batch, single = _content_batch(content, size)
    needs_embedding = weights is not None or strength != 1.0
    if getattr(runner, "embed", None) is None:
        if needs_embedding:
            _require_embeddings(runner, "style_weights / strength < 1")
        outputs = [runner.full(batch, preprocess_style(_load_style(s, i)[0], style_size))
                   for i, s in enumerate(sources)]
    else:
        embeddings = _embeddings_of(runner, sources, style_size)          # [K, E]
        if weights is not None:
            embeddings = (weights[:, None] * embeddings).sum(axis=0, keepdims=True)
        if strength != 1.0:
            identity = np.stack([_embeddings_of(runner, [image], style_size)[0]
                                 for image in batch])                      # [B, E]
        outputs = []
        for embedding in embeddings:
            emb = embedding[None]
            if strength != 1.0:
                emb = strength * emb + (1.0 - strength) * identity
            outputs.append(_run_transformer(runner, batch, emb, batch_size))
    result = np.stack(outputs, axis=1)                                    # [B, K, H', W', 3]
    if crop:
        result = result[:, :, :batch.shape[1], :batch.shape[2]]
    if one_style or weights is not None:   # one output; else one per style image
        result = result[:, 0]
    if single:
        result = result[0]
    return np.ascontiguousarray(result, np.float32)


class ArbitraryFamily(Family):
    """:func:`nst_tf.stylize` adapter for arbitrary-style models: ``style`` is one or more style
    images; preset ``"arbitrary"``; ``"hub:<handle>"`` loads a TF-Hub module."""

    name = "arbitrary"
    presets = ("arbitrary",)
    prefix = "hub:"

    def owns_network(self, network):
        from nst_tf.hub import HubModel
        from nst_tf.networks import is_arbitrary_network

        return isinstance(network, HubModel) or is_arbitrary_network(network)

    def owns_checkpoint(self, shapes):
        from magenta_compat.arbitrary import is_arbitrary_checkpoint

        return is_arbitrary_checkpoint(shapes)

    def owns_path(self, path):
        from magenta_compat.arbitrary import is_tarball

        return os.path.isfile(path) and is_tarball(path)

    def load(self, model):
        return load_model(model)

    def stylize(self, network, content, style, *, style_weights=None, strength=1.0,
                style_size=256, size=None, crop=True, batch_size=4, jit_compile="auto",
                fast=False):
        """Stylize ``content`` with the style image(s) ``style``.

        Args:
            content: an image path, ``[H, W, 3]`` image or ``[B, H, W, 3]`` batch in [0, 1].
            style: an image path or ``[h, w, 3]`` array (one style), or a folder, a list of
                paths / arrays or a ``[K, h, w, 3]`` array (K styles: one output per style, or
                one mixture with ``style_weights``).
            style_weights: K non-negative weights, normalized to sum 1: one output whose
                embedding is ``Σ wᵢ·eᵢ``.
            strength: in [0, 1]; Magenta's identity interpolation (1 = full style).
            style_size: shorter side of the style image after resizing (Magenta: 256); None
                keeps it. Sides below 43 px are resized up with a warning.
            size: resize the content's shorter side to this first (default: keep its size).
            crop: cut Magenta's ``4·ceil(H/4) x 4·ceil(W/4)`` output back to ``H x W``
                (default True).
            batch_size: content images per transformer call.
            jit_compile: ``"auto"`` (XLA on GPU/TPU), True or False.
            fast: faster transformer forms, within float32 rounding of Magenta's output.

        Returns:
            float32 in [0, 1]: ``[H, W, 3]`` (one content, one style or mixture),
            ``[K, H, W, 3]`` (one content, K styles), ``[B, H, W, 3]`` or ``[B, K, H, W, 3]``
            for a batch of contents.
        """
        return stylize(content, style, network, style_weights=style_weights,
                       strength=strength, style_size=style_size, size=size, crop=crop,
                       batch_size=batch_size, jit_compile=jit_compile, fast=fast)

    style_input = "image"

    def prepare_style(self, network, style, *, style_size=256, jit_compile="auto"):
        """The style's embedding ``[E]`` (Magenta's preprocessing), float32."""
        runner = runner_for(network, jit_compile)
        _require_embeddings(runner, "a prepared style")
        image = preprocess_style(_style_array(style), _check_style_size(style_size))
        return np.asarray(runner.embed(image[None]), np.float32).reshape(-1)

    def stylize_batch(self, network, batch, styles, strengths=None, *, style_size=256,
                      jit_compile="auto", fast=False):
        """One transformer pass, each image with its own embedding and strength."""
        from nst_tf.networks import check_pastiche_input

        runner = runner_for(network, jit_compile, fast)
        _require_embeddings(runner, "a prepared style")
        check_pastiche_input(batch, what="content image")
        embeddings = np.stack(styles).astype(np.float32)
        if strengths is not None and any(s != 1.0 for s in strengths):
            weight = np.asarray([_check_strength(s) for s in strengths], np.float64)[:, None]
            size = _check_style_size(style_size)
            identity = np.stack([_embeddings_of(runner, [image], size)[0] for image in batch])
            embeddings = weight.astype(np.float32) * embeddings + \
                (1.0 - weight).astype(np.float32) * identity
        out = _run_transformer(runner, np.ascontiguousarray(batch, np.float32), embeddings,
                               len(batch))
        return np.ascontiguousarray(out[:, :batch.shape[1], :batch.shape[2]])
