"""nst_tf.training.distribute in one process: TF_CONFIG checks, worker slices of the input,
per-replica splits, lost-worker reporting outside a cluster. The two-process runs are in
tests/test_multiworker.py."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from nst_tf import data
from nst_tf.data import DatasetError
from nst_tf.errors import ConfigError
from nst_tf.models.adain.recipe import AdainRecipe
from nst_tf.models.arbitrary.recipe import ArbitraryRecipe
from nst_tf.training import distribute
from nst_tf.training.local_cluster import free_ports, tf_config


@pytest.fixture
def folder(tmp_path, rng):
    """Seven content images of mixed sizes (7 is not a multiple of any batch here) and three
    style images."""
    (tmp_path / "content").mkdir()
    for i in range(7):
        array = rng.integers(0, 256, (36 + 5 * i, 50 - 2 * i, 3), dtype=np.uint8)
        Image.fromarray(array).save(tmp_path / "content" / f"c{i}.png")
    styles = []
    for i in range(3):
        styles.append(str(tmp_path / f"s{i}.png"))
        Image.fromarray(rng.integers(0, 256, (70, 60 + 5 * i, 3), dtype=np.uint8)).save(styles[-1])
    return {"content": str(tmp_path / "content"), "styles": styles}


def _config(**kwargs):
    return {"TF_CONFIG": json.dumps(kwargs)}


def test_tf_config_errors_name_the_problem():
    two = {"worker": ["h0:2222", "h1:2222"]}
    assert distribute.read_tf_config(_config(cluster=two, task={"type": "worker", "index": 1})) \
        == {"cluster": two, "task": {"type": "worker", "index": 1}}
    with_chief = {"chief": ["c:1"], "worker": ["w:1"]}
    assert distribute.read_tf_config(
        _config(cluster=with_chief, task={"type": "chief", "index": 0}))["cluster"] == with_chief
    cases = [({}, "TF_CONFIG environment variable, which is not set"),
             ({"TF_CONFIG": "{cluster"}, "TF_CONFIG is not JSON"),
             (_config(cluster=two), "needs a 'cluster' and a 'task'"),
             (_config(cluster={"ps": ["p:1"], **two}, task={"type": "worker", "index": 0}),
              "job 'ps' does not train under 'multi_worker'"),
             (_config(cluster={"worker": ["h0"]}, task={"type": "worker", "index": 0}),
              "must be a list of 'host:port'"),
             (_config(cluster=two, task={"type": "worker", "index": 2}),
              "is not in the cluster {'worker': 2}"),
             (_config(cluster={"chief": ["a:1", "b:1"]}, task={"type": "chief", "index": 0}),
              "at most one chief"),
             (_config(cluster={"worker": ["h0:2222", "h1:abc"]},
                      task={"type": "worker", "index": 0}),
              "cluster['worker'][1] = 'h1:abc': the port must be a number from 1 to 65535"),
             (_config(cluster={"worker": ["h0:2222", ":2223"]},
                      task={"type": "worker", "index": 0}),
              "cluster['worker'][1] = ':2223': the port must be a number from 1 to 65535"),
             (_config(cluster={"worker": ["h0:70000"]}, task={"type": "worker", "index": 0}),
              "cluster['worker'][0] = 'h0:70000': the port must be a number"),
             (_config(cluster={"chief": ["h0:1"], "worker": ["h0:1"]},
                      task={"type": "worker", "index": 0}),
              "the cluster lists h0:1 more than once"),
             (_config(cluster=two, task={"type": "worker", "index": True}),
              "is not in the cluster")]
    for environ, message in cases:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("{", r"\{")
                           .replace("[", r"\[")):
            distribute.read_tf_config(environ)


def test_multi_worker_without_tf_config_is_a_config_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG environment variable, which is not set"):
        distribute.make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", tf_config(["127.0.0.1:1", "127.0.0.1:2"], 0))
    with pytest.raises(ConfigError, match="collective_timeout must be a positive number"):
        distribute.make_strategy("multi_worker", collective_timeout=0)
    with pytest.raises(ConfigError, match="strategy must be one of default, mirrored, "
                                          "one_device, multi_worker, got 'tpu'"):
        distribute.make_strategy("tpu")


def test_single_process_is_a_chief_of_one():
    strategy = distribute.make_strategy("default")
    assert distribute.worker_info(strategy) == distribute.WorkerInfo()
    assert distribute.agree(strategy, 7, "anything") == 7
    with pytest.raises(tf.errors.UnavailableError):          # not a cluster: re-raised as is
        with distribute.reporting_lost_workers(strategy):
            raise tf.errors.UnavailableError(None, None, "peer gone")


def test_batch_slices():
    assert [tuple(data.BatchSlice.of_pipeline(6, i, 3)) for i in range(3)] \
        == [(0, 2, 6), (2, 4, 6), (4, 6, 6)]
    holds = data.BatchSlice(2, 4, 6).holds(tf.range(12))
    assert np.flatnonzero(holds.numpy()).tolist() == [2, 3, 8, 9]
    with pytest.raises(DatasetError, match="a global batch of 6 cannot be split into 4 equal"):
        data.BatchSlice.of_pipeline(6, 0, 4)
    with pytest.raises(DatasetError, match=r"batch slice \(0, 3, 4\) does not fit batches of 6"):
        data.BatchSlice(0, 3, 4).check(6)


def _take(dataset, n):
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in dataset.take(n)]


def _assert_slices_make_up(whole, parts):
    """Batch k of ``whole`` is the concatenation of batch k of every part."""
    for k, batch in enumerate(whole):
        joined = tf.nest.map_structure(lambda *xs: np.concatenate(xs), *[p[k] for p in parts])
        tf.nest.map_structure(np.testing.assert_array_equal, batch, joined)


def test_worker_slices_make_up_the_global_batches(folder):
    """Two or three workers' slices of each batch are one process's batch: the same images,
    crops, flips, labels and style images (cin, adain, arbitrary streams), also when resumed at
    a later batch, and over several passes through the files."""
    def cin(start, part):
        images = data.content_dataset(folder["content"], image_size=24, batch_size=6, seed=3,
                                      start_batch=start, batch_slice=part)
        return data.with_style_labels(images, 3, seed=3, start_batch=start, batch_slice=part)

    adain = AdainRecipe(folder["content"], folder["styles"], batch_size=6, image_size=24,
                        seed=3, weights="random")
    arbitrary = ArbitraryRecipe(folder["content"], folder["styles"], batch_size=6,
                                image_size=48, seed=3, weights="random")
    cases = [(cin, 0, 3), (cin, 2, 2), (adain.dataset, 1, 2), (arbitrary.dataset, 1, 2)]
    for make, start, workers in cases:
        whole = _take(make(start, None), 3)          # 18 images of 7 files: three passes
        parts = [_take(make(start, data.BatchSlice.of_pipeline(6, i, workers)), 3)
                 for i in range(workers)]
        _assert_slices_make_up(whole, parts)
    labels = np.concatenate([b[1] for b in _take(cin(0, None), 3)])
    assert len(set(labels.tolist())) == 3                  # mixed labels, not one per batch


def test_split_for_replicas():
    batches = tf.data.Dataset.from_tensors((tf.reshape(tf.range(24.0), [6, 4]), tf.range(6)))
    split = _take(distribute.split_for_replicas(batches, 3), 3)
    assert [b[1].tolist() for b in split] == [[0, 1], [2, 3], [4, 5]]
    np.testing.assert_array_equal(split[2][0], np.arange(16.0, 24.0).reshape(2, 4))
    images = tf.data.Dataset.from_tensors(tf.zeros([4, 2]))
    assert [b.shape for b in distribute.split_for_replicas(images, 2)] == [(2, 2), (2, 2)]


def test_free_ports_and_tf_config():
    ports = free_ports(3)
    assert len(set(ports)) == 3 and all(0 < p < 65536 for p in ports)
    config = json.loads(tf_config([f"127.0.0.1:{p}" for p in ports], 2))
    assert config["task"] == {"type": "worker", "index": 2}
    assert distribute.read_tf_config({"TF_CONFIG": json.dumps(config)}) == config


_AGREE = """
import sys
from nst_tf.errors import ConfigError
from nst_tf.training import distribute
strategy = distribute.make_strategy("multi_worker")
task = distribute.worker_info(strategy).task_id
same = distribute.agree(strategy, 7, "a shared value")
try:
    distribute.agree(strategy, 3 + 2 * task, "the step of the last checkpoint")
except ConfigError as e:
    print(f"same={same} ERROR {e}")
    sys.exit(0)
print("agreed")
"""


@pytest.mark.slow
def test_workers_that_disagree_are_told_which_value_each_has():
    """Two loopback workers: an integer all of them hold passes; one that differs is a
    ConfigError on every worker naming each worker's value (what a train_dir that one worker
    does not see would give)."""
    import sys

    from nst_tf.training.local_cluster import run_workers

    from programs import program_env

    results = run_workers(lambda i: [sys.executable, "-c", _AGREE], workers=2,
                          env=program_env(), timeout=300)
    for result in results:
        assert result.returncode == 0, result.output[-3000:]
        line = [l for l in result.output.splitlines() if l.startswith("same=")]
        assert line == ["same=7 ERROR the workers disagree on the step of the last checkpoint "
                        "(worker 0: 3, worker 1: 5)"], result.output[-3000:]
