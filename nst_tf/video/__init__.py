"""Video style transfer without flicker: any model :func:`nst_tf.stylize` accepts, or Gatys.

Parts (one concept per module, the optional ``video`` extra imported lazily):

* :mod:`~nst_tf.video.io` — stream frames from a video file, a folder or a pattern (never all in
  memory); write a video (audio copied) or numbered PNGs, atomically.
* :mod:`~nst_tf.video.flow` — dense optical flow (OpenCV DIS), one documented convention.
* :mod:`~nst_tf.video.warp` — gather-based bilinear backward warp (NumPy).
* :mod:`~nst_tf.video.consistency` — occlusion masks (Ruder et al.'s forward-backward check),
  blending of feed-forward outputs with the warped previous output, Lai et al.'s warping error.
* :mod:`~nst_tf.video.stylize` — :func:`stylize_video`: streaming, batching, temporal
  consistency, progress, resume.

``import nst_tf.video`` loads neither OpenCV nor PyAV nor TensorFlow; a missing extra is one
:class:`MissingDependencyError` naming ``pip install 'nst-tf[video]'``.

Example:
    >>> import nst_tf.video
    >>> nst_tf.video.stylize_video("clip.mp4", "out.mp4", model="varied",   # doctest: +SKIP
    ...                            style=5)
    >>> nst_tf.video.warping_error("out.mp4", reference="clip.mp4")      # doctest: +SKIP
    0.0031
"""

from nst_tf import _lazy

_EXPORTS = {
    "MissingDependencyError": "deps", "VideoError": "io",
    "open_frames": "io", "FrameSource": "io",
    "FlowEstimator": "flow", "estimate_flow": "flow",
    "warp": "warp",
    "occlusion_mask": "consistency", "blend_with_previous": "consistency",
    "warping_error": "consistency",
    "stylize_video": "stylize", "VideoResult": "stylize",
}
_SUBMODULES = {"deps", "io", "flow", "warp", "consistency", "stylize", "optimization"}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = _lazy.lazy_attributes(globals(), _EXPORTS, _SUBMODULES)
