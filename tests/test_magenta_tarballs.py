"""Magenta ``.tar.gz`` checkpoints are checked before anything is extracted (issue 28): a bomb
(200 MB from a few hundred KB), names out of the archive, links, devices and pipes are refused
with one line, and a refused tarball leaves nothing in the Keras cache."""

import io
import os
import subprocess
import tarfile

import numpy as np
import pytest

from magenta_compat import arbitrary as arb
from nst_tf import images
from nst_tf.errors import CheckpointError

from conftest import console

BOMB_BYTES = 200 * 10 ** 6


class Zeros(io.RawIOBase):
    """``size`` zero bytes, made as they are read (the bomb is never in memory)."""

    def __init__(self, size):
        self.left = size

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def make_tarball(path, members):
    """``members``: ``(name, kind, payload)`` with kind a tarfile type; payload the bytes of a
    file (or an int: that many zeros), the target of a link."""
    with tarfile.open(path, "w:gz") as archive:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = payload
                archive.addfile(info)
            elif kind == tarfile.REGTYPE:
                info.size = payload if isinstance(payload, int) else len(payload)
                data = Zeros(payload) if isinstance(payload, int) else io.BytesIO(payload)
                archive.addfile(info, data)
            else:
                archive.addfile(info)
    return str(path)


def bomb(path):
    return make_tarball(path, [("arbitrary_style_transfer/model.ckpt.data-00000-of-00001",
                                tarfile.REGTYPE, BOMB_BYTES)])


def cached(home):
    """Everything in the Keras cache ``home`` but Keras' own settings file."""
    return sorted(os.path.relpath(os.path.join(root, name), home)
                  for root, dirs, names in os.walk(home) for name in dirs + names
                  if name != "keras.json")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    home = tmp_path / "keras"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def test_the_issues_bomb_is_refused_from_the_console_and_nothing_is_cached(tmp_path):
    tarball = bomb(tmp_path / "bomb.tar.gz")
    assert os.path.getsize(tarball) < 10 ** 6             # 200 MB inside < 1 MB
    photo = str(tmp_path / "photo.png")
    images.save_image(photo, np.random.default_rng(0).random((20, 24, 3)))
    home = tmp_path / "keras"
    env = dict(os.environ, KERAS_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(console("nst-transform") + [
        f"--checkpoint={tarball}", f"--style_images={photo}", f"--input_image={photo}",
        f"--output_dir={tmp_path / 'out'}", "--output_basename=photo"],
        capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"nst-transform: error: refusing checkpoint tarball {tarball}: "
                               "it unpacks to more than ")
    assert cached(home) == [] and not (tmp_path / "out").exists()


CRAFTED = {
    # name: (members, what the error says)
    "dot-dot": ([("../evil.txt", tarfile.REGTYPE, b"x")], "'../evil.txt' is not a relative path"),
    "deep dot-dot": ([("a/../../evil.txt", tarfile.REGTYPE, b"x")], "is not a relative path"),
    "absolute": ([("/tmp/evil.txt", tarfile.REGTYPE, b"x")], "'/tmp/evil.txt' is not a relative"),
    "symlink": ([("m/model.ckpt.index", tarfile.SYMTYPE, "/etc/passwd")],
                "'m/model.ckpt.index' is a symbolic link"),
    "symlink folder": ([("m", tarfile.SYMTYPE, ".."), ("m/evil.txt", tarfile.REGTYPE, b"x")],
                       "'m' is a symbolic link"),
    "hard link": ([("a.txt", tarfile.REGTYPE, b"x"), ("b.txt", tarfile.LNKTYPE, "a.txt")],
                  "'b.txt' is a hard link"),
    "device": ([("null", tarfile.CHRTYPE, None)], "'null' is a device"),
    "pipe": ([("pipe", tarfile.FIFOTYPE, None)], "'pipe' is a named pipe"),
    "many files": ([(f"f{i}", tarfile.REGTYPE, b"") for i in range(arb.MAX_TARBALL_MEMBERS + 1)],
                   f"holds more than {arb.MAX_TARBALL_MEMBERS} members"),
    "bomb": ([("model.ckpt.data-00000-of-00001", tarfile.REGTYPE, BOMB_BYTES)],
             "it unpacks to more than"),
    "no checkpoint": ([("m/readme.txt", tarfile.REGTYPE, b"hello")],
                      "holds no TensorFlow checkpoint"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_tarball_is_refused_and_leaves_nothing(tmp_path, cache, case):
    members, expected = CRAFTED[case]
    (tmp_path / "in").mkdir()
    tarball = make_tarball(tmp_path / "in" / "model.tar.gz", members)
    with pytest.raises(CheckpointError) as info:
        arb.checkpoint_prefix(tarball)
    message = str(info.value)
    assert expected in message and tarball in message and "\n" not in message, message
    assert cached(cache) == [] and sorted(os.listdir(tmp_path)) in (["in"], ["in", "keras"])
    assert os.listdir(tmp_path / "in") == ["model.tar.gz"] and not os.path.exists("/tmp/evil.txt")


def test_a_tarball_of_another_kind_of_checkpoint_leaves_nothing(tmp_path, cache):
    from magenta_compat.checkpoint import write_checkpoint
    from tests.pastiche_helpers import random_pastiche

    folder = tmp_path / "pastiche"
    folder.mkdir()
    write_checkpoint(random_pastiche(2, alpha=0.25, seed=0), str(folder / "model.ckpt"))
    tarball = make_tarball(tmp_path / "pastiche.tar.gz", [
        (f"m/{name}", tarfile.REGTYPE, (folder / name).read_bytes())
        for name in os.listdir(folder) if name.startswith("model.ckpt")])
    with pytest.raises(CheckpointError, match="not a Magenta arbitrary_image_stylization"):
        arb.checkpoint_prefix(tarball)
    assert cached(cache) == []


def test_a_good_tarball_is_extracted_once_into_the_cache(tmp_path, cache):
    from test_arbitrary_api import random_arbitrary

    folder = tmp_path / "ckpt"
    folder.mkdir()
    arb.write_arbitrary_checkpoint(random_arbitrary(), str(folder / "model.ckpt"))
    tarball = make_tarball(tmp_path / "good.tar.gz", [
        (f"arbitrary_style_transfer/{name}", tarfile.REGTYPE, (folder / name).read_bytes())
        for name in sorted(os.listdir(folder)) if name.startswith("model.ckpt")])
    prefix = arb.checkpoint_prefix(tarball)
    assert prefix.startswith(str(cache)) and prefix.endswith("arbitrary_style_transfer/model.ckpt")
    assert os.path.isfile(prefix + ".index")
    assert arb.checkpoint_prefix(tarball) == prefix             # cached: not extracted again
