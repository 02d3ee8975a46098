"""One person's session: the store, the learner and the renderer together (no web framework).

:class:`PreferenceSession` is what the web page talks to: it keeps one pair open, records votes
(idempotent, via :class:`~nst_tf.preference.store.PreferenceStore`), feeds them to a
:class:`~nst_tf.preference.learner.PreferenceLearner`, randomizes left/right, and renders images
in one background thread, *ahead of time*: while a pair is on screen it renders the pair that
would follow a "left" answer and the one that would follow a "right" answer (the learner's next
pair is a function of its data), so the next pair is usually ready when the vote arrives.

Example (a renderer that paints each mix a flat colour):
    >>> import os, tempfile, numpy as np
    >>> from nst_tf.preference.store import PreferenceStore
    >>> store = PreferenceStore(os.path.join(tempfile.mkdtemp(), "prefs.sqlite"))
    >>> session = PreferenceSession(store, 3, render=lambda w: np.broadcast_to(w, (8, 8, 3)))
    >>> pair = session.state()["pair"]
    >>> session.vote(pair["id"], "left", client_id="v1", annotator="me")["count"]
    1
"""

import concurrent.futures
import hashlib
import io
import json
import threading

import numpy as np

from nst_tf.preference.learner import PreferenceLearner
from nst_tf.preference.store import StoreError


class PreferenceSession:
    """Pairs, votes and images of one session.

    Args:
        store: a :class:`~nst_tf.preference.store.PreferenceStore` (new or continued).
        num_styles: N.
        render: ``weights [N] float32 -> image [H, W, 3] float32 in [0, 1]``.
        seed: seeds the learner and the left/right order.
        speculate: pre-render the pairs that may come next (see the module docstring).
    """

    def __init__(self, store, num_styles, render, seed=0, speculate=True):
        self.store, self.num_styles, self.render = store, int(num_styles), render
        self.seed, self.speculate = int(seed), speculate
        self._lock = threading.RLock()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="render")
        self._images = {}      # key -> Future of PNG bytes
        self._weights = {}     # key -> weights
        self._rebuild()
        if self.store.open_pair() is None:
            self._new_pair()
        self._prefetch(self.store.open_pair())

    def close(self):
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ learner
    def _rebuild(self):
        self.learner = PreferenceLearner(self.num_styles, seed=self.seed)
        self._learned = set()
        for comparison in self.store.comparisons():
            self._learn(comparison)

    def _learn(self, comparison):
        if comparison["id"] in self._learned:
            return
        self._learned.add(comparison["id"])
        outcome = {"left": 0, "right": 1, "tie": None}
        if comparison["choice"] in outcome:
            self.learner.add(comparison["left"], comparison["right"],
                             outcome[comparison["choice"]])

    def _new_pair(self):
        a, b = self.learner.next_pair()
        swap = np.random.default_rng([self.seed, 1, len(self.store.comparisons(True))]).random()
        left, right, order = (b, a, "ba") if swap < 0.5 else (a, b, "ab")
        pair = self.store.pair(self.store.add_pair(left, right, order))
        self._prefetch(pair)
        return pair

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

    def _prefetch(self, pair):
        self._submit(self.image_key(pair["left"]))
        self._submit(self.image_key(pair["right"]))
        if self.speculate:
            self._executor.submit(self._speculate, pair)

    def _speculate(self, pair):
        """Render the pairs that would follow each answer to ``pair`` (runs in the render thread)."""
        with self._lock:
            learner = self.learner.copy()
        for winner in (0, 1):
            guess = learner.copy()
            guess.add(pair["left"], pair["right"], winner)
            for w in guess.next_pair():
                key = self.image_key(w)
                with self._lock:
                    if key not in self._images:
                        future = concurrent.futures.Future()
                        self._images[key] = future
                    else:
                        continue
                try:
                    future.set_result(self._png(w))
                except BaseException as e:  # surfaced when the page asks for the image
                    future.set_exception(e)

    # ------------------------------------------------------------ requests
    def state(self):
        """The open pair, the number of votes and the current best mix, for the page."""
        with self._lock:
            pair = self.store.open_pair() or self._new_pair()
            best = self.learner.best()
            top = np.argsort(-best)[:5]
            return {
                "pair": {"id": pair["id"], "left": self.image_key(pair["left"]),
                         "right": self.image_key(pair["right"])},
                "count": len(self.store.comparisons()),
                "best": {"image": self.image_key(best),
                         "weights": [{"style": int(i), "weight": round(float(best[i]), 3)}
                                     for i in top if best[i] >= 0.005]},
            }

    def vote(self, pair_id, choice, client_id, annotator):
        """Record a vote (a retried ``client_id`` counts once) and return the new :meth:`state`."""
        with self._lock:
            comparison = self.store.vote(pair_id, choice, client_id, annotator)
            self._learn(comparison)
            return self.state()

    def undo(self):
        """Undo the newest vote: its pair is shown again. Returns the new :meth:`state`."""
        with self._lock:
            if self.store.undo() is None:
                raise StoreError("nothing to undo")
            self._rebuild()
            self._prefetch(self.store.open_pair())
            return self.state()
