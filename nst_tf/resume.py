"""Checkpoints of a long image optimization, so that a killed run resumes where it stopped.

A :class:`RunCheckpoint` is one ``.npz`` file (written atomically, read without pickle) holding
the multi-scale level, the steps done in it, the losses so far and every optimizer variable
(the image, and for L-BFGS its whole curvature history). :func:`nst_tf.optimize.optimize_image`
saves it every ``every`` steps, at the end of each level and on Ctrl-C; started again with the
same checkpoint path, images and options, a run restores the optimizer and continues with the
same steps an uninterrupted run would take (identical results on the same machine).

A checkpoint carries a fingerprint of the images and options that produced it
(:func:`fingerprint`); one written by a different run is refused with a
:class:`~nst_tf.errors.CheckpointError` instead of being silently continued. The number of
steps is not part of it: raise ``steps`` and rerun to continue a finished run.

Example:
    >>> import numpy as np, os, tempfile, tensorflow as tf
    >>> from nst_tf.lbfgs import Adam
    >>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt.npz")
    >>> opt = Adam(tf.zeros([2]))
    >>> _ = opt.apply(1.0, tf.constant([1.0, -1.0]))
    >>> RunCheckpoint(path, fingerprint="abc").level(0).save(opt, 1, [1.0])
    >>> again = Adam(tf.zeros([2]))
    >>> RunCheckpoint(path, fingerprint="abc").level(0).restore(again)
    (1, [1.0])
    >>> bool(np.all(again.trial.numpy() == opt.trial.numpy()))
    True
"""

import contextlib
import hashlib
import json
import os
import zipfile

import numpy as np

from nst_tf.errors import CheckpointError, ConfigError
from nst_tf.io import atomic_write, check_output_dir, remove_stale_temporaries

__all__ = ["RunCheckpoint", "fingerprint", "read_checkpoint"]

FORMAT = 1


def fingerprint(arrays, options):
    """A hex digest of ``arrays`` (their bytes, shapes, dtypes) and ``options`` (JSON-able)."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(repr((array.shape, str(array.dtype))).encode())
        digest.update(memoryview(array).cast("B"))
    digest.update(json.dumps(options, sort_keys=True, default=repr).encode())
    return digest.hexdigest()


class _Damaged(Exception):
    """One problem of a checkpoint file (turned into a one-line CheckpointError)."""


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _array_header(archive, info):
    """``(shape, dtype)`` of one ``.npy`` member, from its header only (no data read)."""
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise _Damaged(f"{info.filename} is a .npy of version {version}")
    kinds = "U" if info.filename == "meta.npy" else "biuf"
    if dtype.hasobject or dtype.kind not in kinds:
        raise _Damaged(f"{info.filename} holds {dtype} values, not numbers")
    return tuple(shape), dtype


def _small_array(archive, name):
    with archive.open(name + ".npy") as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def _check_meta(archive, headers):
    shape, dtype = headers.get("meta", (None, None))
    if shape != () or dtype.kind != "U":
        raise _Damaged("meta is not one string")
    try:
        meta = json.loads(str(_small_array(archive, "meta")))
    except json.JSONDecodeError:
        raise _Damaged("meta is not JSON") from None
    if not isinstance(meta, dict):
        raise _Damaged(f"meta is a {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT:
        raise _Damaged(f"format {meta.get('format')!r} is not this version's ({FORMAT})")
    if not isinstance(meta.get("fingerprint"), str):
        raise _Damaged("the fingerprint is not a string")
    for key in ("level", "steps"):
        if not _is_count(meta.get(key)):
            raise _Damaged(f"{key} is {meta.get(key)!r}, not a count")
    if meta["level"] >= len(headers):
        raise _Damaged(f"level {meta['level']} has no losses")
    return meta


def read_checkpoint(path):
    """Check a checkpoint file entry by entry and return its summary: ``{"fingerprint",
    "level", "steps", "losses": [one list per level], "state": {name: (shape, dtype)}}``.

    Every entry is a ``.npy`` array read with ``allow_pickle=False``, and only after its header
    says it holds numbers (``meta``: one JSON string): ``meta`` holds the format, the
    fingerprint and the level and steps as counts; ``losses_0`` … ``losses_<level>`` are float
    vectors, the last one ``steps`` long; the ``state_*`` variables hold numbers, ``trial``
    (the image) among them as ``[1, H, W, C]``. Their shapes and values are checked against the
    optimizer when a level restores them.

    Raises:
        CheckpointError: one line naming the first problem (not an ``.npz`` file, a truncated
            or damaged one, an entry of the wrong kind, type or shape).
    """
    try:
        if not zipfile.is_zipfile(path):
            raise _Damaged("it is not an .npz file")
        with zipfile.ZipFile(path) as archive:
            headers = {}
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise _Damaged(f"it holds {info.filename!r}, which is not an array")
                headers[info.filename[:-len(".npy")]] = _array_header(archive, info)
            meta = _check_meta(archive, headers)
            levels = [f"losses_{k}" for k in range(meta["level"] + 1)]
            state = {name[len("state_"):]: header for name, header in headers.items()
                     if name.startswith("state_")}
            unknown = sorted(set(headers) - {"meta", *levels, *(f"state_{n}" for n in state)})
            if unknown:
                raise _Damaged(f"unexpected entries {', '.join(unknown)}")
            losses = []
            for name in levels:
                shape, dtype = headers.get(name, (None, None))
                if shape is None or len(shape) != 1 or dtype.kind != "f":
                    raise _Damaged(f"{name} is {'missing' if shape is None else 'not a vector'}")
                losses.append(_small_array(archive, name).tolist())
            if len(losses[-1]) != meta["steps"]:
                raise _Damaged(f"{meta['steps']} steps but {len(losses[-1])} losses")
            trial = state.get("trial", (None, None))[0]
            if trial is None or len(trial) != 4 or trial[0] != 1:
                raise _Damaged(f"the image (state_trial) has shape {trial}, not [1, H, W, C]")
    except _Damaged as e:
        raise CheckpointError(f"cannot read the checkpoint {path}: {e}; delete it to start "
                              "afresh") from None
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile,
            zipfile.LargeZipFile) as e:
        raise CheckpointError(f"cannot read the checkpoint {path}: it is damaged "
                              f"({type(e).__name__}: {e}); delete it to start afresh") from None
    return {"fingerprint": meta["fingerprint"], "level": meta["level"], "steps": meta["steps"],
            "losses": losses, "state": state}


def _write_array(archive, name, array):
    with archive.open(name + ".npy", "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)


class RunCheckpoint:
    """The checkpoint file of one run.

    Args:
        path: the ``.npz`` file; its folder must exist. An existing file is loaded (and checked).
        every: save every this many steps (None: only at the end of each level and on Ctrl-C).
        fingerprint: what identifies the run (see :func:`fingerprint`).

    Raises:
        CheckpointError: an unreadable file, or one written by a different run.
        ConfigError: ``every`` is not a positive integer.
        nst_tf.io.OutputPathError: the folder does not exist.
    """

    def __init__(self, path, every=None, fingerprint=""):
        if every is not None and (isinstance(every, bool) or int(every) != every or every < 1):
            raise ConfigError(f"checkpoint_every must be a positive number of steps, got {every!r}")
        self.path = os.fspath(path)
        check_output_dir(self.path)
        self.every = None if every is None else int(every)
        self.fingerprint = str(fingerprint)
        self.losses = {}  # level -> losses of finished levels (and the current one)
        # A run killed while writing its checkpoint leaves the temporary file (as large as the
        # checkpoint); this run owns the path, so the leftovers of earlier ones go.
        self.removed_temporaries = remove_stale_temporaries(self.path)
        self.saved = self._read() if os.path.exists(self.path) else None
        if self.saved is not None:
            for level in range(self.saved["level"] + 1):
                self.losses[level] = list(self.saved["losses"][level])

    def _read(self):
        """The saved level, steps and losses, after checking every entry of the file (its
        arrays' headers: no object arrays, nothing unpickled; see :func:`read_checkpoint`)."""
        saved = read_checkpoint(self.path)
        if saved["fingerprint"] != self.fingerprint:
            raise CheckpointError(
                f"the checkpoint {self.path} was written by a different run (other "
                "images or options); delete it to start afresh, or choose another "
                "checkpoint path")
        return saved

    @contextlib.contextmanager
    def _reading(self):
        """The saved variables, read lazily (one array at a time: L-BFGS histories are big); a
        file damaged since it was checked is a CheckpointError."""
        try:
            with _Prefixed(np.load(self.path, allow_pickle=False), "state_") as state:
                yield state
        except CheckpointError:
            raise
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as e:
            raise CheckpointError(f"cannot read the checkpoint {self.path}: it is damaged "
                                  f"({type(e).__name__}: {e}); delete it to start "
                                  "afresh") from None

    @property
    def start_level(self):
        """The level a resumed run starts at (0 for a new run)."""
        return 0 if self.saved is None else self.saved["level"]

    def level(self, level):
        """The view of one level that :func:`nst_tf.optimize.optimize_image` uses."""
        return _LevelCheckpoint(self, level)

    def write(self, level, steps, variables, losses):
        """Save level ``level`` after ``steps`` steps: ``variables`` (name → tf.Variable or
        array, written one at a time) and this level's ``losses``."""
        self.losses[level] = list(losses)
        meta = {"format": FORMAT, "fingerprint": self.fingerprint, "level": int(level),
                "steps": int(steps)}
        with atomic_write(self.path, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                _write_array(archive, "meta", np.array(json.dumps(meta)))
                for k in range(level + 1):
                    _write_array(archive, f"losses_{k}",
                                 np.asarray(self.losses.get(k, []), np.float64))
                for name, variable in variables.items():
                    value = variable.numpy() if hasattr(variable, "numpy") else variable
                    _write_array(archive, f"state_{name}", value)
                    del value

    def remove(self):
        """Delete the file (after the result is safely written)."""
        if os.path.exists(self.path):
            os.remove(self.path)


class _LevelCheckpoint:
    """``every`` / ``restore(optimizer)`` / ``save(optimizer, steps, losses)`` for one level."""

    def __init__(self, run, level):
        self.run, self.index = run, level
        self.every = run.every

    def _saved(self):
        saved = self.run.saved
        return saved if saved is not None and saved["level"] == self.index else None

    def saved_image(self, size=None):
        """The image the saved optimizer was at (``trial``, ``[1, H, W, C]``), or None.

        Raises:
            CheckpointError: ``size`` (``(H, W)`` of this level) differs from the saved image's.
        """
        if self._saved() is None:
            return None
        shape = self.run.saved["state"]["trial"][0]
        if size is not None and tuple(shape[1:3]) != tuple(size):
            raise CheckpointError(f"the checkpoint {self.run.path} does not fit this run: its "
                                  f"image is {shape[1]}x{shape[2]}, this scale's "
                                  f"{size[0]}x{size[1]}; delete it to start afresh")
        with self.run._reading() as state:
            return state["trial"]

    def restore(self, optimizer):
        """Load the saved state into ``optimizer``; ``(steps done, losses)`` or ``(0, [])``."""
        saved = self._saved()
        if saved is None:
            return 0, []
        with self.run._reading() as state:
            try:
                optimizer.restore(state)
            except ValueError as e:   # names, shapes, dtypes, counters out of range
                raise CheckpointError(f"the checkpoint {self.run.path} does not fit this run: "
                                      f"{e}; delete it to start afresh") from None
        return saved["steps"], list(saved["losses"][self.index])

    def save(self, optimizer, steps, losses):
        self.run.write(self.index, steps, optimizer.variables, losses)

    def finished_losses(self):
        """The losses of this (earlier, finished) level from the checkpoint."""
        return list(self.run.losses.get(self.index, []))


class _Prefixed:
    """``mapping[name]`` → ``npz[prefix + name]`` (a context manager that closes the file)."""

    def __init__(self, npz, prefix):
        self.npz, self.prefix = npz, prefix

    def __contains__(self, name):
        return self.prefix + name in self.npz.files

    def __getitem__(self, name):
        return self.npz[self.prefix + name]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.npz.close()
