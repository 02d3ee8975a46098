"""Learn which style mix a person likes from pairwise choices, and pick the next pair to show.

:class:`PreferenceLearner` keeps every comparison, fits a preference Gaussian process
(:mod:`nst_tf.preference.gp`) over weight vectors, and

* ``next_pair()`` shows the current best mix (the incumbent) against the candidate with the
  highest expected gain over it, ``E[max(0, u(x) − u(x⁺))]`` under the joint posterior (qEUBO
  with q = 2 and the previous winner in one slot, Astudillo et al. 2023), chosen from a pool of
  sparse 2–4-style mixes, pure styles, Dirichlet(0.3) mixes and neighbours of the incumbent;
  every 4th pair is a random pair from that pool instead, so the greedy rule cannot stall around
  one recipe (measured: it otherwise stops improving on sparse-recipe utilities);
* ``best()`` maximizes the posterior mean over the simplex (projected gradient ascent from the
  best pool and observed points, then drops weights < 2 % when that costs nothing).

A GP on the weights (not a linear Bradley–Terry score on ``w``, which always peaks at one pure
style) can express "styles 3 and 7, 60/40".

Example:
    >>> import numpy as np
    >>> learner = PreferenceLearner(num_styles=4, seed=0)
    >>> liked = np.array([0.5, 0.5, 0.0, 0.0])
    >>> for _ in range(12):
    ...     a, b = learner.next_pair()
    ...     # a person who likes the 50/50 mix of styles 0 and 1
    ...     learner.add(a, b, 0 if np.abs(a - liked).sum() < np.abs(b - liked).sum() else 1)
    >>> w = learner.best()
    >>> bool(w[0] + w[1] > 0.8)
    True
"""

import json
import os

import numpy as np

from nst_tf.errors import ConfigError, NSTError
from nst_tf.io import atomic_write
from nst_tf.preference import gp, simplex

FORMAT = "nst_tf.preference/1"

#: Hyperparameter grid searched by Laplace evidence. The lengthscale floor (0.15 on the simplex,
#: where two pure styles are √2 apart) stops the collapse BoTorch PR #1425 fixed; output scales
#: from 0.5 (a noisy person: utility gaps rarely beat σ(1)) to 4 (a consistent one).
LENGTHSCALES = (0.15, 0.25, 0.4, 0.7)
SCALES = (0.5, 1.5, 4.0)
#: Weight of the per-style additive part of the kernel (:class:`~nst_tf.preference.gp.Kernel`).
ADDITIVE = 0.5
#: Every this many queries, a random pair from the pool (exploration away from the incumbent),
#: so the greedy expected-gain rule cannot stall around one recipe.
EXPLORE_EVERY = 4


class PreferenceError(NSTError, ValueError):
    """A weight vector, choice or saved learner file that cannot be used."""


class PreferenceLearner:
    """A reward model over style-weight vectors, learned from pairwise choices.

    Args:
        num_styles: N, the length of every weight vector.
        seed: seeds the query pool; the same seed and answers give the same pairs.
        features: optional ``[N, D]`` description of each style (e.g. its CIN gamma/beta,
            reduced); the kernel then also compares the mixed features, so styles that look alike
            share what was learned.
        init_pairs: how many random sparse pairs to show before the model picks pairs.

    ``add`` takes pairs from anywhere (imported data, random pairs); weight vectors must be
    non-negative with a positive sum and are normalized to sum 1.
    """

    def __init__(self, num_styles, seed=0, features=None, init_pairs=3):
        if int(num_styles) != num_styles or num_styles < 2:
            raise ConfigError(f"num_styles must be an integer >= 2, got {num_styles!r}")
        self.num_styles = int(num_styles)
        self.seed = int(seed)
        self.init_pairs = int(init_pairs)
        self.features = None if features is None else self._check_features(features)
        self._embedding = self._make_embedding(self.features)
        self._rng = np.random.default_rng(self.seed)
        self._comparisons = []   # (a [N] float64, b [N] float64, preferred 0 | 1 | None)
        self._posterior = None
        self._best = None
        self._hyper = None       # (lengthscale, scale) of the last full evidence search

    # ---------------------------------------------------------------- data
    def _check_features(self, features):
        F = np.asarray(features, np.float64)
        if F.ndim != 2 or F.shape[0] != self.num_styles or not np.all(np.isfinite(F)):
            raise ConfigError(f"features must be a finite [{self.num_styles}, D] array, "
                              f"got shape {F.shape}")
        return F

    def _make_embedding(self, F):
        """``E`` with kernel inputs ``x = w E``: the weights, plus the mixed standardized features."""
        if F is None:
            return None
        Z = F - F.mean(0)
        Z = Z / (np.linalg.norm(Z, axis=1).mean() + 1e-12)   # a pure style's look at distance ~1
        return np.concatenate([np.eye(self.num_styles), Z], axis=1)

    def _embed(self, W):
        return W if self._embedding is None else W @ self._embedding

    def _weights(self, w, name):
        w = np.asarray(w, np.float64).reshape(-1)
        if w.shape != (self.num_styles,):
            raise PreferenceError(f"{name} must have {self.num_styles} weights, got shape "
                                  f"{np.shape(w)}")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise PreferenceError(f"{name} must be finite, non-negative and not all zero, got {w}")
        return w / w.sum()

    def add(self, a, b, preferred):
        """Record one comparison: ``preferred`` is 0 (``a`` won), 1 (``b`` won) or None (tie)."""
        if preferred is not None and (isinstance(preferred, bool) or preferred not in (0, 1)):
            raise PreferenceError(f"preferred must be 0 (a won), 1 (b won) or None (tie), "
                                  f"got {preferred!r}")
        a, b = self._weights(a, "a"), self._weights(b, "b")
        self._comparisons.append((a, b, None if preferred is None else int(preferred)))
        self._posterior = None
        self._best = None

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
                post = gp.fit_by_evidence(X, first, second, outcome, LENGTHSCALES, SCALES,
                                          additive=ADDITIVE, log_prior=_log_prior)
                self._hyper = (post.lengthscale, post.scale)
            else:
                post = gp.fit(X, first, second, outcome, *self._hyper, additive=ADDITIVE)
            self._posterior = post
        return self._posterior

    def predict(self, W):
        """Posterior mean and standard deviation [K] of the utility of the mixes ``W`` [K, N].

        Utilities are in Bradley–Terry units: a gap of 1 means the better mix wins 73 % of the
        time. Before any comparison the mean is 0 and the std the prior scale.
        """
        W = np.atleast_2d(np.asarray(W, np.float64))
        if W.ndim != 2 or W.shape[1] != self.num_styles:
            raise PreferenceError(f"predict expects [K, {self.num_styles}] weights, got shape "
                                  f"{W.shape}")
        post = self.posterior()
        if post is None:
            return np.zeros(len(W)), np.full(len(W), SCALES[1])
        return post.predict(self._embed(W))

    def _mean_and_gradient(self, W):
        post = self.posterior()
        mean, grad = post.mean_gradient(self._embed(W))
        return mean, grad if self._embedding is None else grad @ self._embedding.T

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
            simplex.neighbours(rng, incumbent, 300, self.num_styles),
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
        gain = gp.expected_improvement(mean - inc_mean[0], sd)
        challenger = pool[np.argmax(gain)]
        return incumbent.astype(np.float32), challenger.astype(np.float32)

    def copy(self):
        """An independent learner with the same settings and comparisons."""
        other = PreferenceLearner(self.num_styles, self.seed, self.features, self.init_pairs)
        other._comparisons = list(self._comparisons)
        other._hyper = self._hyper
        other._rng.bit_generator.state = self._rng.bit_generator.state
        return other

    # ---------------------------------------------------------------- files
    def save(self, path):
        """Write the settings and every comparison as JSON (atomically; never pickle)."""
        state = {
            "format": FORMAT,
            "num_styles": self.num_styles,
            "seed": self.seed,
            "init_pairs": self.init_pairs,
            "features": None if self.features is None else self.features.tolist(),
            "comparisons": [{"a": a.tolist(), "b": b.tolist(), "preferred": p}
                            for a, b, p in self._comparisons],
            "rng": self._rng.bit_generator.state,
        }
        with atomic_write(path, "w") as f:
            json.dump(state, f)

    @classmethod
    def load(cls, path):
        """A learner saved by :meth:`save`, with the same comparisons and the same next pairs."""
        path = os.fspath(path)
        try:
            with open(path) as f:
                state = json.load(f)
        except (OSError, ValueError) as e:
            raise PreferenceError(f"cannot read preference learner file {path}: {e}") from e
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise PreferenceError(f"{path} is not a saved PreferenceLearner ({FORMAT})")
        try:
            learner = cls(state["num_styles"], seed=state["seed"], features=state["features"],
                          init_pairs=state.get("init_pairs", 3))
            for row in state["comparisons"]:
                learner.add(row["a"], row["b"], row["preferred"])
            learner._rng.bit_generator.state = state["rng"]
        except (KeyError, TypeError, ValueError) as e:
            raise PreferenceError(f"{path}: damaged preference learner file ({e})") from e
        return learner


def _log_prior(lengthscale, scale):
    """Weak log-normal priors: lengthscale around 0.4, output scale around 1.5."""
    return -0.5 * (np.log(lengthscale / 0.4) / 1.0) ** 2 - 0.5 * (np.log(scale / 1.5) / 1.0) ** 2
