"""Simulated people: hidden utilities over style mixes and a noisy labeler that answers questions.

A :class:`SimulatedLabeler` answers "which of these k mixes do you prefer" like a person with a
hidden utility ``u``: option ``i`` is picked with probability ``softmax(u / τ)_i`` (for a pair,
``P(a ≻ b) = σ((u(a) − u(b)) / τ)``: Bradley–Terry, the ``imitation`` library's synthetic
gatherer), plus lapses (a random answer with probability ``lapse``, Christiano et al. 2017) and
"none preferred" / a tie when all the options' utilities are within ``tie_band``. Pairs and
k-option questions use the same τ and lapse rate.

Utility families (``UTILITIES``), each a class with ``__call__(W) -> u`` for ``[K, N]`` mixes and
``optimum`` (the best mix), built from a seed:

* ``sparse``: a peak at a mix of 2–4 styles;
* ``two_peaks``: two such peaks on disjoint styles, the second 85 % as high;
* ``mud``: per-style tastes, a bonus for mixing a few styles and a penalty for mixing many;
* ``smooth``: the person likes a point in a 3-D "look" space (each style has a look; a mix's
  look is the weighted mean), the look of a mix of 3 styles, so many mixes are nearly as good;
* ``dense``: the same with the look of a dense blend of all styles (a Dirichlet(1) mix): a
  smooth optimum among the dense mixes, where almost every sparse mix is worse than a random one;
* ``few``: likes a few styles on their own and dislikes blends of many (the best is a pure style);
* ``multimodal``: three separate bumps in look space (at the looks of three 2–3-style mixes),
  of heights 1, 0.85 and 0.7.

Example:
    >>> import numpy as np
    >>> u = make_utility("sparse", num_styles=8, seed=0)
    >>> labeler = SimulatedLabeler(u, tau=0.05, lapse=0.0, seed=0)
    >>> random_mix = np.full(8, 1 / 8)
    >>> labeler(u.optimum, random_mix)  # 0: the first one won
    0
    >>> labeler.choose(np.stack([random_mix, u.optimum, random_mix]))
    1
"""

import numpy as np

from nst_tf.preference import simplex


class _Utility:
    def __init__(self, num_styles, seed):
        self.num_styles = num_styles
        self.rng = np.random.default_rng(seed)

    def _refine_optimum(self, starts):
        """Numerical optimum from many starts (for utilities without a closed form)."""
        X, values = simplex.ascend(self.value_and_gradient, starts, iterations=300, step=0.1)
        self.optimum = X[np.argmax(values)]


class SparsePeak(_Utility):
    """``u(w) = Σ_i min(w_i, w*_i)``: the share of the mix that follows a liked recipe ``w*``.

    ``w*`` mixes 2–4 styles (Dirichlet(3) weights). ``u`` = 1 − total-variation distance to
    ``w*``, so every liked style earns partial credit up to its share in the recipe, and the peak
    at ``w*`` is sharp. (A Gaussian bump ``exp(−|w − w*|²/2ρ²)`` makes the pure liked styles
    score below random mixes: a needle no strategy found in 80 noisy comparisons.)
    """

    def __init__(self, num_styles, seed):
        super().__init__(num_styles, seed)
        self.peaks = [self._peak(np.arange(num_styles))]
        self.heights = [1.0]
        self.optimum = self.peaks[0]

    def _peak(self, allowed):
        k = int(self.rng.integers(2, 5))
        support = self.rng.choice(allowed, size=k, replace=False)
        w = np.zeros(self.num_styles)
        w[support] = self.rng.dirichlet(np.full(k, 3.0))
        return w

    def __call__(self, W):
        W = np.atleast_2d(W)
        return np.max([h * np.minimum(W, p).sum(1) for h, p in zip(self.heights, self.peaks)],
                      axis=0)


class TwoPeaks(SparsePeak):
    """Two :class:`SparsePeak` recipes on disjoint styles; the second is 85 % as good."""

    def __init__(self, num_styles, seed):
        super().__init__(num_styles, seed)
        used = np.flatnonzero(self.peaks[0])
        self.peaks.append(self._peak(np.setdiff1d(np.arange(num_styles), used)))
        self.heights.append(0.85)


class Mud(_Utility):
    """``u(w) = aᵀw + β H(w) − γ H(w)²`` with ``H = −log Σw²`` (log effective number of styles).

    Three to five liked styles (``a`` ≈ 1) among disliked ones; mixing two or three styles earns a
    bonus, mixing many turns to mud.
    """

    def __init__(self, num_styles, seed, beta=0.6, gamma=0.3):
        super().__init__(num_styles, seed)
        self.a = 0.3 * self.rng.standard_normal(num_styles)
        liked = self.rng.choice(num_styles, size=int(self.rng.integers(3, 6)), replace=False)
        self.a[liked] = self.rng.uniform(0.7, 1.2, size=len(liked))
        self.beta, self.gamma = beta, gamma
        starts = np.concatenate([np.eye(num_styles), simplex.sparse_mixes(
            self.rng, num_styles, 200, sizes=(2, 3)), _top_blends(self.a)])
        self._refine_optimum(starts)

    def value_and_gradient(self, W):
        W = np.atleast_2d(W)
        n = np.sum(W * W, 1)
        H = -np.log(n)
        value = W @ self.a + self.beta * H - self.gamma * H ** 2
        grad = self.a[None] + ((self.beta - 2 * self.gamma * H) * (-2.0 / n))[:, None] * W
        return value, grad

    def __call__(self, W):
        return self.value_and_gradient(W)[0]


class Smooth(_Utility):
    """``u(w) = −|Fᵀw − t|²``: a liked point ``t`` in a 3-D look space; ``F`` [N, 3] style looks.

    ``t`` is the look of a mix of 3 styles (the optimum; other mixes with that look tie).
    """

    def __init__(self, num_styles, seed, dims=3):
        super().__init__(num_styles, seed)
        self.features = self.rng.standard_normal((num_styles, dims))
        self.optimum = self._liked_mix()
        self.target = self.optimum @ self.features

    def _liked_mix(self):
        return simplex.sparse_mixes(self.rng, self.num_styles, 1, sizes=(3,))[0]

    def __call__(self, W):
        return -np.sum((np.atleast_2d(W) @ self.features - self.target) ** 2, 1)


class Dense(Smooth):
    """:class:`Smooth` with ``t`` the look of a dense blend (a Dirichlet(1) mix of all styles)."""

    def _liked_mix(self):
        return simplex.dirichlet(self.rng, self.num_styles, 1, 1.0)[0]


class Few(_Utility):
    """``u(w) = aᵀw − β (1 − Σ w_i²)``: 2–4 liked styles (``a`` ∈ [0.6, 1]) among others
    (``a`` ~ N(0, 0.2²)), and a penalty (Gini impurity) that grows with the number of styles mixed.

    The optimum is the best liked style alone; a dense mix scores far below it.
    """

    def __init__(self, num_styles, seed, beta=0.5):
        super().__init__(num_styles, seed)
        self.a = 0.2 * self.rng.standard_normal(num_styles)
        liked = self.rng.choice(num_styles, size=int(self.rng.integers(2, 5)), replace=False)
        self.a[liked] = self.rng.uniform(0.6, 1.0, size=len(liked))
        self.beta = beta
        self.optimum = np.eye(num_styles)[np.argmax(self.a)]

    def __call__(self, W):
        W = np.atleast_2d(W)
        return W @ self.a - self.beta * (1.0 - np.sum(W * W, 1))


class Multimodal(_Utility):
    """``u(w) = max_j h_j exp(−|Fᵀw − t_j|² / 2ρ²)``: three separate bumps in a 3-D look space.

    A person who likes three different looks: the looks ``t_j`` of three random mixes of 2–3
    styles, with heights 1, 0.85 and 0.7; ρ = 0.4 (random mixes' looks lie within ~0.3 of the
    mean look, pure styles' ~1.6 from it). Bumps at a pure style's look or at the mean look were
    tried first: the one at the mean look holds most random mixes in its basin and the one at a
    pure style is a needle, so the family measured luck, not learning.
    """

    def __init__(self, num_styles, seed, dims=3, rho=0.4):
        super().__init__(num_styles, seed)
        self.features = self.rng.standard_normal((num_styles, dims))
        centres = simplex.sparse_mixes(self.rng, num_styles, 3, sizes=(2, 3))
        self.heights = np.array([1.0, 0.85, 0.7])
        self.targets = centres @ self.features
        self.rho = rho
        self.optimum = centres[0]

    def __call__(self, W):
        looks = np.atleast_2d(W) @ self.features
        sq = np.sum((looks[:, None, :] - self.targets[None]) ** 2, -1)
        return np.max(self.heights[None] * np.exp(-sq / (2 * self.rho ** 2)), 1)


def _top_blends(a, top=4):
    best = np.argsort(-a)[:top]
    out = []
    for i in best:
        for j in best:
            if i < j:
                w = np.zeros(len(a))
                w[[i, j]] = 0.5
                out.append(w)
    return np.array(out)


UTILITIES = {"sparse": SparsePeak, "two_peaks": TwoPeaks, "mud": Mud, "smooth": Smooth,
             "dense": Dense, "few": Few, "multimodal": Multimodal}


def make_utility(family, num_styles, seed):
    """A hidden utility of the given family (see the module docstring)."""
    if family not in UTILITIES:
        raise ValueError(f"unknown utility family {family!r}; known: {sorted(UTILITIES)}")
    return UTILITIES[family](num_styles, seed)


def random_mixes_mean(utility, num_styles, seed=0, count=20000):
    """Mean utility of uniformly random mixes (Dirichlet(1)): the 0 of the normalized score."""
    rng = np.random.default_rng(seed)
    return float(np.mean(utility(simplex.dirichlet(rng, num_styles, count, 1.0))))


def calibrate_tau(utility, num_styles, error_rate=0.2, seed=0, count=20000, top=0.01):
    """τ at which a labeler errs with probability ``error_rate`` on close pairs.

    Close pairs are pairs among the top ``top`` fraction of random mixes (qEUBO's protocol; the
    mixes are sparse and Dirichlet(0.3) ones, the kind a query strategy shows).
    """
    rng = np.random.default_rng(seed)
    W = np.concatenate([simplex.sparse_mixes(rng, num_styles, count // 2),
                        simplex.dirichlet(rng, num_styles, count - count // 2, 0.3)])
    u = np.sort(utility(W))[-max(int(top * len(W)), 2):]
    gaps = np.abs(u[:, None] - u[None, :])[np.triu_indices(len(u), 1)]
    gaps = gaps[gaps > 1e-9 * (np.abs(u).max() + 1)]   # equal utilities have no wrong answer
    low, high = 1e-9, 1e3 * (gaps.max() + 1e-9)
    for _ in range(100):  # bisection on log τ: the error rate grows with τ
        tau = np.sqrt(low * high)
        error = np.mean(0.5 * (1.0 - np.tanh(0.5 * gaps / tau)))
        low, high = (tau, high) if error < error_rate else (low, tau)
    return float(np.sqrt(low * high))


class SimulatedLabeler:
    """Answers questions like a person with hidden ``utility``.

    ``labeler(a, b)`` answers a pair: 0 when ``a`` wins, 1 when ``b`` wins, None for a tie
    (``|u(a) − u(b)| < tie_band``). ``labeler.choose(options)`` answers a k-option question: the
    index of the picked option, or None ("none preferred") when all utilities are within
    ``tie_band``. With probability ``lapse`` the answer is a uniformly random option instead.
    """

    def __init__(self, utility, tau, lapse=0.1, tie_band=0.0, seed=0):
        self.utility, self.tau, self.lapse, self.tie_band = utility, tau, lapse, tie_band
        self.rng = np.random.default_rng(seed)

    def __call__(self, a, b):
        return self.choose(np.stack([a, b]))

    def choose(self, options):
        u = self.utility(np.asarray(options, np.float64))
        if self.rng.random() < self.lapse:
            return int(self.rng.integers(len(u)))
        if u.max() - u.min() < self.tie_band:
            return None
        p = np.exp((u - u.max()) / self.tau)
        cumulative = np.cumsum(p / p.sum())
        return int(min(np.searchsorted(cumulative, self.rng.random(), side="right"), len(u) - 1))
