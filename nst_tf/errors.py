"""Errors raised by nst_tf.

Every error the library raises on purpose is an :class:`NSTError`, so callers can catch one type.
Each subclass also derives from the built-in exception a Python user would expect (``ValueError``,
``FileNotFoundError``...), and its message names the file, shape or value at fault.

Example:
    >>> import nst_tf
    >>> try:
    ...     nst_tf.load_image("no/such/file.jpg")
    ... except nst_tf.NSTError as e:
    ...     print(type(e).__name__)
    ImageError
"""


class NSTError(Exception):
    """Base class of every error nst_tf raises on purpose."""


class ImageError(NSTError, ValueError):
    """An image file or array that cannot be used: missing, corrupt, too small, wrong shape."""


class LayerError(NSTError, ValueError):
    """An unknown backbone or layer name; the message lists the valid ones."""


class StyleWeightsError(NSTError, ValueError):
    """Style weights of the wrong length, or NaN / inf / negative values."""


class CheckpointError(NSTError, ValueError):
    """A checkpoint that is missing, unreadable, or does not fit the network."""


class WeightsUnavailableError(NSTError, OSError):
    """Pretrained weights that are not cached and cannot be downloaded."""


class OptimizationError(NSTError, RuntimeError):
    """An optimization that diverged (NaN or inf loss)."""


class ConfigError(NSTError, ValueError):
    """An option with an invalid value (unknown optimizer, negative weight, bad size schedule)."""


class WorkerLostError(NSTError, RuntimeError):
    """A worker of a multi-worker training run died or stopped answering; the message names it
    and the checkpoint step that restarting every worker resumes from."""


class NSTWarning(UserWarning):
    """Something the user should know that does not stop the work (the command-line programs
    print it on one line: ``nst-x: note: ...``)."""
