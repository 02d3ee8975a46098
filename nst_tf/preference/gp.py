"""A preference Gaussian process in NumPy: Laplace posterior of a latent utility from choices.

Model (Chu & Ghahramani 2005; BoTorch's ``PairwiseGP`` is the k = 2 case):

* latent utility ``f ~ GP(0, k)`` with ``k(x, x') = s² exp(-|x - x'|² / (2 ℓ²))``;
* a question shows k options ``x_1 … x_k`` and the person picks the one they like best. The
  likelihood is the first choice of a Plackett–Luce model (a multinomial logit): option ``j`` is
  picked with probability ``p_j = softmax(f)_j``. For k = 2 this is Bradley–Terry,
  ``σ(f_1 − f_2)``. An answer is a *label* ``y`` over the options (one-hot for a pick, ``1/k``
  each for "none preferred" or a tie) with log-likelihood ``Σ_j y_j log p_j``; a soft label keeps
  the likelihood log-concave, and for k = 2 a tie is half a win for each side.

The posterior mode is found by Newton's method written in *option space*: the likelihood Hessian
of a question is ``diag(p) − p pᵀ = Σ_j r_j r_jᵀ`` with ``r_j = √p_j (e_j − p)``, so with ``R``
the matrix of all these rows (k per question) ``W = Rᵀ R`` and every solve goes through
``B = I + R K Rᵀ``, whose eigenvalues are ≥ 1. ``K`` is never inverted, so near-duplicate
points or a large lengthscale (a nearly singular ``K``, BoTorch PR #1754/#1755) cannot break
the fit. Hyperparameters are picked from a grid by the Laplace evidence (:func:`fit_by_evidence`);
the grid has a floor, so the lengthscale cannot collapse to 0 (BoTorch PR #1425).

Example:
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    >>> data = Choices([[0, 1], [2, 1, 0]], [0, 0])   # 0 beat 1; then 2 was picked of 2, 1, 0
    >>> posterior = fit(X, data, lengthscale=0.5, scale=1.0)
    >>> mean, std = posterior.predict(X)
    >>> int(np.argmin(mean))  # 1 never won
    1
"""

import math

import numpy as np

_SQRT2 = math.sqrt(2.0)
_erf = np.frompyfunc(math.erf, 1, 1)


def normal_cdf(z):
    """Standard normal CDF, elementwise (float64)."""
    z = np.asarray(z, dtype=np.float64)
    return 0.5 * (1.0 + _erf(z / _SQRT2).astype(np.float64))


def normal_pdf(z):
    """Standard normal density, elementwise."""
    return np.exp(-0.5 * np.square(z)) / math.sqrt(2.0 * math.pi)


def rbf(A, B, lengthscale, scale):
    """``s² exp(-|a - b|² / (2 ℓ²))`` for all rows of ``A`` [P, D] and ``B`` [Q, D] → [P, Q]."""
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    sq = (np.sum(A * A, 1)[:, None] + np.sum(B * B, 1)[None, :] - 2.0 * A @ B.T)
    return scale ** 2 * np.exp(-np.maximum(sq, 0.0) / (2.0 * lengthscale ** 2))


class Kernel:
    """``k(x, y) = s² [(1 − ρ) exp(−|x − y|² / 2ℓ²) + ρ φ(x)·φ(y)]``: a smooth part and a
    per-style (additive) part.

    ``φ(w)`` holds, for every style ``i``, the hinges ``min(w_i, c) / c`` at the knots
    ``c`` ∈ (0.15, 0.4, 1): the additive part is a Bayesian piecewise-linear response to each
    style's share (zero at 0), so "a little of style 7 helps, more does not" is learned once and
    applies to every mix that holds style 7. ``ρ = 0`` is the plain isotropic RBF.

    Example:
        >>> import numpy as np
        >>> k = Kernel(lengthscale=0.5, scale=2.0, additive=0.5)
        >>> pure = np.eye(3)[:1]
        >>> float(k(pure, pure)[0, 0])          # 4 (0.5 + 0.5 · 3 hinges / 3)
        4.0
    """

    KNOTS = np.array([0.15, 0.4, 1.0])

    def __init__(self, lengthscale, scale, additive=0.0, additive_dims=None):
        self.lengthscale, self.scale, self.additive = float(lengthscale), float(scale), additive
        self.additive_dims = additive_dims   # the additive part sees the first columns only

    def features(self, W):
        """``φ(W)`` [P, D · knots], scaled so ``φ(e_i)·φ(e_i) = 1`` for a pure style."""
        W = np.asarray(W, np.float64)[:, :self.additive_dims]
        hinges = np.minimum(W[:, :, None], self.KNOTS) / self.KNOTS
        return hinges.reshape(len(W), -1) / np.sqrt(len(self.KNOTS))

    def __call__(self, A, B):
        out = (1 - self.additive) * rbf(A, B, self.lengthscale, self.scale)
        if self.additive:
            out += self.additive * self.scale ** 2 * self.features(A) @ self.features(B).T
        return out

    def diag(self, Z):
        """``k(z, z)`` for each row of ``Z`` [P, D] → [P]."""
        value = np.full(len(Z), (1 - self.additive) * self.scale ** 2)
        if self.additive:
            value += self.additive * self.scale ** 2 * np.sum(self.features(Z) ** 2, 1)
        return value

    def weighted_sum_and_gradient(self, Z, X, weights):
        """``Σ_j weights_j k(z, x_j)`` for each row z of ``Z`` [P, D] and its gradient [P, D]."""
        Z, X = np.asarray(Z, np.float64), np.asarray(X, np.float64)
        Kw = (1 - self.additive) * rbf(Z, X, self.lengthscale, self.scale) * weights[None, :]
        value = Kw.sum(1)
        grad = (Kw @ X - Kw.sum(1)[:, None] * Z) / self.lengthscale ** 2
        if self.additive:
            c = self.additive * self.scale ** 2
            v = (self.features(X).T @ weights).reshape(-1, len(self.KNOTS))   # [D, knots]
            value += c * self.features(Z) @ v.reshape(-1)
            Zd = Z[:, :len(v)]
            slope = (Zd[:, :, None] < self.KNOTS) / self.KNOTS / np.sqrt(len(self.KNOTS))
            grad[:, :len(v)] += c * np.einsum("pdk,dk->pd", slope, v)
        return value, grad


class Choices:
    """Answers to k-option questions, as point indices and labels (the data of :func:`fit`).

    Args:
        questions: one sequence of ≥ 2 point indices per question (k may differ between
            questions: pairs and grids mix).
        chosen: per question, the picked position (0 … k−1) or None for "none preferred" / a
            tie (each option gets ``1/k`` of the label).

    Example:
        >>> data = Choices([[4, 2], [0, 1, 2, 3]], [1, None])
        >>> data.labels.tolist()
        [0.0, 1.0, 0.25, 0.25, 0.25, 0.25]
    """

    def __init__(self, questions, chosen):
        sizes = np.array([len(q) for q in questions], np.int64)
        if len(questions) != len(chosen) or (len(sizes) and sizes.min() < 2):
            raise ValueError("every question needs ≥ 2 options and one answer")
        self.index = (np.concatenate([np.asarray(q, np.int64) for q in questions])
                      if len(questions) else np.zeros(0, np.int64))          # [m] point of slot
        self.starts = np.cumsum(sizes) - sizes                               # [Q] first slot
        self.question = np.repeat(np.arange(len(sizes)), sizes)              # [m] question of slot
        labels = np.repeat(1.0 / np.maximum(sizes, 1), sizes)
        for q, c in enumerate(chosen):
            if c is not None:
                labels[self.starts[q]:self.starts[q] + sizes[q]] = 0.0
                labels[self.starts[q] + int(c)] = 1.0
        self.labels = labels

    def __len__(self):
        return len(self.starts)

    def segment_sum(self, values):
        """Sum of ``values`` [m, ...] over the options of each question → [Q, ...]."""
        return np.add.reduceat(values, self.starts, axis=0)

    def probabilities(self, f_slots):
        """``softmax`` of the slot utilities within each question → [m]."""
        top = np.maximum.reduceat(f_slots, self.starts)[self.question]
        e = np.exp(f_slots - top)
        return e / self.segment_sum(e)[self.question]


class _Likelihood:
    """Log-likelihood, its gradient and a curvature at slot utilities ``f``.

    With a lapse rate ε the person picks at random with probability ε:
    ``P(j) = (1 − ε) p_j + ε / k``. Its gradient is ``(y ∘ r) − (Σ y r) p`` with
    ``r_j = (1 − ε) p_j / P(j)`` (how much the answer is believed), and the curvature used is
    ``ω (diag(p) − p pᵀ)`` with ``ω = Σ_j y_j r_j`` per question: the Hessian of the answer
    weighted by how much it is believed (positive semi-definite, so Newton steps with a line
    search still climb; for ε = 0 it is the exact Hessian).
    """

    def __init__(self, data, f_slots, lapse):
        self.data, self.lapse = data, lapse
        self.p = data.probabilities(f_slots)
        sizes = np.diff(np.append(data.starts, len(self.p)))[data.question]
        picked = (1 - lapse) * self.p + lapse / sizes
        self.value = float(np.sum(data.labels * np.log(np.maximum(picked, 1e-300))))
        r = (1 - lapse) * self.p / np.maximum(picked, 1e-300)
        yr = data.labels * r
        self.believed = data.segment_sum(yr)                                  # ω [Q]
        self.gradient_slots = yr - self.believed[data.question] * self.p

    def curvature(self, n):
        """The curvature as a :class:`_Curvature` over ``n`` points."""
        return _Curvature(self.data, self.p, self.believed[self.data.question], n)


class _Curvature:
    """``R`` of ``W = Rᵀ R``, held as a dense [rows, n] matrix: every product with it is one
    matrix product, and ``R K Rᵀ`` costs two.

    A question's curvature ``ω (diag(p) − p pᵀ)`` has rank k − 1 (adding a constant to every
    option changes nothing), so it needs only k − 1 rows: the first k − 1 rows of the QR of the
    k rows ``√(ω p_s) (e_s − p)`` (their sum over options, with weights, is 0, so the last row of
    the triangular factor is 0). The solves are then over ``Σ (k − 1)`` rows, not ``Σ k``.
    """

    def __init__(self, data, p, weight=1.0, n=None):
        n = int(data.index.max(initial=-1)) + 1 if n is None else n
        weight = np.broadcast_to(weight, p.shape)
        sizes = np.diff(np.append(data.starts, len(p)))
        blocks = []
        for k in np.unique(sizes):          # questions of k options, all at once
            slots = data.starts[sizes == k][:, None] + np.arange(k)           # [Qk, k]
            P, root = p[slots], np.sqrt(weight[slots] * p[slots])
            rows = root[:, :, None] * (np.eye(k) - P[:, None, :])             # [Qk, k, k]
            U = np.linalg.qr(rows, mode="r")[:, :k - 1]                       # [Qk, k−1, k]
            block = np.zeros((U.shape[0] * (k - 1), n))
            row = np.arange(len(block)).reshape(-1, k - 1, 1)
            np.add.at(block, (np.broadcast_to(row, U.shape),
                              np.broadcast_to(data.index[slots][:, None, :], U.shape)), U)
            blocks.append(block)
        self.R = np.concatenate(blocks) if blocks else np.zeros((0, n))

    def apply(self, V):
        """``R V`` for point-indexed ``V`` [n, ...] → [rows, ...]."""
        return self.R @ V

    def apply_t(self, U):
        """``Rᵀ U`` for ``U`` [rows] → [n]."""
        return self.R.T @ U

    def sandwich(self, K):
        """``R K Rᵀ`` for the point kernel ``K`` [n, n] → [rows, rows]."""
        return (self.R @ K) @ self.R.T


class Posterior:
    """Laplace posterior of the latent utility; see :func:`fit`.

    Attributes:
        X: [n, D] training points; ``f``: [n] posterior mode; ``alpha``: [n] with ``f = K alpha``;
        lengthscale, scale: kernel hyperparameters; ``log_evidence``: Laplace log marginal likelihood.
    """

    def __init__(self, X, data, kernel, f, alpha, log_evidence, chol, curvature):
        self.X, self.data, self.kernel = X, data, kernel
        self.lengthscale, self.scale = kernel.lengthscale, kernel.scale
        self.f, self.alpha, self.log_evidence = f, alpha, log_evidence
        self._chol, self._curvature = chol, curvature

    def _project(self, Kx):
        """``L⁻¹ R Kxᵀ`` (``L Lᵀ = B``) for the cross-covariances ``Kx`` [P, n] → [m, P]."""
        RK = self._curvature.apply(Kx.T)
        return _solve_lower(self._chol, RK)

    def mean_and_projection(self, Z):
        """Posterior mean [P] at ``Z`` and the projection used by :meth:`covariance`."""
        Kx = self.kernel(Z, self.X)
        return Kx @ self.alpha, self._project(Kx)

    def variance(self, Z, V):
        """Posterior variance [P] at the rows of ``Z``, given their projection ``V`` from
        :meth:`mean_and_projection` (may be slightly negative by round-off)."""
        return self.kernel.diag(np.asarray(Z, np.float64)) - np.sum(V * V, 0)

    def predict(self, Z):
        """Posterior mean and standard deviation of the utility at the rows of ``Z``."""
        mean, V = self.mean_and_projection(Z)
        return mean, np.sqrt(np.maximum(self.variance(Z, V), 1e-12))

    def covariance(self, Z1, V1, Z2, V2):
        """Posterior covariance [P1, P2] between the rows of ``Z1`` and ``Z2`` (with projections)."""
        return self.kernel(Z1, Z2) - V1.T @ V2

    def mean_gradient(self, Z):
        """Posterior mean [P] and its gradient [P, D] with respect to the points ``Z``."""
        return self.kernel.weighted_sum_and_gradient(Z, self.X, self.alpha)


def _cholesky_b(curvature, K):
    """Lower Cholesky factor of ``B = I + R K Rᵀ`` (eigenvalues ≥ 1: always succeeds)."""
    from scipy.linalg import cholesky

    B = curvature.sandwich(K)
    B[np.diag_indices_from(B)] += 1.0
    return cholesky(B, lower=True, overwrite_a=True, check_finite=False) if len(B) else B


def _solve_lower(L, B):
    from scipy.linalg import solve_triangular

    return solve_triangular(L, B, lower=True, check_finite=False) if len(L) else B


def fit(X, data, lengthscale, scale, additive=0.0, lapse=0.0, start=None, iterations=50,
        tolerance=1e-9, additive_dims=None, f_tolerance=1e-7):
    """Laplace posterior of a preference GP for fixed hyperparameters.

    Args:
        X: [n, D] points (distinct, or nearly: nothing is inverted).
        data: the answers, a :class:`Choices` over indices of ``X``.
        lengthscale, scale: lengthscale ℓ and output scale s (utility units: a utility gap of
            1 means the better of two options is picked with probability σ(1) = 0.73).
        additive: weight ρ of the per-style additive part of the :class:`Kernel` (on the
            first ``additive_dims`` columns of ``X``: the weights, not appended features).
        lapse: probability ε that an answer is a random pick (Christiano et al. 2017 assume
            10 %): one stray answer then cannot overturn many consistent ones.
        start: optional [≤ n] ``alpha`` to start Newton from (a previous fit; zero-padded).
        tolerance, f_tolerance: Newton stops when the log posterior changes by less than
            ``tolerance · (1 + |value|)`` and no utility by more than ``f_tolerance``. The
            iteration converges linearly (the curvature is not the exact Hessian when
            ``lapse > 0``), about one digit per step.

    Returns:
        a :class:`Posterior`.
    """
    from scipy.linalg import cho_solve

    X = np.asarray(X, np.float64)
    n = len(X)
    kernel = Kernel(lengthscale, scale, additive, additive_dims)
    K = kernel(X, X)

    def objective(alpha):
        f = K @ alpha
        likelihood = _Likelihood(data, f[data.index], lapse)
        return likelihood.value - 0.5 * alpha @ f, f, likelihood

    alpha = np.zeros(n)
    value, f, likelihood = objective(alpha)
    if start is not None:
        warm = np.zeros(n)
        warm[:len(start)] = start[:n]
        trial = objective(warm)
        if trial[0] > value:
            alpha, (value, f, likelihood) = warm, trial
    for _ in range(iterations):
        curvature = likelihood.curvature(n)
        g = np.bincount(data.index, likelihood.gradient_slots, minlength=n)
        b = curvature.apply_t(curvature.apply(f)) + g          # W f + ∇ log-likelihood
        chol = _cholesky_b(curvature, K)
        Kb = K @ b
        new_alpha = b - curvature.apply_t(cho_solve((chol, True), curvature.apply(Kb),
                                                    check_finite=False))
        step = 1.0
        while True:   # backtracking keeps the Newton iteration monotone
            trial_alpha = alpha + step * (new_alpha - alpha)
            new_value, trial_f, trial_likelihood = objective(trial_alpha)
            if new_value >= value - 1e-12 or step < 1e-4:
                break
            step *= 0.5
        converged = (abs(new_value - value) < tolerance * (1 + abs(value))
                     and np.max(np.abs(trial_f - f), initial=0.0) < f_tolerance)
        alpha, f, value, likelihood = trial_alpha, trial_f, new_value, trial_likelihood
        if converged:
            break
    curvature = likelihood.curvature(n)
    chol = _cholesky_b(curvature, K)
    log_evidence = value - np.sum(np.log(np.diag(chol)))
    return Posterior(X, data, kernel, f, alpha, log_evidence, chol, curvature)


def fit_by_evidence(X, data, lengthscales, scales, additive=0.0, lapse=0.0, log_prior=None,
                    starts=None, additive_dims=None, around=None, **fit_options):
    """:func:`fit` on the (lengthscale, scale) grid; the one of highest evidence wins.

    ``log_prior(lengthscale, scale)`` optionally adds a log-prior to the evidence. ``starts``: an
    optional dict ``{(lengthscale, scale): alpha}`` of earlier modes; each fit starts from its
    own (a few Newton steps when one answer was added), and the dict is updated.
    ``fit_options`` (e.g. ``tolerance``) go to every :func:`fit`.

    ``around``: optional grid points ``[(lengthscale, scale), ...]`` to climb from instead of
    fitting every grid point: fit them, then from the best of them fit its neighbours (see
    :func:`grid_neighbours`), move to the best, and repeat until the best is where the climb
    stands. This finds the grid's best whenever the evidence has no second peak on the grid
    (or a start lies on the higher one).

    Example:
        >>> import numpy as np
        >>> X = np.eye(3)
        >>> data = Choices([[0, 1], [0, 2], [1, 2]], [0, 0, 0])
        >>> full = fit_by_evidence(X, data, (0.3, 1.0), (0.5, 1.0, 2.0))
        >>> climbed = fit_by_evidence(X, data, (0.3, 1.0), (0.5, 1.0, 2.0), around=[(0.3, 0.5)])
        >>> (climbed.lengthscale, climbed.scale) == (full.lengthscale, full.scale)
        True
    """
    scored = {}

    def score(point):
        if point not in scored:
            start = None if starts is None else starts.get(point)
            posterior = fit(X, data, *point, additive, lapse, start=start,
                            additive_dims=additive_dims, **fit_options)
            if starts is not None:
                starts[point] = posterior.alpha
            scored[point] = (posterior.log_evidence
                             + (log_prior(*point) if log_prior else 0.0), posterior)
        return scored[point][0]

    if around is None:
        points = [(lengthscale, scale) for lengthscale in lengthscales for scale in scales]
        return scored[max(points, key=score)][1]
    here = max([tuple(point) for point in around], key=score)
    while True:
        best = max([here] + grid_neighbours(here, lengthscales, scales), key=score)
        if best == here:
            return scored[here][1]
        here = best


def grid_neighbours(point, lengthscales, scales):
    """The grid points one step from ``point = (lengthscale, scale)`` in one or both
    hyperparameters (diagonals too: the evidence often has a ridge along a longer lengthscale
    with a larger scale, which steps in one hyperparameter alone go down from)."""
    i, j = list(lengthscales).index(point[0]), list(scales).index(point[1])
    return [(lengthscales[a], scales[b])
            for a in range(max(i - 1, 0), min(i + 2, len(lengthscales)))
            for b in range(max(j - 1, 0), min(j + 2, len(scales))) if (a, b) != (i, j)]


def expected_improvement(delta, sd):
    """``E[max(0, Δ)]`` for ``Δ ~ N(delta, sd²)`` (elementwise)."""
    sd = np.maximum(sd, 1e-12)
    z = delta / sd
    return delta * normal_cdf(z) + sd * normal_pdf(z)
