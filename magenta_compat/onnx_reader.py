"""Read an ONNX file into a :class:`~magenta_compat.graph.ModelGraph` with the ``onnx`` package
(extra ``onnx``; ONNX Runtime is not needed).

Constants are the graph's initializers and ``Constant`` nodes, and whatever a
``DequantizeLinear``, ``Transpose``, ``Reshape``, ``Identity`` or ``Cast`` computes from
constants only (tf2onnx's conversions of quantized TF Lite models store int8 weights, int32
biases and per-channel scales on axis 0 behind such nodes). Those nodes are folded away; the
others stay, in the file's order (ONNX requires it to be topological). ``Conv`` becomes
``"conv"`` (``group == 1``, kernel OIHW → HWIO) or ``"depthwise"`` (``group == C`` with one
input channel per group, kernel → ``[kh, kw, C, m]``); ``Gemm`` with a constant matrix becomes a
1x1 ``"conv"``.

Example:
    >>> from magenta_compat.onnx_reader import read_onnx            # doctest: +SKIP
    >>> graph = read_onnx("arbitrary_transform.onnx")               # doctest: +SKIP
    >>> graph.describe()                                            # doctest: +SKIP
    'an ONNX model: [1, 384, 384, 3], [1, 1, 1, 100] -> [1, 384, 384, 3]'
"""

import numpy as np

from magenta_compat.graph import ModelGraph, Node, dequantize
from nst_tf.errors import CheckpointError

#: The first byte of an ONNX ``ModelProto``: field 1 (``ir_version``), varint.
MAGIC = b"\x08"
#: Tags of the ``ModelProto`` fields that follow ``ir_version`` (producer name and version,
#: domain, model version, doc string, graph, opset imports, metadata).
_NEXT_FIELDS = frozenset(b"\x12\x1a\x22\x28\x32\x3a\x42\x72")


def looks_like_onnx(path):
    """True when the file starts like an ONNX model: ``ir_version`` (3 to 30), then another
    field of a ``ModelProto`` (checked properly by :func:`read_onnx`)."""
    try:
        with open(path, "rb") as f:
            head = f.read(3)
    except OSError:
        return False
    return len(head) == 3 and head[:1] == MAGIC and 3 <= head[1] <= 30 and \
        head[2] in _NEXT_FIELDS


def _onnx():
    try:
        import onnx
    except ImportError:
        raise CheckpointError("reading ONNX files needs the onnx package: "
                              "pip install 'nst-tf[onnx]'") from None
    return onnx


def _attributes(node):
    onnx = _onnx()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _fold(node, constants, attrs):
    """The value of ``node``'s output when it is computable from constants, else None."""
    op, inputs = node.op_type, list(node.input)
    if not inputs or any(name and name not in constants for name in inputs):
        return None
    args = [constants[name] if name else None for name in inputs]
    if op == "DequantizeLinear":
        zero = args[2] if len(args) > 2 and args[2] is not None else 0
        return dequantize(args[0], args[1], zero, attrs.get("axis", 1))
    if op == "Transpose":
        return np.transpose(args[0], attrs.get("perm"))
    if op == "Reshape":
        shape = [d if d != 0 else args[0].shape[i] for i, d in enumerate(args[1].tolist())]
        return args[0].reshape(shape)
    if op in ("Identity", "Cast"):
        return args[0]
    return None


def _conv(node, constants, attrs, path):
    data, weight = node.input[0], node.input[1]
    if weight not in constants:
        raise CheckpointError(f"{path}: Conv {node.name!r} has a computed (not constant) kernel; "
                              "expected the weights of a trained network")
    kernel = constants[weight].astype(np.float32)
    bias = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    group = int(attrs.get("group", 1))
    if group == 1:
        return Node("conv", (data,), tuple(node.output), np.transpose(kernel, (2, 3, 1, 0)),
                    bias)
    out_channels, per_group, kh, kw = kernel.shape
    if per_group != 1:
        raise CheckpointError(f"{path}: Conv {node.name!r} is a grouped convolution "
                              f"({group} groups of {per_group} channels); expected plain or "
                              "depthwise convolutions")
    kernel = kernel.reshape(group, out_channels // group, kh, kw).transpose(2, 3, 0, 1)
    return Node("depthwise", (data,), tuple(node.output), kernel, bias)


def _gemm(node, constants, attrs):
    if node.input[1] not in constants:
        return None
    matrix = constants[node.input[1]].astype(np.float32)
    if attrs.get("transB", 0):
        matrix = matrix.T
    bias = constants.get(node.input[2]) if len(node.input) > 2 else None
    return Node("conv", (node.input[0],), tuple(node.output), matrix[None, None], bias)


def _shape(value_info):
    kind = value_info.type.tensor_type
    if not kind.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in kind.shape.dim)


def read_onnx(path):
    """The :class:`~magenta_compat.graph.ModelGraph` of the ONNX file ``path``.

    Raises:
        CheckpointError: the ``onnx`` package is missing, or the file is not an ONNX model
            (naming the file).
    """
    onnx = _onnx()
    from onnx import numpy_helper

    try:
        model = onnx.load(path)
    except Exception as e:  # DecodeError, OSError and the like
        raise CheckpointError(f"{path} is not an ONNX model ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else 'unreadable'})") from None
    graph = model.graph
    if not graph.node:
        raise CheckpointError(f"{path} is not an ONNX model with a graph (no operations)")
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    nodes = []
    for node in graph.node:
        attrs = _attributes(node)
        if node.op_type == "Constant" and "value" in attrs:
            constants[node.output[0]] = numpy_helper.to_array(attrs["value"])
            continue
        folded = _fold(node, constants, attrs)
        if folded is not None:
            constants[node.output[0]] = folded
            continue
        converted = None
        if node.op_type == "Conv":
            converted = _conv(node, constants, attrs, path)
        elif node.op_type == "Gemm":
            converted = _gemm(node, constants, attrs)
        nodes.append(converted or Node(node.op_type.lower(),
                                       tuple(n for n in node.input if n not in constants),
                                       tuple(node.output)))
    inputs = [(i.name, _shape(i)) for i in graph.input if i.name not in constants]
    outputs = [(o.name, _shape(o)) for o in graph.output]
    return ModelGraph(path, "ONNX", inputs, outputs, nodes)
