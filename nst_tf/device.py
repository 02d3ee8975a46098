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


def cpu_has_amx(cpuinfo="/proc/cpuinfo"):
    """True when the CPU has AMX bfloat16 tiles (Linux ``/proc/cpuinfo`` flag ``amx_bf16``).

    bfloat16 convolutions pay off on the CPU only with AMX: measured on an AVX512-BF16 CPU
    without AMX, the bfloat16 pastiche path ran at 0.8x the speed of ``fast=True`` float32.
    """
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            return any(line.startswith("flags") and " amx_bf16" in line for line in f)
    except OSError:
        return False


#: Accepted ``precision`` values of the compiled paths (Gatys steps, feed-forward networks).
PRECISIONS = ("float32", "bfloat16", "auto")


def resolve_precision(precision="float32"):
    """Map ``precision`` to ``"float32"`` or ``"bfloat16"``.

    ``"auto"`` picks bfloat16 only where it was measured faster: a CPU with AMX and no GPU/TPU
    (elsewhere, float32). Other values are returned as they are, after validation.

    Example:
        >>> resolve_precision("float32")
        'float32'
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bfloat16" if cpu_has_amx() and not has_accelerator() else "float32"
    return precision


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
