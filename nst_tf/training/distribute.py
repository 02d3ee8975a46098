"""Where training runs: the ``tf.distribute`` strategy and the precision of the trained network.

:func:`train <nst_tf.training.train>` creates the strategy *first* and builds every network, loss
and optimizer inside ``strategy.scope()`` (see :class:`~nst_tf.training.Recipe`), so a strategy
added here, for example ``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``, needs no change in
any recipe. ``batch_size`` is always the global batch; each replica computes the mean loss of its
share and :class:`~nst_tf.training.StyleTrainer` divides its gradient by the number of replicas.

Example:
    >>> make_strategy("default").num_replicas_in_sync
    1
"""

import tensorflow as tf

from nst_tf.device import dtype_policy  # noqa: F401  (re-exported: the policy of trained networks)
from nst_tf.errors import ConfigError

#: The values of ``strategy=`` (``nst-train --strategy``).
STRATEGIES = ("default", "mirrored", "one_device")
#: The values of ``mixed_precision=`` (None: float32 throughout).
MIXED_PRECISION = (None, "mixed_float16", "mixed_bfloat16")


def check_strategy(name):
    """``name`` if it is one of :data:`STRATEGIES` (or None), else a ConfigError."""
    if name is not None and name not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    return name


def make_strategy(name="default"):
    """``"default"`` (no distribution), ``"mirrored"`` (all visible GPUs, else the CPU devices) or
    ``"one_device"`` (the first GPU, else the CPU)."""
    check_strategy(name)
    if name in (None, "default"):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    gpus = tf.config.list_logical_devices("GPU")  # "one_device"
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def check_mixed_precision(name):
    """``name`` if it is one of :data:`MIXED_PRECISION`, else a ConfigError."""
    if name not in MIXED_PRECISION:
        raise ConfigError(f"mixed_precision must be mixed_float16, mixed_bfloat16 or None, "
                          f"got {name!r}")
    return name
