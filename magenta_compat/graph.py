"""A model file's graph in one neutral form: what the TF Lite and ONNX readers produce.

:mod:`magenta_compat.tflite_reader` and :mod:`magenta_compat.onnx_reader` turn a file into a
:class:`ModelGraph`: its inputs and outputs, and its operations in execution order, with every
convolution's weights already dequantized to float32 and laid out as Keras holds them.
:mod:`magenta_compat.mobile` then reads Magenta's mobile network out of it by structure, never by
tensor or file name.

* A convolution is a :class:`Node` whose ``op`` is ``"conv"`` (kernel ``[kh, kw, in, out]``;
  fully connected layers become 1x1 convs) or ``"depthwise"`` (kernel ``[kh, kw, C, m]``), with
  its data input first and ``bias`` (or None).
* Every other operation keeps its format's name in lower case (``"mul"``, ``"sub"``,
  ``"quantizelinear"``, ``"dequantize"``...), inputs and outputs only.

Example:
    >>> node = Node("conv", ("x",), ("y",), kernel=np.zeros((3, 3, 8, 16), np.float32))
    >>> node.is_conv, node.kernel.shape
    (True, (3, 3, 8, 16))
"""

import dataclasses

import numpy as np

#: Operations that only move, requantize, reshape or broadcast a tensor: a style parameter's
#: role (how the norm uses it) is read through them.
PASS_THROUGH = frozenset({
    "quantize", "dequantize", "quantizelinear", "dequantizelinear", "reshape", "squeeze",
    "transpose", "identity", "cast", "flatten", "expand_dims", "unsqueeze", "strided_slice",
    "slice", "broadcast_to", "expand"})


@dataclasses.dataclass
class Node:
    """One operation: ``op`` (``"conv"``, ``"depthwise"`` or the format's op in lower case),
    tensor names in and out, and for convolutions the float32 ``kernel`` and ``bias``."""

    op: str
    inputs: tuple
    outputs: tuple
    kernel: np.ndarray = None
    bias: np.ndarray = None

    @property
    def is_conv(self):
        return self.op in ("conv", "depthwise")


@dataclasses.dataclass
class ModelGraph:
    """A model file read into :class:`Node` s.

    Attributes:
        path: the file.
        format: ``"TF Lite"`` or ``"ONNX"`` (for messages).
        inputs, outputs: ``[(tensor name, shape tuple)]`` (None for an unknown dimension, or
            instead of the tuple when the file gives no shape).
        nodes: the operations in execution order.
    """

    path: str
    format: str
    inputs: list
    outputs: list
    nodes: list

    def describe(self):
        """``"a TF Lite model: [1, 256, 256, 3] -> [1, 1, 1, 100]"`` (inputs and outputs; ``?``
        for a shape the file does not give)."""
        def shapes(items):
            return ", ".join("?" if shape is None else str(list(shape))
                             for _, shape in items) or "nothing"
        article = "an" if self.format[0] in "AEIOU" else "a"
        return f"{article} {self.format} model: {shapes(self.inputs)} -> {shapes(self.outputs)}"

    def convs(self):
        return [node for node in self.nodes if node.is_conv]

    def dependents(self, names):
        """Every tensor computed (directly or not) from the tensors ``names``."""
        reached = set(names)
        for node in self.nodes:
            if reached.intersection(node.inputs):
                reached.update(node.outputs)
        return reached

    def consumers(self, name):
        return [node for node in self.nodes if name in node.inputs]

    def producer(self, name):
        for node in self.nodes:
            if name in node.outputs:
                return node
        return None


def dequantize(values, scales, zero_points, axis=0):
    """``(q - zero_point) * scale`` in float32, per tensor or per channel along ``axis``: the
    arithmetic of ONNX Runtime's ``DequantizeLinear`` and TF Lite's ``DEQUANTIZE`` (for 8-bit
    values the float32 product is exact, so both agree bit for bit). Float16 values are widened.

    Example:
        >>> dequantize(np.array([[-3, 4], [10, 0]], np.int8), np.float32([0.5, 0.25]), 0)
        array([[-1.5 ,  2.  ],
               [ 2.5 ,  0.  ]], dtype=float32)
    """
    values = np.asarray(values)
    if values.dtype == np.float16 or values.dtype == np.float32:
        return values.astype(np.float32)
    scales = np.asarray(scales, np.float32)
    zero_points = np.broadcast_to(np.asarray(zero_points, np.int64), scales.shape)
    if scales.size > 1:
        shape = [1] * values.ndim
        shape[axis] = scales.size
        scales, zero_points = scales.reshape(shape), zero_points.reshape(shape)
    else:
        scales, zero_points = scales.reshape(()), zero_points.reshape(())
    return (values.astype(np.int64) - zero_points).astype(np.float32) * scales
