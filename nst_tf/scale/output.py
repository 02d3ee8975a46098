"""The output folder of a dataset run: claimed with the run's settings, and what counts as done.

* :func:`claim_output` — on the machine that builds the pipeline, before any worker starts: the
  output folder is created (one :class:`~nst_tf.errors.ConfigError` line when it cannot be: a
  file in the way, no permission), ``manifest.jsonl`` and ``run.json`` must be files where they
  exist, and ``run.json`` records the run's :func:`settings`. A folder whose ``run.json`` holds
  other settings is refused with each difference named: images made with another model, seed,
  strength, set of style images, size or format are never counted as this run's (nor
  overwritten). A folder without ``run.json`` (new, or written by nst-tf 0.x before it kept
  one) is claimed as it is.
* :func:`finished` — an existing output counts as done only when it is a regular file that
  decodes as an image; a 0-byte, truncated or foreign file at an output's name is made again.
* :func:`check_regular_file` — named pipes, devices and sockets are refused before they are
  opened (reading a named pipe waits for a writer forever).

Example:
    >>> describe_differences({"seed": 0, "format": "png"}, {"seed": 3, "format": "png"})
    'seed 0, now 3'
"""

import hashlib
import json
import os
import stat

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from nst_tf.errors import ConfigError, ImageError
from nst_tf.io import remove_stale_temporaries_below, temporary_name
from nst_tf.scale import dataset
from nst_tf.scale.dataset import MANIFEST, join

#: The run's settings, in the output folder.
RECORD = "run.json"
_PROGRAM = "nst-stylize-dataset"


# --- Files ----------------------------------------------------------------------------------------

def read(path):
    """The bytes of a local or remote file."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def write_atomically(path, data):
    """Write ``data`` to a temporary name beside ``path``, then rename it to ``path``."""
    temporary = temporary_name(path, sep="/")
    try:
        with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.write(data)
        FileSystems.rename([temporary], [path])
    except BaseException:
        try:
            FileSystems.delete([temporary])
        except Exception:  # noqa: BLE001  it may not exist
            pass
        raise


def _kind(mode):
    for test, kind in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return kind
    return "not a regular file"


def check_regular_file(path, name):
    """ImageError when the local ``path`` (``name`` in messages) exists but is not a regular
    file (after links); remote objects always pass."""
    if "://" in path:
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # gone: reading it says so
    if not stat.S_ISREG(mode):
        raise ImageError(f"{name} is {_kind(mode)}, not a regular file")


def finished(path, max_pixels=None):
    """True when the output at ``path`` counts as done: a regular file that decodes."""
    from nst_tf.images import DEFAULT_MAX_PIXELS, decode_image

    try:
        check_regular_file(path, path)
        decode_image(read(path), path, max_pixels or DEFAULT_MAX_PIXELS)
    except Exception:  # noqa: BLE001  empty, truncated, not an image, gone: not done
        return False
    return True


# --- The run's settings ---------------------------------------------------------------------------

def _digest(lines):
    return hashlib.sha256("".join(f"{line}\n" for line in sorted(lines)).encode()).hexdigest()


def _file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_fingerprint(model):
    """SHA-256 of a local model file, or of its folder's files (names and contents); of the
    names and sizes of a remote model's files; None for a preset name."""
    if "://" in model:
        base = model.rstrip("/")
        found = FileSystems.match([dataset.escape(base), dataset.escape(base) + "/**"])
        return _digest(f"{m.path[len(base):]}\t{m.size_in_bytes}"
                       for result in found for m in result.metadata_list)
    if os.path.isfile(model):
        return _file_digest(model)
    if os.path.isdir(model):
        lines = []
        for folder, folders, names in os.walk(model):
            folders[:] = [f for f in folders if not f.startswith(".")]
            for name in names:
                if not name.startswith("."):
                    path = os.path.join(folder, name)
                    lines.append(f"{os.path.relpath(path, model)}\t{_file_digest(path)}")
        return _digest(lines)
    return None


def style_fingerprint(plan):
    """SHA-256 of the relative names and sizes of the files the style patterns match (hidden
    ones left out): a style image added, removed, renamed or replaced changes it."""
    lines = set()
    for result in FileSystems.match(plan.style_patterns):
        for m in result.metadata_list:
            rel = dataset.relative_path(plan.style_root, m.path)
            if not dataset.is_hidden(rel):
                lines.add(f"{rel}\t{m.size_in_bytes}")
    return _digest(lines)


def settings(plan):
    """The settings that decide what a run writes, as JSON values: ``run.json``'s content.

    Left out: what only changes how fast it goes (batch size, threads, runner) and the pixel
    cap (raising it lets a rerun make the images it had refused).
    """
    styles = plan.style_pattern if plan.style_input == "image" else \
        plan.mixture if plan.mixture is not None else list(plan.style_pool) or None
    values = {
        "content": plan.content_pattern,
        "model": plan.model,
        "model_files": model_fingerprint(plan.model),
        "family": plan.family,
        "styles": styles,
        "style_files": style_fingerprint(plan) if plan.style_input == "image" else None,
        "seed": plan.seed,
        "strength": plan.strength,
        "content_size": plan.content_size,
        "crop_size": plan.crop_size,
        "style_size": plan.style_size,
        "min_style_size": plan.min_style_size,
        "prepare_options": plan.prepare_options,
        "stylize_options": plan.stylize_options,
        "format": plan.format,
        "quality": plan.quality,
    }
    return json.loads(json.dumps(values, sort_keys=True, default=repr))   # JSON's own types


def _short(value):
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else "…" + text[-37:]


def describe_differences(old, new):
    """``"seed 0, now 3; model_files changed"``: what differs between two :func:`settings`."""
    parts = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            if key.endswith("_files"):
                parts.append(f"{key} changed")
            else:
                parts.append(f"{key} {_short(old.get(key))}, now {_short(new.get(key))}")
    return "; ".join(parts)


def _check_is_file(path):
    if "://" not in path and os.path.lexists(path) and not os.path.isfile(path):
        mode = os.stat(path).st_mode if os.path.exists(path) else 0
        raise ConfigError(f"{path} is {_kind(mode) if mode else 'a broken link'}, not a file: "
                          "move it out of the output folder")


def check_output_folder(output):
    """ConfigError (one line) when ``output`` cannot be an output folder: a file or something
    else is in its place or in its path, ``manifest.jsonl`` or ``run.json`` there is not a
    file, or the folder cannot be written. Checks only (local folders): nothing is created."""
    if "://" in output:
        return
    if os.path.lexists(output) and not os.path.isdir(output):
        kind = _kind(os.stat(output).st_mode) if os.path.exists(output) else "a broken link"
        raise ConfigError(f"cannot use {output} as the output folder: it is "
                          f"{'a file' if kind == 'not a regular file' else kind}")
    existing = output
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"cannot create the output folder {output}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write in {existing}: permission denied")
    for name in (MANIFEST, RECORD):
        _check_is_file(join(output, name))


def _create_folder(output):
    if "://" in output:
        return
    if os.path.exists(output) and not os.path.isdir(output):
        raise ConfigError(f"cannot use {output} as the output folder: it is a file")
    try:
        os.makedirs(output, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the output folder {output}: "
                          f"{e.strerror or dataset.one_line(e)}"
                          f"{f' ({e.filename})' if e.filename != output else ''}") from None


def claim_output(plan):
    """Create ``plan.output`` and record the run's settings there, or refuse the folder
    (:class:`~nst_tf.errors.ConfigError`, one line) when it cannot be used or holds a run with
    other settings. The temporary files of an earlier run killed mid-write are deleted (local
    folders). Returns the settings."""
    check_output_folder(plan.output)
    _create_folder(plan.output)
    if "://" not in plan.output:   # left by a run killed mid-write (kill -9, power cut)
        remove_stale_temporaries_below(plan.output)
    record = join(plan.output, RECORD)
    new = settings(plan)
    if FileSystems.exists(record):
        try:
            old = json.loads(read(record).decode("utf-8"))["settings"]
            if not isinstance(old, dict):
                raise TypeError("settings is not an object")
        except Exception as e:  # noqa: BLE001  not ours, or damaged
            raise ConfigError(f"{record} is not a run record of {_PROGRAM} "
                              f"({dataset.one_line(e)}): use another output folder") from None
        differences = describe_differences(old, new)
        if differences:
            raise ConfigError(f"{plan.output} holds images made with other settings "
                              f"({differences}): use another output folder, or delete this one "
                              "to start again")
        return new
    text = json.dumps({"program": _PROGRAM, "settings": new}, indent=1, sort_keys=True) + "\n"
    try:
        write_atomically(record, text.encode("utf-8"))
    except Exception as e:  # noqa: BLE001  read-only folder, full disk, no permission
        raise ConfigError(f"cannot write in the output folder {plan.output}: "
                          f"{dataset.one_line(e)}") from None
    return new
