"""stylize_video / nst-video end to end on tiny clips of a real photo moving with known motion:
a small random pastiche network and Gatys with random VGG19 weights."""

import os

import numpy as np
import pytest

from video_helpers import read_video, translating_frames, write_folder, write_video

pytest.importorskip("av")  # the `video` extra is part of `test`: this never skips in CI

from nst_tf.video import stylize as video_stylize  # noqa: E402
from nst_tf.video import stylize_video, warping_error  # noqa: E402


@pytest.fixture(scope="module")
def network():
    """Random kernels and per-style gamma / beta: each style gives a different image (with the
    default init every style would give the same one, and a bug ignoring the style would pass)."""
    from pastiche_helpers import random_pastiche

    return random_pastiche(3, alpha=0.25, seed=11)


@pytest.fixture
def clip(tmp_path):
    return write_video(str(tmp_path / "clip.mkv"), translating_frames(6, step=(2, 1)), fps=12)


def load_folder(folder):
    from nst_tf.video.io import open_frames

    return np.stack(list(open_frames(folder)))


def test_feedforward_frame_by_frame_equals_the_model_and_temporal_is_steadier(tmp_path, clip,
                                                                             network):
    import nst_tf

    plain = stylize_video(clip, str(tmp_path / "plain"), model=network, style=1,
                          temporal=False, batch_size=4, report=True, progress=False)
    expected = nst_tf.stylize(load_folder(clip), 1, model=network, crop=True)
    got = load_folder(str(tmp_path / "plain"))
    assert got.shape == (6, 48, 64, 3) and plain.frames == 6 and plain.fps == 12
    assert np.abs(got - expected).max() <= 0.5 / 255 + 1e-6
    other = nst_tf.stylize(load_folder(clip), 0, model=network, crop=True)
    assert np.abs(other - expected).mean() > 0.05         # the style given is the style used
    steady = stylize_video(clip, str(tmp_path / "steady.mp4"), model=network, style=1,
                           report=True, progress=False)
    written, _ = read_video(str(tmp_path / "steady.mp4"))
    assert len(written) == 6 and written[0].shape == (48, 64, 3)
    assert steady.warping_error < plain.warping_error / 2
    # The warping error reported on the way is the public metric of the written frames.
    assert plain.warping_error == pytest.approx(warping_error(got, reference=clip), rel=1e-3)
    assert sorted(os.listdir(tmp_path)) == ["clip.mkv", "plain", "steady.mp4"]


def test_audio_is_copied_and_trimmed_with_the_frames(tmp_path, network):
    import av

    clip = write_video(str(tmp_path / "in.mp4"), translating_frames(6), fps=12,
                       audio_seconds=0.5)
    out = str(tmp_path / "out.mp4")
    result = stylize_video(clip, out, model=network, style=0, start=2 / 12, progress=False)
    assert result.frames == 4
    frames, has_audio = read_video(out)
    assert len(frames) == 4 and has_audio
    with av.open(out) as container:
        audio = container.streams.audio[0]
        seconds = sum(float(p.duration * audio.time_base) for p in container.demux(audio)
                      if p.duration)
    assert abs(seconds - (0.5 - 2 / 12)) < 0.1           # the audio after --start, not all of it


def interrupted_run(monkeypatch, frames, *args, **kwargs):
    """``stylize_video(*args, **kwargs)`` with Ctrl-C pressed once ``frames`` frames are saved."""
    real_write = video_stylize.vio.write_png
    calls = []

    def write_then_stop(path, frame):
        if len(calls) == frames:
            raise KeyboardInterrupt
        calls.append(path)
        real_write(path, frame)

    with monkeypatch.context() as patch:
        patch.setattr(video_stylize.vio, "write_png", write_then_stop)
        return stylize_video(*args, **kwargs)


def test_interrupted_run_resumes_from_the_frames_written(tmp_path, clip, network, monkeypatch):
    from nst_tf.video.optimization import FeedForwardStylizer

    import hashlib

    batches = []   # what the model is run on: each batch as the digests of its frames
    real_call = FeedForwardStylizer.__call__

    def spy(self, frames):
        batches.append(tuple(hashlib.sha1(frame.tobytes()).hexdigest()[:12] for frame in frames))
        return real_call(self, frames)

    monkeypatch.setattr(FeedForwardStylizer, "__call__", spy)
    options = dict(model=network, style={0: 0.5, 2: 0.5}, batch_size=4, progress=False)
    full = stylize_video(clip, str(tmp_path / "full"), **options)
    uninterrupted, batches[:] = list(batches), []
    out = str(tmp_path / "out")
    first = interrupted_run(monkeypatch, 3, clip, out, **options)
    assert first.interrupted and first.frames == 3 and not os.path.exists(out)
    assert os.path.isdir(video_stylize.work_folder(out))
    batches[:] = []
    second = stylize_video(clip, out, **options)
    assert (second.resumed, second.frames, second.interrupted) == (3, 6, False)
    assert not os.path.exists(video_stylize.work_folder(out))
    # Frame 4 is stylized in the batch it had in the uninterrupted run (frames 1-4, then 5-6),
    # not in a batch starting where the run stopped (a model's floats depend on the batch).
    assert [len(b) for b in uninterrupted] == [4, 2] and batches == uninterrupted
    # The blend state is the saved 8-bit frame in both runs: the same video, bit for bit.
    np.testing.assert_array_equal(load_folder(out), load_folder(str(tmp_path / "full")))
    assert second.warping_error is None and full.frames == 6


_KILL_AT = """
import os, signal, sys
from nst_tf.video import stylize
real = stylize._save_state
def save_or_die(work, fingerprint, done, errors):
    if done == int(os.environ["KILL_AT_FRAME"]):   # frame written, its state not yet saved
        os.kill(os.getpid(), signal.SIGKILL)
    real(work, fingerprint, done, errors)
stylize._save_state = save_or_die
from nst_tf.cli.launch import launch
launch("nst-video", ["nst-video"] + sys.argv[1:])
"""


@pytest.mark.slow
def test_kill_9_and_resume_gives_the_uninterrupted_frames_bit_for_bit(tmp_path, network):
    """nst-video killed with SIGKILL while finishing frame 6 of 12 (batches of 4), then run
    again: every frame and the reported warping error equal an uninterrupted run's."""
    import subprocess
    import sys

    clip = write_video(str(tmp_path / "clip.mkv"), translating_frames(12, step=(2, 1)), fps=12)
    model = str(tmp_path / "net.keras")
    network.save(model)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def run(output, kill_at=0):
        env = dict(os.environ, KILL_AT_FRAME=str(kill_at), TF_CPP_MIN_LOG_LEVEL="3")
        return subprocess.run(
            [sys.executable, "-c", _KILL_AT, f"--input={clip}", f"--output={output}",
             f"--model={model}", "--style={0: 0.6, 1: 0.4}", "--batch_size=4", "--report",
             "--noprogress"], capture_output=True, text=True, env=env, cwd=root, timeout=600)

    full = run(tmp_path / "full")
    assert full.returncode == 0, full.stderr
    out = tmp_path / "out"
    killed = run(out, kill_at=6)
    assert killed.returncode == -9, killed.stderr
    work = video_stylize.work_folder(str(out))
    assert sorted(os.listdir(work))[:6] == [f"frame_{k:06d}.png" for k in range(1, 7)]
    resumed = run(out)
    assert resumed.returncode == 0, resumed.stderr
    np.testing.assert_array_equal(load_folder(str(out)), load_folder(str(tmp_path / "full")))
    assert len(os.listdir(out)) == 12
    report = [line for line in full.stdout.splitlines() if line.startswith("warping error")]
    assert report and report == [line for line in resumed.stdout.splitlines()
                                 if line.startswith("warping error")]


def test_interrupted_gatys_run_resumes_bit_for_bit(tmp_path, clip, style_path, monkeypatch):
    options = dict(method="gatys", style=style_path, steps=2, weights="random", init="noise",
                   end=0.25, progress=False)       # frames 0, 1, 2 of the clip
    full = stylize_video(clip, str(tmp_path / "full"), **options)
    out = str(tmp_path / "out")
    assert interrupted_run(monkeypatch, 2, clip, out, **options).interrupted
    second = stylize_video(clip, out, **options)
    assert (second.resumed, second.frames, full.frames) == (2, 3, 3)
    np.testing.assert_array_equal(load_folder(out), load_folder(str(tmp_path / "full")))


def test_changed_settings_do_not_resume(tmp_path, clip, network, monkeypatch):
    out = str(tmp_path / "out")
    monkeypatch.setattr(video_stylize.vio, "encode_video", None)  # crash before publishing
    with pytest.raises(TypeError):
        stylize_video(clip, out + ".mp4", model=network, style=0, progress=False)
    monkeypatch.undo()
    again = stylize_video(clip, out + ".mp4", model=network, style=0, progress=False)
    assert again.resumed == 6
    other = stylize_video(clip, out + "2.mp4", model=network, style=1, progress=False)
    assert other.resumed == 0


def test_gatys_video_uses_the_temporal_loss_and_warped_init(tmp_path, clip, style_path,
                                                          monkeypatch):
    import tensorflow as tf

    from nst_tf import gatys

    seen = []
    real_run = gatys.run

    def spy(content, styles, style_weights=None, **kwargs):
        seen.append(kwargs)
        return real_run(content, styles, style_weights, **kwargs)

    monkeypatch.setattr(gatys, "run", spy)
    options = dict(method="gatys", style=style_path, steps=2, weights="random", init="noise",
                   end=0.25, progress=False, report=True)       # frames 0, 1, 2 of the clip
    plain = stylize_video(clip, str(tmp_path / "plain"), temporal=False, **options)
    assert [k["steps"] for k in seen] == [4, 2, 2]              # first frame: 2 x steps
    assert all(k["extra_terms"] is None and k["init"] == "noise" for k in seen)
    seen.clear()
    steady = stylize_video(clip, str(tmp_path / "steady"), temporal_weight=1e3, **options)
    assert steady.frames == plain.frames == 3
    noise = np.random.default_rng(0).random((1, 48, 64, 3)).astype(np.float32)
    # The first frame has the same term with a zero mask (so every frame runs the same
    # compiled step): it adds nothing.
    assert seen[0]["init"] == "noise"
    assert float(seen[0]["extra_terms"]((48, 64))["temporal"](tf.constant(noise))) == 0.0
    for k in (1, 2):
        init = seen[k]["init"]
        assert isinstance(init, np.ndarray) and init.shape == (48, 64, 3)
        term = seen[k]["extra_terms"]((48, 64))["temporal"]
        # The init is the warped previous output wherever the mask is 1: no temporal loss there.
        assert float(term(tf.constant(init[None]))) == pytest.approx(0.0, abs=1e-6)
        assert float(term(tf.constant(noise))) > 1.0
    # Ruder et al.'s ordering: noise-initialized frames flicker, prevWarped + L_temp does not.
    assert steady.warping_error < plain.warping_error / 2


def test_bad_inputs_leave_nothing_behind(tmp_path, network):
    from nst_tf.errors import ConfigError, NSTError

    frames = translating_frames(3)
    mixed = write_folder(str(tmp_path / "mixed"), frames)
    from PIL import Image

    Image.fromarray(frames[0][:40]).save(os.path.join(mixed, "frame_3.png"))
    bad = str(tmp_path / "bad.mp4")
    with open(bad, "wb") as f:
        f.write(b"\x00" * 100)
    good = write_folder(str(tmp_path / "good"), frames)
    before = set(os.listdir(tmp_path))
    for args, match in [((mixed, str(tmp_path / "o.mp4")), "mixed sizes"),
                        ((bad, str(tmp_path / "o.mp4")), "cannot read video"),
                        ((good, str(tmp_path / "no" / "o.mp4")), "does not exist"),
                        ((good, str(tmp_path / "o.png")), "image file name")]:
        with pytest.raises(NSTError, match=match):
            stylize_video(*args, model=network, style=0, progress=False)
    with pytest.raises(ConfigError, match="selects 2 outputs"):
        stylize_video(good, str(tmp_path / "o.mp4"), model=network, style="[0, 1]",
                      progress=False)
    assert set(os.listdir(tmp_path)) == before


def test_cli_stylizes_and_reports(tmp_path, clip, network, capsys):
    from nst_tf.cli.video import main

    model = str(tmp_path / "net.keras")
    network.save(model)
    out = str(tmp_path / "out.mp4")
    code = main(["nst-video", f"--input={clip}", f"--output={out}", f"--model={model}",
                 "--style=2", "--report", "--noprogress", "--end=0.3"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "warping error:" in captured.out
    assert len(read_video(out)[0]) == 4                  # 0.3 s at 12 fps: frames 0..3
    code = main(["nst-video", f"--input={clip}", f"--output={tmp_path / 'x' / 'o.mp4'}",
                 f"--model={model}", "--style=2"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("nst-video: error:") and "\n" not in err
    code = main(["nst-video", f"--input={clip}", f"--output={out}", "--steps=3",
                 f"--model={model}", "--style=2", "--temporal_weight=5"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "--method=gatys only" in err


def test_script_runs_through_absl_global_flags(tmp_path):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, os.path.join(root, "scripts", "video.py"),
                          f"--input={tmp_path / 'none.mp4'}", f"--output={tmp_path / 'o.mp4'}"],
                         capture_output=True, text=True)
    lines = [line for line in out.stderr.splitlines() if line.startswith("nst-video:")]
    assert out.returncode == 1 and len(lines) == 1 and "input not found" in lines[0]
    assert os.listdir(tmp_path) == []


def test_gatys_frames_share_one_objective_and_compiled_step(style_path):
    """After the first frame nothing is traced or rebuilt (the frame and the temporal term's
    data are step inputs), and every frame comes out as a fresh stylizer would make it."""
    from nst_tf.video.optimization import GatysStylizer

    rng = np.random.default_rng(1)
    frames = [rng.random((40, 52, 3)).astype(np.float32) for _ in range(3)]
    mask = np.where(rng.random((40, 52)) < 0.8, 1.0, 0.0).astype(np.float32)
    options = dict(steps=3, weights="random", temporal_weight=1e3)
    shared = GatysStylizer(style_path, **options)
    outputs, previous = [], []
    for t, frame in enumerate(frames):
        previous.append((outputs[-1], mask) if outputs else None)
        outputs.append(shared(frame, previous[-1], first=t == 0)[0])
    assert shared.cache.built == 1 and sum(shared.cache.steps.tracing_counts()) == 1
    assert [t["traces"] for t in shared.timings] == [1, 1, 1]
    assert [t["steps"] for t in shared.timings] == [6, 3, 3]
    for t, frame in enumerate(frames):
        fresh = GatysStylizer(style_path, **options)
        np.testing.assert_allclose(fresh(frame, previous[t], first=t == 0)[0], outputs[t],
                                   atol=1e-6)


def test_existing_output_is_refused_unless_overwrite(tmp_path, clip, network, capsys):
    from nst_tf.cli.video import main
    from nst_tf.io import OutputExistsError

    model = str(tmp_path / "net.keras")
    network.save(model)
    out = tmp_path / "done.mp4"
    out.write_bytes(b"hours of work")
    folder = tmp_path / "frames_out"
    folder.mkdir()
    (folder / "frame_000001.png").write_bytes(b"earlier frame")
    base = [f"--input={clip}", f"--model={model}", "--style=1", "--noprogress", "--end=0.2"]
    for output in (out, folder):
        capsys.readouterr()
        assert main(["nst-video", f"--output={output}", *base]) == 1
        err = capsys.readouterr().err
        assert err == (f"nst-video: error: output {output} already exists; pass overwrite=True "
                       "(nst-video --overwrite) to replace it\n")
        with pytest.raises(OutputExistsError):
            stylize_video(clip, str(output), model=network, style=1, progress=False)
    assert out.read_bytes() == b"hours of work"
    assert os.listdir(folder) == ["frame_000001.png"]
    assert sorted(os.listdir(tmp_path)) == ["clip.mkv", "done.mp4", "frames_out", "net.keras"]
    # --overwrite replaces them; an empty folder is not an output to protect.
    for output in (out, folder):
        assert main(["nst-video", f"--output={output}", "--overwrite", *base]) == 0
    assert len(read_video(str(out))[0]) == 3 and len(os.listdir(folder)) == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["nst-video", f"--output={empty}", *base]) == 0
    assert len(os.listdir(empty)) == 3


def test_truncated_input_is_a_warning_and_in_the_report(tmp_path, network, capsys):
    """The first 60 % of a 12-frame MKV: the frames it holds are stylized, and nst-video says
    how many were read and that the input ended early (stderr warning, --report line)."""
    from nst_tf.cli.video import main
    from nst_tf.video.io import VideoWarning

    full = write_video(str(tmp_path / "full.mkv"), translating_frames(12), fps=12)
    raw = open(full, "rb").read()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(raw[:int(0.6 * len(raw))])
    readable = len(read_video(str(cut))[0])           # what PyAV itself decodes from the cut
    assert 0 < readable < 12
    model = str(tmp_path / "net.keras")
    network.save(model)
    out = tmp_path / "out.mp4"
    capsys.readouterr()
    assert main(["nst-video", f"--input={cut}", f"--output={out}", f"--model={model}",
                 "--style=1", "--report", "--noprogress"]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1, captured.err
    assert warnings[0].startswith(f"nst-video: warning: {cut} ended early: {readable} frames "
                                  "read of about 12 expected")
    assert f"input: {readable} frames read; the input ended early" in captured.out
    assert len(read_video(str(out))[0]) == readable
    with pytest.warns(VideoWarning, match=f"ended early: {readable} frames read"):
        result = stylize_video(str(cut), str(tmp_path / "api"), model=network, style=1,
                               progress=False)
    assert (result.input_frames, result.frames, len(result.warnings)) == (readable, readable, 1)
    # A complete input: no warning, and the report gives the frames read.
    assert main(["nst-video", f"--input={full}", f"--output={tmp_path / 'ok.mp4'}",
                 f"--model={model}", "--style=1", "--report", "--noprogress"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err and "input: 12 frames read\n" in captured.out
    # Nothing decodable: one error line, nothing written.
    cut.write_bytes(raw[:int(0.03 * len(raw))])
    assert main(["nst-video", f"--input={cut}", f"--output={tmp_path / 'none.mp4'}",
                 f"--model={model}", "--style=1", "--noprogress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nst-video: error: ") and err.count("\n") == 1
    assert "truncated or damaged" in err and not (tmp_path / "none.mp4").exists()
