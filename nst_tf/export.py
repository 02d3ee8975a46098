"""Export a network as a TensorFlow SavedModel or a TFLite flat buffer.

Pastiche networks take Magenta's TFLite-export interface (mixture mode); single-style networks
(:func:`~nst_tf.networks.johnson_network`) take ``image`` only:

* ``image``: float32 ``[1, H, W, 3]`` in [0, 1] (any H, W >= 5 for the SavedModel; a fixed size
  for TFLite);
* ``style_weights``: float32 ``[N]`` mixing weights (one-hot for a single style; not normalized);
* output ``stylized_image``: float32 ``[1, 4·ceil(H/4), 4·ceil(W/4), 3]`` in [0, 1].

:func:`export_keras` writes any nst_tf network as a ``.keras`` file (``keras.saving.load_model``,
:func:`nst_tf.stylize` and :func:`nst_tf.synthesize` load it). :func:`export_mobile_tflite`
writes a mobile arbitrary-style network as Magenta's published TF Lite pairs (int8 calibrated on
representative images, fp16; :mod:`nst_tf.models.arbitrary.tflite`).

Files are written atomically: the SavedModel goes to a temporary folder beside ``path`` that is
renamed into place; the ``.tflite`` bytes go through :func:`nst_tf.io.atomic_write`.

Example:
    >>> from nst_tf.networks import pastiche_network
    >>> net = pastiche_network(num_styles=4)
    >>> export_saved_model(net, "/tmp/pastiche_savedmodel")                # doctest: +SKIP
    >>> export_tflite(net, "/tmp/pastiche.tflite", image_size=256)         # doctest: +SKIP
    >>> import tensorflow as tf
    >>> served = tf.saved_model.load("/tmp/pastiche_savedmodel")           # doctest: +SKIP
    >>> served.signatures["serving_default"](image=..., style_weights=...)  # doctest: +SKIP
"""

import os

import tensorflow as tf

from nst_tf.errors import ConfigError
from nst_tf.io import (SAVED_MODEL_FILE, atomic_directory, atomic_path, atomic_write,
                       check_output_dir)
from nst_tf.models.arbitrary.tflite import export_mobile_tflite  # noqa: F401 (re-exported)
from nst_tf.networks import (MIN_PASTICHE_SIZE, as_weights_network, is_conditional,
                             pastiche_config)

#: Names of the exported signature's inputs and output.
IMAGE_INPUT = "image"
WEIGHTS_INPUT = "style_weights"
OUTPUT = "stylized_image"

QUANTIZE_OPTIONS = (None, "dynamic", "float16")


class PasticheModule(tf.Module):
    """A ``tf.Module`` wrapping a pastiche network with a serving function.

    ``module.serve(image [1,H,W,3], style_weights [N]) -> {"stylized_image": [1,H',W',3]}``;
    ``image_size`` fixes H and W (needed by TFLite), ``None`` leaves them dynamic.
    """

    def __init__(self, network, image_size=None):
        super().__init__(name="pastiche")
        config = pastiche_config(network)
        if config["style_input"] != "weights":
            raise ConfigError("export needs a network built with style_input='weights'")
        self.network = network
        # Track the backend tf.Variables themselves: the TFLite converter freezes only variables
        # it finds on the module (Keras 3 variables are not tf.Module-trackable by themselves).
        self.variables_to_freeze = [weight.value for weight in network.weights]
        self.num_styles = config["num_styles"]
        height, width = (None, None) if image_size is None else _size_pair(image_size)
        self.serve = tf.function(self._serve, input_signature=[
            tf.TensorSpec([1, height, width, 3], tf.float32, name=IMAGE_INPUT),
            tf.TensorSpec([self.num_styles], tf.float32, name=WEIGHTS_INPUT)])

    def _serve(self, image, style_weights):
        return {OUTPUT: self.network([image, style_weights[None]], training=False)}


def _size_pair(image_size):
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(not isinstance(s, int) or isinstance(s, bool) or
                             s < MIN_PASTICHE_SIZE for s in size):
        raise ConfigError(f"image_size must be an int or (height, width) of ints >= "
                          f"{MIN_PASTICHE_SIZE}, got {image_size!r}")
    return size


class ImageModule(tf.Module):
    """A ``tf.Module`` wrapping a single-style network (e.g. ``johnson_network``).

    ``module.serve(image [1,H,W,3]) -> {"stylized_image": [1,H',W',3]}`` (float32);
    ``image_size`` fixes H and W (needed by TFLite), ``None`` leaves them dynamic.
    """

    def __init__(self, network, image_size=None):
        super().__init__(name="single_style")
        self.network = network
        self.variables_to_freeze = [weight.value for weight in network.weights]
        height, width = (None, None) if image_size is None else _size_pair(image_size)
        self.serve = tf.function(self._serve, input_signature=[
            tf.TensorSpec([1, height, width, 3], tf.float32, name=IMAGE_INPUT)])

    def _serve(self, image):
        return {OUTPUT: tf.cast(self.network(image, training=False), tf.float32)}


def serving_module(network, image_size=None):
    """The serving ``tf.Module`` of a network, from its family
    (:meth:`nst_tf.families.Family.serving_module`).

    A pastiche (CIN) network gets inputs ``image`` and ``style_weights`` (a network trained with
    integer style labels is converted to the mixing-weights form); a single-style network gets
    ``image`` only. ``image_size`` fixes the input size (TFLite). Other families' networks are a
    :class:`~nst_tf.errors.ConfigError` that names how to run them.
    """
    from nst_tf.families import family_of_network

    if is_conditional(network):       # trained with labels: served with mixing weights
        network = as_weights_network(network)
    return family_of_network(network).serving_module(network, image_size=image_size)


def export_saved_model(network, path):
    """Write ``network`` as a SavedModel with a ``serving_default`` signature; returns ``path``.

    Arbitrary-style networks (:func:`~nst_tf.networks.arbitrary_network`) are written with the
    interface of Magenta's TF-Hub module instead (:func:`nst_tf.models.arbitrary.hub.export_hub_module`).

    Pastiche networks: inputs ``image`` ``[1, None, None, 3]`` and ``style_weights`` ``[N]``;
    single-style networks: input ``image`` only. The output is ``stylized_image``. An existing
    SavedModel folder at ``path`` is replaced atomically; any other non-empty folder is refused
    (``OutputExistsError``).
    """
    from nst_tf.networks import is_arbitrary_network

    if is_arbitrary_network(network):
        from nst_tf.models.arbitrary.hub import export_hub_module

        return export_hub_module(network, path)
    module = serving_module(network)
    with atomic_directory(path, replaces=SAVED_MODEL_FILE) as tmp:
        tf.saved_model.save(module, tmp,
                            signatures={"serving_default": module.serve.get_concrete_function()})
    return os.fspath(path)


def export_tflite(network, path, image_size=384, quantize=None, style_size=256):
    """Write ``network`` as a float32 TFLite model with a fixed input size; returns ``path``.

    Args:
        network: a pastiche network (inputs ``image`` and ``style_weights``), a single-style
            network (``image``), or an arbitrary-style network, which is written as two files
            (:func:`export_arbitrary_tflite`; their paths are returned).
        path: the ``.tflite`` file to write.
        image_size: input size, an int (square) or ``(height, width)``; Magenta's default is 384.
        quantize: ``None`` (float32), ``"dynamic"`` (int8 weights, float activations) or
            ``"float16"`` (float16 weights).
        style_size: arbitrary-style networks: the style input's (square) size.

    Raises:
        ConfigError: a network of another family (the message says how to run it), a bad
            size or quantization.
    """
    from nst_tf.networks import is_arbitrary_network

    if quantize not in QUANTIZE_OPTIONS:
        raise ConfigError(f"quantize must be one of {QUANTIZE_OPTIONS}, got {quantize!r}")
    if is_arbitrary_network(network):
        return export_arbitrary_tflite(network, path, image_size=image_size,
                                       style_size=style_size, quantize=quantize)
    check_output_dir(path)
    module = serving_module(network, image_size=_size_pair(image_size))
    flat_buffer = _convert(module.serve, module, quantize)
    with atomic_write(path) as f:
        f.write(flat_buffer)
    return os.fspath(path)


def export_keras(network, path):
    """Write ``network`` as a ``.keras`` file (atomically); returns ``path``.

    A pastiche network trained with integer style labels is written in the mixing-weights form
    :func:`nst_tf.stylize` runs. The file loads with ``keras.saving.load_model`` once nst_tf's
    layers are registered (``import nst_tf.networks``), or directly as ``model=`` of
    :func:`nst_tf.stylize` / :func:`nst_tf.synthesize` in any process.

    Example:
        >>> from nst_tf.networks import texture_network
        >>> export_keras(texture_network(num_scales=4), "/tmp/texture.keras")   # doctest: +SKIP
        '/tmp/texture.keras'
    """
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ConfigError(f"a Keras model file must end in .keras, got {path!r}")
    if is_conditional(network):
        try:
            network = as_weights_network(network)
        except ValueError:    # two inputs but not a pastiche network (arbitrary-style, AdaIN)
            pass
    with atomic_path(path, suffix=".keras") as tmp:
        network.save(tmp)
    return path


def _convert(function, module, quantize):
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], module)
    if quantize is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def arbitrary_tflite_paths(path):
    """``(prediction, transfer)`` file names for ``path``: ``x.tflite`` →
    ``x_prediction.tflite``, ``x_transfer.tflite`` (Magenta's mobile release has the same two)."""
    stem = os.fspath(path)
    stem = stem[: -len(".tflite")] if stem.lower().endswith(".tflite") else stem
    return f"{stem}_prediction.tflite", f"{stem}_transfer.tflite"


def export_arbitrary_tflite(network, path, image_size=384, style_size=256, quantize=None):
    """Write an arbitrary-style network as two TFLite models, as Magenta's mobile release is
    split; returns their paths (:func:`arbitrary_tflite_paths`).

    * prediction: ``style`` float32 ``[1, style_size, style_size, 3]`` → ``embedding`` ``[1, E]``;
    * transfer: ``content`` ``[1, H, W, 3]`` (``image_size``) and ``embedding`` ``[1, E]`` →
      ``stylized_image`` ``[1, 4·ceil(H/4), 4·ceil(W/4), 3]``.

    Mix embeddings or interpolate with the content's own embedding between the two calls.
    """
    from nst_tf.networks import (MIN_STYLE_SIZE, arbitrary_config, style_predictor_of,
                                 transformer_of)

    if quantize not in QUANTIZE_OPTIONS:
        raise ConfigError(f"quantize must be one of {QUANTIZE_OPTIONS}, got {quantize!r}")
    height, width = _size_pair(image_size)
    if not isinstance(style_size, int) or style_size < MIN_STYLE_SIZE:
        raise ConfigError(f"style_size must be an int >= {MIN_STYLE_SIZE}, got {style_size!r}")
    paths = arbitrary_tflite_paths(path)
    for target in paths:
        check_output_dir(target)
    size = arbitrary_config(network)["embedding_size"]
    predictor, transformer = style_predictor_of(network), transformer_of(network)
    module = tf.Module(name="arbitrary")
    module.variables_to_freeze = [weight.value for weight in network.weights]
    predict = tf.function(lambda style: {"embedding": predictor(style, training=False)},
                          input_signature=[tf.TensorSpec([1, style_size, style_size, 3],
                                                         tf.float32, name="style")])
    transfer = tf.function(
        lambda content, embedding: {OUTPUT: tf.cast(transformer([content, embedding],
                                                                 training=False), tf.float32)},
        input_signature=[tf.TensorSpec([1, height, width, 3], tf.float32, name="content"),
                         tf.TensorSpec([1, size], tf.float32, name="embedding")])
    buffers = [_convert(predict, module, quantize), _convert(transfer, module, quantize)]
    for target, buffer in zip(paths, buffers):
        with atomic_write(target) as f:
            f.write(buffer)
    return paths


def export_magenta_checkpoint(network, path, version="V1", global_step=None):
    """Write a trained network in Magenta's checkpoint format; returns the path written.

    A pastiche network (labels or weights input) becomes an ``image_stylization`` checkpoint
    (:func:`magenta_compat.write_checkpoint`; Magenta's ``image_stylization_transform`` loads it
    with ``--num_styles`` equal to the network's); an arbitrary-style network becomes an
    ``arbitrary_image_stylization`` checkpoint (:func:`magenta_compat.write_arbitrary_checkpoint`;
    Magenta's ``build_model`` graph restores it with ``tf.train.Saver``). Other networks have no
    Magenta format (export them with :func:`export_saved_model` or :func:`export_keras`).

    Example:
        >>> from nst_tf.networks import pastiche_network
        >>> export_magenta_checkpoint(pastiche_network(3), "/tmp/m/model.ckpt")  # doctest: +SKIP
        '/tmp/m/model.ckpt'
    """
    from magenta_compat.arbitrary import write_arbitrary_checkpoint
    from magenta_compat.checkpoint import write_checkpoint
    from nst_tf.networks import is_arbitrary_network

    if is_arbitrary_network(network):
        return write_arbitrary_checkpoint(network, path, version=version,
                                          global_step=global_step)
    try:
        pastiche_config(network)
    except ValueError:
        raise ConfigError(f"only pastiche (CIN) and arbitrary-style networks have a Magenta "
                          f"checkpoint format; {network.name!r} is not one (export it with "
                          "nst_tf.export.export_saved_model or export_keras)") from None
    return write_checkpoint(network, path, version=version, global_step=global_step)
