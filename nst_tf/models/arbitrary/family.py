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
``style_size`` = 256 (the mobile model then takes its centre square, as published); the content image is used as is unless ``size`` is given (then its shorter
side is resized the same way). ``strength`` is Magenta's identity interpolation: the embedding
``s·e_style + (1 - s)·e_content``, where ``e_content`` is the content image's own embedding
(computed with the style preprocessing); ``s = 1`` is full style, ``s = 0`` about the identity.

Models: ``"arbitrary"`` (the released checkpoint, downloaded once), ``"arbitrary-mobile"`` (the
published mobile model's fp16 TF Lite pair, downloaded once), a folder holding the mobile model's
TF Lite or ONNX files (:mod:`magenta_compat.mobile`), a checkpoint prefix, folder or
``.tar.gz``, the train_dir of ``nst-train --mode=arbitrary`` (its latest checkpoint), a
``.keras`` file, a network from :func:`nst_tf.networks.arbitrary_network`, or
``"hub:<handle or folder>"``: a TF-Hub module with the signature of
``magenta/arbitrary-image-stylization-v1-256`` (see :mod:`nst_tf.models.arbitrary.hub`).

Example:
    >>> import nst_tf
    >>> out = nst_tf.stylize("photo.jpg", ["a.jpg", "b.jpg"], model="arbitrary",
    ...                      style_weights=[0.3, 0.7], strength=0.8)      # doctest: +SKIP
    >>> e = nst_tf.style_embedding(["a.jpg", "b.jpg"])                     # doctest: +SKIP
    >>> out = nst_tf.stylize_from_embedding("photo.jpg", e.mean(axis=0))   # doctest: +SKIP
"""

import collections
import contextlib
import functools
import numbers
import os

import numpy as np

from nst_tf import images
from nst_tf.errors import ConfigError, StyleWeightsError
from nst_tf.families import Family, load_keras_file
from nst_tf.models.arbitrary.inputs import (check_strength, check_style_size,  # noqa: F401
                                            check_style_weights, image_key, load_style,
                                            preprocess_style, resize_bilinear_tf1,
                                            shorter_side_size, style_array, style_sources)

_NETWORK_CACHE_SIZE = 2
_EMBEDDING_CACHE_SIZE = 256
_embeddings = collections.OrderedDict()   # (runner key, image key, style_size) -> [E] array

# --- Runners: the two compiled halves of a model -----------------------------------------------

class _KerasRunner:
    """``embed(images [B,h,w,3]) -> [B, E]`` and ``transform(content, embedding [S, E])`` of an
    :func:`~nst_tf.networks.arbitrary_network`, compiled once (shape-polymorphic)."""

    full = None

    def __init__(self, network, jit, fast):
        import tensorflow as tf

        from nst_tf.models.arbitrary.network import (arbitrary_config, predictor_kind,
                                                     style_predictor_of, transformer_of)

        self.network = network
        self.key = ("keras", id(network))
        predictor, transformer = style_predictor_of(network), transformer_of(network)
        config = arbitrary_config(network)
        self.embedding_size = size = config["embedding_size"]
        self.square_style = predictor_kind(config["predictor"]).square_style
        image = tf.TensorSpec([None, None, None, 3], tf.float32)
        self._embed = tf.function(lambda x: predictor(x, training=False),
                                  input_signature=[image], jit_compile=jit)
        self._transform = tf.function(
            lambda x, e: tf.cast(transformer([x, e], training=False), tf.float32),
            input_signature=[image, tf.TensorSpec([None, size], tf.float32)], jit_compile=jit)
        # Trace now in the requested form; the traced graph keeps it, the network is unchanged.
        with fast_form(transformer, fast):
            self._transform.get_concrete_function()

    def embed(self, batch):
        return self._embed(batch).numpy()

    def transform(self, content, embedding):
        return self._transform(content, embedding).numpy()


@contextlib.contextmanager
def fast_form(model, fast):
    """While tracing inside this block, ``model``'s layers use their fast forms when ``fast``
    (see :func:`nst_tf.networks.set_fast`); the flags are restored afterwards."""
    switches = [layer for layer in model._flatten_layers(include_self=False)
                if hasattr(layer, "fast")]
    saved = [layer.fast for layer in switches]
    for layer in switches:
        layer.fast = layer.fast or fast
    try:
        yield
    finally:
        for layer, flag in zip(switches, saved):
            layer.fast = flag


_RUNNERS = collections.OrderedDict()   # (id(network), jit, fast) -> (network, runner)


def runner_for(network, jit_compile="auto", fast=False):
    """The (cached) compiled runner of a Keras arbitrary-style network or a hub model."""
    from nst_tf.device import resolve_jit_compile
    from nst_tf.models.arbitrary.hub import HubModel

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


@functools.lru_cache(maxsize=_NETWORK_CACHE_SIZE)
def _load_mobile_cached(folder, stamps):
    del stamps  # cache key only: changed files are loaded again
    from magenta_compat.mobile import load_mobile_network

    return load_mobile_network(folder)


def load_mobile_folder(folder):
    """The network of a folder holding Magenta's mobile model as TF Lite / ONNX files
    (:func:`magenta_compat.mobile.load_mobile_network`); cached until a file changes."""
    from magenta_compat.mobile import model_files

    folder = os.path.realpath(folder)
    stamps = tuple((path, os.stat(path).st_mtime_ns, os.stat(path).st_size)
                   for path in model_files(folder))
    return _load_mobile_cached(folder, stamps)


def is_mobile_folder(path):
    """True for a folder holding TF Lite or ONNX files (Magenta's mobile model, by content)."""
    from magenta_compat.mobile import is_model_folder

    return is_model_folder(path)


def load_model(model="arbitrary"):
    """An arbitrary-style model from a preset name (``"arbitrary"``, ``"arbitrary-mobile"``), a
    checkpoint (prefix, folder, ``.tar.gz``), a ``nst-train --mode=arbitrary`` train_dir, a
    folder holding the mobile model's TF Lite / ONNX pair, a ``.keras`` file,
    ``"hub:<handle>"``, or a network (returned as is). Cached."""
    from magenta_compat import mobile
    from nst_tf.models.arbitrary.network import is_arbitrary_network

    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if isinstance(model, str):
        if model.startswith("hub:"):
            from nst_tf.models.arbitrary.hub import load_hub

            return load_hub(model[len("hub:"):])
        from nst_tf.training.train_dir import is_train_dir, load_train_dir

        if model in mobile.PRESETS and not os.path.exists(model):
            network = load_mobile_folder(mobile.resolve(model))
        elif model.endswith(".keras"):
            network = load_keras_file(model)
        elif is_train_dir(model):
            network = load_train_dir(model)
        elif is_mobile_folder(model):
            network = load_mobile_folder(model)
        else:
            from magenta_compat.arbitrary import checkpoint_prefix

            prefix = checkpoint_prefix(model)
            probe = prefix + ".index" if os.path.isfile(prefix + ".index") else prefix
            stat = os.stat(probe)
            network = _load_checkpoint_cached(os.path.realpath(prefix), stat.st_mtime_ns,
                                              stat.st_size)
    else:
        network = model
    from nst_tf.models.arbitrary.hub import HubModel

    if not isinstance(network, HubModel) and not is_arbitrary_network(network):
        raise ConfigError(f"model {getattr(network, 'name', network)!r} is not an "
                          "arbitrary-style network (nst_tf.networks.arbitrary_network)")
    return network


# --- Public helpers ----------------------------------------------------------------------------

def _embeddings_of(runner, sources, style_size):
    """``[K, E]`` embeddings of ``sources`` (paths / arrays), from the cache when possible."""
    result, todo = [None] * len(sources), {}
    for index, source in enumerate(sources):
        key, image, what = image_key(source, index)
        key = (runner.key, key, style_size)
        if key in _embeddings:
            _embeddings.move_to_end(key)
            result[index] = _embeddings[key]
        else:
            todo.setdefault(key, []).append((index, source, image, what))
    for key, entries in todo.items():
        index, source, image, what = entries[0]
        if image is None:
            image, what = load_style(source, index)
        prepared = preprocess_style(image, style_size, what=what, square=runner.square_style)
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
                          "nst_tf.models.arbitrary.hub.export_hub_module")


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
    return _embeddings_of(runner, style_sources(style), check_style_size(style_size))


def _content_batch(content, size):
    from nst_tf.models.pastiche.network import check_pastiche_input

    batch, single = images.image_batch(content, what="content image")
    if size is not None:
        size = check_style_size(size, "size")
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
    strength = check_strength(strength)
    style_size = check_style_size(style_size)
    batch_size = _check_batch_size(batch_size)
    runner = runner_for(load_model(model), jit_compile, fast)
    sources = style_sources(style)
    weights = None if style_weights is None else check_style_weights(style_weights, len(sources))
    batch, single = _content_batch(content, size)
    needs_embedding = weights is not None or strength != 1.0
    if getattr(runner, "embed", None) is None:
        if needs_embedding:
            _require_embeddings(runner, "style_weights / strength < 1")
        outputs = [runner.full(batch, preprocess_style(load_style(s, i)[0], style_size,
                                                       square=runner.square_style))
                   for i, s in enumerate(sources)]
    else:
        outputs = [_run_transformer(runner, batch, emb, batch_size) for emb in
                   _output_embeddings(runner, sources, weights, strength, batch, style_size)]
    result = np.stack(outputs, axis=1)                                    # [B, K, H', W', 3]
    if crop:
        result = result[:, :, :batch.shape[1], :batch.shape[2]]
    if not _several(style, weights):
        result = result[:, 0]
    if single:
        result = result[0]
    return np.ascontiguousarray(result, np.float32)


def _several(style, weights):
    """True when ``style`` gives one output per style image (not one image, not a mixture)."""
    one_style = (isinstance(style, (str, os.PathLike)) and not os.path.isdir(style)) or \
        (isinstance(style, np.ndarray) and style.ndim == 3)
    return not one_style and weights is None


def _output_embeddings(runner, sources, weights, strength, batch, style_size):
    """One embedding array ``[1 or B, E]`` per output: a style's (or the ``weights`` mixture),
    interpolated by ``strength`` towards each content image's own embedding."""
    embeddings = _embeddings_of(runner, sources, style_size)              # [K, E]
    if weights is not None:
        embeddings = (weights[:, None] * embeddings).sum(axis=0, keepdims=True)
    if strength != 1.0:
        identity = np.stack([_embeddings_of(runner, [image], style_size)[0]
                             for image in batch])                          # [B, E]
    outputs = []
    for embedding in embeddings:
        emb = embedding[None]
        if strength != 1.0:
            emb = strength * emb + (1.0 - strength) * identity
        outputs.append(np.ascontiguousarray(emb, np.float32))
    return outputs


class ArbitraryFamily(Family):
    """:func:`nst_tf.stylize` adapter for arbitrary-style models: ``style`` is one or more style
    images; presets ``"arbitrary"`` and ``"arbitrary-mobile"``; ``"hub:<handle>"`` loads a
    TF-Hub module; a folder of TF Lite / ONNX files is the mobile model."""

    name = "arbitrary"
    presets = ("arbitrary", "arbitrary-mobile")
    prefix = "hub:"
    runs_with = "nst-transform --style_images, nst_tf.stylize, nst-video or nst-stylize-dataset"

    def owns_network(self, network):
        from nst_tf.models.arbitrary.hub import HubModel
        from nst_tf.models.arbitrary.network import is_arbitrary_network

        return isinstance(network, HubModel) or is_arbitrary_network(network)

    def owns_checkpoint(self, shapes):
        from magenta_compat.arbitrary import is_arbitrary_checkpoint

        return is_arbitrary_checkpoint(shapes)

    def owns_path(self, path):
        from magenta_compat.arbitrary import is_tarball

        return (os.path.isfile(path) and is_tarball(path)) or is_mobile_folder(path)

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
            float32 in [0, 1], ``[H, W, 3]`` (one content, one style or mixture),
            ``[K, H, W, 3]`` (one content, K styles), ``[B, H, W, 3]`` or ``[B, K, H, W, 3]``
            for a batch of contents.
        """
        return stylize(content, style, network, style_weights=style_weights,
                       strength=strength, style_size=style_size, size=size, crop=crop,
                       batch_size=batch_size, jit_compile=jit_compile, fast=fast)

    def patch_models(self, network, batch, style, *, style_weights=None, strength=1.0,
                     style_size=256, size=None, crop=True, batch_size=4, jit_compile="auto",
                     fast=False):
        import tensorflow as tf

        from nst_tf.device import resolve_jit_compile
        from nst_tf.models.arbitrary.network import transformer_of
        from nst_tf.models.pastiche.network import MIN_PASTICHE_SIZE
        from nst_tf.patches import PatchModel

        strength, style_size = check_strength(strength), check_style_size(style_size)
        runner = runner_for(network, jit_compile, fast)
        if not isinstance(runner, _KerasRunner):
            raise ConfigError("a TF-Hub module cannot be run by patches (tile_size): it has no "
                              "Keras layers to replay statistics in; use the 'arbitrary' "
                              "checkpoint")
        sources = style_sources(style)
        weights = None if style_weights is None else check_style_weights(style_weights,
                                                                         len(sources))
        batch, _ = _content_batch(batch, size)
        outputs = _output_embeddings(runner, sources, weights, strength, batch, style_size)
        transformer = transformer_of(network)
        fast = bool(fast)

        def body(image, embedding):
            with fast_form(transformer, fast):
                return tf.cast(transformer([image, embedding], training=False), tf.float32)

        jit = resolve_jit_compile(jit_compile)
        models = [[PatchModel(image, body, ((transformer, 0),),
                              extras=(emb[b:b + 1] if len(emb) > 1 else emb,),
                              key=("arbitrary", network, fast, jit), jit_compile=jit,
                              min_size=MIN_PASTICHE_SIZE,
                              crop=tuple(batch.shape[1:3]) if crop else None)
                   for emb in outputs] for b, image in enumerate(batch)]
        return _several(style, weights), models

    style_input = "image"

    def prepare_style(self, network, style, *, style_size=256, jit_compile="auto"):
        """The style's embedding ``[E]`` (Magenta's preprocessing), float32."""
        runner = runner_for(network, jit_compile)
        _require_embeddings(runner, "a prepared style")
        image = preprocess_style(style_array(style), check_style_size(style_size),
                                 square=runner.square_style)
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
            weight = np.asarray([check_strength(s) for s in strengths], np.float64)[:, None]
            size = check_style_size(style_size)
            identity = np.stack([_embeddings_of(runner, [image], size)[0] for image in batch])
            embeddings = weight.astype(np.float32) * embeddings + \
                (1.0 - weight).astype(np.float32) * identity
        out = _run_transformer(runner, np.ascontiguousarray(batch, np.float32), embeddings,
                               len(batch))
        return np.ascontiguousarray(out[:, :batch.shape[1], :batch.shape[2]])
