"""Magenta's multi-style (pastiche) transformer.

:func:`pastiche_network` is the conditional-instance-norm transformer of Dumoulin et al. (2017),
layer for layer the network of Magenta's ``image_stylization`` model, so Magenta checkpoints load
into it (see :mod:`magenta_compat.checkpoint`). :data:`PASTICHE_LAYERS` is the one table that ties
every Keras layer to its Magenta variable scope.

Example:
    >>> import numpy as np
    >>> from nst_tf.networks import pastiche_network
    >>> net = pastiche_network(num_styles=3, alpha=0.25)
    >>> image = np.random.rand(1, 37, 53, 3).astype("float32")
    >>> weights = np.array([[0.5, 0.5, 0.0]], "float32")   # one mixture, shape [1, N]
    >>> net([image, weights]).shape                         # output 4*ceil(H/4) x 4*ceil(W/4)
    TensorShape([1, 40, 56, 3])
"""

import collections

import keras
import numpy as np

from nst_tf.errors import ConfigError, ImageError
from nst_tf.layers import ConditionalInstanceNorm, ReflectConv2D

#: One conv of the pastiche network: Magenta scope (under ``transformer/``), kernel size, stride,
#: output width at alpha=1 (``None``: 3 RGB channels, independent of alpha), upsampling factor
#: applied before the conv, and activation after the CIN.
ConvSpec = collections.namedtuple("ConvSpec", "scope kernel stride width upsample activation")


def _pastiche_layers():
    specs = [ConvSpec("contract/conv1", 9, 1, 32, 1, "relu"),
             ConvSpec("contract/conv2", 3, 2, 64, 1, "relu"),
             ConvSpec("contract/conv3", 3, 2, 128, 1, "relu")]
    for block in range(1, 6):
        specs.append(ConvSpec(f"residual/residual{block}/conv1", 3, 1, 128, 1, "relu"))
        specs.append(ConvSpec(f"residual/residual{block}/conv2", 3, 1, 128, 1, None))
    specs += [ConvSpec("expand/conv1/conv", 3, 1, 64, 2, "relu"),
              ConvSpec("expand/conv2/conv", 3, 1, 32, 2, "relu"),
              ConvSpec("expand/conv3/conv", 9, 1, None, 1, "sigmoid")]
    return tuple(specs)


#: The 16 convs of the network in order. Residual blocks add their input after ``.../conv2``.
PASTICHE_LAYERS = _pastiche_layers()

#: Smallest input side: the first 9x9 conv reflect-pads by 4, which needs 5 pixels.
MIN_PASTICHE_SIZE = 5


def keras_name(scope):
    """Keras layer name prefix of a Magenta scope: ``"residual/residual3/conv2"`` →
    ``"residual_residual3_conv2"``. The conv (a :class:`~nst_tf.layers.ReflectConv2D`, which also
    upsamples and pads) is ``<prefix>``, its CIN ``<prefix>_norm``, the activation
    ``<prefix>_<activation>``."""
    return scope.replace("/", "_")


def magenta_variable_names(scope):
    """Magenta checkpoint names of one conv: ``{"kernel": ..., "gamma": ..., "beta": ...}``."""
    prefix = f"transformer/{scope}"
    return {"kernel": f"{prefix}/weights",
            "gamma": f"{prefix}/InstanceNorm/gamma",
            "beta": f"{prefix}/InstanceNorm/beta"}


def pastiche_widths(alpha):
    """Conv output widths ``{scope: channels}`` for width multiplier ``alpha`` (``int(alpha*w)``)."""
    widths = {}
    for spec in PASTICHE_LAYERS:
        widths[spec.scope] = 3 if spec.width is None else int(alpha * spec.width)
        if widths[spec.scope] < 1:
            raise ValueError(f"alpha={alpha} gives {widths[spec.scope]} channels for {spec.scope}")
    return widths


def pastiche_output_size(height, width):
    """Output (H, W) of the pastiche network for an input of (H, W): ``4*ceil(H/4)``, ``4*ceil(W/4)``."""
    return 4 * -(-int(height) // 4), 4 * -(-int(width) // 4)


def check_pastiche_input(image, what="image"):
    """Raise :class:`ImageError` unless ``image`` ([H,W,3] or [B,H,W,3]) can go through the network.

    Checks the rank, 3 channels, and H, W >= 5 (the first layer reflect-pads by 4).
    """
    shape = tuple(np.shape(image))
    if len(shape) not in (3, 4) or shape[-1] != 3:
        raise ImageError(f"{what} must have shape [H, W, 3] or [B, H, W, 3], got {shape}")
    height, width = shape[-3], shape[-2]
    if height < MIN_PASTICHE_SIZE or width < MIN_PASTICHE_SIZE:
        raise ImageError(f"{what} is {width}x{height} pixels (W x H); the pastiche network needs "
                         f"at least {MIN_PASTICHE_SIZE}x{MIN_PASTICHE_SIZE}")


def _conv_cin(x, style, spec, channels, num_styles, fast=False):
    """Magenta's conv block: [upsample →] reflect pad → VALID conv, no bias → CIN → activation."""
    name = keras_name(spec.scope)
    # One layer for upsample + reflect pad + conv, so that it can use a faster equivalent form.
    x = ReflectConv2D(channels, spec.kernel, strides=spec.stride, upsample=spec.upsample,
                      kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01), fast=fast,
                      name=name)(x)
    x = ConditionalInstanceNorm(num_styles, fast=fast, name=f"{name}_norm")([x, style])
    if spec.activation is not None:
        # The sigmoid output is always float32, also under a mixed-precision policy.
        dtype = "float32" if spec.activation == "sigmoid" else None
        x = keras.layers.Activation(spec.activation, name=f"{name}_{spec.activation}",
                                    dtype=dtype)(x)
    return x


def pastiche_network(num_styles, alpha=1.0, style_input="weights", name="pastiche", fast=False):
    """Build Magenta's conditional-instance-norm transformer as a functional Keras model.

    Inputs:
        * ``image``: float32 ``[B, H, W, 3]`` in [0, 1], any H, W >= 5
          (validate with :func:`check_pastiche_input`).
        * ``style``: with ``style_input="weights"``, float32 mixing weights ``[S, N]`` with
          ``S = 1`` (one mixture for the whole batch, like Magenta's ``weighted_instance_norm``) or
          ``S = B`` (one mixture per image); weights are not normalized. With
          ``style_input="labels"``, int32 labels ``[B]``, one style per image (Magenta's
          ``conditional_instance_norm``).

    Output: float32 ``[B, 4*ceil(H/4), 4*ceil(W/4), 3]`` in (0, 1) (sigmoid).

    Layers are named after Magenta scopes (:func:`keras_name`); ``num_styles`` and ``alpha`` can
    be read back with :func:`pastiche_config`. Conv kernels start from N(0, 0.01), gamma 1, beta 0.

    Args:
        num_styles: number of styles N (32 for Magenta's "varied", 10 for "monet").
        alpha: width multiplier; conv widths are ``int(alpha * 32/64/128)``.
        style_input: ``"weights"`` or ``"labels"``.
        name: model name.
        fast: compute the same function in faster forms: sub-pixel convs for the upsampling
            convs, the RGB output conv on a space-to-depth grid
            (:class:`~nst_tf.layers.ReflectConv2D`). ~1.4x less CPU time than
            Magenta at 512x512 (``benchmarks/pastiche.py``); outputs differ from Magenta's by
            float32 rounding (< 1e-4 in the tests; ~3e-4 measured at 512x512), while they stay
            within twice Magenta's own float32 error of a float64 evaluation. The default
            ``False`` keeps Magenta's kernels: the network's outputs equal Magenta's graph to
            ~1e-7 in the tests (its instance-norm moments are summed by rows,
            :func:`~nst_tf.layers.spatial_moments`, where Magenta's drift with the image size:
            1.6e-3 of the variance at 4000x3000). Switch later with
            :func:`set_fast`. Keep ``False`` for TFLite export (the fast kernels are larger).
    """
    if style_input not in ("weights", "labels"):
        raise ValueError(f"style_input must be 'weights' or 'labels', got {style_input!r}")
    num_styles = int(num_styles)
    if num_styles < 1:
        raise ValueError(f"num_styles must be >= 1, got {num_styles}")
    widths = pastiche_widths(alpha)
    image = keras.Input(shape=(None, None, 3), name="image")
    if style_input == "weights":
        style = keras.Input(shape=(num_styles,), name="style")
    else:
        style = keras.Input(shape=(), dtype="int32", name="style")

    x = image
    residual_input = None
    for spec in PASTICHE_LAYERS:
        if spec.scope.endswith("/conv1") and spec.scope.startswith("residual/"):
            residual_input = x
        x = _conv_cin(x, style, spec, widths[spec.scope], num_styles, fast)
        if spec.scope.endswith("/conv2") and spec.scope.startswith("residual/"):
            block = spec.scope.split("/")[1]
            x = keras.layers.Add(name=f"residual_{block}_add")([residual_input, x])
    return keras.Model(inputs=[image, style], outputs=x, name=name)


def set_fast(network, fast=True):
    """Switch every :class:`~nst_tf.layers.ReflectConv2D`,
    :class:`~nst_tf.layers.ConditionalInstanceNorm` and
    :class:`~nst_tf.networks.ConditionalStyleNorm` of ``network`` (nested models included) to
    the fast (or exact) form
    (see :func:`pastiche_network`); returns how many layers were switched. Works on loaded
    networks (e.g. from :func:`magenta_compat.load_pastiche_network`); call it before tracing
    ``tf.function`` objects of the network (traced graphs keep the form they were traced with). The
    setting is saved with the model.

    Example:
        >>> net = pastiche_network(2, alpha=0.25)
        >>> set_fast(net)
        32
    """
    # Every layer with a `fast` switch (ReflectConv2D, ConditionalInstanceNorm, the arbitrary
    # network's ConditionalStyleNorm), also inside nested models.
    layers = [layer for layer in network._flatten_layers(include_self=False)
              if hasattr(layer, "fast") and not isinstance(layer, keras.Model)]
    for layer in layers:
        layer.fast = bool(fast)
    return len(layers)


def pastiche_config(network):
    """``{"num_styles", "alpha", "style_input"}`` of a network built by :func:`pastiche_network`.

    ``alpha`` is recovered from the widest layer as ``channels / 128``, which reproduces every
    ``int(alpha * width)`` of the original alpha (equal to it for alpha = 1, 0.5, 0.25, ...).
    """
    try:
        norm = network.get_layer(keras_name("contract/conv1") + "_norm")
        conv3 = network.get_layer(keras_name("contract/conv3"))
    except ValueError as exc:
        raise ValueError(f"{network.name!r} is not a pastiche network: {exc}") from None
    style = network.inputs[1]
    style_input = "labels" if "int" in str(style.dtype) else "weights"
    return {"num_styles": norm.num_styles, "alpha": conv3.filters / 128.0,
            "style_input": style_input}


def is_conditional(network):
    """True for a pastiche (CIN) network, which takes ``[image, style labels or weights]``;
    False for any other network (single-style ones, and the ``[content, style image]`` networks
    of AdaIN and the arbitrary-style family)."""
    if len(getattr(network, "inputs", None) or ()) != 2:
        return False
    try:
        pastiche_config(network)
    except ValueError:
        return False
    return True


def as_weights_network(network):
    """The pastiche ``network`` with a mixing-weights style input (for export and serving).

    A network built with ``style_input="labels"`` (as used in training) is copied into the
    ``"weights"`` form with the same weights; a weights network is returned as is.
    """
    config = pastiche_config(network)
    if config["style_input"] == "weights":
        return network
    copy = pastiche_network(config["num_styles"], alpha=config["alpha"], style_input="weights",
                            name=network.name)
    for layer in network.layers:
        if layer.weights:
            copy.get_layer(layer.name).set_weights(layer.get_weights())
    return copy


# --- Fine-tuning (Dumoulin et al.: new styles on a trained network) ---------------------------

def extend_styles(network, num_new_styles, init="identity"):
    """A labels-input copy of pastiche ``network`` with ``num_new_styles`` more styles.

    Conv kernels and the existing gamma / beta rows are copied; new rows start as gamma = 1,
    beta = 0 (``init="identity"``, Magenta's initialization) or as the mean of the existing rows
    (``init="mean"``). The new styles have labels ``N_old ... N_old + num_new_styles - 1``.

    Example:
        >>> extend_styles(pastiche_network(2, alpha=0.25), 3).get_layer(
        ...     "contract_conv1_norm").num_styles
        5
    """
    if init not in ("identity", "mean"):
        raise ConfigError(f"init must be 'identity' or 'mean', got {init!r}")
    config = pastiche_config(network)
    old = config["num_styles"]
    extended = pastiche_network(old + int(num_new_styles), alpha=config["alpha"],
                                style_input="labels", name=network.name)
    for layer in network.layers:
        if not layer.weights:
            continue
        target = extended.get_layer(layer.name)
        if isinstance(layer, ConditionalInstanceNorm):
            for param, fill in ((layer.gamma, 1.0), (layer.beta, 0.0)):
                rows = np.asarray(param.numpy())
                extra = (np.repeat(rows.mean(0, keepdims=True), num_new_styles, 0) if init == "mean"
                         else np.full((num_new_styles, rows.shape[1]), fill, rows.dtype))
                getattr(target, "gamma" if param is layer.gamma else "beta").assign(
                    np.concatenate([rows, extra], 0))
        else:
            target.set_weights(layer.get_weights())
    return extended


def freeze_convolutions(network):
    """Make only the conditional instance norm layers (gamma / beta) trainable; returns them."""
    trainable = []
    for layer in network.layers:
        layer.trainable = isinstance(layer, ConditionalInstanceNorm)
        if layer.trainable:
            trainable.append(layer)
    return trainable
