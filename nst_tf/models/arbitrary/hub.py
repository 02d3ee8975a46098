"""TF-Hub: run ``magenta/arbitrary-image-stylization-v1-256``-style modules, and export ours so.

``hub.KerasLayer`` does not work with Keras 3 nor with two inputs, so :func:`load_hub` loads the
module with ``tensorflow_hub.load`` (extra ``hub``) and wraps it in a :class:`HubModel`, which
:func:`nst_tf.stylize` runs with the same preprocessing as the Keras network
(``model="hub:<handle or folder>"``).

The module's interface (v2, Magenta's ``export_hub.py``): ``outputs = module(content, style)``
with ``content`` ``[B, H, W, 3]`` and ``style`` ``[B or 1, h, w, 3]`` float32 in [0, 1];
``outputs[0]`` is the stylized image ``[B, 4·ceil(H/4), 4·ceil(W/4), 3]``. Its
``serving_default`` signature takes ``placeholder`` (content) and ``placeholder_1`` (style) and
returns ``output_0``. Magenta's module does not expose the style embedding, so ``style_weights``
and ``strength < 1`` need a module exported by :func:`export_hub_module`, which has the same
interface plus ``style_embedding(style) -> [B, 100]``,
``stylize_from_embedding(content, embedding)`` and ``square_style`` (a boolean variable: True
for the mobile model, whose styles :func:`nst_tf.stylize` cuts to centre squares).

Example:
    >>> import nst_tf
    >>> from nst_tf.models.arbitrary.hub import export_hub_module
    >>> net = nst_tf.networks.arbitrary_network()
    >>> export_hub_module(net, "/tmp/arbitrary_hub")                              # doctest: +SKIP
    >>> nst_tf.stylize("photo.jpg", "style.jpg", model="hub:/tmp/arbitrary_hub")  # doctest: +SKIP
"""

import functools
import os

import numpy as np

from nst_tf.errors import CheckpointError, ConfigError
from nst_tf.io import SAVED_MODEL_FILE, atomic_directory

#: Names of the ``serving_default`` signature, as in Magenta's hub module.
CONTENT_INPUT, STYLE_INPUT, OUTPUT = "placeholder", "placeholder_1", "output_0"


class HubModel:
    """A loaded TF-Hub arbitrary-stylization module, run by :func:`nst_tf.stylize`.

    ``full(content [B,H,W,3], style [h,w,3])`` runs ``module(content, style)[0]``; ``embed`` and
    ``transform`` are None unless the module exposes ``style_embedding`` and
    ``stylize_from_embedding`` (modules written by :func:`export_hub_module`).
    """

    def __init__(self, handle, module):
        self.handle, self.module = handle, module
        # Styles are cut to centre squares for a mobile model exported by export_hub_module;
        # Magenta's module (Inception) takes them with their aspect ratio.
        self.square_style = bool(getattr(module, "square_style", False))
        self.name = f"hub:{handle}"
        self.key = ("hub", handle)
        if not (hasattr(module, "style_embedding") and hasattr(module, "stylize_from_embedding")):
            self.embed = self.transform = None

    def embed(self, batch):
        return self.module.style_embedding(_constant(batch)).numpy()

    def transform(self, content, embedding):
        return self.module.stylize_from_embedding(_constant(content), _constant(embedding)).numpy()

    def full(self, content, style):
        outputs = self.module(_constant(content), _constant(np.asarray(style)[None]))
        return np.asarray(outputs[0], np.float32)

    def __repr__(self):
        return f"HubModel({self.handle!r})"


def _constant(array):
    import tensorflow as tf

    return tf.constant(np.ascontiguousarray(array, np.float32))


@functools.lru_cache(maxsize=2)
def _load_cached(handle, stamp):
    del stamp  # cache key only: a re-exported folder is loaded again
    try:
        import tensorflow_hub as hub
    except ImportError:
        raise ConfigError("model='hub:...' needs tensorflow_hub: pip install 'nst-tf[hub]'") \
            from None
    try:
        module = hub.load(handle)
    except Exception as e:  # noqa: BLE001  hub / SavedModel / network errors of all kinds
        text = (str(e).strip().splitlines() or [""])[0]
        raise CheckpointError(f"cannot load TF-Hub module {handle!r}: {type(e).__name__}: "
                              f"{text}") from None
    if not callable(module):
        raise CheckpointError(f"TF-Hub module {handle!r} is not callable: it is not an "
                              "arbitrary-image-stylization module (module(content, style))")
    return HubModel(handle, module)


def load_hub(handle):
    """A :class:`HubModel` for a TF-Hub handle (URL) or a local SavedModel folder (cached).

    Load only SavedModels you trust: a SavedModel is a TensorFlow program whose graph runs as it
    is (its operations can read and write files), and unlike a checkpoint it cannot be checked
    before it runs.
    """
    if not handle:
        raise ConfigError("model='hub:' needs a handle or a folder after 'hub:'")
    stamp = None
    if os.path.exists(handle):
        handle = os.path.abspath(handle)
        pb = os.path.join(handle, "saved_model.pb")
        stamp = os.stat(pb).st_mtime_ns if os.path.isfile(pb) else None
    return _load_cached(handle, stamp)


class ArbitraryHubModule:
    """Builds the ``tf.Module`` of :func:`export_hub_module` (a class so the functions close
    over one network)."""

    def __new__(cls, network):
        import tensorflow as tf

        from nst_tf.models.arbitrary.network import (arbitrary_config, style_predictor_of,
                                                     transformer_of)

        from nst_tf.models.arbitrary.network import predictor_kind

        config = arbitrary_config(network)
        size = config["embedding_size"]
        image = [None, None, None, 3]
        predictor, transformer = style_predictor_of(network), transformer_of(network)

        class Module(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec(image, tf.float32, name=CONTENT_INPUT),
                                          tf.TensorSpec(image, tf.float32, name=STYLE_INPUT)])
            def __call__(self, content, style):
                # Through the two functions below: the network is traced once, not twice.
                return [self.stylize_from_embedding(content, self.style_embedding(style))]

            @tf.function(input_signature=[tf.TensorSpec(image, tf.float32, name="style")])
            def style_embedding(self, style):
                return predictor(style, training=False)

            @tf.function(input_signature=[tf.TensorSpec(image, tf.float32, name="content"),
                                          tf.TensorSpec([None, size], tf.float32,
                                                        name="embedding")])
            def stylize_from_embedding(self, content, embedding):
                return tf.cast(transformer([content, embedding], training=False), tf.float32)

        module = Module(name="arbitrary_image_stylization")
        module.square_style = tf.Variable(predictor_kind(config["predictor"]).square_style,
                                          trainable=False, name="square_style")
        module.variables_to_save = [w.value for w in network.weights]
        return module


def export_hub_module(network, path):
    """Write an :func:`~nst_tf.networks.arbitrary_network` as a SavedModel with the interface
    of Magenta's TF-Hub module (see the module docstring); returns ``path``.

    ``hub.load(path)(content, style)[0]`` or ``model="hub:<path>"`` then run it, exactly where
    ``magenta/arbitrary-image-stylization-v1-256`` is used. The folder is replaced atomically.
    """
    import tensorflow as tf

    module = ArbitraryHubModule(network)
    with atomic_directory(path, replaces=SAVED_MODEL_FILE) as tmp:
        tf.saved_model.save(module, tmp, signatures={
            "serving_default": module.__call__.get_concrete_function()})
    return os.fspath(path)
