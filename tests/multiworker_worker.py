"""One worker of the loopback multi-worker tests (tests/test_multiworker.py) and of
benchmarks/multiworker.py: ``python tests/multiworker_worker.py SPEC_JSON``.

SPEC: ``{"collective_timeout": seconds or null, "local_replicas": n (default 1), "runs": [RUN,
...]}`` with each RUN either

* ``{"content": ..., "styles": ..., "train_dir": ..., "options": {train() options},
  "kill": {"task": i, "step": k, "signal": "SIGKILL"}}``: :func:`nst_tf.training.train`;
  ``kill`` sends the signal (SIGKILL: a lost host; SIGSTOP: a hung one) to worker ``task``
  (or the task named so, e.g. ``"worker 0"``) right after optimizer step ``k``;
* ``{"canary": true}``: Keras' own ``fit`` under the strategy, without and with
  :class:`~nst_tf.training.distribute.MultiWorkerFit` (see :func:`canary`).

The worker creates ``MultiWorkerMirroredStrategy`` from its ``TF_CONFIG`` before anything else,
then does the runs in order, printing one ``RESULT {json}`` line per run, or
``ERROR <Type>: <message>`` (and ``FAILED t=<unix time>``) and exiting 1.
"""

import json
import os
import signal as signal_module
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nst_tf.training.distribute import make_strategy, worker_info  # noqa: E402

SPEC = json.loads(sys.argv[1])


def local_replicas(count):
    """``count`` replicas on this worker, as ``count`` GPUs would give: ``count`` logical CPUs,
    which ``MultiWorkerMirroredStrategy`` would not use by itself (it takes GPUs, else one CPU),
    so its choice of local devices is replaced (a test stand-in for several GPUs per host)."""
    import tensorflow as tf
    from tensorflow.python.distribute import collective_all_reduce_strategy

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu,
                                               [tf.config.LogicalDeviceConfiguration()] * count)

    def devices(self, cluster_resolver, worker_device):
        return tuple(f"{worker_device}/device:CPU:{i}" for i in range(count)), "CPU"

    collective_all_reduce_strategy.CollectiveAllReduceExtended._initialize_local_devices = devices


if SPEC.get("local_replicas", 1) > 1:
    local_replicas(SPEC["local_replicas"])
STRATEGY = make_strategy("multi_worker", SPEC.get("collective_timeout"))   # before any TF op

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from nst_tf import training  # noqa: E402
from nst_tf.errors import NSTError  # noqa: E402
from nst_tf.training.distribute import MultiWorkerFit  # noqa: E402
from multiworker_helpers import StepLosses, moving_statistics  # noqa: E402


class KillAt(keras.callbacks.Callback):
    """Send ``signal`` (default SIGKILL: a lost host; SIGSTOP: a hung one) to this worker after
    optimizer step ``step`` if it is task ``task`` (an index of the ``worker`` job, or a name
    such as ``"worker 0"``)."""

    def __init__(self, task, step, signal="SIGKILL"):
        super().__init__()
        self.task, self.step, self.signal = task, step, getattr(signal_module, signal)

    def on_train_batch_end(self, batch, logs=None):
        me = worker_info(STRATEGY)
        if (me.name == self.task or me.task_id == self.task and me.task_type == "worker") \
                and int(self.model.optimizer.iterations.numpy()) == self.step:
            word = "KILLED" if self.signal == signal_module.SIGKILL else "STOPPED"
            print(f"{word} at step {self.step} t={time.time():.3f}", flush=True)
            os.kill(os.getpid(), self.signal)


def train(run):
    losses = StepLosses()
    callbacks = [losses] + ([KillAt(**run["kill"])] if run.get("kill") else [])
    start = time.perf_counter()
    net = training.train(run.get("content"), run["styles"], run["train_dir"],
                         strategy=STRATEGY, callbacks=callbacks, **run["options"])
    return {"train_dir": run["train_dir"], "final_step": net.final_step,
            "chief": net.worker.is_chief, "written": net.written,
            "seconds": time.perf_counter() - start, "losses": losses.losses,
            "moving": moving_statistics(net),
            "history": {k: [float(v) for v in vs] for k, vs in net.train_history.items()}}


def _fit(model, dataset):
    """``"ok"`` if ``model.fit`` runs two steps, else the first line of its error."""
    try:
        model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0)
        return "ok"
    except Exception as exc:  # noqa: BLE001  (the canary reports whatever Keras raises)
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"


def canary():
    """Keras' two failures under MultiWorkerMirroredStrategy, and the workaround.

    ``tuple_data``: stock ``compile(loss="mse")`` + ``fit`` on ``(x, y)`` batches (failure 1,
    ``_maybe_symbolic_build``). ``scalar_logs``: ``x``-only batches and a ``train_step`` that
    returns scalar logs (failure 2, ``reduce_per_replica``). ``workaround``: the same two with
    :class:`MultiWorkerFit` first in the bases."""
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    pairs = tf.data.Dataset.from_tensor_slices((x, x.sum(1, keepdims=True))).repeat().batch(8)
    inputs = tf.data.Dataset.from_tensor_slices(x).repeat().batch(8)

    def dense(base=keras.Model):
        class Dense(base):
            def __init__(self):
                super().__init__()
                self.dense = keras.layers.Dense(1)

            def call(self, x):
                return self.dense(x)

        with STRATEGY.scope():
            model = Dense()
            model.compile(optimizer="sgd", loss="mse")
        return model

    def scalar_logs(base=keras.Model):
        class ScalarLogs(base):
            def __init__(self):
                super().__init__()
                self.dense = keras.layers.Dense(1)

            def call(self, x):
                return self.dense(x)

            def train_step(self, x):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(tf.square(self(x))) / STRATEGY.num_replicas_in_sync
                grads = tape.gradient(loss, self.trainable_variables)
                self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
                return {"loss": loss}

        with STRATEGY.scope():
            model = ScalarLogs()
            model.compile(optimizer="sgd")
        return model

    return {"tuple_data": _fit(dense(), pairs), "scalar_logs": _fit(scalar_logs(), inputs),
            "workaround": [_fit(dense(type("Fixed", (MultiWorkerFit, keras.Model), {})), pairs),
                           _fit(scalar_logs(type("Fixed", (MultiWorkerFit, keras.Model), {})),
                                inputs)]}


def main():
    for run in SPEC["runs"]:
        try:
            result = canary() if run.get("canary") else train(run)
        except NSTError as exc:
            print(f"ERROR {type(exc).__name__}: {exc}\nFAILED t={time.time():.3f}", flush=True)
            sys.exit(1)
        print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
