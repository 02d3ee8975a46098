"""The pairs learner as it was before k-option questions (commit 91770c0), kept as a baseline.

``benchmarks/preference.py`` reports it beside :class:`~nst_tf.preference.learner.PreferenceLearner`
and ``tests/test_preference_learner.py`` checks that the current learner is not worse than it on
any taste family. It is that commit's code, frozen (only renamed and trimmed to what the
benchmark calls: no files, no error messages of its own): a Bradley–Terry preference GP
(no lapses) with an RBF + per-style RBF kernel, the evidence searched over the whole
(lengthscale, scale) grid on each of the first 20 answers and every 10th after; questions
"incumbent against the mix of highest expected improvement over it", every 4th a random pair;
``best()`` the maximizer of the posterior mean.

Example:
    >>> import numpy as np
    >>> learner = BaselinePairsLearner(num_styles=4, seed=0)
    >>> a, b = learner.next_pair()
    >>> learner.add(a, b, 0)
    >>> learner.best().shape
    (4,)
"""

import numpy as np

from nst_tf.preference import gp, simplex


LENGTHSCALES = (0.15, 0.25, 0.4, 0.7)
SCALES = (0.5, 1.5, 4.0)
#: Weight of the per-style additive part of the kernel (:class:`~nst_tf.preference.gp.Kernel`).
ADDITIVE = 0.5
#: Every this many queries, a random pair from the pool (exploration away from the incumbent),
#: so the greedy expected-gain rule cannot stall around one recipe.
EXPLORE_EVERY = 4


class BaselinePairsLearner:
    """A reward model over style-weight vectors, learned from pairwise choices.

    Args:
        num_styles: N, the length of every weight vector.
        seed: seeds the query pool; the same seed and answers give the same pairs.
        init_pairs: how many random sparse pairs to show before the model picks pairs.
    """

    def __init__(self, num_styles, seed=0, init_pairs=3):
        self.num_styles = int(num_styles)
        self.seed = int(seed)
        self.init_pairs = int(init_pairs)
        self._rng = np.random.default_rng(self.seed)
        self._comparisons = []   # (a [N] float64, b [N] float64, preferred 0 | 1 | None)
        self._posterior = None
        self._best = None
        self._hyper = None       # (lengthscale, scale) of the last full evidence search

    def _embed(self, W):
        return W

    def add(self, a, b, preferred):
        """Record one comparison: ``preferred`` is 0 (``a`` won), 1 (``b`` won) or None (tie)."""
        a, b = (np.asarray(w, np.float64) / np.sum(w) for w in (a, b))
        self._comparisons.append((a, b, None if preferred is None else int(preferred)))
        self._posterior = None
        self._best = None

    def add_choice(self, options, chosen):
        """``add`` of a two-option question (the benchmark's interface)."""
        self.add(options[0], options[1], chosen)

    def next_query(self, k=2):
        """``next_pair`` as a [2, N] array (pairs only)."""
        if k != 2:
            raise ValueError("the baseline learner asks pairs only")
        return np.stack(self.next_pair())

    def random_query(self, k=2):
        return np.stack(self.random_pair())

    def __len__(self):
        return len(self._comparisons)

    @property
    def comparisons(self):
        """The recorded comparisons as a list of ``(a, b, preferred)``."""
        return [(a.copy(), b.copy(), p) for a, b, p in self._comparisons]

    # ---------------------------------------------------------------- model
    def _training_set(self):
        """Distinct points (near-duplicates merged, BoTorch PR #1754) and comparison indices."""
        keys, points, first, second, outcome = {}, [], [], [], []
        for a, b, preferred in self._comparisons:
            index = []
            for w in (a, b):
                key = tuple(np.round(w, 4))
                if key not in keys:
                    keys[key] = len(points)
                    points.append(w)
                index.append(keys[key])
            if index[0] == index[1]:
                continue  # a mix against itself carries no information
            first.append(index[0])
            second.append(index[1])
            outcome.append({0: 1.0, 1: 0.0, None: 0.5}[preferred])
        return np.array(points).reshape(-1, self.num_styles), first, second, outcome

    def posterior(self):
        """The fitted :class:`~nst_tf.preference.gp.Posterior`, or None before any comparison."""
        if self._posterior is None and self._comparisons:
            W, first, second, outcome = self._training_set()
            if not first:
                return None
            X = self._embed(W)
            n = len(self._comparisons)
            if self._hyper is None or n <= 20 or n % 10 == 0:
                # full evidence search; in between, the last hyperparameters are reused
                post = fit_by_evidence(X, first, second, outcome, LENGTHSCALES, SCALES,
                                          additive=ADDITIVE, log_prior=_log_prior)
                self._hyper = (post.lengthscale, post.scale)
            else:
                post = fit(X, first, second, outcome, *self._hyper, additive=ADDITIVE)
            self._posterior = post
        return self._posterior

    def predict(self, W):
        """Posterior mean and standard deviation [K] of the utility of the mixes ``W`` [K, N].

        Utilities are in Bradley–Terry units: a gap of 1 means the better mix wins 73 % of the
        time. Before any comparison the mean is 0 and the std the prior scale.
        """
        W = np.atleast_2d(np.asarray(W, np.float64))
        if W.ndim != 2 or W.shape[1] != self.num_styles:
            raise ValueError(f"predict expects [K, {self.num_styles}] weights, got shape "
                                  f"{W.shape}")
        post = self.posterior()
        if post is None:
            return np.zeros(len(W)), np.full(len(W), SCALES[1])
        return post.predict(self._embed(W))

    def _mean_and_gradient(self, W):
        post = self.posterior()
        mean, grad = post.mean_gradient(self._embed(W))
        return mean, grad

    def best(self):
        """The recommended mix: the maximizer of the posterior mean (float32 [N], sums to 1)."""
        if self._best is None:
            self._best = self._maximize()
        return self._best.astype(np.float32)

    def _maximize(self):
        if self.posterior() is None:
            return np.full(self.num_styles, 1.0 / self.num_styles)
        W, _, _, _ = self._training_set()
        rng = np.random.default_rng(self.seed + 7919 * len(self._comparisons))
        pool = np.concatenate([W, simplex.sparse_mixes(rng, self.num_styles, 300)])
        mean = self._mean_and_gradient(pool)[0]
        starts = pool[np.argsort(-mean)[:8]]
        X, values = simplex.ascend(self._mean_and_gradient, starts, iterations=40)
        w = X[np.argmax(values)]
        pruned = np.where(w < 0.02, 0.0, w)
        pruned /= pruned.sum()
        kept = self._mean_and_gradient(np.stack([w, pruned]))[0]
        return pruned if kept[1] >= kept[0] - 1e-3 else w

    # ---------------------------------------------------------------- queries
    def random_pair(self):
        """Two random mixes from the query pool's distribution (a baseline, or exploration)."""
        W = self._pool_draws(self._rng, 2)
        return W[0].astype(np.float32), W[1].astype(np.float32)

    def _pool_draws(self, rng, count):
        sparse = simplex.sparse_mixes(rng, self.num_styles, count)
        dense = simplex.dirichlet(rng, self.num_styles, count, 0.3)
        return np.where(rng.random(count)[:, None] < 0.75, sparse, dense)

    def next_pair(self):
        """The next two mixes to show, as float32 [N] vectors.

        Usually ``(incumbent, challenger)``; the first ``init_pairs`` pairs and every 4th pair
        (:data:`EXPLORE_EVERY`) are random pool pairs. A function of the data: asking again
        before ``add`` gives the same pair.
        """
        # the pool depends on the data only: asking twice gives the same pair, and a copy of the
        # learner with one more answer predicts the pair that will follow that answer
        rng = np.random.default_rng([self.seed, len(self._comparisons)])
        explore = (len(self._comparisons) - self.init_pairs) % EXPLORE_EVERY == EXPLORE_EVERY - 1
        if len(self._comparisons) < self.init_pairs or self.posterior() is None or explore:
            W = self._pool_draws(rng, 2)
            return W[0].astype(np.float32), W[1].astype(np.float32)
        incumbent = self.best().astype(np.float64)
        W, _, _, _ = self._training_set()
        pool = np.concatenate([
            np.eye(self.num_styles),
            simplex.sparse_mixes(rng, self.num_styles, 400),
            simplex.dirichlet(rng, self.num_styles, 100, 0.3),
            _neighbours(rng, incumbent, 300, self.num_styles),
            W,
        ])
        far = np.linalg.norm(pool - incumbent, axis=1) > 0.03
        pool = pool[far]
        post = self.posterior()
        mean, V = post.mean_and_projection(self._embed(pool))
        inc_mean, inc_V = post.mean_and_projection(self._embed(incumbent[None]))
        pool_var = post.scale ** 2 - np.sum(V * V, 0)
        inc_var = post.scale ** 2 - np.sum(inc_V * inc_V)
        cov = post.covariance(self._embed(pool), V, self._embed(incumbent[None]), inc_V)[:, 0]
        sd = np.sqrt(np.maximum(pool_var + inc_var - 2 * cov, 1e-12))
        gain = expected_improvement(mean - inc_mean[0], sd)
        challenger = pool[np.argmax(gain)]
        return incumbent.astype(np.float32), challenger.astype(np.float32)


def _log_prior(lengthscale, scale):
    """Weak log-normal priors: lengthscale around 0.4, output scale around 1.5."""
    return -0.5 * (np.log(lengthscale / 0.4) / 1.0) ** 2 - 0.5 * (np.log(scale / 1.5) / 1.0) ** 2


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
    return delta * gp.normal_cdf(z) + sd * gp.normal_pdf(z)


def _neighbours(rng, w, count, num_styles):
    """Mixes near ``w``: blends with a random style, a style dropped, weights jittered."""
    w = np.asarray(w, np.float64)
    out = []
    pure = np.eye(num_styles)
    third = max(count // 3, 1)
    t = rng.choice([0.1, 0.2, 0.3, 0.5], size=third)[:, None]
    out.append((1 - t) * w + t * pure[rng.integers(num_styles, size=third)])
    support = np.flatnonzero(w > 1e-3)
    drops = np.repeat(w[None], third, 0)
    if len(support) > 1:
        drops[np.arange(third), rng.choice(support, size=third)] = 0.0
    out.append(drops)
    jitter = w[None] * np.exp(0.5 * rng.standard_normal((count - 2 * third, num_styles)))
    out.append(jitter)
    W = np.concatenate(out)
    return W / np.maximum(W.sum(1, keepdims=True), 1e-12)
