"""Reconstruct an image from one layer's representation alone: what does a layer keep?

Starting from noise, optimize an image so that its features at one layer match the original's:

* ``kind="content"``: the feature maps themselves (content loss). Shallow layers give back the
  image almost exactly; deep layers keep the objects and layout but lose the exact pixels
  (Gatys et al. 2016, Fig. 1, bottom row).
* ``kind="style"``: only the layer's style statistics (Gram matrix by default, or any
  ``style_loss``). The spatial arrangement is lost; colours and textures at the layer's scale
  remain (Fig. 1, top row).

Example:
    >>> from nst_tf.reconstruction import reconstruct
    >>> out = reconstruct("photo.jpg", "relu4_2", kind="content", size=256,  # doctest: +SKIP
    ...                   steps=200)
"""

import numpy as np

from nst_tf import images
from nst_tf.errors import ConfigError, ImageError
from nst_tf.optimize import Progbar, initial_image, optimize_image

KINDS = ("content", "style")


def reconstruct(image, layer, kind="content", *, size=None, steps=200, optimizer="lbfgs",
                learning_rate=None, backbone="vgg19", weights="imagenet", pooling="max",
                style_loss="gram", tv_weight=0.0, init="noise", seed=0, jit_compile="auto",
                precision="float32", progress=False, callbacks=()):
    """Optimize an image from ``init`` to match ``image``'s representation at one ``layer``.

    Args:
        image: path or float array ``[H, W, 3]`` in [0, 1].
        layer: one layer name (Keras name or Caffe alias, e.g. ``"relu3_1"``).
        kind: ``"content"`` (feature maps) or ``"style"`` (style statistics).
        size: longest side to work at (None: the image's own size).
        steps, optimizer, learning_rate, jit_compile, precision: see
            :func:`nst_tf.optimize.optimize_image`.
        backbone, weights, pooling: the feature extractor (see
            :class:`nst_tf.features.FeatureExtractor`); ``weights=None`` is random and seeded.
        style_loss: the statistics matched for ``kind="style"``.
        tv_weight: optional total-variation smoothing (0: the layer alone).
        init: ``"noise"`` (seeded, default), ``"content"`` or an image path / array.
        seed: seed of the noise and of random weights.
        progress: show a progress bar. callbacks: extra :class:`nst_tf.optimize.Callback`.

    Returns:
        float32 ``[H, W, 3]`` in [0, 1].

    Raises:
        ConfigError: unknown ``kind``.
        LayerError: unknown layer or backbone.
        ImageError: bad or too small image.
        OptimizationError: NaN / inf.
    """
    from nst_tf.features import FeatureExtractor
    from nst_tf.objective import StyleObjective

    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(layer, str):
        raise ConfigError(f"layer must be one layer name, got {layer!r}")
    if isinstance(weights, str) and weights.lower() == "random":
        weights = None
    original = images.load_or_validate(image, max_size=size, what="image")
    if original.ndim == 4:
        if original.shape[0] != 1:
            raise ImageError(f"image must be one image, got shape {original.shape}")
        original = original[0]
    extractor = FeatureExtractor(backbone, layers=[layer], weights=weights, pooling=pooling,
                                 seed=seed)
    images.check_min_size(original, extractor.min_input_size,
                          what=f"image for {backbone} layer {layer}")
    if kind == "content":
        objective = StyleObjective(extractor, original, [], content_layers=[layer],
                                   content_weight=1.0, tv_weight=tv_weight)
    else:
        objective = StyleObjective(extractor, None, [original], style_layers=[layer],
                                   style_weight=1.0, tv_weight=tv_weight, style_loss=style_loss)
    start = initial_image(init, original, original, seed=seed)
    callbacks = list(callbacks or ()) + ([Progbar()] if progress else [])
    result = optimize_image(objective, start, optimizer=optimizer, steps=steps,
                            learning_rate=learning_rate, jit_compile=jit_compile,
                            callbacks=callbacks, precision=precision)
    return np.asarray(result.image[0], np.float32)
