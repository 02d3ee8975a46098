"""Load Magenta's pastiche (``image_stylization``) network from a checkpoint path or a preset name.

The layers below: :mod:`magenta_compat.checkpoint` reads and writes the files and maps the 48
variables to :func:`nst_tf.networks.pastiche_network`; :mod:`magenta_compat.pretrained` knows the
released checkpoints ("varied", "monet") and downloads them. This module joins the two:
:func:`locate_checkpoint` turns a path or a preset name into the checkpoint to read, and
:func:`load_pastiche_network` builds the network from it.

Example:
    >>> from magenta_compat.pastiche import load_pastiche_network
    >>> net = load_pastiche_network("varied")                        # doctest: +SKIP
    >>> net = load_pastiche_network("runs/cin/magenta/model.ckpt")  # doctest: +SKIP
"""

import os
import re

import numpy as np

from magenta_compat import pretrained
from magenta_compat.checkpoint import (_is_slot, check_fit, checkpoint_shapes,
                                       infer_pastiche_config, read_checkpoint,
                                       resolve_checkpoint_path, variable_slots)
from nst_tf.errors import CheckpointError
from nst_tf.io import is_local_path, note_local_over_preset


def _looks_like_preset(value):
    """A bare word such as "varied" that is not an existing file, prefix or directory."""
    return (isinstance(value, str) and not os.path.exists(value)
            and not os.path.exists(value + ".index")
            and re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", value) is not None)


def locate_checkpoint(path_or_name):
    """The checkpoint to read for a preset name (downloaded once and checked,
    :func:`magenta_compat.pretrained.resolve`) or a path (file, V2 prefix or bundle file,
    folder; :func:`magenta_compat.checkpoint.resolve_checkpoint_path`).

    Raises:
        CheckpointError: neither an existing checkpoint nor a preset (the message lists the
            presets).
        WeightsUnavailableError: a preset that is not cached and cannot be downloaded.
    """
    path = os.fspath(path_or_name)
    presets = ", ".join(sorted(pretrained.PRESETS))
    if pretrained.is_preset(path) and is_local_path(path):
        note_local_over_preset(path)     # an existing path wins over the preset
    elif pretrained.is_preset(path):
        path = os.fspath(pretrained.resolve(path))
    elif _looks_like_preset(path):
        raise CheckpointError(f"checkpoint not found: {path} is not a file, a V2 prefix, a "
                              f"directory, or a preset name ({presets})")
    try:
        return resolve_checkpoint_path(path)
    except CheckpointError as e:
        raise CheckpointError(f"{e}; the preset names are {presets}") from None


def load_pastiche_network(path_or_name, num_styles=None, alpha=None, style_input="weights"):
    """Build a :func:`~nst_tf.networks.pastiche_network` and load a Magenta checkpoint into it.

    Args:
        path_or_name: a checkpoint (V1 file, V2 prefix / bundle file, or directory) or a preset
            name (``"varied"``, ``"monet"``) resolved by :func:`magenta_compat.pretrained.resolve`.
        num_styles, alpha: inferred from the checkpoint's shapes when None; when given, they
            must match it.
        style_input: ``"weights"`` or ``"labels"`` (see ``pastiche_network``).

    Only the 48 ``transformer/`` variables are read; ``global_step``, ``vgg_16/*`` and optimizer
    slots are ignored. The network's ``checkpoint_path`` attribute is the file read.

    Raises:
        CheckpointError: unreadable checkpoint, or one that does not fit; the message lists the
            missing, unexpected and mis-shaped names with both shapes.
    """
    from nst_tf.networks import pastiche_network

    resolved = locate_checkpoint(path_or_name)
    shapes = checkpoint_shapes(resolved)
    transformer = {n: s for n, s in shapes.items()
                   if n.startswith("transformer/") and not _is_slot(n, shapes)}
    inferred_n, inferred_alpha = infer_pastiche_config(transformer)
    num_styles = inferred_n if num_styles is None else int(num_styles)
    alpha = inferred_alpha if alpha is None else float(alpha)
    check_fit(shapes, num_styles, alpha, source=f"checkpoint {resolved}")

    values = read_checkpoint(resolved, names=transformer)
    network = pastiche_network(num_styles, alpha=alpha, style_input=style_input)
    for name, variable in variable_slots(network).items():
        value = values[name]
        if value.dtype != np.float32:
            raise CheckpointError(f"checkpoint {resolved}: {name} has dtype {value.dtype}, "
                                  "expected float32")
        variable.assign(value)
    network.checkpoint_path = resolved
    return network
