"""nst_tf.io: atomic outputs, and the permissions a plain open(path, "w") / mkdir would give.

Each test runs under several umasks (set with os.umask and restored), and compares with what
open() and os.mkdir give under the same umask, so the expectation is measured, not assumed.
"""

import os
import stat

import numpy as np
import pytest

from nst_tf import images
from nst_tf.io import OutputPathError, atomic_directory, atomic_path, atomic_write

UMASKS = [0o022, 0o077, 0o002, 0o027]


@pytest.fixture(params=UMASKS, ids=[f"umask{u:03o}" for u in UMASKS])
def umask(request):
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def plain_modes(folder):
    """``(file mode, folder mode)`` that open(path, "w") and os.mkdir give here and now."""
    with open(folder / "plain.txt", "w"):
        pass
    os.mkdir(folder / "plain_dir")
    return mode(folder / "plain.txt"), mode(folder / "plain_dir")


def test_new_outputs_get_the_modes_of_plain_open_and_mkdir(tmp_path, umask):
    file_mode, dir_mode = plain_modes(tmp_path)
    assert file_mode == 0o666 & ~umask and dir_mode == 0o777 & ~umask
    with atomic_write(tmp_path / "a.bin") as f:
        f.write(b"x")
    with atomic_write(tmp_path / "a.txt", "w") as f:
        f.write("x")
    with atomic_path(tmp_path / "b.dat", suffix=".dat") as tmp:
        with open(tmp, "wb") as f:  # a writer that writes into the file it is given
            f.write(b"y")
    with atomic_path(tmp_path / "c.dat", suffix=".dat") as tmp:
        os.remove(tmp)               # a writer that replaces the file with a private one
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600))
    with atomic_directory(tmp_path / "d") as tmp:
        with open(os.path.join(tmp, "inside.txt"), "w") as f:
            f.write("z")
    for name in ("a.bin", "a.txt", "b.dat", "c.dat"):
        assert mode(tmp_path / name) == file_mode, name
    assert mode(tmp_path / "d") == dir_mode
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "a.txt", "b.dat", "c.dat", "d", "plain.txt",
                                            "plain_dir"]  # no temporary files left


def test_replaced_outputs_keep_their_mode_as_open_w_does(tmp_path, umask):
    for name, kept in (("private.txt", 0o600), ("shared.txt", 0o664)):
        path = tmp_path / name
        path.write_text("old")
        os.chmod(path, kept)
        with open(path, "w") as f:          # the reference: open(path, "w") keeps the mode
            f.write("plain")
        assert mode(path) == kept
        with atomic_write(path, "w") as f:
            f.write("new")
        assert mode(path) == kept and path.read_text() == "new"
        with atomic_path(path, suffix=".txt") as tmp:
            with open(tmp, "w") as f:
                f.write("newer")
        assert mode(path) == kept and path.read_text() == "newer"
    folder = tmp_path / "folder"
    folder.mkdir()
    os.chmod(folder, 0o750)
    with atomic_directory(folder):
        pass
    assert mode(folder) == 0o750


def test_failed_writes_leave_the_old_file_and_nothing_else(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as f:
            f.write("half")
            raise RuntimeError("writer failed")
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "d"):
            raise RuntimeError("writer failed")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]
    with pytest.raises(OutputPathError, match="does not exist"):
        with atomic_write(tmp_path / "missing" / "x.txt"):
            pass


def test_images_and_keras_files_get_the_plain_mode(tmp_path, umask):
    import keras

    from nst_tf.export import export_keras

    file_mode, _ = plain_modes(tmp_path)
    images.save_image(tmp_path / "image.png", np.full((4, 4, 3), 0.5, np.float32))
    images.save_image(tmp_path / "image.jpg", np.full((4, 4, 3), 0.5, np.float32))
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 1)])
    export_keras(model, tmp_path / "model.keras")
    for name in ("image.png", "image.jpg", "model.keras"):
        assert mode(tmp_path / name) == file_mode, name


def test_video_outputs_get_the_plain_modes(tmp_path):
    """nst-video's PNG frames, their folder and a video file (one umask: a video run is slower)."""
    pytest.importorskip("av")  # the `video` extra is part of `test`: this never skips in CI
    import keras

    from nst_tf.video import stylize_video

    previous = os.umask(0o027)
    try:
        file_mode, dir_mode = plain_modes(tmp_path)
        frames = tmp_path / "in"
        frames.mkdir()
        for k in range(3):
            images.save_image(frames / f"f{k}.png", np.full((16, 16, 3), 0.2 * k, np.float32))
        model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 1)])
        stylize_video(str(frames), str(tmp_path / "out"), model=model, progress=False)
        stylize_video(str(frames), str(tmp_path / "out.mp4"), model=model, progress=False)
    finally:
        os.umask(previous)
    assert mode(tmp_path / "out") == dir_mode
    for name in sorted(os.listdir(tmp_path / "out")):
        assert mode(tmp_path / "out" / name) == file_mode, name
    assert mode(tmp_path / "out.mp4") == file_mode


def test_tensorflow_checkpoints_get_the_plain_mode(tmp_path, umask):
    """write_tensors stages TensorFlow's files in a private folder, then moves them out: the
    files (and the ``checkpoint`` state file) have the mode of open(path, "w")."""
    from magenta_compat.checkpoint import write_tensors

    file_mode, _ = plain_modes(tmp_path)
    tensors = {"w": np.ones((2, 3), np.float32)}
    write_tensors(tensors, str(tmp_path / "v2.ckpt"), version="V2")
    write_tensors(tensors, str(tmp_path / "v1.ckpt"), version="V1")
    written = sorted(set(os.listdir(tmp_path)) - {"plain.txt", "plain_dir"})
    assert written == ["checkpoint", "v1.ckpt", "v2.ckpt.data-00000-of-00001", "v2.ckpt.index"]
    for name in written:
        assert mode(tmp_path / name) == file_mode, name
