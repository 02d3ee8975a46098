"""Families of simulated people, drawn at random: a tuning set and a separate validation set.

A learner tuned against a handful of fixed utilities (:mod:`nst_tf.preference.labeler`) can
overfit them. :func:`draw_families` draws *families* of tastes with random parameters from four
kinds, and the benchmark tunes on one draw and reports another:

* ``peak``: a liked recipe of 1–5 styles, ``u = Σ min(w_i, w*_i)`` (the share of the mix that
  follows the recipe);
* ``modes``: 2–4 such recipes on disjoint styles, the others 60–95 % as good as the best;
* ``linear``: a dense linear taste over all styles with a taste for purity or for mixing,
  ``u = aᵀw + β Σ w_i²`` (``a ~ N(0, 1)``; ``β > 0`` likes pure styles, ``β < 0`` likes blends:
  the optimum is then a dense mix);
* ``flat``: a near-flat taste: the same shape with 35–45 % wrong answers on close pairs, a
  person who barely sees the differences.

Each family also draws the person's lapse rate (0–20 % random answers) and temperature (τ set
for 10–30 % wrong answers on close pairs, see :func:`~nst_tf.preference.labeler.calibrate_tau`).
A family is a recipe for people: :meth:`Family.person` builds one (its own recipe / weights) from
a seed.

Example:
    >>> tuning, validation = draw_families("tuning", 4), draw_families("validation", 4)
    >>> [f.kind for f in tuning] == ["peak", "modes", "linear", "flat"]
    True
    >>> utility, labeler = validation[0].person(num_styles=8, seed=0)
    >>> bool(utility(utility.optimum[None])[0] >= utility(np.full((1, 8), 1 / 8))[0])
    True
"""

import zlib

import numpy as np

from nst_tf.preference import simplex
from nst_tf.preference.labeler import SimulatedLabeler, calibrate_tau, random_mixes_mean

KINDS = ("peak", "modes", "linear", "flat")
#: Seeds of the two draws: families are tuned on one and reported on the other.
SETS = {"tuning": 101, "validation": 202}


class Recipes:
    """``u(w) = max_j h_j Σ_i min(w_i, r_ij)``: liked recipes ``r_j`` with heights ``h_j``."""

    def __init__(self, recipes, heights):
        self.recipes, self.heights = np.asarray(recipes), np.asarray(heights)
        self.optimum = self.recipes[int(np.argmax(self.heights))]

    def __call__(self, W):
        W = np.atleast_2d(W)
        return np.max([h * np.minimum(W, r).sum(1) for h, r in zip(self.heights, self.recipes)],
                      axis=0)


class Quadratic:
    """``u(w) = aᵀw + β Σ w_i²``: per-style tastes and a taste for purity (β > 0) or mixing."""

    def __init__(self, a, beta):
        self.a, self.beta = np.asarray(a, np.float64), float(beta)
        if self.beta >= 0:   # convex: the best pure style
            self.optimum = np.eye(len(self.a))[int(np.argmax(self.a + self.beta))]
        else:                # concave: maximize aᵀw − |β| |w|², the projection of a / 2|β|
            self.optimum = simplex.project(self.a / (2 * -self.beta))[0]

    def __call__(self, W):
        W = np.atleast_2d(W)
        return W @ self.a + self.beta * np.sum(W * W, 1)


class Family:
    """A kind of taste with drawn parameters; :meth:`person` makes one person of it."""

    def __init__(self, name, kind, params, lapse, error_rate):
        self.name, self.kind, self.params = name, kind, params
        self.lapse, self.error_rate = lapse, error_rate

    def __repr__(self):
        return f"Family({self.name!r})"

    def utility(self, num_styles, seed):
        rng = np.random.default_rng([zlib.crc32(self.name.encode()), seed])
        p = self.params
        if self.kind in ("peak", "modes"):
            styles = rng.permutation(num_styles)
            recipes, heights = [], [1.0] + list(p["heights"])
            for size in p["sizes"]:
                size = min(size, len(styles))   # few styles: fewer, smaller recipes
                if not size:
                    break
                w = np.zeros(num_styles)
                w[styles[:size]] = rng.dirichlet(np.full(size, 3.0)) if size > 1 else 1.0
                styles = styles[size:]
                recipes.append(w)
            return Recipes(recipes, heights[:len(recipes)])
        a = rng.standard_normal(num_styles)
        return Quadratic(a, p["purity"] * a.std())

    def person(self, num_styles, seed):
        """``(utility, labeler)`` of person ``seed`` of this family."""
        utility = self.utility(num_styles, seed)
        tau = calibrate_tau(utility, num_styles, error_rate=self.error_rate, seed=seed)
        labeler = SimulatedLabeler(utility, tau, lapse=self.lapse, tie_band=0.1 * tau,
                                   seed=seed + 1)
        return utility, labeler


def draw_families(which, count):
    """``count`` families of the ``which`` draw (``"tuning"`` or ``"validation"``); the kinds
    take turns (``KINDS``), linear and flat tastes turn from purity to mixing every
    ``len(KINDS)`` families, every other parameter is drawn."""
    rng = np.random.default_rng(SETS[which])
    families = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        lapse = float(rng.choice([0.0, 0.05, 0.1, 0.2]))
        error = float(rng.uniform(0.35, 0.45) if kind == "flat" else rng.uniform(0.1, 0.3))
        if kind == "peak":
            params = {"sizes": [int(rng.integers(1, 6))], "heights": []}
        elif kind == "modes":
            modes = int(rng.integers(2, 5))
            params = {"sizes": [int(s) for s in rng.integers(1, 5, size=modes)],
                      "heights": sorted(rng.uniform(0.6, 0.95, size=modes - 1).round(2),
                                        reverse=True)}
        else:
            sign = 1.0 if (i // len(KINDS)) % 2 == 0 else -1.0   # purity, then mixing
            params = {"purity": round(sign * float(rng.uniform(0.3, 3.0)), 2)}
        detail = "-".join(str(v) for v in (params.get("sizes") or [params["purity"]]))
        name = f"{which[0]}{i}-{kind}-{detail}-lapse{lapse:g}-err{error:.2f}"
        families.append(Family(name, kind, params, lapse, round(error, 2)))
    return families


def simulate(learner, family, seed, k, budget, checkpoints=None, random=False):
    """Person ``seed`` of ``family`` answers ``budget`` k-option questions of ``learner`` (its
    ``next_query``, or its ``random_query`` if ``random``); returns ``{answers: score}`` at the
    ``checkpoints`` (default: the budget), the score being the normalized utility of
    ``learner.best()``: 0 = the mean of uniformly random (Dirichlet(1)) mixes, 1 = the optimum.
    """
    num_styles = learner.num_styles
    utility, labeler = family.person(num_styles, seed)
    zero = random_mixes_mean(utility, num_styles, seed)
    top = float(utility(utility.optimum[None])[0])
    checkpoints = set(checkpoints or [budget])
    scores = {}
    for step in range(1, budget + 1):
        options = learner.random_query(k) if random else learner.next_query(k)
        learner.add_choice(options, labeler.choose(options))
        if step in checkpoints:
            value = float(utility(learner.best()[None].astype(np.float64))[0])
            scores[step] = (value - zero) / (top - zero)
    return scores
