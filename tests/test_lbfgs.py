"""The in-graph L-BFGS and Adam against SciPy's L-BFGS-B and a NumPy Adam."""

import numpy as np
import pytest
import scipy.optimize
import tensorflow as tf

from nst_tf.lbfgs import LBFGS, Adam


def compiled_step(opt, f, jit_compile=False):
    @tf.function(jit_compile=jit_compile)
    def step():
        x = opt.trial.read_value()
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = f(x)
        return value, opt.apply(value, tape.gradient(value, x))
    return step


def rosenbrock(x):
    return tf.reduce_sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def evaluations_to(opt, f, tol, max_steps, jit_compile=False):
    step = compiled_step(opt, f, jit_compile)
    for i in range(1, max_steps + 1):
        step()
        if float(opt.loss.numpy()) < tol:
            return i
    return None


@pytest.mark.parametrize("n", [2, 10])
def test_rosenbrock_matches_scipy(n):
    x0 = np.tile([-1.2, 1.0], n // 2)
    ref = scipy.optimize.minimize(scipy.optimize.rosen, x0, jac=scipy.optimize.rosen_der,
                                  method="L-BFGS-B",
                                  options=dict(maxcor=10, ftol=0, gtol=1e-10, maxiter=2000))
    assert ref.fun < 1e-10
    opt = LBFGS(tf.constant(x0, tf.float64), memory=10)
    used = evaluations_to(opt, rosenbrock, 1e-10, 3 * ref.nfev)
    assert used is not None, "did not reach the minimum"
    np.testing.assert_allclose(opt.result().numpy(), np.ones(n), atol=1e-4)
    # One evaluation per step; SciPy's nfev counts its line-search evaluations the same way.
    assert used <= 1.3 * ref.nfev, (used, ref.nfev)


def test_ill_conditioned_quadratic_matches_solution_and_scipy():
    rng = np.random.default_rng(0)
    n = 100
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = q @ np.diag(np.logspace(0, 3, n)) @ q.T
    b = rng.standard_normal(n)
    x_star = np.linalg.solve(a, b)
    f_star = -0.5 * b @ x_star
    ref = scipy.optimize.minimize(lambda x: 0.5 * x @ a @ x - b @ x, np.zeros(n),
                                  jac=lambda x: a @ x - b, method="L-BFGS-B",
                                  options=dict(maxcor=10, ftol=0, gtol=1e-9, maxiter=5000))
    a_t, b_t = tf.constant(a), tf.constant(b)

    def f(x):
        return 0.5 * tf.reduce_sum(x * tf.linalg.matvec(a_t, x)) - tf.reduce_sum(b_t * x)

    opt = LBFGS(tf.zeros([n], tf.float64))
    tol = f_star + 1e-10 * abs(f_star)
    used = evaluations_to(opt, f, tol, 3 * ref.nfev)
    assert used is not None and used <= 1.3 * ref.nfev, (used, ref.nfev)
    np.testing.assert_allclose(opt.result().numpy(), x_star, rtol=0, atol=1e-3)


def test_history_ring_buffer_holds_the_last_pairs():
    """After k steps the buffer holds the last `memory` (s, y) pairs of accepted iterates."""
    rng = np.random.default_rng(1)
    n, memory = 6, 3
    scales = np.linspace(1.0, 20.0, n)

    def grad_np(x):
        return 2.0 * scales * (x - 1.0) + 4.0 * x ** 3

    def f(x):
        return tf.reduce_sum(scales * (x - 1.0) ** 2 + x ** 4)

    opt = LBFGS(tf.constant(rng.standard_normal(n)), memory=memory)
    step = compiled_step(opt, f)
    accepted_points = [opt.x.numpy().copy()]
    for _ in range(8):
        before = int(opt.accepted.numpy())
        step()
        if int(opt.accepted.numpy()) > before:
            accepted_points.append(opt.x.numpy().copy())
    accepted_points = accepted_points[1:]  # the first entry is x0 before any evaluation
    assert len(accepted_points) >= memory + 2
    assert int(opt.num_pairs.numpy()) == memory
    s_hist, y_hist = (t.numpy() for t in opt.history())
    xs = np.array(accepted_points[-(memory + 1):])
    np.testing.assert_allclose(s_hist, np.diff(xs, axis=0), rtol=1e-10, atol=1e-12)
    grads = np.array([grad_np(x) for x in xs])
    np.testing.assert_allclose(y_hist, np.diff(grads, axis=0), rtol=1e-8, atol=1e-10)
    # The history survives across separate compiled calls: the pairs are in tf.Variables.
    rho = opt.rho.numpy()
    assert np.all(rho > 0)


def test_xla_and_graph_give_the_same_trajectory():
    x0 = tf.constant([-1.2, 1.0, -0.5, 0.7], tf.float64)
    plain, xla = LBFGS(x0), LBFGS(x0)
    step_plain, step_xla = compiled_step(plain, rosenbrock), compiled_step(xla, rosenbrock, True)
    for _ in range(25):
        step_plain()
        step_xla()
    np.testing.assert_allclose(xla.result().numpy(), plain.result().numpy(), rtol=1e-8)
    assert int(xla.accepted.numpy()) == int(plain.accepted.numpy())


def test_nan_proposals_are_backtracked():
    """f(x) = Σ x − log x is NaN for x < 0; a step that overshoots must be shortened, not fail."""
    opt = LBFGS(tf.constant([0.05, 0.2, 3.0], tf.float64), initial_step=5.0)
    step = compiled_step(opt, lambda x: tf.reduce_sum(x - tf.math.log(x)))
    oks = [bool(step()[1]) for _ in range(40)]
    assert all(oks)
    np.testing.assert_allclose(opt.result().numpy(), np.ones(3), atol=1e-6)


def test_nan_at_start_reports_failure():
    opt = LBFGS(tf.constant([-1.0, 2.0], tf.float64))
    step = compiled_step(opt, lambda x: tf.reduce_sum(tf.sqrt(x)))
    _, ok = step()
    assert not bool(ok)


def test_adam_matches_numpy_reference():
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal(5)
    target = rng.standard_normal(5)
    lr, b1, b2, eps = 0.05, 0.9, 0.999, 1e-8
    opt = Adam(tf.constant(x0), learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=eps)
    step = compiled_step(opt, lambda x: tf.reduce_sum((x - target) ** 4))
    x, m, v = x0.copy(), np.zeros(5), np.zeros(5)
    for t in range(1, 31):
        g = 4.0 * (x - target) ** 3
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
        step()
    np.testing.assert_allclose(opt.result().numpy(), x, rtol=1e-10, atol=1e-12)


def test_adam_refuses_nan_without_moving():
    opt = Adam(tf.constant([-1.0, 2.0], tf.float64))
    step = compiled_step(opt, lambda x: tf.reduce_sum(tf.sqrt(x)))
    _, ok = step()
    assert not bool(ok)
    np.testing.assert_array_equal(opt.result().numpy(), [-1.0, 2.0])


@pytest.mark.parametrize("make", [lambda x: LBFGS(x, memory=3), lambda x: Adam(x)])
def test_reset_and_restore_continue_exactly(make):
    """reset(x0) is a fresh optimizer; restore(state()) continues the saved run bit for bit."""
    x0 = tf.constant([-1.2, 1.0, 0.5, -0.3])
    reference = make(x0)
    step = compiled_step(reference, rosenbrock)
    for _ in range(8):
        step()
    saved = reference.state()
    assert set(saved) == set(reference.variables)
    for _ in range(6):
        step()
    # A second optimizer restored from the state after 8 steps takes the same 6 steps.
    other = make(tf.zeros([4]))
    other.restore(saved)
    other_step = compiled_step(other, rosenbrock)
    for _ in range(6):
        other_step()
    for name, variable in reference.variables.items():
        np.testing.assert_array_equal(other.variables[name].numpy(), variable.numpy(), name)
    # reset(x0) makes it a fresh optimizer again: the same first 8 steps as the reference.
    other.reset(x0)
    for _ in range(8):
        other_step()
    for name, value in saved.items():
        np.testing.assert_array_equal(other.variables[name].numpy(), value, name)
    with pytest.raises(ValueError, match="shape"):
        make(tf.zeros([5])).restore(saved)
