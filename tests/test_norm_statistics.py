"""The record/replay point of normalization statistics (nst_tf.norm_statistics).

References are NumPy float64 moments. The point must act while a function is traced, with the
statistics as inputs of the compiled function: one trace serves any statistics.
"""

import numpy as np
import pytest
import tensorflow as tf

from nst_tf import norm_statistics
from nst_tf.errors import ConfigError
from nst_tf.layers import ConditionalInstanceNorm, InstanceNormalization, instance_norm
from nst_tf.models.adain.network import feature_statistics

RNG = np.random.default_rng(0)


def numpy_moments(x):
    x = np.asarray(x, np.float64)
    return x.mean((1, 2), keepdims=True), x.var((1, 2), keepdims=True)


def test_recording_keeps_each_call_in_order_with_the_pixel_count():
    x = RNG.normal(2.0, 3.0, (2, 6, 5, 4)).astype(np.float32)
    layer = InstanceNormalization()
    with norm_statistics.recording() as recorded:
        y = layer(x)
        layer(y[:, :4])
    assert len(recorded.statistics) == 2
    mean, variance, count = recorded.statistics[0]
    np.testing.assert_allclose(mean, numpy_moments(x)[0], rtol=1e-6)
    np.testing.assert_allclose(variance, numpy_moments(x)[1], rtol=1e-5)
    assert float(count) == 30.0 and float(recorded.statistics[1][2]) == 20.0
    assert [list(s.numpy()) for s in recorded.sizes] == [[6, 5], [4, 5]]


def test_replaying_normalizes_a_crop_like_the_whole():
    x = RNG.normal(1.0, 2.0, (1, 12, 10, 3)).astype(np.float32)
    layer = ConditionalInstanceNorm(2)
    weights = np.array([0.3, 0.7], np.float32)
    layer([x, weights])
    layer.gamma.assign(RNG.uniform(0.5, 1.5, (2, 3)))
    layer.beta.assign(RNG.normal(0, 1, (2, 3)))
    with norm_statistics.recording() as recorded:
        whole = layer([x, weights]).numpy()
    with norm_statistics.replaying(recorded.statistics):
        crop = layer([x[:, 3:7, 2:9], weights]).numpy()
    np.testing.assert_allclose(crop, whole[:, 3:7, 2:9], atol=1e-6)
    assert np.abs(layer([x[:, 3:7, 2:9], weights]).numpy() - crop).max() > 1e-2  # own stats


def test_a_compiled_function_takes_the_statistics_as_inputs():
    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 2]),
                                  [(tf.TensorSpec([1, 1, 1, 2]), tf.TensorSpec([1, 1, 1, 2]),
                                    tf.TensorSpec([]))]])
    def normalize(x, statistics):
        with norm_statistics.replaying(statistics):
            return instance_norm(x, 1.0, 0.0, epsilon=0.0)

    x = RNG.normal(size=(1, 4, 3, 2)).astype(np.float32)
    for mean, var in ((0.5, 2.0), (-1.0, 0.25)):
        stats = [(np.full([1, 1, 1, 2], mean, np.float32), np.full([1, 1, 1, 2], var, np.float32),
                  np.float32(7.0))]
        np.testing.assert_allclose(normalize(x, stats), (x - mean) / np.sqrt(var), rtol=1e-5)
    assert normalize.experimental_get_tracing_count() == 1


def test_measuring_replays_earlier_calls_crops_the_measured_one_and_stops():
    x = RNG.normal(size=(1, 8, 8, 3)).astype(np.float32)
    given = [(np.zeros([1, 1, 1, 3]), np.ones([1, 1, 1, 3]), np.float64(64))]
    reached = []
    # Call 1 sees a stride-2 tensor: the box [2, 4, 8, 6) of input pixels is its rows 1..3,
    # columns 2..2; "far" (a bottom past the end) means to the end.
    box = tf.constant([2, 4, 2 ** 30, 6])
    with norm_statistics.measuring(given, 1, box, (2, 1)) as measured:
        first = instance_norm(x, 1.0, 0.0)
        np.testing.assert_allclose(first, x / np.sqrt(1 + 1e-5), rtol=1e-6)  # replayed
        instance_norm(first[:, ::2, ::2], 1.0, 0.0)
        reached.append("after")
    assert not reached
    count, mean, m2 = (np.asarray(t, np.float64) for t in measured.partial)
    crop = first.numpy()[:, ::2, ::2][:, 1:, 2:3].astype(np.float64)
    assert count == crop.shape[1] * crop.shape[2] == 3
    np.testing.assert_allclose(mean, crop.mean((1, 2), keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(m2, ((crop - crop.mean((1, 2), keepdims=True)) ** 2).sum(
        (1, 2), keepdims=True), rtol=1e-5)


def test_measuring_more_calls_than_the_body_makes_is_an_error():
    given = [(np.zeros([1, 1, 1, 1]), np.ones([1, 1, 1, 1]), np.float64(16))] * 2
    with pytest.raises(ValueError, match="fewer than 3"):
        with norm_statistics.measuring(given, 2, tf.constant([0, 0, 4, 4]), (1, 1)):
            instance_norm(tf.ones([1, 4, 4, 1]), 1.0, 0.0)


@pytest.mark.parametrize("parts", [[3, 5, 2], [1, 9], [10]])
def test_accumulator_combines_parts_into_float64_moments(parts):
    data = RNG.normal(1e3, 1e-2, (1, sum(parts), 7, 2))   # large mean, small spread
    total, start = norm_statistics.Accumulator(), 0
    for rows in parts:
        part = data[:, start:start + rows]
        start += rows
        mean = part.mean((1, 2), keepdims=True)
        total.add(part.shape[1] * part.shape[2], mean, ((part - mean) ** 2).sum((1, 2),
                                                                               keepdims=True))
    mean, variance, count = total.result()
    assert count == data.shape[1] * data.shape[2]
    np.testing.assert_allclose(mean, data.mean((1, 2), keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(variance, data.var((1, 2), keepdims=True), rtol=1e-10)


def test_adain_content_statistics_keep_their_convention_with_the_replayed_count():
    x = RNG.normal(3.0, 2.0, (1, 6, 6, 4)).astype(np.float32)
    with norm_statistics.recording() as recorded:
        whole = feature_statistics(x, "pytorch")
    mean, variance, count = (np.asarray(t, np.float64) for t in recorded.statistics[0])
    assert count == 36
    with norm_statistics.replaying(recorded.statistics):
        crop = feature_statistics(x[:, :2, :3], "pytorch")
    # The crop gets the whole tensor's σ with the unbiased N/(N-1) of the whole tensor's N.
    ref = np.sqrt(np.asarray(x, np.float64).var((1, 2), ddof=1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(crop[1], ref, rtol=1e-5)
    np.testing.assert_allclose(whole[1], ref, rtol=1e-5)
    # Style statistics describe the style image: never recorded nor replayed.
    with norm_statistics.recording() as recorded:
        feature_statistics(x, "pytorch", role="style")
    assert recorded.statistics == []


def test_masked_adain_statistics_cannot_be_replayed():
    x = tf.ones([1, 4, 4, 2])
    with norm_statistics.replaying([]), pytest.raises(ConfigError, match="mask"):
        feature_statistics(x, mask=tf.ones([1, 4, 4, 1]))


def relative_errors(moments, x):
    mean, variance = (np.asarray(t, np.float64) for t in moments(tf.constant(x))[:2])
    want_mean, want_variance = numpy_moments(x)
    return (float(np.abs(mean / want_mean - 1).max()),
            float(np.abs(variance / want_variance - 1).max()))


@pytest.mark.parametrize("shape", [(1, 1100, 1500, 2), (2, 37, 30000, 1), (1, 20000, 24, 1)])
def test_moments_stay_at_float32_resolution_where_one_long_float32_sum_drifts(shape):
    """The cause of patches "exact" to only 2.4e-3 at 1100x1500: ``tf.nn.moments`` (Magenta's
    arithmetic, one running float32 sum per channel) gets the variance of 1.65 M pixels 1e-4
    wrong; :func:`nst_tf.norm_statistics.two_pass_moments` (rows, then the row sums) and the
    float64 partial sums of patch cores stay near float32's resolution, in any aspect ratio."""
    x = (1.0 + 2.0 * np.random.default_rng(3).random(shape)).astype(np.float32)
    assert max(relative_errors(norm_statistics.two_pass_moments, x)) <= 2e-6
    old = relative_errors(lambda v: tf.nn.moments(v, axes=[1, 2], keepdims=True), x)
    if shape == (1, 1100, 1500, 2):
        assert old[1] > 2e-5                     # measured 9.8e-5: the test can fail
    box = tf.constant([0, 0, 2 ** 30, 2 ** 30])         # the whole tensor
    count, mean, m2 = norm_statistics.crop_moments(tf.constant(x), box, (1, 1))
    want_mean, want_variance = numpy_moments(x)
    assert float(count) == shape[1] * shape[2]
    np.testing.assert_allclose(mean, want_mean, rtol=1e-7)
    np.testing.assert_allclose(np.asarray(m2) / float(count), want_variance, rtol=1e-6)
