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

The mobile model (``arbitrary_image_stylization_build_mobilenet_model``: ``_train_mobile`` and
``_distill_mobilenet`` write such checkpoints, ``_convert_tflite`` reads them) has 339 variables:
``MobilenetV2/<layer>/{weights or depthwise_weights, BatchNorm/{gamma, beta, moving_mean,
moving_variance}}`` (52 convs, 260 variables) and the bottleneck ``mobilenet_conv/Conv/{weights
[1,1,1280,100], biases}`` instead of the Inception trunk and ``Conv/``; the rest is the same
(at ``alpha=0.25``). :data:`TRUNKS` says where each trunk lives; the trunk is read from the names
(its published files are TF Lite: :mod:`magenta_compat.mobile`).

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

import contextlib
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

@dataclasses.dataclass(frozen=True)
class TrunkNames:
    """Where one style trunk's variables live in Magenta's checkpoints.

    Attributes:
        scope: the trunk's top scope (``"InceptionV3"``, ``"MobilenetV2"``).
        bottleneck: the scope of the 1x1 conv to the embedding (``"Conv"`` in
            ``build_model``, ``"mobilenet_conv/Conv"`` in ``build_mobilenet_model``).
        probe: a variable of the trunk whose last dimension over ``probe_depth`` is the depth
            multiplier.
        probe_depth: that width at depth multiplier 1.
    """

    scope: str
    bottleneck: str
    probe: str
    probe_depth: int


#: Magenta's names of each style trunk, by
#: :data:`~nst_tf.models.arbitrary.network.PREDICTORS` name.
TRUNKS = {
    "inception_v3": TrunkNames("InceptionV3", "Conv",
                               "InceptionV3/Mixed_6e/Branch_0/Conv2d_0a_1x1/weights", 192),
    "mobilenet_v2": TrunkNames("MobilenetV2", "mobilenet_conv/Conv",
                               "MobilenetV2/Conv_1/weights", 1280),
}

#: Top-level scopes of the model's variables; other names (``global_step``, ``vgg_16/*``,
#: optimizer slots) are ignored when loading.
SCOPES = tuple(sorted({f"{t.scope}/" for t in TRUNKS.values()} |
                      {f"{t.bottleneck.split('/')[0]}/" for t in TRUNKS.values()})) + (
    "style_params/", "transformer/")

_CONV3 = "transformer/contract/conv3/weights"


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
    """``{Magenta variable name: Keras variable}`` for every variable of ``network`` (359 with
    the Inception trunk, 339 with the MobileNetV2 one)."""
    from nst_tf.networks import (STYLE_NORM_SCOPES, arbitrary_config, keras_name,
                                 style_predictor_of, transformer_of)

    try:
        predictor, transformer = style_predictor_of(network), transformer_of(network)
        kind = arbitrary_config(network)["predictor"]
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    slots = _trunk_slots(predictor, kind)
    bottleneck, names = predictor.get_layer("bottleneck"), TRUNKS[kind]
    slots[f"{names.bottleneck}/weights"] = bottleneck.kernel
    slots[f"{names.bottleneck}/biases"] = bottleneck.bias
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


def _trunk_slots(predictor, kind):
    """Magenta's names of the style trunk's convs and batch norms (``kind``: a
    :data:`TRUNKS` name)."""
    from nst_tf.models.arbitrary.inception import inception_convs, inception_keras_name
    from nst_tf.models.arbitrary.mobilenet import mobilenet_convs, mobilenet_keras_name

    convs, keras_name = {"inception_v3": (inception_convs, inception_keras_name),
                         "mobilenet_v2": (mobilenet_convs, mobilenet_keras_name)}[kind]
    slots = {}
    for spec in convs():
        name = keras_name(spec.scope)
        prefix = f"{TRUNKS[kind].scope}/{spec.scope}"
        kernel = "depthwise_weights" if getattr(spec, "kind", "conv") == "depthwise" else \
            "weights"
        slots[f"{prefix}/{kernel}"] = predictor.get_layer(name).kernel
        _batch_norm_slots(slots, prefix, predictor.get_layer(f"{name}_bn"))
    return slots


def _batch_norm_slots(slots, prefix, layer):
    if layer.scale:
        slots[f"{prefix}/BatchNorm/gamma"] = layer.gamma
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


def trunk_of_checkpoint(shapes):
    """The :data:`TRUNKS` name whose bottleneck ``shapes`` holds, or None."""
    for name, trunk in TRUNKS.items():
        if f"{trunk.bottleneck}/biases" in shapes:
            return name
    return None


def is_arbitrary_checkpoint(shapes):
    """True when a checkpoint's ``{name: shape}`` holds one of Magenta's arbitrary-style models
    (a bottleneck and predicted style parameters), not a pastiche network."""
    return trunk_of_checkpoint(shapes) is not None and any(
        n.startswith("style_params/transformer/") for n in shapes)


def infer_arbitrary_config(shapes):
    """``{"embedding_size", "alpha", "depth_multiplier", "predictor"}`` read from checkpoint
    shapes (the arguments of :func:`~nst_tf.networks.arbitrary_network`)."""
    kind = trunk_of_checkpoint(shapes)
    names = TRUNKS.get(kind)
    needed = ([f"{names.bottleneck}/biases", _CONV3, names.probe] if names else
              [" or ".join(f"{t.bottleneck}/biases" for t in TRUNKS.values())])
    missing = [n for n in needed if n not in shapes]
    if missing:
        sample = ", ".join(sorted(shapes)[:5]) or "none"
        raise CheckpointError(f"not a Magenta arbitrary_image_stylization checkpoint: "
                              f"{', '.join(missing)} missing ({len(shapes)} tensors; first: "
                              f"{sample})")
    return {"embedding_size": int(shapes[f"{names.bottleneck}/biases"][0]),
            "alpha": shapes[_CONV3][-1] / 128.0,
            "depth_multiplier": shapes[names.probe][-1] / names.probe_depth,
            "predictor": kind}


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


# Limits a checkpoint tarball must keep before anything is extracted: the released model holds
# 3 files and unpacks to about 90 MB (a training checkpoint with VGG and optimizer slots to
# under 1 GB), compressed at most a few times.

#: Most members (files and folders) a checkpoint tarball may hold.
MAX_TARBALL_MEMBERS = 1000
#: Most bytes a checkpoint tarball may unpack to.
MAX_TARBALL_BYTES = 2 * 2 ** 30
#: Most unpacked bytes per byte of the tarball (a "zip bomb" of zeros reaches ~1000).
MAX_TARBALL_RATIO = 50


def check_tarball(archive, path):
    """Refuse a tarball before extracting anything: every member must be a regular file or a
    folder with a relative name that stays inside the target (no ``..``, no absolute path, no
    links, devices or pipes), and all of them together must unpack to at most
    :data:`MAX_TARBALL_BYTES` and :data:`MAX_TARBALL_RATIO` times the tarball's size. Members
    are read one header at a time, so a bomb is refused after decompressing only the
    allowance.

    Raises:
        CheckpointError: the first member or the total that breaks a rule, by name.
    """
    budget = min(MAX_TARBALL_BYTES, MAX_TARBALL_RATIO * os.path.getsize(path) + 2 ** 20)
    total = 0
    for count, member in enumerate(archive, 1):
        name = member.name
        parts = name.replace("\\", "/").split("/")
        if not name or os.path.isabs(name) or name.startswith(("/", "\\")) or ".." in parts \
                or ":" in parts[0]:
            raise CheckpointError(f"refusing checkpoint tarball {path}: member {name!r} is not "
                                  "a relative path inside the archive")
        if not (member.isreg() or member.isdir()):
            kind = ("a symbolic link" if member.issym() else "a hard link" if member.islnk()
                    else "a named pipe" if member.isfifo()
                    else "a device" if member.ischr() or member.isblk()
                    else "not a regular file")
            raise CheckpointError(f"refusing checkpoint tarball {path}: member {name!r} is "
                                  f"{kind}")
        total += member.size
        if total > budget or count > MAX_TARBALL_MEMBERS:
            raise CheckpointError(
                f"refusing checkpoint tarball {path}: it unpacks to more than "
                f"{budget / 1e6:.0f} MB or holds more than {MAX_TARBALL_MEMBERS} members "
                f"(the file is {os.path.getsize(path) / 1e6:.1f} MB; a checkpoint unpacks to "
                f"at most {MAX_TARBALL_RATIO} times its tarball)")


def extract_tarball(path, target=None):
    """Extract a checkpoint tarball once and return the checkpoint prefix inside it.

    ``target`` defaults to a folder in the Keras cache named after the tarball, its size and
    modification time (a changed tarball is extracted again). The members are checked first
    (:func:`check_tarball`: names, types, total size), and only regular files and folders are
    extracted (``tarfile``'s ``data`` filter too). The folder appears complete, holding one
    arbitrary-style checkpoint, or not at all: a refused tarball leaves nothing in the cache.

    Raises:
        CheckpointError: missing, truncated, corrupt or unsafe tarball, or one holding no
            arbitrary-style checkpoint.
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
    if os.path.isdir(target):
        return _prefix_in(target, source=path)
    try:
        with tarfile.open(path) as archive:
            check_tarball(archive, path)
            parent = os.path.dirname(os.path.abspath(target))
            made = _make_folders(parent)
            try:
                with atomic_directory(target) as tmp:
                    archive.extractall(tmp, filter="data")
                    prefix = _prefix_in(tmp, source=path)
                    try:
                        infer_arbitrary_config(model_shapes(checkpoint_shapes(prefix)))
                    except CheckpointError as e:
                        raise CheckpointError(f"{path}: {e}") from None
            except BaseException:
                for folder in reversed(made):   # the cache as it was: no empty folders left
                    with contextlib.suppress(OSError):
                        os.rmdir(folder)
                raise
    except CheckpointError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot extract checkpoint tarball {path}: "
                              f"{type(e).__name__}: {e}") from None
    return os.path.join(target, os.path.relpath(prefix, tmp))


def _make_folders(folder):
    """Create ``folder`` and its missing parents; returns those created, outermost first."""
    missing = []
    while folder and not os.path.isdir(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    if missing:
        os.makedirs(missing[0])
    return missing[::-1]


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
    network = arbitrary_network(**config, fast=fast)
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
    """Save an arbitrary-style network under Magenta's names (359, or 339 for the mobile
    model); returns the path written.

    Magenta's graph (``build_model`` + ``tf.train.Saver``) restores the result. See
    :func:`magenta_compat.checkpoint.write_tensors` for ``path``, ``version`` (``"V2"`` bundle,
    as released, or ``"V1"`` single file), ``global_step`` and ``update_state``.
    """
    return write_tensors(network_variables(network), path, version=version,
                         global_step=global_step, update_state=update_state)
