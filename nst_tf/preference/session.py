"""One person's session: the store, the learner and the renderer together (no web framework).

:class:`PreferenceSession` is what the web page talks to: it keeps one question open (a pair
or a grid of four, see :mod:`nst_tf.preference.questions`), records answers (idempotent, via
:class:`~nst_tf.preference.store.PreferenceStore`), feeds them to a
:class:`~nst_tf.preference.learner.PreferenceLearner`, shuffles the options on screen, and
renders images in one background thread, *ahead of time*: while a question is on screen it
renders the question that would follow each answer (the learner's next question is a function
of its data), the likeliest answer first, so the next question is usually ready when the answer
arrives.

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
import threading

import numpy as np

from nst_tf.preference.learner import PreferenceLearner
from nst_tf.preference.questions import SKIP
from nst_tf.preference.store import StoreError

#: How many of the largest weights of the best mix the page lists (with style thumbnails).
BEST_WEIGHTS = 5


class PreferenceSession:
    """Questions, answers and images of one session.

    Args:
        store: a :class:`~nst_tf.preference.store.PreferenceStore` (new or continued); its
            ``kind`` says whether the questions are pairs or grids of four.
        num_styles: N.
        render: ``weights [N] float32 -> image [H, W, 3] float32 in [0, 1]``.
        seed: seeds the learner and the order on screen.
        speculate: pre-render the questions that may come next (see the module docstring).
    """

    def __init__(self, store, num_styles, render, seed=0, speculate=True):
        self.store, self.num_styles, self.render = store, int(num_styles), render
        self.kind = store.kind
        self.seed, self.speculate = int(seed), speculate
        self._lock = threading.RLock()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="render")
        self._images = {}      # key -> Future of PNG bytes
        self._weights = {}     # key -> weights
        self._rebuild()
        if self.store.open_question() is None:
            self._new_question()
        self._prefetch(self.store.open_question())

    def close(self):
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ learner
    def _rebuild(self):
        self.learner = PreferenceLearner(self.num_styles, seed=self.seed)
        self._learned = set()
        for answer in self.store.answers():
            self._learn(answer)

    def _learn(self, answer):
        if answer["id"] in self._learned:
            return
        self._learned.add(answer["id"])
        chosen = self.kind.chosen(answer["choice"])
        if chosen is not SKIP:
            self.learner.add_choice(answer["options"], chosen)

    def _new_question(self):
        options = list(self.learner.next_query(self.kind.k))
        count = len(self.store.answers(include_undone=True))
        shown, order = self.kind.shuffle(np.random.default_rng([self.seed, 1, count]), options)
        question = self.store.question(self.store.add_question(shown, order))
        self._prefetch(question)
        return question

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
        if self.speculate:
            self._executor.submit(self._speculate, question)

    def _speculate(self, question):
        """Render the questions that would follow each answer to ``question``, the likeliest
        answer first (runs in the render thread)."""
        with self._lock:
            learner = self.learner.copy()
        options = question["options"]
        mean = learner.predict(np.asarray(options, np.float64))[0]
        for chosen in np.argsort(-mean):          # the person's likeliest pick first
            guess = learner.copy()
            guess.add_choice(options, int(chosen))
            for w in guess.next_query(self.kind.k):
                self._render_now(w)

    def _render_now(self, weights):
        key = self.image_key(weights)
        with self._lock:
            if key in self._images:
                return
            future = self._images[key] = concurrent.futures.Future()
        try:
            future.set_result(self._png(weights))
        except BaseException as e:  # surfaced when the page asks for the image
            future.set_exception(e)

    # ------------------------------------------------------------ requests
    def state(self):
        """The open question, the number of answers and the current best mix, for the page."""
        with self._lock:
            question = self.store.open_question() or self._new_question()
            best = self.learner.best()
            top = [int(i) for i in np.argsort(-best)[:BEST_WEIGHTS] if best[i] >= 0.005]
            state = self.kind.page_state(question, [self.image_key(w)
                                                    for w in question["options"]])
            state.update({
                "count": len(self.store.answers()),
                "best": {"image": self.image_key(best),
                         "weights": [{"style": i, "weight": round(float(best[i]), 3),
                                      "image": self.image_key(np.eye(self.num_styles)[i])}
                                     for i in top]},
            })
            return state

    def vote(self, question_id, choice, client_id, annotator):
        """Record an answer (a retried ``client_id`` counts once); returns the new :meth:`state`."""
        with self._lock:
            answer = self.store.answer(question_id, choice, client_id, annotator)
            self._learn(answer)
            return self.state()

    def undo(self):
        """Undo the newest answer: its question is shown again. Returns the new :meth:`state`."""
        with self._lock:
            if self.store.undo() is None:
                raise StoreError("nothing to undo")
            self._rebuild()
            self._prefetch(self.store.open_question())
            return self.state()
