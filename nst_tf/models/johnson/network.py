"""Johnson et al. (2016) single-style transformer with instance normalization.

Example:
    >>> import numpy as np
    >>> from nst_tf.networks import johnson_network
    >>> johnson_network(alpha=0.25)(np.zeros((1, 30, 30, 3), "float32")).shape
    TensorShape([1, 32, 32, 3])
"""

import keras

from nst_tf.layers import InstanceNormalization, NearestUpsample2D, ReflectionPad2D

#: Johnson's convs ``(name, kernel, stride, width at alpha=1, upsampling before the conv)``;
#: ``num_residual`` residual blocks of two 3x3 convs sit between "down2" and "up1".
JOHNSON_DOWN = (("down0", 9, 1, 32, 1), ("down1", 3, 2, 64, 1), ("down2", 3, 2, 128, 1))
#: The two upsampling convs, in the same format.
JOHNSON_UP = (("up1", 3, 1, 64, 2), ("up2", 3, 1, 32, 2))


def _conv_in(x, name, kernel, stride, channels, upsample=1, activation="relu"):
    """[nearest upsample] → reflect pad → VALID conv, no bias → instance norm → [activation]."""
    if upsample > 1:
        x = NearestUpsample2D(upsample, name=f"{name}_upsample")(x)
    x = ReflectionPad2D(kernel // 2, name=f"{name}_pad")(x)
    x = keras.layers.Conv2D(channels, kernel, strides=stride, padding="valid", use_bias=False,
                            name=name)(x)
    x = InstanceNormalization(name=f"{name}_norm")(x)
    if activation is not None:
        x = keras.layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def johnson_network(alpha=1.0, num_residual=5, name="johnson"):
    """Build the single-style transformer of Johnson et al. (2016) with instance normalization.

    9x9 conv 32 → 3x3 stride-2 conv 64 → 3x3 stride-2 conv 128 → ``num_residual`` residual blocks
    (3x3 conv, IN, ReLU, 3x3 conv, IN, plus the input) → two ×2 nearest-neighbour upsamplings,
    each followed by a 3x3 conv (64, then 32; no transposed convs, so no checkerboard) → 9x9 conv
    to 3 channels with a bias → sigmoid. Every conv before the last is reflect-padded, has no bias
    (the instance norm's offset replaces it) and is followed by
    :class:`~nst_tf.layers.InstanceNormalization` and ReLU (Ulyanov et al.'s instance norm, as in
    the later versions of Johnson's code).

    Input: float32 ``[B, H, W, 3]`` in [0, 1], H, W >= 5. Output: ``[B, 4*ceil(H/4),
    4*ceil(W/4), 3]`` in (0, 1) (sigmoid instead of Johnson's scaled tanh, so the output is an
    image in this library's convention), always float32.

    Args:
        alpha: width multiplier: widths are ``int(alpha * 32/64/128)``.
        num_residual: number of residual blocks (5 in the paper).
        name: model name.

    Example:
        >>> import numpy as np
        >>> net = johnson_network(alpha=0.25)
        >>> net(np.zeros((2, 30, 30, 3), "float32")).shape
        TensorShape([2, 32, 32, 3])
    """
    widths = {w: int(alpha * w) for w in (32, 64, 128)}
    if min(widths.values()) < 1:
        raise ValueError(f"alpha={alpha} gives a layer with no channels")
    if int(num_residual) < 0:
        raise ValueError(f"num_residual must be >= 0, got {num_residual}")
    image = keras.Input(shape=(None, None, 3), name="image")
    x = image
    for layer_name, kernel, stride, width, _ in JOHNSON_DOWN:
        x = _conv_in(x, layer_name, kernel, stride, widths[width])
    for block in range(1, int(num_residual) + 1):
        h = _conv_in(x, f"res{block}_conv1", 3, 1, widths[128])
        h = _conv_in(h, f"res{block}_conv2", 3, 1, widths[128], activation=None)
        x = keras.layers.Add(name=f"res{block}_add")([x, h])
    for layer_name, kernel, stride, width, upsample in JOHNSON_UP:
        x = _conv_in(x, layer_name, kernel, stride, widths[width], upsample=upsample)
    x = ReflectionPad2D(4, name="out_pad")(x)
    x = keras.layers.Conv2D(3, 9, padding="valid", name="out")(x)
    x = keras.layers.Activation("sigmoid", dtype="float32", name="out_sigmoid")(x)
    return keras.Model(inputs=image, outputs=x, name=name)
