"""Every loss and its gradient against an independent NumPy / SciPy float64 implementation.

TF runs in float64 here so the comparison can demand a relative error <= 1e-5; a separate test
checks that float32 agrees to float32 precision. Gradients are NumPy analytic gradients, or
central finite differences in float64 (step 1e-6: truncation error ~h² and round-off
~1e-16/h are both far below 1e-5).
"""

import numpy as np
import pytest
import tensorflow as tf

from nst_tf import losses
from nst_tf.errors import ConfigError
from numpy_losses import (np_gaussian_w2, np_gram, np_gram_loss_and_grad, np_mean_std_loss,
                          np_sliced_wasserstein_and_grad, np_tv_and_grad)

RTOL = 1e-5


def rel_err(actual, expected):
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    return np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-300)


def tf_value_and_grad(fn, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = fn(x)
    return value.numpy(), tape.gradient(value, x).numpy()


def finite_diff(fn, x, h=1e-6):
    x = np.array(x, np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (fn(up) - fn(down)) / (2 * h)
    return grad


# --- Tests -----------------------------------------------------------------------------------

def test_gram_matrix_matches_numpy(rng):
    f = rng.standard_normal((2, 5, 7, 6))
    assert rel_err(losses.gram_matrix(tf.constant(f)).numpy(), np_gram(f)) <= RTOL


def test_gram_loss_and_gradient(rng):
    f = rng.standard_normal((2, 5, 6, 4))
    target = np_gram(rng.standard_normal((1, 7, 3, 4)))
    value, grad = tf_value_and_grad(lambda x: losses.gram_loss(x, target), f)
    ref_value, ref_grad = np_gram_loss_and_grad(f, target)
    assert rel_err(value, ref_value) <= RTOL
    assert rel_err(grad, ref_grad) <= RTOL
    assert rel_err(grad, finite_diff(lambda x: np_gram_loss_and_grad(x, target)[0], f)) <= RTOL


def test_content_loss_and_gradient(rng):
    f = rng.standard_normal((2, 4, 5, 3))
    target = rng.standard_normal((2, 4, 5, 3))
    value, grad = tf_value_and_grad(lambda x: losses.content_loss(x, target), f)
    assert rel_err(value, np.mean((f - target) ** 2)) <= RTOL
    assert rel_err(grad, 2 * (f - target) / f.size) <= RTOL


@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_total_variation_and_gradient(rng, kind):
    x = rng.random((2, 6, 5, 3))
    value, grad = tf_value_and_grad(lambda im: losses.total_variation_loss(im, kind), x)
    ref_value, ref_grad = np_tv_and_grad(x, kind)
    assert rel_err(value, ref_value) <= RTOL
    assert rel_err(grad, ref_grad) <= RTOL
    if kind == "l2":
        fd = finite_diff(lambda im: np_tv_and_grad(im, "l2")[0], x)
        assert rel_err(grad, fd) <= RTOL


def test_total_variation_rejects_unknown_kind():
    with pytest.raises(ValueError, match="'l1' or 'l2'"):
        losses.total_variation_loss(tf.zeros([1, 4, 4, 3]), kind="l3")


def test_total_variation_is_zero_for_constant_image():
    assert float(losses.total_variation_loss(tf.fill([1, 5, 5, 3], 0.3))) == 0.0


@pytest.mark.parametrize("m", [3, 5, 8, 13, 40])
def test_resample_sorted_matches_numpy_interp(rng, m):
    values = np.sort(rng.standard_normal((2, 3, m)), axis=-1)
    for n in (1, 4, m, 17):
        out = losses.resample_sorted(tf.constant(values), n).numpy()
        ref = np.stack([[np.interp((np.arange(n) + 0.5) / n, (np.arange(m) + 0.5) / m, row)
                         for row in batch] for batch in values])
        assert out.shape == (2, 3, n)
        assert rel_err(out, ref) <= 1e-12
    np.testing.assert_array_equal(losses.resample_sorted(tf.constant(values), m).numpy(), values)


def test_random_directions_are_unit_and_seeded():
    d = losses.random_directions(16, 8, seed=3).numpy()
    assert d.shape == (16, 8)
    np.testing.assert_allclose(np.linalg.norm(d, axis=0), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(d, losses.random_directions(16, 8, seed=3).numpy())
    assert not np.allclose(d, losses.random_directions(16, 8, seed=4).numpy())
    np.testing.assert_array_equal(losses.random_directions(16, None, seed=3).shape, (16, 16))
    # Zero directions would make a loss that is always 0: refused (1 is the smallest count).
    assert losses.random_directions(16, 1, seed=3).shape == (16, 1)
    with pytest.raises(ValueError, match="num_projections must be >= 1, got 0"):
        losses.random_directions(16, 0)


@pytest.mark.parametrize("target_hw", [(4, 5), (7, 6), (2, 3), (3, 3)])
def test_sliced_wasserstein_and_gradient(rng, target_hw):
    """Image 4x5 against targets of equal, larger and smaller spatial size."""
    f = rng.standard_normal((2, 4, 5, 6))
    target = rng.standard_normal((1, *target_hw, 6)) * 1.5 + 0.3
    directions = losses.random_directions(6, 5, seed=1, dtype=tf.float64).numpy()
    value, grad = tf_value_and_grad(
        lambda x: losses.sliced_wasserstein_loss(x, tf.constant(target), num_projections=5,
                                                 seed=1), f)
    ref_value, ref_grad = np_sliced_wasserstein_and_grad(f, target, directions)
    assert rel_err(value, ref_value) <= RTOL
    assert rel_err(grad, ref_grad) <= RTOL
    fd = finite_diff(lambda x: np_sliced_wasserstein_and_grad(x, target, directions)[0], f)
    assert rel_err(grad, fd) <= RTOL


def test_sliced_wasserstein_is_zero_for_permuted_pixels(rng):
    f = rng.standard_normal((1, 4, 4, 3))
    shuffled = rng.permutation(f.reshape(16, 3)).reshape(1, 4, 4, 3)
    assert abs(float(losses.sliced_wasserstein_loss(tf.constant(f), tf.constant(shuffled)))) < 1e-24
    assert float(losses.sliced_wasserstein_loss(tf.constant(f), tf.constant(f + 0.5))) > 0.01


def test_gaussian_w2_and_gradient(rng):
    mix = rng.standard_normal((4, 4))
    f = rng.standard_normal((2, 5, 6, 4)) @ mix + 0.2
    target = rng.standard_normal((1, 6, 7, 4)) @ rng.standard_normal((4, 4)) - 0.4
    value, grad = tf_value_and_grad(lambda x: losses.gaussian_w2_loss(x, tf.constant(target)), f)
    assert rel_err(value, np_gaussian_w2(f, target)) <= RTOL
    fd = finite_diff(lambda x: np_gaussian_w2(x, target), f)
    assert rel_err(grad, fd) <= RTOL


def test_gaussian_w2_matches_closed_form_for_diagonal_gaussians(rng):
    """For diagonal covariances W2² = |μ₁−μ₂|² + Σ (σ₁ − σ₂)² (a third, independent formula)."""
    x = rng.standard_normal((1, 30, 30, 3))
    y = rng.standard_normal((1, 30, 30, 3))
    # Whiten so the sample covariances are exactly diagonal, then scale the channels.
    def whiten(a, scale, shift):
        flat = a.reshape(-1, 3)
        flat = flat - flat.mean(0)
        cov = flat.T @ flat / len(flat)
        vals, vecs = np.linalg.eigh(cov)
        flat = flat @ vecs / np.sqrt(vals) * scale + shift
        return flat.reshape(a.shape)
    x = whiten(x, np.array([1.0, 2.0, 0.5]), np.array([0.1, 0.2, 0.3]))
    y = whiten(y, np.array([3.0, 1.0, 0.25]), np.array([-0.1, 0.0, 1.0]))
    expected = (np.sum((np.array([0.1, 0.2, 0.3]) - np.array([-0.1, 0.0, 1.0])) ** 2)
                + np.sum((np.array([1.0, 2.0, 0.5]) - np.array([3.0, 1.0, 0.25])) ** 2))
    assert rel_err(losses.gaussian_w2_loss(tf.constant(x), tf.constant(y)).numpy(), expected) <= RTOL


def test_gaussian_w2_gradient_finite_when_covariance_is_singular(rng):
    """Fewer pixels than channels (as at deep layers of small images): rank-deficient Σ."""
    f = tf.constant(rng.standard_normal((1, 2, 2, 16)).astype(np.float32))
    target = tf.constant(rng.standard_normal((1, 3, 2, 16)).astype(np.float32))
    value, grad = tf_value_and_grad(lambda x: losses.gaussian_w2_loss(x, target), f)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert np.linalg.norm(grad) > 0
    same, grad_same = tf_value_and_grad(lambda x: losses.gaussian_w2_loss(x, f), f.numpy())
    assert abs(same) < 1e-3 and np.all(np.isfinite(grad_same))


def test_mean_std_and_gradient(rng):
    f = rng.standard_normal((2, 4, 5, 3)) * 2 + 1
    f[..., 0] *= 1e-3  # a nearly constant channel: the eps in sqrt(var + eps) matters here
    target = rng.standard_normal((1, 6, 3, 3))
    value, grad = tf_value_and_grad(lambda x: losses.mean_std_loss(x, tf.constant(target)), f)
    assert rel_err(value, np_mean_std_loss(f, target)) <= RTOL
    assert rel_err(grad, finite_diff(lambda x: np_mean_std_loss(x, target), f)) <= RTOL


@pytest.mark.parametrize("name", sorted(losses.STYLE_LOSSES))
def test_style_loss_objects_match_pure_functions(rng, name):
    f = rng.standard_normal((2, 5, 4, 6))
    target = rng.standard_normal((1, 6, 7, 6)) + 0.5
    obj = losses.STYLE_LOSSES[name]
    assert obj.name == name
    stats = obj.target(tf.constant(target))
    value = obj.loss(tf.constant(f), stats).numpy()
    pure = {
        "gram": lambda: losses.gram_loss(f, np_gram(target)),
        "sliced_wasserstein": lambda: losses.sliced_wasserstein_loss(tf.constant(f),
                                                                     tf.constant(target)),
        "gaussian_w2": lambda: np_gaussian_w2(f, target),
        "mean_std": lambda: np_mean_std_loss(f, target),
    }[name]()
    assert rel_err(value, pure) <= RTOL
    # The batch loss is the mean of the per-example losses against the same target.
    singles = [obj.loss(tf.constant(f[i:i + 1]), stats).numpy() for i in range(2)]
    assert rel_err(value, np.mean(singles)) <= RTOL


@pytest.mark.parametrize("name", ["gram", "gaussian_w2", "mean_std"])
def test_losses_from_sums_over_tiles_match_numpy(rng, name):
    """The tiled route: feature sums of two pixel blocks, added, give the whole image's
    statistics (``from_moments``, ``target_from_moments``) and so the NumPy float64 loss."""
    f = rng.standard_normal((1, 6, 5, 4)) * 1.5 + 0.7
    target = rng.standard_normal((1, 7, 3, 4)) - 0.3
    obj = losses.STYLE_LOSSES[name]

    def summed(a, rows):
        parts = [losses.feature_sums(tf.constant(a[:, :rows]), obj.moments),
                 losses.feature_sums(tf.constant(a[:, rows:]), obj.moments)]
        return {k: parts[0][k] + parts[1][k] for k in obj.moments}

    prepared = obj.from_moments(summed(f, 2), 30.0)
    stats = obj.target_from_moments(summed(target, 4), 21.0)
    reference = {"gram": lambda: np.mean((np_gram(f) - np_gram(target)) ** 2),
                 "gaussian_w2": lambda: np_gaussian_w2(f, target),
                 "mean_std": lambda: np_mean_std_loss(f, target)}[name]()
    # target_from_moments keeps float32 statistics (as target() of a float32 style image).
    assert rel_err(obj.compare(prepared, stats).numpy(), reference) <= 1e-5


@pytest.mark.parametrize("name", sorted(losses.STYLE_LOSSES))
def test_float32_agrees_with_float64(rng, name):
    """float32 inputs stay within float32 round-off (~1e-7 per op, growing with sums)."""
    f = rng.standard_normal((1, 8, 8, 8))
    target = rng.standard_normal((1, 9, 7, 8)) * 0.7 + 0.2
    obj = losses.STYLE_LOSSES[name]
    v64 = obj.loss(tf.constant(f), obj.target(tf.constant(target))).numpy()
    f32, t32 = tf.constant(f, tf.float32), tf.constant(target, tf.float32)
    v32 = obj.loss(f32, obj.target(t32)).numpy()
    assert v32.dtype == np.float32
    assert rel_err(v32, v64) <= 1e-4


def test_style_losses_compile_with_xla(rng):
    f = tf.constant(rng.standard_normal((1, 8, 8, 4)).astype(np.float32))
    target = tf.constant(rng.standard_normal((1, 6, 6, 4)).astype(np.float32))
    for name, obj in losses.STYLE_LOSSES.items():
        stats = obj.target(target)

        @tf.function(jit_compile=True)
        def step(x, obj=obj, stats=stats):
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = obj.loss(x, stats)
            return value, tape.gradient(value, x)

        value, grad = step(f)
        assert np.isclose(value.numpy(), obj.loss(f, stats).numpy(), rtol=1e-4), name
        assert np.all(np.isfinite(grad.numpy())), name


def test_get_style_loss():
    assert losses.get_style_loss("gram") is losses.STYLE_LOSSES["gram"]
    custom = losses.SlicedWassersteinStyleLoss(num_projections=3, seed=5)
    assert losses.get_style_loss(custom) is custom
    with pytest.raises(ConfigError, match="unknown style loss 'grum'.*gaussian_w2"):
        losses.get_style_loss("grum")


@pytest.mark.parametrize("name", sorted(losses.STYLE_LOSSES))
def test_blended_loss_is_weighted_sum(rng, name):
    obj = losses.STYLE_LOSSES[name]
    f = tf.constant(rng.standard_normal((1, 6, 5, 4)))
    stats = [obj.target(tf.constant(rng.standard_normal((1, h, 4, 4)) + h)) for h in (3, 7, 5)]
    weights = [0.2, 0.0, 0.8]
    expected = sum(w * obj.loss(f, s).numpy() for w, s in zip(weights, stats))
    assert rel_err(obj.blended_loss(f, stats, weights).numpy(), expected) <= 1e-12
    assert obj.blended_loss(f, stats, [0, 0, 0]).numpy() == 0.0


def test_custom_style_loss_is_one_small_class(rng):
    class PeakLoss(losses.StyleLoss):  # compares per-channel maxima
        name = "peak"

        def target(self, features):
            return tf.reduce_max(features, axis=[1, 2])

        def compare(self, features, peaks):
            return tf.reduce_sum(tf.abs(tf.reduce_max(features, axis=[1, 2]) - peaks))

    f, t = rng.standard_normal((1, 4, 4, 3)), rng.standard_normal((1, 5, 2, 3))
    expected = np.sum(np.abs(f.max(axis=(1, 2)) - t.max(axis=(1, 2))))
    assert rel_err(PeakLoss()(tf.constant(f), tf.constant(t)).numpy(), expected) <= 1e-12
    assert losses.get_style_loss(PeakLoss()).name == "peak"
