"""Batch norm over the global batch (:mod:`nst_tf.batch_norm`): two replicas of
``MirroredStrategy`` (two logical CPUs, in a subprocess: logical devices must be set before
TensorFlow starts) normalize, move their averages and back-propagate as one device does on the
whole batch, checked against NumPy in float64."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_REPLICAS = r"""
import json
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from nst_tf.batch_norm import BatchNorm, SlimBatchNorm

rng = np.random.default_rng(0)
x = (3.0 + 2.0 * rng.standard_normal((4, 5, 6, 3))).astype(np.float32)
dy = rng.standard_normal((4, 5, 6, 3)).astype(np.float32)
report = {}
for name, cls in (("keras", BatchNorm), ("slim", SlimBatchNorm)):
    for replicas in (1, 2):
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])
        with strategy.scope():
            layer = cls(momentum=0.5, epsilon=1e-3, scale=True)
            layer.build(x.shape)
            layer.gamma.assign([0.5, 1.0, 2.0])
            layer.beta.assign([0.1, -0.2, 0.3])
        shares = tf.data.Dataset.from_tensor_slices((x, dy)).batch(4)   # split between replicas

        def step(inputs):
            xs, dys = inputs
            with tf.GradientTape() as tape:
                tape.watch(xs)
                out = layer(xs, training=True)
                loss = tf.reduce_sum(out * dys)
            return out, tape.gradient(loss, [xs, layer.gamma, layer.beta])

        it = iter(strategy.experimental_distribute_dataset(shares))
        out, (dx, dgamma, dbeta) = strategy.run(tf.function(step), args=(next(it),))
        local = strategy.experimental_local_results
        report[f"{name}{replicas}"] = {
            "out": np.concatenate([t.numpy() for t in local(out)]).tolist(),
            "dx": np.concatenate([t.numpy() for t in local(dx)]).tolist(),
            "dgamma": np.sum([t.numpy() for t in local(dgamma)], 0).tolist(),
            "dbeta": np.sum([t.numpy() for t in local(dbeta)], 0).tolist(),
            "moving": [layer.moving_mean.numpy().tolist(), layer.moving_variance.numpy().tolist()]}
print("RESULT " + json.dumps({"x": x.tolist(), "dy": dy.tolist(), "runs": report}))
"""


@pytest.fixture(scope="module")
def replicas():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", _REPLICAS], capture_output=True, text=True,
                            env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    line = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _reference(x, dy, gamma, beta, eps, momentum, bessel):
    """Batch norm of the whole batch in float64: output, gradients, moving statistics."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    axes = (0, 1, 2)
    count = x.size // x.shape[-1]
    mean, var = x.mean(axes), x.var(axes)
    xhat = (x - mean) / np.sqrt(var + eps)
    out = gamma * xhat + beta
    dxhat = dy * gamma
    dx = (dxhat - dxhat.mean(axes) - xhat * (dxhat * xhat).mean(axes)) / np.sqrt(var + eps)
    moving_var = var * count / (count - 1) if bessel else var
    return {"out": out, "dx": dx, "dgamma": (dy * xhat).sum(axes), "dbeta": dy.sum(axes),
            "moving": [(1 - momentum) * mean, momentum * 1.0 + (1 - momentum) * moving_var]}


@pytest.mark.slow
@pytest.mark.parametrize("name,bessel", [("keras", False), ("slim", True)])
@pytest.mark.parametrize("replicas_count", [1, 2])
def test_two_replicas_normalize_the_global_batch(replicas, name, bessel, replicas_count):
    """Output, input and parameter gradients and the moving averages of two replicas holding
    two examples each are those of the four-example batch (the per-replica statistics of Keras'
    own layer are off by 0.1 or more here: the shares' means differ)."""
    run = replicas["runs"][f"{name}{replicas_count}"]
    want = _reference(replicas["x"], replicas["dy"], np.array([0.5, 1.0, 2.0]),
                      np.array([0.1, -0.2, 0.3]), 1e-3, 0.5, bessel)
    for key in ("out", "dx", "dgamma", "dbeta"):
        np.testing.assert_allclose(run[key], want[key], rtol=1e-4, atol=1e-4, err_msg=key)
    np.testing.assert_allclose(run["moving"], want["moving"], rtol=1e-5, atol=1e-6)


def test_global_moments_outside_a_strategy_are_the_batch_moments():
    import tensorflow as tf

    from nst_tf.batch_norm import global_moments

    x = np.random.default_rng(1).standard_normal((3, 4, 5, 2)).astype(np.float32) + 10
    mean, variance, count = global_moments(tf.constant(x), axes=[0, 1, 2])
    np.testing.assert_allclose(mean, x.astype(np.float64).mean((0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(variance, x.astype(np.float64).var((0, 1, 2)), rtol=1e-4)
    assert float(count) == 60
