"""nst_tf.preference learner: the GP against explicit float64 linear algebra, queries, simulated loop."""

import json

import numpy as np
import pytest

from nst_tf.preference import gp, simplex
from nst_tf.preference.labeler import (SimulatedLabeler, calibrate_tau, make_utility,
                                       random_mixes_mean)
from nst_tf.preference.learner import PreferenceError, PreferenceLearner


def _toy_problem(seed=0, n=12, m=20, dims=4):
    rng = np.random.default_rng(seed)
    X = rng.dirichlet(np.ones(dims), size=n)
    first = rng.integers(n, size=m)
    second = (first + 1 + rng.integers(n - 1, size=m)) % n
    outcome = rng.choice([0.0, 0.5, 1.0], size=m)
    return X, first, second, outcome


def _kernel(a, b, ls, s, rho):
    full = np.exp(-np.sum((a - b) ** 2) / (2 * ls ** 2))
    per_style = np.mean([np.exp(-(x - y) ** 2 / (2 * (ls / 3) ** 2)) for x, y in zip(a, b)])
    return s ** 2 * ((1 - rho) * full + rho * per_style)


@pytest.mark.parametrize("rho", [0.0, 0.5, 1.0])
def test_laplace_mode_and_variance_match_explicit_inverse(rho):
    X, first, second, y = _toy_problem()
    ls, s = 0.4, 1.5
    post = gp.fit(X, first, second, y, ls, s, additive=rho)
    # independent reference: explicit kernel loops, K⁻¹, dense D and W, float64
    n = len(X)
    K = np.array([[_kernel(a, b, ls, s, rho) for b in X] for a in X])
    K += 1e-10 * np.eye(n)
    D = np.zeros((len(first), n))
    D[np.arange(len(first)), first] = 1
    D[np.arange(len(first)), second] = -1
    f = post.f
    p = 1 / (1 + np.exp(-(D @ f)))
    gradient = D.T @ (y - p) - np.linalg.solve(K, f)
    assert np.max(np.abs(gradient)) < 1e-6                     # the mode is a stationary point
    W = D.T @ np.diag(p * (1 - p)) @ D
    cov = np.linalg.inv(np.linalg.inv(K) + W)                  # Laplace posterior covariance
    Z = np.random.default_rng(1).dirichlet(np.ones(4), size=5)
    Kz = np.array([[_kernel(a, b, ls, s, rho) for b in X] for a in Z])
    Kinv = np.linalg.inv(K)
    mean_ref = Kz @ Kinv @ f
    var_ref = s ** 2 - np.einsum("ij,jk,ik->i", Kz, Kinv - Kinv @ cov @ Kinv, Kz)
    mean, std = post.predict(Z)
    np.testing.assert_allclose(mean, mean_ref, atol=1e-6)
    np.testing.assert_allclose(std ** 2, var_ref, atol=1e-6)
    # evidence: Laplace log marginal likelihood written out
    loglik = np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))
    ref = loglik - 0.5 * f @ Kinv @ f - 0.5 * np.linalg.slogdet(np.eye(n) + K @ W)[1]
    assert post.log_evidence == pytest.approx(ref, abs=1e-5)


@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_mean_gradient_matches_finite_differences(rho):
    X, first, second, y = _toy_problem(seed=3)
    post = gp.fit(X, first, second, y, 0.3, 1.0, additive=rho)
    z = np.array([[0.1, 0.2, 0.3, 0.4]])
    _, grad = post.mean_gradient(z)
    h = 1e-6
    numeric = [(post.predict(z + h * e)[0] - post.predict(z - h * e)[0])[0] / (2 * h)
               for e in np.eye(4)]
    np.testing.assert_allclose(grad[0], numeric, atol=1e-5)


def test_duplicates_and_a_repeated_incumbent_do_not_break_the_fit():
    learner = PreferenceLearner(5)
    a, b = np.eye(5)[0], np.eye(5)[1]
    for i in range(40):                       # the same pair again and again, noisy answers
        learner.add(a + 1e-9 * i, b, int(i % 4 != 0))  # b won three times in four
    mean, std = learner.predict(np.stack([a, b]))
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(std))
    assert mean[1] > mean[0]
    assert learner.posterior().lengthscale >= 0.15  # the floor of the grid


def test_projection_is_the_closest_simplex_point():
    rng = np.random.default_rng(0)
    V = rng.normal(size=(20, 4))
    P = simplex.project(V)
    assert np.allclose(P.sum(1), 1) and (P >= 0).all()
    # brute force: no random simplex point is closer
    R = rng.dirichlet(np.ones(4) * 0.5, size=20000)
    for v, p in zip(V, P):
        assert np.sum((v - p) ** 2) <= np.min(np.sum((R - v) ** 2, 1)) + 1e-9


def test_the_model_expresses_a_liking_for_a_mix():
    # a person who always prefers the mix closer to 50/50 of styles 0 and 1: a linear score on w
    # would peak at a pure style; the GP must recommend the mix
    learner = PreferenceLearner(4, seed=0)
    liked = np.array([0.5, 0.5, 0, 0])
    for _ in range(20):
        a, b = learner.next_pair()
        learner.add(a, b, int(np.abs(b - liked).sum() < np.abs(a - liked).sum()))
    w = learner.best()
    assert w.dtype == np.float32 and w.shape == (4,) and abs(w.sum() - 1) < 1e-5
    assert np.abs(w - liked).sum() < 0.3, w


def test_simulated_labeler_end_to_end_beats_random_pairs():
    """A noisy simulated person (lapses, ties, τ for 20 % errors on close pairs), N = 16."""
    scores = {"active": [], "random": []}
    for seed in range(3):
        utility = make_utility("mud", 16, seed)
        zero = random_mixes_mean(utility, 16, seed)
        top = utility(utility.optimum[None])[0]
        tau = calibrate_tau(utility, 16, seed=seed)
        for strategy in scores:
            labeler = SimulatedLabeler(utility, tau, lapse=0.1, tie_band=0.1 * tau, seed=seed)
            learner = PreferenceLearner(16, seed=seed)
            answers = []
            for _ in range(30):
                a, b = learner.next_pair() if strategy == "active" else learner.random_pair()
                answers.append(labeler(a, b))
                learner.add(a, b, answers[-1])
            scores[strategy].append((utility(learner.best()[None])[0] - zero) / (top - zero))
        assert {0, 1} <= set(answers)
    assert np.mean(scores["active"]) > 0.7, scores
    assert np.mean(scores["active"]) > np.mean(scores["random"]), scores


def test_labeler_error_rate_matches_calibration():
    utility = make_utility("sparse", 32, 0)
    tau = calibrate_tau(utility, 32, error_rate=0.2)
    rng = np.random.default_rng(0)
    W = simplex.sparse_mixes(rng, 32, 20000)
    top = W[np.argsort(-utility(W))[:200]]
    labeler = SimulatedLabeler(utility, tau, lapse=0.0, seed=0)
    wrong = []
    for i in range(2000):
        a, b = top[rng.integers(200)], top[rng.integers(200)]
        ua, ub = utility(np.stack([a, b]))
        if abs(ua - ub) > 1e-9:
            wrong.append(labeler(a, b) != (0 if ua > ub else 1))
    assert 0.15 < np.mean(wrong) < 0.25


def test_next_pair_is_on_the_simplex_and_avoids_identical_mixes():
    learner = PreferenceLearner(32, seed=1)
    for i in range(8):
        a, b = learner.next_pair()
        for w in (a, b):
            assert w.dtype == np.float32 and w.shape == (32,)
            assert (w >= 0).all() and abs(w.sum() - 1) < 1e-5
        assert np.abs(a - b).sum() > 0.03
        learner.add(a, b, i % 2)


def test_save_and_load_round_trip(tmp_path):
    learner = PreferenceLearner(6, seed=3, features=np.arange(18.0).reshape(6, 3))
    for i in range(6):
        a, b = learner.next_pair()
        learner.add(a, b, [0, 1, None][i % 3])
    path = tmp_path / "learner.json"
    learner.save(path)
    state = json.loads(path.read_text())          # plain JSON, not pickle
    assert len(state["comparisons"]) == 6 and state["comparisons"][2]["preferred"] is None
    again = PreferenceLearner.load(path)
    np.testing.assert_array_equal(again.best(), learner.best())
    np.testing.assert_array_equal(again.next_pair()[1], learner.next_pair()[1])
    np.testing.assert_allclose(again.predict(np.eye(6))[0], learner.predict(np.eye(6))[0])


@pytest.mark.parametrize("call, message", [
    (lambda l: l.add(np.ones(3), np.ones(4), 0), "4 weights"),
    (lambda l: l.add(-np.ones(4), np.ones(4), 0), "non-negative"),
    (lambda l: l.add(np.ones(4), np.ones(4), 2), "preferred must be"),
    (lambda l: l.add(np.ones(4), np.ones(4), True), "preferred must be"),
    (lambda l: l.predict(np.ones((2, 5))), "predict expects"),
])
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(PreferenceError, match=message):
        call(PreferenceLearner(4))


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(PreferenceError, match="not a saved PreferenceLearner"):
        PreferenceLearner.load(path)
