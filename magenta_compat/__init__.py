"""Compatibility with Magenta's ``image_stylization`` model (Dumoulin et al. 2017).

* :mod:`magenta_compat.checkpoint`: read Magenta checkpoints (V1 single file or V2 bundle) and
  the 48 variables of :func:`nst_tf.networks.pastiche_network`; write networks back under
  Magenta's names.
* :mod:`magenta_compat.pretrained`: the released "varied" (32 styles) and "monet" (10) checkpoints.
* :mod:`magenta_compat.pastiche`: :func:`load_pastiche_network` from a path or a preset name.
* :mod:`magenta_compat.which_styles`: Magenta's ``--which_styles`` syntax.
* :mod:`magenta_compat.arbitrary`: the ``arbitrary_image_stylization`` checkpoints (Ghiasi et al.
  2017, preset ``"arbitrary"``; the mobile model's too) into
  :func:`nst_tf.networks.arbitrary_network`, and back.
* :mod:`magenta_compat.mobile`: the mobile model's published TF Lite / ONNX pair (preset
  ``"arbitrary-mobile"``), read by content through :mod:`magenta_compat.tflite_reader` and
  :mod:`magenta_compat.onnx_reader` into :mod:`magenta_compat.graph`'s neutral form.

Example:
    >>> import magenta_compat
    >>> net = magenta_compat.load_pastiche_network("varied")     # doctest: +SKIP

Names are imported lazily (PEP 562): ``import magenta_compat`` does not load TensorFlow.
"""

from nst_tf import _lazy

_EXPORTS = {
    "read_checkpoint": "checkpoint",
    "write_checkpoint": "checkpoint",
    "load_pastiche_network": "pastiche",
    "infer_pastiche_config": "checkpoint",
    "network_variables": "checkpoint",
    "resolve_checkpoint_path": "checkpoint",
    "parse_which_styles": "which_styles",
    "PRESETS": "pretrained",
    "load_arbitrary_network": "arbitrary",
    "write_arbitrary_checkpoint": "arbitrary",
    "load_mobile_network": "mobile",
}
_SUBMODULES = {"checkpoint", "pretrained", "pastiche", "which_styles", "arbitrary", "mobile",
               "graph", "tflite_reader", "onnx_reader"}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = _lazy.lazy_attributes(globals(), _EXPORTS, _SUBMODULES)
