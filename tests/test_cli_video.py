"""nst-video as typed: the console script on a folder of frames, with the flags the docs show."""

import os

import numpy as np
import pytest
from PIL import Image

from programs import assert_clean_output, error_line, run_program
from video_helpers import translating_frames

pytest.importorskip("av")  # the `video` extra is part of `test`: this never skips in CI


@pytest.fixture
def frames(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, frame in enumerate(translating_frames(3, height=32, width=40)):
        Image.fromarray(frame).save(folder / f"f{k}.png")
    return folder


@pytest.mark.slow
def test_gatys_video_runs_as_the_docs_show_with_borrowed_flags(tmp_path, frames, style_path,
                                                             monkeypatch):
    """``nst-video --input=frames/ --output=out --method=gatys --style=s.jpg --weights=random``
    (the docs' command) works, and the flags nst-video borrows from nst-stylize reach the
    optimization: ``--tile_size`` tiles it, ``--lbfgs_memory`` sets the L-BFGS history,
    ``--max_memory`` is the auto tiles' budget (too small: one line naming the flags)."""
    done = run_program("nst-video", f"--input={frames}{os.sep}", "--output=out",
                       "--method=gatys", f"--style={style_path}", "--weights=random",
                       "--steps=2", "--tile_size=16", "--lbfgs_memory=3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_clean_output(done)
    assert sorted(os.listdir(tmp_path / "out")) == [f"frame_00000{k}.png" for k in (1, 2, 3)]
    # The summary says how long the clip is and, apart, how long the work took.
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("saved out: 3 frames (0.12 s of video at 24 fps), 40x32; "
                              "stylized in "), summary

    shallow = ["--content_layers=block1_conv2", "--style_layers=block1_conv1"]  # fast
    tight = run_program("nst-video", f"--input={frames}", "--output=tight", "--method=gatys",
                        f"--style={style_path}", "--weights=random", "--steps=2",
                        "--tile_size=auto", "--max_memory=1KB", *shallow, cwd=tmp_path)
    line = error_line(tight, "nst-video")
    assert "max_memory is 0.0 GB" in line and "--max_memory" in line \
        and "--lbfgs_memory" in line and "--optimizer=adam" in line, line
    assert not (tmp_path / "tight").exists()
    gone = run_program("nst-video", f"--input={frames}", "--output=o", "--method=gatys",
                       f"--style={style_path}", "--checkpoint_every=5", cwd=tmp_path)
    assert "checkpoint_every" in error_line(gone, "nst-video")

    # What the flags did, seen from inside the same entry point (flags parsed as above).
    from nst_tf import multiscale, tiling
    from nst_tf.cli import video

    tiles, memories = [], []
    real_tiled, real_run = tiling.TiledObjective.__init__, multiscale.run

    def tiled(self, objective, tile_size, *args, **kwargs):
        tiles.append(tile_size)
        real_tiled(self, objective, tile_size, *args, **kwargs)

    def run(*args, **kwargs):
        memories.append(kwargs["memory"])
        return real_run(*args, **kwargs)

    monkeypatch.setattr(tiling.TiledObjective, "__init__", tiled)
    monkeypatch.setattr(multiscale, "run", run)
    argv = ["nst-video", f"--input={frames}", f"--output={tmp_path / 'again'}",
            "--method=gatys", f"--style={style_path}", "--weights=random", "--steps=2",
            "--noprogress", "--end=0.05", *shallow]                 # frames 0 and 1
    assert video.main(argv + ["--tile_size=16", "--lbfgs_memory=3"]) == 0
    assert tiles == [16] and memories == [3, 3]
    tiles.clear(), memories.clear()
    assert video.main(argv[:2] + [f"--output={tmp_path / 'plain'}"] + argv[3:]) == 0
    assert tiles == [] and memories == [10, 10]


def test_sixteen_bit_frames_are_decoded_like_load_image(tmp_path):
    """A folder of 16-bit PNG frames reads as :func:`nst_tf.load_image` reads them (mid-grey
    stays 0.5, not white: one decoder for the library), and ``nst-video`` on it writes what the
    model makes of those frames."""
    import nst_tf
    from nst_tf import images
    from nst_tf.export import export_keras
    from nst_tf.networks import johnson_network
    from nst_tf.video.io import open_frames

    folder = tmp_path / "frames16"
    folder.mkdir()
    ramp = (np.linspace(0, 65535, 24 * 32).reshape(24, 32)).astype(np.uint16)
    for k in range(2):
        Image.fromarray(ramp, mode="I;16").save(folder / f"f{k}.png")
    frames = list(open_frames(str(folder)))
    expected = images.load_image(str(folder / "f0.png"))
    assert abs(float(expected.mean()) - 0.5) < 0.01
    for frame in frames:
        np.testing.assert_array_equal(frame, expected)

    network = johnson_network(alpha=0.25)
    model = export_keras(network, tmp_path / "johnson.keras")
    done = run_program("nst-video", f"--input={folder}", "--output=out", f"--model={model}",
                       "--temporal=off", "--noprogress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_clean_output(done)
    reference = images.float_to_uint8(nst_tf.stylize(expected, model=network, crop=True))
    for name in ("frame_000001.png", "frame_000002.png"):
        written = np.asarray(Image.open(tmp_path / "out" / name), np.int16)
        assert np.abs(written - reference).max() <= 1, name
