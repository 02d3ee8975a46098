"""Ulyanov et al.'s multi-scale texture network (Texture Networks, ICML 2016; Improved Texture
Networks, CVPR 2017): a small generator fed with noise at K scales, trained with a Gram loss.

::

    scale 2^(K-1)  noise ─▶ block ──────────────────────────────▶ ×2 ─┐
    scale 2^(K-2)  noise ─▶ block ─▶ norm ─┐  norm ◀──────────────────┘
                                           concat ─▶ block(2C) ─▶ ×2 ─┐
    ...                                                               ...
    scale 1        noise ─▶ block ─▶ norm ─┐  norm ◀──────────────────┘
                                           concat ─▶ block(K·C) ─▶ 1×1 conv ─▶ sigmoid ─▶ RGB

A *block* is 3×3 conv → 3×3 conv → 1×1 conv, each followed by a normalization and a leaky ReLU
(the ``texture_nets`` code: ``C = 8`` channels per scale; the join blocks have ``C·i`` channels after
joining ``i`` scales). Upsampling is nearest-neighbour ×2. With ``mode="stylize"`` each scale's
input is the content image average-pooled to that scale concatenated with the noise (the 2016
stylization network). Convolutions see a circularly padded input (``padding="circular"``, the
default for textures: the output tiles without seams) or a reflect-padded one (the default for
stylization).

Noise comes from :class:`~nst_tf.layers.NoiseFill` layers: fresh uniform noise on every call,
seeded by a ``keras.random.SeedGenerator`` (see :func:`nst_tf.synthesize` for seeded sampling).
``noise_input=True`` builds the same network (same layer names and weights) with the noise as
explicit inputs ``noise_<ratio>`` instead.

The model's first input is ``[B, H, W, 3]``: for textures a *canvas* whose values are ignored
(only its size matters); for stylization the content image in [0, 1]. H and W must be multiples
of ``2^(K-1)`` (and at least ``2^K`` with reflect padding). The output is float32
``[B, H, W, 3]`` in (0, 1).

Example:
    >>> import numpy as np
    >>> from nst_tf.networks import texture_network
    >>> net = texture_network(num_scales=4, channels=8, seed=0)
    >>> net(np.zeros((2, 64, 48, 3), "float32")).shape
    TensorShape([2, 64, 48, 3])
"""

import keras

from nst_tf.batch_norm import BatchNorm
from nst_tf.errors import ImageError
from nst_tf.layers import (CircularPad2D, InstanceNormalization, NearestUpsample2D, NoiseFill,
                           ReflectionPad2D)

TEXTURE_MODES = ("texture", "stylize")
TEXTURE_NORMS = ("batch", "instance")
TEXTURE_PADDINGS = ("circular", "reflect")
TEXTURE_ACTIVATIONS = ("leaky_relu", "relu")


def _normalization(norm, name):
    if norm == "batch":
        # Torch's defaults (momentum 0.1 there is 0.9 here, eps 1e-5), as in texture_nets.
        # Global-batch statistics under a tf.distribute strategy (nst_tf.batch_norm).
        return BatchNorm(momentum=0.9, epsilon=1e-5, name=name)
    return InstanceNormalization(name=name)


def _activation(kind, name):
    if kind == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.01, name=name)   # Torch's default slope
    return keras.layers.ReLU(name=name)


def _conv_block(x, name, channels, norm, padding, activation):
    """3×3 → 3×3 → 1×1 convs, each padded (3×3), without bias, then normalized and activated."""
    for index, kernel in enumerate((3, 3, 1), start=1):
        layer_name = f"{name}_conv{index}"
        if kernel > 1:
            pad = CircularPad2D if padding == "circular" else ReflectionPad2D
            x = pad(kernel // 2, name=f"{layer_name}_pad")(x)
        x = keras.layers.Conv2D(channels, kernel, padding="valid", use_bias=False,
                                name=layer_name)(x)
        x = _normalization(norm, f"{layer_name}_norm")(x)
        x = _activation(activation, f"{layer_name}_act")(x)
    return x


def texture_ratios(num_scales):
    """Downsampling ratios of the scales, coarsest first: ``(2^(K-1), ..., 2, 1)``."""
    return tuple(2 ** (int(num_scales) - 1 - i) for i in range(int(num_scales)))


def texture_network(num_scales=6, channels=8, mode="texture", norm="batch", padding=None,
                    noise_channels=3, activation="leaky_relu", noise_input=False, seed=None,
                    name=None):
    """Build Ulyanov et al.'s multi-scale texture (or stylization) generator.

    Args:
        num_scales: K, the number of scales (ratios ``2^(K-1) ... 1``); the ``texture_nets``
            code uses 6, the paper describes 5.
        channels: C, conv channels per scale (8 in the paper).
        mode: ``"texture"`` (noise only; the first input is a canvas that sets the size) or
            ``"stylize"`` (noise plus the pooled content image at every scale).
        norm: ``"batch"`` (the 2016 paper) or ``"instance"`` (the 2017 follow-up).
        padding: ``"circular"`` (tileable output) or ``"reflect"``; None picks circular for
            textures and reflect for stylization.
        noise_channels: uniform noise channels per scale (3 in the paper).
        activation: ``"leaky_relu"`` (slope 0.01, the 2016 code) or ``"relu"``.
        noise_input: take the noise as inputs ``noise_<ratio>`` ``[B, H/ratio, W/ratio,
            noise_channels]`` (coarsest first) instead of drawing it; same layers and weights.
        seed: seed of the noise generators (scale ``i`` uses ``seed + i``); None draws them from
            Keras' global seed.
        name: model name (default ``"texture"`` or ``"texture_stylize"``).

    Returns:
        A ``keras.Model``; see the module docstring for its inputs and output.

    Example:
        >>> net = texture_network(num_scales=3, mode="stylize", norm="instance")
        >>> import numpy as np
        >>> net(np.random.rand(1, 32, 32, 3).astype("float32")).shape
        TensorShape([1, 32, 32, 3])
    """
    if mode not in TEXTURE_MODES:
        raise ValueError(f"mode must be one of {TEXTURE_MODES}, got {mode!r}")
    if norm not in TEXTURE_NORMS:
        raise ValueError(f"norm must be one of {TEXTURE_NORMS}, got {norm!r}")
    padding = padding or ("circular" if mode == "texture" else "reflect")
    if padding not in TEXTURE_PADDINGS:
        raise ValueError(f"padding must be one of {TEXTURE_PADDINGS}, got {padding!r}")
    if activation not in TEXTURE_ACTIVATIONS:
        raise ValueError(f"activation must be one of {TEXTURE_ACTIVATIONS}, got {activation!r}")
    for what, value in (("num_scales", num_scales), ("channels", channels),
                        ("noise_channels", noise_channels)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{what} must be a positive integer, got {value!r}")
    num_scales, channels, noise_channels = int(num_scales), int(channels), int(noise_channels)
    ratios = texture_ratios(num_scales)

    image = keras.Input((None, None, 3), name="canvas" if mode == "texture" else "content")
    noises = [keras.Input((None, None, noise_channels), name=f"noise_{r}") for r in ratios] \
        if noise_input else []
    x = None
    for i, ratio in enumerate(ratios):
        scale = f"scale{ratio}"
        fill = NoiseFill(noise_channels, ratio, seed=None if seed is None else int(seed) + i,
                         name=f"{scale}_noise")
        y = fill([image, noises[i]]) if noise_input else fill(image)
        if mode == "stylize":
            pooled = (keras.layers.AveragePooling2D(ratio, name=f"{scale}_pool")(image)
                      if ratio > 1 else image)
            y = keras.layers.Concatenate(name=f"{scale}_input")([pooled, y])
        y = _conv_block(y, f"{scale}_block", channels, norm, padding, activation)
        if x is not None:
            # Normalize both branches before joining: balances their gradients (the paper).
            x = _normalization(norm, f"{scale}_join_coarse_norm")(x)
            y = _normalization(norm, f"{scale}_join_fine_norm")(y)
            x = keras.layers.Concatenate(name=f"{scale}_join")([x, y])
            x = _conv_block(x, f"{scale}_mix", channels * (i + 1), norm, padding, activation)
        else:
            x = y
        if ratio > 1:
            x = NearestUpsample2D(2, name=f"{scale}_upsample")(x)
    x = keras.layers.Conv2D(3, 1, name="to_rgb")(x)
    x = keras.layers.Activation("sigmoid", dtype="float32", name="output")(x)
    inputs = [image, *noises] if noise_input else image
    return keras.Model(inputs, x, name=name or ("texture" if mode == "texture"
                                                else "texture_stylize"))


def noise_layers(network):
    """The network's :class:`~nst_tf.layers.NoiseFill` layers, coarsest scale first."""
    layers = [layer for layer in getattr(network, "layers", ()) if isinstance(layer, NoiseFill)]
    return sorted(layers, key=lambda layer: -layer.ratio)


def is_texture_network(network):
    """True for a network built by :func:`texture_network` (it has NoiseFill layers)."""
    return bool(noise_layers(network))


def texture_config(network):
    """``{"num_scales", "mode", "padding", "multiple", "min_size", "noise_input",
    "noise_channels"}`` of a texture network (read from its layers); ValueError otherwise.

    ``multiple`` is the factor output sizes must be a multiple of; ``min_size`` the smallest
    side (``multiple``, or ``2·multiple`` with reflect padding, which needs 2 pixels at the
    coarsest scale).

    Example:
        >>> texture_config(texture_network(num_scales=4))["multiple"]
        8
    """
    fills = noise_layers(network)
    if not fills:
        raise ValueError(f"{getattr(network, 'name', network)!r} is not a texture network "
                         "(no NoiseFill layers)")
    multiple = fills[0].ratio
    names = {layer.name for layer in network.layers}
    circular = any(isinstance(layer, CircularPad2D) for layer in network.layers)
    return {"num_scales": len(fills),
            "mode": "stylize" if f"scale{multiple}_input" in names else "texture",
            "padding": "circular" if circular else "reflect",
            "multiple": multiple,
            "min_size": multiple if circular else 2 * multiple,
            "noise_input": len(network.inputs) > 1,
            "noise_channels": fills[0].channels}


def check_texture_size(network, height, width):
    """Raise :class:`~nst_tf.errors.ImageError` unless the network can make ``height x width``
    images (multiples of ``2^(K-1)``, at least ``min_size``); returns ``(height, width)``."""
    config = texture_config(network)
    m, low = config["multiple"], config["min_size"]
    bad = [side for side in (height, width) if side % m or side < low]
    if bad:
        def near(n):
            down, up = max(low, n // m * m), max(low, -(-n // m) * m)
            return str(up) if down == up else f"{down} or {up}"
        raise ImageError(f"a texture network with {config['num_scales']} scales makes images "
                         f"whose height and width are multiples of {m} (2^{config['num_scales'] - 1})"
                         f" and at least {low}; got {height}x{width} (H x W): use "
                         f"{near(height)} x {near(width)}")
    return height, width


def with_noise_inputs(network):
    """The same network (same layers and weights) taking its noise as inputs ``noise_<ratio>``
    (``texture_network(..., noise_input=True)``): run it on crops of noise drawn for a larger
    image (tiled stylization). A network that already takes noise is returned as is.

    Example:
        >>> net = texture_network(num_scales=3, mode="stylize")
        >>> [tensor.name for tensor in with_noise_inputs(net).inputs]
        ['content', 'noise_4', 'noise_2', 'noise_1']
    """
    config = texture_config(network)
    if config["noise_input"]:
        return network
    from nst_tf.device import dtype_policy

    coarsest = network.get_layer(f"scale{config['multiple']}_block_conv1")
    with dtype_policy(coarsest.dtype_policy.name):
        twin = texture_network(
            num_scales=config["num_scales"], channels=coarsest.filters, mode=config["mode"],
            padding=config["padding"], noise_channels=config["noise_channels"],
            norm="batch" if isinstance(network.get_layer(coarsest.name + "_norm"),
                                       keras.layers.BatchNormalization) else "instance",
            activation="leaky_relu" if isinstance(network.get_layer(coarsest.name + "_act"),
                                                  keras.layers.LeakyReLU) else "relu",
            noise_input=True, name=network.name)
    return copy_weights(network, twin)


def copy_weights(source, target):
    """Copy every weight of ``source`` into the layer of the same name in ``target``; returns
    ``target``."""
    for layer in source.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())
    return target
