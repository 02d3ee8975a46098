"""nst-prefer without a browser: the SQLite store, the Flask routes, the CLI commands."""

import csv
import hashlib
import io
import json
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("flask")  # the `test` extra installs it: this runs in CI

from nst_tf.cli import prefer  # noqa: E402
from nst_tf.preference import app as app_module  # noqa: E402
from nst_tf.preference.app import create_app  # noqa: E402
from nst_tf.preference.session import PreferenceSession  # noqa: E402
from nst_tf.preference.store import PreferenceStore, StoreError  # noqa: E402

N = 4


def flat_render(weights):
    """A fake renderer: a flat image whose colour encodes the first three weights."""
    return np.broadcast_to(np.asarray(weights[:3], np.float32), (8, 8, 3))


def make_client(db, kind="grid4", seed=0, speculate=True):
    session = PreferenceSession(PreferenceStore(db, kind=kind), N, flat_render, seed=seed,
                                speculate=speculate)
    return create_app(session).test_client(), session


def rows(db, table="answers"):
    with sqlite3.connect(db) as con:
        return con.execute(f"SELECT choice, client_id, undone FROM {table} ORDER BY id").fetchall()


def open_id(client):
    state = client.get("/api/state").get_json()
    return (state.get("question") or state["pair"])["id"]


def vote(client, question_id, choice, client_id):
    return client.post("/api/vote", json={"question_id": question_id, "choice": choice,
                                          "client_id": client_id, "annotator": "ann"})


def pair_vote(client, pair_id, choice, client_id):
    return client.post("/api/vote", json={"pair_id": pair_id, "choice": choice,
                                          "client_id": client_id, "annotator": "ann"})


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# ------------------------------------------------------------------ grids of four
def test_grid_answers_are_stored_with_options_and_order_and_are_idempotent(tmp_path):
    db = tmp_path / "p.sqlite"
    client, session = make_client(db)
    state = client.get("/api/state").get_json()
    question = session.store.question(state["question"]["id"])
    assert len(state["question"]["options"]) == 4 and len(question["options"]) == 4
    png = client.get(f"/image/{state['question']['options'][2]}.png").data
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    first = vote(client, question["id"], 2, "v1")
    assert first.status_code == 200 and first.get_json()["count"] == 1
    again = vote(client, question["id"], 2, "v1")            # a retried request
    assert again.status_code == 200 and again.get_json()["count"] == 1
    assert rows(db) == [("2", "v1", 0)]
    stored = session.store.answers()[0]
    np.testing.assert_allclose(stored["options"], question["options"], atol=1e-6)
    assert sorted(stored["order"]) == [0, 1, 2, 3] and stored["annotator"] == "ann"
    # the learner got the options as shown and the position picked
    options, chosen = session.learner.answers[0]
    np.testing.assert_allclose(options, question["options"], atol=1e-6)
    assert chosen == 2
    # the order on screen is shuffled: over several questions the learner's first option
    # (the incumbent) appears at different positions
    positions = {stored["order"].index(0)}
    for i in range(8):
        vote(client, open_id(client), [0, 3, "none", "skip"][i % 4], f"w{i}")
        positions.add(session.store.answers()[-1]["order"].index(0))
    assert len(positions) >= 3
    assert len(session.learner) == 1 + 6                       # skips do not teach the model
    assert [c for _, c in session.learner.answers][-3:] == [0, 3, None]


@pytest.mark.parametrize("kind", ["grid4", "pair"])
@pytest.mark.parametrize("body, status", [
    ("{not json", 400),
    (json.dumps([1, 2]), 400),
    ("\xff\xfe", 400),
    (json.dumps({"ID": "QID", "choice": "up", "client_id": "x"}), 400),
    (json.dumps({"ID": "QID", "choice": 7, "client_id": "x"}), 400),
    (json.dumps({"ID": "QID", "choice": True, "client_id": "x"}), 400),
    (json.dumps({"ID": "QID", "choice": "CHOICE"}), 400),
    (json.dumps({"ID": "QID", "choice": "CHOICE", "client_id": 5}), 400),
    (json.dumps({"ID": "QID", "choice": "CHOICE", "client_id": "x", "extra": 1}), 400),
    (json.dumps({"ID": "QID", "choice": "CHOICE", "client_id": "x", "annotator": ["a"]}), 400),
    (json.dumps({"ID": "nope", "choice": "CHOICE", "client_id": "x"}), 404),
    # deeply nested JSON (issue 20): a 400, not a RecursionError and a 500
    ("[" * 5000 + "]" * 5000, 400),
    ('{"ID": "QID", "choice": "CHOICE", "client_id": "x", "annotator": ' + "[" * 5000 + "}", 400),
    # a body over the size cap: 413 before it is parsed
    ("[" * 100000, 413),
    (json.dumps({"ID": "QID", "choice": "CHOICE", "client_id": "x", "annotator": "a" * 20000}),
     413),
])
def test_bad_requests_get_4xx_and_store_nothing(tmp_path, kind, body, status):
    db = tmp_path / "p.sqlite"
    client, _ = make_client(db, kind=kind, speculate=False)
    question_id = open_id(client)
    body = body.replace("QID", question_id).replace(
        "ID", "question_id" if kind == "grid4" else "pair_id").replace(
        "CHOICE", "1" if kind == "grid4" else "left")
    if kind == "grid4":
        body = body.replace('"choice": "1"', '"choice": 1')
    raw = b"\xff\xfe" if body == "\xff\xfe" else body.encode()     # not UTF-8
    response = client.post("/api/vote", data=raw, content_type="application/json")
    assert response.status_code == status and "error" in response.get_json()
    assert rows(db, session_table(kind)) == []


def session_table(kind):
    return {"grid4": "answers", "pair": "comparisons"}[kind]


def test_nested_json_is_refused_before_it_is_parsed(monkeypatch):
    # the root cause of issue 20's 500: json.loads recursing on untrusted nesting. read_body
    # measures the depth first, so json.loads never sees a deep body
    assert app_module.json_depth('{"a": [1, {"b": "[[[["}], "c": "\\"]"}') == 3
    assert app_module.json_depth("[" * 100000) == 100000
    flask_app = create_app(PreferenceSession(PreferenceStore(":memory:"), N, flat_render,
                                             speculate=False))
    calls = []
    real_loads = json.loads
    monkeypatch.setattr(app_module.json, "loads", lambda text: calls.append(text) or
                        real_loads(text))
    with flask_app.test_request_context("/api/vote", method="POST", data="[" * 5000):
        with pytest.raises(app_module.BodyError, match="nested deeper"):
            app_module.read_body({})
    assert calls == []


def test_a_chunked_body_over_the_cap_is_a_413_from_the_real_server(tmp_path):
    # without a Content-Length Flask's cap does not apply before reading, and Werkzeug cut such
    # a body at the cap silently (a 2 MB vote was answered as malformed JSON): the cap must hold
    # for chunked requests too, on the server nst-prefer runs (Werkzeug's)
    import http.client
    import threading

    from werkzeug.serving import make_server

    db = tmp_path / "p.sqlite"
    session = PreferenceSession(PreferenceStore(db), N, flat_render, speculate=False)
    server = make_server("127.0.0.1", 0, create_app(session), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    question_id = session.state()["question"]["id"]

    def post_chunked(annotator):
        body = json.dumps({"question_id": question_id, "choice": 1, "client_id": annotator[:8],
                           "annotator": annotator}).encode()
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
        connection.request("POST", "/api/vote", body=(body[i:i + 4096] for i in
                                                      range(0, len(body), 4096)),
                           headers={"Content-Type": "application/json"}, encode_chunked=True)
        response = connection.getresponse()
        status, answer = response.status, json.loads(response.read())
        connection.close()
        return status, answer

    try:
        for size in (20000, 2_000_000):
            status, answer = post_chunked("a" * size)
            assert status == 413 and "over 16384 bytes" in answer["error"], (size, answer)
            assert rows(db) == []
        assert post_chunked("b" * 100)[0] == 200 and rows(db) == [("1", "b" * 8, 0)]
    finally:
        server.shutdown()
        session.close()


def test_every_route_answers_json_errors(tmp_path):
    client, _ = make_client(tmp_path / "p.sqlite", speculate=False)
    assert client.post("/api/undo", data="[" * 5000).status_code == 400
    assert client.post("/api/undo", json={"x": 1}).status_code == 400
    assert client.get("/api/nothing").status_code == 404
    assert "error" in client.get("/api/nothing").get_json()
    assert client.get("/api/vote").status_code == 405
    assert client.get("/image/unknown.png").status_code == 404


def test_a_question_answered_by_another_client_is_a_conflict(tmp_path):
    db = tmp_path / "p.sqlite"
    client, _ = make_client(db, speculate=False)
    question_id = open_id(client)
    assert vote(client, question_id, 0, "a").status_code == 200
    response = vote(client, question_id, 1, "b")
    assert response.status_code == 409 and "already answered" in response.get_json()["error"]
    assert vote(client, open_id(client), 0, "a").status_code == 409   # vote id reused
    assert rows(db) == [("0", "a", 0)]


def test_grid_undo_shows_the_question_again_and_restart_continues(tmp_path):
    db = tmp_path / "p.sqlite"
    client, session = make_client(db)
    first = open_id(client)
    vote(client, first, 3, "v1")
    second = open_id(client)
    vote(client, second, 1, "v2")
    state = client.post("/api/undo").get_json()
    assert state["question"]["id"] == second and state["count"] == 1
    assert rows(db) == [("3", "v1", 0), ("1", "v2", 1)]     # marked, never deleted
    assert len(session.learner) == 1
    vote(client, second, "none", "v3")
    open_question = open_id(client)
    session.close()
    # restart on the same database: same open question, same count, learner rebuilt
    client2, session2 = make_client(db)
    state = client2.get("/api/state").get_json()
    assert state["question"]["id"] == open_question and state["count"] == 2
    assert [c for _, c in session2.learner.answers] == [3, None]
    assert client2.post("/api/undo").status_code == 200
    assert client2.post("/api/undo").status_code == 200
    assert client2.post("/api/undo").status_code == 409             # nothing left to undo


def test_the_best_mix_lists_its_largest_weights_with_style_thumbnails(tmp_path):
    client, session = make_client(tmp_path / "p.sqlite", speculate=False)
    for i in range(3):
        vote(client, open_id(client), i, f"v{i}")
    assert session.wait_idle(60)   # the best mix of the last fit, which has every answer
    best = client.get("/api/state").get_json()["best"]
    weights = session.learner.best()
    assert [w["style"] for w in best["weights"]] == [
        int(i) for i in np.argsort(-weights)[:5] if weights[i] >= 0.005]
    for w in best["weights"]:
        assert w["weight"] == round(float(weights[w["style"]]), 3)
        thumbnail = client.get(f"/image/{w['image']}.png")   # the style alone, rendered
        pixel = np.asarray(__import__("PIL.Image").Image.open(io.BytesIO(thumbnail.data)))[0, 0]
        np.testing.assert_allclose(pixel / 255, flat_render(np.eye(N)[w["style"]])[0, 0],
                                   atol=1 / 255)
    assert client.get(f"/image/{best['image']}.png").status_code == 200


def test_the_next_question_is_rendered_while_the_current_one_is_shown(tmp_path):
    rendered = []

    def render(weights):
        rendered.append(np.round(weights, 3).tolist())
        return flat_render(weights)

    session = PreferenceSession(PreferenceStore(tmp_path / "p.sqlite"), N, render)
    client = create_app(session).test_client()
    for i in range(5):
        question_id = open_id(client)
        assert session.wait_idle(60)                        # the next questions are chosen
        session._executor.submit(lambda: None).result()   # and rendered
        before = len(rendered)
        state = vote(client, question_id, [0, 2, 1, 3, 2][i], f"v{i}").get_json()
        question = session.store.question(state["question"]["id"])
        for w, key in zip(question["options"], state["question"]["options"]):
            # already rendered: no new render
            assert np.round(np.asarray(w, np.float32), 3).tolist() in rendered[:before]
            client.get(f"/image/{key}.png")


def test_export_grid_rows_jsonl_and_csv_exclude_undone_answers(tmp_path):
    db = tmp_path / "p.sqlite"
    client, session = make_client(db, speculate=False)
    for i, choice in enumerate([2, "none", "skip", 0]):
        vote(client, open_id(client), choice, f"v{i}")
    client.post("/api/undo")
    shown = [a["options"] for a in session.store.answers()]
    session.close()
    out = tmp_path / "out.jsonl"
    assert prefer.main(["nst-prefer", "export", f"--db={db}", f"--output={out}"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["choice"] for line in lines] == [2, "none", "skip"]
    assert set(lines[0]) == {"options", "choice", "annotator", "time"}
    assert lines[0]["annotator"] == "ann" and lines[0]["options"] == shown[0]
    assert len(lines[0]["options"]) == 4 and all(len(w) == N for w in lines[0]["options"])
    text = prefer.export_text(str(db), "csv")
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0]) == ["options", "choice", "annotator", "time"]
    assert [r["choice"] for r in table] == ["2", "none", "skip"]
    assert json.loads(table[1]["options"]) == lines[1]["options"]


# ------------------------------------------------------------------ pairs (today's page)
def test_pair_votes_are_stored_with_vectors_order_and_are_idempotent(tmp_path):
    db = tmp_path / "p.sqlite"
    client, session = make_client(db, kind="pair")
    state = client.get("/api/state").get_json()
    assert set(state["pair"]) == {"id", "left", "right"}
    pair = session.store.question(state["pair"]["id"])
    assert client.get(f"/image/{state['pair']['left']}.png").data[:8] == b"\x89PNG\r\n\x1a\n"
    first = pair_vote(client, pair["id"], "left", "v1")
    assert first.status_code == 200 and first.get_json()["count"] == 1
    again = pair_vote(client, pair["id"], "left", "v1")
    assert again.status_code == 200 and again.get_json()["count"] == 1
    assert rows(db, "comparisons") == [("left", "v1", 0)]
    stored = session.store.answers()[0]
    np.testing.assert_allclose(stored["options"], pair["options"], atol=1e-6)
    assert stored["order"] in ("ab", "ba") and stored["annotator"] == "ann"
    orders = {stored["order"]}
    for i in range(8):
        pair_vote(client, open_id(client), ["right", "tie", "skip"][i % 3], f"w{i}")
        orders.add(session.store.answers()[-1]["order"])
    assert orders == {"ab", "ba"}
    assert len(session.learner) == 1 + 6


def test_pair_export_keeps_its_fields_and_undo_restart_work(tmp_path):
    db = tmp_path / "p.sqlite"
    client, session = make_client(db, kind="pair", speculate=False)
    for i, choice in enumerate(["left", "tie", "right"]):
        pair_vote(client, open_id(client), choice, f"v{i}")
    state = client.post("/api/undo").get_json()
    assert state["count"] == 2
    session.close()
    out = tmp_path / "out.jsonl"
    assert prefer.main(["nst-prefer", "export", f"--db={db}", f"--output={out}"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["choice"] for line in lines] == ["left", "tie"]
    assert set(lines[0]) == {"left", "right", "choice", "annotator", "time"}
    assert len(lines[0]["left"]) == N and abs(sum(lines[0]["left"]) - 1) < 1e-5
    table = list(csv.DictReader(io.StringIO(prefer.export_text(str(db), "csv"))))
    assert list(table[0]) == ["left", "right", "choice", "annotator", "time"]
    assert json.loads(table[1]["right"]) == lines[1]["right"]
    client2, session2 = make_client(db, kind="pair", speculate=False)   # restart
    assert client2.get("/api/state").get_json()["pair"]["id"] == state["pair"]["id"]
    assert [c for _, _, c in session2.learner.comparisons] == [0, None]


def test_a_session_from_before_grids_still_continues_and_exports(tmp_path):
    db = tmp_path / "old.sqlite"
    client, session = make_client(db, kind="pair", speculate=False)
    pair_vote(client, open_id(client), "right", "v1")
    open_pair = open_id(client)
    session.close()
    with sqlite3.connect(db) as con:     # what the first nst-prefer wrote: no grid tables
        con.execute("DROP TABLE questions")
        con.execute("DROP TABLE answers")
        con.execute("DELETE FROM meta WHERE key = 'question'")
    assert prefer.export_text(str(db), "jsonl").count("\n") == 1
    client, session = make_client(db, kind=None, speculate=False)
    assert session.kind.name == "pair" and open_id(client) == open_pair
    with pytest.raises(StoreError, match="holds a pair session"):
        PreferenceStore(db, kind="grid4")


# ------------------------------------------------------------------ CLI
def test_read_only_commands_refuse_a_file_that_is_not_a_session_and_leave_it_alone(tmp_path):
    # issue 20: `export --db=FILE` on an empty text file exited 0 and made it a SQLite database
    empty, text, other = tmp_path / "empty.txt", tmp_path / "notes.txt", tmp_path / "other.db"
    empty.write_bytes(b"")
    text.write_text("not a database\n")
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE t (x)")
    for path in (empty, text, other):
        before = (digest(path), path.stat().st_size, path.stat().st_mtime_ns)
        for command in (["export"], ["best", f"--output={tmp_path}/best.png",
                                     "--content=c.png", "--model=m"]):
            argv = [sys.executable, "-m", "nst_tf.cli.prefer", command[0], f"--db={path}",
                    *command[1:]]
            out = subprocess.run(argv, capture_output=True, text=True)
            assert out.returncode == 1, out
            assert out.stderr.startswith(f"nst-prefer {command[0]}: error: {path} is not a "
                                         "preference session database")
            assert len(out.stderr.strip().splitlines()) == 1 and out.stdout == ""
        assert (digest(path), path.stat().st_size, path.stat().st_mtime_ns) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt", "notes.txt",
                                                             "other.db"]


def test_export_reads_a_session_without_writing_it(tmp_path):
    db = tmp_path / "p.sqlite"
    client, session = make_client(db, speculate=False)
    vote(client, open_id(client), 1, "v1")
    session.store.close()
    session.close()
    before = digest(db)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):   # really read-only
        PreferenceStore(db, readonly=True)._db.execute("DELETE FROM answers")
    assert prefer.export_text(str(db), "jsonl").count("\n") == 1
    assert digest(db) == before


def test_cli_errors_are_one_line(tmp_path):
    code = [sys.executable, "-m", "nst_tf.cli.prefer", "export", f"--db={tmp_path}/none.sqlite"]
    out = subprocess.run(code, capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip() == f"nst-prefer export: error: database {tmp_path}/none.sqlite " \
                                 "does not exist"
    assert not (tmp_path / "none.sqlite").exists()
    code = [sys.executable, "-m", "nst_tf.cli.prefer", f"--db={tmp_path}/x.sqlite"]
    out = subprocess.run(code, capture_output=True, text=True)
    assert out.returncode == 1 and "--content" in out.stderr
    code = [sys.executable, "-m", "nst_tf.cli.prefer", "--content=x.png",
            f"--db={tmp_path}/x.sqlite", "--question=triple"]
    out = subprocess.run(code, capture_output=True, text=True)
    assert out.returncode == 1 and "grid4" in out.stderr and "pair" in out.stderr


def test_import_nst_tf_does_not_load_flask():
    code = ("import sys, nst_tf, nst_tf.preference; nst_tf.preference.PreferenceLearner; "
            "print('flask' in sys.modules, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("name", ["__init__", "gp", "acquisition", "simplex", "learner",
                                  "labeler", "tastes", "baseline", "questions", "store",
                                  "session", "app", "pages"])
def test_docstring_examples_run(name):
    import doctest
    import importlib

    module = importlib.import_module("nst_tf.preference" + ("" if name == "__init__" else
                                                             "." + name))
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, (name, result)
