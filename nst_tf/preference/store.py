"""SQLite store of a pairwise-preference session (standard library ``sqlite3``, WAL mode).

Tables:

* ``meta``: key/value settings of the session (content image, model, number of styles);
* ``pairs``: every pair shown, with both weight vectors *as shown* (left, right), which of the
  learner's pair went left (``order``: ``"ab"`` or ``"ba"``) and a status (``open``: waiting for
  a vote, ``answered``, ``retired``: replaced after an undo);
* ``comparisons``: every vote: pair, both vectors, shown order, choice (``left``, ``right``,
  ``tie``, ``skip``), annotator, the client's vote id (UNIQUE, so a double click or a retried
  request counts once), time, seconds the pair was on screen, and ``undone`` (undo marks a row,
  it never deletes one).

Restarting on the same file continues: the open pair is shown again and the learner is rebuilt
from the comparisons that were not undone.

Example:
    >>> import os, tempfile
    >>> store = PreferenceStore(os.path.join(tempfile.mkdtemp(), "prefs.sqlite"))
    >>> pair = store.add_pair([1.0, 0.0], [0.0, 1.0], order="ab")
    >>> store.vote(pair, "left", client_id="c1", annotator="me")["choice"]
    'left'
    >>> [row["choice"] for row in store.comparisons()]
    ['left']
"""

import json
import os
import sqlite3
import threading
import time
import uuid

from nst_tf.errors import NSTError

CHOICES = ("left", "right", "tie", "skip")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
    id TEXT PRIMARY KEY,
    left_weights TEXT NOT NULL,
    right_weights TEXT NOT NULL,
    shown_order TEXT NOT NULL CHECK (shown_order IN ('ab', 'ba')),
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'answered', 'retired')),
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS comparisons (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id TEXT NOT NULL REFERENCES pairs(id),
    left_weights TEXT NOT NULL,
    right_weights TEXT NOT NULL,
    shown_order TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'tie', 'skip')),
    annotator TEXT NOT NULL,
    client_id TEXT NOT NULL UNIQUE,
    time REAL NOT NULL,
    seconds_shown REAL,
    undone INTEGER NOT NULL DEFAULT 0
);
"""


class StoreError(NSTError, ValueError):
    """A request the store refuses; ``status`` is the HTTP status it maps to."""

    status = 400


class UnknownPairError(StoreError):
    """A vote on a pair id the store never issued."""

    status = 404


class ConflictError(StoreError):
    """A vote on a pair that is no longer open, or a vote id reused for another pair."""

    status = 409


class PreferenceStore:
    """One session's pairs and votes in an SQLite file; safe to share between threads."""

    def __init__(self, path):
        self.path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise StoreError(f"cannot open {self.path}: folder {folder} does not exist")
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a preference database: {e}") from e
        self._lock = threading.RLock()

    def close(self):
        self._db.close()

    # ------------------------------------------------------------ settings
    def get_meta(self, key, default=None):
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    def set_meta(self, key, value):
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # ------------------------------------------------------------ pairs
    def add_pair(self, left, right, order):
        """Store a pair as shown; returns its new id."""
        pair_id = uuid.uuid4().hex
        with self._lock:
            self._db.execute(
                "INSERT INTO pairs (id, left_weights, right_weights, shown_order, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (pair_id, _vector(left), _vector(right), order, time.time()))
        return pair_id

    def pair(self, pair_id):
        """The pair as a dict (``id``, ``left``, ``right``, ``order``, ``status``); else error."""
        row = self._db.execute("SELECT * FROM pairs WHERE id = ?", (str(pair_id),)).fetchone()
        if row is None:
            raise UnknownPairError(f"unknown pair id {pair_id!r}")
        return {"id": row["id"], "left": json.loads(row["left_weights"]),
                "right": json.loads(row["right_weights"]), "order": row["shown_order"],
                "status": row["status"], "created": row["created"]}

    def open_pair(self):
        """The newest pair still waiting for a vote, or None."""
        row = self._db.execute("SELECT id FROM pairs WHERE status = 'open' "
                               "ORDER BY created DESC, rowid DESC LIMIT 1").fetchone()
        return None if row is None else self.pair(row["id"])

    # ------------------------------------------------------------ votes
    def vote(self, pair_id, choice, client_id, annotator):
        """Record a vote; the same ``client_id`` again returns the stored vote unchanged.

        Raises UnknownPairError (404), StoreError for a bad choice (400), ConflictError (409) for
        a pair no longer open or a ``client_id`` already used on another pair.
        """
        if choice not in CHOICES:
            raise StoreError(f"choice must be one of {', '.join(CHOICES)}, got {choice!r}")
        if not isinstance(client_id, str) or not client_id or len(client_id) > 200:
            raise StoreError("client_id must be a non-empty string (at most 200 characters)")
        if not isinstance(annotator, str) or len(annotator) > 200:
            raise StoreError("annotator must be a string (at most 200 characters)")
        with self._lock:
            pair = self.pair(pair_id)
            previous = self._db.execute("SELECT * FROM comparisons WHERE client_id = ?",
                                        (client_id,)).fetchone()
            if previous is not None:
                if previous["pair_id"] != pair["id"]:
                    raise ConflictError(f"vote id {client_id!r} was already used for another "
                                        "pair")
                return _comparison(previous)            # a retry: counted once
            if pair["status"] != "open":
                raise ConflictError(f"pair {pair['id']} is {pair['status']}: it was already "
                                    "answered by another vote or replaced")
            now = time.time()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO comparisons (pair_id, left_weights, right_weights, shown_order, "
                    "choice, annotator, client_id, time, seconds_shown) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (pair["id"], _vector(pair["left"]), _vector(pair["right"]), pair["order"],
                     choice, annotator, client_id, now, now - pair["created"]))
                self._db.execute("UPDATE pairs SET status = 'answered' WHERE id = ?",
                                 (pair["id"],))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            row = self._db.execute("SELECT * FROM comparisons WHERE client_id = ?",
                                   (client_id,)).fetchone()
            return _comparison(row)

    def undo(self):
        """Mark the newest vote undone and reopen its pair (the open pair is retired).

        Returns the reopened pair, or None when there is nothing to undo.
        """
        with self._lock:
            row = self._db.execute("SELECT * FROM comparisons WHERE undone = 0 "
                                   "ORDER BY id DESC LIMIT 1").fetchone()
            if row is None:
                return None
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("UPDATE comparisons SET undone = 1 WHERE id = ?", (row["id"],))
                self._db.execute("UPDATE pairs SET status = 'retired' WHERE status = 'open'")
                self._db.execute("UPDATE pairs SET status = 'open', created = ? WHERE id = ?",
                                 (time.time(), row["pair_id"]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self.pair(row["pair_id"])

    def comparisons(self, include_undone=False):
        """Every vote in order, as dicts (``left``, ``right``, ``choice``, ``annotator``, ...)."""
        query = "SELECT * FROM comparisons" + ("" if include_undone else " WHERE undone = 0")
        return [_comparison(r) for r in self._db.execute(query + " ORDER BY id")]

    def learner_data(self):
        """``(left, right, preferred)`` for the learner: skips dropped, ties as None."""
        outcome = {"left": 0, "right": 1, "tie": None}
        return [(c["left"], c["right"], outcome[c["choice"]]) for c in self.comparisons()
                if c["choice"] != "skip"]


def _vector(w):
    return json.dumps([round(float(x), 6) for x in w])


def _comparison(row):
    return {"id": row["id"], "pair_id": row["pair_id"], "left": json.loads(row["left_weights"]),
            "right": json.loads(row["right_weights"]), "order": row["shown_order"],
            "choice": row["choice"], "annotator": row["annotator"],
            "client_id": row["client_id"], "time": row["time"],
            "seconds_shown": row["seconds_shown"], "undone": bool(row["undone"])}
