"""How long does the nst-prefer page take to take an answer and show the next question, at 100
answers, on a busy machine? (issue 27)

A session database is filled with 100 answers of a simulated person (random questions: more
distinct mixes than the learner's own questions, so a larger fit). Then, for each server mode,
the page's server runs in its own process (Werkzeug, as ``nst-prefer`` runs it, with a flat-colour
renderer: the time measured is the learner's and the server's, not the style network's), a
load generator process keeps ``--load`` threads busy (default: one per core), and a
simulated person answers ``--answers`` more questions over HTTP, each as soon as the previous
one is on screen (``--think`` seconds later). Timed: ``POST /api/vote`` until its reply, which
holds the next question.

Modes:

* ``background`` (``nst-prefer`` as it is): the reply comes from the last fitted posterior or a
  question prepared for that answer; fits run in the session's ``refit`` thread.
* ``request``: the peer, the learner fitted on the request path before the reply (as before
  issue 27), measured in the same run under the same load.

    python benchmarks/preference_latency.py                 # grid of four, 100 + 30 answers
    python benchmarks/preference_latency.py --question=pair --answers=20 --load=0

Prints a table and writes JSON to benchmarks/results/preference_latency.json.
"""

import argparse
import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import json  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

import numpy as np  # noqa: E402

N = 32
MODES = ("background", "request")


def flat_render(weights):
    return np.broadcast_to(np.asarray(weights[:3], np.float32), (8, 8, 3))


def fill(db, kind, answers, seed=0):
    """A session database holding ``answers`` answers of a simulated person (random questions)."""
    from nst_tf.preference.learner import PreferenceLearner
    from nst_tf.preference.store import PreferenceStore
    from nst_tf.preference.tastes import draw_families

    store = PreferenceStore(db, kind=kind)
    _, labeler = draw_families("validation", 1)[0].person(N, seed)
    learner = PreferenceLearner(N, seed=seed)
    for i in range(answers):
        options = learner.random_query(store.kind.k)
        chosen = labeler.choose(options)
        order = list(range(4)) if kind == "grid4" else "ab"
        question_id = store.add_question([w.tolist() for w in options], order)
        store.answer(question_id, _choice(kind, chosen), f"fill{i}", "fill")
    store.close()


def _choice(kind, chosen):
    """The page's answer for the labeler's ``chosen`` (an option index or None)."""
    if kind == "grid4":
        return "none" if chosen is None else int(chosen)
    return "tie" if chosen is None else ["left", "right"][chosen]


def serve(db, port, mode):
    """The server process: a session on ``db`` served by Werkzeug on ``port``."""
    import logging

    from werkzeug.serving import make_server

    from nst_tf.preference.app import create_app
    from nst_tf.preference.session import PreferenceSession, _Fit
    from nst_tf.preference.store import PreferenceStore

    class RequestSession(PreferenceSession):
        """The peer: the learner is fitted on the request path, before the reply."""

        def _next_options(self, after):
            learner = self.learner.copy(warm=self._fitted.learner)
            self._fitted = _Fit(self._base, self._version, learner)
            return self._fitted.question(self.kind.k)

    cls = RequestSession if mode == "request" else PreferenceSession
    session = cls(PreferenceStore(db), N, flat_render)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)   # no line per request
    server = make_server("127.0.0.1", port, create_app(session), threaded=True)
    print("ready", flush=True)
    server.serve_forever()


def load_generator(threads):
    """The load process: ``threads`` threads hashing a buffer (hashlib lets go of the GIL on
    large buffers, so one process keeps that many cores busy) until it is killed."""
    import hashlib
    import threading

    data = os.urandom(1 << 20)

    def spin():
        while True:
            hashlib.sha256(data).digest()

    for _ in range(threads):
        threading.Thread(target=spin, daemon=True).start()
    threading.Event().wait()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as reply:
        return json.loads(reply.read())


def measure(db, kind, mode, answers, think, seed):
    """Seconds of each vote round trip, and how many replies came from a posterior that had
    every answer."""
    from nst_tf.preference.tastes import draw_families

    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", db, str(port), mode],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{port}"
        _, labeler = draw_families("validation", 1)[0].person(N, seed)
        state = _call(url + "/api/state")
        seconds, current = [], 0
        for i in range(answers):
            question = state.get("question") or state["pair"]
            weights = _options(db, question["id"])
            chosen = labeler.choose(np.asarray(weights))
            body = {"question_id" if kind == "grid4" else "pair_id": question["id"],
                    "choice": _choice(kind, chosen), "client_id": f"bench{i}",
                    "annotator": "bench"}
            time.sleep(think)
            start = time.perf_counter()
            state = _call(url + "/api/vote", body)
            seconds.append(time.perf_counter() - start)
            current += state["fitted"]
        return seconds, current
    finally:
        server.terminate()
        server.wait()


def _options(db, question_id):
    from nst_tf.preference.store import PreferenceStore

    store = PreferenceStore(db, readonly=True)
    try:
        return store.question(question_id)["options"]
    finally:
        store.close()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        return serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    if len(sys.argv) > 1 and sys.argv[1] == "--load-generator":
        return load_generator(int(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--question", default="grid4", choices=("grid4", "pair"))
    parser.add_argument("--prefill", type=int, default=100)
    parser.add_argument("--answers", type=int, default=30)
    parser.add_argument("--think", type=float, default=0.0)
    parser.add_argument("--load", type=int, default=os.cpu_count())
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                         "preference_latency.json"))
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
    results, loader = {}, None
    try:
        source = os.path.join(folder, "filled.sqlite")
        fill(source, args.question, args.prefill, args.seed)
        if args.load:
            loader = subprocess.Popen([sys.executable, __file__, "--load-generator",
                                       str(args.load)])
            time.sleep(3.0)
        load = [os.getloadavg()[0]]
        for mode in args.modes.split(","):
            db = os.path.join(folder, f"{mode}.sqlite")
            shutil.copy(source, db)
            seconds, current = measure(db, args.question, mode, args.answers, args.think,
                                       args.seed)
            load.append(os.getloadavg()[0])
            results[mode] = {"p50": float(np.percentile(seconds, 50)),
                             "p95": float(np.percentile(seconds, 95)),
                             "max": float(np.max(seconds)), "replies": len(seconds),
                             "from_a_posterior_with_every_answer": current,
                             "seconds": [round(s, 4) for s in seconds]}
    finally:
        if loader is not None:
            loader.terminate()
            loader.wait()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{args.question}, answers {args.prefill + 1}-{args.prefill + args.answers}, think "
          f"{args.think:g} s, load generator: {args.load} busy threads, load average "
          + " -> ".join(f"{v:.1f}" for v in load) + f" on {os.cpu_count()} cores")
    print(f"{'mode':<12}{'p50 (s)':>9}{'p95 (s)':>9}{'max (s)':>9}  replies with every answer")
    for mode, r in results.items():
        print(f"{mode:<12}{r['p50']:>9.3f}{r['p95']:>9.3f}{r['max']:>9.3f}  "
              f"{r['from_a_posterior_with_every_answer']} of {r['replies']}")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"question": args.question, "prefill": args.prefill, "think": args.think,
                   "load_workers": args.load, "load_average": load, "cores": os.cpu_count(),
                   "modes": results}, f, indent=1)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
