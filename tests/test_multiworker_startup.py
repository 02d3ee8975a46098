"""``nst-train --strategy=multi_worker`` at start-up, as typed, on loopback: a peer that never
starts (the wait names it, gives up after ``--startup_timeout``, stops on Ctrl-C and SIGTERM),
workers whose ``TF_CONFIG`` clusters differ, and malformed addresses. Every case is one line on
stderr, no traceback. The processes of all cases run at once (one fixture), so the module costs
about one TensorFlow start-up."""

import json
import os
import re
import signal
import time

import pytest

from nst_tf.training.local_cluster import free_ports
from programs import assert_clean_output, program_env, start_program

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = os.path.join(ROOT, "tests", "images")


def _config(addresses, index, kind="worker"):
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": kind, "index": index}})


def _start(tmp_path, name, tf_config, *flags):
    log = open(tmp_path / f"{name}.err", "w+")
    process = start_program(
        "nst-train", "--strategy=multi_worker", "--mode=johnson",
        f"--content_images={IMAGES}", f"--style_images={IMAGES}/content_sq.jpg",
        f"--train_dir={tmp_path / name}", "--weights=random", "--image_size=32",
        "--batch_size=2", "--train_steps=1", *flags,
        env=program_env(TF_CONFIG=tf_config, CUDA_VISIBLE_DEVICES=""),
        stdout=log, stderr=log)
    return {"process": process, "log": log}


def _text(run):
    with open(run["log"].name, errors="replace") as f:
        return f.read()


class Done:
    """What a run left: ``returncode``, ``stderr`` (stdout and stderr together), ``stdout``."""

    def __init__(self, run):
        self.returncode, self.stderr, self.stdout = run["process"].returncode, _text(run), ""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("startup")
    ports = free_ports(9)
    address = [f"127.0.0.1:{p}" for p in ports]
    started = {
        # Worker 1 of each of these never starts.
        "never": _start(tmp_path, "never", _config(address[0:2], 0), "--startup_timeout=8"),
        "sigterm": _start(tmp_path, "sigterm", _config(address[2:4], 0)),
        "sigint": _start(tmp_path, "sigint", _config(address[4:6], 0)),
        # Two workers, three in the second one's cluster.
        "two": _start(tmp_path, "two", _config(address[6:8], 0), "--startup_timeout=120"),
        "three": _start(tmp_path, "three", _config(address[6:9], 1), "--startup_timeout=120"),
        "port": _start(tmp_path, "port", _config([address[0], "127.0.0.1:abc"], 0)),
    }
    signals = {"sigterm": signal.SIGTERM, "sigint": signal.SIGINT}
    sent = {}
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and any(r["process"].poll() is None
                                              for r in started.values()):
        for name, signum in signals.items():
            if name not in sent and "waiting for worker 1" in _text(started[name]):
                started[name]["process"].send_signal(signum)
                sent[name] = time.monotonic()
        time.sleep(0.2)
    for run in started.values():
        if run["process"].poll() is None:
            run["process"].kill()
        run["process"].wait()
    done = {name: Done(run) for name, run in started.items()}
    for run in started.values():
        run["log"].close()
    return {"done": done, "address": address, "sent": sent}


def _only_error(done):
    lines = [line for line in done.stderr.splitlines() if line.startswith("nst-train: ")]
    assert len(lines) == 1, done.stderr[-3000:]
    assert_clean_output(done)
    return lines[0]


def test_a_peer_that_never_starts_is_named_then_given_up(runs):
    """28.8: the worker says whom it waits for, then stops after --startup_timeout with one
    line naming the missing worker."""
    done, peer = runs["done"]["never"], runs["address"][1]
    assert done.returncode == 1, done.stderr[-3000:]
    assert f"worker 0: waiting for worker 1 ({peer}) to start (5 s of startup_timeout=8 s)" \
        in done.stderr
    assert _only_error(done) == (
        f"nst-train: error: worker 1 ({peer}) did not start within 8 s (startup_timeout); "
        f"start every worker of the cluster, or allow longer")


@pytest.mark.parametrize("name,code", [("sigterm", 143), ("sigint", 130)])
def test_signals_stop_the_wait(runs, name, code):
    """28.8: SIGTERM and Ctrl-C end the wait at once, with 143 / 130 and one line."""
    done, peer = runs["done"][name], runs["address"][3 if name == "sigterm" else 5]
    assert name in runs["sent"], done.stderr[-3000:]
    assert done.returncode == code, done.stderr[-3000:]
    assert _only_error(done) == (f"nst-train: stopped by {name.upper()} while waiting for "
                                 f"worker 1 ({peer}); nothing was trained")


def test_clusters_that_disagree_are_one_line_on_both_workers(runs):
    """28.9: two workers whose TF_CONFIG clusters differ (2 vs 3 workers) both stop with one
    line naming both clusters."""
    a = runs["address"]
    two, three = f"worker: {a[6]}, {a[7]}", f"worker: {a[6]}, {a[7]}, {a[8]}"
    for name, me, other in (("two", two, three), ("three", three, two)):
        done = runs["done"][name]
        assert done.returncode == 1, done.stderr[-3000:]
        line = _only_error(done)
        assert re.fullmatch(
            rf"nst-train: error: the workers' TF_CONFIG clusters disagree: worker \d has "
            rf"\{{{re.escape(me)}\}} but worker \d \(.*\) has \{{{re.escape(other)}\}}; give "
            rf"every worker the same 'cluster'", line), line


def test_a_non_numeric_port_is_one_line(runs):
    done = runs["done"]["port"]
    assert done.returncode == 1
    assert _only_error(done) == (
        "nst-train: error: TF_CONFIG: cluster['worker'][1] = '127.0.0.1:abc': the port must be "
        "a number from 1 to 65535 (and the host not empty)")
