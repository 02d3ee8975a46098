"""SQLite store of a preference session (standard library ``sqlite3``, WAL mode).

Tables:

* ``meta``: key/value settings of the session (content image, model, number of styles, the kind
  of question);
* per kind of question (:mod:`nst_tf.preference.questions`), one table of questions and one of
  answers: ``pairs`` / ``comparisons`` for pairs (the layout of the first sessions, which keep
  loading), ``questions`` / ``answers`` for grids of four;
* a question holds its mixes *as shown* (left/right, or the four grid positions), the learner's
  order of them (``shown_order``) and a status (``open``: waiting for an answer, ``answered``,
  ``retired``: replaced after an undo);
* an answer holds the question, its mixes, shown order, choice, annotator, the client's vote id
  (UNIQUE, so a double click or a retried request counts once), time, seconds the question was on
  screen, and ``undone`` (undo marks a row, it never deletes one).

Restarting on the same file continues: the open question is shown again and the learner is
rebuilt from the answers that were not undone. ``readonly=True`` (``nst-prefer export`` and
``best``) opens the file with SQLite's ``mode=ro`` and refuses a file that is not a session
database, so such a file is never changed.

Example:
    >>> import os, tempfile
    >>> store = PreferenceStore(os.path.join(tempfile.mkdtemp(), "prefs.sqlite"), kind="pair")
    >>> question = store.add_question([[1.0, 0.0], [0.0, 1.0]], order="ab")
    >>> store.answer(question, "left", client_id="c1", annotator="me")["choice"]
    'left'
    >>> [row["choice"] for row in store.answers()]
    ['left']
"""

import json
import os
import sqlite3
import threading
import time
import urllib.parse
import uuid

from nst_tf.errors import NSTError
from nst_tf.io import atomic_path
from nst_tf.preference.questions import KINDS, SKIP, ChoiceError, kind_named

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
CREATE TABLE IF NOT EXISTS questions (
    id TEXT PRIMARY KEY,
    options TEXT NOT NULL,
    shown_order TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'answered', 'retired')),
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    question_id TEXT NOT NULL REFERENCES questions(id),
    options TEXT NOT NULL,
    shown_order TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('0', '1', '2', '3', 'none', 'skip')),
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


class UnknownQuestionError(StoreError):
    """An answer to a question id the store never issued."""

    status = 404


class ConflictError(StoreError):
    """An answer to a question that is no longer open, or a vote id reused for another one."""

    status = 409


class PreferenceStore:
    """One session's questions and answers in an SQLite file; safe to share between threads.

    Args:
        path: the database file (created unless ``readonly``).
        kind: ``"pair"`` or ``"grid4"`` for a new session (default ``"grid4"``); a file that
            already holds answers keeps its kind, and asking for another is an error.
        readonly: open with SQLite's ``mode=ro`` (nothing is ever written) and refuse a file
            that does not exist or is not a session database.
    """

    def __init__(self, path, kind=None, readonly=False):
        self.path = os.fspath(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        folder = os.path.dirname(os.path.abspath(self.path))
        if readonly and not os.path.isfile(self.path):
            raise StoreError(f"database {self.path} does not exist")
        if not os.path.isdir(folder):
            raise StoreError(f"cannot open {self.path}: folder {folder} does not exist")
        try:
            if readonly:
                uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False,
                                           isolation_level=None)
            else:
                self._db = sqlite3.connect(self.path, check_same_thread=False,
                                           isolation_level=None)
            self._db.row_factory = sqlite3.Row
            tables = {r[0] for r in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            self._check_tables(tables)
            if not readonly:
                self._db.execute("PRAGMA journal_mode=WAL")
                # Copy each commit from the write-ahead log into the main file at once (votes
                # come at human speed), so the .sqlite file itself soon holds every answer.
                self._db.execute("PRAGMA wal_autocheckpoint=1")
                self._db.executescript(_SCHEMA)
            self.kind = self._resolve_kind(kind, tables)
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise StoreError(f"{self.path} is not a preference session database: {e}") from e
        except StoreError:
            self._db.close()
            raise

    def _check_tables(self, tables):
        sessions = [{"meta", k.question_table, k.answer_table} for k in KINDS.values()]
        if any(s <= tables for s in sessions):
            return
        if tables or self.readonly:   # someone else's database, or an empty / new file
            raise StoreError(f"{self.path} is not a preference session database (it has "
                             f"{'tables ' + ', '.join(sorted(tables)) if tables else 'no tables'})")

    def _resolve_kind(self, wanted, tables):
        recorded = None
        if "meta" in tables:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'question'").fetchone()
            recorded = json.loads(row["value"]) if row else None
            if recorded is None and "pairs" in tables and self._db.execute(
                    "SELECT 1 FROM pairs LIMIT 1").fetchone():
                recorded = "pair"          # a session from before grids: pairs only
        if recorded is not None and wanted is not None and recorded != wanted:
            raise StoreError(f"{self.path} holds a {recorded} session; use --question={recorded} "
                             f"or another database for {wanted} questions")
        try:
            kind = kind_named(recorded or wanted or "grid4")
        except ChoiceError as e:
            raise StoreError(str(e)) from None
        if recorded is None and not self.readonly:
            self.set_meta("question", kind.name)
        return kind

    def close(self):
        """Close the file; a read-write store first moves every answer from the write-ahead log
        (``<db>-wal``) into the database file, which then holds the whole session alone."""
        with self._lock:
            if not self.readonly:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

    def backup(self, path):
        """Copy the whole session into ``path``: one self-contained SQLite file (no ``-wal``),
        written atomically with SQLite's online backup, which reads through the write-ahead log.
        Safe while a server is writing the database and after one was killed (``kill -9``
        leaves the latest answers in ``<db>-wal`` only).

        Example:
            >>> import tempfile
            >>> folder = tempfile.mkdtemp()
            >>> store = PreferenceStore(os.path.join(folder, "p.sqlite"), kind="pair")
            >>> question = store.add_question([[1.0, 0.0], [0.0, 1.0]], order="ab")
            >>> _ = store.answer(question, "right", client_id="c1", annotator="me")
            >>> store.backup(os.path.join(folder, "copy.sqlite"))
            >>> copy = PreferenceStore(os.path.join(folder, "copy.sqlite"), readonly=True)
            >>> [row["choice"] for row in copy.answers()]
            ['right']
        """
        with self._lock, atomic_path(path, suffix=".sqlite") as tmp:
            target = sqlite3.connect(tmp, isolation_level=None)
            try:
                self._db.backup(target)
                target.execute("PRAGMA journal_mode=DELETE")
            finally:
                target.close()

    # ------------------------------------------------------------ settings
    def get_meta(self, key, default=None):
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    def set_meta(self, key, value):
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # ------------------------------------------------------------ questions
    def add_question(self, options, order):
        """Store a question as shown (``options`` in screen order); returns its new id."""
        kind = self.kind
        if len(options) != kind.k:
            raise StoreError(f"a {kind.name} question has {kind.k} options, got {len(options)}")
        question_id = uuid.uuid4().hex
        columns = ", ".join(kind.option_columns)
        marks = ", ".join("?" * (len(kind.option_columns) + 3))
        with self._lock:
            self._db.execute(
                f"INSERT INTO {kind.question_table} (id, {columns}, shown_order, created) "
                f"VALUES ({marks})",
                (question_id, *kind.encode_options(options), kind.encode_order(order),
                 time.time()))
        return question_id

    def question(self, question_id):
        """The question as a dict (``id``, ``options``, ``order``, ``status``, ``created``)."""
        row = self._db.execute(f"SELECT * FROM {self.kind.question_table} WHERE id = ?",
                               (str(question_id),)).fetchone()
        if row is None:
            raise UnknownQuestionError(f"unknown question id {question_id!r}")
        return {"id": row["id"], "options": self.kind.decode_options(row),
                "order": self.kind.decode_order(row["shown_order"]), "status": row["status"],
                "created": row["created"]}

    def open_question(self):
        """The newest question still waiting for an answer, or None."""
        row = self._db.execute(f"SELECT id FROM {self.kind.question_table} WHERE status = 'open' "
                               "ORDER BY created DESC, rowid DESC LIMIT 1").fetchone()
        return None if row is None else self.question(row["id"])

    # ------------------------------------------------------------ answers
    def answer(self, question_id, choice, client_id, annotator):
        """Record an answer; the same ``client_id`` again returns the stored answer unchanged.

        Raises UnknownQuestionError (404), StoreError for a bad choice or field (400),
        ConflictError (409) for a question no longer open or a ``client_id`` already used on
        another question.
        """
        kind = self.kind
        try:
            stored = kind.check_choice(choice)
        except ChoiceError as e:
            raise StoreError(str(e)) from None
        if not isinstance(client_id, str) or not client_id or len(client_id) > 200:
            raise StoreError("client_id must be a non-empty string (at most 200 characters)")
        if not isinstance(annotator, str) or len(annotator) > 200:
            raise StoreError("annotator must be a string (at most 200 characters)")
        with self._lock:
            question = self.question(question_id)
            previous = self._db.execute(f"SELECT * FROM {kind.answer_table} WHERE client_id = ?",
                                        (client_id,)).fetchone()
            if previous is not None:
                if previous[kind.question_column] != question["id"]:
                    raise ConflictError(f"vote id {client_id!r} was already used for another "
                                        "question")
                return self._answer(previous)            # a retry: counted once
            if question["status"] != "open":
                raise ConflictError(f"question {question['id']} is {question['status']}: it was "
                                    "already answered by another vote or replaced")
            now = time.time()
            columns = ", ".join(kind.option_columns)
            marks = ", ".join("?" * (len(kind.option_columns) + 7))
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    f"INSERT INTO {kind.answer_table} ({kind.question_column}, {columns}, "
                    "shown_order, choice, annotator, client_id, time, seconds_shown) "
                    f"VALUES ({marks})",
                    (question["id"], *kind.encode_options(question["options"]),
                     kind.encode_order(question["order"]), stored, annotator, client_id, now,
                     now - question["created"]))
                self._db.execute(f"UPDATE {kind.question_table} SET status = 'answered' "
                                 "WHERE id = ?", (question["id"],))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            row = self._db.execute(f"SELECT * FROM {kind.answer_table} WHERE client_id = ?",
                                   (client_id,)).fetchone()
            return self._answer(row)

    def undo(self):
        """Mark the newest answer undone and reopen its question (the open one is retired).

        Returns the reopened question, or None when there is nothing to undo.
        """
        kind = self.kind
        with self._lock:
            row = self._db.execute(f"SELECT * FROM {kind.answer_table} WHERE undone = 0 "
                                   "ORDER BY id DESC LIMIT 1").fetchone()
            if row is None:
                return None
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(f"UPDATE {kind.answer_table} SET undone = 1 WHERE id = ?",
                                 (row["id"],))
                self._db.execute(f"UPDATE {kind.question_table} SET status = 'retired' "
                                 "WHERE status = 'open'")
                self._db.execute(f"UPDATE {kind.question_table} SET status = 'open', created = ? "
                                 "WHERE id = ?", (time.time(), row[kind.question_column]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self.question(row[kind.question_column])

    def answers(self, include_undone=False):
        """Every answer in order, as dicts (``options``, ``order``, ``choice``, ``annotator``...)."""
        query = f"SELECT * FROM {self.kind.answer_table}" + (
            "" if include_undone else " WHERE undone = 0")
        return [self._answer(r) for r in self._db.execute(query + " ORDER BY id")]

    def count(self, include_undone=False):
        """How many answers :meth:`answers` would return (without reading them)."""
        query = f"SELECT COUNT(*) FROM {self.kind.answer_table}" + (
            "" if include_undone else " WHERE undone = 0")
        return self._db.execute(query).fetchone()[0]

    def learner_data(self):
        """``(options, chosen)`` of every answer for the learner (skips dropped)."""
        data = [(a["options"], self.kind.chosen(a["choice"])) for a in self.answers()]
        return [(options, chosen) for options, chosen in data if chosen is not SKIP]

    def export_rows(self):
        """The answers not undone, in the export format of the session's kind of question."""
        return [self.kind.export_row(a) for a in self.answers()]

    def _answer(self, row):
        kind = self.kind
        return {"id": row["id"], "question_id": row[kind.question_column],
                "options": kind.decode_options(row),
                "order": kind.decode_order(row["shown_order"]), "choice": row["choice"],
                "annotator": row["annotator"], "client_id": row["client_id"],
                "time": row["time"], "seconds_shown": row["seconds_shown"],
                "undone": bool(row["undone"])}

