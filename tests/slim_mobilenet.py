"""A stand-in for tensorflow/models' ``nets.mobilenet`` (research/slim), which is not on PyPI.

Magenta's mobile code (``arbitrary_image_stylization_build_mobilenet_model`` and the scripts that
import it: ``..._convert_tflite``, ``..._distill_mobilenet``, ``..._train_mobile``) does
``from nets.mobilenet import mobilenet_v2, mobilenet`` and uses three names:
``mobilenet_v2.training_scope(is_training=...)``, ``mobilenet_v2.V2_DEF`` and
``mobilenet.mobilenet_base(images, conv_defs=V2_DEF, final_endpoint="layer_19",
scope="MobilenetV2")``. :func:`install` registers modules that provide them, built with tf-slim
ops from the published description of MobileNetV2 (Sandler et al. 2018, table 2) and slim's
conventions, written for these tests without nst_tf's own layout tables (an independent
reference):

* ``Conv`` 3x3/2 → 32; 17 inverted residual blocks ``expanded_conv``, ``expanded_conv_1``, ...
  (``expand`` 1x1 conv when the expansion factor exceeds 1, ``depthwise`` 3x3 separable conv,
  ``project`` 1x1 conv without activation, input added back when the stride is 1 and the depth
  unchanged); ``Conv_1`` 1x1 → 1280 = ``layer_19``;
* every conv: no bias, ``slim.batch_norm`` (gamma and beta; decay 0.997, eps 1e-3), ReLU6;
  ``SAME`` padding;
* ``depth_multiplier`` scales every depth to a multiple of 8 (at least 8), as slim does.

End points ``layer_1`` ... ``layer_19`` are the outputs of ``Conv``, the 17 blocks and
``Conv_1``. The variables are slim's: ``MobilenetV2/Conv/weights``,
``MobilenetV2/expanded_conv_3/depthwise/depthwise_weights``,
``MobilenetV2/Conv_1/BatchNorm/gamma``, ...
"""

import sys
import types

import tensorflow as tf

#: Sandler et al.'s table: (expansion t, output channels c, repeats n, stride s).
TABLE = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
         (6, 160, 3, 2), (6, 320, 1, 1))

V2_DEF = {"name": "MobileNetV2 (stand-in)", "table": TABLE}


def _divisible(value, divisor=8, min_value=8):
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def training_scope(is_training=True, bn_decay=0.997):
    """slim arg scope of the trunk's batch norm (``with slim.arg_scope(training_scope())``)."""
    import tf_slim as slim

    with slim.arg_scope([slim.batch_norm], is_training=is_training, decay=bn_decay,
                        epsilon=1e-3, center=True, scale=True) as scope:
        return scope


def mobilenet_base(input_tensor, conv_defs=None, final_endpoint="layer_19", scope="MobilenetV2",
                   depth_multiplier=1.0, **unused):
    """MobileNetV2 from ``input_tensor`` to ``final_endpoint``: ``(net, end_points)``."""
    import tf_slim as slim

    table = (conv_defs or V2_DEF)["table"]
    end_points = {}

    def depth(channels):
        return _divisible(channels * depth_multiplier)

    def done(net, name):
        end_points[name] = net
        return name == final_endpoint

    common = dict(normalizer_fn=slim.batch_norm, activation_fn=tf.nn.relu6, padding="SAME")
    with tf.compat.v1.variable_scope(scope, values=[input_tensor]), \
            slim.arg_scope([slim.conv2d, slim.separable_conv2d], **common):
        net = slim.conv2d(input_tensor, depth(32), [3, 3], stride=2, scope="Conv")
        layer = 1
        if done(net, "layer_1"):
            return net, end_points
        block = 0
        for expansion, channels, repeats, first_stride in table:
            for i in range(repeats):
                stride = first_stride if i == 0 else 1
                name = "expanded_conv" + (f"_{block}" if block else "")
                with tf.compat.v1.variable_scope(name):
                    inputs, in_depth = net, net.shape[-1]
                    inner = _divisible(in_depth * expansion) if expansion > 1 else in_depth
                    if inner > in_depth:
                        net = slim.conv2d(net, inner, [1, 1], scope="expand")
                    net = slim.separable_conv2d(net, None, [3, 3], depth_multiplier=1,
                                                stride=stride, scope="depthwise")
                    net = slim.conv2d(net, depth(channels), [1, 1], activation_fn=None,
                                      scope="project")
                    if stride == 1 and net.shape[-1] == in_depth:
                        net = net + inputs
                block += 1
                layer += 1
                if done(net, f"layer_{layer}"):
                    return net, end_points
        net = slim.conv2d(net, depth(1280), [1, 1], scope="Conv_1")
        done(net, "layer_19")
    return net, end_points


def install():
    """Register ``nets``, ``nets.mobilenet``, ``nets.mobilenet.mobilenet`` and
    ``nets.mobilenet.mobilenet_v2`` in ``sys.modules`` (once)."""
    if "nets.mobilenet.mobilenet_v2" in sys.modules:
        return
    nets, package = types.ModuleType("nets"), types.ModuleType("nets.mobilenet")
    nets.__path__, package.__path__ = [], []
    base = types.ModuleType("nets.mobilenet.mobilenet")
    base.mobilenet_base = mobilenet_base
    v2 = types.ModuleType("nets.mobilenet.mobilenet_v2")
    v2.training_scope, v2.V2_DEF = training_scope, V2_DEF
    package.mobilenet, package.mobilenet_v2, nets.mobilenet = base, v2, package
    sys.modules.update({"nets": nets, "nets.mobilenet": package,
                        "nets.mobilenet.mobilenet": base, "nets.mobilenet.mobilenet_v2": v2})


#: Flags that Magenta's ``..._convert_tflite`` defines at import; ``image_stylization``'s
#: ``imagenet_data`` defines ``imagenet_data_dir`` too, and absl refuses a second definition.
_CONVERT_FLAGS = ("alpha", "checkpoint", "output_dir", "style_dataset_file",
                  "imagenet_data_dir", "image_size")


def import_convert_tflite():
    """Magenta's ``arbitrary_image_stylization_convert_tflite`` module, imported with this
    stand-in installed (see :func:`install`) and its absl flags kept apart from flags of the
    same names that other Magenta modules defined first (restored afterwards)."""
    import importlib

    from absl import flags

    from tests.arbitrary_reference import import_arbitrary

    name = ("magenta.models.arbitrary_image_stylization."
            "arbitrary_image_stylization_convert_tflite")
    if name in sys.modules:
        return sys.modules[name]
    install()
    import_arbitrary()
    taken = {n: flags.FLAGS[n] for n in _CONVERT_FLAGS if n in flags.FLAGS}
    for n in taken:
        delattr(flags.FLAGS, n)
    try:
        return importlib.import_module(name)
    finally:
        for n, flag in taken.items():
            if n in flags.FLAGS:
                delattr(flags.FLAGS, n)
            flags.FLAGS[n] = flag
