"""Receptive field and stride of a Keras network, read from its layers: one table of layer rules
for both ways of cutting an image into pieces.

Every layer is described, per image axis, as a few *steps* in forward order (:data:`RULES`):

* a window (conv or pooling) ``k`` wide with stride ``t`` reading ``[j·t, j·t + k − 1]``;
* a shift (padding ``p``: padded index ``i`` is index ``i − p``);
* nearest upsampling by ``f`` (index ``i`` reads ``⌊i / f⌋``);
* nothing, for pointwise layers (activations, sums, concatenations, normalization with fixed
  statistics, preprocessing).

Two walks use the same steps:

* **Backward, for feed-forward networks by patches** (:mod:`nst_tf.patches`): :func:`footprint`
  walks back from one aligned block of ``stride`` output pixels and gives the network's
  **stride** (patch origins must be multiples of it, so each downsampled grid of a patch is a crop
  of the whole image's grid) and the **halo** that covers everything the block's output depends
  on once normalization statistics are fixed (:mod:`nst_tf.norm_statistics`). It follows
  upsampling, so it serves generators.
* **Forward, for an encoder's outputs** (exact tiled Gatys, :mod:`nst_tf.tiling`):
  :func:`output_geometry` gives, for every output and axis, the :class:`AxisGeometry`
  ``(jump, start, size)``: element ``i`` depends on input rows ``[start + i·jump, start + i·jump
  + size)`` and on no others; :func:`activation_floats_per_pixel` sizes tiles from it.

Both results are exact, not bounds: one halo stride smaller and some core pixel reads a padded
value. Layers are looked up by their registered Keras name; a layer that is not in
:data:`RULES`, a Keras ``"same"`` padding whose amount depends on the image size (a strided conv
or pooling), or circular padding is a :class:`~nst_tf.errors.ConfigError` naming the layer.

Example:
    >>> from nst_tf.networks import johnson_network
    >>> footprint([(johnson_network(alpha=0.25), 0)])
    Footprint(stride=4, before=55, after=52)
    >>> from nst_tf.features import FeatureExtractor
    >>> ex = FeatureExtractor("vgg19", ["relu4_2", "relu5_1"], weights=None)
    >>> geo = output_geometry(ex.model)
    >>> geo["block4_conv2"][0]       # rows: stride 8, receptive field 84 px
    AxisGeometry(jump=8, start=-38, size=84)
    >>> geo["block5_conv1"][0].size
    156
"""

import collections
import math
from fractions import Fraction

import keras

from nst_tf.errors import ConfigError

__all__ = ["RULES", "Footprint", "footprint", "minimal_halo", "requirements", "AxisGeometry",
           "output_geometry", "activation_floats_per_pixel", "common_stride"]

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


def _same_padding_before(span, stride, name):
    """TensorFlow's ``"same"`` padding before the data for a window ``span`` wide; a
    :class:`~nst_tf.errors.ConfigError` where that amount depends on the input size."""
    pads = {max(span - (r if r else stride), 0) // 2 for r in range(stride)}
    if len(pads) > 1:
        raise ConfigError(
            f"layer {name!r} uses 'same' padding with stride {stride} and window {span}: the "
            "padding depends on the image size, so pieces of the image would not line up with "
            "the whole image; exact tiling needs 'valid' padding (or explicit padding layers) "
            "for strided layers")
    return pads.pop()


def _window(layer, axis, kernel, stride, dilation=1):
    span = (kernel - 1) * dilation + 1
    padding = getattr(layer, "padding", "valid")
    if padding == "valid":
        return (("window", span, stride),), None
    if padding == "same":
        return (("shift", _same_padding_before(span, stride, layer.name)),
                ("window", span, stride)), None
    raise ConfigError(f"layer {layer.name!r}: padding {padding!r} is not supported for tiling")


def _conv(layer, axis):
    return _window(layer, axis, _pair(layer.kernel_size)[axis], _pair(layer.strides)[axis],
                   _pair(getattr(layer, "dilation_rate", 1))[axis])


def _pool(layer, axis):
    return _window(layer, axis, _pair(layer.pool_size)[axis], _pair(layer.strides)[axis])


def _zero_padding(layer, axis):
    return (("shift", layer.padding[axis][0]),), None


def _cropping(layer, axis):
    return (("shift", -layer.cropping[axis][0]),), None


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
              "BatchNormalization", "LayerNormalization", "Normalization", "Dropout",
              "SpatialDropout2D", "GaussianNoise", "Identity", "Rescaling",
              "nst_tf>InstanceNormalization", "nst_tf>SlimBatchNorm", "nst_tf>BatchNorm",
              "nst_tf>BackbonePreprocessing")

#: Registered Keras layer name (a built-in layer: its class name) → ``rule(layer, axis) ->
#: (steps, inputs)``: the layer's steps along ``axis`` (0: H, 1: W) as ``("window", k, t)``,
#: ``("shift", p)`` or ``("up", f)`` tuples in forward order, and the positions of the inputs
#: they apply to (None: every 4-D input). A new layer type is one entry.
RULES = {
    **{name: _pointwise for name in _POINTWISE},
    "Conv2D": _conv,
    "DepthwiseConv2D": _conv,
    "SeparableConv2D": _conv,
    "MaxPooling2D": _pool,
    "AveragePooling2D": _pool,
    "UpSampling2D": _upsampling,
    "ZeroPadding2D": _zero_padding,
    "Cropping2D": _cropping,
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


# --- Backward: the footprint of a feed-forward network (patches) ---------------------------------

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


# --- Forward: the geometry of an encoder's outputs (exact tiled Gatys) --------------------------

class AxisGeometry(collections.namedtuple("AxisGeometry", "jump start size")):
    """Along one axis: element ``i`` depends on input ``[start + i·jump, start + i·jump + size)``."""

    __slots__ = ()

    def after(self, steps, name):
        """The geometry after a layer's forward ``steps`` (see :data:`RULES`)."""
        jump, start, size = self
        for step in steps:
            if step[0] == "window":
                _, k, t = step
                jump, size = jump * t, size + (k - 1) * jump
            elif step[0] == "shift":
                start -= step[1] * jump
            else:
                raise ConfigError(f"layer {name!r} upsamples: an encoder's output geometry is "
                                  "only defined for convolutions, pooling and padding")
        return AxisGeometry(jump, start, size)

    @property
    def halo_before(self):
        """Input rows needed before the first row of a block of outputs (the left halo)."""
        return max(0, -self.start)

    @property
    def halo_after(self):
        """Input rows needed after the last output row's own stride (the right halo)."""
        return max(0, self.start + self.size - self.jump)


IDENTITY = (AxisGeometry(1, 0, 1), AxisGeometry(1, 0, 1))


def _union(geometries, name):
    """The geometry of a pointwise op on several inputs (same jump, the union of the windows)."""
    merged = []
    for axis in range(2):
        items = [g[axis] for g in geometries]
        jumps = {g.jump for g in items}
        if len(jumps) > 1:
            raise ConfigError(f"layer {name!r} combines inputs with different strides {jumps}")
        start = min(g.start for g in items)
        end = max(g.start + g.size for g in items)
        merged.append(AxisGeometry(jumps.pop(), start, end - start))
    return tuple(merged)


def _flat(tensors):
    if isinstance(tensors, dict):
        return list(tensors.values())
    if isinstance(tensors, (list, tuple)):
        return list(tensors)
    return [tensors]


class _ForwardWalker:
    """Depth-first over a functional model's graph, memoized per tensor (and per nested call)."""

    def __init__(self):
        self.memo = {}
        self.outputs = {}  # every layer output seen -> (geometry, channels)
        self._calls = {}   # nested model call -> its seeds (their ids are memo keys)

    def tensor(self, tensor, seeds):
        if id(tensor) in seeds:
            return seeds[id(tensor)]
        key = (id(tensor), id(seeds))
        if key in self.memo:
            return self.memo[key]
        operation, node, tensor_index = _producer(tensor)
        inputs = node.input_tensors
        if isinstance(operation, keras.Model):   # a nested model: walk its graph from these inputs
            call = (id(node), id(seeds))
            if call not in self._calls:
                self._calls[call] = {id(t): self.tensor(s, seeds)
                                     for t, s in zip(_flat(operation.inputs), inputs)}
            geometry = self.tensor(_flat(operation.outputs)[tensor_index], self._calls[call])
            self.memo[key] = geometry
            return geometry   # an alias of the inner tensor: not counted twice in ``outputs``
        steps = [_rule(operation, axis) for axis in (0, 1)]
        spatial = steps[0][1]
        chosen = [self.tensor(t, seeds) for position, t in enumerate(inputs)
                  if (spatial is None and len(t.shape) == 4) or
                  (spatial is not None and position in spatial)]
        if not chosen:
            geometry = IDENTITY
        else:
            merged = chosen[0] if len(chosen) == 1 else _union(chosen, operation.name)
            geometry = tuple(merged[axis].after(steps[axis][0], operation.name)
                             for axis in (0, 1))
        self.memo[key] = geometry
        self.outputs[key] = (geometry, tensor.shape[-1])
        return geometry


def output_geometry(model):
    """``{output name: (rows AxisGeometry, cols AxisGeometry)}`` of a functional Keras model.

    Outputs given as a dict keep their keys; a list or a single output is keyed by position.

    Raises:
        ConfigError: a layer whose receptive field is unknown, not local or upsampling, or a
            strided 'same' padding that is not translation-equivariant.
    """
    walker = _ForwardWalker()
    outputs = model.output
    named = outputs if isinstance(outputs, dict) else dict(enumerate(_flat(outputs)))
    return {name: walker.tensor(t, {}) for name, t in named.items()}


def activation_floats_per_pixel(model):
    """Floats of every layer output per input pixel: ``Σ channels / (jump_rows · jump_cols)``.

    The memory of a forward pass (and, times a small factor, of forward + backward) grows with
    this number times the pixel count; :mod:`nst_tf.tiling` uses it to size tiles. Inputs and
    pointwise preprocessing count like any other layer output.
    """
    walker = _ForwardWalker()
    for tensor in _flat(model.output):
        walker.tensor(tensor, {})
    total = 0.0
    for geometry, channels in walker.outputs.values():
        if channels:
            total += channels / (geometry[0].jump * geometry[1].jump)
    return total


def common_stride(geometries):
    """The least common multiple of every jump (rows, cols) among ``geometries``' values."""
    rows = cols = 1
    for g_rows, g_cols in geometries:
        rows = math.lcm(rows, g_rows.jump)
        cols = math.lcm(cols, g_cols.jump)
    return rows, cols
