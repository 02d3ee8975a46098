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

import hashlib
import json
import os
import zipfile

import numpy as np

from nst_tf.errors import CheckpointError, ConfigError
from nst_tf.io import atomic_write, check_output_dir

__all__ = ["RunCheckpoint", "fingerprint"]

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
        self.saved = self._read() if os.path.exists(self.path) else None
        if self.saved is not None:
            for level in range(self.saved["level"] + 1):
                self.losses[level] = list(self.saved["losses"][level])

    def _read(self):
        try:
            with np.load(self.path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("format") != FORMAT:
                    raise CheckpointError(f"{self.path} is not a checkpoint of this version")
                if meta["fingerprint"] != self.fingerprint:
                    raise CheckpointError(
                        f"the checkpoint {self.path} was written by a different run (other "
                        "images or options); delete it to start afresh, or choose another "
                        "checkpoint path")
                losses = [data[f"losses_{k}"].tolist() for k in range(meta["level"] + 1)]
        except CheckpointError:
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise CheckpointError(f"cannot read the checkpoint {self.path}: {e}; delete it to "
                                  "start afresh") from None
        return {"level": meta["level"], "steps": meta["steps"], "losses": losses}

    def _state(self):
        """The saved variables, read lazily (one array at a time: L-BFGS histories are big)."""
        return _Prefixed(np.load(self.path, allow_pickle=False), "state_")

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

    def saved_image(self):
        """The image the saved optimizer was at (``trial``), or None."""
        if self._saved() is None:
            return None
        with self.run._state() as state:
            return state["trial"]

    def restore(self, optimizer):
        """Load the saved state into ``optimizer``; ``(steps done, losses)`` or ``(0, [])``."""
        saved = self._saved()
        if saved is None:
            return 0, []
        try:
            with self.run._state() as state:
                optimizer.restore(state)
        except (ValueError, KeyError, OSError) as e:
            raise CheckpointError(f"the checkpoint {self.run.path} does not fit this run: "
                                  f"{e}") from None
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
