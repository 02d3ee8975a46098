"""The optional ``video`` extra (PyAV, OpenCV), imported on first use with a one-line error.

Example:
    >>> from nst_tf.video.deps import require
    >>> require("json").__name__   # any importable module
    'json'
"""

import importlib

from nst_tf.errors import NSTError

#: module name -> (what it is, the pip package that provides it)
_PACKAGES = {"av": ("PyAV", "av"), "cv2": ("OpenCV", "opencv-python-headless")}


class MissingDependencyError(NSTError, ImportError):
    """An optional dependency of an extra is not installed; the message names the extra."""


def require(module):
    """Import ``module`` or raise :class:`MissingDependencyError` naming the ``video`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        what, package = _PACKAGES.get(module, (module, module))
        raise MissingDependencyError(
            f"video support needs {what} ({e}): pip install 'nst-tf[video]' "
            f"(or pip install {package})") from None
