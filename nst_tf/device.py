"""Where computations run and how they are compiled.

``jit_compile="auto"`` turns XLA on when a GPU or TPU is visible and off on the CPU, where XLA was
measured slower for these models (0.72 s vs 0.56 s per 256² Gatys step on the 2-core CI machine).
The same code runs either way: the flag only changes compilation.

Example:
    >>> from nst_tf.device import resolve_jit_compile
    >>> resolve_jit_compile(False)
    False
"""

import contextlib
import functools

import tensorflow as tf

from nst_tf.errors import ConfigError


def has_accelerator():
    """True when TensorFlow sees a GPU or TPU."""
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags (Linux ``/proc/cpuinfo``); empty where that file is absent."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _conv_seconds(dtype, repeats=7):
    """Median time of two 3x3 convolutions (64 → 64 channels, 128x128) in ``dtype``."""
    import time

    x = tf.cast(tf.random.stateless_uniform([1, 128, 128, 64], [0, 1]), dtype)
    k = tf.cast(tf.random.stateless_normal([3, 3, 64, 64], [0, 2]) * 0.05, dtype)
    f = tf.function(lambda a, b: tf.nn.conv2d(tf.nn.conv2d(a, b, 1, "SAME"), b, 1, "SAME"))
    f(x, k).numpy()  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f(x, k).numpy()
        times.append(time.perf_counter() - start)
    return sorted(times)[repeats // 2]


@functools.lru_cache(maxsize=None)
def bfloat16_is_faster():
    """True when bfloat16 convolutions measure at least 1.2x faster than float32 here.

    Measured once per process (~0.2 s) on the CPU; False without bfloat16 hardware (no
    ``avx512_bf16`` / ``amx_bf16`` flag: bfloat16 would be emulated) and on GPU/TPU (not
    measured there). Why measure: bfloat16 ran 1.9-2.1x faster than float32 on an AVX512-BF16 CPU
    without AMX here, while another AVX512-BF16 CPU without AMX was reported at 0.8x; the flags
    alone do not tell.
    """
    if has_accelerator() or not cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        return False
    return _conv_seconds(tf.float32) > 1.2 * _conv_seconds(tf.bfloat16)


#: Accepted ``precision`` values of the compiled paths (Gatys steps, feed-forward networks).
PRECISIONS = ("float32", "bfloat16", "auto")


def resolve_precision(precision="float32"):
    """Map ``precision`` to ``"float32"`` or ``"bfloat16"``.

    ``"auto"`` picks bfloat16 only where it measures faster (:func:`bfloat16_is_faster`);
    other values are returned as they are, after validation.

    Example:
        >>> resolve_precision("float32")
        'float32'
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bfloat16" if bfloat16_is_faster() else "float32"
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


@contextlib.contextmanager
def dtype_policy(name):
    """Temporarily set Keras' global dtype policy (layers keep the policy they were built with).

    ``name`` is a Keras policy name (``"mixed_bfloat16"``, ...); None means ``"float32"``.

    Example:
        >>> import keras
        >>> with dtype_policy("mixed_bfloat16"):
        ...     layer = keras.layers.Dense(2)
        >>> layer.dtype_policy.name, keras.mixed_precision.global_policy().name
        ('mixed_bfloat16', 'float32')
    """
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name or "float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
