"""Read a TF Lite flat buffer into a :class:`~magenta_compat.graph.ModelGraph` with
``tf.lite.Interpreter`` (no other parser).

The interpreter lists every tensor with its quantization (``get_tensor_details()``: scales,
zero points, quantized dimension) and gives constant tensors' values (``get_tensor``); its
operator list (``_get_ops_details()``, the one the interpreter itself runs, in execution order)
gives the graph. Float16 weights behind a ``DEQUANTIZE`` op (the fp16 files), int8 weights with
per-channel scales and int32 biases (the int8 files) and float32 weights all come out as float32
(:func:`~magenta_compat.graph.dequantize`). ``CONV_2D`` weights ``[O, kh, kw, I]`` become
``"conv"`` kernels ``[kh, kw, I, O]``; ``DEPTHWISE_CONV_2D`` weights ``[1, kh, kw, C·m]``
become ``"depthwise"`` kernels ``[kh, kw, C, m]``; ``FULLY_CONNECTED`` weights ``[O, I]`` become
1x1 ``"conv"`` kernels.

Example:
    >>> from magenta_compat.tflite_reader import read_tflite                 # doctest: +SKIP
    >>> read_tflite("style_predict.tflite").describe()                        # doctest: +SKIP
    'a TF Lite model: [1, 256, 256, 3] -> [1, 1, 1, 100]'
"""

import warnings

import numpy as np

from magenta_compat.graph import ModelGraph, Node, dequantize
from nst_tf.errors import CheckpointError

#: The flat buffer file identifier of TF Lite models, at bytes 4..8.
MAGIC = b"TFL3"


def looks_like_tflite(path):
    """True when the file carries TF Lite's flat buffer identifier."""
    try:
        with open(path, "rb") as f:
            return f.read(8)[4:8] == MAGIC
    except OSError:
        return False


def _interpreter(path):
    import tensorflow as tf

    resolver = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        with warnings.catch_warnings():   # TF 2.21 announces the move to LiteRT
            warnings.simplefilter("ignore", UserWarning)
            # No delegate: the operator list is then the file's own, not XNNPACK's partition.
            interpreter = tf.lite.Interpreter(model_path=path,
                                              experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} is not a readable TF Lite model ({text})") from None
    return interpreter


class _Tensors:
    """The interpreter's tensors by index: names, shapes, constant values (dequantized)."""

    def __init__(self, interpreter, computed):
        self.interpreter = interpreter
        self.details = {d["index"]: d for d in interpreter.get_tensor_details()}
        self.computed = computed     # op outputs and model inputs: never constants
        self.values = {}

    def name(self, index):
        """A unique, readable name: TF Lite's tensor name and its index."""
        return f"{self.details[index]['name'] or 'tensor'}#{index}"

    def constant(self, index):
        """The float32 value of a constant tensor, or None for a computed one."""
        if index < 0 or index in self.computed:
            return self.values.get(index)
        if index not in self.values:
            try:
                raw = self.interpreter.get_tensor(index)
            except ValueError:
                return None
            quant = self.details[index].get("quantization_parameters") or {}
            scales = np.asarray(quant.get("scales", []), np.float32)
            if scales.size and raw.dtype.kind in "iu":
                raw = dequantize(raw, scales, quant.get("zero_points", 0),
                                 int(quant.get("quantized_dimension", 0)))
            self.values[index] = np.asarray(raw, np.float32) if raw.dtype.kind == "f" else raw
        return self.values[index]


def read_tflite(path):
    """The :class:`~magenta_compat.graph.ModelGraph` of the TF Lite file ``path``.

    Raises:
        CheckpointError: the file is not a TF Lite model the interpreter can load (naming it).
    """
    interpreter = _interpreter(path)
    try:
        operators = interpreter._get_ops_details()  # the interpreter's own op list
    except AttributeError:
        raise CheckpointError("this TensorFlow's tf.lite.Interpreter does not list its "
                              "operators (_get_ops_details); TF Lite files need TF >= 2.5") \
            from None
    computed = {int(i) for op in operators for i in op["outputs"]}
    computed |= {int(d["index"]) for d in interpreter.get_input_details()}
    tensors = _Tensors(interpreter, computed)
    nodes = []
    for op in operators:
        kind = op["op_name"]
        ins, outs = [int(i) for i in op["inputs"]], [int(i) for i in op["outputs"]]
        if kind == "DEQUANTIZE" and tensors.constant(ins[0]) is not None:
            tensors.values[outs[0]] = tensors.constant(ins[0]).astype(np.float32)
            continue
        nodes.append(_node(kind, ins, outs, tensors, path))
    inputs = [(tensors.name(d["index"]), tuple(int(s) for s in d["shape"]))
              for d in interpreter.get_input_details()]
    outputs = [(tensors.name(d["index"]), tuple(int(s) for s in d["shape"]))
               for d in interpreter.get_output_details()]
    return ModelGraph(path, "TF Lite", inputs, outputs, nodes)


def _node(kind, ins, outs, tensors, path):
    names = tuple(tensors.name(i) for i in outs)
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        weights = tensors.constant(ins[1])
        if weights is None:
            raise CheckpointError(f"{path}: {kind} {names[0]!r} has a computed (not constant) "
                                  "weight; expected the weights of a trained network")
        weights = np.asarray(weights, np.float32)
        bias = tensors.constant(ins[2]) if len(ins) > 2 else None
        bias = None if bias is None else np.asarray(bias, np.float32)
        data = (tensors.name(ins[0]),)
        if kind == "CONV_2D":
            return Node("conv", data, names, np.transpose(weights, (1, 2, 3, 0)), bias)
        if kind == "FULLY_CONNECTED":
            return Node("conv", data, names, weights.T[None, None], bias)
        channels = int(tensors.details[ins[0]]["shape"][-1])
        _, kh, kw, total = weights.shape
        return Node("depthwise", data, names,
                    weights.reshape(kh, kw, channels, total // channels), bias)
    return Node(kind.lower(), tuple(tensors.name(i) for i in ins
                                    if i >= 0 and tensors.constant(i) is None), names)
