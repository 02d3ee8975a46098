"""Compatibility with PyTorch checkpoints, without PyTorch.

* :mod:`torch_compat.pth`: a safe reader for ``torch.save`` files (zip and legacy layouts):
  tensors and ordered dicts only, NumPy arrays out, no pickle code ever executed.
* :mod:`torch_compat.adain`: pytorch-AdaIN's released ``vgg_normalised.pth`` / ``decoder.pth``
  into :func:`nst_tf.networks.adain_network` (names and OIHW → HWIO layouts), and the ``"adain"``
  preset (cached download).

Example:
    >>> import torch_compat
    >>> net = torch_compat.load_adain("vgg_normalised.pth", "decoder.pth")   # doctest: +SKIP

Names are imported lazily (PEP 562): ``import torch_compat`` does not load TensorFlow.
"""

from nst_tf import _lazy

_EXPORTS = {
    "load_pth": "pth",
    "read_state_dict": "pth",
    "UnsafeCheckpointError": "pth",
    "load_adain": "adain",
    "adain_files": "adain",
    "ADAIN_FILES": "adain",
}
_SUBMODULES = {"pth", "adain"}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = _lazy.lazy_attributes(globals(), _EXPORTS, _SUBMODULES)
