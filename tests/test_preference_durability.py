"""nst-prefer keeps every answer a user gave (issue 28): a server killed with ``kill -9`` leaves
its newest answers in the write-ahead log, and ``export`` and ``backup`` (the documented way to
copy a session) still hold all of them; a server stopped with SIGTERM leaves them all in the
``.sqlite`` file; an ``--output`` onto the session's own files is refused."""

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import urllib.request

import pytest

pytest.importorskip("flask")  # the `test` extra installs it: this runs in CI

from conftest import console  # noqa: E402
from nst_tf.cli import prefer  # noqa: E402
from tests.prefer_server import Server, write_session_files  # noqa: E402

VOTES = 5


@pytest.fixture(scope="module")
def session_files(tmp_path_factory):
    return write_session_files(tmp_path_factory.mktemp("prefer"))


def post_votes(server, count):
    """Answer ``count`` questions through the HTTP API; each vote is acknowledged (200) before
    the next. Returns the vote ids."""
    ids = []
    for i in range(count):
        with urllib.request.urlopen(server.url + "/api/state", timeout=60) as r:
            question = json.load(r)["question"]["id"]
        body = json.dumps({"question_id": question, "choice": i % 4, "client_id": f"vote-{i}",
                           "annotator": "me"}).encode()
        request = urllib.request.Request(server.url + "/api/vote", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            assert r.status == 200 and json.load(r)["count"] == i + 1
        ids.append(f"vote-{i}")
    return ids


def run(program, *args):
    return subprocess.run(console(program) + list(args), capture_output=True, text=True,
                          timeout=300)


def vote_ids(db):
    """The vote ids stored in ``db``, read by SQLite directly (no nst-prefer code)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return [r[0] for r in con.execute("SELECT client_id FROM answers ORDER BY id")]


def vote_then_signal(session_files, db, signum, before_votes=lambda: None):
    """Serve ``db``, call ``before_votes()``, answer VOTES questions, then send ``signum`` to the
    server; returns the vote ids, the server's exit status and its output."""
    server = Server(session_files, db, None)
    try:
        before_votes()
        ids = post_votes(server, VOTES)
    finally:
        server.process.send_signal(signum)
        code = server.process.wait(timeout=60)
    return ids, code, server.process.stdout.read()


@pytest.mark.slow
def test_a_killed_servers_votes_are_all_in_export_and_in_a_backup(session_files, tmp_path):
    """A reader that stays open (an export, a database browser) keeps SQLite from moving the
    votes into the .sqlite file: after kill -9 they are in p.sqlite-wal only."""
    db = tmp_path / "p.sqlite"
    readers = []

    def hold_a_snapshot():
        readers.append(sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None))
        readers[0].execute("BEGIN")
        readers[0].execute("SELECT count(*) FROM answers").fetchone()

    try:
        ids, code, _ = vote_then_signal(session_files, db, signal.SIGKILL, hold_a_snapshot)
        assert code == -signal.SIGKILL and (tmp_path / "p.sqlite-wal").exists()
        naive = tmp_path / "naive.sqlite"        # what the docs warn against
        shutil.copyfile(db, naive)
        assert vote_ids(naive) == []
        done = run("nst-prefer", "export", f"--db={db}")
        assert done.returncode == 0, done.stderr
        assert [json.loads(line)["choice"] for line in done.stdout.splitlines()] == \
            [i % 4 for i in range(VOTES)]
        copy = tmp_path / "elsewhere" / "copy.sqlite"
        copy.parent.mkdir()
        done = run("nst-prefer", "backup", f"--db={db}", f"--output={copy}")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"saved {copy} ({VOTES} answers)"
    finally:
        for reader in readers:
            reader.close()
    # The copy is one self-contained file: moved on its own, it holds every vote.
    for path in tmp_path.glob("p.sqlite*"):
        path.unlink()
    assert sorted(os.listdir(copy.parent)) == ["copy.sqlite"]
    alone = tmp_path / "alone.sqlite"
    shutil.move(copy, alone)
    assert vote_ids(alone) == ids


@pytest.mark.slow
def test_a_stopped_server_leaves_every_vote_in_the_sqlite_file(session_files, tmp_path):
    db = tmp_path / "p.sqlite"
    ids, code, output = vote_then_signal(session_files, db, signal.SIGTERM)
    assert code == 0, output
    assert f"nst-prefer: stopped; every answer is in {db}" in output
    assert not (tmp_path / "p.sqlite-wal").exists() or \
        (tmp_path / "p.sqlite-wal").stat().st_size == 0
    only = tmp_path / "only.sqlite"                 # the .sqlite file alone, copied by hand
    shutil.copyfile(db, only)
    assert vote_ids(only) == ids


def make_session(db):
    from nst_tf.preference.store import PreferenceStore

    store = PreferenceStore(db, kind="grid4")
    question = store.add_question([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8]],
                                  order=[0, 1, 2, 3])
    store.answer(question, 0, client_id="c1", annotator="me")
    return store


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_export_onto_its_own_database_is_refused_as_typed(tmp_path):
    """The command of the issue: it exited 0 and replaced the database by the JSONL."""
    db = tmp_path / "p.sqlite"
    make_session(db).close()
    before = digest(db)
    done = subprocess.run(console("nst-prefer") + ["export", "--db=p.sqlite",
                                                   "--output=p.sqlite"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "nst-prefer export: error: --output=p.sqlite is the database p.sqlite: writing it would "
        "destroy the session; choose another --output"]
    assert digest(db) == before and sorted(os.listdir(tmp_path)) == ["p.sqlite"]


@pytest.mark.parametrize("output", ["link", "dots", "absolute", "hardlink", "wal", "shm"])
@pytest.mark.parametrize("command", ["export", "backup", "best"])
def test_every_spelling_of_the_database_is_refused_as_output(tmp_path, monkeypatch, capsys,
                                                             command, output):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    store = make_session("p.sqlite")      # open: its -wal and -shm files exist
    try:
        os.symlink("p.sqlite", "link.sqlite")
        os.link("p.sqlite", "hard.sqlite")
        target = {"link": "link.sqlite", "dots": "sub/../p.sqlite",
                  "absolute": str(tmp_path / "p.sqlite"), "hardlink": "hard.sqlite",
                  "wal": "p.sqlite-wal", "shm": "./p.sqlite-shm"}[output]
        files = {name: digest(name) for name in os.listdir(".") if os.path.isfile(name)}
        argv = ["nst-prefer", command, "--db=p.sqlite", f"--output={target}"]
        assert prefer.main(argv + (["--content=c.png", "--model=m"] if command == "best"
                                   else [])) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"nst-prefer {command}: error: --output="), err
        assert "would destroy the session" in err[0]
        assert {name: digest(name) for name in files} == files
    finally:
        store.close()
    assert vote_ids(tmp_path / "p.sqlite") == ["c1"]
