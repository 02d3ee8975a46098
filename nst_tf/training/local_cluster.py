"""Several training workers on one machine, over loopback: to try ``--strategy=multi_worker``
before a cluster, and for tests and benchmarks. A real cluster's manager (Kubernetes, Slurm,
Vertex AI) sets ``TF_CONFIG`` on each host instead; this module is not needed there.

:func:`run_workers` picks free ``127.0.0.1`` ports (binding port 0), starts one process per
worker with its ``TF_CONFIG``, waits for all of them and returns their exit codes and output;
when a worker could not bind its port (another process took it in between) everything is run
once more on new ports.

Example:
    >>> import sys
    >>> results = run_workers(lambda i: [sys.executable, "-c", "print('hi')"], workers=2)
    >>> [(r.index, r.returncode, r.output.strip()) for r in results]
    [(0, 0, 'hi'), (1, 0, 'hi')]
"""

import dataclasses
import json
import os
import socket
import subprocess
import tempfile
import time

#: What a worker prints when its port was taken before it could bind it.
ADDRESS_IN_USE = ("Address already in use", "Failed to add port to server",
                  "Failed to start server")


def free_ports(count, host="127.0.0.1"):
    """``count`` distinct ports on ``host`` that were free a moment ago (bound to port 0, then
    released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(addresses, index, task_type="worker", chief=False):
    """The ``TF_CONFIG`` JSON of process ``index`` of a cluster of ``addresses``
    (``host:port``): all ``worker`` s, or with ``chief`` the first a ``chief`` and the others
    ``worker`` s (Vertex AI's layout; ``task_type`` is then ignored).

    Example:
        >>> tf_config(["127.0.0.1:2222", "127.0.0.1:2223"], 1)
        '{"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}, "task": {"type": "worker", "index": 1}}'
        >>> tf_config(["127.0.0.1:2222", "127.0.0.1:2223"], 1, chief=True)
        '{"cluster": {"chief": ["127.0.0.1:2222"], "worker": ["127.0.0.1:2223"]}, "task": {"type": "worker", "index": 0}}'
    """
    if chief:
        task = {"type": "chief", "index": 0} if index == 0 else \
            {"type": "worker", "index": int(index) - 1}
        return json.dumps({"cluster": {"chief": list(addresses[:1]), "worker": list(addresses[1:])},
                           "task": task})
    return json.dumps({"cluster": {"worker": list(addresses)},
                       "task": {"type": task_type, "index": int(index)}})


@dataclasses.dataclass
class WorkerResult:
    """How one worker ended: its ``index``, ``returncode`` (None if it was still running at the
    timeout and was killed), ``output`` (stdout and stderr) and ``seconds`` from the start of
    the cluster to its exit."""

    index: int
    returncode: int
    output: str
    seconds: float


class LocalCluster:
    """Worker processes on loopback. ``command(i)`` is worker ``i``'s argv; ``env`` is added to
    every worker's environment (plus its ``TF_CONFIG``); outputs go to files in ``log_dir``.

    Use :meth:`start`, then :meth:`wait`; or :func:`run_workers` for the whole round. With
    ``chief`` process 0 is the ``chief`` task and the others are ``worker`` s (Vertex AI's
    layout), else all are ``worker`` s.
    """

    def __init__(self, command, workers=2, env=None, log_dir=None, host="127.0.0.1",
                 chief=False):
        self.command, self.workers, self.host, self.chief = command, int(workers), host, chief
        self.env = dict(env or {})
        self.log_dir = log_dir or tempfile.mkdtemp(prefix="nst-cluster-")
        self.addresses = [f"{host}:{port}" for port in free_ports(self.workers, host)]
        self.processes, self._logs, self._started = [], [], None

    def start(self):
        """Start every worker; returns self."""
        self._started = time.monotonic()
        for i in range(self.workers):
            env = {**os.environ, **self.env,
                   "TF_CONFIG": tf_config(self.addresses, i, chief=self.chief)}
            log = open(os.path.join(self.log_dir, f"worker-{i}.log"), "w+")
            self._logs.append(log)
            self.processes.append(subprocess.Popen(self.command(i), env=env, stdout=log,
                                                   stderr=subprocess.STDOUT))
        return self

    def output(self, index):
        """What worker ``index`` printed so far."""
        with open(self._logs[index].name, errors="replace") as f:
            return f.read()

    def wait(self, timeout=300):
        """Wait for every worker, up to ``timeout`` seconds in all; the ones still running then
        are killed (``returncode`` None). Returns the :class:`WorkerResult` s, each with the time
        its process was seen to end."""
        deadline = time.monotonic() + timeout
        ended = {}
        while len(ended) < self.workers and time.monotonic() < deadline:
            for i, process in enumerate(self.processes):
                if i not in ended and process.poll() is not None:
                    ended[i] = (process.returncode, time.monotonic() - self._started)
            time.sleep(0.05)
        results = []
        for i, process in enumerate(self.processes):
            if i not in ended:
                process.kill()
                process.wait()
                ended[i] = (None, time.monotonic() - self._started)
            results.append(WorkerResult(i, ended[i][0], self.output(i), ended[i][1]))
        return results

    def close(self):
        """Kill what still runs and close the log files."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for log in self._logs:
            log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def address_in_use(results):
    """Whether a worker failed because its port was taken."""
    return any(r.returncode and any(text in r.output for text in ADDRESS_IN_USE)
               for r in results)


def run_workers(command, workers=2, env=None, timeout=300, log_dir=None, retries=1,
                chief=False):
    """Run ``command(i)`` for every worker ``i`` on loopback with its ``TF_CONFIG`` (process 0
    a ``chief`` with ``chief``) and wait; returns the :class:`WorkerResult` s. Runs again on new
    ports (up to ``retries`` times) when a worker could not bind its port."""
    for attempt in range(retries + 1):
        with LocalCluster(command, workers, env, log_dir, chief=chief) as cluster:
            results = cluster.start().wait(timeout)
        if not address_in_use(results) or attempt == retries:
            return results
    return results
