"""What the loopback multi-worker tests record of a run, in the workers
(tests/multiworker_worker.py) and in the one-process references (tests/test_multiworker.py)."""

import keras
import numpy as np


class StepLosses(keras.callbacks.Callback):
    """The loss of every step (the global batch's, computed before that step's update), and the
    network's weights when training begins."""

    def __init__(self):
        super().__init__()
        self.losses, self.initial = [], None

    def on_train_begin(self, logs=None):
        self.initial = self.model.network.get_weights()

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(np.ravel(logs["loss"])[0]))


def moving_statistics(network):
    """``{variable path: values}`` of every batch-norm moving statistic of ``network``."""
    return {w.path: np.asarray(w.numpy(), np.float64).tolist() for w in network.weights
            if "moving_" in w.path}
