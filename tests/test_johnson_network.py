"""nst_tf.networks.johnson_network: architecture, output range and size, save/load round trip."""

import keras
import numpy as np
import pytest

from nst_tf.layers import InstanceNormalization, NearestUpsample2D, ReflectionPad2D
from nst_tf.networks import johnson_network


def _expected_params(alpha=1.0, blocks=5):
    w32, w64, w128 = int(alpha * 32), int(alpha * 64), int(alpha * 128)
    convs = [(9, 3, w32), (3, w32, w64), (3, w64, w128)] + [(3, w128, w128)] * (2 * blocks) \
        + [(3, w128, w64), (3, w64, w32)]
    kernels = sum(k * k * cin * cout for k, cin, cout in convs)
    norms = sum(2 * cout for _, _, cout in convs)
    return kernels + norms + 9 * 9 * w32 * 3 + 3          # last conv has a bias, no norm


@pytest.mark.parametrize("alpha,blocks", [(1.0, 5), (0.25, 2)])
def test_parameter_count_matches_architecture(alpha, blocks):
    net = johnson_network(alpha=alpha, num_residual=blocks)
    assert net.count_params() == _expected_params(alpha, blocks)
    kinds = [type(layer) for layer in net.layers]
    assert kinds.count(NearestUpsample2D) == 2
    assert kinds.count(InstanceNormalization) == 5 + 2 * blocks
    assert kinds.count(ReflectionPad2D) == 6 + 2 * blocks
    assert not any("Transpose" in k.__name__ for k in kinds)


def test_output_size_range_and_dtype(rng):
    net = johnson_network(alpha=0.25)
    out = np.asarray(net(rng.random((2, 30, 37, 3), dtype=np.float32)))
    assert out.shape == (2, 32, 40, 3)
    assert out.dtype == np.float32 and out.min() > 0.0 and out.max() < 1.0


def test_instance_norm_makes_output_independent_of_brightness_scale(rng):
    """Instance norm after the first conv: scaling the input contrast leaves the output unchanged."""
    net = johnson_network(alpha=0.25, num_residual=1)
    x = rng.random((1, 24, 24, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(net(x)), np.asarray(net(0.5 * x)), atol=2e-4)


def test_keras_save_load_round_trip(tmp_path, rng):
    net = johnson_network(alpha=0.25, num_residual=1)
    path = str(tmp_path / "johnson.keras")
    net.save(path)
    loaded = keras.models.load_model(path)
    x = rng.random((1, 20, 20, 3), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(net(x)), np.asarray(loaded(x)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        johnson_network(alpha=0.01)
    with pytest.raises(ValueError, match="num_residual"):
        johnson_network(num_residual=-1)
