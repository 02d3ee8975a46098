"""Read and write Magenta ``image_stylization`` checkpoints for :func:`nst_tf.networks.pastiche_network`.

Loading a network by path or preset name is :func:`magenta_compat.pastiche.load_pastiche_network`
(it uses this module and :mod:`magenta_compat.pretrained`, which uses this module).

Magenta stores the transformer as 48 float32 variables: for each of the 16 convs
``transformer/<scope>/weights`` (HWIO kernel) and ``transformer/<scope>/InstanceNorm/{gamma,beta}``
(``[num_styles, channels]``). Both checkpoint formats are handled:

* V1: one file (the released ``multistyle-pastiche-generator-*.ckpt`` files);
* V2: a bundle ``<prefix>.index`` + ``<prefix>.data-00000-of-00001``.

Example:
    >>> from magenta_compat import load_pastiche_network, write_checkpoint    # doctest: +SKIP
    >>> net = load_pastiche_network("multistyle-pastiche-generator-varied.ckpt")  # doctest: +SKIP
    >>> write_checkpoint(net, "/tmp/varied_v2/model.ckpt", version="V2")       # doctest: +SKIP
"""

import glob
import os
import re
import shutil
import tempfile

import numpy as np

from nst_tf.errors import CheckpointError
from nst_tf.io import atomic_write

_DATA_FILE = re.compile(r"^(?P<prefix>.+)\.data-\d{5}-of-\d{5}$")


def _tf():
    import tensorflow as tf  # noqa: PLC0415  (TensorFlow is imported on first use only)

    return tf


# --------------------------------------------------------------------------------------- reading

def resolve_checkpoint_path(path):
    """The path to hand to TensorFlow's reader for ``path``.

    ``path`` may be a V1 checkpoint file, a V2 prefix, one of a V2 bundle's files (``.index`` or
    ``.data-*``), or a directory (its ``checkpoint`` state file's latest entry, else its only
    ``*.ckpt`` file or only V2 bundle).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return _latest_in_directory(path)
    if path.endswith(".index") and os.path.isfile(path):
        return path[: -len(".index")]
    match = _DATA_FILE.match(path)
    if match and os.path.isfile(path):
        return match.group("prefix")
    if os.path.isfile(path + ".index") or os.path.isfile(path):
        return path
    raise CheckpointError(f"checkpoint not found: {path} (no such file, V2 prefix "
                          f"'{path}.index', or directory)")


def _latest_in_directory(directory):
    latest = _tf().train.latest_checkpoint(directory)
    if latest is not None and (os.path.isfile(latest + ".index") or os.path.isfile(latest)):
        return latest
    candidates = sorted({p[: -len(".index")] for p in glob.glob(os.path.join(directory, "*.index"))}
                        | set(glob.glob(os.path.join(directory, "*.ckpt"))))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise CheckpointError(f"no checkpoint in directory {directory} (no 'checkpoint' state "
                              "file, no *.ckpt file, no *.index bundle)")
    raise CheckpointError(f"directory {directory} holds several checkpoints and no 'checkpoint' "
                          f"state file says which is the latest: {', '.join(candidates)}; "
                          "pass one of them")


def _open_reader(path):
    """(resolved path, tf CheckpointReader), with TensorFlow errors turned into CheckpointError."""
    tf = _tf()
    resolved = resolve_checkpoint_path(path)
    try:
        reader = tf.train.load_checkpoint(resolved)
    except Exception as exc:  # noqa: BLE001  TF raises DataLossError, NotFoundError, ...
        raise CheckpointError(f"cannot read checkpoint {resolved}: "
                              f"{_first_line(exc)}") from None
    return resolved, reader


def _first_line(exc):
    text = getattr(exc, "message", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def checkpoint_shapes(path):
    """``{name: shape tuple}`` of every tensor in the checkpoint at ``path`` (nothing is loaded)."""
    _, reader = _open_reader(path)
    return {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}


def read_checkpoint(path, names=None):
    """Read a V1 or V2 checkpoint into ``{name: np.ndarray}``.

    Args:
        path: a V1 file, a V2 prefix or bundle file, or a directory (see
            :func:`resolve_checkpoint_path`).
        names: optional iterable of names to read (others are skipped, which keeps a 500 MB
            training checkpoint with VGG cheap); names absent from the checkpoint are ignored.

    Raises:
        CheckpointError: missing, unreadable or corrupt checkpoint (the message names the path).
    """
    resolved, reader = _open_reader(path)
    available = reader.get_variable_to_shape_map()
    wanted = sorted(available) if names is None else sorted(set(names) & set(available))
    values = {}
    for name in wanted:
        try:
            values[name] = np.asarray(reader.get_tensor(name))
        except Exception as exc:  # noqa: BLE001  TF raises OpError, IndexError (truncated), ...
            raise CheckpointError(f"cannot read tensor {name!r} from checkpoint {resolved} "
                                  f"(truncated or corrupt?): {_first_line(exc)}") from None
    return values


# ------------------------------------------------------------------------- network <-> variables

def variable_slots(network):
    """``{magenta name: keras variable}`` of a pastiche network."""
    from nst_tf.networks import PASTICHE_LAYERS, keras_name, magenta_variable_names  # noqa: PLC0415

    slots = {}
    for spec in PASTICHE_LAYERS:
        names = magenta_variable_names(spec.scope)
        try:
            conv = network.get_layer(keras_name(spec.scope))
            norm = network.get_layer(keras_name(spec.scope) + "_norm")
        except ValueError:
            raise CheckpointError(f"model {network.name!r} is not a pastiche network: it has no "
                                  f"layer {keras_name(spec.scope)!r}") from None
        slots[names["kernel"]] = conv.kernel
        slots[names["gamma"]] = norm.gamma
        slots[names["beta"]] = norm.beta
    return slots


def network_variables(network):
    """``{magenta variable name: np.ndarray}`` for the 48 variables of a pastiche network."""
    return {name: np.asarray(variable.numpy()) for name, variable in variable_slots(network).items()}


def expected_shapes(num_styles, alpha=1.0):
    """``{magenta variable name: shape}`` of a pastiche network with ``num_styles`` and ``alpha``."""
    from nst_tf.networks import PASTICHE_LAYERS, magenta_variable_names, pastiche_widths  # noqa

    widths = pastiche_widths(alpha)
    shapes = {}
    channels_in = 3
    for spec in PASTICHE_LAYERS:
        names = magenta_variable_names(spec.scope)
        channels = widths[spec.scope]
        shapes[names["kernel"]] = (spec.kernel, spec.kernel, channels_in, channels)
        shapes[names["gamma"]] = (int(num_styles), channels)
        shapes[names["beta"]] = (int(num_styles), channels)
        channels_in = channels
    return shapes


def infer_pastiche_config(variables):
    """``(num_styles, alpha)`` from checkpoint shapes.

    ``variables`` maps names to arrays or to shapes. N is the first dimension of
    ``transformer/contract/conv1/InstanceNorm/gamma``; alpha is the width of
    ``transformer/contract/conv3/weights`` divided by 128 (this reproduces every ``int(alpha*w)``
    of the alpha used in training).
    """
    def shape_of(name):
        value = variables[name]
        return tuple(value) if isinstance(value, (tuple, list)) else tuple(np.shape(value))

    gamma = "transformer/contract/conv1/InstanceNorm/gamma"
    conv3 = "transformer/contract/conv3/weights"
    missing = [name for name in (gamma, conv3) if name not in variables]
    if missing:
        transformer = sorted(n for n in variables if n.startswith("transformer/"))
        sample = ", ".join(transformer[:5]) or "no 'transformer/' names at all"
        raise CheckpointError(f"not a Magenta image_stylization checkpoint: {' and '.join(missing)} "
                              f"missing ({len(variables)} tensors; transformer names: {sample})")
    gamma_shape, conv3_shape = shape_of(gamma), shape_of(conv3)
    if len(gamma_shape) != 2 or len(conv3_shape) != 4 or conv3_shape[-1] < 1:
        raise CheckpointError(f"unexpected shapes: {gamma} {list(gamma_shape)} (expected "
                              f"[num_styles, C]), {conv3} {list(conv3_shape)} (expected [3, 3, C_in, C])")
    return int(gamma_shape[0]), conv3_shape[-1] / 128.0


def _is_slot(name, names):
    """True for optimizer slots and similar (``<variable>/Adam``): a proper prefix is a variable."""
    parts = name.split("/")
    return any("/".join(parts[:i]) in names for i in range(1, len(parts)))


def shape_differences(expected, found):
    """Report lines for the mis-shaped (checkpoint shape vs network shape), missing and
    unexpected names of ``found`` against ``expected`` (both ``{name: shape}``); [] if they fit."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    misshaped = sorted(n for n in set(expected) & set(found) if expected[n] != found[n])
    lines = []
    if misshaped:
        lines.append(f"  {len(misshaped)} mis-shaped (name: checkpoint shape vs network shape):")
        lines += [f"    {n}: {list(found[n])} vs {list(expected[n])}" for n in misshaped]
    if missing:
        lines.append(f"  {len(missing)} missing from the checkpoint:")
        lines += [f"    {n} {list(expected[n])}" for n in missing]
    if unexpected:
        lines.append(f"  {len(unexpected)} unexpected in the checkpoint:")
        lines += [f"    {n} {list(found[n])}" for n in unexpected]
    return lines


def check_fit(shapes, num_styles, alpha, source="checkpoint"):
    """Raise CheckpointError unless ``shapes`` ({name: shape}) holds exactly the transformer
    variables of a ``(num_styles, alpha)`` network. Entries outside ``transformer/`` (e.g.
    ``global_step``, ``vgg_16/*``) and optimizer slots (``.../weights/Adam``) are ignored."""
    expected = expected_shapes(num_styles, alpha)
    found = {n: tuple(s) for n, s in shapes.items()
             if n.startswith("transformer/") and not _is_slot(n, shapes)}
    differences = shape_differences(expected, found)
    if not differences:
        return
    lines = [f"{source} does not fit a pastiche network with num_styles={num_styles}, "
             f"alpha={alpha:g} ({len(expected)} transformer variables expected)."]
    try:
        inferred = infer_pastiche_config(found)
    except CheckpointError:
        inferred = None
    if inferred is not None and inferred != (num_styles, alpha):
        lines.append(f"The checkpoint's shapes say num_styles={inferred[0]}, alpha={inferred[1]:g}; "
                     "leave num_styles/alpha unset to use the checkpoint's values.")
    lines += differences
    raise CheckpointError("\n".join(lines))


# ------------------------------------------------------------------------------------ writing

def write_checkpoint(network, path, version="V2", global_step=None, update_state=True):
    """Save a pastiche network under Magenta's variable names, so Magenta's code restores it.

    Args:
        network: a model built by :func:`~nst_tf.networks.pastiche_network`.
        path: checkpoint prefix (V2) or file (V1), e.g. ``"out/model.ckpt"``; an existing
            directory means ``<dir>/model.ckpt``. With ``global_step`` the path gets ``-<step>``
            appended, as ``tf.train.Saver`` does.
        version: ``"V2"`` (bundle ``.index`` + ``.data-00000-of-00001``) or ``"V1"`` (single file,
            the format of the released Magenta checkpoints).
        global_step: optional int saved as the int64 ``global_step`` tensor.
        update_state: also write the directory's ``checkpoint`` state file, so that
            ``tf.train.latest_checkpoint(dir)`` (and reading a directory) finds this checkpoint.

    Files are written in a temporary directory next to the target and renamed into place, so a
    crash never leaves a half-written checkpoint under the final name. Returns the path written.
    """
    return write_tensors(network_variables(network), path, version=version,
                         global_step=global_step, update_state=update_state)


def write_tensors(tensors, path, version="V2", global_step=None, update_state=True):
    """Write ``{name: array}`` as a TensorFlow checkpoint, atomically; returns the path written.

    Same ``path`` / ``version`` / ``global_step`` / ``update_state`` rules as
    :func:`write_checkpoint` (which writes a pastiche network through this function).
    """
    tf = _tf()
    version = str(version).upper()
    if version not in ("V1", "V2"):
        raise ValueError(f"version must be 'V1' or 'V2', got {version!r}")
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "model.ckpt")
    if global_step is not None:
        path = f"{path}-{int(global_step)}"
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CheckpointError(f"cannot write checkpoint {path}: directory {directory} does not exist")

    tensors = dict(tensors)
    if global_step is not None:
        tensors["global_step"] = np.int64(global_step)
    names = sorted(tensors)
    data = [tf.convert_to_tensor(tensors[n]) for n in names]

    staging = tempfile.mkdtemp(prefix=".ckpt-tmp-", dir=directory)
    try:
        staged = os.path.join(staging, os.path.basename(path))
        if version == "V1":
            tf.raw_ops.Save(filename=staged, tensor_names=names, data=data)
        else:
            tf.raw_ops.SaveV2(prefix=staged, tensor_names=names,
                              shape_and_slices=[""] * len(names), tensors=data)
        produced = sorted(os.listdir(staging), key=lambda f: f.endswith(".index"))  # index last
        # A stale checkpoint of the other format under the same name would confuse readers.
        stale = [path] if version == "V2" else [path + ".index"] + glob.glob(glob.escape(path) + ".data-*")
        for old in stale:
            _remove_if_file(old)
        for filename in produced:
            os.replace(os.path.join(staging, filename), os.path.join(directory, filename))
    except tf.errors.OpError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {_first_line(exc)}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if update_state:
        _write_state_file(directory, os.path.basename(path))
    return path


def _write_state_file(directory, name):
    """Point ``<directory>/checkpoint`` (what ``tf.train.latest_checkpoint`` reads) at ``name``.

    The entry is relative, so the folder can be moved; readers resolve it against the folder.
    """
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    text = f'model_checkpoint_path: "{escaped}"\nall_model_checkpoint_paths: "{escaped}"\n'
    with atomic_write(os.path.join(directory, "checkpoint"), mode="w") as handle:
        handle.write(text)


def _remove_if_file(path):
    if os.path.isfile(path):
        os.remove(path)
