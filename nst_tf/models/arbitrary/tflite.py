"""Magenta's mobile TF Lite files from an arbitrary-style network, as its ``convert_tflite`` makes them.

Magenta's ``arbitrary_image_stylization_convert_tflite.py`` exports the trained mobile model as
two SavedModels and converts each with the TF Lite converter; the files published on TF Hub
(``magenta/arbitrary-image-stylization-v1-256``, ``int8`` and ``fp16``) are such pairs:

* **prediction**: input ``style_image`` float32 ``[1, 256, 256, 3]`` in [0, 1] → output
  ``mobilenet_conv/Conv/BiasAdd`` float32 ``[1, 1, 1, 100]`` (the style embedding);
* **transfer**: inputs ``content_image`` float32 ``[1, 384, 384, 3]`` and
  ``mobilenet_conv/Conv/BiasAdd`` ``[1, 1, 1, 100]`` → output
  ``transformer/expand/conv3/conv/Sigmoid`` float32 ``[1, 384, 384, 3]``.

The names are the tensors of Magenta's graph, which its TF 1 converter keeps. Here each half of
the Keras network is frozen into a TF 1 graph whose placeholders and output carry those names
and converted the same way (:data:`KINDS`):

* ``int8``: weights and activations quantized, calibrated on representative data as Magenta's
  ``convert_saved_model_to_int8_tflite`` (``Optimize.DEFAULT`` and a representative dataset; the
  inputs and outputs stay float32): the prediction file on style images, the transfer file on
  content images with the embeddings of style images (Magenta: 100 and 300 samples);
* ``fp16``: float16 weights (the published fp16 files' setting; Magenta's script has no switch
  for it).

:func:`export_mobile_tflite` writes ``<folder>/int8/`` and ``<folder>/fp16/``, each holding
``prediction.tflite`` and ``transfer.tflite``; each sub-folder is a model again for
:func:`nst_tf.stylize` (``model=<folder>/fp16``, read by :mod:`magenta_compat.mobile`).

Example:
    >>> from nst_tf.networks import arbitrary_network
    >>> net = arbitrary_network(alpha=0.25, predictor="mobilenet_v2")      # doctest: +SKIP
    >>> export_mobile_tflite(net, "mobile_tflite", "paintings/", "photos/")  # doctest: +SKIP
    ['mobile_tflite/int8/prediction.tflite', 'mobile_tflite/int8/transfer.tflite', ...]
"""

import os

import tensorflow as tf

from nst_tf.errors import ConfigError

#: Tensor names of Magenta's published files.
STYLE_INPUT = "style_image"
CONTENT_INPUT = "content_image"
EMBEDDING = "mobilenet_conv/Conv/BiasAdd"
STYLIZED = "transformer/expand/conv3/conv/Sigmoid"

#: File names inside each kind's folder, by role.
FILES = {"prediction": "prediction.tflite", "transfer": "transfer.tflite"}

#: The two kinds Magenta publishes and how each is converted.
KINDS = ("int8", "fp16")

#: Magenta's numbers of representative samples: style images for the prediction file; the
#: transfer file takes three times as many content images (100 and 300).
SAMPLES = 100


def frozen_graph(function, inputs, output_name):
    """A ``tf.Graph`` computing ``function`` with its variables as constants, fed by placeholders
    named by ``inputs`` (``[(name, shape)]``, in argument order) and ending in an identity named
    ``output_name``; returns ``(graph, placeholders, output)``."""
    from tensorflow.python.framework.convert_to_constants import \
        convert_variables_to_constants_v2

    concrete = tf.function(function).get_concrete_function(
        *[tf.TensorSpec(shape, tf.float32) for _, shape in inputs])
    frozen = convert_variables_to_constants_v2(concrete)
    graph_def = frozen.graph.as_graph_def()
    graph = tf.Graph()
    with graph.as_default():
        placeholders = [tf.compat.v1.placeholder(tf.float32, shape, name=name)
                        for name, shape in inputs]
        result, = tf.graph_util.import_graph_def(
            graph_def, name="frozen",
            input_map={t.name: p for t, p in zip(frozen.inputs, placeholders)},
            return_elements=[frozen.outputs[0].name])
        output = tf.identity(result, name=output_name)
    return graph, placeholders, output


def convert(graph, inputs, output, kind, representative=None):
    """The flat buffer of ``graph`` converted as ``kind`` (:data:`KINDS`); ``int8`` takes
    ``representative``, a function returning an iterable of input lists."""
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    with graph.as_default():
        converter = tf.compat.v1.lite.TFLiteConverter(graph.as_graph_def(), inputs, [output])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    else:
        converter.representative_dataset = representative
    return converter.convert()


def representative_images(sources, size, count, seed=0):
    """``count`` float32 ``[1, size, size, 3]`` images of ``sources`` (shorter side resized to
    ``size``, centre crop; cycling when there are fewer), shuffled by ``seed``."""
    from nst_tf.data import content_dataset

    dataset = content_dataset(sources, image_size=size, batch_size=1, seed=seed,
                              crop_mode="center")
    return [batch.numpy() for batch in dataset.take(int(count))]


def export_mobile_tflite(network, folder, style_images, content_images=None, image_size=384,
                         style_size=256, samples=SAMPLES, kinds=KINDS, seed=0):
    """Write an arbitrary-style network as Magenta's published TF Lite pairs; returns the paths.

    Args:
        network: an :func:`~nst_tf.networks.arbitrary_network` with a MobileNetV2 style
            predictor (Magenta's mobile model; :mod:`magenta_compat.mobile` reads the files
            back).
        folder: where ``int8/`` and ``fp16/`` go (see the module's description).
        style_images, content_images: image sources of the int8 calibration (the training
            images; Magenta's ``--style_dataset_file`` and ``--imagenet_data_dir``); None
            content images: the style images.
        image_size: the transfer file's (square) content size; Magenta's default 384.
        style_size: the prediction file's style size (256 in the published files).
        samples: style images for the prediction file's calibration; the transfer file takes
            ``3 * samples`` content images (Magenta: 100 and 300).
        kinds: which of :data:`KINDS` to write.
        seed: the order of the representative images.

    Raises:
        ConfigError: not a MobileNetV2 arbitrary-style network, bad sizes or kinds.
    """
    from nst_tf.io import atomic_write
    from nst_tf.models.arbitrary.network import (arbitrary_config, is_arbitrary_network,
                                                 style_predictor_of, transformer_of)

    if not is_arbitrary_network(network) or \
            arbitrary_config(network)["predictor"] != "mobilenet_v2":
        raise ConfigError("Magenta's mobile TF Lite files hold an arbitrary-style network with "
                          "a MobileNetV2 style predictor (nst-train --mode=distill, or "
                          "--mode=arbitrary --predictor=mobilenet_v2)")
    for name, size in (("image_size", image_size), ("style_size", style_size)):
        if not isinstance(size, int) or isinstance(size, bool) or size < 32:
            raise ConfigError(f"{name} must be an int >= 32, got {size!r}")
    if not kinds or any(kind not in KINDS for kind in kinds) or int(samples) < 1:
        raise ConfigError(f"kinds must be some of {', '.join(KINDS)} and samples >= 1, got "
                          f"{kinds!r}, {samples!r}")
    size = arbitrary_config(network)["embedding_size"]
    predictor, transformer = style_predictor_of(network), transformer_of(network)
    predict = frozen_graph(
        lambda style: tf.reshape(predictor(style, training=False), [-1, 1, 1, size]),
        [(STYLE_INPUT, [1, style_size, style_size, 3])], EMBEDDING)
    transfer = frozen_graph(
        lambda content, embedding: tf.cast(transformer(
            [content, tf.reshape(embedding, [-1, size])], training=False), tf.float32),
        [(CONTENT_INPUT, [1, image_size, image_size, 3]), (EMBEDDING, [1, 1, 1, size])],
        STYLIZED)
    representative = {}
    if "int8" in kinds:
        styles = representative_images(style_images, style_size, samples, seed)
        contents = representative_images(content_images or style_images, image_size,
                                         3 * int(samples), seed + 1)
        embeddings = [predictor(s, training=False).numpy().reshape(1, 1, 1, size)
                      for s in styles]
        representative = {
            "prediction": lambda: ([s] for s in styles),
            "transfer": lambda: ([c, embeddings[i % len(embeddings)]]
                                 for i, c in enumerate(contents))}
    paths = []
    for kind in kinds:
        target = os.path.join(os.fspath(folder), kind)
        os.makedirs(target, exist_ok=True)
        for role, (graph, inputs, output) in (("prediction", predict), ("transfer", transfer)):
            buffer = convert(graph, inputs, output, kind, representative.get(role))
            path = os.path.join(target, FILES[role])
            with atomic_write(path) as f:
                f.write(buffer)
            paths.append(path)
    return paths
