"""nst_tf: neural style transfer for TensorFlow / Keras 3.

Two ways to stylize an image:

* :func:`transfer` optimizes the image itself (Gatys et al.) against a VGG / ResNet / Inception
  feature extractor, with Gram, sliced-Wasserstein, Gaussian-W2 or mean-std style losses.
* :func:`stylize` runs a feed-forward conditional-instance-norm network (Dumoulin et al.), including
  Magenta's pretrained "varied" (32 styles) and "monet" (10 styles) checkpoints, with style mixing.
  The same :func:`stylize` runs AdaIN on any style image (:func:`load_adain`: pytorch-AdaIN's
  released weights, read without PyTorch; :mod:`nst_tf.models.adain.family`).

Example:
    >>> import nst_tf
    >>> out = nst_tf.transfer("content.jpg", ["style.jpg"], size=256, steps=100)  # doctest: +SKIP
    >>> nst_tf.save_image("out.png", out)                                         # doctest: +SKIP

Importing ``nst_tf`` is cheap: TensorFlow loads on first use of a name that needs it, and nothing is
ever downloaded at import time.
"""

from nst_tf import _lazy

__version__ = "0.1.0"

# Public name -> module that defines it. Modules never share a name with a function they define
# (gatys.transfer, pastiche.stylize, reconstruction.reconstruct), so `nst_tf.stylize` is always
# the function, whatever was imported before.
# Resolved lazily (PEP 562) so `import nst_tf` stays fast.
_EXPORTS = {
    # errors
    "NSTError": "errors", "ImageError": "errors", "LayerError": "errors",
    "StyleWeightsError": "errors", "CheckpointError": "errors",
    "WeightsUnavailableError": "errors", "OptimizationError": "errors", "ConfigError": "errors",
    "WorkerLostError": "errors", "NSTWarning": "errors",
    "DatasetError": "data", "OutputPathError": "io",
    # images
    "load_image": "images", "save_image": "images",
    # Gatys: features, losses, objective, optimization
    "FeatureExtractor": "features", "default_layers": "features",
    "resolve_layer_name": "features",
    "STYLE_LOSSES": "losses",
    "StyleObjective": "objective", "Term": "objective",
    "optimize_image": "optimize",
    "transfer": "gatys",
    "TiledObjective": "tiling",
    "reconstruct": "reconstruction",
    # feed-forward networks
    "ConditionalInstanceNorm": "layers", "ReflectionPad2D": "layers", "ReflectConv2D": "layers",
    "InstanceNormalization": "layers", "NearestUpsample2D": "layers",
    "pastiche_network": "networks", "pastiche_config": "networks", "set_fast": "networks",
    "johnson_network": "networks",
    "adain_network": "networks", "load_adain": "models.adain.family",
    "stylize": "families", "stylize_to_file": "families",
    # texture networks (Ulyanov et al.)
    "texture_network": "networks", "synthesize": "models.texture.family", "CircularPad2D": "layers",
    "NoiseFill": "layers",
    # arbitrary style (Ghiasi et al.)
    "arbitrary_network": "networks", "style_embedding": "models.arbitrary.family",
    "stylize_from_embedding": "models.arbitrary.family",
    "export_saved_model": "export", "export_tflite": "export", "export_keras": "export",
    # feed-forward training
    "content_dataset": "data", "style_images": "data",
    "StyleTrainer": "training", "PerceptualLoss": "training", "train": "training",
    "export_magenta_checkpoint": "export", "export_mobile_tflite": "export",
    # preference learning (NumPy; the web page is nst_tf.preference.app, extra "ui")
    "PreferenceLearner": "preference",
    # whole datasets on Apache Beam (extra "beam")
    "stylize_dataset": "scale",
}
_SUBMODULES = {"errors", "images", "features", "losses", "objective", "optimize", "multiscale",
               "gatys", "reconstruction", "layers", "networks", "models", "families", "data",
               "training", "export", "device", "io", "lbfgs", "cli", "video", "preference", "scale",
               "patches", "norm_statistics", "receptive_field", "tiling", "resume"}

__all__ = sorted(_EXPORTS) + ["losses"]


__getattr__, __dir__ = _lazy.lazy_attributes(globals(), _EXPORTS, _SUBMODULES)
