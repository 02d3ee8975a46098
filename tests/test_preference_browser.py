"""nst-prefer in a real browser: Debian's chromium driven by Playwright against the real server.

CI installs chromium with apt (``apt-get install -y chromium``) and playwright with the ``test``
extra; ``playwright install`` (a browser download) is never used. The server is the real
``nst-prefer`` process with a small random-weight pastiche checkpoint.
"""

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from tests.pastiche_helpers import random_pastiche

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def session_files(tmp_path_factory):
    from magenta_compat.checkpoint import write_checkpoint
    from nst_tf import images

    folder = tmp_path_factory.mktemp("prefer")
    checkpoint = write_checkpoint(random_pastiche(4, alpha=0.25, seed=1),
                                  str(folder / "model.ckpt"))
    content = str(folder / "photo.png")
    y, x = np.mgrid[0:40, 0:48] / 40.0
    images.save_image(content, np.stack([x / 1.2, y, (x + y) / 2.2], -1).astype(np.float32))
    return {"checkpoint": checkpoint, "content": content, "db": str(folder / "prefs.sqlite")}


class Server:
    def __init__(self, files):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nst_tf.cli.prefer", f"--content={files['content']}",
             f"--model={files['checkpoint']}", f"--db={files['db']}", f"--port={self.port}",
             "--size=48"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("nst-prefer exited: " + self.process.stdout.read())
            try:
                urllib.request.urlopen(self.url + "/api/state", timeout=30)
                return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("nst-prefer did not start within 90 s")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=20)


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


def stored(db):
    with sqlite3.connect(db) as con:
        return con.execute("SELECT choice, annotator, undone, shown_order FROM comparisons "
                           "ORDER BY id").fetchall()


def wait_ready(page):
    """Wait until votes are enabled; then both images must already be loaded."""
    page.wait_for_function("!document.getElementById('choose-left').disabled", timeout=60000)
    loaded = page.evaluate("['left', 'right'].every(id => { const i = document.getElementById(id);"
                           " return i.complete && i.naturalWidth > 0; })")
    assert loaded, "votes enabled before both images loaded"
    return page.evaluate("document.body.dataset.pair")


def wait_count(page, count):
    page.wait_for_function(f"document.getElementById('count').textContent === '{count}'",
                           timeout=60000)


def test_keys_clicks_undo_and_restart(session_files, browser):
    db = session_files["db"]
    server = Server(session_files)
    try:
        page = browser.new_page()
        page.goto(server.url + "/?annotator=tester")
        first = wait_ready(page)
        page.keyboard.press("ArrowLeft")
        wait_count(page, 1)
        second = wait_ready(page)
        assert second != first
        page.click("#choose-right")
        wait_count(page, 2)
        wait_ready(page)
        page.keyboard.press("t")
        wait_count(page, 3)
        wait_ready(page)
        page.click("#skip")
        wait_count(page, 4)
        wait_ready(page)
        page.keyboard.press("ArrowRight")
        wait_count(page, 5)
        wait_ready(page)
        page.keyboard.press("z")                   # undo the ArrowRight vote
        wait_count(page, 4)
        reopened = wait_ready(page)
        rows = stored(db)
        assert [r[0] for r in rows] == ["left", "right", "tie", "skip", "right"]
        assert [r[2] for r in rows] == [0, 0, 0, 0, 1]
        assert {r[1] for r in rows} == {"tester"} and {r[3] for r in rows} <= {"ab", "ba"}
        best = page.evaluate("document.getElementById('best-weights').textContent")
        assert "style" in best
        page.close()
    finally:
        server.stop()

    server = Server(session_files)                 # restart on the same database
    try:
        page = browser.new_page()
        page.goto(server.url + "/?annotator=tester")
        assert wait_ready(page) == reopened        # the same open pair
        assert page.evaluate("document.getElementById('count').textContent") == "4"
        page.click("#choose-left")
        wait_count(page, 5)
        wait_ready(page)
        assert [r[0] for r in stored(db)] == ["left", "right", "tie", "skip", "right", "left"]
        page.close()
    finally:
        server.stop()


def test_best_command_renders_the_best_mix(session_files, tmp_path, capsys):
    import json

    import nst_tf
    from nst_tf import images
    from nst_tf.cli import prefer
    from nst_tf.preference.learner import PreferenceLearner
    from nst_tf.preference.store import PreferenceStore

    db = str(tmp_path / "votes.sqlite")
    store = PreferenceStore(db)
    eye = np.eye(4)
    for i, (left, right, choice) in enumerate([(0, 1, "left"), (0, 2, "left"), (3, 0, "right"),
                                               (1, 2, "tie"), (0, 3, "skip")]):
        store.vote(store.add_pair(eye[left], eye[right], "ab"), choice, f"v{i}", "me")
    out = tmp_path / "best.png"
    assert prefer.main(["nst-prefer", "best", f"--db={db}", f"--output={out}",
                        f"--content={session_files['content']}",
                        f"--model={session_files['checkpoint']}"]) == 0
    printed = {int(k): v for k, v in json.loads(capsys.readouterr().out).items()}
    learner = PreferenceLearner(4)
    for left, right, preferred in store.learner_data():
        learner.add(left, right, preferred)
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
