"""The page answers while the learner is refitted in the background (issue 27): over HTTP, on
the server nst-prefer runs (Werkzeug), with the refit thread held in the middle of a fit."""

import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip("flask")

from nst_tf.preference import learner as learner_module  # noqa: E402
from nst_tf.preference.app import create_app  # noqa: E402
from nst_tf.preference.learner import PreferenceLearner  # noqa: E402
from nst_tf.preference.session import PreferenceSession  # noqa: E402
from nst_tf.preference.store import PreferenceStore  # noqa: E402

N = 4


def flat_render(weights):
    return np.broadcast_to(np.asarray(weights[:3], np.float32), (8, 8, 3))


def call(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def held_refit(monkeypatch):
    """While ``gate`` is clear, every fit of the ``refit`` thread waits in ``best()``."""
    gate, waiting = threading.Event(), threading.Event()
    recommend = PreferenceLearner._recommend

    def held(self, caution):
        if threading.current_thread().name == "refit":
            waiting.set()
            assert gate.wait(120), "the test never let the refit go on"
        return recommend(self, caution)

    monkeypatch.setattr(PreferenceLearner, "_recommend", held)
    yield gate, waiting
    gate.set()


@pytest.fixture
def server(tmp_path):
    from werkzeug.serving import make_server

    session = PreferenceSession(PreferenceStore(tmp_path / "p.sqlite"), N, flat_render, seed=3)
    httpd = make_server("127.0.0.1", 0, create_app(session), threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", session
    httpd.shutdown()
    session.close()
    session.store.close()


def test_votes_are_answered_while_a_refit_runs_and_none_is_lost(server, held_refit):
    url, session = server
    gate, waiting = held_refit
    status, state = call(url + "/api/state")
    picks = [2, 0, "none", 3, 1, "skip", 0, 2]
    seen = set()
    for i, choice in enumerate(picks):
        question = state["question"]["id"]
        seen.add(question)
        status, state = call(url + "/api/vote", {"question_id": question, "choice": choice,
                                                 "client_id": f"v{i}"})
        assert status == 200, state
        assert waiting.wait(60)            # the refit thread is held inside a fit ...
        assert state["count"] == i + 1     # ... and the vote was answered all the same
        if choice != "skip":
            assert state["question"]["id"] not in seen   # a new question each time
        with urllib.request.urlopen(url + f"/image/{state['question']['options'][0]}.png",
                                    timeout=60) as image:    # images are served meanwhile
            assert image.read().startswith(b"\x89PNG")
    assert not state["fitted"]                         # the best mix shown is from an older fit
    # a retried vote counts once, a vote for an answered question by another id is refused
    assert call(url + "/api/vote", {"question_id": question, "choice": picks[-1],
                                    "client_id": f"v{len(picks) - 1}"})[0] == 200
    assert call(url + "/api/vote", {"question_id": question, "choice": 1,
                                    "client_id": "other"})[0] == 409
    gate.set()
    assert session.wait_idle(120)
    status, state = call(url + "/api/state")
    assert state["fitted"] and state["count"] == len(picks)    # skips are answers too
    stored = session.store.learner_data()
    assert len(stored) == len(picks) - 1                        # every vote but the skip
    assert [c for _, c in session.learner.answers] == [c for _, c in stored]
    # consistent: the best mix shown is what a learner given the stored answers recommends
    fresh = PreferenceLearner(N, seed=3)
    for options, chosen in stored:
        fresh.add_choice(options, chosen)
    best = {w["style"]: w["weight"] for w in state["best"]["weights"]}
    expected = fresh.best()
    assert best == {i: round(float(expected[i]), 3) for i in np.argsort(-expected)[:5]
                    if expected[i] >= 0.005}


def test_undo_while_a_refit_runs_takes_the_answer_back(server, held_refit):
    url, session = server
    gate, waiting = held_refit
    state = call(url + "/api/state")[1]
    first = state["question"]["id"]
    state = call(url + "/api/vote", {"question_id": first, "choice": 1, "client_id": "a"})[1]
    state = call(url + "/api/vote", {"question_id": state["question"]["id"], "choice": 0,
                                     "client_id": "b"})[1]
    assert waiting.wait(60)
    status, state = call(url + "/api/undo", {})
    assert status == 200 and state["count"] == 1
    gate.set()
    assert session.wait_idle(120)
    assert call(url + "/api/state")[1]["fitted"]
    assert len(session.learner) == 1 and session.learner.answers[0][1] == 1


def test_a_question_asked_after_an_unseen_answer_keeps_the_pick_and_shows_new_mixes():
    learner = PreferenceLearner(8, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(6):
        options = learner.next_query(4)
        learner.add_choice(options, int(rng.integers(4)))
    shown = learner.next_query(4)
    follow = learner.next_query(4, after=(shown, 2))
    np.testing.assert_allclose(follow[0], shown[2] / shown[2].sum(), atol=1e-6)
    gaps = np.abs(follow[1:, None, :] - shown[None].astype(np.float64)).sum(2)
    assert gaps.min() >= learner_module.MIN_GAP - 1e-6
    assert len(learner) == 6                                   # the learner was not told
    np.testing.assert_array_equal(follow, learner.next_query(4, after=(shown, 2)))
