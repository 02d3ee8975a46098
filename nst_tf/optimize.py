"""Optimize an image against a differentiable objective: Adam or L-BFGS, one compiled step.

``objective(image) -> (total, parts)`` is any function of TF ops (a
:class:`nst_tf.objective.StyleObjective`, or a test function). :func:`optimize_image` runs it in a
single ``tf.function`` that does forward + backward + update in-graph; with
``steps_per_call > 1`` several steps run inside one call (a ``tf.while_loop``), so Python only
touches the loop to fetch the loss for progress and callbacks.

The image is optimized **unconstrained** (values may leave [0, 1] during the run, as in the
original Gatys / neural-style implementations: clipping inside the loop would break the L-BFGS
curvature pairs); the returned image is clipped to [0, 1]. Adam and L-BFGS live in
:mod:`nst_tf.lbfgs`; L-BFGS keeps its ``(s, y)`` history across calls.

Ctrl-C stops cleanly: the run returns the current image with ``result.interrupted = True``
(callbacks see ``on_end``). To resume exactly (L-BFGS history included), give the run a
``checkpoint`` (:class:`nst_tf.resume.RunCheckpoint`; ``checkpoint=`` in :func:`nst_tf.transfer`,
``--checkpoint_every`` in the CLI) and start it again; without one, pass the returned image (or a
file saved by :class:`SaveEvery`) as the initial image, and the L-BFGS memory restarts.

The objective's targets are inputs of the compiled step (:func:`objective_targets`), so one
step serves every content image, video frame and tile of the same shape; a :class:`StepCache`
keeps it (and the optimizer's variables) across runs.

Speed: for long runs the backbone weights are folded into the compiled step as constants
(``freeze``, ~15 % less CPU per step), and ``precision="bfloat16"`` runs the convolutions in
bfloat16 through oneDNN on x86 CPUs (~3× faster with AMX; ``precision="auto"`` measures).
Several steps per call (``steps_per_call``) save only the Python round trip, which is small
next to a VGG step.

Example:
    >>> import tensorflow as tf
    >>> from nst_tf.optimize import optimize_image
    >>> target = tf.fill([1, 8, 8, 3], 0.25)
    >>> objective = lambda x: (tf.reduce_sum((x - target) ** 2), {})
    >>> result = optimize_image(objective, tf.fill([1, 8, 8, 3], 0.9), steps=20)
    >>> round(float(result.image.max()), 4)
    0.25
"""

import contextlib
import dataclasses
import os
import sys
import time

import numpy as np
import tensorflow as tf

from nst_tf import images
from nst_tf.device import PRECISIONS, resolve_jit_compile, resolve_precision  # noqa: F401
from nst_tf.errors import ConfigError, ImageError, OptimizationError
from nst_tf.lbfgs import LBFGS, Adam
from nst_tf.progress import ProgressLine, format_duration

OPTIMIZERS = ("lbfgs", "adam")

#: Default learning rate per optimizer: the first step length (L2) for L-BFGS, the Adam step size.
DEFAULT_LEARNING_RATES = {"lbfgs": 1.0, "adam": 0.02}

INITS = ("content", "style", "noise")


#: ``freeze="auto"`` folds the weights into constants from this many steps × pixels on.
FREEZE_MIN_PIXEL_STEPS = 20 * 512 * 512


@dataclasses.dataclass
class OptimizeResult:
    """What :func:`optimize_image` returns.

    Attributes:
        image: float32 ``[1, H, W, C]`` in [0, 1] — the best image (L-BFGS: lowest loss seen).
        losses: float64 array, the total loss evaluated at each step.
        parts: the loss parts (``{"content": .., ...}``) of the last evaluated step.
        steps: steps run (less than asked if interrupted).
        interrupted: True when stopped by Ctrl-C (KeyboardInterrupt).
    """

    image: np.ndarray
    losses: np.ndarray
    parts: dict
    steps: int
    interrupted: bool = False


# --- Callbacks -------------------------------------------------------------------------------

class Callback:
    """Base class of the callback protocol; override what you need.

    ``image`` is the current best image as a tensor ``[1, H, W, C]`` (not clipped); ``loss`` a
    float; ``parts`` a dict of floats.
    """

    def on_begin(self, steps):
        pass

    def on_step(self, step, image, loss, parts):
        pass

    def on_end(self, step, image, loss, parts):
        pass


class Progbar(Callback):
    """A progress line on stdout: step / steps, time per step, ETA, the total loss and its parts.

    The clock starts in ``on_begin``, and once a few steps have run the time per step leaves the
    first one out (it includes tracing): the time shown is the real one. ``clock`` (default
    :func:`time.monotonic`) is what :class:`~nst_tf.progress.ProgressLine` times with.
    """

    def __init__(self, verbose=1, stream=None, clock=time.monotonic):
        self.verbose, self.stream, self.clock = verbose, stream, clock
        self._line = None

    def on_begin(self, steps):
        self._line = ProgressLine(steps, stream=self.stream or sys.stdout, clock=self.clock,
                                  enabled=bool(self.verbose))

    def on_step(self, step, image, loss, parts):
        seconds = self._line.advance()
        values = "  ".join(f"{name} {float(value):.4g}"
                           for name, value in [("loss", loss)] + list(parts.items()))
        self._line.write(step, f"step {step}/{self._line.total}  {format_duration(seconds)}/step"
                               f"{self._line.eta(step, seconds)}  {values}")

    def on_end(self, step, image, loss, parts):
        if self._line is not None:
            self._line.close()


class SaveEvery(Callback):
    """Save the current image every ``every`` steps (and at the end) with :func:`images.save_image`.

    Args:
        every: steps between saves.
        pattern: file name, formatted with ``step`` (``"out_{step:05d}.png"``); a pattern without
            a field overwrites one file. Each write is atomic.
        postprocess: optional ``f(np.ndarray [1,H,W,C]) -> [H,W,3]`` (colour recombination...).
        offset: added to the step number in file names (for multi-scale levels).
    """

    def __init__(self, every, pattern, postprocess=None, offset=0):
        if int(every) < 1:
            raise ConfigError(f"save_every must be a positive number of steps, got {every}")
        self.every = int(every)
        self.pattern = os.fspath(pattern)
        self.postprocess = postprocess
        self.offset = offset
        self.saved = []

    def path(self, step):
        return self.pattern.format(step=step + self.offset)

    def _save(self, step, image):
        array = np.asarray(image)
        array = self.postprocess(array) if self.postprocess else np.clip(array, 0.0, 1.0)
        path = self.path(step)
        images.save_image(path, array)
        self.saved.append(path)

    def on_step(self, step, image, loss, parts):
        if step % self.every == 0:
            self._save(step, image)

    def on_end(self, step, image, loss, parts):
        if step % self.every != 0 and step > 0:
            self._save(step, image)


# --- Initial image ---------------------------------------------------------------------------

def initial_image(init, content=None, style=None, seed=0, shape=None):
    """The starting image ``[H, W, 3]`` (float32).

    Args:
        init: ``"content"``, ``"style"`` (resized to the content size), ``"noise"`` (uniform in
            [0, 1], seeded), an array, or an image path (resized to the content size if needed).
        content: the content image ``[H, W, 3]`` (defines the size).
        style: the (first) style image.
        seed: seed for ``"noise"``.
        shape: ``(H, W)`` when there is no content image.
    """
    if content is not None:
        shape = np.shape(content)[:2]
    if isinstance(init, str) and init in INITS:
        if init == "content":
            if content is None:
                raise ConfigError("init='content' needs a content image")
            return np.asarray(content, np.float32)
        if init == "style":
            if style is None:
                raise ConfigError("init='style' needs a style image")
            return images.resize(np.asarray(style, np.float32), tuple(shape))
        rng = np.random.default_rng(seed)
        return rng.uniform(0.0, 1.0, size=tuple(shape) + (3,)).astype(np.float32)
    if isinstance(init, str) and not os.path.exists(init) and "." not in os.path.basename(init):
        raise ConfigError(f"init must be one of {INITS}, an array or an image path; got {init!r}")
    image = images.load_or_validate(init, what="init image")
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ImageError(f"init image must be a single image, got shape {image.shape}")
        image = image[0]
    if shape is not None and tuple(image.shape[:2]) != tuple(shape):
        image = images.resize(image, tuple(shape))
    return image


# --- The loop --------------------------------------------------------------------------------

def make_optimizer(name, init_image, learning_rate=None, memory=10):
    """An :class:`nst_tf.lbfgs.LBFGS` or :class:`nst_tf.lbfgs.Adam` starting at ``init_image``.

    Raises:
        ConfigError: unknown optimizer, bad learning rate or history size.
    """
    name = str(name).lower()
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    rate = DEFAULT_LEARNING_RATES[name] if learning_rate is None else float(learning_rate)
    if not np.isfinite(rate) or rate <= 0:
        raise ConfigError(f"learning_rate must be a positive finite number, got {learning_rate!r}")
    if name == "lbfgs":
        if isinstance(memory, bool) or int(memory) != memory or memory < 1:
            raise ConfigError(f"the L-BFGS history (memory) must be a positive integer, "
                              f"got {memory!r}")
        return LBFGS(init_image, memory=int(memory), initial_step=rate)
    return Adam(init_image, learning_rate=rate)


def objective_targets(objective):
    """``(targets, loss)``: the nest of tensors the compiled step takes as input and
    ``loss(x, targets) -> (total, parts)``.

    Objectives with ``targets`` and ``loss(image, targets)``
    (:class:`nst_tf.objective.StyleObjective`) get their targets passed in, so new targets of the same shapes (another
    content image, the next video frame) reuse the compiled step; any other
    ``objective(image)`` has no inputs besides the image.
    """
    if hasattr(objective, "targets") and hasattr(objective, "loss"):
        return objective.targets, objective.loss
    return {}, lambda x, targets: objective(x)


def _spec(targets):
    return tf.nest.map_structure(lambda t: tf.TensorSpec.from_tensor(tf.convert_to_tensor(t)),
                                 targets)


def loss_and_gradient(objective, shape, dtype=tf.float32, freeze=True):
    """``f(x, targets=None) -> (loss, parts, grad)`` for images of ``shape``, traced once.

    ``targets`` (default: the objective's current ones, see :func:`objective_targets`) is an
    input, not a constant, so it can change without a new trace.

    With ``freeze=True`` the variables the objective reads (the frozen backbone weights) are
    folded into the graph as constants (``convert_variables_to_constants_v2``). That lets
    Grappler and oneDNN treat the filters as constants (cached weight layouts, folded
    weight-only ops): about 15 % less CPU time per 512² VGG19 step, same values. It assumes the
    objective's variables do not change during the optimization; objectives without variables
    are unaffected. If freezing fails, the unfrozen function is used.
    """
    initial, loss_fn = objective_targets(objective)

    @tf.function
    def traced(x, targets):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss, parts = loss_fn(x, targets)
        return loss, parts, tape.gradient(loss, x)

    def current(targets):
        return objective_targets(objective)[0] if targets is None else targets

    concrete = traced.get_concrete_function(tf.TensorSpec(shape, dtype), _spec(initial))
    if not freeze or not concrete.variables:
        return lambda x, targets=None: traced(x, current(targets))
    names = sorted(concrete.structured_outputs[1])  # tf.nest.flatten's order of a dict
    try:
        from tensorflow.python.framework import convert_to_constants

        frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
    except Exception:  # an op the converter does not handle: keep the variables
        return lambda x, targets=None: traced(x, current(targets))

    def call(x, targets=None):
        outputs = tf.nest.flatten(frozen(x, *tf.nest.flatten(current(targets))))
        loss, grad, parts = outputs[0], outputs[-1], outputs[1:-1]
        return loss, dict(zip(names, parts)), grad

    return call


class CompiledStep:
    """``step(n, targets=None) -> (losses[n], parts, ok, done)`` runs up to ``n`` steps.

    Whole-image objectives: forward, backward and the optimizer update all run in one
    ``tf.function``; the first step is written out once and the rest run in a
    ``tf.while_loop`` (which stops early on NaN/inf). ``targets`` (default: the objective's
    current ones) is an input of that function, so it is traced once per image shape
    (:meth:`tracing_count`) and serves any targets of the same shapes.

    Objectives that evaluate themselves piece by piece (``value_and_gradient``, the tiled
    :class:`nst_tf.tiling.TiledObjective`) run their tiles eagerly, one at a time; only the
    optimizer update is compiled here.

    ``freeze``: see :func:`loss_and_gradient`.
    """

    def __init__(self, objective, optimizer, jit_compile="auto", freeze=True):
        self.objective = objective
        self.optimizer = optimizer
        jit = resolve_jit_compile(jit_compile)
        if hasattr(objective, "value_and_gradient"):
            self.function = None
            self._apply = tf.function(optimizer.apply, jit_compile=jit)
            return
        evaluate = loss_and_gradient(objective, optimizer.trial.shape, optimizer.trial.dtype,
                                     freeze)

        def one_step(targets):
            loss, parts, grad = evaluate(optimizer.trial.read_value(), targets)
            ok = optimizer.apply(loss, grad)
            return (tf.cast(loss, tf.float32),
                    {k: tf.cast(v, tf.float32) for k, v in parts.items()}, ok)

        @tf.function(jit_compile=jit)
        def step(n, targets):
            loss, parts, ok = one_step(targets)
            losses = tf.tensor_scatter_nd_update(tf.zeros([n]), [[0]], [loss])

            def cond(i, losses, parts, ok):
                return tf.logical_and(i < n, ok)

            def body(i, losses, parts, ok):
                loss, parts, ok = one_step(targets)
                return i + 1, tf.tensor_scatter_nd_update(losses, [[i]], [loss]), parts, ok

            done, losses, parts, ok = tf.while_loop(cond, body,
                                                    (tf.constant(1), losses, parts, ok))
            return losses, parts, ok, done

        self.function = step

    def __call__(self, n, targets=None):
        if self.function is None:
            return self._eager_steps(int(n))
        if targets is None:
            targets = objective_targets(self.objective)[0]
        return self.function(tf.constant(int(n)), targets)

    def _eager_steps(self, n):
        losses, parts, ok, done = [], {}, tf.constant(True), 0
        while done < n and bool(ok):
            loss, parts, grad = self.objective.value_and_gradient(self.optimizer.trial)
            ok = self._apply(loss, grad)
            losses.append(float(loss))
            done += 1
        losses += [0.0] * (n - done)
        return tf.constant(losses, tf.float32), parts, ok, tf.constant(done)

    def tracing_count(self):
        """How often the compiled step was traced (1 after any number of same-shape calls)."""
        function = self.function if self.function is not None else self._apply
        return function.experimental_get_tracing_count()


def make_step(objective, optimizer, jit_compile="auto", freeze=True):
    """The compiled step of ``objective`` and ``optimizer`` (a :class:`CompiledStep`)."""
    return CompiledStep(objective, optimizer, jit_compile, freeze)


class StepCache:
    """Optimizer variables and compiled steps kept across :func:`optimize_image` calls.

    Pass one cache to consecutive runs of the same objective (retargeted in between, see
    :meth:`nst_tf.objective.StyleObjective.retarget`) with the same optimizer settings and image
    shape: the optimizer is reset to the new start (``reset`` of :class:`nst_tf.lbfgs.LBFGS`) and the
    compiled step runs again without a new trace. Video frames use this.

    Example:
        >>> cache = StepCache()
        >>> # optimize_image(objective, frame_0, cache=cache); objective.retarget(frame_1)
        >>> # optimize_image(objective, frame_1, cache=cache)   # no new trace
    """

    def __init__(self):
        self._entries = {}

    def get(self, objective, optimizer, init, learning_rate, memory, jit_compile, freeze,
            steps):
        """``(optimizer, step)`` for these settings: cached ones reset to ``init``, or new.

        ``freeze="auto"`` is decided by the run that builds the step (``steps · H · W`` against
        :data:`FREEZE_MIN_PIXEL_STEPS`) and kept for the runs that reuse it."""
        key = (id(objective), tuple(init.shape), optimizer, learning_rate, memory,
               str(jit_compile), freeze)
        entry = self._entries.get(key)
        if entry is not None:
            entry[1].reset(init)
            return entry[1], entry[2]
        if freeze == "auto":
            freeze = steps * init.shape[1] * init.shape[2] >= FREEZE_MIN_PIXEL_STEPS
        opt = make_optimizer(optimizer, init, learning_rate, memory)
        step = make_step(objective, opt, jit_compile, freeze)
        self._entries[key] = (objective, opt, step)  # holds the objective: its id stays valid
        return opt, step

    def tracing_counts(self):
        """The tracing count of every cached step (for tests and benchmarks)."""
        return [step.tracing_count() for _, _, step in self._entries.values()]


@contextlib.contextmanager
def compute_precision(precision="float32"):
    """Run the enclosed compiled calls in float32 (no-op) or with oneDNN bfloat16 rewriting.

    ``"bfloat16"`` turns on Grappler's ``auto_mixed_precision_onednn_bfloat16`` pass while the
    block runs: on x86 CPUs with oneDNN, convolutions and matmuls run in bfloat16 (AMX /
    AVX512-BF16 when the CPU has them; accumulation and reductions stay float32), the variables,
    the loss and the optimizer state stay float32. On this project's 2-core Xeon with AMX a 512²
    VGG-19 step took 3.3× less time (``benchmarks/gatys_step.py``); final losses stay within 2 % of
    float32 (``tests/test_optimize.py``; measured 0.9 %). The option
    is part of each call's configuration, so it must be on during every call, not just the first;
    it is process-wide while the block runs. Elsewhere (GPU, non-oneDNN builds) it does nothing.
    Whether bfloat16 pays off depends on the CPU (AVX512-BF16 without AMX: 1.9x faster convolutions
    on one, reported slower on another); ``"auto"`` takes it where a one-time measurement finds it
    faster (:func:`nst_tf.device.bfloat16_is_faster`).
    """
    if resolve_precision(precision) == "float32":
        yield
        return
    key = "auto_mixed_precision_onednn_bfloat16"
    before = tf.config.optimizer.get_experimental_options().get(key, False)
    tf.config.optimizer.set_experimental_options({key: True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({key: before})


def _nan_message(step, loss, optimizer_name):
    hint = ("lower the learning_rate" if optimizer_name == "adam"
            else "try optimizer='adam' or a different init")
    return (f"optimization diverged at step {step}: the loss or its gradient became {loss} "
            f"(non-finite). Lower the content/style/tv weights, or {hint}.")


def optimize_image(objective, init_image, *, optimizer="lbfgs", steps=100, learning_rate=None,
                   jit_compile="auto", callbacks=(), steps_per_call=1, memory=10,
                   precision="float32", freeze="auto", cache=None, checkpoint=None):
    """Minimize ``objective`` over the pixels of an image.

    Args:
        objective: ``f(image [1,H,W,C]) -> (total scalar, {name: scalar})``, TF ops only; or an
            objective with ``targets`` and ``loss(image, targets)`` (a
            :class:`~nst_tf.objective.StyleObjective`, whose targets become step inputs), or one
            with ``value_and_gradient(image)`` (a :class:`~nst_tf.tiling.TiledObjective`).
        init_image: ``[H,W,C]`` or ``[1,H,W,C]`` float array (see :func:`initial_image`).
        optimizer: ``"lbfgs"`` (default) or ``"adam"``.
        steps: number of steps; each is one forward + backward pass.
        learning_rate: Adam's step size (default 0.02) or L-BFGS's first step length (default 1).
        jit_compile: ``"auto"`` (XLA on GPU/TPU only), True or False.
        callbacks: objects following the :class:`Callback` protocol (``on_step`` required;
            ``on_begin`` / ``on_end`` optional).
        steps_per_call: steps run per compiled call; callbacks see every ``steps_per_call``-th
            step (and the last one).
        memory: L-BFGS history size.
        precision: ``"float32"`` or ``"bfloat16"`` (convolutions in bfloat16 through oneDNN on
            x86 CPUs, see :func:`compute_precision`).
        freeze: fold the objective's variables (backbone weights) into the compiled step as
            constants: about 15 % faster steps for ~6 s more set-up (see
            :func:`loss_and_gradient`). ``"auto"`` freezes when ``steps · H · W`` is at least
            ``FREEZE_MIN_PIXEL_STEPS`` (20 steps at 512², 80 at 256²), where it pays off.
        cache: a :class:`StepCache` shared by consecutive runs: the same objective (retargeted)
            and settings reuse the optimizer variables and the compiled step.
        checkpoint: an object with ``every`` (steps), ``restore(optimizer) -> (steps done,
            losses)`` and ``save(optimizer, steps done, losses)`` (one level of a
            :class:`nst_tf.resume.RunCheckpoint`): the run starts where the saved state left
            off and saves every ``every`` steps, at the end and on Ctrl-C.

    Returns:
        :class:`OptimizeResult`; ``result.image`` is float32 ``[1, H, W, C]`` clipped to [0, 1].

    Raises:
        OptimizationError: the loss or gradient became NaN/inf (the message names the step).
        ConfigError: unknown optimizer, non-positive steps or learning rate.
    """
    if int(steps) != steps or steps < 1:
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")
    resolve_precision(precision)  # validates
    if int(steps_per_call) != steps_per_call or steps_per_call < 1:
        raise ConfigError(f"steps_per_call must be a positive integer, got {steps_per_call!r}")
    steps, steps_per_call = int(steps), int(steps_per_call)
    init = np.asarray(init_image, np.float32)
    if init.ndim == 3:
        init = init[None]
    if init.ndim != 4 or init.shape[0] != 1:
        raise ImageError(f"init_image must be [H,W,C] or [1,H,W,C], got shape {init.shape}")
    if not np.all(np.isfinite(init)):
        raise ImageError("init_image contains NaN or inf")
    name = str(optimizer).lower()
    if freeze not in ("auto", True, False):
        raise ConfigError(f"freeze must be True, False or 'auto', got {freeze!r}")
    if cache is None:
        cache = StepCache()
    # "auto" is decided on the whole run (not the steps left), so a resumed run compiles the
    # same step as the one it continues.
    opt, step_fn = cache.get(objective, name, init, learning_rate, memory, jit_compile, freeze,
                             steps)

    history, done = [], 0
    if checkpoint is not None:
        done, history = checkpoint.restore(opt)
        history = list(history)
    callbacks = list(callbacks or ())
    for cb in callbacks:
        if hasattr(cb, "on_begin"):
            cb.on_begin(steps)
    parts, interrupted = {}, False
    every = (checkpoint.every if checkpoint is not None else None) or steps
    evaluations = int(opt.evaluations)
    try:
        while done < steps:
            n = min(steps_per_call, steps - done, every - done % every)
            with compute_precision(precision):
                losses, parts_t, ok, ran = step_fn(n)
            ran = int(ran)
            history.extend(losses.numpy()[:ran].tolist())
            done += ran
            evaluations += ran
            parts = {k: float(v) for k, v in parts_t.items()}
            if not bool(ok):
                raise OptimizationError(_nan_message(done, history[-1], name))
            if checkpoint is not None and (done % every == 0 or done == steps):
                checkpoint.save(opt, done, history)
            for cb in callbacks:
                cb.on_step(done, opt.result(), history[-1], parts)
    except KeyboardInterrupt:
        interrupted = True
        # Ctrl-C may land after a compiled call returned but before the bookkeeping above:
        # save only when the optimizer's own counter agrees with the steps counted here.
        if checkpoint is not None and int(opt.evaluations) == evaluations:
            checkpoint.save(opt, done, history)
    final = opt.result()
    for cb in callbacks:
        if hasattr(cb, "on_end"):
            cb.on_end(done, final, history[-1] if history else float("nan"), parts)
    image = np.clip(final.numpy(), 0.0, 1.0).astype(np.float32)
    return OptimizeResult(image=image, losses=np.asarray(history, np.float64), parts=parts,
                          steps=done, interrupted=interrupted)
