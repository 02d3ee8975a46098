"""Atomic file writing: a reader never sees a half-written file.

Outputs get the permissions a plain ``open(path, "w")`` would give them: a new file
``0o666`` less the umask (a new folder ``0o777`` less the umask), a replaced file or folder keeps
its mode. (``tempfile.mkstemp`` / ``mkdtemp`` would make every output private, ``0o600``.)

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
import re
import secrets
import shutil
import stat

from nst_tf.errors import NSTError, NSTWarning


class OutputPathError(NSTError, OSError):
    """An output path whose folder does not exist or cannot be written."""


class OutputExistsError(OutputPathError):
    """An output that already exists, where the caller asked not to replace one."""


def check_output_dir(path):
    """Raise :class:`OutputPathError` unless the folder of ``path`` exists."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise OutputPathError(f"cannot write {path!s}: folder {folder!s} does not exist")
    return folder


def same_file(a, b):
    """True when the paths ``a`` and ``b`` name one file or folder: equal once resolved
    (symlinks, ``..``, relative or absolute) or, when both exist, one inode (hard links,
    case-insensitive file systems).

    Example:
        >>> same_file("out.png", os.path.join(".", "sub", "..", "out.png"))
        True
    """
    a, b = os.fspath(a), os.fspath(b)
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:   # one of them does not exist (yet): only the names can agree
        return False


def inside(path, folder):
    """True when ``path`` is ``folder`` or lies somewhere under it (resolved paths; a folder
    output that replaces ``folder`` would delete ``path``).

    Example:
        >>> inside("runs/a/ckpt-5.index", "runs"), inside("runs2/x", "runs")
        (True, False)
    """
    path, folder = os.path.realpath(os.fspath(path)), os.path.realpath(os.fspath(folder))
    while True:
        if path == folder or same_file(path, folder):
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


def check_not_replacing(output, kept, flag="--output", why="this run needs it"):
    """Raise :class:`OutputPathError` when writing ``output`` would overwrite or delete
    ``kept``: the same file once resolved, or a folder holding it (an output folder replaces
    whatever is there).

    Example:
        >>> check_not_replacing("exports/model", "runs/cin", "--export_saved_model")
        >>> check_not_replacing("runs", "runs/cin", "--export_saved_model")
        Traceback (most recent call last):
        ...
        nst_tf.io.OutputPathError: --export_saved_model=runs would replace runs/cin (this run needs it); choose another --export_saved_model
    """
    if inside(kept, output):
        raise OutputPathError(f"{flag}={output} would replace {kept} ({why}); choose another "
                              f"{flag}")


def check_keeps_inputs(output, inputs, flag="--output"):
    """Raise :class:`OutputPathError` when writing ``output`` would overwrite or replace one of
    the ``inputs`` of the run: ``(flag, path)`` pairs, where ``path`` is one path, a list of
    them, or anything else (None, a network, an array: skipped). The one rule of every program (:func:`check_not_replacing`, before any work): an output
    must not be, once resolved, an input (symlinks, hard links, ``..``), nor a folder holding
    one. Inputs that do not exist are skipped (reading them fails on its own), and so are
    remote ones (``gs://...``); a checkpoint prefix is checked by its ``.index`` file.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp(); photo = os.path.join(folder, "p.jpg")
        >>> check_keeps_inputs(folder + "/out.png", [("--content", photo), ("--style", None)])
        >>> _ = open(photo, "wb")
        >>> check_keeps_inputs(folder + "/./p.jpg", [("--content", photo)])
        Traceback (most recent call last):
        ...
        nst_tf.io.OutputPathError: --output=.../p.jpg would replace .../p.jpg (the --content of this run); choose another --output
    """
    for name, paths in inputs:
        if not isinstance(paths, (list, tuple)):
            paths = [paths]   # one path, or an object that is no path (a network, an array)
        for path in paths:
            if not isinstance(path, (str, os.PathLike)) or not path or "://" in os.fspath(path):
                continue
            for kept in (path, f"{os.fspath(path)}.index"):
                if os.path.lexists(kept):
                    check_not_replacing(output, kept, flag, f"the {name} of this run")


#: The file that marks a folder as a SavedModel: the one kind of folder an export replaces.
SAVED_MODEL_FILE = "saved_model.pb"

_TOKEN_BYTES = 4   # the random part of a temporary name: 8 hex digits


def temporary_name(path, suffix=".tmp", sep=os.sep):
    """A new hidden name beside ``path`` for writing it (``.name.0123abcd.tmp``): the names
    :func:`remove_stale_temporaries` and :func:`remove_stale_temporaries_below` recognize.
    ``sep="/"`` for URLs (``gs://bucket/x.png``).

    Example:
        >>> temporary_name("out/a.png")                          # doctest: +SKIP
        'out/.a.png.5f2c91d0.tmp'
    """
    folder, _, name = os.fspath(path).rpartition(sep)
    return f"{folder}{sep if folder else ''}.{name}.{secrets.token_hex(_TOKEN_BYTES)}{suffix}"


_temporary_name = temporary_name


def _stale_pattern(name, suffix):
    return re.compile(rf"\.{name}\.[0-9a-f]{{{2 * _TOKEN_BYTES}}}{re.escape(suffix)}")


def remove_stale_temporaries(path, suffix=".tmp"):
    """Delete the temporary files that :func:`atomic_write` (or :func:`atomic_path` with
    ``suffix``) left beside ``path`` when the process writing it was killed (``kill -9``, a
    crash, a power cut); returns the names removed. Only the temporaries of ``path`` itself are
    touched, so call it where no other process is writing ``path`` at the same time (a run
    starting on its own checkpoint).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> _ = open(os.path.join(folder, ".run.npz.0123abcd.tmp"), "wb")
        >>> remove_stale_temporaries(os.path.join(folder, "run.npz"))
        ['.run.npz.0123abcd.tmp']
    """
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    pattern = _stale_pattern(re.escape(name), suffix)
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(entry.path)
                    removed.append(entry.name)
    return sorted(removed)


def remove_stale_temporaries_below(folder, suffix=".tmp"):
    """Delete the temporary files (:func:`temporary_name`) that writers killed before their
    rename left anywhere below ``folder``; returns their paths relative to ``folder``. As for
    :func:`remove_stale_temporaries`, call it where no other process writes there at the same
    time (a dataset run, before its workers start).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp(); os.mkdir(os.path.join(folder, "cats"))
        >>> _ = open(os.path.join(folder, "cats", ".1.png.0123abcd.tmp"), "wb")
        >>> remove_stale_temporaries_below(folder)
        ['cats/.1.png.0123abcd.tmp']
    """
    pattern = _stale_pattern(".+", suffix)
    removed = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            if pattern.fullmatch(name) and not os.path.islink(path):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                    removed.append(os.path.relpath(path, folder))
    return sorted(removed)


def _create(path, suffix, make):
    """``(make(tmp), tmp)`` for a new temporary name beside ``path``; ``make`` creates it
    exclusively (a name already taken is retried with another)."""
    for _ in range(100):
        tmp = _temporary_name(path, suffix)
        try:
            return make(tmp), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def _new_file(path, suffix):
    """An open descriptor and name of a new file beside ``path``, created with mode 0o666 so the
    umask applies exactly as for ``open(path, "w")``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return _create(path, suffix, lambda tmp: os.open(tmp, flags, 0o666))


def _publish(tmp, path, mode, rename=os.replace):
    """Rename ``tmp`` over ``path`` with the permissions the output should have: those of the
    file or folder it replaces, else ``mode`` (what creating it in place gives)."""
    with contextlib.suppress(FileNotFoundError):
        mode = stat.S_IMODE(os.stat(path).st_mode)
    if stat.S_IMODE(os.stat(tmp).st_mode) != mode:
        os.chmod(tmp, mode)
    rename(tmp, path)


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path``; on success rename it over ``path``, else delete it."""
    path = os.fspath(path)
    check_output_dir(path)
    fd, tmp = _new_file(path, ".tmp")
    try:
        created = stat.S_IMODE(os.fstat(fd).st_mode)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path, created)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yield a temporary file name beside ``path`` (ending in ``suffix``, for writers that pick
    the format from the name); on success rename it over ``path``, else delete it.

    For writers that take a file name rather than an open file (``keras.Model.save``, FFmpeg);
    whether they write into the file or replace it, the output gets the permissions of
    ``open(path, "w")``.

    Example:
        >>> import tempfile
        >>> target = os.path.join(tempfile.mkdtemp(), "model.bin")
        >>> with atomic_path(target, suffix=".bin") as tmp:
        ...     _ = open(tmp, "wb").write(b"weights")
        >>> open(target, "rb").read()
        b'weights'
    """
    path = os.fspath(path)
    check_output_dir(path)
    fd, tmp = _new_file(path, suffix)
    try:
        created = stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    try:
        yield tmp
        _publish(tmp, path, created)
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


def check_replaceable_folder(path, replaces=None):
    """Raise :class:`OutputExistsError` when ``path`` is a non-empty folder without the file
    ``replaces`` (a folder output there would delete what it holds); ``replaces=None`` allows
    any folder. Call it before the work whose result goes to :func:`atomic_directory`.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp(); _ = open(os.path.join(folder, "notes.txt"), "w")
        >>> check_replaceable_folder(folder, "saved_model.pb")
        Traceback (most recent call last):
        ...
        nst_tf.io.OutputExistsError: ... is a folder with other files in it (no saved_model.pb): writing there would delete them; choose a new folder
    """
    if (replaces and os.path.isdir(path) and os.listdir(path)
            and not os.path.exists(os.path.join(path, replaces))):
        raise OutputExistsError(f"{path} is a folder with other files in it (no {replaces}): "
                                "writing there would delete them; choose a new folder")


@contextlib.contextmanager
def atomic_directory(path, replaces=None):
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (a folder).

    For outputs that are folders (SavedModels): readers see the old folder or the new one,
    never a half-written one. The folder gets the mode of ``os.mkdir(path)`` (or of the folder
    it replaces). With ``replaces`` (a file name, e.g. ``"saved_model.pb"``), an existing
    non-empty folder is replaced only when it holds that file, i.e. when it is an earlier output
    of the same kind: any other folder is refused (:class:`OutputExistsError`), before the
    caller does any work.
    """
    path = os.path.abspath(os.fspath(path))
    check_output_dir(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputPathError(f"cannot write the folder {path}: it exists and is a file")
    check_replaceable_folder(path, replaces)
    _, tmp = _create(path, ".tmp", lambda name: os.mkdir(name, 0o777))  # the umask applies
    try:
        created = stat.S_IMODE(os.stat(tmp).st_mode)
        yield tmp
        _publish(tmp, path, created, rename=replace_folder)
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


def is_local_path(name):
    """True when the model name ``name`` is an existing file, folder or checkpoint prefix here.

    The rule for names that are also presets (``arbitrary``, ``varied``, ``adain``...): an
    existing path wins, and a :class:`~nst_tf.errors.NSTWarning` says so (``nst-x: note: ...``
    in the programs), since ``--export_magenta=arbitrary/model.ckpt`` makes such a folder.
    Rename it (or ``cd`` elsewhere) to use the preset.

    Example:
        >>> is_local_path("no-such-model")
        False
    """
    name = os.fspath(name)
    return os.path.exists(name) or os.path.exists(name + ".index")


def note_local_over_preset(name):
    """Warn (once per name) that the existing path ``name`` is used, not the preset of that
    name; call it where a preset name resolves to a local path (:func:`is_local_path`)."""
    import warnings

    warnings.warn(NSTWarning(f"{name!r} is the local {'folder' if os.path.isdir(name) else 'file'}"
                             f" {os.path.abspath(name)}, used instead of the preset of that name"
                             " (rename it to use the preset)"))
