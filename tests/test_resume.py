"""Checkpoints: a crashed or interrupted run resumes and ends exactly where an uninterrupted one
does (L-BFGS history, multi-scale level, loss history), whole-image and tiled."""

import os

import numpy as np
import pytest

from nst_tf import gatys
from nst_tf.errors import CheckpointError, ConfigError
from nst_tf.io import OutputPathError

LAYERS = ["conv1_1", "conv2_1", "conv3_1"]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:50, 0:46] / 15.0
    content = np.clip(np.stack([x / 3, y / 3, 0.5 + 0.3 * np.sin(x * y)], -1), 0, 1)
    return content.astype(np.float32), (rng.random((30, 34, 3)) ** 2).astype(np.float32)


OPTIONS = dict(scales=[32, 50], steps=[4, 6], weights=None, content_layers=["conv3_1"],
               style_layers=LAYERS, style_weight=1e-4)


class Count:
    """A callback that counts the steps a run takes (a resumed run takes only the rest)."""

    def __init__(self):
        self.steps = 0

    def on_step(self, step, image, loss, parts):
        self.steps += 1


class Stop:
    """A callback that raises ``error`` at the ``at``-th step of the whole run."""

    def __init__(self, at, error):
        self.at, self.error, self.calls = at, error, 0

    def on_step(self, step, image, loss, parts):
        self.calls += 1
        if self.calls == self.at:
            raise self.error


@pytest.mark.parametrize("tile_size", [None, 24])
def test_a_crashed_run_resumes_exactly(tmp_path, images, tile_size):
    content, style = images
    options = dict(OPTIONS, tile_size=tile_size)
    reference = gatys.run(content, style, **options)
    path = str(tmp_path / "run.ckpt.npz")
    # Crash at the 3rd step of the second scale (step 7 of 10): the last save was step 2.
    with pytest.raises(RuntimeError, match="power cut"):
        gatys.run(content, style, checkpoint=path, checkpoint_every=2,
                  callbacks=[Stop(7, RuntimeError("power cut"))], **options)
    assert os.path.exists(path)
    count = Count()
    resumed = gatys.run(content, style, checkpoint=path, checkpoint_every=2, callbacks=[count],
                        **options)
    np.testing.assert_array_equal(resumed.image, reference.image)
    np.testing.assert_array_equal(resumed.losses, reference.losses)
    assert resumed.steps == reference.steps == 10
    # What was resumed: the first scale (4 steps) and 2 of the second's 6 were restored, so the
    # rerun took the 4 steps left (a restart from scratch would take all 10 and end the same).
    assert count.steps == 4


def test_ctrl_c_saves_and_a_finished_run_can_be_continued(tmp_path, images):
    content, style = images
    options = dict(OPTIONS, scales=None, size=40, steps=6)
    reference = gatys.run(content, style, **options)
    path = str(tmp_path / "run.npz")
    stopped = gatys.run(content, style, checkpoint=path,
                        callbacks=[Stop(4, KeyboardInterrupt())], **options)
    assert stopped.interrupted and stopped.steps == 4
    counts = [Count() for _ in range(3)]
    resumed = gatys.run(content, style, checkpoint=path, callbacks=[counts[0]], **options)
    np.testing.assert_array_equal(resumed.image, reference.image)
    # Finished: a rerun restores it without a step; more steps continue the same trajectory.
    again = gatys.run(content, style, checkpoint=path, callbacks=[counts[1]], **options)
    np.testing.assert_array_equal(again.image, reference.image)
    longer = gatys.run(content, style, checkpoint=path, callbacks=[counts[2]],
                       **dict(options, steps=8))
    straight = gatys.run(content, style, **dict(options, steps=8))
    np.testing.assert_array_equal(longer.image, straight.image)
    # Each run took only the steps its checkpoint did not hold (a restart would take 6, 6, 8).
    assert [c.steps for c in counts] == [2, 0, 2]


def test_a_checkpoint_of_another_run_is_refused(tmp_path, images):
    content, style = images
    options = dict(OPTIONS, scales=None, size=32, steps=2)
    path = str(tmp_path / "run.npz")
    gatys.run(content, style, checkpoint=path, **options)
    with pytest.raises(CheckpointError, match="different run.*delete it"):
        gatys.run(content, style, checkpoint=path, **dict(options, style_weight=1.0))
    with pytest.raises(CheckpointError, match="different run"):
        gatys.run(content[::-1], style, checkpoint=path, **options)
    with open(path, "wb") as f:
        f.write(b"not a zip")
    with pytest.raises(CheckpointError, match="cannot read the checkpoint"):
        gatys.run(content, style, checkpoint=path, **options)
    with pytest.raises(ConfigError, match="checkpoint_every needs checkpoint"):
        gatys.run(content, style, checkpoint_every=3, **options)
    with pytest.raises(OutputPathError, match="does not exist"):
        gatys.run(content, style, checkpoint=str(tmp_path / "no" / "x.npz"), **options)
    assert sorted(os.listdir(tmp_path)) == ["run.npz"]  # nothing half-written left behind


def test_a_saved_image_of_another_size_is_refused_naming_both_sizes(tmp_path):
    from nst_tf.resume import RunCheckpoint

    path = tmp_path / "run.npz"
    trial = np.arange(24 * 36 * 3, dtype=np.float32).reshape(1, 24, 36, 3)
    RunCheckpoint(path, fingerprint="f").write(0, 1, {"trial": trial}, [1.0])
    level = RunCheckpoint(path, fingerprint="f").level(0)
    np.testing.assert_array_equal(level.saved_image((24, 36)), trial)
    with pytest.raises(CheckpointError, match="its image is 24x36, this scale's 20x30; delete"):
        level.saved_image((20, 30))
