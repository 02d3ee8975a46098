"""What the loopback multi-worker tests record of a run, in the workers
(tests/multiworker_worker.py) and in the one-process references (tests/test_multiworker.py)."""

import os

import keras
import numpy as np
from PIL import Image


def _pattern(height, width, i):
    y, x = np.mgrid[0:height, 0:width]
    wave = np.sin(x / (2.0 + i) + y / (3.0 + 0.5 * i))[..., None]
    return np.clip(127 + 120 * wave * np.array([1.0, 0.4 - 0.1 * i, -0.6]), 0, 255) \
        .astype(np.uint8)


def make_images(root):
    """12 content PNGs of mixed sizes in ``root/content`` and 3 style PNGs, generated:
    ``{"content": folder, "styles": [paths]}``."""
    os.makedirs(os.path.join(root, "content"), exist_ok=True)
    for i in range(12):
        Image.fromarray(_pattern(36 + 2 * i, 48 - i, i)).save(
            os.path.join(root, "content", f"c{i:02d}.png"))
    styles = []
    for i in range(3):
        styles.append(os.path.join(root, f"style{i}.png"))
        Image.fromarray(_pattern(40, 40, 5 + 2 * i)[:, ::-1].copy()).save(styles[-1])
    return {"content": os.path.join(root, "content"), "styles": styles}


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
