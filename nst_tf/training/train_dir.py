"""A train_dir is a model: the network of its latest checkpoint, rebuilt from the run's record.

``nst-train`` writes ``train_config.json`` (:data:`CONFIG_FILE`: the mode and what fixes the
architecture, :meth:`Recipe.config <nst_tf.training.Recipe.config>`) and ``ckpt-<step>``
checkpoints into its ``--train_dir``. :func:`load_train_dir` asks the mode's recipe for the
untrained network of that record (:meth:`Recipe.network_from_config
<nst_tf.training.Recipe.network_from_config>`), restores the latest checkpoint into it and
returns it in the form inference takes (:meth:`Recipe.inference_network
<nst_tf.training.Recipe.inference_network>`: a multi-style network with mixing weights). Every
mode's train_dir is so a model for :func:`nst_tf.stylize`, ``nst-transform``, ``nst-export``,
``nst-video`` and ``nst-train --mode=finetune --checkpoint`` — of a finished run or an
interrupted one.

Example:
    >>> from nst_tf.training.train_dir import is_train_dir, load_train_dir
    >>> is_train_dir("runs/cin")                                                # doctest: +SKIP
    True
    >>> load_train_dir("runs/cin").name                                         # doctest: +SKIP
    'pastiche'
"""

import functools
import json
import os

from nst_tf.errors import CheckpointError

#: The run's setup in a train_dir (:meth:`Recipe.config <nst_tf.training.Recipe.config>` plus
#: the style images); a resumed run must have the same.
CONFIG_FILE = "train_config.json"

_CACHE_SIZE = 2


def read_run_config(train_dir):
    """The recorded setup of the run in ``train_dir`` (a dict), or None when there is none."""
    path = os.path.join(os.fspath(train_dir), CONFIG_FILE)
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def is_train_dir(path):
    """True for a folder holding an ``nst-train`` run (its config names a mode).

    Example:
        >>> is_train_dir("no/such/folder")
        False
    """
    path = os.fspath(path)
    return os.path.isdir(path) and "mode" in (read_run_config(path) or {})


def load_train_dir(train_dir, for_inference=True):
    """The network of the latest checkpoint in ``train_dir``.

    Args:
        train_dir: the ``--train_dir`` of an ``nst-train`` run (finished or interrupted).
        for_inference: True: the form :func:`nst_tf.stylize` and the exports take (cached
            until a newer checkpoint appears); False: the form the mode trains (a multi-style
            network with a labels input, what fine-tuning extends), built anew.

    Raises:
        CheckpointError: no run record, an unknown mode, no checkpoint yet, or a checkpoint that
            does not fit the recorded architecture.
    """
    import tensorflow as tf

    train_dir = os.fspath(train_dir)
    latest = tf.train.latest_checkpoint(train_dir)
    if for_inference:
        return _load_cached(os.path.realpath(train_dir), latest)
    return _load(train_dir, for_inference=False)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _load_cached(train_dir, latest):
    del latest  # part of the cache key only: a newer checkpoint is loaded again
    return _load(train_dir, for_inference=True)


def _load(train_dir, for_inference):
    from nst_tf.errors import ConfigError
    from nst_tf.training.callbacks import restore_network
    from nst_tf.training.recipe import recipe_class

    config = read_run_config(train_dir)
    if config is None or "mode" not in config:
        raise CheckpointError(f"{train_dir} is not an nst-train train_dir (no {CONFIG_FILE} "
                              "naming its mode)")
    try:
        recipe = recipe_class(config["mode"])
    except ConfigError as e:
        raise CheckpointError(f"{train_dir}/{CONFIG_FILE}: {e}") from None
    network = recipe.network_from_config(config)
    restore_network(train_dir, network)
    return recipe.inference_network(network) if for_inference else network
