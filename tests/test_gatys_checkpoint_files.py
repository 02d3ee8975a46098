"""nst-stylize's checkpoint file as users meet it (issue 28): a checkpoint that is the output is
refused (the finished run deletes its checkpoint); every kind of damaged ``.ckpt.npz`` is one
line naming the problem, never a traceback or numpy's ``allow_pickle`` advice; a checkpoint
write killed with SIGKILL leaves a temporary file that the next run on that checkpoint removes."""

import json
import os
import pickle
import signal
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from nst_tf import gatys
from nst_tf.cli import stylize

from conftest import console, test_image

ARGS = ["nst-stylize", f"--content={test_image('content_sq.jpg')}",
        f"--style={test_image('style/doesburg_sq.jpg')}", "--size=32", "--weights=random",
        "--noprogress"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def one_error_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nst-stylize: error: "), stderr
    assert "allow_pickle" not in stderr and "Traceback" not in stderr
    return lines[0]


# ------------------------------------------------------------------ checkpoint == output
def test_the_issues_command_is_refused_and_writes_nothing(tmp_path):
    """`--output=o.png --checkpoint=o.png` exited 0 and o.png was gone."""
    done = subprocess.run(console("nst-stylize") + ARGS[1:] + [
        "--output=o.png", "--checkpoint=o.png", "--checkpoint_every=2", "--steps=5"],
        cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 1
    assert one_error_line(done.stderr) == (
        "nst-stylize: error: --checkpoint=o.png is the output o.png: a finished run deletes its "
        "checkpoint; choose another --checkpoint (the default is o.png.ckpt.npz)")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("checkpoint, extra", [
    ("link.png", []),                  # a symlink to the output (dangling: no output yet)
    ("sub/../o.png", []),
    ("{tmp}/o.png", []),               # absolute, the output relative
    ("hard.png", []),                  # a hard link to an existing output
    ("o_00002.png", ["--save_every=1"]),
])
def test_every_spelling_of_the_output_is_refused(tmp_path, monkeypatch, capsys, checkpoint,
                                                 extra):
    monkeypatch.chdir(tmp_path)
    os.mkdir("sub")
    os.symlink("o.png", "link.png")
    if checkpoint == "hard.png":
        with open("o.png", "wb") as f:
            f.write(b"an earlier result")
        os.link("o.png", "hard.png")
    before = sorted(os.listdir("."))
    code = stylize.main(ARGS + ["--output=o.png", f"--checkpoint={checkpoint.format(tmp=tmp_path)}",
                                "--checkpoint_every=1", "--steps=2", *extra])
    assert code == 1
    message = one_error_line(capsys.readouterr().err)
    assert "choose another --checkpoint" in message
    assert sorted(os.listdir(".")) == before


# ------------------------------------------------------------------ damaged checkpoints
@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    """The checkpoint nst-stylize writes for ARGS after one step of two (read back as arrays)."""
    folder = tmp_path_factory.mktemp("good")
    fv = flags.FlagValues()
    stylize.define_flags(fv)
    path = folder / "good.npz"
    fv(ARGS + [f"--output={folder / 'o.png'}", f"--checkpoint={path}", "--steps=1"])
    gatys.run(fv.content, fv.style, None, **stylize.options_from_flags(fv))
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _meta(arrays, **changes):
    meta = json.loads(str(arrays["meta"]))
    return dict(arrays, meta=np.array(json.dumps(dict(meta, **changes))))


def _without(arrays, name):
    return {k: v for k, v in arrays.items() if k != name}


def _save(arrays, path):
    np.savez(path, **arrays)  # object arrays are pickled in: what a hostile file would hold


def _raw(data):
    return lambda arrays, path: path.write_bytes(data(arrays) if callable(data) else data)


def _truncated(arrays, path):
    _save(arrays, path)
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


DAMAGES = {
    # name: (write the file, what the error line says)
    "empty": (_raw(b""), "it is not an .npz file"),
    "pickle": (_raw(pickle.dumps({"trial": [1, 2]})), "it is not an .npz file"),
    "npy": (_raw(b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, "
                 b"'shape': (1,), }" + b" " * 50 + b"\n"), "it is not an .npz file"),
    "truncated": (_truncated, "it is not an .npz file"),
    "wrong shape": (lambda a, p: _save(dict(a, state_x=a["state_x"][:-3]), p),
                    "the saved 'x' has shape (3069,), this optimizer's has (3072,)"),
    "image shape": (lambda a, p: _save(dict(a, state_trial=a["state_trial"][:, :20]), p),
                    "its image is 20x32, this scale's 32x32"),
    "object array": (lambda a, p: _save(dict(a, state_g=np.array([None, {}], object)), p),
                     "state_g.npy holds object values, not numbers"),
    "text array": (lambda a, p: _save(dict(a, losses_0=np.array(["1.0"])), p),
                   "losses_0.npy holds <U3 values, not numbers"),
    "meta a number": (lambda a, p: _save(dict(a, meta=np.array(5)), p),
                      "meta.npy holds int64 values, not numbers"),
    "meta a list": (lambda a, p: _save(dict(a, meta=np.array("[1, 2]")), p),
                    "meta is a list, not an object"),
    "level a string": (lambda a, p: _save(_meta(a, level="0"), p), "level is '0', not a count"),
    "steps a string": (lambda a, p: _save(_meta(a, steps="1"), p), "steps is '1', not a count"),
    "level without losses": (lambda a, p: _save(_meta(a, level=3), p), "losses_1 is missing"),
    "level past the scales": (lambda a, p: _save(dict(_meta(a, level=1), losses_1=a["losses_0"]),
                                                 p), "stopped at scale 2; this run has 1"),
    "steps not the losses": (lambda a, p: _save(_meta(a, steps=7), p), "7 steps but 1 losses"),
    "negative head": (lambda a, p: _save(dict(a, state_head=np.int32(-1)), p),
                      "the saved 'head' is -1, outside [0, 9]"),
    "pairs over memory": (lambda a, p: _save(dict(a, state_num_pairs=np.int32(11)), p),
                          "the saved 'num_pairs' is 11, outside [0, 10]"),
    "float64 state": (lambda a, p: _save(dict(a, state_p=a["state_p"].astype(np.float64)), p),
                      "the saved 'p' has dtype float64, this optimizer's has float32"),
    "missing state": (lambda a, p: _save(_without(a, "state_rho"), p),
                      "the saved optimizer state has no 'rho'"),
    "stray entry": (lambda a, p: _save(dict(a, extra=np.zeros(2)), p),
                    "unexpected entries extra"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_checkpoint_is_one_line_and_is_left_alone(good_checkpoint, tmp_path, capsys,
                                                            damage):
    write, expected = DAMAGES[damage]
    path = tmp_path / "o.png.ckpt.npz"
    write(good_checkpoint, path)
    before = path.read_bytes()
    code = stylize.main(ARGS + [f"--output={tmp_path / 'o.png'}", "--checkpoint_every=1",
                                "--steps=2"])
    assert code == 1
    message = one_error_line(capsys.readouterr().err)
    assert expected in message and str(path) in message and "delete it" in message, message
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == [path.name]


@pytest.mark.parametrize("damage", ["empty", "pickle", "negative head"])
def test_a_damaged_checkpoint_from_the_console(good_checkpoint, tmp_path, damage):
    write, expected = DAMAGES[damage]
    write(good_checkpoint, tmp_path / "o.png.ckpt.npz")
    done = subprocess.run(console("nst-stylize") + ARGS[1:] + [
        f"--output={tmp_path / 'o.png'}", "--checkpoint_every=1", "--steps=2"],
        capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 1
    assert expected in one_error_line(done.stderr)


# ------------------------------------------------------------------ killed mid-write
KILLED_WRITER = """
import sys, time
import numpy as np
from nst_tf.resume import RunCheckpoint

class Slow:  # the second variable never finishes: the process is killed while writing it
    def numpy(self):
        print("writing", flush=True)
        time.sleep(600)

RunCheckpoint(sys.argv[1], fingerprint="x").write(
    0, 1, {"trial": np.zeros((1, 64, 64, 3), np.float32), "x": Slow()}, [1.0])
"""


def test_the_temporary_of_a_killed_checkpoint_write_goes_on_the_next_run(tmp_path):
    out, checkpoint = tmp_path / "o.png", tmp_path / "o.png.ckpt.npz"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(checkpoint)],
                              stdout=subprocess.PIPE, text=True, env=ENV)
    assert writer.stdout.readline() == "writing\n"
    writer.send_signal(signal.SIGKILL)
    assert writer.wait(timeout=60) == -signal.SIGKILL
    stale = [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    assert len(stale) == 1 and stale[0].startswith(".o.png.ckpt.npz.")
    assert (tmp_path / stale[0]).stat().st_size > 64 * 64 * 3 * 4   # the image got written
    kept = [".other.png.ckpt.npz.0123abcd.tmp", ".o.png.ckpt.npz.notes.tmp"]  # not ours
    for name in kept:
        (tmp_path / name).write_bytes(b"keep me")
    done = subprocess.run(console("nst-stylize") + ARGS[1:] + [
        f"--output={out}", "--checkpoint_every=1", "--steps=2"],
        capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path)) == sorted(kept + ["o.png"])
