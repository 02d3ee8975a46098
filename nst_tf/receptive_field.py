"""Receptive fields and strides of a Keras model's outputs, read from its layers.

For every output of a functional Keras model (nested models included), :func:`output_geometry`
finds, per image axis, the :class:`AxisGeometry` ``(jump, start, size)``: element ``i`` of that
output depends on input rows ``[start + i·jump, start + i·jump + size)`` and on no others. ``jump``
is the cumulative stride, ``size`` the receptive field, ``start`` the (usually negative) offset
that zero padding introduces. They are computed layer by layer, so they follow the model, not a
table: a 3×3 'same' convolution with stride 1 maps ``(J, A, R)`` to ``(J, A − J, R + 2J)``, a 2×2
pooling with stride 2 to ``(2J, A, R + J)``.

Exact tiling (:mod:`nst_tf.tiling`) needs two more facts, also checked here: the model is
translation-equivariant for shifts that are multiples of the jump (``'same'`` padding with a
stride larger than one pads by an amount that depends on the input size, so it is refused), and
every layer is local (a dense or global-pooling layer is refused).

Layer rules live in :data:`LAYER_RULES` (layer class name → function), so a new layer type is one
entry. Layers that act per pixel (activations, normalization in inference mode, preprocessing,
``Add``, ``Concatenate``...) are in :data:`POINTWISE`.

Example:
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

from nst_tf.errors import ConfigError

__all__ = ["AxisGeometry", "output_geometry", "activation_floats_per_pixel", "LAYER_RULES",
           "POINTWISE"]


class AxisGeometry(collections.namedtuple("AxisGeometry", "jump start size")):
    """Along one axis: element ``i`` depends on input ``[start + i·jump, start + i·jump + size)``."""

    __slots__ = ()

    def window(self, kernel, stride, pad_before, dilation=1):
        """The geometry after a sliding window (convolution / pooling) on this tensor."""
        effective = dilation * (kernel - 1) + 1
        return AxisGeometry(self.jump * stride, self.start - pad_before * self.jump,
                            self.size + (effective - 1) * self.jump)

    def shift(self, rows):
        """The geometry after adding ``rows`` of padding (negative: cropping) before the data."""
        return AxisGeometry(self.jump, self.start - rows * self.jump, self.size)

    @property
    def halo_before(self):
        """Input rows needed before the first row of a block of outputs (the left halo)."""
        return max(0, -self.start)

    @property
    def halo_after(self):
        """Input rows needed after the last output row's own stride (the right halo)."""
        return max(0, self.start + self.size - self.jump)


IDENTITY = (AxisGeometry(1, 0, 1), AxisGeometry(1, 0, 1))

#: Layer classes that act on each pixel separately (the geometry passes through; several inputs
#: are merged: same jump, the union of their windows).
POINTWISE = {
    "InputLayer", "BackbonePreprocessing", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU",
    "Softmax", "BatchNormalization", "LayerNormalization", "Rescaling", "Normalization",
    "Dropout", "SpatialDropout2D", "GaussianNoise", "Identity", "Add", "Subtract", "Multiply",
    "Average", "Maximum", "Minimum", "Concatenate", "Lambda",
}


def _pair(value):
    return tuple(value) if isinstance(value, (list, tuple)) else (value, value)


def _same_padding_before(kernel, stride, name):
    """TF's 'same' padding before the data; refuse strides where it depends on the input size."""
    pads = {max(kernel - (r if r else stride), 0) // 2 for r in range(stride)}
    if len(pads) > 1:
        raise ConfigError(
            f"layer {name!r} uses 'same' padding with stride {stride} and kernel {kernel}: the "
            "padding depends on the input size, so tiles of the image would not line up with "
            "the whole image; exact tiling needs 'valid' padding (or explicit ZeroPadding2D) "
            "for strided layers")
    return pads.pop()


def _window(layer, geometry, kernel, strides, dilation=(1, 1)):
    padding = getattr(layer, "padding", "valid")
    out = []
    for axis in range(2):
        k, s, d = kernel[axis], strides[axis], dilation[axis]
        if padding == "same":
            before = _same_padding_before(d * (k - 1) + 1, s, layer.name)
        elif padding == "valid":
            before = 0
        else:
            raise ConfigError(f"layer {layer.name!r}: padding {padding!r} is not supported for "
                              "exact tiling")
        out.append(geometry[axis].window(k, s, before, d))
    return tuple(out)


def _conv(layer, geometry):
    return _window(layer, geometry, _pair(layer.kernel_size), _pair(layer.strides),
                   _pair(getattr(layer, "dilation_rate", 1)))


def _pool(layer, geometry):
    return _window(layer, geometry, _pair(layer.pool_size), _pair(layer.strides))


def _zero_padding(layer, geometry):
    (top, _), (left, _) = layer.padding
    return geometry[0].shift(top), geometry[1].shift(left)


def _cropping(layer, geometry):
    (top, _), (left, _) = layer.cropping
    return geometry[0].shift(-top), geometry[1].shift(-left)


#: Layer class name → ``f(layer, (rows, cols) geometry) -> (rows, cols) geometry``.
LAYER_RULES = {
    "Conv2D": _conv, "DepthwiseConv2D": _conv, "SeparableConv2D": _conv,
    "MaxPooling2D": _pool, "AveragePooling2D": _pool,
    "ZeroPadding2D": _zero_padding, "Cropping2D": _cropping,
}


def _merge(geometries, name):
    """The geometry of a pointwise op on several inputs (same jump, union of the windows)."""
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


class _Walker:
    """Depth-first over a functional model's graph, memoized per tensor."""

    def __init__(self):
        self.memo = {}
        self.outputs = {}  # (tensor, call) -> (geometry, channels), every layer output seen
        self._calls = {}   # (nested model call) -> its seeds (their ids are memo keys)

    def tensor(self, tensor, seeds):
        if id(tensor) in seeds:
            return seeds[id(tensor)]
        key = (id(tensor), id(seeds))
        if key in self.memo:
            return self.memo[key]
        operation, node_index, tensor_index = tensor._keras_history
        node = operation._inbound_nodes[node_index]
        inputs = [self.tensor(t, seeds) for t in node.input_tensors]
        kind = type(operation).__name__
        if _is_model(operation):  # a nested model: walk its own graph from these inputs
            call = (id(node), id(seeds))
            if call not in self._calls:
                self._calls[call] = {id(t): g for t, g in zip(_flat(operation.inputs), inputs)}
            inner = self._calls[call]
            geometry = self.tensor(_flat(operation.outputs)[tensor_index], inner)
            self.memo[key] = geometry
            return geometry  # an alias of the inner tensor: not counted twice in ``outputs``
        if not inputs:
            geometry = IDENTITY
        elif kind in LAYER_RULES:
            geometry = LAYER_RULES[kind](operation, inputs[0])
        elif kind in POINTWISE:
            geometry = inputs[0] if len(inputs) == 1 else _merge(inputs, operation.name)
        else:
            raise ConfigError(
                f"layer {operation.name!r} ({kind}) is not local (or not known to "
                "nst_tf.receptive_field): its receptive field cannot be computed, so the model "
                "cannot be tiled exactly")
        self.memo[key] = geometry
        self.outputs[key] = (geometry, tensor.shape[-1])
        return geometry


def _is_model(operation):
    import keras

    return isinstance(operation, keras.Model)


def _flat(tensors):
    if isinstance(tensors, dict):
        return list(tensors.values())
    if isinstance(tensors, (list, tuple)):
        return list(tensors)
    return [tensors]


def output_geometry(model):
    """``{output name: (rows AxisGeometry, cols AxisGeometry)}`` of a functional Keras model.

    Outputs given as a dict keep their keys; a list or a single output is keyed by position.

    Raises:
        ConfigError: a layer whose receptive field is unknown or not local, or a strided
            'same' padding that is not translation-equivariant.
    """
    walker = _Walker()
    outputs = model.output
    named = outputs if isinstance(outputs, dict) else dict(enumerate(_flat(outputs)))
    return {name: walker.tensor(t, {}) for name, t in named.items()}


def activation_floats_per_pixel(model):
    """Floats of every layer output per input pixel: ``Σ channels / (jump_rows · jump_cols)``.

    The memory of a forward pass (and, times a small factor, of forward + backward) grows with
    this number times the pixel count; :mod:`nst_tf.tiling` uses it to size tiles. Inputs and
    pointwise preprocessing count like any other layer output.
    """
    walker = _Walker()
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
        rows = rows * g_rows.jump // math.gcd(rows, g_rows.jump)
        cols = cols * g_cols.jump // math.gcd(cols, g_cols.jump)
    return rows, cols
