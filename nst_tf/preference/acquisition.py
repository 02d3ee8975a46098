"""Which k mixes to show next: qEUBO, the expected utility of the best option (Monte Carlo).

qEUBO (Astudillo et al., AISTATS 2023) scores a set of options by ``E[max_i f(x_i)]`` under the
posterior: the utility the person gets from the best of what they are shown. Picking the set
that maximizes it is one-step Bayes-optimal when answers are noise-free. Here the expectation is
a Monte Carlo mean over joint posterior samples of a candidate pool, and the set is built
greedily (``E[max]`` is monotone and submodular in the set, so greedy is within 1 − 1/e of the
best set).

Example:
    >>> import numpy as np
    >>> mean = np.array([0.0, 1.0, 0.9, -2.0])
    >>> cov = np.diag([0.01, 0.01, 1.0, 0.01])
    >>> greedy_max_set(mean, cov, 2, np.random.default_rng(0))   # the sure 1.0 and the gamble
    [1, 2]
"""

import numpy as np


def joint_samples(mean, cov, count, rng):
    """``count`` joint samples [count, P] of ``N(mean, cov)`` (jitter added until it factors)."""
    jitter = 1e-9 * max(float(np.mean(np.diag(cov))), 1e-12)
    eye = np.eye(len(mean))
    for _ in range(8):
        try:
            chol = np.linalg.cholesky(cov + jitter * eye)
            break
        except np.linalg.LinAlgError:
            jitter *= 10.0
    else:   # still not positive definite: fall back on the marginals
        chol = np.diag(np.sqrt(np.maximum(np.diag(cov), 0.0)))
    return mean[None, :] + rng.standard_normal((count, len(mean))) @ chol.T


def greedy_max_set(mean, cov, k, rng, fixed=(), samples=512, apart=None, slots=None):
    """Indices of a k-set of candidates with a high ``E[max f]`` (greedy, Monte Carlo).

    Args:
        mean, cov: posterior mean [P] and covariance [P, P] of the candidates.
        k: size of the set.
        fixed: indices that are in the set whatever (e.g. the incumbent), placed first.
        samples: Monte Carlo samples.
        apart: optional [P, P] boolean, True where two candidates are far enough apart to be
            shown together; a candidate too close to one in the set is skipped (unless nothing
            else is left).
        slots: optional list, per slot to fill after ``fixed``, of the candidates it may take
            ([P] bool, or None for any); slots past the list take any.
    """
    F = joint_samples(np.asarray(mean, np.float64), np.asarray(cov, np.float64), samples, rng)
    chosen = list(fixed)
    best = F[:, chosen].max(1) if chosen else np.full(samples, -np.inf)
    while len(chosen) < k:
        slot = len(chosen) - len(fixed)
        allowed = slots[slot] if slots is not None and slot < len(slots) else None
        value = np.maximum(best[:, None], F).mean(0)
        value[chosen] = -np.inf
        for mask in (allowed, apart[chosen].all(0) if apart is not None and chosen else None):
            if mask is not None and (mask & np.isfinite(value)).any():
                value = np.where(mask, value, -np.inf)
        pick = int(np.argmax(value))
        chosen.append(pick)
        best = np.maximum(best, F[:, pick])
    return chosen
