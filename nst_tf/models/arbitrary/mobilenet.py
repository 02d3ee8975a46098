"""tf-slim's MobileNetV2 trunk to ``layer_19`` as Keras layers: the mobile style network's body.

Magenta's mobile arbitrary-style model (``arbitrary_image_stylization_build_mobilenet_model``,
the one published as TF Lite files) predicts the style embedding with
``mobilenet_base(conv_defs=V2_DEF, final_endpoint="layer_19")`` of tensorflow/models'
``nets.mobilenet``: every conv has no bias, then batch norm with gamma (eps 1e-3, decay 0.997,
:func:`batch_norm`), then ReLU6 (none after a block's ``project`` conv); TF ``SAME`` padding; the
image goes in as [0, 1] pixels, unscaled. The layout is data (:data:`MOBILENET_BLOCKS`, 52
convs); layer names follow slim's scopes (:func:`mobilenet_keras_name`), so Magenta's
checkpoints map one to one, and :func:`keras_applications_name` maps them to
``keras.applications.MobileNetV2``, which has the same 52 convs (:func:`load_keras_mobilenet_weights`).

Example:
    >>> len(mobilenet_convs())
    52
    >>> mobilenet_keras_name("expanded_conv_3/depthwise"), keras_applications_name(
    ...     "expanded_conv_3/depthwise")
    ('expanded_conv_3_depthwise', 'block_3_depthwise')
"""

import collections

import keras

from nst_tf.batch_norm import SlimBatchNorm

#: One inverted-residual block of slim's ``V2_DEF``: scope, expansion factor, output depth at
#: ``depth_multiplier=1``, stride of its depthwise conv.
MobilenetBlock = collections.namedtuple("MobilenetBlock", "scope expansion depth stride")

#: One conv of the trunk: scope, kind (``"conv"`` or ``"depthwise"``), kernel size, stride,
#: activation (``"relu6"`` or None).
MobilenetConv = collections.namedtuple("MobilenetConv", "scope kind kernel stride activation")

#: Depth of ``Conv`` (the stem) and ``Conv_1`` (``layer_19``) at ``depth_multiplier=1``.
STEM_DEPTH, TOP_DEPTH = 32, 1280


def _blocks():
    # (expansion t, output depth c, repeats n, first stride s): the table of MobileNetV2's paper,
    # which slim's V2_DEF spells out op by op.
    stages = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
              (6, 160, 3, 2), (6, 320, 1, 1))
    blocks = []
    for expansion, depth, repeats, stride in stages:
        for i in range(repeats):
            scope = "expanded_conv" + (f"_{len(blocks)}" if blocks else "")
            blocks.append(MobilenetBlock(scope, expansion, depth, stride if i == 0 else 1))
    return tuple(blocks)


#: The 17 inverted-residual blocks ``expanded_conv``, ``expanded_conv_1`` ... ``expanded_conv_16``
#: (slim's ``layer_2`` ... ``layer_18``); ``Conv`` is ``layer_1`` and ``Conv_1`` ``layer_19``.
MOBILENET_BLOCKS = _blocks()


def make_divisible(value, divisor=8, min_value=None):
    """slim's ``_make_divisible``: ``value`` rounded to a multiple of ``divisor`` (at least
    ``min_value``, default ``divisor``), never more than 10 % below ``value``."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def mobilenet_depth(depth, depth_multiplier):
    """slim's depth multiplier: ``make_divisible(depth * depth_multiplier, 8)``, at least 8."""
    return make_divisible(depth * depth_multiplier, 8, 8)


def mobilenet_convs():
    """The 52 :class:`MobilenetConv` of the trunk, in graph order (the first block has no
    ``expand`` conv: its expansion factor is 1)."""
    convs = [MobilenetConv("Conv", "conv", 3, 2, "relu6")]
    for block in MOBILENET_BLOCKS:
        if block.expansion > 1:
            convs.append(MobilenetConv(f"{block.scope}/expand", "conv", 1, 1, "relu6"))
        convs.append(MobilenetConv(f"{block.scope}/depthwise", "depthwise", 3, block.stride,
                                   "relu6"))
        convs.append(MobilenetConv(f"{block.scope}/project", "conv", 1, 1, None))
    convs.append(MobilenetConv("Conv_1", "conv", 1, 1, "relu6"))
    return convs


def mobilenet_keras_name(scope):
    """Keras layer name of a slim scope under ``MobilenetV2/``: ``"expanded_conv_1/expand"`` →
    ``"expanded_conv_1_expand"``; its batch norm is ``<name>_bn``."""
    return scope.replace("/", "_")


def keras_applications_name(scope):
    """The name ``keras.applications.MobileNetV2`` gives the conv of a slim scope (``Conv`` →
    ``Conv1``, ``expanded_conv/X`` → ``expanded_conv_X``, ``expanded_conv_k/X`` →
    ``block_k_X``, ``Conv_1`` → ``Conv_1``)."""
    if scope == "Conv":
        return "Conv1"
    block, _, part = scope.partition("/")
    if not part:
        return scope
    number = block[len("expanded_conv_"):] if block != "expanded_conv" else ""
    return f"block_{number}_{part}" if number else f"expanded_conv_{part}"


def keras_applications_norm_name(scope):
    """The batch norm ``keras.applications.MobileNetV2`` puts after the conv of ``scope``."""
    name = keras_applications_name(scope)
    return {"Conv1": "bn_Conv1", "Conv_1": "Conv_1_bn"}.get(name, f"{name}_BN")


def batch_norm(name):
    """The trunk's batch norm: slim's (gamma and beta, eps 1e-3, decay 0.997), computed by
    TensorFlow's fused kernel, over the global batch under several replicas
    (:class:`~nst_tf.batch_norm.SlimBatchNorm`). Every batch norm of the trunk is made here."""
    return SlimBatchNorm(momentum=0.997, epsilon=1e-3, center=True, scale=True, name=name)


def _conv(x, spec, depth):
    name = mobilenet_keras_name(spec.scope)
    init = keras.initializers.TruncatedNormal(stddev=0.09)
    if spec.kind == "depthwise":
        x = keras.layers.DepthwiseConv2D(spec.kernel, strides=spec.stride, padding="same",
                                         use_bias=False, depthwise_initializer=init,
                                         name=name)(x)
    else:
        x = keras.layers.Conv2D(depth, spec.kernel, strides=spec.stride, padding="same",
                                use_bias=False, kernel_initializer=init, name=name)(x)
    x = batch_norm(f"{name}_bn")(x)
    if spec.activation:
        x = keras.layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x)
    return x


def mobilenet_trunk(x, depth_multiplier=1.0):
    """MobileNetV2 (slim layout) from ``x`` to ``layer_19`` (1280 channels at multiplier 1).

    Blocks whose stride is 1 and whose input and output depths are equal add their input
    (slim's ``expanded_conv(residual=True)``)."""
    specs = {spec.scope: spec for spec in mobilenet_convs()}
    x = _conv(x, specs["Conv"], mobilenet_depth(STEM_DEPTH, depth_multiplier))
    for block in MOBILENET_BLOCKS:
        block_input, in_depth = x, int(x.shape[-1])
        depth = mobilenet_depth(block.depth, depth_multiplier)
        if block.expansion > 1:
            x = _conv(x, specs[f"{block.scope}/expand"],
                      make_divisible(in_depth * block.expansion, 8))
        x = _conv(x, specs[f"{block.scope}/depthwise"], None)
        x = _conv(x, specs[f"{block.scope}/project"], depth)
        if block.stride == 1 and in_depth == depth:
            x = keras.layers.Add(name=f"{mobilenet_keras_name(block.scope)}_add")([block_input, x])
    return _conv(x, specs["Conv_1"], mobilenet_depth(TOP_DEPTH, depth_multiplier))


# --- ImageNet weights from keras.applications -------------------------------------------------

def load_keras_mobilenet_weights(predictor, keras_model=None, weights="imagenet"):
    """Copy ``keras.applications.MobileNetV2``'s trunk into a MobileNetV2 style network.

    ``keras_model`` (default: ``MobileNetV2(alpha=1.0, include_top=False, weights=weights)``,
    downloaded once into the Keras cache) has the same 52 convolutions and batch norms under
    other names (:func:`keras_applications_name`); they go into ``predictor``, whose depth
    multiplier must be the Keras model's ``alpha``. Keras pads stride-2 convs explicitly for
    even sizes, which is TF ``SAME`` there. The bottleneck and the transformer are not touched.
    Returns the number of convolutions copied (52).

    Magenta's distillation starts its MobileNetV2 from ImageNet weights too (slim's copy of the
    same network); the style network then runs on [0, 1] pixels, not Keras' [-1, 1].

    Raises:
        ConfigError: a layer missing from ``keras_model`` or shapes that do not match.
        WeightsUnavailableError: the ImageNet weights are not cached and cannot be downloaded.
    """
    from nst_tf.errors import ConfigError, WeightsUnavailableError

    if keras_model is None:
        try:
            keras_model = keras.applications.MobileNetV2(
                alpha=1.0, include_top=False, weights=weights, input_shape=(None, None, 3))
        except Exception as e:  # get_file raises a bare Exception when the download fails
            raise WeightsUnavailableError(
                f"ImageNet weights for MobileNetV2 are not available: Keras could not download "
                f"them ({e}); copy mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_"
                "no_top.h5 to $KERAS_HOME/models, or use weights='random'") from None
    convs = mobilenet_convs()
    for spec in convs:
        try:
            conv = keras_model.get_layer(keras_applications_name(spec.scope))
            norm = keras_model.get_layer(keras_applications_norm_name(spec.scope))
        except ValueError:
            raise ConfigError(f"{keras_model.name!r} has no layer "
                              f"{keras_applications_name(spec.scope)!r}: it is not "
                              "keras.applications.MobileNetV2") from None
        target = predictor.get_layer(mobilenet_keras_name(spec.scope))
        target_norm = predictor.get_layer(f"{mobilenet_keras_name(spec.scope)}_bn")
        pairs = [(target.weights[0], conv.weights[0])] + [
            (getattr(target_norm, part), getattr(norm, part))
            for part in ("gamma", "beta", "moving_mean", "moving_variance")]
        for mine, theirs in pairs:
            if tuple(mine.shape) != tuple(theirs.shape):
                raise ConfigError(f"{spec.scope}: {mine.path} is {tuple(mine.shape)} but Keras' "
                                  f"{theirs.path} is {tuple(theirs.shape)} (ImageNet weights "
                                  "need depth_multiplier=1)")
            mine.assign(theirs)
    return len(convs)
