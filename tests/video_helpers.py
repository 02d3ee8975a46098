"""Tiny test clips made from a real picture moving by known whole-pixel steps (exact motion)."""

import fractions
import os

import numpy as np
from PIL import Image

from conftest import test_image


def photo():
    """A real picture (uint8 [256, 256, 3]) from tests/images."""
    with Image.open(test_image("content_sq.jpg")) as img:
        return np.asarray(img.convert("RGB").resize((256, 256)))


def translating_frames(count=6, height=48, width=64, step=(2, 1), origin=(60, 80)):
    """uint8 frames: a window of ``photo()`` moving by ``step = (dx, dy)`` pixels per frame, so
    frame t+1's content sits ``step`` pixels to the left / up of frame t's."""
    image = photo()
    frames = []
    for t in range(count):
        y, x = origin[0] + t * step[1], origin[1] + t * step[0]
        frames.append(np.ascontiguousarray(image[y:y + height, x:x + width]))
    return frames


def write_video(path, frames, fps=12, audio_seconds=None):
    """Encode uint8 frames with PyAV (H.264, or lossless FFV1 for .mkv); optional sine audio."""
    import av

    lossless = path.endswith(".mkv")
    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream("ffv1" if lossless else "libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "bgr0" if lossless else "yuv420p"
        audio = None
        if audio_seconds:
            audio = container.add_stream("aac", rate=22050)
            audio.layout = "mono"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio is not None:
            samples = int(22050 * audio_seconds)
            tone = (0.3 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 22050)).astype(np.float32)
            chunk = 1024
            for start in range(0, samples, chunk):
                part = tone[None, start:start + chunk]
                audio_frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format="flt",
                                                         layout="mono")
                audio_frame.sample_rate = 22050
                audio_frame.pts = start
                audio_frame.time_base = fractions.Fraction(1, 22050)
                for packet in audio.encode(audio_frame):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return path


def write_folder(folder, frames, pattern="frame_{}.png"):
    """Save uint8 frames as PNGs numbered from 1 without zero padding (natural order matters)."""
    os.makedirs(folder, exist_ok=True)
    for i, frame in enumerate(frames, 1):
        Image.fromarray(frame).save(os.path.join(folder, pattern.format(i)))
    return folder


def read_video(path):
    """All frames of a video as uint8 arrays, and whether it has an audio stream."""
    import av

    with av.open(os.fspath(path)) as container:
        has_audio = bool(container.streams.audio)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return frames, has_audio
