"""Texture networks (Ulyanov et al. 2016, 2017): sample textures, stylize photos, train defaults.

* :func:`synthesize` draws textures of any size (a multiple of ``2^(K-1)``) from a network built
  by :func:`nst_tf.networks.texture_network` in ``"texture"`` mode (or its ``.keras`` file):
  the same ``seed`` gives the same textures, different seeds different ones.
* :class:`TextureFamily` lets :func:`nst_tf.stylize` run texture networks in ``"stylize"`` mode
  (``style`` must be None; a ``seed`` option picks the noise).
* Training (``nst-train --mode=texture`` / ``--mode=texture_stylize``, see
  :func:`nst_tf.training.train`) takes its defaults from :func:`training_defaults`: the Gram loss
  on VGG-19 relu1_1 … relu5_1 with the paper's per-layer normalization
  (:func:`ulyanov_style_weights`), Adam 0.1 and the paper's schedule (:class:`UlyanovSchedule`).

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

#: The style layers of Texture Networks: relu1_1 … relu5_1 of VGG-19 (Keras names).
TEXTURE_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1",
                        "block5_conv1")
#: Their channel counts C_l.
TEXTURE_STYLE_CHANNELS = (64, 128, 256, 512, 512)
#: The stylization network's content layer: relu4_2.
TEXTURE_CONTENT_LAYER = "block4_conv2"


def ulyanov_style_weights(style_weight=1e3):
    """``{layer: style_weight / C_l²}`` on :data:`TEXTURE_STYLE_LAYERS`.

    ``texture_nets`` normalizes the Gram matrix by ``C·H·W`` (ours, :func:`nst_tf.losses.gram_matrix`,
    by ``H·W``) and takes the MSE, so its per-layer loss is ours divided by ``C_l²``: these
    weights give exactly its loss (style weight 1e3 in its stylization setting).

    Example:
        >>> ulyanov_style_weights(64.0 ** 2)["block1_conv1"]
        1.0
    """
    return {layer: float(style_weight) / channels ** 2
            for layer, channels in zip(TEXTURE_STYLE_LAYERS, TEXTURE_STYLE_CHANNELS)}


def training_defaults(mode):
    """Defaults of :func:`nst_tf.training.train` for ``mode`` ``"texture"`` or
    ``"texture_stylize"``: the paper's setting (Ulyanov et al. 2016, §4 and ``texture_nets``):
    VGG-19 with max pooling, style relu1_1 … relu5_1 (:func:`ulyanov_style_weights`, weight
    1e3), content relu4_2 with weight 0.6 (stylization only), Adam at 0.1 for 10 epochs of 200
    iterations with the rate ×0.7 per epoch after 4 (:class:`UlyanovSchedule`)."""
    if mode not in ("texture", "texture_stylize"):
        raise ConfigError(f"no texture training defaults for mode {mode!r}")
    return {"learning_rate": 0.1, "train_steps": 2000, "backbone": "vgg19", "pooling": "max",
            "style_weights": ulyanov_style_weights(1e3),
            "content_weights": {} if mode == "texture" else {TEXTURE_CONTENT_LAYER: 0.6},
            "lr_schedule": "ulyanov"}


def _schedule_class():
    import keras

    @keras.saving.register_keras_serializable(package="nst_tf")
    class UlyanovSchedule(keras.optimizers.schedules.LearningRateSchedule):
        """``initial · decay^max(0, epoch − delay + 1)`` with ``epoch = step // epoch_steps``:
        constant for ``delay`` epochs, then ×``decay`` at the start of every later epoch
        (the paper: 0.1, ×0.7, 200-step epochs, a 4-epoch delay)."""

        def __init__(self, initial, decay=0.7, epoch_steps=200, delay=4):
            self.initial, self.decay = float(initial), float(decay)
            self.epoch_steps, self.delay = int(epoch_steps), int(delay)

        def __call__(self, step):
            import tensorflow as tf

            epoch = tf.cast(step, tf.float32) // float(self.epoch_steps)
            power = tf.maximum(0.0, epoch - float(self.delay) + 1.0)
            return self.initial * tf.pow(self.decay, power)

        def get_config(self):
            return {"initial": self.initial, "decay": self.decay,
                    "epoch_steps": self.epoch_steps, "delay": self.delay}

    return UlyanovSchedule


_SCHEDULE = []


def UlyanovSchedule(initial, decay=0.7, epoch_steps=200, delay=4):  # noqa: N802 (a class factory)
    """The paper's learning-rate schedule as a Keras ``LearningRateSchedule`` (defined lazily so
    importing this module does not import Keras).

    Example:
        >>> schedule = UlyanovSchedule(0.1)
        >>> [round(float(schedule(s)), 4) for s in (0, 799, 800, 1000, 1999)]
        [0.1, 0.1, 0.07, 0.049, 0.0118]
    """
    if not _SCHEDULE:
        _SCHEDULE.append(_schedule_class())
    return _SCHEDULE[0](initial, decay, epoch_steps, delay)


def canvas_dataset(batch_size, image_size):
    """The input of a texture (noise-only) network in training: endless all-zero canvases
    ``[batch_size, image_size, image_size, 3]`` (the network draws its own noise)."""
    import tensorflow as tf

    canvas = tf.zeros([int(batch_size), int(image_size), int(image_size), 3], tf.float32)
    return tf.data.Dataset.from_tensors(canvas).repeat()


# --- Sampling -------------------------------------------------------------------------------------

def reseed(network, seed):
    """Restart every noise layer of ``network`` from a stream derived from ``(seed, scale)``."""
    from nst_tf.networks import noise_layers

    for index, layer in enumerate(noise_layers(network)):
        layer.reseed(int(np.random.SeedSequence([int(seed), index]).generate_state(1)[0]))


def _texture_network(model, mode):
    from nst_tf import families
    from nst_tf.networks import texture_config

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
    from nst_tf.networks import check_texture_size

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


class TextureFamily(Family):
    """:func:`nst_tf.stylize` adapter for texture networks (``nst_tf.networks.texture_network``).

    Only ``mode="stylize"`` networks stylize photos; ``mode="texture"`` networks are sampled with
    :func:`synthesize`.
    """

    name = "texture"

    def owns_network(self, network):
        from nst_tf.networks import is_texture_network

        return is_texture_network(network)

    def stylize(self, network, content, style, *, seed=0, batch_size=4, jit_compile="auto"):
        """Output ``[H, W, 3]`` for one image, ``[B, H, W, 3]`` for a batch, float32 in [0, 1].

        Any content size works: the image is reflect-padded to a multiple of ``2^(K-1)`` and the
        output cropped back. ``seed`` picks the noise (same seed, same output).
        """
        from nst_tf.networks import texture_config

        if style is not None:
            raise ConfigError(f"{network.name!r} is a texture stylization network trained on one "
                              f"style: it takes no style (got {type(style).__name__}); pass "
                              "style=None")
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
