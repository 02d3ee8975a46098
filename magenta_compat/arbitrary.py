"""Magenta's ``arbitrary_image_stylization`` checkpoint and
:func:`nst_tf.networks.arbitrary_network`, both ways.

The released model (Ghiasi et al. 2017) is the tarball
``arbitrary_style_transfer.tar.gz`` → ``arbitrary_style_transfer/model.ckpt.{index,data-*,meta}``:
359 float32 variables (11,005,826 values):

* ``InceptionV3/<block>/.../{weights, BatchNorm/beta, BatchNorm/moving_mean,
  BatchNorm/moving_variance}``: the style network's trunk (280 variables);
* ``Conv/{weights [1,1,768,100], biases [100]}``: the bottleneck (the 100-d style embedding);
* ``style_params/transformer/<site>/StyleNorm/Conv{,_1}/{weights, biases}``: the beta
  (``Conv``) and gamma (``Conv_1``) projections of the 13 style-norm sites;
* ``transformer/...``: the transformer's conv kernels and its contract batch norms.

:func:`load_arbitrary_network` takes the preset name ``"arbitrary"`` (downloaded once), a
checkpoint prefix, a folder, or the ``.tar.gz`` itself, and checks every name and shape first
(missing, unexpected and mis-shaped names are listed with both shapes).
:func:`write_arbitrary_checkpoint` writes a network back under the same names, so Magenta's
``arbitrary_image_stylization_with_weights`` (or ``export_hub``) restores it.

Example:
    >>> from magenta_compat.arbitrary import load_arbitrary_network   # doctest: +SKIP
    >>> net = load_arbitrary_network("arbitrary_style_transfer.tar.gz")  # doctest: +SKIP
    >>> net = load_arbitrary_network("arbitrary")  # the release, cached  # doctest: +SKIP
"""

import dataclasses
import glob
import hashlib
import os
import tarfile

import numpy as np

from magenta_compat.checkpoint import (_is_slot, checkpoint_shapes, read_checkpoint,
                                       resolve_checkpoint_path, shape_differences,
                                       write_tensors)
from nst_tf.errors import CheckpointError, WeightsUnavailableError
from nst_tf.io import atomic_directory, is_local_path, keras_home, note_local_over_preset

#: Top-level scopes of the model's variables; other names (``global_step``, ``vgg_16/*``,
#: optimizer slots) are ignored when loading.
SCOPES = ("InceptionV3/", "Conv/", "style_params/", "transformer/")

_CONV3 = "transformer/contract/conv3/weights"
_MIXED_6E = "InceptionV3/Mixed_6e/Branch_0/Conv2d_0a_1x1/weights"
_BOTTLENECK = "Conv/biases"


@dataclasses.dataclass(frozen=True)
class ArbitraryPreset:
    """A released arbitrary-style checkpoint, shipped as a tarball holding ``member`` (a prefix)."""

    name: str
    url: str
    member: str
    description: str = ""
    sha256: str = None   # not published by Magenta; shapes are checked instead

    @property
    def filename(self):
        return self.url.rsplit("/", 1)[-1]


PRESETS = {
    "arbitrary": ArbitraryPreset(
        "arbitrary",
        "https://storage.googleapis.com/download.magenta.tensorflow.org/models/"
        "arbitrary_style_transfer.tar.gz",
        member="arbitrary_style_transfer/model.ckpt",
        description="Ghiasi et al. 2017, InceptionV3 style network, trained on PBN + DTD"),
}


# ------------------------------------------------------------------------------ names and slots

def variable_slots(network):
    """``{Magenta variable name: Keras variable}`` for the 359 variables of ``network``."""
    from nst_tf.networks import (STYLE_NORM_SCOPES, inception_convs, inception_keras_name,
                                 keras_name, style_predictor_of, transformer_of)

    try:
        predictor, transformer = style_predictor_of(network), transformer_of(network)
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    slots = {}
    for spec in inception_convs():
        name = inception_keras_name(spec.scope)
        prefix = f"InceptionV3/{spec.scope}"
        slots[f"{prefix}/weights"] = predictor.get_layer(name).kernel
        _batch_norm_slots(slots, prefix, predictor.get_layer(f"{name}_bn"))
    bottleneck = predictor.get_layer("bottleneck")
    slots["Conv/weights"], slots["Conv/biases"] = bottleneck.kernel, bottleneck.bias
    for scope in ("contract/conv1", "contract/conv2", "contract/conv3"):
        slots[f"transformer/{scope}/weights"] = transformer.get_layer(keras_name(scope)).kernel
        _batch_norm_slots(slots, f"transformer/{scope}",
                          transformer.get_layer(keras_name(scope) + "_bn"))
    for scope in STYLE_NORM_SCOPES:
        slots[f"transformer/{scope}/weights"] = transformer.get_layer(keras_name(scope)).kernel
        norm = transformer.get_layer(keras_name(scope) + "_norm")
        site = f"style_params/transformer/{scope}/StyleNorm"
        slots[f"{site}/Conv/weights"], slots[f"{site}/Conv/biases"] = \
            norm.beta_kernel, norm.beta_bias
        slots[f"{site}/Conv_1/weights"], slots[f"{site}/Conv_1/biases"] = \
            norm.gamma_kernel, norm.gamma_bias
    return slots


def _batch_norm_slots(slots, prefix, layer):
    slots[f"{prefix}/BatchNorm/beta"] = layer.beta
    slots[f"{prefix}/BatchNorm/moving_mean"] = layer.moving_mean
    slots[f"{prefix}/BatchNorm/moving_variance"] = layer.moving_variance


def network_variables(network):
    """``{Magenta variable name: np.ndarray}`` of an arbitrary-style network."""
    return {name: np.asarray(v.numpy()) for name, v in variable_slots(network).items()}


def model_shapes(shapes):
    """The entries of ``{name: shape}`` that belong to the model (no slots, steps, VGG)."""
    return {n: tuple(s) for n, s in shapes.items()
            if n.startswith(SCOPES) and not _is_slot(n, shapes)}


def is_arbitrary_checkpoint(shapes):
    """True when a checkpoint's ``{name: shape}`` holds Magenta's arbitrary-style model (its
    bottleneck and predicted style parameters), not a pastiche network."""
    return _BOTTLENECK in shapes and any(n.startswith("style_params/transformer/")
                                         for n in shapes)


def infer_arbitrary_config(shapes):
    """``{"embedding_size", "alpha", "depth_multiplier"}`` read from checkpoint shapes."""
    missing = [n for n in (_BOTTLENECK, _CONV3, _MIXED_6E) if n not in shapes]
    if missing:
        sample = ", ".join(sorted(shapes)[:5]) or "none"
        raise CheckpointError(f"not a Magenta arbitrary_image_stylization checkpoint: "
                              f"{', '.join(missing)} missing ({len(shapes)} tensors; first: "
                              f"{sample})")
    return {"embedding_size": int(shapes[_BOTTLENECK][0]),
            "alpha": shapes[_CONV3][-1] / 128.0,
            "depth_multiplier": shapes[_MIXED_6E][-1] / 192.0}


def check_fit(shapes, network, source="checkpoint"):
    """Raise :class:`CheckpointError` unless ``shapes`` holds exactly ``network``'s variables.

    The message lists the mis-shaped (checkpoint shape vs network shape), missing and unexpected
    names; slots, ``global_step`` and names outside :data:`SCOPES` are ignored.
    """
    expected = {n: tuple(v.shape) for n, v in variable_slots(network).items()}
    found = model_shapes(shapes)
    differences = shape_differences(expected, found)
    if not differences:
        return
    lines = [f"{source} does not fit the arbitrary-style network {network.name!r} "
             f"({len(expected)} variables expected, {len(found)} model variables found)."]
    lines += differences
    raise CheckpointError("\n".join(lines))


# -------------------------------------------------------------------------------- tarballs

def is_tarball(path):
    """True for a ``.tar.gz`` / ``.tgz`` / ``.tar`` path."""
    return str(path).lower().endswith((".tar.gz", ".tgz", ".tar"))


def _cache_root():
    from magenta_compat.pretrained import CACHE_SUBDIR

    return os.path.join(keras_home(), CACHE_SUBDIR)


def extract_tarball(path, target=None):
    """Extract a checkpoint tarball once and return the checkpoint prefix inside it.

    ``target`` defaults to a folder in the Keras cache named after the tarball, its size and
    modification time (a changed tarball is extracted again). Only regular files and folders are
    extracted (``tarfile``'s ``data`` filter: no links out, no absolute paths); the folder
    appears complete or not at all.

    Raises:
        CheckpointError: missing, truncated or corrupt tarball, or one holding no checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint tarball not found: {path}")
    if target is None:
        stat = os.stat(path)
        key = f"{os.path.realpath(path)}:{stat.st_size}:{stat.st_mtime_ns}"
        stem = os.path.basename(path).split(".tar")[0].split(".tgz")[0]
        target = os.path.join(_cache_root(), "extracted",
                              f"{stem}-{hashlib.sha1(key.encode()).hexdigest()[:10]}")
    if not os.path.isdir(target):
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        try:
            with atomic_directory(target) as tmp, tarfile.open(path) as archive:
                archive.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            raise CheckpointError(f"cannot extract checkpoint tarball {path}: "
                                  f"{type(e).__name__}: {e}") from None
    return _prefix_in(target, source=path)


def _prefix_in(folder, source):
    prefixes = sorted(p[: -len(".index")] for p in
                      glob.glob(os.path.join(glob.escape(folder), "**", "*.index"),
                                recursive=True))
    if len(prefixes) == 1:
        return prefixes[0]
    if not prefixes:
        raise CheckpointError(f"{source} holds no TensorFlow checkpoint (no *.index file)")
    raise CheckpointError(f"{source} holds several checkpoints: {', '.join(prefixes)}; "
                          "extract it and pass one of them")


# -------------------------------------------------------------------------------- presets

def is_preset(name):
    return isinstance(name, str) and name in PRESETS


def resolve(name="arbitrary", download=True):
    """Local checkpoint prefix of preset ``name``, downloading the tarball once.

    The tarball is cached as ``$KERAS_HOME/models/magenta/arbitrary_style_transfer.tar.gz``
    (``~/.keras/...`` by default) and extracted beside it. An already extracted
    ``.../models/magenta/arbitrary_style_transfer/model.ckpt`` is used as is.

    Raises:
        WeightsUnavailableError: not cached and cannot be downloaded (the message names the URL
            and the file to put in place).
    """
    if not is_preset(name):
        raise CheckpointError(f"unknown arbitrary-style preset {name!r}; the presets are "
                              f"{', '.join(sorted(PRESETS))}")
    preset = PRESETS[name]
    root = _cache_root()
    ours = os.path.join(root, "extracted", preset.name)
    for candidate in (os.path.join(root, preset.member), os.path.join(ours, preset.member)):
        if os.path.isfile(candidate + ".index"):
            return candidate
    tarball = os.path.join(root, preset.filename)
    if not os.path.isfile(tarball):
        if not download:
            raise _unavailable(preset, tarball, "download=False")
        import keras

        try:
            keras.utils.get_file(preset.filename, preset.url, cache_subdir="",
                                 cache_dir=root, file_hash=preset.sha256)
        except Exception as e:  # urllib / OSError / keras' wrapped errors
            raise _unavailable(preset, tarball, f"{type(e).__name__}: {e}") from None
    try:
        return extract_tarball(tarball, target=ours)
    except CheckpointError as e:
        raise CheckpointError(f"{e}; delete {tarball} to download {preset.url} again") from None


def _unavailable(preset, tarball, reason):
    return WeightsUnavailableError(
        f"the {preset.name!r} checkpoint is not cached and could not be downloaded ({reason}). "
        f"Download {preset.url} and save it as {tarball} (or extract it there, so that "
        f"{os.path.join(os.path.dirname(tarball), preset.member)}.index exists), or pass the "
        "path of the checkpoint, its folder or the .tar.gz instead of the preset name.")


# -------------------------------------------------------------------------------- load / write

def checkpoint_prefix(path_or_name):
    """The readable checkpoint for a preset name, a ``.tar.gz``, a folder or a prefix."""
    path = os.fspath(path_or_name)
    if is_preset(path) and is_local_path(path):
        note_local_over_preset(path)     # an existing path wins over the preset
    elif is_preset(path):
        return resolve(path)
    if is_tarball(path) and os.path.isfile(path):
        return extract_tarball(path)
    return resolve_checkpoint_path(path)


def load_arbitrary_network(path_or_name="arbitrary", fast=False):
    """Build an :func:`~nst_tf.networks.arbitrary_network` and load a Magenta checkpoint into it.

    Args:
        path_or_name: ``"arbitrary"`` (the released model, downloaded once), a checkpoint prefix
            (``.../model.ckpt``), one of its files, a folder, or the ``.tar.gz`` release itself.
        fast: build the transformer in its fast form (see
            :func:`~nst_tf.networks.arbitrary_transformer`).

    The embedding size, the transformer's width multiplier and the trunk's depth multiplier are
    read from the shapes. ``global_step``, ``vgg_16/*`` and optimizer slots are ignored.

    Raises:
        CheckpointError: unreadable, or names / shapes that do not fit (all listed, with both
            shapes).
    """
    from nst_tf.networks import arbitrary_network

    resolved = checkpoint_prefix(path_or_name)
    shapes = checkpoint_shapes(resolved)
    model = model_shapes(shapes)
    config = infer_arbitrary_config(model)
    network = arbitrary_network(config["embedding_size"], alpha=config["alpha"],
                                depth_multiplier=config["depth_multiplier"], fast=fast)
    check_fit(shapes, network, source=f"checkpoint {resolved}")
    values = read_checkpoint(resolved, names=model)
    for name, variable in variable_slots(network).items():
        if values[name].dtype != np.float32:
            raise CheckpointError(f"checkpoint {resolved}: {name} has dtype "
                                  f"{values[name].dtype}, expected float32")
        variable.assign(values[name])
    network.checkpoint_path = resolved
    return network


def write_arbitrary_checkpoint(network, path, version="V2", global_step=None,
                               update_state=True):
    """Save an arbitrary-style network under Magenta's 359 names; returns the path written.

    Magenta's graph (``build_model`` + ``tf.train.Saver``) restores the result. See
    :func:`magenta_compat.checkpoint.write_tensors` for ``path``, ``version`` (``"V2"`` bundle,
    as released, or ``"V1"`` single file), ``global_step`` and ``update_state``.
    """
    return write_tensors(network_variables(network), path, version=version,
                         global_step=global_step, update_state=update_state)
