"""Atomic file writing: a reader never sees a half-written file.

Example:
    >>> import os, tempfile
    >>> from nst_tf.io import atomic_write
    >>> path = os.path.join(tempfile.mkdtemp(), "out.txt")
    >>> with atomic_write(path) as f:
    ...     _ = f.write(b"hello")
    >>> open(path, "rb").read()
    b'hello'
"""

import contextlib
import os
import tempfile

from nst_tf.errors import NSTError


class OutputPathError(NSTError, OSError):
    """An output path whose folder does not exist or cannot be written."""


def check_output_dir(path):
    """Raise :class:`OutputPathError` unless the folder of ``path`` exists."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise OutputPathError(f"cannot write {path!s}: folder {folder!s} does not exist")
    return folder


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path``; on success rename it over ``path``, else delete it."""
    path = os.fspath(path)
    folder = check_output_dir(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
