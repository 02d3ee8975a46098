"""Streaming frame input (video files, folders, patterns), trimming, resampling, resizing,
video output with audio, and one-line errors for bad input."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from video_helpers import read_video, translating_frames, write_folder, write_video

pytest.importorskip("av")  # the `video` extra is part of `test`: this never skips in CI

from nst_tf.errors import ConfigError, NSTError  # noqa: E402
from nst_tf.video.io import (VideoError, check_output, encode_video, open_frames,  # noqa: E402
                             write_png)


@pytest.fixture
def frames():
    return translating_frames(6)


def test_lossless_video_round_trips_with_time_trimming_and_resampling(tmp_path, frames):
    path = write_video(str(tmp_path / "clip.mkv"), frames, fps=12)
    source = open_frames(path)
    assert (source.kind, source.fps, source.size, source.count) == ("video", 12.0, (48, 64), 6)
    got = list(source)
    assert len(got) == 6 and got[0].dtype == np.float32
    np.testing.assert_array_equal(np.rint(np.stack(got) * 255).astype(np.uint8), np.stack(frames))
    trimmed = list(open_frames(path, start=1 / 12, end=4 / 12))  # frames 1, 2, 3
    np.testing.assert_array_equal(np.stack(trimmed), np.stack(got[1:4]))
    halved = list(open_frames(path, fps=6))                      # nearest frames 0, 2, 4
    np.testing.assert_array_equal(np.stack(halved), np.stack(got[0::2]))
    assert list(open_frames(path).frames(first=4))[0].tolist() == got[4].tolist()
    small = open_frames(path, size=33)                           # longest side 33 → even 34
    assert small.size == (24, 34) and next(iter(small)).shape == (24, 34, 3)


def test_folder_is_read_in_natural_order_and_patterns_work(tmp_path, frames):
    many = frames + translating_frames(6, origin=(90, 90))
    folder = write_folder(str(tmp_path / "f"), many)      # frame_1.png ... frame_12.png
    got = np.stack(list(open_frames(folder)))
    np.testing.assert_array_equal(np.rint(got * 255).astype(np.uint8), np.stack(many))
    assert open_frames(folder).fps == 24.0
    printf = write_folder(str(tmp_path / "p"), frames, pattern="img_{:04d}.png")
    via_printf = np.stack(list(open_frames(os.path.join(printf, "img_%04d.png"), fps=10)))
    via_glob = np.stack(list(open_frames(os.path.join(printf, "img_*.png"))))
    np.testing.assert_array_equal(via_printf, via_glob)
    assert len(list(open_frames(folder, start=0.25, fps=8))) == 10  # frames 2.. of 12 at 8 fps


def test_video_output_copies_the_audio(tmp_path, frames):
    source = open_frames(write_video(str(tmp_path / "in.mp4"), frames, audio_seconds=0.5))
    assert source.has_audio
    paths = []
    for i, frame in enumerate(source, 1):
        paths.append(str(tmp_path / f"{i}.png"))
        write_png(paths[-1], frame)
    out = str(tmp_path / "out.mp4")
    encode_video(out, paths, source.fps, audio_from=source)
    written, has_audio = read_video(out)
    assert len(written) == 6 and has_audio and written[0].shape == (48, 64, 3)
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


@pytest.mark.parametrize("case", ["unreadable", "zero_frames", "mixed_sizes", "missing",
                                  "empty_folder"])
def test_bad_input_is_one_line_error(tmp_path, frames, case):
    if case == "unreadable":
        path = str(tmp_path / "clip.mp4")
        with open(path, "w") as f:
            f.write("not a video\n")
        match = "cannot read video"
    elif case == "zero_frames":
        import av

        path = str(tmp_path / "empty.mp4")
        with av.open(path, "w") as container:
            stream = container.add_stream("libx264", rate=12)
            stream.width, stream.height = 64, 48
            container.start_encoding()  # a valid header, no frames
        assert os.path.getsize(path) > 0
        match = "has no video frames"
    elif case == "mixed_sizes":
        path = write_folder(str(tmp_path / "f"), frames)
        Image.fromarray(frames[0][:40]).save(os.path.join(path, "frame_4.png"))
        match = "mixed sizes: .*frame_4.png is 64x40"
    elif case == "missing":
        path, match = str(tmp_path / "nothing.mp4"), "not found"
    else:
        os.makedirs(tmp_path / "none")
        path, match = str(tmp_path / "none"), "no image frames"
    with pytest.raises(VideoError, match=match) as info:
        open_frames(path)
    assert "\n" not in str(info.value)


def test_bad_outputs_are_rejected_before_anything_is_written(tmp_path):
    from nst_tf.io import OutputPathError

    with pytest.raises(OutputPathError, match="does not exist"):
        check_output(str(tmp_path / "missing" / "out.mp4"))
    with pytest.raises(ConfigError, match="image file name"):
        check_output(str(tmp_path / "out.png"))
    with pytest.raises(ConfigError, match="unknown video extension"):
        check_output(str(tmp_path / "out.xyz"))
    assert check_output(str(tmp_path / "frames_out")) == "frames"
    assert os.listdir(tmp_path) == []


def test_missing_extra_is_a_one_line_error_naming_it():
    code = ("import sys; sys.modules['cv2'] = None\n"
            "from nst_tf.video.flow import FlowEstimator\n"
            "try:\n    FlowEstimator()\n"
            "except Exception as e:\n    print(type(e).__name__, '|', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("MissingDependencyError |")
    assert "pip install 'nst-tf[video]'" in out.stdout and out.stdout.count("\n") == 1


def test_import_nst_tf_video_loads_no_optional_dependency():
    code = ("import sys, nst_tf, nst_tf.video; nst_tf.video.stylize_video; "
            "print(sorted(m for m in ('cv2', 'av', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert issubclass(VideoError, NSTError)


def _truncated_clip(tmp_path, fraction, audio_seconds=None):
    """A 12-frame lossless MKV (of a moving photo) cut to its first ``fraction`` of bytes."""
    full = write_video(str(tmp_path / "full.mkv"), translating_frames(12), fps=12,
                       audio_seconds=audio_seconds)
    raw = open(full, "rb").read()
    cut = tmp_path / f"cut_{fraction}.mkv"
    cut.write_bytes(raw[:int(len(raw) * fraction)])
    return full, str(cut)


def test_truncated_video_says_how_many_frames_were_read(tmp_path):
    full, cut = _truncated_clip(tmp_path, 0.6)
    source = open_frames(cut)
    assert source.ended_early is None and source.frames_read is None   # nothing read yet
    got = list(source)
    complete = list(open_frames(full))
    assert 0 < len(got) < 12 and source.frames_read == len(got)
    np.testing.assert_array_equal(np.stack(got), np.stack(complete[:len(got)]))
    message = source.ended_early
    assert message.startswith(f"{cut} ended early: {len(got)} frames read of about 12 expected")
    assert "truncated" in message
    # Complete files, with or without a (longer) audio track, and trimmed passes do not warn.
    intact = open_frames(full)
    assert len(list(intact)) == 12 and intact.ended_early is None and intact.frames_read == 12
    with_audio = write_video(str(tmp_path / "audio.mkv"), translating_frames(12), fps=12,
                             audio_seconds=1.2)
    source = open_frames(with_audio)
    assert len(list(source)) == 12 and source.ended_early is None
    trimmed = open_frames(cut, end=(len(got) - 1) / 12)
    assert len(list(trimmed)) == len(got) - 1 and trimmed.ended_early is None
    # Asking for more than the file holds names the shortfall within [start, end).
    longer = open_frames(cut, start=1 / 12, end=11 / 12)
    assert len(list(longer)) == len(got) - 1
    assert f"{len(got) - 1} frames read of about 10 expected" in longer.ended_early


def test_video_with_nothing_decodable_is_an_error(tmp_path):
    _, cut = _truncated_clip(tmp_path, 0.03)
    with pytest.raises(VideoError, match=r"no video frames.*truncated or damaged"):
        open_frames(cut)


def test_decoding_failure_after_some_frames_ends_the_input_early(tmp_path, monkeypatch):
    """FFmpeg giving up mid-stream (an error, not a silent end): the frames before it are kept
    and the error is in the message."""
    import av

    path = write_video(str(tmp_path / "clip.mkv"), translating_frames(6), fps=12)
    source = open_frames(path)
    real_container = type(source)._container

    class FailingAfterThree:
        def __init__(self, container):
            self.container = container
            self.streams = container.streams

        def seek(self, *args, **kwargs):
            return self.container.seek(*args, **kwargs)

        def decode(self, stream):
            for index, frame in enumerate(self.container.decode(stream)):
                if index == 3:
                    raise av.error.InvalidDataError(1094995529, "Invalid data found")
                yield frame

        def close(self):
            self.container.close()

    monkeypatch.setattr(type(source), "_container",
                        lambda self: FailingAfterThree(real_container(self)))
    assert len(list(source)) == 3 and source.frames_read == 3
    assert "ended early: 3 frames read" in source.ended_early
    assert "decoding failed" in source.ended_early and "Invalid data" in source.ended_early
