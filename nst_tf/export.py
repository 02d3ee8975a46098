"""Export a pastiche network as a TensorFlow SavedModel or a TFLite flat buffer.

Both exports take Magenta's TFLite-export interface (mixture mode):

* ``image``: float32 ``[1, H, W, 3]`` in [0, 1] (any H, W >= 5 for the SavedModel; a fixed size
  for TFLite);
* ``style_weights``: float32 ``[N]`` mixing weights (one-hot for a single style; not normalized);
* output ``stylized_image``: float32 ``[1, 4·ceil(H/4), 4·ceil(W/4), 3]`` in [0, 1].

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

import contextlib
import os
import shutil
import tempfile

import tensorflow as tf

from nst_tf.errors import ConfigError
from nst_tf.io import OutputPathError, atomic_write, check_output_dir
from nst_tf.networks import MIN_PASTICHE_SIZE, pastiche_config

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


@contextlib.contextmanager
def _atomic_directory(path):
    """Yield a temporary folder beside ``path``; on success it replaces ``path``."""
    path = os.path.abspath(os.fspath(path))
    parent = check_output_dir(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputPathError(f"cannot export a SavedModel to {path}: it exists and is a file")
    tmp = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        yield tmp
        old = None
        if os.path.exists(path):
            old = tmp + ".old"
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def export_saved_model(network, path):
    """Write ``network`` as a SavedModel with a ``serving_default`` signature; returns ``path``.

    Inputs ``image`` ``[1, None, None, 3]`` and ``style_weights`` ``[N]``, output
    ``stylized_image``. An existing SavedModel folder at ``path`` is replaced atomically.
    """
    module = PasticheModule(network)
    with _atomic_directory(path) as tmp:
        tf.saved_model.save(module, tmp,
                            signatures={"serving_default": module.serve.get_concrete_function()})
    return os.fspath(path)


def export_tflite(network, path, image_size=384, quantize=None):
    """Write ``network`` as a float32 TFLite model with a fixed input size; returns ``path``.

    Args:
        network: a pastiche network (weights input).
        path: the ``.tflite`` file to write.
        image_size: input size, an int (square) or ``(height, width)``; Magenta's default is 384.
        quantize: ``None`` (float32), ``"dynamic"`` (int8 weights, float activations) or
            ``"float16"`` (float16 weights).
    """
    if quantize not in QUANTIZE_OPTIONS:
        raise ConfigError(f"quantize must be one of {QUANTIZE_OPTIONS}, got {quantize!r}")
    check_output_dir(path)
    module = PasticheModule(network, image_size=image_size)
    concrete = module.serve.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    if quantize is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    flat_buffer = converter.convert()
    with atomic_write(path) as f:
        f.write(flat_buffer)
    return os.fspath(path)
