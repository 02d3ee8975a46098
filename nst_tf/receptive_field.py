"""Receptive field and stride of a feed-forward network, read from its Keras layers.

Running a network on patches of an image gives the whole-image output on a patch's *core* when
(a) every patch starts on a multiple of the network's **stride** (so each downsampled grid of
the patch is a crop of the whole image's grid) and (b) the **halo** around the core covers
everything the core's output depends on, once the normalization statistics are fixed
(:mod:`nst_tf.norm_statistics`). :func:`footprint` computes both from the layers of a functional
Keras model: it walks the graph back from the output of one aligned block of ``stride`` output
pixels and maps the needed index range through every layer:

* a window (conv or pooling) ``k`` wide with stride ``t`` reading ``[j·t, j·t + k − 1]``;
* a shift (padding ``p``: padded index ``i`` is index ``i − p``);
* nearest upsampling by ``f`` (index ``i`` reads ``⌊i / f⌋``);
* pointwise layers (activations, sums, concatenations, normalization with fixed statistics).

The result is exact, not a bound: one halo stride smaller and some core pixel reads a padded
value. Layers are looked up by their registered Keras name in :data:`RULES`; a layer that is not
there (or a Keras ``"same"`` conv with a stride, whose padding depends on the image size) is a
:class:`~nst_tf.errors.ConfigError` naming it.

Example:
    >>> from nst_tf.networks import johnson_network
    >>> footprint([(johnson_network(alpha=0.25), 0)])
    Footprint(stride=4, before=55, after=52)
"""

import collections
import math
from fractions import Fraction

import keras

from nst_tf.errors import ConfigError

#: ``stride``: patch origins must be multiples of it. ``before`` / ``after``: input pixels
#: before the first and after the last pixel of an aligned block of ``stride`` output pixels
#: that the block depends on (per axis, the larger of H and W).
Footprint = collections.namedtuple("Footprint", "stride before after")


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _pointwise(layer, axis):
    return (), None


def _first_input_only(layer, axis):
    return (), (0,)


def _conv(layer, axis):
    kernel = _pair(layer.kernel_size)[axis]
    stride = _pair(layer.strides)[axis]
    dilation = _pair(getattr(layer, "dilation_rate", 1))[axis]
    span = (kernel - 1) * dilation + 1
    if layer.padding == "valid":
        return (("window", span, stride),), None
    if stride == 1:                   # TensorFlow's "same": (span - 1) // 2 before
        return (("shift", (span - 1) // 2), ("window", span, 1)), None
    raise ConfigError(f"layer {layer.name!r}: a 'same'-padded conv with stride {stride} pads "
                      "depending on the image size, so the network cannot be tiled exactly")


def _pool(layer, axis):
    size, stride = _pair(layer.pool_size)[axis], _pair(layer.strides)[axis]
    if layer.padding == "same" and (size > 2 or stride > 2):
        raise ConfigError(f"layer {layer.name!r}: 'same' pooling with size {size}, stride "
                          f"{stride} pads depending on the image size; it cannot be tiled")
    return (("window", size, stride),), None   # "same" with size, stride <= 2 pads after only


def _upsampling(layer, axis):
    if layer.interpolation != "nearest":
        raise ConfigError(f"layer {layer.name!r}: {layer.interpolation} upsampling is not "
                          "supported for tiling (only nearest)")
    return (("up", _pair(layer.size)[axis]),), None


def _nearest_upsample(layer, axis):
    return (("up", layer.factor),), None


def _reflect_pad(layer, axis):
    return (("shift", layer.padding[axis]),), None


def _circular_pad(layer, axis):
    raise ConfigError(f"layer {layer.name!r} pads circularly (a tileable texture network): its "
                      "border pixels depend on the opposite border, so it cannot be tiled")


def _reflect_conv(layer, axis):
    k = layer.kernel_size
    return (("up", layer.upsample), ("shift", k // 2), ("window", k, layer.strides)), None


def _reflect_conv_bias(layer, axis):
    k = layer.kernel_size
    return (("up", layer.upsample), ("shift", k // 2), ("window", k, 1)), None


def _noise(layer, axis):
    # NoiseFill([x, noise]) returns `noise` (x only gives the size); NoiseFill(x) draws it.
    if len(layer._inbound_nodes[0].input_tensors) == 2:
        return (), (1,)
    raise ConfigError(f"layer {layer.name!r} draws its own noise for the whole tensor; tile the "
                      "network built with noise_input=True and crop the noise instead")


_POINTWISE = ("InputLayer", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax", "Add",
              "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
              "BatchNormalization", "Dropout", "Identity", "Rescaling",
              "nst_tf>InstanceNormalization", "nst_tf>SlimBatchNorm")

#: Registered Keras layer name → ``rule(layer, axis) -> (steps, inputs)``: the layer's steps
#: along ``axis`` (0: H, 1: W) as ``("window", k, t)``, ``("shift", p)`` or ``("up", f)`` tuples
#: in forward order, and the positions of the inputs they apply to (None: every 4-D input).
RULES = {
    **{name: _pointwise for name in _POINTWISE},
    "Conv2D": _conv,
    "MaxPooling2D": _pool,
    "AveragePooling2D": _pool,
    "UpSampling2D": _upsampling,
    "nst_tf>ReflectConv2D": _reflect_conv,
    "nst_tf>ReflectionPad2D": _reflect_pad,
    "nst_tf>CircularPad2D": _circular_pad,
    "nst_tf>NearestUpsample2D": _nearest_upsample,
    "nst_tf>ConditionalInstanceNorm": _first_input_only,
    "nst_tf>ConditionalStyleNorm": _first_input_only,
    "nst_tf>AdaptiveInstanceNorm": _first_input_only,   # the style input only gives statistics
    "nst_tf>ReflectConvBias": _reflect_conv_bias,
    "nst_tf>NoiseFill": _noise,
}


def _rule(layer, axis):
    name = keras.saving.get_registered_name(type(layer))
    rule = RULES.get(name)
    if rule is None:
        raise ConfigError(f"cannot tile through layer {layer.name!r} ({type(layer).__name__}): "
                          "its receptive field is unknown (nst_tf.receptive_field.RULES)")
    return rule(layer, axis)


def _backward(steps, need):
    """The input index range and scale a layer's output range ``need`` reads."""
    low, high, scale = need
    for step in reversed(steps):
        if step[0] == "window":
            _, k, t = step
            low, high, scale = low * t, high * t + k - 1, scale / t
        elif step[0] == "shift":
            low, high = low - step[1], high - step[1]
        else:                                               # "up"
            f = step[1]
            low, high, scale = low // f, high // f, scale * f
    return low, high, scale


def _merge(needs, tensor, need):
    old = needs.get(id(tensor))
    if old is None:
        needs[id(tensor)] = need
        return
    if old[2] != need[2]:
        raise ConfigError(f"tensors of scales {old[2]} and {need[2]} are joined; the network "
                          "cannot be tiled")
    needs[id(tensor)] = (min(old[0], need[0]), max(old[1], need[1]), old[2])


def _producer(tensor):
    operation, node_index, tensor_index = tensor._keras_history
    return operation, operation._inbound_nodes[node_index], tensor_index


def _topological(outputs):
    """Keras tensors feeding ``outputs``, each after the tensors it depends on."""
    order, seen = [], set()
    stack = [(t, False) for t in outputs]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        stack.append((tensor, True))
        _, node, _ = _producer(tensor)
        stack.extend((t, False) for t in node.input_tensors if id(t) not in seen)
    return order


def requirements(model, output_index, need, axis, scales=None):
    """``{input position: (low, high, scale)}``: the index ranges of ``model``'s inputs that the
    output range ``need = (low, high, scale)`` of output ``output_index`` reads along ``axis``.
    ``scale`` is in input pixels per pixel of the tensor (a ``fractions.Fraction``); the
    scales of every tensor on the way are added to the set ``scales`` when given."""
    scales = set() if scales is None else scales
    output = model.outputs[output_index]
    positions = {id(t): i for i, t in enumerate(model.inputs)}
    needs = {id(output): need}
    found = {}
    for tensor in reversed(_topological(model.outputs)):
        if id(tensor) not in needs:
            continue
        need = needs[id(tensor)]
        scales.add(need[2])
        if id(tensor) in positions:
            found[positions[id(tensor)]] = need
            continue
        operation, node, tensor_index = _producer(tensor)
        inputs = node.input_tensors
        if isinstance(operation, keras.Model):
            inner = requirements(operation, tensor_index, need, axis, scales)
            for position, inner_need in inner.items():
                _merge(needs, inputs[position], inner_need)
            continue
        steps, spatial = _rule(operation, axis)
        source = _backward(steps, need)
        for position, tensor_in in enumerate(inputs):
            if (spatial is None and len(tensor_in.shape) == 4) or \
                    (spatial is not None and position in spatial):
                _merge(needs, tensor_in, source)
    return found


def _chain_requirements(chain, need, axis, scales=None):
    """``[(is_image, need)]`` for the inputs of a chain of ``(model, output_index)`` stages
    whose input 0 takes the previous stage's output (the first stage's input 0 is the image)."""
    found = []
    for depth, (model, output_index) in enumerate(reversed(chain)):
        inner = requirements(model, output_index, need, axis, scales)
        first = depth == len(chain) - 1
        found += [(first and p == 0, n) for p, n in inner.items() if p != 0 or first]
        if 0 not in inner:
            break
        need = inner[0]
    return found


def footprint(chain):
    """The :class:`Footprint` of a network given as a chain of ``(model, output_index)`` stages
    (e.g. ``[(encoder, 3), (decoder, 0)]``): the output of each stage is the input 0 of the next,
    the first stage's input 0 is the image, and any other 4-D inputs are per-pixel inputs aligned
    with the image (cropped with it, like a texture network's noise).

    Raises:
        ConfigError: a layer the analysis does not know, or an output not at the input's scale.
    """
    stride, reach_before, reach_after = 1, 0, 0
    for axis in (0, 1):
        # First pass: the scales of every input, hence the stride (one output pixel).
        scales = set()
        _chain_requirements(chain, (0, 0, Fraction(1)), axis, scales)
        axis_stride = math.lcm(*(s.numerator for s in scales))
        block = _chain_requirements(chain, (0, axis_stride - 1, Fraction(1)), axis)
        for is_image, (low, high, scale) in block:
            if is_image and scale != 1:
                raise ConfigError(f"the network's output is at {scale}x the input's scale; only "
                                  "networks whose output pixels match the input's can be tiled")
            first, last = low * scale, (high + 1) * scale - 1       # in image pixels
            reach_before = max(reach_before, math.ceil(-first))
            reach_after = max(reach_after, math.ceil(last - (axis_stride - 1)))
        stride = math.lcm(stride, axis_stride)
    return Footprint(stride, reach_before, reach_after)


def minimal_halo(fp):
    """The smallest halo (a multiple of the stride) covering both reaches of :class:`Footprint`
    ``fp``."""
    reach = max(fp.before, fp.after, 0)
    return -(-reach // fp.stride) * fp.stride
