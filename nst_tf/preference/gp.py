"""A preference Gaussian process in NumPy: Laplace posterior of a latent utility from duels.

Model (Chu & Ghahramani 2005, with a Bradley–Terry likelihood as in BoTorch's ``PairwiseGP``):

* latent utility ``f ~ GP(0, k)`` with ``k(x, x') = s² exp(-|x - x'|² / (2 ℓ²))``;
* a comparison of points ``i`` and ``j`` with outcome ``y`` (1: i won, 0: j won, 0.5: tie) has
  log-likelihood ``y log σ(f_i - f_j) + (1 - y) log σ(f_j - f_i)``: a tie counts as half a win
  for each side, which keeps the likelihood log-concave.

The posterior mode is found by Newton's method written in *comparison space*: with
``D`` the ``[M, n]`` difference matrix and ``Λ = diag(σ'(d))``, ``W = DᵀΛD`` and every solve goes
through ``B = I + Λ^½ D K Dᵀ Λ^½``, whose eigenvalues are ≥ 1. ``K`` is never inverted, so
near-duplicate points or a large lengthscale (a nearly singular ``K``, BoTorch PR #1754/#1755)
cannot break the fit. The lengthscale and output scale are picked from a grid by the Laplace
evidence; the grid has a floor, so the lengthscale cannot collapse to 0 (BoTorch PR #1425), and
output scales up to "noisy person" levels (PR #1460).

Example:
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    >>> posterior = fit(X, [0, 2], [1, 1], [1.0, 1.0], lengthscale=0.5, scale=1.0)
    >>> mean, std = posterior.predict(X)
    >>> int(np.argmax(mean))  # point 0 beat 1, point 2 beat 1: 1 is the worst
    0
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
    sq = (np.sum(A * A, 1)[:, None] + np.sum(B * B, 1)[None, :] - 2.0 * A @ B.T)
    return scale ** 2 * np.exp(-np.maximum(sq, 0.0) / (2.0 * lengthscale ** 2))


class Kernel:
    """``k(x, y) = s² [(1 − ρ) exp(−|x − y|² / 2ℓ²) + ρ · mean_i exp(−(x_i − y_i)² / 2(ℓ/3)²)]``.

    The second (additive) part compares each style's share on its own: "a little more of style
    7" is learned once and applies to every mix, which suits utilities that add up per style
    (``ρ = 0`` is the plain RBF). ``ℓ/3``: one coordinate moves about a third as far as the whole
    vector between two sparse mixes.

    Example:
        >>> import numpy as np
        >>> k = Kernel(lengthscale=0.5, scale=2.0, additive=0.5)
        >>> float(k(np.ones((1, 3)) / 3, np.ones((1, 3)) / 3)[0, 0])
        4.0
    """

    def __init__(self, lengthscale, scale, additive=0.0):
        self.lengthscale, self.scale, self.additive = float(lengthscale), float(scale), additive

    def _parts(self, A, B):
        full = rbf(A, B, self.lengthscale, 1.0) if self.additive < 1 else 0.0
        if not self.additive:
            return full, None
        la = self.lengthscale / 3.0
        per_style = np.exp(-np.square(A[:, None, :] - B[None, :, :]) / (2 * la * la))
        return full, per_style

    def __call__(self, A, B):
        A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
        full, per_style = self._parts(A, B)
        if per_style is None:
            return self.scale ** 2 * full
        return self.scale ** 2 * ((1 - self.additive) * full + self.additive * per_style.mean(2))

    def weighted_sum_and_gradient(self, Z, X, weights):
        """``Σ_j weights_j k(z, x_j)`` for each row z of ``Z`` [P, D] and its gradient [P, D]."""
        Z, X = np.asarray(Z, np.float64), np.asarray(X, np.float64)
        full, per_style = self._parts(Z, X)
        s2 = self.scale ** 2
        value, grad = np.zeros(len(Z)), np.zeros(Z.shape)
        if self.additive < 1:
            Kw = (1 - self.additive) * s2 * full * weights[None, :]
            value += Kw.sum(1)
            grad += (Kw @ X - Kw.sum(1)[:, None] * Z) / self.lengthscale ** 2
        if per_style is not None:
            la = self.lengthscale / 3.0
            E = per_style * (self.additive * s2 / Z.shape[1]) * weights[None, :, None]
            value += E.sum((1, 2))
            grad += np.einsum("pnd,pnd->pd", E, X[None, :, :] - Z[:, None, :]) / la ** 2
        return value, grad


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class Posterior:
    """Laplace posterior of the latent utility; see :func:`fit`.

    Attributes:
        X: [n, D] training points; ``f``: [n] posterior mode; ``alpha``: [n] with ``f = K alpha``;
        lengthscale, scale: kernel hyperparameters; ``log_evidence``: Laplace log marginal likelihood.
    """

    def __init__(self, X, first, second, kernel, f, alpha, lam, log_evidence):
        self.X, self.first, self.second = X, first, second
        self.kernel = kernel
        self.lengthscale, self.scale = kernel.lengthscale, kernel.scale
        self.f, self.alpha, self.log_evidence = f, alpha, log_evidence
        n, m = len(X), len(first)
        self._root = np.sqrt(lam)                                  # Λ^½ per comparison
        K = kernel(X, X)
        DKD = _dkd(K, first, second)
        B = np.eye(m) + self._root[:, None] * DKD * self._root[None, :]
        self._chol = np.linalg.cholesky(B)
        self._n = n

    def _project(self, Kx):
        """``C⁻¹ Λ^½ D Kxᵀ`` for the cross-covariances ``Kx`` [P, n] → [M, P]."""
        DK = (Kx[:, self.first] - Kx[:, self.second]).T * self._root[:, None]
        return np.linalg.solve(self._chol, DK) if len(self.first) else DK

    def mean_and_projection(self, Z):
        """Posterior mean [P] at ``Z`` and the projection used by :meth:`covariance`."""
        Kx = self.kernel(Z, self.X)
        return Kx @ self.alpha, self._project(Kx)

    def predict(self, Z):
        """Posterior mean and standard deviation of the utility at the rows of ``Z``."""
        mean, V = self.mean_and_projection(Z)
        var = self.scale ** 2 - np.sum(V * V, 0)
        return mean, np.sqrt(np.maximum(var, 1e-12))

    def covariance(self, Z1, V1, Z2, V2):
        """Posterior covariance [P1, P2] between the rows of ``Z1`` and ``Z2`` (with projections)."""
        return self.kernel(Z1, Z2) - V1.T @ V2

    def mean_gradient(self, Z):
        """Posterior mean [P] and its gradient [P, D] with respect to the points ``Z``."""
        return self.kernel.weighted_sum_and_gradient(Z, self.X, self.alpha)


def _dkd(K, first, second):
    """``D K Dᵀ`` for the difference matrix of the comparisons (two nonzeros per row)."""
    return (K[np.ix_(first, first)] - K[np.ix_(first, second)]
            - K[np.ix_(second, first)] + K[np.ix_(second, second)])


def fit(X, first, second, outcome, lengthscale, scale, additive=0.0, iterations=50,
        tolerance=1e-8):
    """Laplace posterior of a preference GP for fixed hyperparameters.

    Args:
        X: [n, D] distinct points.
        first, second: [M] point indices of each comparison.
        outcome: [M] 1.0 when ``first`` won, 0.0 when ``second`` won, 0.5 for a tie.
        lengthscale, scale: lengthscale ℓ and output scale s (utility units: a utility gap of
            1 means the better side wins with probability σ(1) = 0.73).
        additive: weight ρ of the per-style additive part of the :class:`Kernel`.

    Returns:
        a :class:`Posterior`.
    """
    X = np.asarray(X, np.float64)
    first = np.asarray(first, np.int64)
    second = np.asarray(second, np.int64)
    y = np.asarray(outcome, np.float64)
    n, m = len(X), len(first)
    kernel = Kernel(lengthscale, scale, additive)
    K = kernel(X, X)
    DKD = _dkd(K, first, second)
    alpha = np.zeros(n)
    f = np.zeros(n)

    def objective(f, alpha):
        d = f[first] - f[second]
        return np.sum(y * _log_sigmoid(d) + (1 - y) * _log_sigmoid(-d)) - 0.5 * alpha @ f

    value = objective(f, alpha)
    for _ in range(iterations):
        d = f[first] - f[second]
        p = _sigmoid(d)
        lam = np.maximum(p * (1 - p), 1e-12)
        g = np.zeros(n)
        np.add.at(g, first, y - p)
        np.add.at(g, second, p - y)
        # b = W f + g; Newton: alpha_new = b - Dᵀ Λ^½ B⁻¹ Λ^½ D K b
        Df = lam * d
        b = g.copy()
        np.add.at(b, first, Df)
        np.add.at(b, second, -Df)
        root = np.sqrt(lam)
        B = np.eye(m) + root[:, None] * DKD * root[None, :]
        Kb = K @ b
        r = root * np.linalg.solve(B, root * (Kb[first] - Kb[second]))
        new_alpha = b.copy()
        np.add.at(new_alpha, first, -r)
        np.add.at(new_alpha, second, r)
        step, new_value = 1.0, None
        while step > 1e-4:  # backtracking keeps the Newton iteration monotone
            trial_alpha = alpha + step * (new_alpha - alpha)
            trial_f = K @ trial_alpha
            new_value = objective(trial_f, trial_alpha)
            if new_value >= value - 1e-12:
                break
            step *= 0.5
        converged = abs(new_value - value) < tolerance * (1 + abs(value))
        alpha, f, value = trial_alpha, trial_f, new_value
        if converged:
            break
    d = f[first] - f[second]
    p = _sigmoid(d)
    lam = np.maximum(p * (1 - p), 1e-12)
    root = np.sqrt(lam)
    B = np.eye(m) + root[:, None] * DKD * root[None, :]
    log_det = 2.0 * np.sum(np.log(np.diag(np.linalg.cholesky(B)))) if m else 0.0
    log_evidence = value - 0.5 * log_det
    return Posterior(X, first, second, kernel, f, alpha, lam, log_evidence)


def fit_by_evidence(X, first, second, outcome, lengthscales, scales, additive=0.0,
                    log_prior=None):
    """:func:`fit` on every (lengthscale, scale) of the grid; the one of highest evidence wins.

    ``log_prior(lengthscale, scale)`` optionally adds a log-prior to the evidence.
    """
    best = None
    for lengthscale in lengthscales:
        for scale in scales:
            posterior = fit(X, first, second, outcome, lengthscale, scale, additive)
            score = posterior.log_evidence + (log_prior(lengthscale, scale) if log_prior else 0.0)
            if best is None or score > best[0]:
                best = (score, posterior)
    return best[1]


def expected_improvement(delta, sd):
    """``E[max(0, Δ)]`` for ``Δ ~ N(delta, sd²)`` (elementwise)."""
    sd = np.maximum(sd, 1e-12)
    z = delta / sd
    return delta * normal_cdf(z) + sd * normal_pdf(z)
