"""Texture networks (Ulyanov et al. 2016, 2017): sample textures, stylize photos.

* :func:`synthesize` draws textures of any size (a multiple of ``2^(K-1)``) from a network built
  by :func:`nst_tf.networks.texture_network` in ``"texture"`` mode (or its ``.keras`` file):
  the same ``seed`` gives the same textures, different seeds different ones.
* :class:`TextureFamily` lets :func:`nst_tf.stylize` run texture networks in ``"stylize"`` mode
  (``style`` must be None; a ``seed`` option picks the noise).
* Training (``nst-train --mode=texture`` / ``--mode=texture_stylize``) is
  :mod:`nst_tf.models.texture.recipe`.

Example:
    >>> import nst_tf
    >>> from nst_tf.networks import texture_network
    >>> net = texture_network(num_scales=4, channels=8)
    >>> nst_tf.synthesize(net, size=(64, 96), seed=3, count=2).shape
    (2, 64, 96, 3)
"""

import numpy as np

from nst_tf import images
from nst_tf.errors import ConfigError, ImageError
from nst_tf.families import Family

# --- Sampling -------------------------------------------------------------------------------------

def reseed(network, seed):
    """Restart every noise layer of ``network`` from a stream derived from ``(seed, scale)``."""
    from nst_tf.models.texture.network import noise_layers

    for index, layer in enumerate(noise_layers(network)):
        layer.reseed(int(np.random.SeedSequence([int(seed), index]).generate_state(1)[0]))


def _texture_network(model, mode):
    from nst_tf import families
    from nst_tf.models.texture.network import texture_config

    family, network = families.resolve(model)
    if not isinstance(family, TextureFamily):
        raise ConfigError(f"{getattr(network, 'name', model)!r} is a {family.name} model, not a "
                          "texture network (build one with nst_tf.networks.texture_network or "
                          "nst-train --mode=texture)")
    config = texture_config(network)
    if config["noise_input"]:
        raise ConfigError(f"{network.name!r} takes explicit noise inputs; call it directly")
    if config["mode"] != mode:
        hint = ("it makes textures from noise: use nst_tf.synthesize(model, size=...)"
                if config["mode"] == "texture" else
                "it stylizes photos: use nst_tf.stylize(content, model=...)")
        raise ConfigError(f"{network.name!r} is a texture network in {config['mode']!r} mode; "
                          f"{hint}")
    return network


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _run(network, batches, seed, jit_compile):
    import tensorflow as tf

    from nst_tf.device import resolve_jit_compile
    from nst_tf.models.johnson.family import _forward

    forward = _forward(network, resolve_jit_compile(jit_compile))
    outputs = []
    for index, batch in enumerate(batches):
        reseed(network, int(np.random.SeedSequence([int(seed), index]).generate_state(1)[0]))
        outputs.append(forward(tf.constant(batch)).numpy())
    return np.clip(np.concatenate(outputs), 0.0, 1.0).astype(np.float32)


def synthesize(model, size=(256, 256), seed=0, count=1, batch_size=4, jit_compile="auto"):
    """Sample ``count`` textures of ``size`` from a texture network.

    Args:
        model: a network from :func:`~nst_tf.networks.texture_network` (``mode="texture"``), or
            the ``.keras`` file of one (``nst-train --mode=texture --export_keras=...``).
        size: ``(H, W)`` or an int; multiples of ``2^(K-1)`` (32 for the default 6 scales).
        seed: the noise; the same seed (with the same ``count`` and ``batch_size``) gives the
            same textures, different seeds different ones.
        count: number of textures.
        batch_size: textures per forward pass.
        jit_compile: ``"auto"`` (XLA on GPU/TPU), True or False.

    Returns:
        float32 ``[count, H, W, 3]`` in [0, 1].

    Raises:
        ImageError: a size the network cannot make (the message names the nearest valid ones).
        ConfigError: not a texture network, or a stylization one (use :func:`nst_tf.stylize`).

    Example:
        >>> from nst_tf.networks import texture_network
        >>> net = texture_network(num_scales=3)
        >>> a = synthesize(net, 16, seed=1)
        >>> bool((a == synthesize(net, 16, seed=1)).all()), bool((a != synthesize(net, 16)).any())
        (True, True)
    """
    from nst_tf.models.texture.network import check_texture_size

    network = _texture_network(model, "texture")
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    try:
        height, width = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ConfigError(f"size must be (height, width) or an int, got {size!r}") from None
    check_texture_size(network, height, width)
    count = _positive_int(count, "count")
    batch_size = _positive_int(batch_size, "batch_size")
    batches = [np.zeros((min(batch_size, count - start), height, width, 3), np.float32)
               for start in range(0, count, batch_size)]
    return _run(network, batches, seed, jit_compile)


def _pad_to(batch, multiple, minimum):
    """Reflect-pad ``[B, H, W, 3]`` at the bottom / right to sides that are multiples of
    ``multiple`` and at least ``minimum``."""
    height, width = batch.shape[1:3]
    target = [max(minimum, -(-side // multiple) * multiple) for side in (height, width)]
    pads = ((0, 0), (0, target[0] - height), (0, target[1] - width), (0, 0))
    return np.pad(batch, pads, mode="symmetric") if any(p[1] for p in pads) else batch


def _check_no_style(network, style):
    if style is not None:
        raise ConfigError(f"{network.name!r} is a texture stylization network trained on one "
                          f"style: it takes no style (got {type(style).__name__}); pass "
                          "style=None")


class TextureFamily(Family):
    """:func:`nst_tf.stylize` adapter for texture networks (``nst_tf.networks.texture_network``).

    Only ``mode="stylize"`` networks stylize photos; ``mode="texture"`` networks are sampled with
    :func:`synthesize`.
    """

    name = "texture"
    runs_with = "nst_tf.synthesize (texture networks) or nst_tf.stylize (stylization networks)"

    def owns_network(self, network):
        from nst_tf.models.texture.network import is_texture_network

        return is_texture_network(network)

    def stylize(self, network, content, style, *, seed=0, batch_size=4, jit_compile="auto"):
        """Output ``[H, W, 3]`` for one image, ``[B, H, W, 3]`` for a batch, float32 in [0, 1].

        Any content size works: the image is reflect-padded to a multiple of ``2^(K-1)`` and the
        output cropped back. ``seed`` picks the noise (same seed, same output).
        """
        from nst_tf.models.texture.network import texture_config

        _check_no_style(network, style)
        network = _texture_network(network, "stylize")
        batch_size = _positive_int(batch_size, "batch_size")
        batch, single = images.image_batch(content, what="content image")
        config = texture_config(network)
        height, width = batch.shape[1:3]
        padded = _pad_to(batch, config["multiple"], config["min_size"])
        if padded.shape[1] * padded.shape[2] > 64 * height * width:
            raise ImageError(f"content image {width}x{height} is too small for this texture "
                             f"network (at least {config['min_size']} px per side)")
        chunks = [padded[i:i + batch_size] for i in range(0, len(padded), batch_size)]
        result = _run(network, chunks, seed, jit_compile)[:, :height, :width]
        return result[0] if single else result

    def patch_models(self, network, batch, style, *, seed=0, batch_size=4, jit_compile="auto"):
        """Each image's noise is drawn whole, as :meth:`stylize` draws it for the chunk of
        ``batch_size`` images holding it (so the outputs match), and cropped with the patches;
        a thumbnail smaller than the image gets noise of its own size."""
        import tensorflow as tf

        from nst_tf.device import resolve_jit_compile
        from nst_tf.models.texture.network import noise_layers, texture_config
        from nst_tf.patches import PatchModel

        _check_no_style(network, style)
        network = _texture_network(network, "stylize")
        batch_size = _positive_int(batch_size, "batch_size")
        config = texture_config(network)
        padded = _pad_to(batch, config["multiple"], config["min_size"])
        twin = _twin(network)
        fills = noise_layers(network)

        def body(image, *noise):
            return tf.cast(twin([image, *noise], training=False), tf.float32)

        def aligned_for(index):
            chunk, position = divmod(index, batch_size)
            count = min(batch_size, len(batch) - chunk * batch_size)

            def aligned(height, width):
                reseed(network, int(np.random.SeedSequence([int(seed), chunk])
                                    .generate_state(1)[0]))
                return [(layer.draw(count, height, width).numpy()[position:position + 1],
                         layer.ratio) for layer in fills]
            return aligned

        jit = resolve_jit_compile(jit_compile)
        return False, [[PatchModel(image, body, ((twin, 0),), key=("texture", twin, jit),
                                   jit_compile=jit, min_size=config["min_size"],
                                   multiple=config["multiple"], aligned=aligned_for(index),
                                   crop=tuple(batch.shape[1:3]))]
                       for index, image in enumerate(padded)]


_TWINS = {}


def _twin(network):
    """``network`` with noise inputs and its current weights (the last one is cached)."""
    from nst_tf.models.texture.network import copy_weights, with_noise_inputs

    if id(network) in _TWINS:
        return copy_weights(network, _TWINS[id(network)][1])
    _TWINS.clear()
    _TWINS[id(network)] = (network, with_noise_inputs(network))
    return _TWINS[id(network)][1]
