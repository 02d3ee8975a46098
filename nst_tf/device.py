"""Where computations run and how they are compiled.

``jit_compile="auto"`` turns XLA on when a GPU or TPU is visible and off on the CPU, where XLA was
measured slower for these models (0.72 s vs 0.56 s per 256² Gatys step on the 2-core CI machine).
The same code runs either way: the flag only changes compilation.

Example:
    >>> from nst_tf.device import resolve_jit_compile
    >>> resolve_jit_compile(False)
    False
"""

import tensorflow as tf

from nst_tf.errors import ConfigError


def has_accelerator():
    """True when TensorFlow sees a GPU or TPU."""
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def resolve_jit_compile(jit_compile="auto"):
    """Map ``"auto"``/``True``/``False`` (or their strings) to a bool for ``tf.function``."""
    if isinstance(jit_compile, str):
        value = jit_compile.strip().lower()
        if value == "auto":
            return has_accelerator()
        if value in ("true", "1", "yes", "on"):
            return True
        if value in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"jit_compile must be 'auto', True or False, got {jit_compile!r}")
    if isinstance(jit_compile, bool):
        return jit_compile
    raise ConfigError(f"jit_compile must be 'auto', True or False, got {jit_compile!r}")
