"""One person's session: the store, the learner and the renderer together (no web framework).

:class:`PreferenceSession` is what the web page talks to: it keeps one question open (a pair
or a grid of four, see :mod:`nst_tf.preference.questions`), records answers (idempotent, via
:class:`~nst_tf.preference.store.PreferenceStore`), feeds them to a
:class:`~nst_tf.preference.learner.PreferenceLearner`, shuffles the options on screen, and
renders images in one background thread. No request waits for the model: a ``refit`` thread
fits the learner to the newest answers and then, while a question is on screen, chooses the
question that would follow each answer (the learner's next question is a function of its data),
the likeliest answer first, and has it rendered. A vote takes that question when it is ready,
and otherwise one chosen from the last fitted posterior.

Example (a renderer that paints each mix a flat colour):
    >>> import os, tempfile, numpy as np
    >>> from nst_tf.preference.store import PreferenceStore
    >>> store = PreferenceStore(os.path.join(tempfile.mkdtemp(), "prefs.sqlite"))
    >>> session = PreferenceSession(store, 3, render=lambda w: np.broadcast_to(w, (8, 8, 3)))
    >>> question = session.state()["question"]
    >>> len(question["options"])
    4
    >>> session.vote(question["id"], 2, client_id="v1", annotator="me")["count"]
    1
"""

import concurrent.futures
import hashlib
import io
import json
import sys
import threading

import numpy as np

from nst_tf.preference.learner import PreferenceLearner
from nst_tf.preference.questions import SKIP
from nst_tf.preference.store import StoreError

#: How many of the largest weights of the best mix the page lists (with style thumbnails).
BEST_WEIGHTS = 5


class _Fit:
    """A learner whose posterior and ``best()`` are computed (``version``: of the session's data,
    ``base``: bumps when answers are taken back, so versions of one base only ever add answers)."""

    def __init__(self, base, version, learner):
        self.base, self.version, self.learner = base, version, learner
        self._question = None

    def question(self, k):
        """The learner's next question (computed once)."""
        if self._question is None:
            self._question = self.learner.next_query(k)
        return self._question


class PreferenceSession:
    """Questions, answers and images of one session.

    Args:
        store: a :class:`~nst_tf.preference.store.PreferenceStore` (new or continued); its
            ``kind`` says whether the questions are pairs or grids of four.
        num_styles: N.
        render: ``weights [N] float32 -> image [H, W, 3] float32 in [0, 1]``.
        seed: seeds the learner and the order on screen.
        speculate: prepare the questions that may come next (see the module docstring).

    The learner is fitted in a background thread (``refit``): a request never waits for a fit.
    A vote takes the question prepared for that answer when it is ready, and otherwise asks
    from the last fitted posterior (:meth:`PreferenceLearner.next_query` with ``after``);
    ``state()["fitted"]`` says whether the best mix shown is based on every answer.
    """

    def __init__(self, store, num_styles, render, seed=0, speculate=True):
        self.store, self.num_styles, self.render = store, int(num_styles), render
        self.kind = store.kind
        self.seed, self.speculate = int(seed), speculate
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="render")
        self._images = {}      # key -> Future of PNG bytes
        self._weights = {}     # key -> weights
        self._base = self._version = 0
        self._ahead = {}       # (version, question id, chosen) -> _Fit of that answer's data
        self._closed = False
        self._rebuild()
        learner = self.learner.copy()
        learner.best()         # the first fit, before the page is served
        learner.prepare(self.kind.k)
        self._fitted = _Fit(self._base, self._version, learner)
        self._speculated = None
        with self._lock:
            if self.store.open_question() is None:
                self._new_question()
            self._prefetch(self.store.open_question())
        self._worker = threading.Thread(target=self._refit_loop, name="refit", daemon=True)
        self._worker.start()

    def close(self):
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ learner
    def _rebuild(self):
        self.learner = PreferenceLearner(self.num_styles, seed=self.seed)
        self._learned = set()
        self._base += 1
        self._version += 1
        for answer in self.store.answers():
            self._learn(answer)

    def _learn(self, answer):
        """Give the learner ``answer`` (once); True when its data changed."""
        if answer["id"] in self._learned:
            return False
        self._learned.add(answer["id"])
        chosen = self.kind.chosen(answer["choice"])
        if chosen is SKIP:
            return False
        self.learner.add_choice(answer["options"], chosen)
        self._version += 1
        return True

    def _next_options(self, after):
        """The next question's options, without fitting: prepared for this answer, or asked
        from the last fitted posterior (``after``: ``(version before, question, chosen)`` of
        the answer just given, or None)."""
        fit = self._fitted
        if after is not None:
            before, question, chosen = after
            ready = self._ahead.get((before, question["id"], chosen))
            if ready is not None and ready.version == self._version:
                self._fitted = ready
                return ready.question(self.kind.k)
        if fit.base == self._base and fit.version == self._version:
            return fit.question(self.kind.k)
        if after is not None and fit.base == self._base:
            return fit.learner.next_query(self.kind.k, after=(after[1]["options"], after[2]))
        return fit.learner.next_query(self.kind.k)

    def _new_question(self, after=None):
        options = list(self._next_options(after))
        count = self.store.count(include_undone=True)
        shown, order = self.kind.shuffle(np.random.default_rng([self.seed, 1, count]), options)
        question = self.store.question(self.store.add_question(shown, order))
        self._prefetch(question)
        self._changed.notify_all()
        return question

    def wait_idle(self, timeout=None):
        """Wait until the ``refit`` thread has nothing left to do: the best mix is based on every
        answer and the questions after each answer are prepared. True if so by ``timeout``."""
        with self._changed:
            return self._changed.wait_for(self._is_idle, timeout)

    def _is_idle(self):
        return self._is_fitted() and (not self.speculate or self._speculated == self._open_key())

    def _is_fitted(self):
        return self._fitted.base == self._base and self._fitted.version == self._version

    def _refit_loop(self):
        """The ``refit`` thread: fit the newest data, then prepare the questions that would
        follow each answer to the open question, the likeliest answer first. A failure is
        reported once per state of the data; the page goes on from the last fit."""
        failed = None
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._closed or (
                    not self._is_idle() and failed != (self._base, self._version)))
                if self._closed:
                    return
                base, version, warm = self._base, self._version, self._fitted.learner
                learner = self.learner.copy(warm=warm)
                fitted = self._is_fitted()
            try:
                if fitted:
                    self._prepare_answers(base, version, learner)
                else:
                    self._publish(base, version, learner)
            except Exception as e:   # noqa: BLE001 -- a thread has no caller to raise to
                failed = (base, version)
                print(f"nst-prefer: refitting the model failed ({type(e).__name__}: {e}); "
                      "questions come from the last fit", file=sys.stderr, flush=True)

    def _publish(self, base, version, learner):
        learner.best()
        learner.prepare(self.kind.k)   # a vote before the next fit is answered from it
        with self._changed:
            if not self._closed and base == self._base and version >= self._fitted.version:
                self._fitted = _Fit(base, version, learner)
                self._changed.notify_all()

    def _open_key(self):
        question = self.store.open_question()
        return (self._base, self._version, question and question["id"])

    def _prepare_answers(self, base, version, learner):
        with self._lock:
            if self._closed:
                return
            key = self._open_key()
            question = self.store.open_question()
            self._ahead = {k: v for k, v in self._ahead.items() if k[0] == version}
        try:
            if question is not None and key[:2] == (base, version):
                self._prepare(key, question, learner)
        finally:
            with self._changed:
                self._speculated = key
                self._changed.notify_all()

    def _prepare(self, key, question, learner):
        base, version, _ = key
        options = question["options"]
        mean = learner.predict(np.asarray(options, np.float64))[0]
        for chosen in np.argsort(-mean):          # the person's likeliest pick first
            with self._lock:
                if self._closed or self._open_key() != key:
                    return                         # answered meanwhile: fit the new data first
            guess = learner.copy()
            guess.add_choice(options, int(chosen))
            ready = _Fit(base, version + 1, guess)
            images = [self.image_key(w) for w in ready.question(self.kind.k)]
            with self._lock:
                if self._closed:
                    return
                self._ahead[(version, question["id"], int(chosen))] = ready
                for image in images:
                    self._submit(image)

    # ------------------------------------------------------------ images
    def image_key(self, weights):
        """A stable key for a mix (weights rounded to 1e-3) under which its image is cached."""
        w = np.round(np.asarray(weights, np.float64), 3)
        key = hashlib.sha1(json.dumps(w.tolist()).encode()).hexdigest()[:20]
        with self._lock:
            self._weights.setdefault(key, np.asarray(weights, np.float32))
        return key

    def _submit(self, key):
        with self._lock:
            if key not in self._images:
                self._images[key] = self._executor.submit(self._png, self._weights[key])
            return self._images[key]

    def _png(self, weights):
        from PIL import Image

        image = np.asarray(self.render(np.asarray(weights, np.float32)), np.float32)
        image = np.squeeze(image)
        buffer = io.BytesIO()
        Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buffer, "PNG")
        return buffer.getvalue()

    def image(self, key):
        """PNG bytes of the image with this key (rendered now unless it is already), or None."""
        with self._lock:
            if key not in self._weights:
                return None
        return self._submit(key).result()

    def _prefetch(self, question):
        for w in question["options"]:
            self._submit(self.image_key(w))

    # ------------------------------------------------------------ requests
    def state(self):
        """The open question, the number of answers and the current best mix, for the page."""
        with self._lock:
            question = self.store.open_question() or self._new_question()
            fitted = self._fitted.learner
            best = fitted.best()
            top = [int(i) for i in np.argsort(-best)[:BEST_WEIGHTS] if best[i] >= 0.005]
            state = self.kind.page_state(question, [self.image_key(w)
                                                    for w in question["options"]])
            state.update({
                "count": self.store.count(),
                "fitted": self._is_fitted(),
                "best": {"image": self.image_key(best),
                         "weights": [{"style": i, "weight": round(float(best[i]), 3),
                                      "image": self.image_key(np.eye(self.num_styles)[i])}
                                     for i in top]},
            })
            return state

    def vote(self, question_id, choice, client_id, annotator):
        """Record an answer (a retried ``client_id`` counts once); returns the new :meth:`state`."""
        with self._lock:
            before = self._version
            answer = self.store.answer(question_id, choice, client_id, annotator)
            if self._learn(answer) and self.store.open_question() is None:
                question = {"id": answer["question_id"], "options": answer["options"]}
                self._new_question((before, question, self.kind.chosen(answer["choice"])))
            self._changed.notify_all()
            return self.state()

    def undo(self):
        """Undo the newest answer: its question is shown again. Returns the new :meth:`state`."""
        with self._lock:
            if self.store.undo() is None:
                raise StoreError("nothing to undo")
            self._rebuild()
            self._prefetch(self.store.open_question())
            self._changed.notify_all()
            return self.state()
