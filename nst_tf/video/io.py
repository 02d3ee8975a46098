"""Frames in and out: stream a video file, folder or pattern; write a video or numbered PNGs.

Reading (:func:`open_frames`) never holds more than one decoded frame: a :class:`FrameSource`
knows the frame rate, size and (estimated) count, and yields float32 ``[H, W, 3]`` frames in
[0, 1], trimmed to ``[start, end)`` seconds, resampled to ``fps`` (nearest frame) and resized so
the longest side is ``size`` (rounded to even sizes, which video encoders need). Inputs:

* a video file (anything FFmpeg reads, through PyAV's wheels that bundle FFmpeg);
* a folder of images (sorted in *natural* order: ``frame_2`` before ``frame_10``);
* a glob (``"frames/*.png"``) or printf pattern (``"frames/frame_%04d.png"``).

Every frame of a folder / pattern is checked for size before the first frame is processed, and a
video's first frame is decoded on opening: an unreadable file, a video without frames or frames of
mixed sizes are one :class:`VideoError` naming the file, before anything is written. A video that
stops short of the duration its header gives (a truncated download, a recording cut off) or whose
decoding fails after some frames yields the frames it has; :attr:`FrameSource.ended_early` then
says how many frames were read and where the input ended (``nst-video`` prints it as a warning).

Writing: :func:`encode_video` writes a video (H.264 in .mp4/.mov/.mkv, VP9 in .webm, MPEG-4 in
.avi, GIF) from numbered PNG frames into a temporary file beside the output and renames it when
complete; the audio of the source video is copied (stream copy, or AAC when the container does
not take the codec). PNG frame folders are published with :func:`nst_tf.io.atomic_directory`
semantics by the caller.

Example:
    >>> from nst_tf.video.io import open_frames
    >>> source = open_frames("clip.mp4", start=1.0, end=3.0, size=512)   # doctest: +SKIP
    >>> source.fps, source.size, source.count                             # doctest: +SKIP
    (25.0, (288, 512), 50)
    >>> for frame in source: ...                                          # doctest: +SKIP
"""

import contextlib
import fractions
import glob
import math
import os
import re

import numpy as np
from PIL import Image

from nst_tf import images
from nst_tf.errors import ConfigError, ImageError, NSTError
from nst_tf.images import float_to_uint8
from nst_tf.io import OutputExistsError, atomic_path, atomic_write, check_output_dir
from nst_tf.video.deps import require


class VideoError(NSTError, ValueError):
    """A video or frame sequence that cannot be used: unreadable, no frames, mixed sizes."""


class VideoWarning(UserWarning):
    """An input that could be used only in part (e.g. a video that ended early)."""


#: Output extensions written as video files → (FFmpeg muxer, video codec, pixel format).
VIDEO_FORMATS = {
    ".mp4": ("mp4", "libx264", "yuv420p"), ".m4v": ("mp4", "libx264", "yuv420p"),
    ".mov": ("mov", "libx264", "yuv420p"), ".mkv": ("matroska", "libx264", "yuv420p"),
    ".webm": ("webm", "libvpx-vp9", "yuv420p"), ".avi": ("avi", "mpeg4", "yuv420p"),
    ".gif": ("gif", "gif", "rgb8"),
}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
#: Frame rate assumed for a folder / pattern of images when ``fps`` is not given.
DEFAULT_FOLDER_FPS = 24.0
#: File name of the k-th frame (from 1) in PNG outputs and work folders.
FRAME_NAME = "frame_{:06d}.png"


def _natural_key(path):
    return [int(part) if part.isdigit() else part.lower()
            for part in re.split(r"(\d+)", os.path.basename(path))]


def _printf_to_glob(pattern):
    """``frame_%04d.png`` → (``frame_*.png``, a regex capturing the number)."""
    spec = re.compile(r"%0?(\d*)d")
    parts = spec.split(pattern)  # text, width, text, width, ...
    if len(parts) != 3:
        raise VideoError(f"frame pattern {pattern!r} must contain exactly one %d field "
                         "(e.g. frame_%04d.png)")
    regex = re.escape(parts[0]) + r"(\d+)" + re.escape(parts[2]) + "$"
    return glob.escape(parts[0]) + "*" + glob.escape(parts[2]), re.compile(regex)


def frame_files(source):
    """The image files of a folder, glob or printf pattern, in frame order (natural sort)."""
    source = os.fspath(source)
    if os.path.isdir(source):
        files = [os.path.join(source, name) for name in os.listdir(source)
                 if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")]
        if not files:
            raise VideoError(f"folder {source} holds no image frames "
                             f"({', '.join(IMAGE_EXTENSIONS)})")
        return sorted(files, key=_natural_key)
    if "%" in source:
        pattern, regex = _printf_to_glob(source)
        numbered = []
        for path in glob.glob(pattern):
            match = regex.match(path)
            if match:
                numbered.append((int(match.group(1)), path))
        files = [path for _, path in sorted(numbered)]
    else:
        files = sorted(glob.glob(source), key=_natural_key)
    if not files:
        raise VideoError(f"no frames match {source}")
    return files


def _even_fit(height, width, size):
    """``(h, w)`` with the longest side ``size`` (aspect kept), both even."""
    scale = size / max(height, width)
    return (max(2, 2 * math.floor(height * scale / 2 + 0.5)),
            max(2, 2 * math.floor(width * scale / 2 + 0.5)))


def _resize(frame, shape):
    """A float frame at ``shape`` (itself when it has that size)."""
    if frame.shape[:2] == tuple(shape):
        return frame
    return images.resize(frame, tuple(shape))


def _repeats(index, step):
    """How many output ticks the ``index``-th source frame covers when ``step`` = fps_out/fps_in
    (nearest-frame resampling)."""
    return max(0, math.ceil((index + 0.5) * step) - max(0, math.ceil((index - 0.5) * step)))


def _check_time(value, what):
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{what} must be a finite number of seconds >= 0, got {value!r}")
    return number


class FrameSource:
    """A trimmed, resampled, resized stream of frames; iterate it (several times if needed).

    Attributes:
        path: the input path or pattern.
        kind: ``"video"`` or ``"images"``.
        fps: frames per second of the stream (the output rate).
        size: ``(height, width)`` of every frame yielded.
        count: number of frames yielded (exact for images, estimated from the container's
            duration for videos: use it for progress only).
        has_audio: the input is a video with an audio stream.
        start, end: the trimmed interval in seconds (``end`` None = to the end).
        frames_read: source frames read by the last complete pass over the input (None before).
        ended_early: None, or a message when the last complete pass found a video that ends
            before its header's duration (or stops decoding): the frames read, the times.
    """

    def __init__(self, path, *, start=None, end=None, fps=None, size=None):
        self.path = os.fspath(path)
        self.start = _check_time(start, "start") or 0.0
        self.end = _check_time(end, "end")
        if self.end is not None and self.end <= self.start:
            raise ConfigError(f"end ({self.end} s) must be after start ({self.start} s)")
        if fps is not None:
            fps = _check_time(fps, "fps")
            if not fps:
                raise ConfigError("fps must be > 0")
        if size is not None and (isinstance(size, bool) or int(size) != size or size < 2):
            raise ConfigError(f"size must be an integer >= 2, got {size!r}")
        self._files = None
        self.frames_read = self.ended_early = None
        if os.path.isdir(self.path) or any(c in self.path for c in "*?[%"):
            self.kind = "images"
            self._open_images(fps)
        elif os.path.isfile(self.path):
            self.kind = "video"
            self._open_video(fps)
        else:
            raise VideoError(f"input not found: {self.path} (give a video file, a folder of "
                             "frames, or a pattern like frames/frame_%04d.png)")
        height, width = self.source_size
        self.size = (height, width) if size is None else _even_fit(height, width, int(size))
        self._step = self.fps / self.source_fps
        self.count = self._estimate_count()
        if self.count == 0:
            raise VideoError(f"{self.path} has no frames between {self.start} s and "
                             f"{self.end} s")

    # --- images --------------------------------------------------------------------------

    def _open_images(self, fps):
        files = frame_files(self.path)
        sizes = {}
        for path in files:
            try:
                sizes[path] = images.image_size(path)
            except ImageError as e:
                raise VideoError(f"cannot read frame {path}: {e}") from None
            if sizes[path] != sizes[files[0]]:
                h0, w0 = sizes[files[0]]
                h, w = sizes[path]
                raise VideoError(f"frames have mixed sizes: {path} is {w}x{h} but {files[0]} is "
                                 f"{w0}x{h0}; all frames must have the same size")
        height, width = sizes[files[0]]
        self.source_fps = float(fps or DEFAULT_FOLDER_FPS)
        self.fps = self.source_fps
        self.source_size = (height, width)
        self.has_audio = False
        first = math.ceil(self.start * self.source_fps - 1e-6)
        last = len(files) if self.end is None else min(len(files), math.ceil(
            self.end * self.source_fps - 1e-6))
        self._files = files[first:last]

    # --- video ---------------------------------------------------------------------------

    def _container(self):
        av = require("av")
        try:
            container = av.open(self.path)
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise VideoError(f"cannot read video {self.path}: {e}") from None
        if not container.streams.video:
            container.close()
            raise VideoError(f"{self.path} has no video frames (no video stream)")
        return container

    def _open_video(self, fps):
        with contextlib.closing(self._container()) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.source_fps = float(rate) if rate else DEFAULT_FOLDER_FPS
            self.fps = float(fps) if fps else self.source_fps
            self.has_audio = bool(container.streams.audio)
            self._duration = _stream_duration(container, stream)
            first = next(self._decode(container), None)
            if first is None:
                promised = ""
                if self._duration and self._duration > self.start:
                    promised = (f", although its header gives {self._duration:.2f} s: the file "
                                "is truncated or damaged")
                raise VideoError(f"video {self.path} has no video frames"
                                 + (f" after {self.start} s" if self.start else "") + promised)
            self.source_size = (first.height, first.width)

    def _decode(self, container):
        """Decoded PyAV frames of the first video stream with ``start <= t < end``; a pass that
        runs to the end sets :attr:`frames_read` and :attr:`ended_early`."""
        av = require("av")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        interval = 1.0 / self.source_fps
        tolerance = 0.25 * interval
        if self.start > 0 and stream.time_base:
            with contextlib.suppress(av.error.FFmpegError):
                container.seek(int(self.start / stream.time_base), stream=stream)
        read, reached = 0, self.start
        try:
            for index, frame in enumerate(container.decode(stream)):
                time = frame.time if frame.time is not None else index / self.source_fps
                if time < self.start - tolerance:
                    continue
                if self.end is not None and time >= self.end - tolerance:
                    break
                read, reached = read + 1, time + interval
                yield frame
        except av.error.FFmpegError as e:
            if not read:
                raise VideoError(f"cannot decode {self.path}: {e}") from None
            self._finish_pass(read, reached, f"decoding failed ({e})")
            return
        self._finish_pass(read, reached)

    def _finish_pass(self, read, reached, failure=None):
        """Record a complete pass: ``read`` frames up to ``reached`` seconds. The input ended
        early when decoding failed, or when more than one frame is missing before the end
        the header promises (within ``[start, end)``)."""
        self.frames_read, self.ended_early = read, None
        expected = self._duration
        if self.end is not None:
            expected = self.end if expected is None else min(expected, self.end)
        missing = expected is not None and reached < expected - 1.0 / self.source_fps
        if failure is None and not missing:
            return
        about = ""
        if expected is not None:
            about = (f" of about {max(read, round((expected - self.start) * self.source_fps))} "
                     f"expected from its header ({expected:.2f} s)")
        self.ended_early = (f"{self.path} ended early: {read} frames read{about}, up to "
                            f"{reached:.2f} s; " + (f"{failure}; " if failure else "")
                            + "the file may be truncated. The output has the frames read")

    def _estimate_count(self):
        if self.kind == "images":
            return sum(_repeats(i, self._step) for i in range(len(self._files)))
        end = self.end if self._duration is None else min(self.end or math.inf, self._duration)
        if end is None:
            return None
        return max(1, round((end - self.start) * self.fps))

    # --- iteration -----------------------------------------------------------------------

    def _source_frames(self):
        """``(load, repeats)`` per source frame; ``load()`` decodes it lazily as float32
        ``[h, w, 3]`` in [0, 1]: image files through :func:`nst_tf.images.load_image` (the
        library's one decoder: 16-bit, grey, alpha, EXIF orientation), video frames from
        FFmpeg's 8-bit RGB."""
        if self.kind == "images":
            for index, path in enumerate(self._files):
                yield (lambda p=path: load_frame(p)), _repeats(index, self._step)
            self.frames_read = len(self._files)
            return
        with contextlib.closing(self._container()) as container:
            for index, frame in enumerate(self._decode(container)):
                yield ((lambda f=frame: images.uint8_to_float(f.to_ndarray(format="rgb24"))),
                       _repeats(index, self._step))

    def frames(self, first=0):
        """Yield float32 ``[H, W, 3]`` frames from the ``first``-th on (earlier frames are
        skipped without being converted)."""
        position = 0
        for load, repeats in self._source_frames():
            if position + repeats <= first:
                position += repeats
                continue
            frame = _resize(load(), self.size)
            for _ in range(repeats):
                if position >= first:
                    yield frame
                position += 1

    def __iter__(self):
        return self.frames()

    def __repr__(self):
        return (f"FrameSource({self.path!r}, kind={self.kind!r}, fps={self.fps:g}, "
                f"size={self.size}, count={self.count})")


def _stream_duration(container, stream):
    """Seconds of the video stream by its header: the stream's duration, else its ``DURATION``
    tag (Matroska / WebM), else the container's (which may include a longer audio track)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tag = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d*)?)",
                       str(stream.metadata.get("DURATION", "")).strip())
    if tag:
        hours, minutes, seconds = tag.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if container.duration is not None:
        return container.duration / 1e6
    return None


def load_frame(path):
    """A frame file as float32 ``[H, W, 3]`` in [0, 1], decoded by
    :func:`nst_tf.images.load_image`; VideoError naming the file if it cannot be read."""
    try:
        return images.load_image(path)
    except ImageError as e:
        raise VideoError(f"cannot read frame {path}: {e}") from None


def open_frames(source, *, start=None, end=None, fps=None, size=None):
    """A :class:`FrameSource` for a video file, a folder of frames, or a glob / printf pattern.

    Args:
        source: the path or pattern.
        start, end: seconds; frames with ``start <= t < end`` (``end`` None: to the end). For
            images, frame k is at ``k / fps``.
        fps: output frame rate (nearest-frame resampling); for images, their rate (default 24).
        size: longest side of the frames, pixels (rounded to even sizes); None keeps the size.

    Raises:
        VideoError: missing, unreadable or empty input, frames of mixed sizes.
        ConfigError: bad start / end / fps / size.
        MissingDependencyError: a video file without PyAV installed.
    """
    return FrameSource(source, start=start, end=end, fps=fps, size=size)


# --- Writing -------------------------------------------------------------------------------

def is_video_path(path):
    """True when ``path``'s extension is a video format (:data:`VIDEO_FORMATS`)."""
    return os.path.splitext(os.fspath(path))[1].lower() in VIDEO_FORMATS


def check_output(path, overwrite=False):
    """Fail early on an output that cannot be written: a missing folder, an image extension,
    and (``overwrite=False``) an existing video file or non-empty frame folder.

    Returns ``"video"`` or ``"frames"`` (a folder of numbered PNGs)."""
    path = os.fspath(path)
    ext = os.path.splitext(path.rstrip("/\\"))[1].lower()
    check_output_dir(path.rstrip("/\\") or ".")
    if not overwrite and os.path.exists(path) and not (os.path.isdir(path)
                                                       and not os.listdir(path)):
        raise OutputExistsError(f"output {path} already exists; pass overwrite=True "
                                "(nst-video --overwrite) to replace it")
    if is_video_path(path):
        return "video"
    if ext in IMAGE_EXTENSIONS:
        raise ConfigError(f"output {path} is an image file name: give a video file "
                          f"({', '.join(VIDEO_FORMATS)}) or a folder for numbered PNG frames")
    if ext:
        raise ConfigError(f"unknown video extension {ext!r} for {path}; use one of "
                          f"{', '.join(VIDEO_FORMATS)} or a folder name for PNG frames")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"output {path} exists and is not a folder")
    return "frames"


def write_png(path, frame):
    """Write a float ``[H, W, 3]`` frame in [0, 1] (or uint8) as PNG, atomically and quickly
    (zlib level 1: work files are written once per frame)."""
    array = np.asarray(frame)
    if array.dtype != np.uint8:
        array = float_to_uint8(array)
    with atomic_write(path) as f:
        Image.fromarray(array).save(f, format="PNG", compress_level=1)


def _fps_fraction(fps):
    return fractions.Fraction(fps).limit_denominator(1001)


def _audio_packets(source):
    """Yield (audio stream, packets iterator) of the source video trimmed to its interval."""
    container = source._container()
    if not container.streams.audio:
        container.close()
        return None, None, None
    stream = container.streams.audio[0]
    base = stream.time_base
    offset = int(round(source.start / base)) if base else 0

    def packets():
        for packet in container.demux(stream):
            if packet.dts is None or packet.pts is None:
                continue
            time = float(packet.pts * base)
            if time < source.start:
                continue
            if source.end is not None and time >= source.end:
                break
            packet.pts -= offset
            packet.dts -= offset
            yield time - source.start, packet

    return container, stream, packets()


def encode_video(path, frame_paths, fps, audio_from=None, quality=18):
    """Encode PNG ``frame_paths`` into the video ``path`` atomically, with ``audio_from``'s
    (a :class:`FrameSource` of a video) audio copied, trimmed to its interval.

    ``quality`` is x264's CRF (lower = better; 18 is visually lossless). Odd frame sizes lose
    their last row / column (H.264 4:2:0 needs even sizes).
    """
    av = require("av")
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    muxer, codec, pixel_format = VIDEO_FORMATS[ext]
    audio_container = None
    try:
        with atomic_path(path, suffix=ext) as tmp, \
                contextlib.closing(av.open(tmp, "w", format=muxer)) as out:
            stream = None
            audio_out = audio_packets = None
            if audio_from is not None and audio_from.has_audio:
                audio_container, audio_in, audio_packets = _audio_packets(audio_from)
                try:
                    audio_out = out.add_stream_from_template(audio_in)
                except (av.error.FFmpegError, ValueError):
                    audio_out = audio_packets = None  # codec not allowed in this container
            pending = None
            rate = _fps_fraction(fps)
            for index, frame_path in enumerate(frame_paths):
                array = float_to_uint8(load_frame(frame_path))
                if stream is None:
                    height, width = (array.shape[0] // 2) * 2, (array.shape[1] // 2) * 2
                    stream = out.add_stream(codec, rate=rate)
                    stream.width, stream.height = width, height
                    stream.pix_fmt = pixel_format
                    if codec == "libx264":
                        stream.options = {"crf": str(quality), "preset": "medium"}
                array = np.ascontiguousarray(array[:height, :width])
                video_frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                for packet in stream.encode(video_frame):
                    out.mux(packet)
                while audio_packets is not None:  # interleave audio up to this frame's time
                    if pending is None:
                        pending = next(audio_packets, None)
                        if pending is None:
                            audio_packets = None
                            break
                    if pending[0] > (index + 1) / fps:
                        break
                    pending[1].stream = audio_out
                    out.mux(pending[1])
                    pending = None
            if stream is None:
                raise VideoError(f"no frames to write to {path}")
            for packet in stream.encode():
                out.mux(packet)
            if pending is not None:
                pending[1].stream = audio_out
                out.mux(pending[1])
            for _, packet in audio_packets or ():
                packet.stream = audio_out
                out.mux(packet)
    finally:
        if audio_container is not None:
            audio_container.close()
