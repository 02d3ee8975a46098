"""In-graph first-order optimizers whose whole state lives in TensorFlow variables.

Both classes share one tiny protocol, so the compiled step in :mod:`nst_tf.optimize` is the same
for either:

* ``opt.trial`` — the variable holding the point to evaluate next;
* ``opt.apply(loss, grad)`` — consume ``f(trial)`` and ``∇f(trial)``, move ``trial``; returns a
  bool tensor that is False when the run cannot continue (non-finite values);
* ``opt.result()`` — the best point so far (the image to return or save);
* ``opt.reset(x0)`` — start again from ``x0`` with the same variables (a compiled step that uses
  them is reused, e.g. for the next video frame);
* ``opt.state()`` / ``opt.restore(state)`` — every variable as NumPy arrays and back (checkpoints:
  a restored optimizer continues exactly where the saved one was, L-BFGS history included).

Exactly one objective evaluation (forward + backward) happens per step, for both optimizers.

:class:`LBFGS` keeps the last ``memory`` curvature pairs ``(s, y)`` in a ring buffer
(``s_history``, ``y_history``) and computes directions with the two-loop recursion, so its history
survives across compiled calls (``tfp.optimizer.lbfgs_minimize`` restarts it on every call). The
line search is *deferred* backtracking Armijo: a step proposes ``trial = x + p``; the next step
evaluates it, and either accepts it (``f(trial) ≤ f(x) + c₁·∇f(x)ᵀp``, then a new L-BFGS
direction is proposed with unit step) or rejects it and proposes a shorter step along the same
direction (quadratic interpolation, clipped to [0.1, 0.5] of the previous length). A rejected
proposal therefore costs one step but never a second evaluation inside a step, which keeps every
step at exactly one forward + backward pass. A NaN/inf proposal is treated as a rejection. The very
first step moves a distance ``initial_step`` along ``-∇f`` (as SciPy's L-BFGS-B does with 1).
Pairs with ``sᵀy ≤ 0`` (possible because Armijo does not enforce the Wolfe curvature condition)
are skipped, which keeps the implicit inverse Hessian positive definite.

Example:
    >>> import tensorflow as tf
    >>> from nst_tf.lbfgs import LBFGS
    >>> opt = LBFGS(tf.constant([3.0, -2.0], tf.float64))
    >>> for _ in range(20):
    ...     x = opt.trial.read_value()
    ...     with tf.GradientTape() as tape:
    ...         tape.watch(x)
    ...         f = tf.reduce_sum((x - 1.0) ** 2 * [1.0, 10.0])
    ...     _ = opt.apply(f, tape.gradient(f, x))
    >>> [round(v, 6) for v in opt.result().numpy().tolist()]
    [1.0, 1.0]
"""

import tensorflow as tf


def _dot(a, b):
    return tf.reduce_sum(a * b)


class _State:
    """``reset`` / ``state`` / ``restore`` over the optimizer's variables (``self.variables``)."""

    def _initial_values(self, x0):
        """``{variable name: value}`` of a fresh optimizer at ``x0`` (zeros where not given)."""
        raise NotImplementedError

    def reset(self, x0):
        """Start again from ``x0`` (same shape and dtype), as a freshly built optimizer would."""
        x0 = tf.cast(tf.reshape(tf.convert_to_tensor(x0), self.shape), self.dtype)
        values = self._initial_values(x0)
        for name, variable in self.variables.items():
            if name in values:
                variable.assign(tf.cast(tf.reshape(values[name], variable.shape),
                                        variable.dtype))
            else:
                variable.assign(tf.zeros(variable.shape, variable.dtype))

    def state(self):
        """``{name: np.ndarray}`` of every variable (copies)."""
        return {name: variable.numpy() for name, variable in self.variables.items()}

    def restore(self, state):
        """Load :meth:`state` output; names, shapes and dtypes must match and the counters be
        in range (the counters are checked before anything is assigned; the big arrays are
        read and assigned one at a time).

        Raises:
            ValueError: a missing variable, one of another shape or dtype (a state saved for
            another image size or history length), or a counter out of range.
        """
        missing = [name for name in self.variables if name not in state]
        if missing:
            raise ValueError(f"the saved optimizer state has no {', '.join(map(repr, missing))}")
        for name, (low, high) in self._count_ranges().items():
            value = self._checked(state, name)
            if not low <= int(value) <= high:
                raise ValueError(f"the saved {name!r} is {int(value)}, outside [{low}, {high}]")
        for name, variable in self.variables.items():
            variable.assign(self._checked(state, name))

    def _checked(self, state, name):
        value, variable = state[name], self.variables[name]
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"the saved {name!r} has shape {tuple(value.shape)}, this "
                             f"optimizer's has {tuple(variable.shape)}")
        if value.dtype != variable.dtype.as_numpy_dtype:
            raise ValueError(f"the saved {name!r} has dtype {value.dtype}, this optimizer's "
                             f"has {variable.dtype.name}")
        return value

    def _count_ranges(self):
        """``{counter name: (lowest, highest)}`` of the integer variables."""
        return {}


class LBFGS(_State):
    """Limited-memory BFGS with a ring-buffer history and a deferred Armijo backtracking search.

    Args:
        x0: the starting point (any shape, float32 or float64).
        memory: how many ``(s, y)`` pairs to keep (``m``); 5–20 is usual.
        initial_step: length (L2 norm) of the very first step along ``-∇f``; later steps start
            at the full quasi-Newton step.
        armijo: the sufficient-decrease constant ``c₁``.
        max_rejections: after this many consecutive rejected proposals whose loss was NaN/inf,
            :meth:`apply` reports failure.
    """

    def __init__(self, x0, *, memory=10, initial_step=1.0, armijo=1e-4, max_rejections=12):
        x0 = tf.convert_to_tensor(x0)
        if not x0.dtype.is_floating:
            x0 = tf.cast(x0, tf.float32)
        if int(memory) < 1:
            raise ValueError(f"memory must be at least 1, got {memory}")
        self.shape = x0.shape
        self.dtype = x0.dtype
        self.memory = int(memory)
        self.initial_step = float(initial_step)
        self.armijo = float(armijo)
        self.max_rejections = int(max_rejections)
        n = x0.shape.num_elements()
        flat = tf.reshape(x0, [n])

        def var(value, name):
            return tf.Variable(value, trainable=False, name=name)

        self.trial = var(x0, "trial")
        self.x = var(flat, "x")                    # last accepted point
        self.g = var(tf.zeros_like(flat), "g")     # gradient at x
        self.loss = var(tf.constant(float("inf"), self.dtype), "loss")  # f(x)
        self.p = var(tf.zeros_like(flat), "p")     # proposed displacement: trial = x + p
        self.gtp = var(tf.zeros([], self.dtype), "gtp")  # gᵀp
        self.s_history = var(tf.zeros([self.memory, n], self.dtype), "s_history")
        self.y_history = var(tf.zeros([self.memory, n], self.dtype), "y_history")
        self.rho = var(tf.zeros([self.memory], self.dtype), "rho")  # 1 / sᵀy
        self.num_pairs = var(0, "num_pairs")       # pairs stored, ≤ memory
        self.head = var(0, "head")                 # ring index of the next write
        self.gamma = var(tf.ones([], self.dtype), "gamma")  # H₀ = γ·I, γ = sᵀy / yᵀy
        self.evaluations = var(0, "evaluations")
        self.accepted = var(0, "accepted")
        self.rejections = var(0, "rejections")     # consecutive
        self.variables = {name: getattr(self, name) for name in (
            "trial", "x", "g", "loss", "p", "gtp", "s_history", "y_history", "rho", "num_pairs",
            "head", "gamma", "evaluations", "accepted", "rejections")}

    def _initial_values(self, x0):
        return {"trial": x0, "loss": tf.constant(float("inf"), self.dtype),
                "gamma": tf.ones([], self.dtype)}

    def _count_ranges(self):
        many = 2 ** 31 - 1
        return {"num_pairs": (0, self.memory), "head": (0, self.memory - 1),
                "evaluations": (0, many), "accepted": (0, many), "rejections": (0, many)}

    # --- state helpers ---------------------------------------------------------------------

    def result(self):
        """The last accepted point (the lowest loss seen), in the shape of ``x0``."""
        return tf.reshape(self.x, self.shape)

    def history(self):
        """``(s, y)`` pairs stored, oldest first, as two ``[k, n]`` tensors (for inspection)."""
        k = self.num_pairs
        idx = (self.head - k + tf.range(k)) % self.memory
        return tf.gather(self.s_history, idx), tf.gather(self.y_history, idx)

    def _push(self, s, y, sy):
        index = [[self.head]]
        self.s_history.scatter_nd_update(index, [s])
        self.y_history.scatter_nd_update(index, [y])
        self.rho.scatter_nd_update(index, [1.0 / sy])
        self.head.assign((self.head + 1) % self.memory)
        self.num_pairs.assign(tf.minimum(self.num_pairs + 1, self.memory))
        self.gamma.assign(sy / _dot(y, y))

    def _direction(self, g):
        """−H·g by the two-loop recursion over the stored pairs (newest first, then oldest)."""
        k = self.num_pairs
        m = self.memory
        # tf.gather, not var[j]: XLA needs constant strided-slice bounds, and a slice at a
        # variable index would make it recompile for every value of head / num_pairs.
        q = g
        alphas = tf.zeros([m], self.dtype)
        i = tf.constant(0)
        while i < k:  # newest → oldest (a while loop: XLA needs no constant trip count)
            j = (self.head - 1 - i) % m
            a = tf.gather(self.rho, j) * _dot(tf.gather(self.s_history, j), q)
            q = q - a * tf.gather(self.y_history, j)
            alphas = tf.tensor_scatter_nd_update(alphas, [[j]], [a])
            i += 1
        r = self.gamma * q
        i = tf.constant(0)
        while i < k:  # oldest → newest
            j = (self.head - k + i) % m
            b = tf.gather(self.rho, j) * _dot(tf.gather(self.y_history, j), r)
            r = r + (tf.gather(alphas, j) - b) * tf.gather(self.s_history, j)
            i += 1
        return -r

    # --- one step ----------------------------------------------------------------------------

    def apply(self, loss, grad):
        """Consume ``loss = f(trial)`` and ``grad = ∇f(trial)``; set the next ``trial``.

        Returns a bool tensor: False if the run is stuck on non-finite values (the first
        evaluation is NaN/inf, or ``max_rejections`` proposals in a row were).
        """
        loss = tf.cast(loss, self.dtype)
        g = tf.reshape(tf.cast(grad, self.dtype), [-1])
        x = tf.reshape(self.trial, [-1])
        finite = tf.math.is_finite(loss) & tf.reduce_all(tf.math.is_finite(g))
        first = tf.equal(self.accepted, 0)
        sufficient = loss <= self.loss + self.armijo * self.gtp
        self.evaluations.assign_add(1)
        if finite and (first or sufficient):
            if not first:
                s = x - self.x
                y = g - self.g
                sy = _dot(s, y)
                if sy > 1e-10 * tf.norm(s) * tf.norm(y):
                    self._push(s, y, sy)
            if tf.equal(self.num_pairs, 0):
                d = -g * (self.initial_step / tf.maximum(tf.norm(g), tf.cast(1e-30, self.dtype)))
            else:
                d = self._direction(g)
                if _dot(g, d) >= 0:  # not a descent direction (round-off): restart the memory
                    self.num_pairs.assign(0)
                    d = -g * self.gamma
            self.x.assign(x)
            self.g.assign(g)
            self.loss.assign(loss)
            self.p.assign(d)
            self.gtp.assign(_dot(g, d))
            self.trial.assign(tf.reshape(x + d, self.shape))
            self.accepted.assign_add(1)
            self.rejections.assign(0)
        elif not first:
            # Backtrack: minimiser of the quadratic through f(x), gᵀp and f(x + p), kept in
            # [0.1, 0.5] of the current length; a quarter when the proposal was NaN/inf.
            curvature = loss - self.loss - self.gtp
            factor = tf.constant(0.25, self.dtype)
            if finite and curvature > 0:
                factor = tf.clip_by_value(-self.gtp / (2.0 * curvature), 0.1, 0.5)
            self.p.assign(self.p * factor)
            self.gtp.assign(self.gtp * factor)
            self.trial.assign(tf.reshape(self.x + self.p, self.shape))
            if finite:
                self.rejections.assign(0)
            else:
                self.rejections.assign_add(1)
        return tf.logical_not(tf.equal(self.accepted, 0)) & (self.rejections < self.max_rejections)


class Adam(_State):
    """Adam (Kingma & Ba) on a single variable, in-graph; ``trial`` is also the result.

    Args:
        x0: the starting point.
        learning_rate: step size (in pixel units for images in [0, 1]).
        beta_1, beta_2, epsilon: the usual Adam constants.
    """

    def __init__(self, x0, *, learning_rate=0.02, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        x0 = tf.convert_to_tensor(x0)
        if not x0.dtype.is_floating:
            x0 = tf.cast(x0, tf.float32)
        self.shape = x0.shape
        self.dtype = x0.dtype
        self.learning_rate = float(learning_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.trial = tf.Variable(x0, trainable=False, name="trial")
        self.m = tf.Variable(tf.zeros_like(x0), trainable=False, name="m")
        self.v = tf.Variable(tf.zeros_like(x0), trainable=False, name="v")
        self.iterations = tf.Variable(0, trainable=False, name="iterations")  # finite updates
        self.evaluations = tf.Variable(0, trainable=False, name="evaluations")  # apply calls
        self.variables = {"trial": self.trial, "m": self.m, "v": self.v,
                          "iterations": self.iterations, "evaluations": self.evaluations}

    def _initial_values(self, x0):
        return {"trial": x0}

    def _count_ranges(self):
        return {"iterations": (0, 2 ** 31 - 1), "evaluations": (0, 2 ** 31 - 1)}

    def result(self):
        """The current point."""
        return tf.convert_to_tensor(self.trial)

    def apply(self, loss, grad):
        """One Adam update; returns False (and leaves the point unchanged) on NaN/inf."""
        grad = tf.cast(grad, self.dtype)
        finite = tf.math.is_finite(tf.cast(loss, self.dtype)) & tf.reduce_all(
            tf.math.is_finite(grad))
        self.evaluations.assign_add(1)
        if finite:
            self.iterations.assign_add(1)
            t = tf.cast(self.iterations, self.dtype)
            m = self.m.assign(self.beta_1 * self.m + (1.0 - self.beta_1) * grad)
            v = self.v.assign(self.beta_2 * self.v + (1.0 - self.beta_2) * tf.square(grad))
            rate = self.learning_rate * tf.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)
            self.trial.assign_sub(rate * m / (tf.sqrt(v) + self.epsilon))
        return finite
