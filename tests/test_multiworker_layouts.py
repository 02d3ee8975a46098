"""Cluster layouts beyond two plain workers, on loopback (tests/multiworker_worker.py): Vertex
AI's ``chief`` job beside a ``worker``, two replicas per worker (two logical CPUs standing in
for two GPUs), reading TFRecord content, and a worker that hangs (SIGSTOP) mid-run. One launch
of two processes does all of it:

1. a CIN step on TFRecord shards, chief + worker, 4 replicas: its first-step loss is one
   process's;
2. a CIN run in which the worker stops itself (SIGSTOP) after step 2: the chief must end with
   the one line that ``collective_timeout`` promises, naming the worker.
"""

import json
import os
import re
import sys
import time

import numpy as np
import pytest

from multiworker_helpers import StepLosses, make_images
from nst_tf import training
from nst_tf.training.local_cluster import LocalCluster

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "multiworker_worker.py")
ENV = {"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
TIMEOUT = 60   # --collective_timeout of the launch
CIN = dict(mode="cin", batch_size=4, image_size=32, weights=None, alpha=0.25,
           learning_rate=1e-5, content_weights={"block2_conv2": 1.0},
           style_weights={"block1_conv2": 1e-3, "block2_conv2": 1e-3}, save_every=2, verbose=2)


def _write_tfrecords(folder, files, shards=2):
    """ImageNet-layout shards (``image/encoded``) of the image ``files``; returns the glob."""
    import tensorflow as tf

    os.makedirs(folder)
    for shard in range(shards):
        path = os.path.join(folder, f"train-{shard:05d}-of-{shards:05d}")
        with tf.io.TFRecordWriter(path) as writer:
            for name in files[shard::shards]:
                with open(name, "rb") as f:
                    feature = {"image/encoded": tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[f.read()]))}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                             .SerializeToString())
    return os.path.join(folder, "train-*")


def _results(output):
    return [json.loads(line[len("RESULT "):]) for line in output.splitlines()
            if line.startswith("RESULT ")]


@pytest.fixture(scope="module")
def chief_layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    images = make_images(str(root / "images"))
    records = _write_tfrecords(str(root / "records"), sorted(
        os.path.join(images["content"], f) for f in os.listdir(images["content"])))
    spec = {"collective_timeout": TIMEOUT, "local_replicas": 2, "runs": [
        {"content": records, "styles": images["styles"], "train_dir": str(root / "records_run"),
         "options": {**CIN, "train_steps": 1}},
        {"content": images["content"], "styles": images["styles"],
         "train_dir": str(root / "stop"), "options": {**CIN, "train_steps": 6},
         "kill": {"task": "worker 0", "step": 2, "signal": "SIGSTOP"}}]}
    command = [sys.executable, WORKER, json.dumps(spec)]
    with LocalCluster(lambda i: command, workers=2, env=ENV, chief=True) as cluster:
        cluster.start()
        chief = cluster.processes[0]
        deadline = time.monotonic() + 1800
        while chief.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        ended = time.time()
        outputs = [cluster.output(0), cluster.output(1)]
        addresses = cluster.addresses
    return {"root": root, "records": records, "styles": images["styles"], "ended": ended,
            "returncode": chief.returncode, "outputs": outputs, "addresses": addresses}


def test_chief_and_worker_on_tfrecords_equal_one_process(chief_layout, tmp_path):
    """Vertex AI's layout (a ``chief`` task and a ``worker`` task), two replicas each, on
    TFRecord content: the chief is the chief, both log one global first-step loss, and it is
    one process's."""
    chief, worker = (_results(o) for o in chief_layout["outputs"])
    assert chief and worker, chief_layout["outputs"][0][-3000:] + chief_layout["outputs"][1]
    assert "chief 0 of 2 workers" in chief_layout["outputs"][0]
    assert "worker 0 of 2 workers" in chief_layout["outputs"][1]
    assert "4 replicas, 1 images each per step" in chief_layout["outputs"][0]
    assert chief[0]["chief"] and not worker[0]["chief"]
    assert chief[0]["losses"] == worker[0]["losses"]
    record = StepLosses()
    training.train(chief_layout["records"], chief_layout["styles"], str(tmp_path / "one"),
                   callbacks=[record], **{**CIN, "train_steps": 1, "log_dir": "", "verbose": 0})
    print(f"first-step loss on TFRecords: one process {record.losses[0]:.6g}, chief + worker "
          f"{chief[0]['losses'][0]:.6g}")
    np.testing.assert_allclose(chief[0]["losses"][0], record.losses[0], rtol=1e-5)


def test_a_hung_worker_ends_the_run_after_collective_timeout(chief_layout):
    """The worker stops (SIGSTOP) after step 2: the chief ends with one line naming it, within
    collective_timeout plus a minute (measured: about 15 s, when the coordination service
    misses the stopped worker's heartbeats)."""
    output = chief_layout["outputs"][0]
    stopped = re.search(r"STOPPED at step 2 t=([\d.]+)", chief_layout["outputs"][1])
    assert stopped, chief_layout["outputs"][1][-3000:]
    assert chief_layout["returncode"] == 1, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("ERROR ")]
    worker = re.escape(chief_layout["addresses"][1])
    assert len(errors) == 1 and re.fullmatch(
        rf"ERROR WorkerLostError: lost worker 0 \({worker}\): [^;]+; restart every worker to "
        rf"resume from the last checkpoint \(step 2\)", errors[0]), output[-3000:]
    assert "Traceback" not in output
    after = chief_layout["ended"] - float(stopped.group(1))
    print(f"the chief ended {after:.1f} s after the worker stopped (collective_timeout "
          f"{TIMEOUT} s): {errors[0]}")
    assert after < TIMEOUT + 60
