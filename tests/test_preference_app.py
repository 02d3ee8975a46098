"""nst-prefer without a browser: the SQLite store, the Flask routes, the CLI commands."""

import csv
import io
import json
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("flask")  # the `test` extra installs it: this runs in CI

from nst_tf.cli import prefer  # noqa: E402
from nst_tf.preference.app import create_app  # noqa: E402
from nst_tf.preference.session import PreferenceSession  # noqa: E402
from nst_tf.preference.store import PreferenceStore  # noqa: E402

N = 4


def flat_render(weights):
    """A fake renderer: a flat image whose colour encodes the first three weights."""
    return np.broadcast_to(np.asarray(weights[:3], np.float32), (8, 8, 3))


def make_client(db, seed=0):
    session = PreferenceSession(PreferenceStore(db), N, flat_render, seed=seed)
    return create_app(session).test_client(), session


def rows(db):
    with sqlite3.connect(db) as con:
        return con.execute("SELECT choice, client_id, undone FROM comparisons ORDER BY id").fetchall()


def vote(client, pair_id, choice, client_id):
    return client.post("/api/vote", json={"pair_id": pair_id, "choice": choice,
                                          "client_id": client_id, "annotator": "ann"})


def test_votes_are_stored_with_vectors_order_and_are_idempotent(tmp_path):
    db = tmp_path / "p.sqlite"
    client, session = make_client(db)
    state = client.get("/api/state").get_json()
    pair = session.store.pair(state["pair"]["id"])
    assert client.get(f"/image/{state['pair']['left']}.png").data[:8] == b"\x89PNG\r\n\x1a\n"
    first = vote(client, pair["id"], "left", "v1")
    assert first.status_code == 200 and first.get_json()["count"] == 1
    again = vote(client, pair["id"], "left", "v1")            # a retried request
    assert again.status_code == 200 and again.get_json()["count"] == 1
    assert rows(db) == [("left", "v1", 0)]
    stored = session.store.comparisons()[0]
    np.testing.assert_allclose(stored["left"], pair["left"], atol=1e-6)
    assert stored["order"] in ("ab", "ba") and stored["annotator"] == "ann"
    assert len(session.learner) == 1
    # the left/right order is randomized: over several pairs both orders appear
    orders = {stored["order"]}
    for i in range(8):
        pair_id = client.get("/api/state").get_json()["pair"]["id"]
        vote(client, pair_id, ["right", "tie", "skip"][i % 3], f"w{i}")
        orders.add(session.store.comparisons()[-1]["order"])
    assert orders == {"ab", "ba"}
    assert len(session.learner) == 1 + 6                       # skips do not teach the model


@pytest.mark.parametrize("body, status", [
    ("{not json", 400),
    (json.dumps([1, 2]), 400),
    (json.dumps({"pair_id": "PAIR", "choice": "up", "client_id": "x"}), 400),
    (json.dumps({"pair_id": "PAIR", "choice": "left"}), 400),
    (json.dumps({"pair_id": "nope", "choice": "left", "client_id": "x"}), 404),
])
def test_bad_requests_get_4xx_and_store_nothing(tmp_path, body, status):
    db = tmp_path / "p.sqlite"
    client, _ = make_client(db)
    pair_id = client.get("/api/state").get_json()["pair"]["id"]
    response = client.post("/api/vote", data=body.replace("PAIR", pair_id),
                           content_type="application/json")
    assert response.status_code == status and "error" in response.get_json()
    assert rows(db) == []


def test_a_pair_answered_by_another_client_is_a_conflict(tmp_path):
    db = tmp_path / "p.sqlite"
    client, _ = make_client(db)
    pair_id = client.get("/api/state").get_json()["pair"]["id"]
    assert vote(client, pair_id, "left", "a").status_code == 200
    response = vote(client, pair_id, "right", "b")
    assert response.status_code == 409 and "already answered" in response.get_json()["error"]
    next_id = client.get("/api/state").get_json()["pair"]["id"]
    assert vote(client, next_id, "left", "a").status_code == 409   # vote id reused
    assert rows(db) == [("left", "a", 0)]


def test_undo_marks_and_shows_the_pair_again_and_restart_continues(tmp_path):
    db = tmp_path / "p.sqlite"
    client, session = make_client(db)
    first = client.get("/api/state").get_json()["pair"]["id"]
    vote(client, first, "left", "v1")
    second = client.get("/api/state").get_json()["pair"]["id"]
    vote(client, second, "right", "v2")
    state = client.post("/api/undo").get_json()
    assert state["pair"]["id"] == second and state["count"] == 1
    assert rows(db) == [("left", "v1", 0), ("right", "v2", 1)]     # marked, never deleted
    assert len(session.learner) == 1
    vote(client, second, "tie", "v3")
    open_pair = client.get("/api/state").get_json()["pair"]["id"]
    session.close()
    # restart on the same database: same open pair, same count, learner rebuilt
    client2, session2 = make_client(db)
    state = client2.get("/api/state").get_json()
    assert state["pair"]["id"] == open_pair and state["count"] == 2
    assert len(session2.learner) == 2
    assert client2.post("/api/undo").status_code == 200
    assert client2.post("/api/undo").status_code == 200
    assert client2.post("/api/undo").status_code == 409             # nothing left to undo


def test_export_jsonl_and_csv_exclude_undone_votes(tmp_path):
    db = tmp_path / "p.sqlite"
    client, session = make_client(db)
    for i, choice in enumerate(["left", "tie", "right"]):
        vote(client, client.get("/api/state").get_json()["pair"]["id"], choice, f"v{i}")
    client.post("/api/undo")
    session.close()
    out = tmp_path / "out.jsonl"
    assert prefer.main(["nst-prefer", "export", f"--db={db}", f"--output={out}"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["choice"] for line in lines] == ["left", "tie"]
    assert set(lines[0]) == {"left", "right", "choice", "annotator", "time"}
    assert len(lines[0]["left"]) == N and abs(sum(lines[0]["left"]) - 1) < 1e-5
    text = prefer.export_text(str(db), "csv")
    table = list(csv.DictReader(io.StringIO(text)))
    assert [r["choice"] for r in table] == ["left", "tie"]
    assert json.loads(table[1]["right"]) == lines[1]["right"]


def test_cli_errors_are_one_line(tmp_path):
    code = [sys.executable, "-m", "nst_tf.cli.prefer", "export", f"--db={tmp_path}/none.sqlite"]
    out = subprocess.run(code, capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip() == f"nst-prefer export: error: database {tmp_path}/none.sqlite " \
                                 "does not exist"
    code = [sys.executable, "-m", "nst_tf.cli.prefer", f"--db={tmp_path}/x.sqlite"]
    out = subprocess.run(code, capture_output=True, text=True)
    assert out.returncode == 1 and "--content" in out.stderr


def test_import_nst_tf_does_not_load_flask():
    code = ("import sys, nst_tf, nst_tf.preference; nst_tf.preference.PreferenceLearner; "
            "print('flask' in sys.modules, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_next_pair_is_rendered_while_the_current_one_is_shown(tmp_path):
    rendered = []

    def render(weights):
        rendered.append(np.round(weights, 3).tolist())
        return flat_render(weights)

    session = PreferenceSession(PreferenceStore(tmp_path / "p.sqlite"), N, render)
    client = create_app(session).test_client()
    for i in range(6):
        pair_id = client.get("/api/state").get_json()["pair"]["id"]
        session._executor.submit(lambda: None).result()   # the render thread is idle again
        before = len(rendered)
        state = vote(client, pair_id, ["left", "right"][i % 2], f"v{i}").get_json()
        pair = session.store.pair(state["pair"]["id"])
        for side in ("left", "right"):                       # already rendered: no new render
            assert np.round(np.asarray(pair[side], np.float32), 3).tolist() in rendered[:before]
            client.get(f"/image/{state['pair'][side]}.png")
