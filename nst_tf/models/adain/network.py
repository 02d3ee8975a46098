"""AdaIN (Huang & Belongie, ICCV 2017): VGG-19 encoder to relu4_1, one AdaIN op, a decoder.

:func:`adain_network` builds the whole model as a Keras functional model with two image inputs
``[content, style]`` and nested parts you can use alone:

* ``network.get_layer("encoder")``: images in [0, 1] → ``[relu1_1, relu2_1, relu3_1, relu4_1]``.
  ``encoder="normalised"`` is the published "normalised" VGG-19 (the network of
  ``vgg_normalised.pth``, :data:`NORMALISED_VGG`): a 1x1 input conv that maps RGB in [0, 1] to
  ``BGR·255 − [103.939, 116.779, 123.68]``, 3x3 convs with **reflection** padding, 2x2 max pooling
  in **ceil mode** (an odd side keeps its last row). ``encoder="keras"`` is
  ``keras.applications.VGG19`` to ``block4_conv1`` (its ImageNet weights, zero "same" padding)
  behind the same fixed input map, for training your own decoder; its pooling is also ceil mode.
* ``network.get_layer("adain")``: :class:`AdaptiveInstanceNorm`, ``[content features, style
  features] → target t``.
* ``network.get_layer("decoder")``: t → image, the published decoder (:data:`DECODER`): nine
  reflection-padded 3x3 convs with ReLU, three x2 nearest upsamplings, **no output activation**
  (:func:`nst_tf.stylize` clamps to [0, 1], as pytorch-AdaIN's ``save_image`` does).

The AdaIN op ``t = σ_s·(x − μ_x)/σ_x + μ_s`` (statistics per image and channel over H, W) comes
in the three published conventions (:data:`CONVENTIONS`):

==========  ==================================  =============================
convention  σ of the content features           σ of the style features
==========  ==================================  =============================
pytorch     √(unbiased var + ε)                 √(unbiased var + ε)
torch       √(biased var + ε)                   √(biased var)  (no ε)
keras       √(biased var + ε)                   √(biased var + ε)
==========  ==================================  =============================

with ε = 1e-5: ``pytorch`` is naoto0804/pytorch-AdaIN (whose released weights :func:`load_adain
<torch_compat.adain.load_adain>` loads), ``torch`` the authors' Torch code, ``keras`` the
keras.io example.

Output size: every max pool rounds up, so the output is ``8·ceil(H/8) × 8·ceil(W/8)``: up to 7
pixels more than the input, aligned at the top-left (crop ``[:H, :W]`` to get ``H × W``,
``nst_tf.stylize(..., crop=True)`` does). The smallest input side is :data:`MIN_ADAIN_SIZE` (9).

Example:
    >>> import numpy as np
    >>> from nst_tf.networks import adain_network
    >>> net = adain_network(channel_divisor=16)              # reduced widths, random weights
    >>> content = np.random.rand(1, 37, 50, 3).astype("float32")
    >>> style = np.random.rand(1, 32, 32, 3).astype("float32")
    >>> net([content, style]).shape
    TensorShape([1, 40, 56, 3])
"""

import collections

import keras
import numpy as np
import tensorflow as tf

from nst_tf import norm_statistics
from nst_tf.errors import ConfigError, ImageError
from nst_tf.layers import reflect_pad, upsample2_conv3, upsample_reflect_pad

_REGISTER = keras.saving.register_keras_serializable(package="nst_tf")

#: AdaIN std / epsilon conventions (see the module docstring).
CONVENTIONS = ("pytorch", "torch", "keras")
#: ε added to variances.
ADAIN_EPSILON = 1e-5
#: Encoders :func:`adain_network` can build.
ENCODERS = ("normalised", "keras")
#: Smallest image side: relu4_1 is computed at ceil(H/8), where reflection padding by 1 needs 2.
MIN_ADAIN_SIZE = 9
#: The encoder outputs, as the papers name them, and their Keras layer names.
ENCODER_OUTPUTS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
ENCODER_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")
#: The fixed RGB → Caffe-BGR input map: ``BGR·255 − mean``.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

#: One layer of a published PyTorch ``nn.Sequential``: kind (``conv``, ``pad``, ``relu``, ``pool``,
#: ``up``), Keras layer name (convs only), input and output widths at full size.
SeqLayer = collections.namedtuple("SeqLayer", "kind name cin cout")


def _normalised_vgg():
    layers = [SeqLayer("conv", "conv0", 3, 3)]
    widths = (64, 128, 256, 512, 512)
    cin = 3
    for block, (width, convs) in enumerate(zip(widths, (2, 2, 4, 4, 4)), start=1):
        for i in range(1, convs + 1):
            layers += [SeqLayer("pad", None, cin, cin),
                       SeqLayer("conv", f"block{block}_conv{i}", cin, width),
                       SeqLayer("relu", None, width, width)]
            cin = width
        if block < 5:
            layers.append(SeqLayer("pool", f"block{block}_pool", cin, cin))
    return tuple(layers)


def _decoder():
    spec = (("dec4_1", 512, 256), ("up",), ("dec3_4", 256, 256), ("dec3_3", 256, 256),
            ("dec3_2", 256, 256), ("dec3_1", 256, 128), ("up",), ("dec2_2", 128, 128),
            ("dec2_1", 128, 64), ("up",), ("dec1_2", 64, 64), ("dec1_1", 64, 3))
    layers = []
    for item in spec:
        if item[0] == "up":
            layers.append(SeqLayer("up", None, layers[-1].cout, layers[-1].cout))
            continue
        name, cin, cout = item
        layers += [SeqLayer("pad", None, cin, cin), SeqLayer("conv", name, cin, cout)]
        if name != "dec1_1":
            layers.append(SeqLayer("relu", None, cout, cout))
    return tuple(layers)


#: pytorch-AdaIN's ``net.vgg`` layer by layer (53 modules, to relu5_4); index i of this tuple is
#: module i of the ``nn.Sequential``, so conv ``i`` has state-dict keys ``"i.weight"``, ``"i.bias"``.
#: The AdaIN encoder is modules 0-30 (to relu4_1, ``block4_conv1``).
NORMALISED_VGG = _normalised_vgg()
#: pytorch-AdaIN's ``net.decoder`` (29 modules), indexed the same way.
DECODER = _decoder()
#: Number of encoder modules AdaIN uses (``vgg[:31]`` in pytorch-AdaIN).
ENCODER_DEPTH = 31


def torch_conv_indices(sequence, depth=None):
    """``{keras name: module index}`` of the convs in ``sequence[:depth]``.

    Example:
        >>> torch_conv_indices(NORMALISED_VGG, ENCODER_DEPTH)["block4_conv1"]
        29
    """
    return {layer.name: i for i, layer in enumerate(sequence[:depth]) if layer.kind == "conv"}


def scaled_width(width, channel_divisor):
    """Width of a layer in a network with channels divided by ``channel_divisor`` (3 stays 3)."""
    return width if width == 3 else max(1, width // int(channel_divisor))


# --- The AdaIN op -------------------------------------------------------------------------------

def _check_convention(convention):
    if convention not in CONVENTIONS:
        raise ConfigError(f"AdaIN convention must be one of {', '.join(CONVENTIONS)}, "
                          f"got {convention!r}")
    return convention


def feature_statistics(x, convention="pytorch", role="content", epsilon=ADAIN_EPSILON, mask=None):
    """Per image and channel mean and σ of ``x`` [B,H,W,C] over H, W: two ``[B,1,1,C]`` tensors.

    ``role`` is ``"content"`` or ``"style"`` (they differ in the ``torch`` convention, see the
    module docstring). ``mask`` [B,H,W,1] in {0, 1} restricts the statistics to its pixels
    (spatial control); the unbiased variance then divides by ``count − 1``.

    Unmasked content statistics go through the record/replay point
    :func:`nst_tf.norm_statistics.moments` (the mean, biased variance and pixel count; the
    convention is applied after it), so tiled stylization can replace them with the thumbnail's
    or the whole image's. Style statistics describe the style image and never do.

    Example:
        >>> x = tf.reshape(tf.range(4.0), [1, 2, 2, 1])
        >>> [float(t) for t in feature_statistics(x, "keras", epsilon=0.0)]
        [1.5, 1.118033...]
    """
    _check_convention(convention)
    dtype = x.dtype
    x = tf.cast(x, tf.float32)
    if mask is None and role == "content":
        mean, variance, count = norm_statistics.moments(x, lambda v: _moments(v)[:2])
    else:
        if norm_statistics.is_active() and role == "content":
            raise ConfigError("AdaIN with a mask cannot be tiled: the masked statistics have no "
                              "record/replay point")
        mean, variance, count = _moments(x, mask)
    if convention == "pytorch":           # unbiased
        variance = variance * count / tf.maximum(count - 1.0, 1.0)
    eps = 0.0 if (convention == "torch" and role == "style") else float(epsilon)
    std = tf.sqrt(variance + eps)
    return tf.cast(mean, dtype), tf.cast(std, dtype)


def _moments(x, mask=None):
    """Mean, biased variance and pixel count of float32 ``x`` over H, W (of ``mask``'s pixels),
    summed by rows (:func:`nst_tf.norm_statistics.spatial_sum`)."""
    if mask is None:
        return (*norm_statistics.two_pass_moments(x), norm_statistics.pixel_count(x))
    mask = tf.cast(mask, tf.float32)
    safe = tf.maximum(norm_statistics.spatial_sum(mask), 1.0)
    mean = norm_statistics.spatial_sum(x * mask) / safe
    squares = norm_statistics.spatial_sum(tf.math.squared_difference(x, mean) * mask)
    return mean, squares / safe, safe


def adain(content, style_mean, style_std, convention="pytorch", epsilon=ADAIN_EPSILON,
          mask=None):
    """``σ_s·(x − μ_x)/σ_x + μ_s``: ``content`` features [B,H,W,C] with the style statistics
    ``[B or 1, 1, 1, C]`` (from :func:`feature_statistics` with ``role="style"``). With ``mask``,
    the content statistics are those of the masked pixels."""
    mean, std = feature_statistics(content, convention, "content", epsilon, mask)
    return (content - mean) / std * style_std + style_mean


@_REGISTER
class AdaptiveInstanceNorm(keras.layers.Layer):
    """``[content features, style features] → σ_s·(x − μ_x)/σ_x + μ_s`` (no weights).

    Args:
        convention: ``"pytorch"`` (default; pytorch-AdaIN: unbiased variance + ε for both),
            ``"torch"`` (biased + ε for content, biased without ε for style) or ``"keras"``
            (biased + ε for both).
        epsilon: ε (1e-5 in all three).

    A style batch of 1 applies to every content image.

    Example:
        >>> layer = AdaptiveInstanceNorm("torch")
        >>> layer([tf.random.normal([2, 4, 4, 8]), tf.random.normal([1, 3, 5, 8])]).shape
        TensorShape([2, 4, 4, 8])
    """

    def __init__(self, convention="pytorch", epsilon=ADAIN_EPSILON, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.convention = _check_convention(convention)
        self.epsilon = float(epsilon)

    def style_statistics(self, style):
        """Mean and σ of style features, as this layer uses them."""
        return feature_statistics(style, self.convention, "style", self.epsilon)

    def call(self, inputs):
        content, style = inputs
        mean, std = self.style_statistics(style)
        return adain(content, mean, std, self.convention, self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "convention": self.convention, "epsilon": self.epsilon}


# --- Convolutions -------------------------------------------------------------------------------

@_REGISTER
class ReflectConvBias(keras.layers.Layer):
    """[x2 nearest upsampling →] reflection pad ``k // 2`` → VALID conv with bias → [ReLU].

    One layer of the published AdaIN networks (pytorch's ``ReflectionPad2d``, ``Conv2d``,
    ``ReLU``, with the ``Upsample`` before it folded in). ``fast=True`` computes an upsampling
    3x3 conv as one 2x2 sub-pixel conv (:func:`nst_tf.layers.upsample2_conv3`: 4/9 of the
    multiply-adds, equal up to float rounding).

    Example:
        >>> ReflectConvBias(8, upsample=2)(tf.zeros([1, 5, 6, 4])).shape
        TensorShape([1, 10, 12, 8])
    """

    def __init__(self, filters, kernel_size=3, upsample=1, activation="relu", fast=False,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.upsample = int(upsample)
        self.activation = activation
        self.fast = bool(fast)
        if activation not in ("relu", None):
            raise ValueError(f"activation must be 'relu' or None, got {activation!r}")
        if self.upsample not in (1, 2) or self.kernel_size % 2 != 1:
            raise ValueError("upsample must be 1 or 2 and kernel_size odd")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        k = self.kernel_size
        self.kernel = self.add_weight(name="kernel", shape=(k, k, int(input_shape[-1]),
                                                            self.filters),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, x):
        kernel = tf.cast(self.kernel, x.dtype)
        pad = self.kernel_size // 2
        if self.upsample == 2 and self.fast and self.kernel_size == 3:
            y = upsample2_conv3(x, kernel)
        else:
            if self.upsample == 2 and pad < 2:
                padded = upsample_reflect_pad(x, 2, pad)
            else:
                padded = reflect_pad(x, pad, pad, name=self.name)
            y = tf.nn.conv2d(padded, kernel, 1, "VALID")
        y = tf.nn.bias_add(y, tf.cast(self.bias, x.dtype))
        return tf.nn.relu(y) if self.activation == "relu" else y

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        up = self.upsample
        return (b, None if h is None else h * up, None if w is None else w * up, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "upsample": self.upsample,
                "activation": self.activation, "fast": self.fast,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


# --- Encoder, decoder, network -------------------------------------------------------------------

def caffe_input_weights():
    """Kernel ``[1, 1, 3, 3]`` and bias of the 1x1 conv mapping RGB in [0, 1] to Caffe's
    ``BGR·255 − mean`` (what ``vgg_normalised.pth``'s first layer holds)."""
    kernel = np.zeros((1, 1, 3, 3), np.float32)
    for out, rgb in enumerate((2, 1, 0)):
        kernel[0, 0, rgb, out] = 255.0
    return kernel, -np.asarray(CAFFE_MEAN_BGR, np.float32)


def _he_normal(layers, seed):
    rng = np.random.default_rng(seed)
    for layer in layers:
        kernel = layer.kernel
        fan_in = int(np.prod(kernel.shape[:-1]))
        kernel.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), kernel.shape).astype(np.float32))
        layer.bias.assign(np.zeros(layer.bias.shape, np.float32))


def _keras_vgg19(weights, seed):
    from nst_tf.features import _build_backbone

    return _build_backbone("vgg19", weights, seed)


def adain_encoder(kind="normalised", channel_divisor=1, weights=None, seed=0, name="encoder"):
    """The frozen encoder: images ``[B, H, W, 3]`` in [0, 1] → the four maps of
    :data:`ENCODER_OUTPUTS` (relu1_1 … relu4_1), at scales 1, 1/2, 1/4, 1/8 (rounded up).

    Args:
        kind: ``"normalised"`` (published layout; random He-normal weights here, load the
            released ones with :func:`torch_compat.adain.load_adain`) or ``"keras"``
            (``keras.applications.VGG19`` layers).
        channel_divisor: divide every width by this (tests and small fixtures).
        weights: ``"keras"`` only: ``"imagenet"`` (Keras' cached download), ``None`` /
            ``"random"`` or a local ``.h5``; full widths only unless random.
        seed: seed of random weights.
    """
    if kind not in ENCODERS:
        raise ConfigError(f"encoder must be one of {', '.join(ENCODERS)}, got {kind!r}")
    divisor = int(channel_divisor)
    random = weights is None or weights == "random"
    if kind == "normalised" and not random:
        raise ConfigError("the normalised encoder is built with random weights; load "
                          "vgg_normalised.pth with nst_tf.load_adain (or torch_compat.adain)")
    if kind == "keras" and divisor != 1 and not random:
        raise ConfigError(f"keras.applications.VGG19 weights need channel_divisor=1, got {divisor}")
    image = keras.Input((None, None, 3), name="image")
    conv0 = keras.layers.Conv2D(3, 1, name="conv0")
    x = conv0(image)
    kernel, bias = caffe_input_weights()
    conv0.set_weights([kernel, bias])
    convs, outputs = [], []
    for layer in NORMALISED_VGG[1:ENCODER_DEPTH]:
        if layer.kind == "pool":
            x = keras.layers.MaxPooling2D(2, 2, padding="same", name=layer.name)(x)
        elif layer.kind == "conv":
            width = scaled_width(layer.cout, divisor)
            conv = (ReflectConvBias(width, name=layer.name) if kind == "normalised" else
                    keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                        name=layer.name))
            x = conv(x)
            convs.append(conv)
            if layer.name in ENCODER_LAYERS:
                outputs.append(x)
    model = keras.Model(image, outputs, name=name)
    if kind == "keras" and not random:
        vgg = _keras_vgg19(weights, seed)
        for conv in convs:
            conv.set_weights(vgg.get_layer(conv.name).get_weights())
    else:
        _he_normal(convs, seed)
    model.trainable = False
    return model


def adain_decoder(channel_divisor=1, fast=True, name="decoder"):
    """The published decoder (:data:`DECODER`): relu4_1 features → image ``8h × 8w``, no output
    activation. ``fast`` computes its three upsampling convs in sub-pixel form."""
    divisor = int(channel_divisor)
    features = keras.Input((None, None, scaled_width(512, divisor)), name="features")
    x, upsample = features, 1
    for layer in DECODER:
        if layer.kind == "up":
            upsample = 2
        elif layer.kind == "conv":
            x = ReflectConvBias(scaled_width(layer.cout, divisor), upsample=upsample,
                                activation=None if layer.name == "dec1_1" else "relu",
                                fast=fast, name=layer.name)(x)
            upsample = 1
    return keras.Model(features, x, name=name)


def adain_network(encoder="normalised", convention="pytorch", channel_divisor=1, weights=None,
                  fast=True, seed=0, name="adain"):
    """Encoder + :class:`AdaptiveInstanceNorm` + decoder as one Keras model
    ``[content, style] → image`` (α = 1; :func:`nst_tf.stylize` adds α, mixing, masks).

    Args:
        encoder: ``"normalised"`` (published VGG) or ``"keras"`` (keras.applications.VGG19).
        convention: the AdaIN op's (:data:`CONVENTIONS`).
        channel_divisor: divide every width by this (e.g. 16 for test fixtures).
        weights: the encoder's (see :func:`adain_encoder`); the decoder starts random.
        fast: sub-pixel upsampling convs in the decoder (same function, ~1e-6 rounding).
        seed: seeds the encoder's random weights.

    Returns:
        A ``keras.Model`` named ``name`` with nested ``"encoder"`` and ``"decoder"`` models and
        an ``"adain"`` layer; the output is ``[B, 8·ceil(H/8), 8·ceil(W/8), 3]``, not clamped.
    """
    if int(channel_divisor) < 1 or 64 % int(channel_divisor):
        raise ConfigError(f"channel_divisor must divide 64, got {channel_divisor}")
    enc = adain_encoder(encoder, channel_divisor, weights, seed)
    dec = adain_decoder(channel_divisor, fast)
    content = keras.Input((None, None, 3), name="content")
    style = keras.Input((None, None, 3), name="style")
    target = AdaptiveInstanceNorm(convention, name="adain")([enc(content)[-1], enc(style)[-1]])
    return keras.Model([content, style], dec(target), name=name)


def is_adain_network(network):
    """True for a model built by :func:`adain_network` (or loaded from its ``.keras`` file)."""
    try:
        return (isinstance(network.get_layer("adain"), AdaptiveInstanceNorm)
                and network.get_layer("encoder") is not None
                and network.get_layer("decoder") is not None)
    except (ValueError, AttributeError, TypeError):
        return False


def adain_config(network):
    """``{"encoder", "convention", "channel_divisor"}`` of an AdaIN network.

    Example:
        >>> adain_config(adain_network(channel_divisor=16))["channel_divisor"]
        16
    """
    if not is_adain_network(network):
        raise ConfigError(f"{getattr(network, 'name', network)!r} is not an AdaIN network")
    enc = network.get_layer("encoder")
    first = enc.get_layer("block1_conv1")
    return {"encoder": "normalised" if isinstance(first, ReflectConvBias) else "keras",
            "convention": network.get_layer("adain").convention,
            "channel_divisor": 64 // int(first.filters)}


def check_adain_input(images, what="image"):
    """Raise :class:`~nst_tf.errors.ImageError` for images smaller than :data:`MIN_ADAIN_SIZE`."""
    height, width = np.shape(images)[-3:-1]
    if min(height, width) < MIN_ADAIN_SIZE:
        raise ImageError(f"{what} is {width}x{height} pixels; AdaIN needs at least "
                         f"{MIN_ADAIN_SIZE}x{MIN_ADAIN_SIZE} (relu4_1 is computed at 1/8 scale "
                         "with reflection padding)")
