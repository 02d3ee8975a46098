"""nst-prefer in a real browser: Debian's chromium driven by Playwright against the real server.

Both pages: the 2×2 grid (``--question=grid4``, the default) and the pair (``--question=pair``).

CI installs chromium with apt (``apt-get install -y chromium``) and playwright with the ``test``
extra; ``playwright install`` (a browser download) is never used. The server is the real
``nst-prefer`` process with a small random-weight pastiche checkpoint.
"""

import json
import os
import sqlite3

import numpy as np
import pytest

from tests.prefer_server import Server, write_session_files

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def session_files(tmp_path_factory):
    return write_session_files(tmp_path_factory.mktemp("prefer"))


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        # CI installs it (.ci/run), so there a missing browser is a failure, never a skip.
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def stored(db, table="comparisons", order="shown_order"):
    with sqlite3.connect(db) as con:
        return con.execute(f"SELECT choice, annotator, undone, {order} FROM {table} "
                           "ORDER BY id").fetchall()


def wait_ready(page, images=("left", "right"), button="choose-left", attribute="pair"):
    """Wait until votes are enabled; then every image must already be loaded."""
    page.wait_for_function(f"!document.getElementById('{button}').disabled", timeout=60000)
    loaded = page.evaluate(f"{list(images)}.every(id => {{ const i = document.getElementById(id);"
                           " return i.complete && i.naturalWidth > 0; })")
    assert loaded, "votes enabled before all images loaded"
    return page.evaluate(f"document.body.dataset.{attribute}")


def wait_grid(page):
    return wait_ready(page, [f"option-{i}" for i in range(4)], "choose-0", "question")


def wait_count(page, count):
    page.wait_for_function(f"document.getElementById('count').textContent === '{count}'",
                           timeout=60000)


def answer(page, steps, wait):
    """Press each key / click each selector in turn; after each, wait for the count and for the
    next question to be ready. Returns the ids of the questions shown after each answer."""
    shown = []
    for count, (how, what) in enumerate(steps, 1):
        page.keyboard.press(what) if how == "key" else page.click(what)
        wait_count(page, count)
        shown.append(wait(page))
    return shown


PAGES = {
    # kind: (wait for the next question, answers as keys / clicks, what the store records,
    #        answers table, the answer after a restart, what that records)
    "grid4": (wait_grid, [("key", "3"), ("click", "#choose-1"), ("key", "n"), ("key", "s"),
                          ("key", "4")], ["2", "1", "none", "skip", "3"], "answers",
              "#choose-0", "0"),
    "pair": (wait_ready, [("key", "ArrowLeft"), ("click", "#choose-right"), ("key", "t"),
                          ("click", "#skip"), ("key", "ArrowRight")],
             ["left", "right", "tie", "skip", "right"], "comparisons", "#choose-left", "left"),
}


@pytest.mark.parametrize("kind", list(PAGES))
def test_keys_clicks_undo_and_restart(session_files, browser, kind):
    wait, steps, choices, table, again, again_choice = PAGES[kind]
    db = str(session_files["folder"] / f"{kind}.sqlite")
    server = Server(session_files, db, kind)
    try:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(server.url + "/?annotator=tester")
        first = wait(page)
        if kind == "grid4":   # the four images share the window: a quarter of the grid each
            boxes = [page.locator(f"#choose-{i}").bounding_box() for i in range(4)]
            assert min(b["height"] for b in boxes) > 250 and min(b["width"] for b in boxes) > 300
        shown = answer(page, steps, wait)
        assert shown[0] != first
        page.keyboard.press("z")                   # undo the last answer
        wait_count(page, 4)
        reopened = wait(page)
        assert reopened == shown[3]                # the question it answered is shown again
        rows = stored(db, table)
        assert [r[0] for r in rows] == choices
        assert [r[2] for r in rows] == [0, 0, 0, 0, 1]
        assert {r[1] for r in rows} == {"tester"}
        orders = [json.loads(r[3]) if kind == "grid4" else r[3] for r in rows]
        assert all(sorted(o) == [0, 1, 2, 3] for o in orders) if kind == "grid4" else \
            set(orders) <= {"ab", "ba"}
        assert "style" in page.evaluate("document.getElementById('best-weights').textContent")
        if kind == "grid4":   # each of the best mix's largest weights with its style's thumbnail
            page.wait_for_function(
                "document.querySelectorAll('#best-weights img').length > 0 && "
                "[...document.querySelectorAll('#best-weights img')]"
                ".every(i => i.complete && i.naturalWidth > 0)", timeout=60000)
        page.close()
    finally:
        server.stop()

    # restart on the same database without --question: it continues with the kind it holds
    server = Server(session_files, db, None)
    try:
        page = browser.new_page()
        page.goto(server.url + "/?annotator=tester")
        assert wait(page) == reopened              # the same open question
        assert page.evaluate("document.getElementById('count').textContent") == "4"
        page.click(again)
        wait_count(page, 5)
        wait(page)
        assert [r[0] for r in stored(db, table)] == choices + [again_choice]
        page.close()
    finally:
        server.stop()


def test_best_command_renders_the_best_mix(session_files, tmp_path, capsys):
    import nst_tf
    from nst_tf import images
    from nst_tf.cli import prefer
    from nst_tf.preference.learner import PreferenceLearner
    from nst_tf.preference.store import PreferenceStore

    db = str(tmp_path / "votes.sqlite")
    store = PreferenceStore(db, kind="grid4")
    eye = np.eye(4)
    # style 0 picked over the others every time, once none preferred, once skipped
    for i, (options, choice) in enumerate([((0, 1, 2, 3), 0), ((3, 0, 1, 2), 1),
                                           ((1, 2, 0, 3), 2), ((1, 2, 3, 0), "none"),
                                           ((2, 0, 3, 1), "skip")]):
        question = store.add_question([eye[j] for j in options], [0, 1, 2, 3])
        store.answer(question, choice, f"v{i}", "me")
    out = tmp_path / "best.png"
    assert prefer.main(["nst-prefer", "best", f"--db={db}", f"--output={out}",
                        f"--content={session_files['content']}",
                        f"--model={session_files['checkpoint']}"]) == 0
    printed = {int(k): v for k, v in json.loads(capsys.readouterr().out).items()}
    learner = PreferenceLearner(4)
    for options, chosen in store.learner_data():
        learner.add_choice(options, chosen)
    expected = learner.best()
    assert max(printed, key=printed.get) == 0 == int(np.argmax(expected))
    image = images.load_image(str(out))
    reference = nst_tf.stylize(images.load_image(session_files["content"]), expected,
                               model=session_files["checkpoint"], crop=True)
    assert image.shape == (40, 48, 3)
    np.testing.assert_allclose(image, reference, atol=1 / 255 + 1e-6)


def test_serve_with_a_bad_model_or_content_creates_no_database(session_files, tmp_path, capsys):
    from nst_tf.cli import prefer

    db = tmp_path / "new.sqlite"
    assert prefer.main(["nst-prefer", f"--content={session_files['content']}",
                        f"--model={tmp_path}/missing.ckpt", f"--db={db}"]) == 1
    assert prefer.main(["nst-prefer", f"--content={tmp_path}/missing.jpg",
                        f"--model={session_files['checkpoint']}", f"--db={db}"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("nst-prefer: error: ") for e in errors)
    assert "missing.ckpt" in errors[0] and "missing.jpg" in errors[1]
    assert not db.exists()
