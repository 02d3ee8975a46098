"""Learn which style mix a person likes from k-option questions, and pick the next question.

:class:`PreferenceLearner` keeps every answer, fits a preference Gaussian process
(:mod:`nst_tf.preference.gp`: first-choice Plackett–Luce likelihood, so a pair is the k = 2
case) over weight vectors, and

* ``next_query(k)`` picks k mixes to show: the current recommendation (the incumbent) plus the
  mixes that maximize the expected utility of the best option shown, ``E[max_i u(x_i)]``
  (qEUBO, :mod:`nst_tf.preference.acquisition`), from a pool that serves every kind of taste:
  dense Dirichlet(1) mixes, sparse mixes of 1–4 styles, local moves around the incumbent and
  the mixes already shown;
* ``best()`` is cautious: the mix with the highest posterior mean minus one standard deviation
  among the mixes shown and small moves around the best of them, never one whose posterior mean
  is below what a uniformly random mix (Dirichlet(1)) is expected to give.

A GP on the weights (not a linear Bradley–Terry score on ``w``, which always peaks at one pure
style) can express "styles 3 and 7, 60/40".

Example:
    >>> import numpy as np
    >>> learner = PreferenceLearner(num_styles=4, seed=0)
    >>> liked = np.array([0.5, 0.5, 0.0, 0.0])
    >>> for _ in range(10):
    ...     options = learner.next_query(k=4)
    ...     # a person who likes the 50/50 mix of styles 0 and 1
    ...     learner.add_choice(options, int(np.argmin(np.abs(options - liked).sum(1))))
    >>> w = learner.best()
    >>> bool(w[0] + w[1] > 0.8)
    True
"""

import json
import os

import numpy as np

from nst_tf.errors import ConfigError, NSTError
from nst_tf.io import atomic_write
from nst_tf.preference import acquisition, gp, simplex

FORMAT = "nst_tf.preference/2"
#: Files written before k-option questions (pairs only); :meth:`PreferenceLearner.load` reads them.
FORMAT_PAIRS = "nst_tf.preference/1"

#: Hyperparameter grid searched by Laplace evidence. The lengthscale floor (0.15 on the simplex,
#: where two pure styles are √2 apart) stops the collapse BoTorch PR #1425 fixed; output scales
#: from 0.5 (a noisy person: utility gaps rarely beat σ(1)) to 2 (measured: with 4 in the grid
#: the evidence sometimes picked a "consistent person" whose one stray pick of four then moved
#: the recommendation; worst of 84 best-of-4 runs at 40 clicks 0.24 with it, 0.51 without).
LENGTHSCALES = (0.15, 0.25, 0.4, 0.7)
SCALES = (0.5, 1.0, 2.0)
#: Weight of the per-style additive part of the kernel (:class:`~nst_tf.preference.gp.Kernel`).
ADDITIVE = 0.5
#: Probability that an answer is a random pick (a slip), as Christiano et al. (2017) assume.
LAPSE = 0.1
#: Every this many answers the hyperparameters are searched again: after the first
#: :data:`SEARCH_UNTIL` answers a local search that climbs the grid from the last
#: hyperparameters and from one more grid point, taken in turn (so a second peak of the
#: evidence is found within ``len(grid)`` searches): the last point, its neighbours (up to 8)
#: and that one, more only when the climb moves. In between, the last hyperparameters are
#: refitted from the previous mode (a few Newton steps).
SEARCH_EVERY = 5
#: The evidence search fits every grid point on each of the first this many answers.
SEARCH_UNTIL = 10
#: Newton's stopping rule for the learner's fits (:func:`~nst_tf.preference.gp.fit`): log
#: posterior to 1e-7 relative, utilities to 1e-5 (measured at 100 answers: evidence within
#: 3e-6 and utilities within 6e-6 of a fit to convergence, a third fewer Newton steps than
#: 1e-9 / 1e-7; the recommendation compares utilities that differ by 1e-2 and more).
FIT_TOLERANCE = {"tolerance": 1e-7, "f_tolerance": 1e-5}
#: Query pool sizes per kind (see :meth:`PreferenceLearner.next_query`).
POOL_DENSE, POOL_SPARSE, POOL_LOCAL = 300, 300, 300
#: Candidates kept for the joint Monte Carlo of qEUBO, and its samples.
CANDIDATES, SAMPLES = 120, 512
#: Show the incumbent (the current recommendation) as one option of every question.
INCUMBENT = True
#: Options of one question differ by at least this L1 distance (twice the share of the mix
#: that changes), so the person sees a difference.
MIN_GAP = 0.2
#: Per option after the incumbent, the pool kinds it may come from: "global" (dense and sparse
#: mixes, pure styles) or "all" (also local moves and mixes shown); then "all" again.
SLOTS = ("all", "global")
#: For pairs, every this many questions is a random one (0: never), as the pairs learner before
#: k-option questions did (:mod:`nst_tf.preference.baseline`).
EXPLORE_PAIRS_EVERY = 0
#: ``best()`` maximizes mean − CAUTION · std.
CAUTION = 1.0
#: Dirichlet(1) mixes over which :meth:`PreferenceLearner.random_level` averages.
RANDOM_MIXES = 4096


class PreferenceError(NSTError, ValueError):
    """A weight vector, choice or saved learner file that cannot be used."""


class PreferenceLearner:
    """A reward model over style-weight vectors, learned from the person's choices.

    Args:
        num_styles: N, the length of every weight vector.
        seed: seeds the query pool; the same seed and answers give the same questions.
        features: optional ``[N, D]`` description of each style (e.g. its CIN gamma/beta,
            reduced); the kernel then also compares the mixed features, so styles that look alike
            share what was learned.
        init_pairs: how many random questions to ask before the model picks them.

    ``add_choice`` (and ``add`` for pairs) take answers from anywhere (imported data, random
    questions); weight vectors must be non-negative with a positive sum and are normalized to
    sum 1.
    """

    def __init__(self, num_styles, seed=0, features=None, init_pairs=2):
        if int(num_styles) < 2:
            raise ConfigError(f"num_styles must be at least 2, got {num_styles}")
        self.num_styles = int(num_styles)
        self.seed = int(seed)
        self.init_pairs = int(init_pairs)
        self.features = None if features is None else self._check_features(features)
        self._embedding = self._make_embedding(self.features)
        self._rng = np.random.default_rng(self.seed)
        self._answers = []       # (options [k, N] float64, chosen int | None)
        self._points = {}        # rounded mix -> index into self._W
        self._W = []             # distinct mixes seen
        self._questions = []     # per answer, indices into self._W
        self._posterior = None
        self._cache = {}         # per data size: best(), random-mix level
        self._hyper = None       # (lengthscale, scale) of the last evidence search
        self._modes = {}         # (lengthscale, scale) -> last mode, to warm-start the next fit

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
        total = w.sum()
        return w if abs(total - 1.0) < 1e-12 else w / total   # normalizing twice changes nothing

    def add_choice(self, options, chosen):
        """Record one answer: ``chosen`` is the index of the preferred option, or None.

        Args:
            options: ``[k, N]`` the k ≥ 2 mixes shown (any order).
            chosen: 0 … k−1, or None when no option was preferred (a tie: each option gets an
                equal share of the choice, so for a pair it counts as half a win each).
        """
        try:
            rows = list(options)
        except TypeError:
            raise PreferenceError(f"options must be a [k, {self.num_styles}] array of mixes, "
                                  f"got {options!r}") from None
        if len(rows) < 2:
            raise PreferenceError(f"a question needs at least 2 options, got {len(rows)}")
        k = len(rows)
        if chosen is not None and (isinstance(chosen, bool) or not isinstance(
                chosen, (int, np.integer)) or not 0 <= chosen < k):
            raise PreferenceError(f"chosen must be an option index 0…{k - 1} or None, "
                                  f"got {chosen!r}")
        W = np.stack([self._weights(w, f"option {i}") for i, w in enumerate(rows)])
        self._answers.append((W, None if chosen is None else int(chosen)))
        self._questions.append([self._point(w) for w in W])
        self._posterior = None
        self._cache = {}

    def add(self, a, b, preferred):
        """Record a pair: ``preferred`` is 0 (``a`` won), 1 (``b`` won) or None (tie)."""
        if preferred is not None and (isinstance(preferred, bool) or preferred not in (0, 1)):
            raise PreferenceError(f"preferred must be 0 (a won), 1 (b won) or None (tie), "
                                  f"got {preferred!r}")
        self.add_choice([self._weights(a, "a"), self._weights(b, "b")], preferred)

    def _point(self, w):
        """Index of ``w`` among the distinct mixes (near-duplicates merged, BoTorch PR #1754)."""
        key = tuple(np.round(w, 4))
        if key not in self._points:
            self._points[key] = len(self._W)
            self._W.append(w)
        return self._points[key]

    def __len__(self):
        return len(self._answers)

    @property
    def answers(self):
        """Every answer as a list of ``(options [k, N], chosen)``."""
        return [(W.copy(), c) for W, c in self._answers]

    @property
    def comparisons(self):
        """The answers to pairs as a list of ``(a, b, preferred)``."""
        return [(W[0].copy(), W[1].copy(), c) for W, c in self._answers if len(W) == 2]

    # ---------------------------------------------------------------- model
    def _data(self):
        """Distinct points [n, N] and the answers as :class:`~nst_tf.preference.gp.Choices`,
        without questions whose options are all the same mix (they carry no information)."""
        keep = [i for i, q in enumerate(self._questions) if len(set(q)) > 1]
        data = gp.Choices([self._questions[i] for i in keep], [self._answers[i][1] for i in keep])
        return np.array(self._W).reshape(-1, self.num_styles), data

    def posterior(self):
        """The fitted :class:`~nst_tf.preference.gp.Posterior`, or None before any answer."""
        if self._posterior is None and self._answers:
            W, data = self._data()
            if not len(data):
                return None
            X = self._embed(W)
            n = len(self._answers)
            if self._hyper is None or n <= SEARCH_UNTIL or n % SEARCH_EVERY == 0:
                post = gp.fit_by_evidence(X, data, LENGTHSCALES, SCALES, ADDITIVE, LAPSE,
                                          log_prior=_log_prior, starts=self._modes,
                                          additive_dims=self.num_styles,
                                          around=self._search_starts(n), **FIT_TOLERANCE)
                self._hyper = (post.lengthscale, post.scale)
            else:
                post = gp.fit(X, data, *self._hyper, ADDITIVE, LAPSE,
                              start=self._modes.get(self._hyper), additive_dims=self.num_styles,
                              **FIT_TOLERANCE)
                self._modes[self._hyper] = post.alpha
            self._posterior = post
        return self._posterior

    def _search_starts(self, n):
        """Grid points the evidence search climbs from after ``n`` answers; None: the full grid."""
        if self._hyper is None or n <= SEARCH_UNTIL:
            return None
        grid = [(lengthscale, scale) for lengthscale in LENGTHSCALES for scale in SCALES]
        return [self._hyper, grid[(n // SEARCH_EVERY) % len(grid)]]

    def predict(self, W):
        """Posterior mean and standard deviation [K] of the utility of the mixes ``W`` [K, N].

        Utilities are in Bradley–Terry units: a gap of 1 means the better of two mixes is picked
        73 % of the time. Before any answer the mean is 0 and the std the prior scale.
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
        mean, grad = self.posterior().mean_gradient(self._embed(W))
        return mean, grad if self._embedding is None else grad @ self._embedding.T

    def random_level(self):
        """The posterior's estimate of what a uniformly random mix gives: the mean of the
        posterior mean over :data:`RANDOM_MIXES` Dirichlet(1) mixes (the 0 of the benchmark's
        normalized utility; its Monte Carlo error is 1/64 of the posterior mean's spread)."""
        if "level" not in self._cache:
            rng = np.random.default_rng([self.seed, 2])
            R = simplex.dirichlet(rng, self.num_styles, RANDOM_MIXES, 1.0)
            post = self.posterior()
            mean = (np.zeros(len(R)) if post is None else
                    post.kernel(self._embed(R), post.X) @ post.alpha)
            self._cache["level"] = (float(mean.mean()), R[np.argmax(mean)])
        return self._cache["level"][0]

    # ---------------------------------------------------------------- recommendation
    def best(self):
        """The recommended mix (float32 [N], sums to 1); see the module docstring."""
        if "best" not in self._cache:
            self._cache["best"] = self._recommend(CAUTION)
        return self._cache["best"].astype(np.float32)

    def _recommend(self, caution):
        if self.posterior() is None:
            return np.full(self.num_styles, 1.0 / self.num_styles)
        level = self.random_level()
        fallback = self._cache["level"][1]      # the random mix of highest mean: above level
        shown = np.array(self._W)
        mean, std = self.predict(shown)
        top = shown[np.argsort(-(mean - caution * std))[:4]]
        rng = np.random.default_rng([self.seed, 3, len(self._answers)])
        ascended, _ = simplex.ascend(self._mean_and_gradient, top.copy(), iterations=30)
        moves = [simplex.neighbours(rng, w, 40, self.num_styles, step=0.2) for w in top]
        candidates = np.concatenate([shown, ascended, fallback[None]] + moves)
        mean, std = self.predict(candidates)
        score = np.where(mean >= level, mean - caution * std, -np.inf)
        w = candidates[np.argmax(score)]
        pruned = np.where(w < 0.02, 0.0, w)
        pruned /= pruned.sum()
        m, s = self.predict(np.stack([w, pruned]))
        keep = m[1] >= level and m[1] - caution * s[1] >= m[0] - caution * s[0] - 1e-3
        return pruned if keep else w

    # ---------------------------------------------------------------- queries
    def _pool_draws(self, rng, count):
        """Random mixes of the pool's kinds: half dense Dirichlet(1), half sparse (1–4 styles)."""
        dense = simplex.dirichlet(rng, self.num_styles, count, 1.0)
        sparse = simplex.sparse_mixes(rng, self.num_styles, count, sizes=(1, 2, 3, 4))
        return np.where(rng.random(count)[:, None] < 0.5, dense, sparse)

    def random_query(self, k=4):
        """k random mixes from the pool's distribution, float32 [k, N] (a baseline)."""
        return self._pool_draws(self._rng, k).astype(np.float32)

    def random_pair(self):
        """Two random mixes from the pool's distribution (a baseline, or exploration)."""
        a, b = self.random_query(2)
        return a, b

    def next_pair(self):
        """The next two mixes to show, as float32 [N] vectors (``next_query(2)``)."""
        a, b = self.next_query(2)
        return a, b

    def next_query(self, k=4, after=None):
        """The next k mixes to show, float32 [k, N]; distinct mixes on the simplex.

        The first ``init_pairs`` questions are random pool draws; then the incumbent (``best()``)
        and the k − 1 pool mixes that maximize qEUBO with it, greedily, at least
        :data:`MIN_GAP` apart; the second option must come from the dense / sparse side of the
        pool (:data:`SLOTS`: measured, without it the grid mostly polishes one recipe). A
        function of the data: asking again before an answer gives the same question.

        ``after``: optional ``(options, chosen)``, an answer this learner has not been given
        (the web page asks from the last fitted posterior while the next fit runs): the question
        that follows it, from this posterior. Its picked option takes the incumbent's place and
        its other options are not shown again.
        """
        k = int(k)
        if k < 2:
            raise PreferenceError(f"a question needs at least 2 options, got k={k}")
        answers = len(self._answers) + (after is not None)
        explore = (k == 2 and EXPLORE_PAIRS_EVERY
                   and (answers - self.init_pairs) % EXPLORE_PAIRS_EVERY == EXPLORE_PAIRS_EVERY - 1)
        if answers < self.init_pairs or explore or self.posterior() is None:
            rng = np.random.default_rng([self.seed, answers, k])
            return self._pool_draws(rng, k).astype(np.float32)
        pool, is_global, X, mean, V, ucb = self._query_pool(answers, k)
        post = self.posterior()
        rows, picked = np.arange(len(pool)), None
        if after is not None:
            shown, chosen = np.asarray(after[0], np.float64), after[1]
            shown = shown / shown.sum(1, keepdims=True)
            picked = None if chosen is None else shown[chosen]
            gap = np.abs(pool[1:, None, :] - shown[None]).sum(2).min(1)
            rows = np.concatenate([[0], 1 + np.flatnonzero(gap >= MIN_GAP)])
        # joint Monte Carlo on the most promising candidates (optimistic: mean + 2 std), the
        # best of the global kinds and of the others alike
        keep = [np.array([0])]
        for group in (is_global[rows], ~is_global[rows]):
            index = rows[group]
            keep.append(index[np.argsort(-ucb[index])[:CANDIDATES // 2]])
        keep = np.unique(np.concatenate(keep))   # the incumbent stays row 0
        candidates, Xk, mk, Vk = pool[keep], X[keep], mean[keep], V[:, keep]
        if picked is not None:   # the pick takes the incumbent's place
            candidates[0], Xk[0] = picked, self._embed(picked[None])[0]
            m, v = post.mean_and_projection(Xk[:1])
            mk[0], Vk[:, 0] = m[0], v[:, 0]
        cov = post.covariance(Xk, Vk, Xk, Vk)
        fixed = (0,) if INCUMBENT else ()
        apart = np.abs(candidates[:, None, :] - candidates[None, :, :]).sum(2) >= MIN_GAP
        masks = {"all": None, "global": is_global[keep]}
        slots = [masks[where] for where in SLOTS]
        rng = np.random.default_rng([self.seed, answers, k, 1])
        chosen = acquisition.greedy_max_set(mk, cov, min(k, len(keep)), rng, fixed,
                                            SAMPLES, apart, slots)
        options = candidates[chosen]
        if len(options) < k:   # a tiny simplex: fill with random mixes
            options = np.concatenate([options, self._pool_draws(rng, k - len(options))])
        return options.astype(np.float32)

    def prepare(self, k=4):
        """Compute now the candidate mixes (and their posterior) of the question that follows an
        answer this learner has not been given yet: ``next_query(k, after=...)`` is then fast."""
        if len(self._answers) + 1 >= self.init_pairs and self.posterior() is not None:
            self._query_pool(len(self._answers) + 1, k)

    def _query_pool(self, answers, k):
        """The candidate mixes of a question (row 0: the incumbent, ``best()``), whether each is
        of the global kinds, their kernel inputs, posterior means, projections and mean + 2 std;
        one pool per (answers, k), kept."""
        key = ("pool", answers, k)
        if key not in self._cache:
            # the pool depends on the data only: asking twice gives the same question, and a
            # copy of the learner with one more answer predicts the question after that answer
            rng = np.random.default_rng([self.seed, answers, k])
            incumbent = self.best().astype(np.float64)
            parts = {
                "incumbent": incumbent[None],
                "dense": simplex.dirichlet(rng, self.num_styles, POOL_DENSE, 1.0),
                "sparse": np.concatenate([np.eye(self.num_styles), simplex.sparse_mixes(
                    rng, self.num_styles, POOL_SPARSE, sizes=(2, 3, 4))]),
                "local": simplex.neighbours(rng, incumbent, POOL_LOCAL, self.num_styles),
                "shown": np.array(self._W),
            }
            kinds = np.concatenate([[name] * len(W) for name, W in parts.items()])
            pool, first = _distinct(np.concatenate(list(parts.values())))
            X = self._embed(pool)
            post = self.posterior()
            mean, V = post.mean_and_projection(X)
            ucb = mean + 2.0 * np.sqrt(np.maximum(post.variance(X, V), 0))
            is_global = np.isin(kinds[first], ["dense", "sparse"])
            self._cache[key] = (pool, is_global, X, mean, V, ucb)
        return self._cache[key]

    def copy(self, warm=None):
        """An independent learner with the same settings and answers.

        Its fits start from this learner's hyperparameters and modes, or from ``warm``'s (a
        learner fitted on fewer of the same answers: a refit is then a few Newton steps).
        """
        other = PreferenceLearner(self.num_styles, self.seed, self.features, self.init_pairs)
        for W, c in self._answers:
            other.add_choice(W, c)
        warm = self if warm is None else warm
        other._hyper, other._modes = warm._hyper, dict(warm._modes)
        other._rng.bit_generator.state = self._rng.bit_generator.state
        return other

    # ---------------------------------------------------------------- files
    def save(self, path):
        """Write the settings and every answer as JSON (atomically; never pickle)."""
        state = {
            "format": FORMAT,
            "num_styles": self.num_styles,
            "seed": self.seed,
            "init_pairs": self.init_pairs,
            "features": None if self.features is None else self.features.tolist(),
            "answers": [{"options": W.tolist(), "chosen": c} for W, c in self._answers],
            "rng": self._rng.bit_generator.state,
        }
        with atomic_write(path, "w") as f:
            json.dump(state, f)

    @classmethod
    def load(cls, path):
        """A learner saved by :meth:`save` (or by a version that knew only pairs)."""
        path = os.fspath(path)
        try:
            with open(path) as f:
                state = json.load(f)
        except (OSError, ValueError, RecursionError) as e:
            raise PreferenceError(f"cannot read preference learner file {path}: {e}") from e
        if not isinstance(state, dict) or state.get("format") not in (FORMAT, FORMAT_PAIRS):
            raise PreferenceError(f"{path} is not a saved PreferenceLearner ({FORMAT})")
        try:
            learner = cls(state["num_styles"], seed=state["seed"], features=state["features"],
                          init_pairs=state.get("init_pairs", 3))
            if state["format"] == FORMAT_PAIRS:
                for row in state["comparisons"]:
                    learner.add(row["a"], row["b"], row["preferred"])
            else:
                for row in state["answers"]:
                    learner.add_choice(row["options"], row["chosen"])
            learner._rng.bit_generator.state = state["rng"]
        except (KeyError, TypeError, ValueError) as e:
            raise PreferenceError(f"{path}: damaged preference learner file ({e})") from e
        return learner


def _distinct(W, tolerance=1e-4):
    """The rows of ``W`` without near-duplicates (first occurrences, in order) and their rows."""
    _, first = np.unique(np.round(W / tolerance).astype(np.int64), axis=0, return_index=True)
    first = np.sort(first)
    return W[first], first


def _log_prior(lengthscale, scale):
    """Weak log-normal priors: lengthscale around 0.4, output scale around 1.5."""
    return -0.5 * (np.log(lengthscale / 0.4) / 1.0) ** 2 - 0.5 * (np.log(scale / 1.5) / 1.0) ** 2
