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
import shutil
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


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yield a temporary file name beside ``path`` (ending in ``suffix``, for writers that pick
    the format from the name); on success rename it over ``path``, else delete it.

    For writers that take a file name rather than an open file (``keras.Model.save``, FFmpeg).

    Example:
        >>> import tempfile
        >>> target = os.path.join(tempfile.mkdtemp(), "model.bin")
        >>> with atomic_path(target, suffix=".bin") as tmp:
        ...     _ = open(tmp, "wb").write(b"weights")
        >>> open(target, "rb").read()
        b'weights'
    """
    path = os.fspath(path)
    folder = check_output_dir(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def replace_folder(source, path):
    """Rename the finished folder ``source`` to ``path``, replacing an existing folder ``path``
    (moved aside first, then deleted): readers see the old folder or the new one."""
    old = None
    if os.path.exists(path):
        old = source + ".old"
        os.replace(path, old)
    os.replace(source, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (a folder).

    For outputs that are folders (SavedModels): readers see the old folder or the new one,
    never a half-written one.
    """
    path = os.path.abspath(os.fspath(path))
    parent = check_output_dir(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputPathError(f"cannot write the folder {path}: it exists and is a file")
    tmp = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        yield tmp
        replace_folder(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def keras_home():
    """The Keras cache folder, as ``keras.utils.get_file`` chooses it: ``$KERAS_HOME`` if set,
    else ``~/.keras``; ``/tmp/.keras`` when that folder is not writable. Downloaded checkpoints
    live under it (``models/magenta/``, ``models/adain/``).

    Example:
        >>> keras_home()                                         # doctest: +SKIP
        '/home/me/.keras'
    """
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    base = os.path.expanduser(base)
    probe = base if os.path.exists(base) else os.path.dirname(base)
    if not os.access(probe, os.W_OK):
        base = os.path.join("/tmp", ".keras")
    return base
