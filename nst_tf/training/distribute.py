"""Where training runs: the ``tf.distribute`` strategy, its input, and the trained precision.

:func:`train <nst_tf.training.train>` creates the strategy *first* (before any TensorFlow op:
``MultiWorkerMirroredStrategy`` must configure collective ops at program start) and builds every
network, loss and optimizer inside ``strategy.scope()`` (see :class:`~nst_tf.training.Recipe`).
``batch_size`` is always the global batch.

Several workers (``strategy="multi_worker"``): the cluster comes from ``TF_CONFIG``
(:func:`read_tf_config`), as Kubernetes, Vertex AI or a Slurm script set it.

* Input (:func:`distribute_input`): worker ``w`` of ``W`` reads the slots
  ``[w·B/W, (w+1)·B/W)`` of every global batch of ``B`` (:class:`nst_tf.data.BatchSlice`) and
  decodes nothing else; every crop, flip and label is a function of the seed and the example's
  global index, so the union of the workers' batches of step ``k`` is one process's batch ``k``.
  The loss of each replica is the mean over its share, divided by the number of replicas
  (:class:`~nst_tf.training.StyleTrainer`): ``tf.nn.compute_average_loss`` with the global batch,
  so the update equals one process's.
* Keras 3 ``fit`` is broken under ``MultiWorkerMirroredStrategy`` (tensorflow#72388,
  keras-team/keras#20585); :class:`MultiWorkerFit` is the one place that works around it.
* Failures (:func:`reporting_lost_workers`): a worker that dies or hangs makes the collectives of
  the others fail (at once when its connection is refused, in about 10 s when its heartbeats
  stop, after ``collective_timeout`` seconds when it is alive but stuck); they then raise a
  :class:`~nst_tf.errors.WorkerLostError` naming the lost task. Restart every worker to resume
  from the last checkpoint.

Example:
    >>> make_strategy("default").num_replicas_in_sync
    1
    >>> worker_info(make_strategy("default")).is_chief
    True
"""

import contextlib
import dataclasses
import json
import os
import re

import tensorflow as tf

from nst_tf.device import dtype_policy  # noqa: F401  (re-exported: the policy of trained networks)
from nst_tf.errors import ConfigError, WorkerLostError

#: The values of ``strategy=`` (``nst-train --strategy``).
STRATEGIES = ("default", "mirrored", "one_device", "multi_worker")
#: The values of ``mixed_precision=`` (None: float32 throughout).
MIXED_PRECISION = (None, "mixed_float16", "mixed_bfloat16")
#: Task types that train under ``MultiWorkerMirroredStrategy`` (the chief is a worker too).
TRAINING_TASKS = ("chief", "worker")


def check_strategy(name):
    """``name`` if it is one of :data:`STRATEGIES`, None or a ``tf.distribute.Strategy``, else a
    ConfigError."""
    if name is not None and not isinstance(name, tf.distribute.Strategy) \
            and name not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    return name


#: Default seconds a worker waits for the others to start (``--startup_timeout``).
STARTUP_TIMEOUT = 600.0


def make_strategy(name="default", collective_timeout=None, startup_timeout=STARTUP_TIMEOUT):
    """``"default"`` (no distribution), ``"mirrored"`` (all visible GPUs, else the CPU devices),
    ``"one_device"`` (the first GPU, else the CPU) or ``"multi_worker"``
    (``MultiWorkerMirroredStrategy`` over the cluster of ``TF_CONFIG``; every local GPU of each
    worker is a replica). A ``tf.distribute.Strategy`` is returned as it is.

    ``"multi_worker"`` must come before any TensorFlow op of the process (else a ConfigError),
    and waits until every worker of the cluster has started and agrees on the cluster
    (:func:`nst_tf.training.rendezvous.meet_peers`: it says for whom it waits, gives up after
    ``startup_timeout`` seconds, None for never, and stops on Ctrl-C or SIGTERM). ``collective_timeout`` (seconds,
    None for none) bounds each all-reduce: a worker that is alive but stuck makes the others fail
    after that long. It must exceed the longest pause of the chief between steps (checkpoint and
    TensorBoard writes) and the difference between the workers' first-step compile times.
    """
    check_strategy(name)
    if isinstance(name, tf.distribute.Strategy):
        return name
    if name in (None, "default"):
        return tf.distribute.get_strategy()
    if name == "multi_worker":
        return _multi_worker_strategy(collective_timeout, startup_timeout)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")  # "one_device"


def read_tf_config(environ=None):
    """The parsed, checked ``TF_CONFIG`` of a multi-worker run: ``{"cluster": {job: [host:port]},
    "task": {"type", "index"}}``; a ConfigError says what is missing or wrong.

    Example:
        >>> read_tf_config({"TF_CONFIG": '{"cluster": {"worker": ["h0:2222", "h1:2222"]}, '
        ...                 '"task": {"type": "worker", "index": 1}}'})["task"]
        {'type': 'worker', 'index': 1}
    """
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG")
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host0:2222", "host1:2222"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not text:
        raise ConfigError(f"strategy 'multi_worker' takes the cluster from the TF_CONFIG "
                          f"environment variable, which is not set; set it on every worker, "
                          f"e.g. {example}")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"TF_CONFIG is not JSON ({exc.msg}): {text!r}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ConfigError(f"TF_CONFIG needs a 'cluster' and a 'task' object, e.g. {example}; "
                          f"got {text!r}")
    for job, hosts in cluster.items():
        if job not in TRAINING_TASKS:
            raise ConfigError(f"TF_CONFIG: job {job!r} does not train under 'multi_worker' "
                              f"(jobs: chief, worker)")
        if not isinstance(hosts, list) or not hosts \
                or not all(isinstance(h, str) and ":" in h for h in hosts):
            raise ConfigError(f"TF_CONFIG: cluster[{job!r}] must be a list of 'host:port', "
                              f"got {hosts!r}")
        for i, address in enumerate(hosts):
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"TF_CONFIG: cluster[{job!r}][{i}] = {address!r}: the port "
                                  f"must be a number from 1 to 65535 (and the host not empty)")
    addresses = [a for hosts in cluster.values() for a in hosts]
    twice = sorted({a for a in addresses if addresses.count(a) > 1})
    if twice:
        raise ConfigError(f"TF_CONFIG: the cluster lists {', '.join(twice)} more than once; "
                          f"every task needs its own host:port")
    if len(cluster.get("chief", [])) > 1:
        raise ConfigError(f"TF_CONFIG: at most one chief, got {cluster['chief']}")
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster or not isinstance(index, int) or isinstance(index, bool) \
            or not 0 <= index < len(cluster[kind]):
        raise ConfigError(f"TF_CONFIG: task {task} is not in the cluster "
                          f"{ {job: len(hosts) for job, hosts in cluster.items()} } "
                          f"(type one of {sorted(cluster)}, index from 0)")
    return {"cluster": cluster, "task": {"type": kind, "index": index}}


def _positive_seconds(name, value):
    """``value`` as float seconds (None stays None); a ConfigError unless it is positive."""
    try:
        ok = value is None or float(value) > 0 and float(value) != float("inf")
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{name} must be a positive number of seconds or None, got {value!r}")
    return None if value is None else float(value)


def _multi_worker_strategy(collective_timeout, startup_timeout):
    from nst_tf.training.rendezvous import meet_peers

    config = read_tf_config()
    collective_timeout = _positive_seconds("collective_timeout", collective_timeout)
    meet_peers(config, _positive_seconds("startup_timeout", startup_timeout))
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=None if collective_timeout is None else float(collective_timeout))
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except RuntimeError as exc:
        if "program startup" not in str(exc):
            raise
        raise ConfigError("strategy 'multi_worker' must be created before any TensorFlow "
                          "operation runs in the process: call "
                          "nst_tf.training.make_strategy('multi_worker') first and pass the "
                          "strategy to train()") from None


# --- Who is who ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """This process's place in the run: ``task_type`` and ``task_id`` (from ``TF_CONFIG``),
    ``num_workers``, ``is_chief`` (the worker that writes checkpoints, summaries and exports) and
    ``address`` (``host:port``; None in a single process)."""

    task_type: str = "worker"
    task_id: int = 0
    num_workers: int = 1
    is_chief: bool = True
    address: str = None

    @property
    def name(self):
        """``"worker 1"``, ``"chief 0"``."""
        return f"{self.task_type} {self.task_id}"


def in_multi_worker_mode(strategy):
    """True for a ``MultiWorkerMirroredStrategy`` that spans several workers (a cluster)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) \
        and strategy.extended._in_multi_worker_mode()


def _cluster_tasks(strategy):
    """``[(task_type, task_id, address)]`` of every training task, the chief first."""
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return [(job, index, address) for job in TRAINING_TASKS
            for index, address in enumerate(spec.get(job, []))]


def worker_info(strategy):
    """The :class:`WorkerInfo` of this process under ``strategy``."""
    if not in_multi_worker_mode(strategy):
        return WorkerInfo()
    resolver = strategy.cluster_resolver
    tasks = _cluster_tasks(strategy)
    address = next(a for job, i, a in tasks if (job, i) == (resolver.task_type, resolver.task_id))
    return WorkerInfo(resolver.task_type, int(resolver.task_id), len(tasks),
                      bool(strategy.extended.should_checkpoint), address)


def agree(strategy, value, what):
    """Check that every worker computed the same integer ``value`` (one all-gather); return it.
    A ConfigError lists the workers' values otherwise."""
    if not in_multi_worker_mode(strategy):
        return value
    gather = tf.function(lambda: strategy.gather(
        strategy.run(lambda: tf.constant([int(value)], tf.int64)), axis=0))
    values = [int(v) for v in gather().numpy()]
    if len(set(values)) > 1:
        tasks = _cluster_tasks(strategy)
        per_task = ", ".join(f"{job} {i}: {v}" for (job, i, _), v in zip(tasks, values))
        raise ConfigError(f"the workers disagree on {what} ({per_task})")
    return value


# --- Input -----------------------------------------------------------------------------------------

def split_for_replicas(dataset, replicas):
    """Each batch ``[R·b, ...]`` (any nesting) becomes ``R`` consecutive batches ``[b, ...]``,
    the per-replica batches of a worker's ``R`` local replicas (in order)."""
    if replicas == 1:
        return dataset

    def split(*batch):
        def one(t):
            shape = tf.shape(t)
            return tf.reshape(t, tf.concat([[replicas, shape[0] // replicas], shape[1:]], 0))

        parts = tf.nest.map_structure(one, batch)
        return parts if len(parts) > 1 else parts[0]

    return dataset.map(split).unbatch()


def distribute_input(strategy, make_dataset, batch_size):
    """The input of ``fit()`` for global batches of ``batch_size`` under ``strategy``, and the
    :class:`nst_tf.data.DecodeCounter` of this process's pipeline: ``(dataset, counter)``.

    ``make_dataset(batch_slice)`` builds the endless dataset of one input pipeline: the slots
    ``batch_slice`` (a :class:`nst_tf.data.BatchSlice`, None for whole batches) of every global
    batch, with a ``decode_counter`` attribute (:meth:`nst_tf.training.Recipe.dataset`). Under a
    strategy with several replicas each worker builds its own slice (one
    ``distribute_datasets_from_function`` pipeline per worker) and splits it between its local
    replicas; nothing is sharded by ``tf.data``'s auto-sharding.
    """
    from nst_tf.data import BatchSlice

    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        dataset = make_dataset(None)
        return dataset, dataset.decode_counter
    if batch_size % replicas:
        raise ConfigError(f"batch_size={batch_size} is the global batch: it must be a multiple "
                          f"of the {replicas} replicas")
    counters = []

    def dataset_fn(context):
        part = BatchSlice.of_pipeline(batch_size, context.input_pipeline_id,
                                      context.num_input_pipelines)
        dataset = make_dataset(part)
        counters.append(dataset.decode_counter)
        local = context.num_replicas_in_sync // context.num_input_pipelines
        return split_for_replicas(dataset, local)

    distributed = strategy.distribute_datasets_from_function(dataset_fn)
    return distributed, counters[0]


# --- Keras 3 fit() under MultiWorkerMirroredStrategy ----------------------------------------------

class MultiWorkerFit:
    """Mixin (before ``keras.Model``) that makes ``fit()`` / ``evaluate()`` work under
    ``MultiWorkerMirroredStrategy`` with a ``train_step`` / ``test_step`` returning a dict of
    scalar logs. Nothing changes under any other strategy.

    Keras 3 (3.12 to 3.15, TensorFlow backend) fails there in two places
    (``keras/src/backend/tensorflow/trainer.py``; tensorflow#72388, keras-team/keras#20585):

    1. ``_maybe_symbolic_build`` builds the model from ``strategy.reduce("MEAN", first batch)``,
       which raises "Attempt to convert a value (PerReplica...)" for a tuple batch. Here the
       model is built from the first local replica's batch instead.
    2. ``reduce_per_replica`` reduces every log with ``strategy.reduce("MEAN", v, axis=0)`` in
       multi-worker mode: "Invalid reduction dimension 0" for scalars. Here each step returns
       its logs as rank-1 ``[1]`` tensors, which Keras then averages over every replica of
       every worker: the logged loss is the global batch's mean loss.

    Both hooks override private Keras methods (checked with Keras 3.15). The test
    ``test_multiworker.py::test_canary_stock_keras_fit_still_fails`` trains stock models with
    ``fit`` under the strategy, with and without this class: it fails when a Keras release fixes
    either place (then remove that hook) or breaks the hooks.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = getattr(self, "_distribute_strategy", None)
        if strategy is None or iterator is None or not in_multi_worker_mode(strategy):
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            first = tf.nest.map_structure(
                lambda v: strategy.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues) else v, next(batches))
            return super()._maybe_symbolic_build(data_batch=first)

    def _make_function(self, step_function):
        strategy = getattr(self, "_distribute_strategy", None)
        if strategy is None or not in_multi_worker_mode(strategy):
            return super()._make_function(step_function)

        def rank_one_logs(data):
            return tf.nest.map_structure(lambda v: tf.reshape(v, [1]), step_function(data))

        return super()._make_function(rank_one_logs)


# --- Failures ------------------------------------------------------------------------------------

#: What a collective raises when a peer is gone or stuck.
COLLECTIVE_FAILURES = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                       tf.errors.CancelledError, tf.errors.AbortedError, tf.errors.InternalError)


def lost_tasks(strategy, message="", probe_timeout=5.0):
    """``[(task_type, task_id, address, reason)]`` of the tasks that do not answer: each peer is
    asked for its health (what ``MultiWorkerMirroredStrategy``'s own health check does); when
    every peer answers, the tasks the error ``message`` names."""
    from tensorflow.python.eager import context

    tasks = _cluster_tasks(strategy)
    lost = []
    for job, index, address in tasks:
        try:
            context.context().check_collective_ops_peer_health(
                f"/job:{job}/replica:0/task:{index}", timeout_in_ms=int(probe_timeout * 1000))
        except tf.errors.OpError as exc:
            reason = "connection refused" if "refused" in exc.message else \
                "no answer" if isinstance(exc, tf.errors.DeadlineExceededError) else \
                exc.message.split("\n")[0][:80]
            lost.append((job, index, address, reason))
    if lost:
        return lost
    named = set(re.findall(r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)", message))
    named |= {(job, str(i)) for job, i, address in tasks if address in message}
    return [(job, i, a, "named in the error") for job, i, a in tasks if (job, str(i)) in named]


@contextlib.contextmanager
def reporting_lost_workers(strategy, resume_step=None, probe_timeout=5.0):
    """Turn a failed collective of a multi-worker run into a one-line
    :class:`~nst_tf.errors.WorkerLostError` naming the lost task(s) (and the checkpoint step a
    restart resumes from)."""
    try:
        yield
    except COLLECTIVE_FAILURES as exc:
        if not in_multi_worker_mode(strategy):
            raise
        lost = lost_tasks(strategy, exc.message, probe_timeout)
        if not lost and not isinstance(exc, (tf.errors.UnavailableError,
                                             tf.errors.DeadlineExceededError)):
            raise
        who = "; ".join(f"{job} {i} ({address}): {reason}" for job, i, address, reason in lost) \
            or "a worker that stopped answering (" + exc.message.split("\n")[0][:120] + ")"
        resume = "" if resume_step is None else \
            f"; restart every worker to resume from the last checkpoint (step {resume_step()})"
        raise WorkerLostError(f"lost {who}{resume}") from None


def check_mixed_precision(name):
    """``name`` if it is one of :data:`MIXED_PRECISION`, else a ConfigError."""
    if name not in MIXED_PRECISION:
        raise ConfigError(f"mixed_precision must be mixed_float16, mixed_bfloat16 or None, "
                          f"got {name!r}")
    return name
