"""The probability simplex of style weights: projection, sparse random mixes, gradient ascent.

Example:
    >>> import numpy as np
    >>> project(np.array([[0.8, 0.6, -0.2]])).round(2)
    array([[0.6, 0.4, 0. ]])
    >>> rng = np.random.default_rng(0)
    >>> W = sparse_mixes(rng, num_styles=8, count=5, sizes=(2,))
    >>> ((W > 0).sum(1) <= 2).all() and np.allclose(W.sum(1), 1)
    True
"""

import numpy as np


def project(V):
    """Euclidean projection of each row of ``V`` [P, N] onto the simplex (≥ 0, sum 1)."""
    V = np.atleast_2d(np.asarray(V, np.float64))
    U = -np.sort(-V, axis=1)
    cumulative = np.cumsum(U, axis=1) - 1.0
    index = np.arange(1, V.shape[1] + 1)
    rho = np.sum(U - cumulative / index > 0, axis=1)
    theta = cumulative[np.arange(len(V)), rho - 1] / rho
    return np.maximum(V - theta[:, None], 0.0)


def sparse_mixes(rng, num_styles, count, sizes=(2, 3, 4), concentration=1.0):
    """``count`` mixes of ``k`` random styles (``k`` drawn from ``sizes``), Dirichlet weights."""
    k = np.minimum(rng.choice(np.asarray(sizes), size=count), num_styles)
    # the k styles of a row: the k smallest of N random keys (a uniform random subset)
    ranks = np.argsort(np.argsort(rng.random((count, num_styles)), axis=1), axis=1)
    support = ranks < k[:, None]
    W = np.where(support, rng.standard_gamma(concentration, size=(count, num_styles)), 0.0)
    return W / W.sum(1, keepdims=True)


def dirichlet(rng, num_styles, count, concentration):
    """``count`` Dirichlet(``concentration``) mixes over all styles."""
    return rng.dirichlet(np.full(num_styles, concentration), size=count)


def neighbours(rng, w, count, num_styles, step=1.0):
    """``count`` mixes near ``w``: each style added (blends with a pure style at 10, 25 and 50 %
    times ``step``), each style of the mix dropped, then blends with random dense mixes and
    jittered weights. Below ``count`` = all additions and drops, a random subset of them."""
    w = np.asarray(w, np.float64)
    amounts = step * np.array([0.1, 0.25, 0.5])
    pure = np.eye(num_styles)
    adds = ((1 - amounts[:, None, None]) * w + amounts[:, None, None] * pure).reshape(-1, num_styles)
    support = np.flatnonzero(w > 1e-3)
    drops = np.repeat(w[None], len(support), 0)
    if len(support) > 1:
        drops[np.arange(len(support)), support] = 0.0
    moves = np.concatenate([adds, drops])
    if count <= len(moves):
        W = moves[rng.choice(len(moves), size=count, replace=False)]
    else:
        rest = count - len(moves)
        t = rng.choice(step * np.array([0.1, 0.2, 0.3, 0.5]), size=(rest // 2, 1))
        dense = (1 - t) * w + t * dirichlet(rng, num_styles, rest // 2, 1.0)
        jitter = w[None] * np.exp(0.5 * step * rng.standard_normal((rest - rest // 2, num_styles)))
        W = np.concatenate([moves, dense, jitter])
    return W / np.maximum(W.sum(1, keepdims=True), 1e-12)


def ascend(value_and_gradient, starts, iterations=60, step=0.05):
    """Projected gradient ascent of a function on the simplex from each row of ``starts``.

    Each iteration tries four step sizes per row and keeps the best (a cheap line search), so a
    badly scaled gradient cannot make a row worse. Returns the final points [S, N] and values [S].
    """
    X = project(starts)
    value, grad = value_and_gradient(X)
    factors = np.array([4.0, 1.0, 0.25, 0.0625])
    for _ in range(iterations):
        norm = np.linalg.norm(grad, axis=1, keepdims=True) + 1e-12
        trials = np.concatenate([project(X + step * f * grad / norm) for f in factors])
        trial_value, trial_grad = value_and_gradient(trials)
        S = len(X)
        choice = np.argmax(trial_value.reshape(len(factors), S), axis=0)
        pick = choice * S + np.arange(S)
        better = trial_value[pick] > value
        if not better.any():
            step *= 0.5
            if step < 1e-4:
                break
            continue
        X[better] = trials[pick[better]]
        value[better] = trial_value[pick[better]]
        grad[better] = trial_grad[pick[better]]
    return X, value
