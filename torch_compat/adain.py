"""pytorch-AdaIN's released weights in :func:`nst_tf.networks.adain_network`, without PyTorch.

The release (naoto0804/pytorch-AdaIN, tag v0.0.0; converted from the authors' Torch models) is two
state dicts, read with the safe reader :func:`torch_compat.pth.read_state_dict`:

==================  =========================================================================
file                URL
==================  =========================================================================
vgg_normalised.pth  https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/vgg_normalised.pth
decoder.pth         https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/decoder.pth
==================  =========================================================================

Names: ``"<i>.weight"`` / ``"<i>.bias"`` of conv module ``i`` of pytorch-AdaIN's
``nn.Sequential`` (:data:`~nst_tf.models.adain.network.NORMALISED_VGG`,
:data:`~nst_tf.models.adain.network.DECODER`); kernels go from PyTorch's ``[out, in, kh, kw]`` to
Keras' ``[kh, kw, in, out]``. The VGG file holds the network to relu5_4; modules after 30
(relu4_1) are not used, as in pytorch-AdaIN's ``test.py`` (``vgg[:31]``). The width (reduced
fixtures included) is read from the files.

:func:`adain_files` returns the two cached files of the ``"adain"`` preset, downloading them once
with ``keras.utils.get_file`` into ``$KERAS_HOME/models/adain/``; offline it raises
:class:`~nst_tf.errors.WeightsUnavailableError` naming both URLs and where to put the files.

Example:
    >>> from torch_compat.adain import load_adain
    >>> net = load_adain("models/vgg_normalised.pth", "models/decoder.pth")    # doctest: +SKIP
"""

import functools
import os

import numpy as np

from nst_tf.errors import CheckpointError, WeightsUnavailableError
from nst_tf.io import keras_home

RELEASE_URL = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/"
#: The released files of the ``"adain"`` preset: role → file name.
ADAIN_FILES = {"vgg": "vgg_normalised.pth", "decoder": "decoder.pth"}
#: Sub-folder of the Keras cache folder holding them.
CACHE_SUBDIR = os.path.join("models", "adain")


def adain_files(download=True):
    """``(vgg_path, decoder_path)`` of the released files, downloaded once into the Keras cache.

    Raises:
        WeightsUnavailableError: a file is not cached and cannot be downloaded (the message
            names both URLs and the folder to put them in).
    """
    base = keras_home()
    folder = os.path.join(base, CACHE_SUBDIR)
    paths = []
    for name in ADAIN_FILES.values():
        target = os.path.join(folder, name)
        if not os.path.exists(target):
            reason = "download=False"
            if download:
                import keras

                try:
                    keras.utils.get_file(name, RELEASE_URL + name, cache_subdir=CACHE_SUBDIR,
                                         cache_dir=base)
                    reason = None
                except Exception as e:  # urllib / OSError / keras' wrapped errors
                    reason = f"{type(e).__name__}: {e}"
            if reason is not None:
                urls = " and ".join(RELEASE_URL + n for n in ADAIN_FILES.values())
                raise WeightsUnavailableError(
                    f"the 'adain' weights are not cached and {name} could not be downloaded "
                    f"({reason}). Download {urls} into {folder}{os.sep} , or pass the files: "
                    "nst_tf.load_adain(vgg='.../vgg_normalised.pth', decoder='.../decoder.pth')")
        paths.append(target)
    return tuple(paths)


def _kernel(state, key, source):
    """HWIO kernel and bias of conv ``key`` (``"29"``) from a state dict."""
    for suffix in ("weight", "bias"):
        if f"{key}.{suffix}" not in state:
            raise CheckpointError(f"{source} has no entry {key}.{suffix}; is it the right file? "
                                  f"Its first entries: {', '.join(list(state)[:4]) or 'none'}")
    weight, bias = state[f"{key}.weight"], state[f"{key}.bias"]
    if weight.ndim != 4 or bias.ndim != 1 or bias.shape[0] != weight.shape[0]:
        raise CheckpointError(f"{source}: {key}.weight {weight.shape} / {key}.bias {bias.shape} "
                              "are not a conv kernel [out, in, kh, kw] and its bias")
    return (np.ascontiguousarray(weight.transpose(2, 3, 1, 0), np.float32),
            np.asarray(bias, np.float32))


def _assign(model, sequence, depth, state, source):
    from nst_tf.models.adain.network import torch_conv_indices

    indices = torch_conv_indices(sequence, depth)
    for name, index in indices.items():
        kernel, bias = _kernel(state, str(index), source)
        layer = model.get_layer(name)
        expected = tuple(layer.kernel.shape)
        if kernel.shape != expected:
            o, i, kh, kw = state[f"{index}.weight"].shape
            raise CheckpointError(
                f"{source}: {index}.weight has shape [{o}, {i}, {kh}, {kw}] (OIHW), the network's "
                f"{model.name}/{name} needs [{expected[3]}, {expected[2]}, {expected[0]}, "
                f"{expected[1]}]; is it the right file (full-size or a reduced network)?")
        layer.set_weights([kernel, bias])
    return indices


def _channel_divisor(vgg_state, source):
    key = "2.weight"  # conv1_1
    if key not in vgg_state:
        raise CheckpointError(f"{source} has no entry {key}: not pytorch-AdaIN's vgg_normalised "
                              f"(its first entries: {', '.join(list(vgg_state)[:4]) or 'none'})")
    if vgg_state[key].ndim != 4:
        raise CheckpointError(f"{source}: {key} has shape {vgg_state[key].shape}, not a conv "
                              "kernel [out, in, kh, kw]")
    width = int(vgg_state[key].shape[0])
    if width < 1 or 64 % width:
        raise CheckpointError(f"{source}: conv1_1 has {width} filters; expected 64 (or 64/k)")
    return 64 // width


def load_adain_state(network, vgg_state=None, decoder_state=None, vgg_source="vgg",
                     decoder_source="decoder"):
    """Copy state dicts (``{name: OIHW array}``) into an :func:`~nst_tf.networks.adain_network`'s encoder and /
    or decoder; names, shapes and unexpected decoder entries are checked."""
    from nst_tf.models.adain.network import DECODER, ENCODER_DEPTH, NORMALISED_VGG

    if vgg_state is not None:
        _assign(network.get_layer("encoder"), NORMALISED_VGG, ENCODER_DEPTH, vgg_state,
                vgg_source)
        network.get_layer("encoder").get_layer("conv0").set_weights(
            list(_kernel(vgg_state, "0", vgg_source)))
    if decoder_state is not None:
        used = _assign(network.get_layer("decoder"), DECODER, None, decoder_state,
                       decoder_source)
        expected = {f"{i}.{s}" for i in used.values() for s in ("weight", "bias")}
        extra = sorted(set(decoder_state) - expected)
        if extra:
            raise CheckpointError(f"{decoder_source} has entries the AdaIN decoder does not: "
                                  f"{', '.join(extra[:5])}; is it a decoder state dict?")
    return network


@functools.lru_cache(maxsize=2)
def _load_cached(vgg, vgg_key, decoder, decoder_key, convention, fast):
    del vgg_key, decoder_key  # cache keys only: a rewritten file is reloaded
    from nst_tf.models.adain.network import adain_network
    from torch_compat.pth import read_state_dict

    vgg_state = read_state_dict(vgg)
    decoder_state = read_state_dict(decoder)
    divisor = _channel_divisor(vgg_state, vgg)
    network = adain_network("normalised", convention=convention, channel_divisor=divisor,
                            fast=fast)
    return load_adain_state(network, vgg_state, decoder_state, vgg, decoder)


def _file_key(path):
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size


def load_adain(vgg="vgg_normalised.pth", decoder="decoder.pth", convention="pytorch",
               fast=True):
    """An :func:`~nst_tf.networks.adain_network` with pytorch-AdaIN's weights, for
    :func:`nst_tf.stylize` (``model=``): it computes what pytorch-AdaIN's ``test.py`` computes.

    Args:
        vgg, decoder: paths of ``vgg_normalised.pth`` and ``decoder.pth`` (or your own decoder
            trained with pytorch-AdaIN's ``train.py``). When a default name does not exist as a
            local file, the released file is used (downloaded once, see :func:`adain_files`).
        convention: the AdaIN op's; pytorch-AdaIN's weights were trained with ``"pytorch"``.
        fast: sub-pixel upsampling convs in the decoder (same outputs up to float rounding).

    Raises:
        CheckpointError: missing, unsafe or non-matching files (names and shapes in the message).
        WeightsUnavailableError: the released files are needed but cannot be downloaded.

    Example:
        >>> import nst_tf
        >>> net = nst_tf.load_adain()                                    # doctest: +SKIP
        >>> out = nst_tf.stylize("photo.jpg", "la_muse.jpg", model=net)  # doctest: +SKIP
    """
    vgg, decoder = os.fspath(vgg), os.fspath(decoder)
    defaults = (vgg == ADAIN_FILES["vgg"] and not os.path.exists(vgg),
                decoder == ADAIN_FILES["decoder"] and not os.path.exists(decoder))
    if any(defaults):
        released = adain_files()
        vgg = released[0] if defaults[0] else vgg
        decoder = released[1] if defaults[1] else decoder
    for role, path in (("vgg", vgg), ("decoder", decoder)):
        if not os.path.isfile(path):
            raise CheckpointError(f"AdaIN {role} file not found: {path}")
    return _load_cached(os.path.realpath(vgg), _file_key(vgg), os.path.realpath(decoder),
                        _file_key(decoder), convention, bool(fast))
