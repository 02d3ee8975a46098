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

    def __init__(self, X, first, second, lengthscale, scale, f, alpha, lam, log_evidence):
        self.X, self.first, self.second = X, first, second
        self.lengthscale, self.scale = lengthscale, scale
        self.f, self.alpha, self.log_evidence = f, alpha, log_evidence
        n, m = len(X), len(first)
        self._root = np.sqrt(lam)                                  # Λ^½ per comparison
        K = rbf(X, X, lengthscale, scale)
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
        Kx = rbf(np.asarray(Z, np.float64), self.X, self.lengthscale, self.scale)
        return Kx @ self.alpha, self._project(Kx)

    def predict(self, Z):
        """Posterior mean and standard deviation of the utility at the rows of ``Z``."""
        mean, V = self.mean_and_projection(Z)
        var = self.scale ** 2 - np.sum(V * V, 0)
        return mean, np.sqrt(np.maximum(var, 1e-12))

    def covariance(self, Z1, V1, Z2, V2):
        """Posterior covariance [P1, P2] between the rows of ``Z1`` and ``Z2`` (with projections)."""
        return rbf(np.asarray(Z1, np.float64), np.asarray(Z2, np.float64),
                   self.lengthscale, self.scale) - V1.T @ V2

    def mean_gradient(self, Z):
        """Posterior mean [P] and its gradient [P, D] with respect to the points ``Z``."""
        Z = np.asarray(Z, np.float64)
        Kx = rbf(Z, self.X, self.lengthscale, self.scale) * self.alpha[None, :]
        mean = Kx.sum(1)
        grad = (Kx @ self.X - mean[:, None] * Z) / self.lengthscale ** 2
        return mean, grad


def _dkd(K, first, second):
    """``D K Dᵀ`` for the difference matrix of the comparisons (two nonzeros per row)."""
    return (K[np.ix_(first, first)] - K[np.ix_(first, second)]
            - K[np.ix_(second, first)] + K[np.ix_(second, second)])


def fit(X, first, second, outcome, lengthscale, scale, iterations=50, tolerance=1e-8):
    """Laplace posterior of a preference GP for fixed hyperparameters.

    Args:
        X: [n, D] distinct points.
        first, second: [M] point indices of each comparison.
        outcome: [M] 1.0 when ``first`` won, 0.0 when ``second`` won, 0.5 for a tie.
        lengthscale, scale: RBF lengthscale ℓ and output scale s (utility units: a utility gap of
            1 means the better side wins with probability σ(1) = 0.73).

    Returns:
        a :class:`Posterior`.
    """
    X = np.asarray(X, np.float64)
    first = np.asarray(first, np.int64)
    second = np.asarray(second, np.int64)
    y = np.asarray(outcome, np.float64)
    n, m = len(X), len(first)
    K = rbf(X, X, lengthscale, scale)
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
    return Posterior(X, first, second, lengthscale, scale, f, alpha, lam, log_evidence)


def fit_by_evidence(X, first, second, outcome, lengthscales, scales, log_prior=None):
    """:func:`fit` on every (lengthscale, scale) of the grid; the one of highest evidence wins.

    ``log_prior(lengthscale, scale)`` optionally adds a log-prior to the evidence.
    """
    best = None
    for lengthscale in lengthscales:
        for scale in scales:
            posterior = fit(X, first, second, outcome, lengthscale, scale)
            score = posterior.log_evidence + (log_prior(lengthscale, scale) if log_prior else 0.0)
            if best is None or score > best[0]:
                best = (score, posterior)
    return best[1]


def expected_improvement(delta, sd):
    """``E[max(0, Δ)]`` for ``Δ ~ N(delta, sd²)`` (elementwise)."""
    sd = np.maximum(sd, 1e-12)
    z = delta / sd
    return delta * normal_cdf(z) + sd * normal_pdf(z)
