"""tf-slim's Inception-v3 trunk to ``Mixed_6e`` as Keras layers: the style network's body.

Magenta's style prediction network (:func:`~nst_tf.networks.style_prediction_network`) is
``inception_v3_base(final_endpoint="Mixed_6e")`` under Magenta's arg scope: every conv has no
bias, then a gamma-free batch norm (eps 1e-3, :class:`~nst_tf.batch_norm.SlimBatchNorm`), then **ReLU6**; the trunk
takes [0, 1] images unchanged. The layout is data (:data:`INCEPTION_LAYOUT`, 70 convs); layer
names follow slim's scopes (:func:`inception_keras_name`), so checkpoints map one to one.

The topology is ``keras.applications.InceptionV3`` up to ``mixed7``, so
:func:`load_keras_inception_weights` starts the trunk from its ImageNet weights (what Magenta's
training starts from: slim's ``inception_v3_2016_08_28``, the same network).

Example:
    >>> len(inception_convs())
    70
"""

import collections

import keras
import tensorflow as tf

from nst_tf.batch_norm import SlimBatchNorm  # noqa: F401  (the trunk's batch norm)

#: One conv of the Inception trunk: slim scope under ``InceptionV3/``, output depth at
#: ``depth_multiplier=1``, kernel ``(kh, kw)``, stride, padding.
InceptionConv = collections.namedtuple("InceptionConv", "scope depth kernel stride padding")


# --- The trunk ---------------------------------------------------------------------------------

def _mixed_6(block, width):
    """Mixed_6b..6e: factorized 7x7 branches of ``width`` channels."""
    return {"Branch_0": [(f"{block}/Branch_0/Conv2d_0a_1x1", 192, (1, 1))],
            "Branch_1": [(f"{block}/Branch_1/Conv2d_0a_1x1", width, (1, 1)),
                          (f"{block}/Branch_1/Conv2d_0b_1x7", width, (1, 7)),
                          (f"{block}/Branch_1/Conv2d_0c_7x1", 192, (7, 1))],
            "Branch_2": [(f"{block}/Branch_2/Conv2d_0a_1x1", width, (1, 1)),
                          (f"{block}/Branch_2/Conv2d_0b_7x1", width, (7, 1)),
                          (f"{block}/Branch_2/Conv2d_0c_1x7", width, (1, 7)),
                          (f"{block}/Branch_2/Conv2d_0d_7x1", width, (7, 1)),
                          (f"{block}/Branch_2/Conv2d_0e_1x7", 192, (1, 7))],
            "Branch_3": ["avg", (f"{block}/Branch_3/Conv2d_0b_1x1", 192, (1, 1))]}


def _mixed_5(block, pool_depth, branch1_names=("Conv2d_0a_1x1", "Conv2d_0b_5x5")):
    first, second = branch1_names
    return {"Branch_0": [(f"{block}/Branch_0/Conv2d_0a_1x1", 64, (1, 1))],
            "Branch_1": [(f"{block}/Branch_1/{first}", 48, (1, 1)),
                         (f"{block}/Branch_1/{second}", 64, (5, 5))],
            "Branch_2": [(f"{block}/Branch_2/Conv2d_0a_1x1", 64, (1, 1)),
                         (f"{block}/Branch_2/Conv2d_0b_3x3", 96, (3, 3)),
                         (f"{block}/Branch_2/Conv2d_0c_3x3", 96, (3, 3))],
            "Branch_3": ["avg", (f"{block}/Branch_3/Conv2d_0b_1x1", pool_depth, (1, 1))]}


def _inception_layout():
    """tf-slim's ``inception_v3_base`` up to Mixed_6e as data: a list of stem ops and blocks.

    A stem op is ``("conv", InceptionConv)`` or ``("maxpool", None)``; a block is
    ``("block", name, {branch: [InceptionConv | "avg" | "max", ...]})``. Mixed blocks use SAME
    padding and stride 1 except where a conv says otherwise (slim's ``Mixed_6a`` ``*_1a_1x1``
    scopes are 3x3 stride-2 VALID convs).
    """
    def conv(scope, depth, kernel, stride=1, padding="same"):
        return InceptionConv(scope, depth, kernel, stride, padding)

    stem = [("conv", conv("Conv2d_1a_3x3", 32, (3, 3), 2, "valid")),
            ("conv", conv("Conv2d_2a_3x3", 32, (3, 3), 1, "valid")),
            ("conv", conv("Conv2d_2b_3x3", 64, (3, 3), 1, "same")),
            ("maxpool", None),
            ("conv", conv("Conv2d_3b_1x1", 80, (1, 1), 1, "valid")),
            ("conv", conv("Conv2d_4a_3x3", 192, (3, 3), 1, "valid")),
            ("maxpool", None)]
    blocks = [("Mixed_5b", _mixed_5("Mixed_5b", 32)),
              ("Mixed_5c", _mixed_5("Mixed_5c", 64, ("Conv2d_0b_1x1", "Conv_1_0c_5x5"))),
              ("Mixed_5d", _mixed_5("Mixed_5d", 64)),
              ("Mixed_6a", {"Branch_0": [("Mixed_6a/Branch_0/Conv2d_1a_1x1", 384, (3, 3), 2,
                                          "valid")],
                            "Branch_1": [("Mixed_6a/Branch_1/Conv2d_0a_1x1", 64, (1, 1)),
                                         ("Mixed_6a/Branch_1/Conv2d_0b_3x3", 96, (3, 3)),
                                         ("Mixed_6a/Branch_1/Conv2d_1a_1x1", 96, (3, 3), 2,
                                          "valid")],
                            "Branch_2": ["max"]})]
    blocks += [(f"Mixed_6{c}", _mixed_6(f"Mixed_6{c}", w))
               for c, w in zip("bcde", (128, 160, 160, 192))]
    layout = list(stem)
    for name, branches in blocks:
        layout.append(("block", name, {b: [op if isinstance(op, str) else conv(*op)
                                           for op in ops] for b, ops in branches.items()}))
    return layout


#: The trunk as data: ``("conv", ...)`` and ``("block", name, {branch: ops})`` entries, 70 convs.
INCEPTION_LAYOUT = _inception_layout()


def inception_convs():
    """The 70 :class:`InceptionConv` of the trunk, in graph order."""
    convs = []
    for entry in INCEPTION_LAYOUT:
        if entry[0] == "conv":
            convs.append(entry[1])
        elif entry[0] == "block":
            for ops in entry[2].values():
                convs += [op for op in ops if not isinstance(op, str)]
    return convs


def inception_depth(depth, depth_multiplier):
    """slim's ``depth(d) = max(int(d * depth_multiplier), 16)``."""
    return max(int(depth * depth_multiplier), 16)


def inception_keras_name(scope):
    """Keras layer name of an Inception conv scope: ``"Mixed_5b/Branch_1/Conv2d_0b_5x5"`` →
    ``"Mixed_5b_Branch_1_Conv2d_0b_5x5"``; its batch norm is ``<name>_bn``."""
    return scope.replace("/", "_")


def _inception_conv(x, spec, depth_multiplier):
    name = inception_keras_name(spec.scope)
    x = keras.layers.Conv2D(inception_depth(spec.depth, depth_multiplier), spec.kernel,
                            strides=spec.stride, padding=spec.padding, use_bias=False,
                            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.1),
                            name=name)(x)
    x = SlimBatchNorm(momentum=0.9997, name=f"{name}_bn")(x)
    return keras.layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x)


def _pool(kind, x, name):
    if kind == "avg":
        return keras.layers.AveragePooling2D(3, strides=1, padding="same", name=name)(x)
    return keras.layers.MaxPooling2D(3, strides=2, padding="valid", name=name)(x)


def inception_trunk(x, depth_multiplier=1.0):
    """InceptionV3 (tf-slim layout) from ``x`` to ``Mixed_6e`` (768 channels at multiplier 1)."""
    pools = 0
    for entry in INCEPTION_LAYOUT:
        if entry[0] == "conv":
            x = _inception_conv(x, entry[1], depth_multiplier)
        elif entry[0] == "maxpool":
            pools += 1
            x = _pool("max", x, ("MaxPool_3a_3x3", "MaxPool_5a_3x3")[pools - 1])
        else:
            _, block, branches = entry
            outputs = []
            for branch, ops in branches.items():
                h = x
                for op in ops:
                    if isinstance(op, str):
                        h = _pool(op, h, f"{block}_{branch}_{op}pool")
                    else:
                        h = _inception_conv(h, op, depth_multiplier)
                outputs.append(h)
            x = keras.layers.Concatenate(axis=-1, name=f"{block}_concat")(outputs)
    return x


# --- ImageNet weights from keras.applications -------------------------------------------------

def _creation_order(layers):
    """``layers`` sorted by the counter Keras puts in automatic names (``conv2d``,
    ``conv2d_1``, ...), i.e. in the order ``keras.applications.InceptionV3`` created them."""
    def counter(layer):
        stem, _, number = layer.name.rpartition("_")
        return int(number) if number.isdigit() and stem else 0
    return sorted(layers, key=counter)


def load_keras_inception_weights(predictor, keras_model=None, weights="imagenet"):
    """Copy ``keras.applications.InceptionV3``'s trunk into a style prediction network.

    ``keras_model`` (default: ``InceptionV3(include_top=False, weights=weights)``, downloaded
    once into the Keras cache) has the trunk's topology up to ``mixed7`` with Keras' automatic
    layer names; its first 70 convolutions and batch norms (in creation order, which is slim's
    order of scopes and branches) go into the 70 ``InceptionConv`` layers of ``predictor``, whose
    depth multiplier must be 1. Keras' batch norms have no gamma either, and eps 1e-3. The
    bottleneck and the transformer are not touched. Returns the number of layers copied (70).

    Magenta's training starts the same way (from slim's ``inception_v3_2016_08_28``, the same
    network); its style network then runs with ReLU6 on [0, 1] inputs, not Keras' ReLU on
    [-1, 1], and training adapts the weights to that.

    Raises:
        ConfigError: shapes that do not match (a depth multiplier other than 1).
        WeightsUnavailableError: the ImageNet weights are not cached and cannot be downloaded.
    """
    from nst_tf.errors import ConfigError, WeightsUnavailableError

    if keras_model is None:
        try:
            keras_model = keras.applications.InceptionV3(include_top=False, weights=weights,
                                                         input_shape=(None, None, 3))
        except Exception as e:  # get_file raises a bare Exception when the download fails
            raise WeightsUnavailableError(
                f"ImageNet weights for InceptionV3 are not available: Keras could not download "
                f"them ({e}); copy inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5 to "
                "$KERAS_HOME/models, or use weights='random'") from None
    convs = _creation_order([layer for layer in keras_model.layers
                             if isinstance(layer, keras.layers.Conv2D)])
    norms = _creation_order([layer for layer in keras_model.layers
                             if isinstance(layer, keras.layers.BatchNormalization)])
    ours = inception_convs()
    if len(convs) < len(ours) or len(norms) < len(ours):
        raise ConfigError(f"{keras_model.name!r} has {len(convs)} convolutions; the trunk needs "
                          f"the first {len(ours)} of InceptionV3")
    for spec, conv, norm in zip(ours, convs, norms):
        target = predictor.get_layer(inception_keras_name(spec.scope))
        if tuple(target.kernel.shape) != tuple(conv.kernel.shape):
            raise ConfigError(f"{spec.scope}: kernel {tuple(target.kernel.shape)} vs Keras' "
                              f"{conv.name} {tuple(conv.kernel.shape)} (ImageNet weights need "
                              "depth_multiplier=1)")
        target.kernel.assign(conv.kernel)
        target_norm = predictor.get_layer(f"{inception_keras_name(spec.scope)}_bn")
        for mine, theirs in ((target_norm.beta, norm.beta),
                             (target_norm.moving_mean, norm.moving_mean),
                             (target_norm.moving_variance, norm.moving_variance)):
            mine.assign(theirs)
    return len(ours)
