"""Test helpers for the pastiche API tests: random multi-style networks whose styles differ."""

import numpy as np

from nst_tf.networks import pastiche_network


def random_pastiche(num_styles, alpha=0.25, seed=0):
    """A :func:`pastiche_network` with random kernels and random per-style gamma/beta.

    The default init (gamma 1, beta 0) makes every style identical and the output nearly flat;
    random values make label or mixing mistakes visible.
    """
    network = pastiche_network(num_styles, alpha=alpha)
    rng = np.random.default_rng(seed)
    for weight in network.weights:
        shape = tuple(weight.shape)
        if weight.path.endswith("gamma"):
            value = 1.0 + 0.5 * rng.standard_normal(shape)
        elif weight.path.endswith("beta"):
            value = 0.5 * rng.standard_normal(shape)
        else:
            value = rng.standard_normal(shape) * np.sqrt(1.0 / np.prod(shape[:-1]))
        weight.assign(value.astype(np.float32))
    return network
