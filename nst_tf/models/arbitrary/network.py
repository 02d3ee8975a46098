"""Magenta's arbitrary-style network (Ghiasi et al. 2017): style prediction and transformer.

Two Keras models, usable separately, plus one model joining them:

* :func:`style_prediction_network`: a style image ``[B, h, w, 3]`` in [0, 1] → a 100-d *style
  embedding* ``[B, 100]`` (Magenta's ``bottleneck_feat``). A trunk of :data:`PREDICTORS` —
  InceptionV3 up to ``Mixed_6e`` (no-bias convs, gamma-free batch norm with eps 1e-3,
  **ReLU6**; Magenta's ``arbitrary_style_transfer`` checkpoint) or MobileNetV2 up to
  ``layer_19`` (:mod:`~nst_tf.models.arbitrary.mobilenet`; the distilled mobile model published
  as TF Lite files) — taking [0, 1] input unchanged, a spatial mean, and a 1x1 conv with bias.
* :func:`arbitrary_transformer`: ``[content [B, H, W, 3], embedding [S, 100]]`` →
  ``[B, 4·ceil(H/4), 4·ceil(W/4), 3]``. The pastiche transformer's layout
  (:data:`~nst_tf.networks.PASTICHE_LAYERS`), but the three contract convs use plain batch norm
  (eps 1e-3, moving statistics) and the 13 other norms are :class:`ConditionalStyleNorm`, whose
  beta and gamma are linear projections of the embedding. ``S`` is 1 (one style for the batch)
  or ``B``.
* :func:`arbitrary_network`: ``[content, style]`` → stylized image, with the two models above as
  its layers ``"style_prediction"`` and ``"transformer"``
  (:func:`style_predictor_of` / :func:`transformer_of`).

Layer names follow Magenta's variable scopes (:func:`inception_keras_name`,
:func:`~nst_tf.networks.keras_name`), so :mod:`magenta_compat.arbitrary` maps the 359 checkpoint
variables one to one. Embeddings are plain vectors: average them, interpolate them, store them.

Example:
    >>> import numpy as np
    >>> from nst_tf.networks import arbitrary_network, style_predictor_of, transformer_of
    >>> net = arbitrary_network(alpha=0.25, depth_multiplier=0.25)
    >>> style = np.random.rand(1, 64, 80, 3).astype("float32")
    >>> embedding = style_predictor_of(net)(style).numpy()     # [1, 100]
    >>> content = np.random.rand(2, 30, 41, 3).astype("float32")
    >>> transformer_of(net)([content, embedding]).shape        # one style for both images
    TensorShape([2, 32, 44, 3])
"""

import dataclasses

import keras
import tensorflow as tf

from nst_tf.layers import ReflectConv2D, instance_norm
from nst_tf.batch_norm import SlimBatchNorm
from nst_tf.models.arbitrary.inception import inception_keras_name, inception_trunk
from nst_tf.models.arbitrary.mobilenet import TOP_DEPTH, mobilenet_keras_name, mobilenet_trunk
from nst_tf.models.pastiche.network import PASTICHE_LAYERS, keras_name, pastiche_widths

_REGISTER = keras.saving.register_keras_serializable(package="nst_tf")

#: Size of Magenta's style embedding (``style_prediction_bottleneck``).
EMBEDDING_SIZE = 100

#: Smallest style image side the Inception trunk accepts (40 px fails in ``Mixed_6a``).
MIN_STYLE_SIZE = 43

#: Magenta's default style image size: the shorter side is resized to this.
STYLE_SIZE = 256

#: Transformer scopes (under ``transformer/``) whose norm is conditioned by the embedding, in
#: Magenta's ``style_normalization_activations`` order; the contract convs use batch norm.
STYLE_NORM_SCOPES = tuple(spec.scope for spec in PASTICHE_LAYERS
                          if not spec.scope.startswith("contract/"))

# --- Layers ----------------------------------------------------------------------------------

@_REGISTER
class ConditionalStyleNorm(keras.layers.Layer):
    """Instance norm whose ``beta`` and ``gamma`` are predicted from a style embedding.

    Call as ``layer([x, embedding])`` with ``x`` ``[B, H, W, C]`` and ``embedding`` ``[S, E]``
    (``S`` = 1 or B). ``beta = embedding @ beta_kernel + beta_bias`` and likewise ``gamma`` (used
    as is, not ``1 + gamma``); then the arithmetic of Magenta's ``conditional_style_norm``:
    moments over H, W (summed more accurately than ``tf.nn.moments``) and
    ``tf.nn.batch_normalization`` with eps 1e-5 (:func:`~nst_tf.layers.instance_norm`). The kernels are stored ``[1, 1, E, C]``, the shape of
    Magenta's ``style_params/<site>/StyleNorm/Conv{,_1}/weights`` (beta first, gamma second).

    Args:
        embedding_size: E.
        epsilon: added to the variance.
        fast: kept for saved configurations; the moments are computed one way now
            (:func:`~nst_tf.layers.spatial_moments`).

    Example:
        >>> norm = ConditionalStyleNorm(embedding_size=5)
        >>> norm([tf.ones([2, 4, 4, 3]), tf.ones([1, 5])]).shape
        TensorShape([2, 4, 4, 3])
    """

    def __init__(self, embedding_size=EMBEDDING_SIZE, epsilon=1e-5, fast=False, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.embedding_size = int(embedding_size)
        self.epsilon = float(epsilon)
        self.fast = bool(fast)

    def build(self, input_shape):
        channels = input_shape[0][-1]
        if channels is None:
            raise ValueError("ConditionalStyleNorm needs a known channel dimension")
        shape = (1, 1, self.embedding_size, int(channels))
        self.beta_kernel = self.add_weight(name="beta_kernel", shape=shape,
                                           initializer="glorot_uniform")
        self.beta_bias = self.add_weight(name="beta_bias", shape=shape[-1:],
                                         initializer="zeros")
        self.gamma_kernel = self.add_weight(name="gamma_kernel", shape=shape,
                                            initializer="glorot_uniform")
        self.gamma_bias = self.add_weight(name="gamma_bias", shape=shape[-1:],
                                          initializer="zeros")

    def _project(self, embedding, kernel, bias):
        matrix = tf.reshape(tf.convert_to_tensor(kernel), [self.embedding_size, -1])
        params = tf.matmul(embedding, matrix) + tf.convert_to_tensor(bias)     # [S, C]
        return params[:, None, None, :]

    def call(self, inputs):
        x, embedding = inputs
        embedding = tf.cast(tf.convert_to_tensor(embedding), tf.float32)
        if embedding.shape.rank == 4:           # Magenta's [S, 1, 1, E] bottleneck
            embedding = tf.reshape(embedding, [-1, self.embedding_size])
        beta = self._project(embedding, self.beta_kernel, self.beta_bias)
        gamma = self._project(embedding, self.gamma_kernel, self.gamma_bias)
        return instance_norm(x, gamma, beta, self.epsilon, matmul_moments=self.fast)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(embedding_size=self.embedding_size, epsilon=self.epsilon, fast=self.fast)
        return config


@_REGISTER
class SpatialMean(keras.layers.Layer):
    """Mean over H and W, keeping them (``[B, 1, 1, C]``): Magenta's bottleneck pooling."""

    def call(self, x):
        return tf.reduce_mean(x, axis=[1, 2], keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, 1, input_shape[-1])


# --- Style prediction network ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class StylePredictor:
    """One kind of style prediction trunk: how to build it and how to recognise it.

    Attributes:
        name: the ``predictor=`` name.
        trunk: ``trunk(x, depth_multiplier)`` → the features that are averaged.
        probe: a layer only this trunk has; its ``filters / probe_depth`` is the depth
            multiplier the trunk was built with.
        probe_depth: the probe's width at depth multiplier 1.
        square_style: the style image is centre-cropped to ``style_size x style_size`` after
            the resize (the published mobile model takes 256 x 256 styles); otherwise only its
            shorter side is resized (Magenta's Inception model).
        end_point: Magenta's name of the trunk's last layer (documentation).
    """

    name: str
    trunk: object
    probe: str
    probe_depth: int
    square_style: bool
    end_point: str


#: The style prediction trunks by ``predictor=`` name: Magenta's Inception-v3 (the released
#: ``arbitrary_style_transfer`` checkpoint) and its distilled MobileNetV2 (the published TF Lite
#: model, with the transformer at ``alpha=0.25``).
PREDICTORS = {
    "inception_v3": StylePredictor("inception_v3", inception_trunk,
                                   inception_keras_name("Mixed_6e/Branch_0/Conv2d_0a_1x1"), 192,
                                   square_style=False, end_point="Mixed_6e"),
    "mobilenet_v2": StylePredictor("mobilenet_v2", mobilenet_trunk,
                                   mobilenet_keras_name("Conv_1"), TOP_DEPTH,
                                   square_style=True, end_point="layer_19"),
}


def predictor_kind(name):
    """The :class:`StylePredictor` called ``name``; ConfigError listing the names otherwise."""
    try:
        return PREDICTORS[name]
    except (KeyError, TypeError):
        from nst_tf.errors import ConfigError

        raise ConfigError(f"predictor must be one of {', '.join(sorted(PREDICTORS))}, got "
                          f"{name!r}") from None


def style_prediction_network(embedding_size=EMBEDDING_SIZE, depth_multiplier=1.0,
                             name="style_prediction", predictor="inception_v3"):
    """The style prediction network: style images ``[B, h, w, 3]`` in [0, 1] → ``[B, E]``.

    ``predictor="inception_v3"`` (Magenta's ``build_model``): InceptionV3 up to ``Mixed_6e``,
    any ``h, w >= 43`` (:data:`MIN_STYLE_SIZE`); Magenta feeds the style resized so that its
    shorter side is 256 (:func:`nst_tf.models.arbitrary.family.preprocess_style`).
    ``predictor="mobilenet_v2"`` (Magenta's ``build_mobilenet_model``, the published TF Lite
    model): MobileNetV2 up to ``layer_19`` (:mod:`nst_tf.models.arbitrary.mobilenet`), fed
    256 x 256 styles. Both end in a spatial mean and a 1x1 conv with bias (``"bottleneck"``).
    ``depth_multiplier`` thins the trunk as slim does; Magenta's models use 1.

    Example:
        >>> net = style_prediction_network(depth_multiplier=0.25)
        >>> net(tf.zeros([1, 64, 64, 3])).shape
        TensorShape([1, 100])
        >>> style_prediction_network(predictor="mobilenet_v2", depth_multiplier=0.35)(
        ...     tf.zeros([1, 64, 64, 3])).shape
        TensorShape([1, 100])
    """
    kind = predictor_kind(predictor)
    style = keras.Input(shape=(None, None, 3), name="style")
    features = kind.trunk(style, depth_multiplier)
    pooled = SpatialMean(name="bottleneck_mean")(features)
    bottleneck = keras.layers.Conv2D(int(embedding_size), 1, use_bias=True, name="bottleneck")(
        pooled)
    embedding = keras.layers.Reshape((int(embedding_size),), name="embedding")(bottleneck)
    return keras.Model(style, embedding, name=name)


# --- Transformer -------------------------------------------------------------------------------

def arbitrary_transformer(embedding_size=EMBEDDING_SIZE, alpha=1.0, fast=False,
                          name="transformer"):
    """Magenta's ``nza_model.transform`` conditioned by a style embedding.

    Inputs ``image`` float32 ``[B, H, W, 3]`` in [0, 1] (H, W >= 5) and ``embedding``
    ``[S, E]`` (S = 1: one style for the whole batch; S = B: one per image). Output float32
    ``[B, 4·ceil(H/4), 4·ceil(W/4), 3]`` in (0, 1).

    Args:
        embedding_size: E (100 in Magenta's model).
        alpha: width multiplier (conv widths ``int(alpha * 32/64/128)``).
        fast: faster forms of the same function (sub-pixel / space-to-depth convs), within
            float32 rounding of Magenta's outputs; see
            :func:`~nst_tf.networks.pastiche_network` and :func:`~nst_tf.networks.set_fast`.
        name: model name.
    """
    widths = pastiche_widths(alpha)
    image = keras.Input(shape=(None, None, 3), name="image")
    embedding = keras.Input(shape=(int(embedding_size),), name="embedding")
    x, residual_input = image, None
    for spec in PASTICHE_LAYERS:
        layer_name = keras_name(spec.scope)
        contract = spec.scope.startswith("contract/")
        if spec.scope.startswith("residual/") and spec.scope.endswith("/conv1"):
            residual_input = x
        x = ReflectConv2D(widths[spec.scope], spec.kernel, strides=spec.stride,
                          upsample=spec.upsample, fast=fast,
                          kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01),
                          name=layer_name)(x)
        if contract:
            x = SlimBatchNorm(name=f"{layer_name}_bn")(x)
        else:
            x = ConditionalStyleNorm(embedding_size, fast=fast,
                                     name=f"{layer_name}_norm")([x, embedding])
        if spec.activation is not None:
            dtype = "float32" if spec.activation == "sigmoid" else None
            x = keras.layers.Activation(spec.activation, dtype=dtype,
                                        name=f"{layer_name}_{spec.activation}")(x)
        if spec.scope.startswith("residual/") and spec.scope.endswith("/conv2"):
            x = keras.layers.Add(name=f"{layer_name}_add")([residual_input, x])
    return keras.Model([image, embedding], x, name=name)


# --- The whole network -------------------------------------------------------------------------

def arbitrary_network(embedding_size=EMBEDDING_SIZE, alpha=1.0, depth_multiplier=1.0,
                      fast=False, name="arbitrary", predictor="inception_v3"):
    """Style prediction network + transformer as one model: ``[content, style]`` → image.

    ``content`` ``[B, H, W, 3]`` and ``style`` ``[S, h, w, 3]`` (S = 1 or B) in [0, 1], already
    preprocessed (Magenta resizes the style so that its shorter side is 256, the mobile model
    takes 256 x 256; the content is used as is). The parts are the layers
    ``"style_prediction"`` and ``"transformer"``.

    Args:
        embedding_size: E (100 in Magenta's models).
        alpha: the transformer's width multiplier (1 for the Inception model, 0.25 for the
            mobile one).
        depth_multiplier: the style trunk's width multiplier (1 in Magenta's models).
        fast: the transformer's fast form (:func:`arbitrary_transformer`).
        predictor: the style trunk, a name of :data:`PREDICTORS`: ``"inception_v3"``
            (Magenta's ``arbitrary_style_transfer`` checkpoint) or ``"mobilenet_v2"`` (its
            distilled mobile model, published as TF Lite files).

    Example:
        >>> net = arbitrary_network(alpha=0.25, depth_multiplier=0.25)
        >>> net([tf.zeros([1, 20, 20, 3]), tf.zeros([1, 64, 64, 3])]).shape
        TensorShape([1, 20, 20, 3])
        >>> mobile = arbitrary_network(alpha=0.25, predictor="mobilenet_v2")
        >>> arbitrary_config(mobile)["predictor"]
        'mobilenet_v2'
    """
    predictor = style_prediction_network(embedding_size, depth_multiplier, predictor=predictor)
    transformer = arbitrary_transformer(embedding_size, alpha, fast=fast)
    content = keras.Input(shape=(None, None, 3), name="content")
    style = keras.Input(shape=(None, None, 3), name="style")
    output = transformer([content, predictor(style)])
    return keras.Model([content, style], output, name=name)


def style_predictor_of(network):
    """The style prediction model inside an :func:`arbitrary_network`."""
    return _part(network, "style_prediction")


def transformer_of(network):
    """The transformer inside an :func:`arbitrary_network`."""
    return _part(network, "transformer")


def _part(network, name):
    try:
        return network.get_layer(name)
    except (ValueError, AttributeError):
        raise ValueError(f"{getattr(network, 'name', network)!r} is not an arbitrary-style "
                         f"network: it has no {name!r} part") from None


def is_arbitrary_network(network):
    """True for a model built by :func:`arbitrary_network` (or loaded from its ``.keras``)."""
    try:
        predictor, transformer = style_predictor_of(network), transformer_of(network)
        predictor.get_layer("bottleneck")
        transformer.get_layer(keras_name("expand/conv3/conv") + "_norm")
        predictor_of_network(network)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


def predictor_of_network(network):
    """The :class:`StylePredictor` whose trunk ``network`` (an :func:`arbitrary_network` or its
    style prediction model) has; ValueError when it has none of them."""
    predictor = network if _has_layer(network, "bottleneck") else style_predictor_of(network)
    for kind in PREDICTORS.values():
        if _has_layer(predictor, kind.probe):
            return kind
    raise ValueError(f"{predictor.name!r} has no known style trunk "
                     f"({', '.join(sorted(PREDICTORS))})")


def _has_layer(model, name):
    try:
        model.get_layer(name)
    except (ValueError, AttributeError):
        return False
    return True


def arbitrary_config(network):
    """``{"embedding_size", "alpha", "depth_multiplier", "predictor"}`` of an
    :func:`arbitrary_network`: the arguments that rebuild it.

    ``alpha`` is read as ``contract/conv3`` width / 128, ``depth_multiplier`` as the width of
    the trunk's probe layer over its width at multiplier 1 (``Mixed_6e/Branch_0`` / 192,
    ``Conv_1`` / 1280): both reproduce the widths they were built with.
    """
    predictor, transformer = style_predictor_of(network), transformer_of(network)
    kind = predictor_of_network(network)
    return {"embedding_size": int(predictor.get_layer("bottleneck").filters),
            "alpha": transformer.get_layer(keras_name("contract/conv3")).filters / 128.0,
            "depth_multiplier": predictor.get_layer(kind.probe).filters / kind.probe_depth,
            "predictor": kind.name}
