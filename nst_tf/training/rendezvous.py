"""Start-up of a multi-worker run: every worker meets every other one before TensorFlow starts.

``MultiWorkerMirroredStrategy`` waits inside TensorFlow's C++ start-up until every task of the
cluster has connected: a peer that never starts hangs the others forever, silently, deaf to
Ctrl-C and SIGTERM (the wait holds the main thread outside Python; TensorFlow's preemption
notifier takes SIGTERM); and workers whose ``TF_CONFIG`` clusters disagree fail later with
errors that do not name the difference. :func:`meet_peers` runs first, in Python:

1. each worker listens on its own ``TF_CONFIG`` port (all interfaces) and connects to every
   other task's address, retrying while it is not up yet;
2. over each connection both sides send one JSON line: who they are and their whole cluster;
   a cluster that differs, or a process at an address that says it is another task, is a
   one-line :class:`~nst_tf.errors.ConfigError` naming the difference;
3. when a worker has heard every peer in both directions it closes its port, which TensorFlow's
   server then binds, and the strategy starts with everyone there.

While it waits it says for whom (after 5 s, then every 30 s); after ``timeout`` seconds it gives
up with a :class:`~nst_tf.errors.WorkerLostError` naming the tasks that never answered; Ctrl-C
and SIGTERM stop it (:class:`StartupInterrupted`).

Example:
    >>> config = {"cluster": {"worker": ["127.0.0.1:2222"]}, "task": {"type": "worker",
    ...           "index": 0}}
    >>> meet_peers(config)     # a cluster of one: nobody to wait for
    []
"""

import json
import signal
import socket
import sys
import threading
import time

from nst_tf.errors import ConfigError, WorkerLostError

#: Marks a start-up line of this protocol (and its version).
PROTOCOL = "nst_tf.rendezvous/1"
#: Seconds before the first "waiting for" line, and between the next ones.
FIRST_NOTICE, NOTICE_EVERY = 5.0, 30.0


class StartupInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM while a worker waited for its peers; ``signum`` says which."""

    def __init__(self, signum, waiting_for):
        super().__init__(f"stopped by {signal.Signals(signum).name} while waiting for "
                         f"{waiting_for}")
        self.signum = signum


def tasks(cluster):
    """``[(task_type, index, address)]`` of every task, the chief first."""
    return [(job, i, address) for job in ("chief", "worker")
            for i, address in enumerate(cluster.get(job, []))]


def describe(cluster):
    """``"chief: a:1; worker: b:1, c:1"`` (one line)."""
    return "; ".join(f"{job}: {', '.join(hosts)}" for job, hosts in sorted(cluster.items()))


def _hello(config):
    task = config["task"]
    return (json.dumps({"protocol": PROTOCOL, "task": [task["type"], task["index"]],
                        "cluster": config["cluster"]}) + "\n").encode()


def _read_line(sock, limit=1 << 20):
    data = b""
    while not data.endswith(b"\n") and len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _parse(data):
    """The peer's hello ``{"task": [type, index], "cluster": ...}``, or None if it is not one."""
    try:
        hello = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(hello, dict) or hello.get("protocol") != PROTOCOL:
        return None
    return hello


def _mismatch(me, config, peer_name, address, hello):
    """The one-line message for a peer whose cluster differs, or None."""
    if hello["cluster"] == config["cluster"]:
        return None
    return (f"the workers' TF_CONFIG clusters disagree: {me} has {{{describe(config['cluster'])}}} "
            f"but {peer_name} ({address}) has {{{describe(hello['cluster'])}}}; give every "
            f"worker the same 'cluster'")


def _listen(port):
    if socket.has_dualstack_ipv6():
        return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
    return socket.create_server(("", port))


class _Server(threading.Thread):
    """Answers the peers' hellos on this worker's port until stopped."""

    def __init__(self, listener, config, me):
        super().__init__(daemon=True, name="nst-rendezvous")
        self.listener, self.config, self.me = listener, config, me
        self.heard, self.errors = set(), []
        self.stopping = threading.Event()
        listener.settimeout(0.2)

    def run(self):
        while not self.stopping.is_set():
            try:
                connection, peer = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            with connection:
                self._answer(connection, peer)

    def _answer(self, connection, peer):
        connection.settimeout(10.0)
        try:
            hello = _parse(_read_line(connection))
            if hello is None:
                return
            connection.sendall(_hello(self.config))
            task = tuple(hello["task"])
            name = f"{task[0]} {task[1]}"
            error = _mismatch(self.me, self.config, name, f"from {peer[0]}", hello)
            if error:
                self.errors.append(error)
                return
            _read_line(connection)        # the peer closes first: no TIME_WAIT on this port
            self.heard.add(task)
        except (OSError, TypeError, IndexError, KeyError):
            return


def _ask(address, config, timeout=10.0):
    """Send our hello to ``address``: the peer's hello, None when nobody answers there (yet), or
    the string ``"foreign"`` when something that is not a starting worker answered."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0) as sock:
            sock.settimeout(timeout)
            sock.sendall(_hello(config))
            hello = _parse(_read_line(sock))
    except OSError:
        return None
    return "foreign" if hello is None else hello


def meet_peers(config, timeout=600.0, say=None, poll=0.25):
    """Wait until every task of ``config`` (a checked ``TF_CONFIG``:
    :func:`~nst_tf.training.distribute.read_tf_config`) has started and agrees on the cluster;
    returns the peers as ``[(task_type, index, address)]``.

    Args:
        timeout: seconds to wait for the peers (None: for ever).
        say: where the "waiting for" lines go (default: standard error).

    Raises:
        ConfigError: the clusters disagree, another task answers at a peer's address, or this
            worker's port is taken.
        WorkerLostError: some peers did not start within ``timeout`` seconds (named).
        StartupInterrupted: Ctrl-C or SIGTERM.
    """
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    kind, index = config["task"]["type"], config["task"]["index"]
    me = f"{kind} {index}"
    everyone = tasks(config["cluster"])
    address = config["cluster"][kind][index]
    peers = [t for t in everyone if t[:2] != (kind, index)]
    if not peers:
        return []
    port = int(address.rpartition(":")[2])
    try:
        listener = _listen(port)
    except OSError as exc:
        raise ConfigError(f"{me} cannot listen on port {port} (its address {address} in "
                          f"TF_CONFIG): {exc.strerror}; another process holds it, or two "
                          f"workers were given the same task") from None
    server = _Server(listener, config, me)
    pending = {(job, i): a for job, i, a in peers}
    waiting = []

    def on_term(signum, frame):
        raise StartupInterrupted(signum, ", ".join(waiting) or "peers")

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_term) if main else None
    start = time.monotonic()
    notice = FIRST_NOTICE
    server.start()
    try:
        while pending or len(server.heard) < len(peers):
            for task, where in list(pending.items()):
                hello = _ask(where, config)
                name = f"{task[0]} {task[1]}"
                if hello == "foreign":
                    raise ConfigError(f"{name}'s address {where} answers, but not as an "
                                      f"nst-tf worker starting up (is an earlier run still "
                                      f"there?); restart every worker")
                if hello is None:
                    continue
                error = _mismatch(me, config, name, where, hello)
                if error:
                    raise ConfigError(error)
                if tuple(hello["task"]) != task:
                    raise ConfigError(f"TF_CONFIG here puts {name} at {where}, but the worker "
                                      f"there is {hello['task'][0]} {hello['task'][1]}: give "
                                      f"each worker its own task index")
                del pending[task]
            if server.errors:
                raise ConfigError(server.errors[0])
            unheard = [(job, i, a) for job, i, a in peers if (job, i) not in server.heard]
            waiting[:] = [f"{job} {i} ({a})" for job, i, a in peers
                          if (job, i) in pending or (job, i, a) in unheard]
            if not waiting:
                break
            elapsed = time.monotonic() - start
            if timeout is not None and elapsed > timeout:
                raise WorkerLostError(f"{', '.join(waiting)} did not start within "
                                      f"{timeout:g} s (startup_timeout); start every worker of "
                                      f"the cluster, or allow longer")
            if elapsed >= notice:
                limit = "" if timeout is None else f" of startup_timeout={timeout:g} s"
                say(f"{me}: waiting for {', '.join(waiting)} to start ({elapsed:.0f} s{limit})")
                notice += NOTICE_EVERY
            time.sleep(poll)
    except KeyboardInterrupt as exc:
        if isinstance(exc, StartupInterrupted):
            raise
        raise StartupInterrupted(signal.SIGINT, ", ".join(waiting) or "peers") from None
    finally:
        server.stopping.set()
        server.join()
        listener.close()
        if main:
            signal.signal(signal.SIGTERM, previous)
    return peers
