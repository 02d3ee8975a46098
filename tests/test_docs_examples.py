"""Every bash and Python block of README.md and docs/ runs (at a tiny scale) or is checked.

How a block is run, shrunk or checked, and how a page marks a block it cannot run here: see
:mod:`docs_examples` (and "Code blocks in the docs" in docs/development.md). A test is named
after its block: ``test_block_runs[docs/tasks/gatys.md:17]``.
"""

import json
import os
import queue
import re
import subprocess
import sys
import threading

import pytest

import docs_examples as examples
from programs import program_env

BLOCKS = examples.all_blocks()
RUN = [b for b in BLOCKS if b.needs is None]
CHECK = [b for b in BLOCKS if b.needs is not None]

#: One Python session per page: blocks share its names, like a user's interpreter.
WORKER = r'''
import contextlib, io, json, os, sys, traceback
replies = os.fdopen(os.dup(1), "w")   # the answers; anything else written to fd 1 goes to stderr
os.dup2(2, 1)
names = {"__name__": "__main__"}
for request in sys.stdin:
    request, out = json.loads(request), io.StringIO()
    try:
        code = compile("\n" * request["line"] + request["code"], request["page"], "exec")
        with contextlib.redirect_stdout(out):
            exec(code, names)
        reply = {"ok": True, "output": out.getvalue()}
    except BaseException:
        reply = {"ok": False, "output": out.getvalue(), "error": traceback.format_exc()}
    replies.write(json.dumps(reply) + "\n")
    replies.flush()
'''


class Page:
    """The folder of one page's run blocks (sample files, ``examples/``, an empty Keras cache)
    and its Python session, started by the first Python block."""

    def __init__(self, page, folder):
        self.page, self.folder = page, str(folder)
        with open(os.path.join(examples.ROOT, page), encoding="utf-8") as f:
            examples.make_files(self.folder, examples.substitute(f.read()))
        os.symlink(os.path.join(examples.ROOT, "examples"), os.path.join(self.folder, "examples"))
        self.env = program_env(KERAS_HOME=os.path.join(self.folder, ".keras"),
                               PATH=os.pathsep.join([os.path.dirname(sys.executable),
                                                     os.environ.get("PATH", "")]))
        self.worker = self.replies = None

    def bash(self, block, timeout=900):
        code = examples.shrink_bash(block.code)
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=self.folder,
                              env=self.env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, (f"{block.id} failed (exit {done.returncode}) as run:\n{code}"
                                      f"\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n"
                                      f"{done.stderr[-5000:]}")

    def python(self, block, timeout=900):
        if self.worker is None:
            self.log = open(os.path.join(self.folder, ".python-stderr.txt"), "w+")
            self.worker = subprocess.Popen([sys.executable, "-u", "-c", WORKER], cwd=self.folder,
                                           env=self.env, text=True, stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=self.log)
            self.replies = queue.Queue()
            threading.Thread(target=self._read, daemon=True).start()
        code = examples.shrink_python(block.code)
        self.worker.stdin.write(json.dumps({"page": block.page, "line": block.line,
                                            "code": code}) + "\n")
        self.worker.stdin.flush()
        try:
            line = self.replies.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"{block.id} did not finish in {timeout} s")
        reply = json.loads(line) if line else \
            {"ok": False, "error": "the Python session died", "output": ""}
        if not reply["ok"]:
            self.log.seek(0)
            pytest.fail(f"{block.id} failed as run:\n{code}\n--- error\n{reply['error']}"
                        f"\n--- stderr\n{self.log.read()[-3000:]}", pytrace=False)

    def _read(self):
        for line in self.worker.stdout:
            self.replies.put(line)
        self.replies.put(None)   # the session ended

    def close(self):
        if self.worker is not None:
            self.worker.stdin.close()
            self.worker.wait(timeout=60)
            self.log.close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    opened = {}

    def page(name):
        if name not in opened:
            opened[name] = Page(name, tmp_path_factory.mktemp(name.replace("/", "_")))
        return opened[name]

    yield page
    for each in opened.values():
        each.close()


@pytest.mark.slow
@pytest.mark.parametrize("block", RUN, ids=[b.id for b in RUN])
def test_block_runs(block, pages):
    """The block, shrunk by docs_examples.SUBSTITUTIONS and APPEND, runs in its page's folder
    after the page's earlier blocks."""
    page = pages(block.page)
    (page.bash if block.lang == "bash" else page.python)(block)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_block_names_exist(block):
    """Every block (the only test of one that cannot run here, a fast one of the others) uses
    only flags its programs define and Python names that exist."""
    if block.lang == "bash":
        errors = examples.bash_flag_errors(block.code)
    else:
        errors = examples.python_name_errors(block.code)
    assert not errors, f"{block.id} ({block.needs or 'runs'}: {block.why}):\n" + "\n".join(errors)


def bound_before(block):
    """Names the Python blocks above ``block`` on its page bind."""
    names = set()
    for other in BLOCKS:
        if other.page == block.page and other.line < block.line and other.lang == "python":
            names |= examples.bound_names(other.code)
    return names


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "python"],
                         ids=[b.id for b in BLOCKS if b.lang == "python"])
def test_python_block_defines_what_it_uses(block):
    """Every name a Python block reads is defined by it or by a block above it on the page
    (a run block would fail on it too, but only in the slow run)."""
    assert not examples.undefined_names(block.code, bound_before(block))


@pytest.mark.parametrize("block", RUN, ids=[b.id for b in RUN])
def test_a_run_block_names_no_download(block):
    """A block without a marker names no preset (``model="varied"``, ``--checkpoint=arbitrary``:
    their weights are a download) and no ``gs://`` path: a page that gains one fails here, in
    seconds, with the marker to add, not after minutes of the slow run."""
    from nst_tf.families import preset_names

    presets = "|".join(map(re.escape, preset_names()))
    found = re.findall(rf"""(?:model|checkpoint)=["']?(?:{presets})(?![\w-])|gs://""", block.code)
    assert not found, (f"{block.id} uses {found}: a download or a cloud; add "
                       "'<!-- example: needs=download; why -->' (or needs=cloud) above its fence")


# --- the harness itself -------------------------------------------------------------------------

def test_every_page_has_its_blocks_found():
    assert any(b.page == "README.md" for b in BLOCKS)
    assert {b.lang for b in BLOCKS} == {"bash", "python"}
    assert len(RUN) >= 10 and CHECK


def test_markers_are_read_and_bad_ones_refused(tmp_path):
    page = tmp_path / "docs" / "x.md"
    page.parent.mkdir()
    page.write_text("text\n\n<!-- example: needs=gpu; XLA on a GPU -->\n```bash\nnst-train\n```\n"
                    "\n```python\nimport nst_tf\n```\n")
    gpu, plain = examples.blocks_of(str(page), str(tmp_path))
    assert (gpu.id, gpu.needs, gpu.why, gpu.code) == ("docs/x.md:4", "gpu", "XLA on a GPU",
                                                      "nst-train")
    assert (plain.id, plain.needs, plain.lang) == ("docs/x.md:8", None, "python")
    with pytest.raises(ValueError, match="unknown needs=quantum"):
        examples.parse_marker("needs=quantum; a qubit")
    with pytest.raises(ValueError, match="needs=KIND; why"):
        examples.parse_marker("needs=gpu")


def test_shrinking_keeps_the_command_and_makes_it_tiny():
    code = ("pip install -e .   # from a clone\n"
            "nst-stylize --content=photo.jpg --style=a.jpg --size=4096 --scales=1024,2048 \\\n"
            "    --steps=300,100 --output=o.png   # a comment\n"
            "nst-train --mode=cin --batch_size=16 && nst-stylize-dataset --content=p -- --x=1")
    assert examples.shrink_bash(code).split("\n") == [
        "true   # from a clone",
        "nst-stylize --content=photo.jpg --style=a.jpg --size=32 --scales=24,32 --steps=2,1 "
        "--output=o.png --weights=random   # a comment",
        "nst-train --mode=cin --batch_size=2 --weights=random --batch_size=2 --image_size=64 "
        "--train_steps=2 --verbose=0 && nst-stylize-dataset --content=p -- --x=1"]
    assert examples.shrink_python('t(size=512, steps=[300, 100], tile_size=1024, '
                                  'train_steps=9)') == (
        "t(size=32, steps=2, weights='random', tile_size=16, train_steps=2, batch_size=2, "
        "image_size=64, weights=None)")


def test_checks_find_a_wrong_flag_and_a_missing_name():
    bad = ("nst-stylize --content=a.jpg --style=b.jpg --colour=yes \\\n    [--no_such_flag]\n"
           "nst-prefer best --db=x --format=csv   # best has no --format\n"
           "nst-stylize-dataset --content=p --output=o -- --runner=dask")
    errors = examples.bash_flag_errors(bad)
    assert [e.split(" (in")[0] for e in errors] == [
        "nst-stylize: no flag --colour", "nst-stylize: no flag --no_such_flag",
        "nst-prefer best: no flag --format"]
    errors = examples.python_name_errors(
        "import nst_tf\nfrom nst_tf.training import train, no_such\n"
        "nst_tf.stylize_everything('a.jpg')\nnst_tf.load_adain(vgg='v', colour=1)\n")
    assert errors == ["from nst_tf.training import no_such: no such name",
                      "nst_tf.stylize_everything: no such name",
                      "nst_tf.load_adain() takes no keyword colour="]


def test_a_page_session_keeps_names_and_reports_errors_at_their_markdown_line(tmp_path):
    page = Page("docs/faq.md", tmp_path)
    page.python(examples.Block("docs/faq.md", 3, "python",
                               "import os\nos.write(1, b'fd 1 is not the answer channel\\n')\nx = 5"))
    page.python(examples.Block("docs/faq.md", 9, "python", "assert x == 5"))   # same session
    with pytest.raises(pytest.fail.Exception, match=r'(?s)docs/faq.md", line 22.*ValueError: boom'):
        page.python(examples.Block("docs/faq.md", 20, "python", "y = x\nraise ValueError('boom')"))
    with pytest.raises(pytest.fail.Exception, match="the Python session died"):
        page.python(examples.Block("docs/faq.md", 30, "python", "import os; os._exit(3)"),
                    timeout=60)
    with pytest.raises(AssertionError, match=r"docs/faq.md:40 failed \(exit 3\)"):
        page.bash(examples.Block("docs/faq.md", 40, "bash", "true\nexit 3\n"))
    page.close()
