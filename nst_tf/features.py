"""Feature extraction with ``keras.applications`` backbones (VGG19, VGG16, ResNet50, InceptionV3).

:class:`FeatureExtractor` wraps one backbone as a frozen multi-output Keras model that takes float32
images ``[B, H, W, 3]`` in [0, 1] (the backbone's own preprocessing is a layer inside the model)
and returns ``{layer name: feature map}``. The model is cut after the deepest requested layer, so
layers that are not needed never run.

Layer names are the ``keras.applications`` ones (``block4_conv2``, ``conv3_block4_out``,
``mixed5``). For VGG the Caffe names used by the papers work too: ``conv4_2`` and ``relu4_2``
both mean ``block4_conv2`` (Keras fuses the ReLU into the convolution, so its output is the
post-ReLU activation), and ``pool4`` means ``block4_pool``. InceptionV3's unnamed layers
(``conv2d_3``, ``activation_5``...) get the numbers they have in the first model built in a
session, whatever Keras numbered them in this build.

Weights: ``"imagenet"`` uses Keras' own cached download (``$KERAS_HOME/models``, default
``~/.keras/models``); ``None`` / ``"random"`` gives a seeded random initialization (He-normal
kernels, zero biases) for tests and offline use; a path loads a local ``.h5`` / ``.weights.h5``
file saved from the same Keras architecture. Nothing downloads at import.

Example:
    >>> import numpy as np
    >>> from nst_tf.features import FeatureExtractor
    >>> ex = FeatureExtractor("vgg19", layers=["conv1_1", "relu2_1"], weights=None)
    >>> out = ex(np.zeros([1, 32, 32, 3], np.float32))
    >>> {name: tuple(t.shape) for name, t in out.items()}
    {'block1_conv1': (1, 32, 32, 64), 'block2_conv1': (1, 16, 16, 128)}
"""

import difflib
import os
import re

import numpy as np

from nst_tf.errors import CheckpointError, ConfigError, ImageError, LayerError, WeightsUnavailableError

__all__ = ["FeatureExtractor", "BackbonePreprocessing", "BACKBONES", "default_layers",
           "layer_names", "resolve_layer_name", "keras_cache_dir", "WEIGHTS_FILES"]

#: Supported backbones.
BACKBONES = ("vgg19", "vgg16", "resnet50", "inception_v3")

#: The file ``keras.applications`` downloads for ``weights="imagenet", include_top=False``.
WEIGHTS_FILES = {
    "vgg19": "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "inception_v3": "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
}

# Keras' own preprocessing for each backbone: "caffe" (RGB→BGR, ×255, minus the ImageNet BGR
# mean) for VGG and ResNet, "tf" (×2 − 1) for Inception.
_KERAS_MODES = {"vgg19": "caffe", "vgg16": "caffe", "resnet50": "caffe", "inception_v3": "tf"}

_VGG_BLOCKS = {"vgg19": (2, 2, 4, 4, 4), "vgg16": (2, 2, 3, 3, 3)}

_DEFAULT_LAYERS = {
    # Gatys et al. 2016: content relu4_2, style relu1_1 ... relu5_1.
    "vgg19": (("block4_conv2",),
              ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")),
    "vgg16": (("block4_conv2",),
              ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")),
    # The output of a stage's first blocks, from fine to coarse; content in the middle.
    "resnet50": (("conv4_block1_out",),
                 ("conv1_relu", "conv2_block1_out", "conv3_block1_out", "conv4_block1_out",
                  "conv5_block1_out")),
    "inception_v3": (("mixed3",),
                     ("activation_2", "activation_4", "mixed0", "mixed2", "mixed5")),
}

# Layer-name prefixes Keras numbers automatically (InceptionV3 leaves most layers unnamed).
_AUTO_NAME = re.compile(r"^(conv2d|batch_normalization|activation|max_pooling2d|"
                        r"average_pooling2d|concatenate)(?:_(\d+))?$")
_VGG_ALIAS = re.compile(r"^(?:conv|relu)(\d+)_(\d+)$")
_POOL_ALIAS = re.compile(r"^pool(\d+)$")


def _check_backbone(backbone):
    if backbone not in BACKBONES:
        raise LayerError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    return backbone


def default_layers(backbone="vgg19"):
    """``(content_layers, style_layers)`` that work well for ``backbone`` (canonical names).

    >>> default_layers("vgg19")[0]
    ('block4_conv2',)
    """
    return _DEFAULT_LAYERS[_check_backbone(backbone)]


def _vgg_layer_names(backbone):
    names = []
    for block, convs in enumerate(_VGG_BLOCKS[backbone], start=1):
        names += [f"block{block}_conv{i}" for i in range(1, convs + 1)]
        names.append(f"block{block}_pool")
    return names


def _canonical_names(model):
    """Map canonical name → actual layer name for every layer except the input.

    Auto-numbered names are renumbered in layer order per prefix (``activation``,
    ``activation_1``, ...), which is how the first model built in a session names them.
    """
    counters, mapping = {}, {}
    for layer in model.layers[1:]:
        match = _AUTO_NAME.match(layer.name)
        if match:
            prefix = match.group(1)
            index = counters.get(prefix, 0)
            counters[prefix] = index + 1
            mapping[prefix if index == 0 else f"{prefix}_{index}"] = layer.name
        else:
            mapping[layer.name] = layer.name
    return mapping


_NAME_CACHE = {}


def layer_names(backbone):
    """All canonical layer names of ``backbone`` (without the input layer), in model order.

    VGG names are known statically; for ResNet50 / InceptionV3 a random-weight model is built
    once per session to read them.
    """
    _check_backbone(backbone)
    if backbone in _VGG_BLOCKS:
        return list(_vgg_layer_names(backbone))
    if backbone not in _NAME_CACHE:
        model = _constructor(backbone)(include_top=False, weights=None, input_shape=(None, None, 3))
        _NAME_CACHE[backbone] = list(_canonical_names(model))
        del model
    return list(_NAME_CACHE[backbone])


def _resolve(backbone, name, valid):
    """Resolve ``name`` against the list ``valid`` of canonical names, with Caffe aliases."""
    if not isinstance(name, str):
        raise LayerError(f"layer names must be strings, got {name!r}")
    if name in valid:
        return name
    candidate = None
    if backbone in _VGG_BLOCKS:
        match = _VGG_ALIAS.match(name)
        if match:
            candidate = f"block{match.group(1)}_conv{match.group(2)}"
        match = _POOL_ALIAS.match(name)
        if match:
            candidate = f"block{match.group(1)}_pool"
    if candidate in valid:
        return candidate
    choices = list(valid)
    if backbone in _VGG_BLOCKS:
        choices += [f"conv{n[5:].replace('_conv', '_')}" for n in valid if "_conv" in n]
    close = difflib.get_close_matches(name, choices, n=3)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    aliases = (" (Caffe aliases such as 'conv4_2', 'relu4_2', 'pool4' also work)"
               if backbone in _VGG_BLOCKS else "")
    raise LayerError(f"unknown layer {name!r} for backbone {backbone}.{hint} "
                     f"Valid layers{aliases}: {', '.join(valid)}")


def resolve_layer_name(backbone, name):
    """Canonical Keras name of ``name`` (a Keras name or, for VGG, a Caffe alias).

    >>> resolve_layer_name("vgg19", "relu4_2")
    'block4_conv2'

    Raises:
        LayerError: unknown backbone, or unknown layer (the message lists the valid ones).
    """
    return _resolve(backbone, name, layer_names(backbone))


def keras_cache_dir():
    """The folder where ``keras.utils.get_file`` caches model weights (``$KERAS_HOME/models``)."""
    try:
        from keras.src.backend.config import keras_home

        home = keras_home()
    except Exception:  # a Keras without that private helper: use the documented rule
        home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(os.path.expanduser(home), "models")


def _constructor(backbone):
    import keras

    return {"vgg19": keras.applications.VGG19, "vgg16": keras.applications.VGG16,
            "resnet50": keras.applications.ResNet50,
            "inception_v3": keras.applications.InceptionV3}[backbone]


def _random_init(model, seed):
    """Seeded He-normal kernels, zero biases; batch-norm statistics keep their defaults."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and len(kernel.shape) == 4:
            fan_in = int(np.prod(kernel.shape[:-1]))
            kernel.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), kernel.shape).astype(np.float32))
        bias = getattr(layer, "bias", None)
        if bias is not None:
            bias.assign(np.zeros(bias.shape, np.float32))


def _build_backbone(backbone, weights, seed):
    """The full keras.applications model (no top) with the requested weights."""
    build = _constructor(backbone)
    if weights is None or (isinstance(weights, str) and weights == "random"):
        model = build(include_top=False, weights=None, input_shape=(None, None, 3))
        _random_init(model, seed)
        return model
    if isinstance(weights, str) and weights == "imagenet":
        try:
            return build(include_top=False, weights="imagenet", input_shape=(None, None, 3))
        except Exception as e:  # get_file raises a bare Exception when the download fails
            name = WEIGHTS_FILES[backbone]
            raise WeightsUnavailableError(
                f"ImageNet weights for {backbone} are not available: Keras could not download "
                f"{name!r} ({e}). Keras caches it in $KERAS_HOME/models (default ~/.keras/models; here: "
                f"{os.path.join(keras_cache_dir(), name)}); copy the file there, or use "
                f"weights=None / --weights=random for random weights, or a local .h5 path "
                f"(weights='/path/to/{name}').") from None
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise WeightsUnavailableError(
                f"weights file not found: {path}; pass 'imagenet' (Keras cached download), "
                f"None / 'random', or the path of an existing .h5 file")
        if not path.endswith((".h5", ".hdf5", ".keras")):
            raise CheckpointError(f"weights file {path} must be a .h5, .weights.h5 or .keras file")
        model = build(include_top=False, weights=None, input_shape=(None, None, 3))
        try:
            model.load_weights(path)
        except Exception as e:
            raise CheckpointError(f"cannot load {backbone} weights from {path}: {e}") from None
        return model
    raise ConfigError(f"weights must be 'imagenet', None, 'random' or a .h5 path, got {weights!r}")


def _preprocessing_layer():
    import keras

    @keras.saving.register_keras_serializable(package="nst_tf")
    class BackbonePreprocessing(keras.layers.Layer):
        """Maps images in [0, 1] to a backbone's input range.

        ``mode="caffe"``: ×255, RGB→BGR, minus ``[103.939, 116.779, 123.68]`` (VGG, ResNet).
        ``mode="tf"``: ×2 − 1 (Inception). ``mode="magenta"``: Magenta's VGG-16 input (×255
        minus ``[123.68, 116.779, 103.939]`` in RGB order) handed to the weights in the BGR order
        of Keras' Caffe-converted VGG weights. Slim's ``vgg_16`` checkpoint that Magenta trains
        with is the same Caffe network with its first layer reordered for RGB, so this feeds
        Keras' VGG16 exactly what Magenta's loss network sees (numerically the "caffe" mode,
        whose mean is the same three numbers).
        """

        MODES = ("caffe", "tf", "magenta")

        def __init__(self, mode="caffe", **kwargs):
            super().__init__(**kwargs)
            if mode not in self.MODES:
                raise ConfigError(f"preprocessing mode must be one of {self.MODES}, got {mode!r}")
            self.mode = mode

        def call(self, images):
            ops = keras.ops
            if self.mode == "tf":
                return images * 2.0 - 1.0
            # "magenta" subtracts [123.68, 116.779, 103.939] from RGB; in the BGR order of Keras'
            # weights that is Caffe's formula, so both modes run the same ops.
            return ops.flip(images * 255.0, axis=-1) - ops.convert_to_tensor(
                [103.939, 116.779, 123.68], dtype=images.dtype)

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "mode": self.mode}

    return BackbonePreprocessing


_PREPROCESSING_CLASS = None


def BackbonePreprocessing(mode="caffe", **kwargs):  # noqa: N802 (a layer factory)
    """The preprocessing layer (defined lazily so importing this module does not import Keras)."""
    global _PREPROCESSING_CLASS
    if _PREPROCESSING_CLASS is None:
        _PREPROCESSING_CLASS = _preprocessing_layer()
    return _PREPROCESSING_CLASS(mode=mode, **kwargs)


class FeatureExtractor:
    """A frozen multi-output backbone: images in [0, 1] → ``{canonical layer name: features}``.

    Args:
        backbone: ``"vgg19"``, ``"vgg16"``, ``"resnet50"`` or ``"inception_v3"``.
        layers: layer names (Keras names or Caffe aliases); default: the union of
            :func:`default_layers`.
        weights: ``"imagenet"``, ``None`` / ``"random"`` (seeded), or a local ``.h5`` path.
        pooling: ``"max"`` (as trained) or ``"avg"`` (VGG only: every max-pooling layer
            replaced by average pooling with the same window, as Gatys et al. suggest).
        preprocessing: ``"keras"`` (the backbone's own) or ``"magenta"`` (Magenta's VGG-16
            input: ×255 minus the RGB ImageNet mean, put in the BGR channel order of Keras'
            weights, see :func:`BackbonePreprocessing`; for VGG the same numbers as "keras").
        seed: seed of the random initialization when ``weights`` is None / "random".

    Attributes:
        layers: the canonical names of the outputs, in request order.
        all_layer_names: every canonical layer name of the backbone.
        min_input_size: the smallest height / width the cut model accepts.
        model: the Keras model (``trainable = False``).

    Raises:
        LayerError: unknown backbone or layer.
        WeightsUnavailableError: ImageNet weights cannot be downloaded, or the weights file is
            missing.
        CheckpointError: a weights file that does not fit.
        ConfigError: bad pooling / preprocessing.
    """

    def __init__(self, backbone="vgg19", layers=None, weights="imagenet", pooling="max",
                 preprocessing="keras", seed=0):
        _check_backbone(backbone)
        if pooling not in ("max", "avg"):
            raise ConfigError(f"pooling must be 'max' or 'avg', got {pooling!r}")
        if pooling == "avg" and backbone not in _VGG_BLOCKS:
            raise ConfigError(f"pooling='avg' is only available for vgg16 / vgg19, not {backbone}")
        if preprocessing not in ("keras", "magenta"):
            raise ConfigError(f"preprocessing must be 'keras' or 'magenta', got {preprocessing!r}")
        if layers is None:
            content, style = default_layers(backbone)
            layers = list(dict.fromkeys(content + style))
        elif isinstance(layers, str):
            layers = [layers]
        layers = list(layers)
        if not layers:
            raise LayerError("FeatureExtractor needs at least one layer")
        if backbone in _VGG_BLOCKS:  # names are static: fail before building anything
            for name in layers:
                _resolve(backbone, name, _vgg_layer_names(backbone))

        self.backbone = backbone
        self.pooling = pooling
        self.preprocessing = preprocessing
        self.weights = weights
        base = _build_backbone(backbone, weights, seed)
        names = _canonical_names(base)
        self.all_layer_names = list(names)
        self.layers = list(dict.fromkeys(self.resolve_layer(n) for n in layers))
        self.model = self._build_model(base, names)
        self.model.trainable = False
        self.min_input_size = self._find_min_input_size()

    def resolve_layer(self, name):
        """Canonical name of ``name`` in this backbone (any layer, computed here or not)."""
        return _resolve(self.backbone, name, self.all_layer_names)

    def _build_model(self, base, names):
        import keras

        mode = _KERAS_MODES[self.backbone] if self.preprocessing == "keras" else "magenta"
        inputs = keras.Input((None, None, 3), name="image")
        x = BackbonePreprocessing(mode, name="preprocessing")(inputs)
        actual = [names[n] for n in self.layers]
        if self.pooling == "avg":
            # VGG is a chain: re-apply its layers (shared weights), swapping the pooling.
            wanted, outputs = set(actual), {}
            for layer in base.layers[1:]:
                if isinstance(layer, keras.layers.MaxPooling2D):
                    x = keras.layers.AveragePooling2D(layer.pool_size, layer.strides,
                                                      padding=layer.padding,
                                                      name=layer.name + "_avg")(x)
                else:
                    x = layer(x)
                if layer.name in wanted:
                    outputs[layer.name] = x
                    if len(outputs) == len(wanted):
                        break
            features = [outputs[a] for a in actual]
        else:
            # A sub-model from the backbone's input to the requested layers only contains the
            # layers those outputs depend on.
            cut = keras.Model(base.input, [base.get_layer(a).output for a in actual],
                              name=f"{self.backbone}_cut")
            features = cut(x)
            if not isinstance(features, (list, tuple)):
                features = [features]
        return keras.Model(inputs, dict(zip(self.layers, features)),
                           name=f"{self.backbone}_features")

    def _fits(self, size):
        import keras

        try:
            spec = self.model.compute_output_spec(keras.KerasTensor((1, size, size, 3)))
        except Exception:
            return False
        return all(all(d is None or d > 0 for d in s.shape[1:3]) for s in spec.values())

    def _find_min_input_size(self):
        low, high = 1, 1024
        if not self._fits(high):
            return high
        while low < high:  # smallest size that fits (output sizes grow with the input size)
            mid = (low + high) // 2
            if self._fits(mid):
                high = mid
            else:
                low = mid + 1
        return low

    def __call__(self, images, training=False):
        """Features of ``images`` ``[B, H, W, 3]`` float in [0, 1] → dict of ``[B, h, w, C]``."""
        import tensorflow as tf

        images = tf.convert_to_tensor(images, dtype_hint=tf.float32)
        if images.dtype != tf.float32:
            images = tf.cast(images, tf.float32)
        shape = images.shape
        if shape.rank != 4 or shape[-1] != 3:
            raise ImageError(f"FeatureExtractor expects images of shape [B, H, W, 3], "
                             f"got {shape}")
        for side in (shape[1], shape[2]):
            if side is not None and side < self.min_input_size:
                raise ImageError(
                    f"image of size {shape[2]}x{shape[1]} is too small for {self.backbone} "
                    f"with layers {self.layers}: at least {self.min_input_size}x"
                    f"{self.min_input_size} pixels are needed")
        return self.model(images, training=training)

    def __repr__(self):
        return (f"FeatureExtractor(backbone={self.backbone!r}, layers={self.layers}, "
                f"pooling={self.pooling!r}, preprocessing={self.preprocessing!r})")
