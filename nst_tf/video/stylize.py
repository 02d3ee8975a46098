"""``stylize_video``: stylize a clip with any model (or Gatys), without flicker, resumably.

The pipeline, frame by frame, with two input frames and one output frame in memory:

1. frames stream from :func:`nst_tf.video.io.open_frames` (trimmed, resampled, resized);
2. feed-forward models stylize batches of ``batch_size`` frames; ``method="gatys"`` optimizes each
   frame (:class:`~nst_tf.video.optimization.GatysStylizer`);
3. with ``temporal=True`` (default) the backward and forward DIS flows of the *input* frames give
   the previous output warped onto the current frame and Ruder et al.'s reliability mask; feed-
   forward outputs are blended with the warped previous output where the mask is 1
   (:func:`~nst_tf.video.consistency.blend_with_previous`), optimization starts from it and adds
   the temporal loss;
4. each finished frame is written as PNG into a work folder beside the output
   (``.out.mp4.partial/``) with a small ``run.json``; an interrupted run (Ctrl-C, crash, kill -9)
   run again with the same arguments resumes after the frames already written and gives the
   frames an uninterrupted run gives, bit for bit: the state carried from frame to frame is the
   8-bit frame as saved (read back losslessly on resume), and frames are batched by their index
   (a resumed run recomputes the batch it stopped in rather than batching differently);
5. at the end the video is encoded (audio copied) into a temporary file and renamed over the
   output, or the PNG folder is renamed to the output folder: the output appears complete or not
   at all.

Example:
    >>> from nst_tf.video import stylize_video
    >>> stylize_video("clip.mp4", "out.mp4", model="varied", style=5)        # doctest: +SKIP
    >>> stylize_video("clip.mp4", "frames_out", method="gatys",              # doctest: +SKIP
    ...               style="starry.jpg", size=256, steps=100)
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
import warnings

import numpy as np

from nst_tf import images
from nst_tf.errors import ConfigError
from nst_tf.io import atomic_write, check_keeps_inputs, replace_folder
from nst_tf.progress import ProgressLine
from nst_tf.video import io as vio
from nst_tf.video.consistency import (DEFAULT_STRENGTH, blend_with_previous, check_strength,
                                      occlusion_mask, pair_warping_error)
from nst_tf.video.optimization import (DEFAULT_TEMPORAL_WEIGHT, FeedForwardStylizer,
                                       GatysStylizer)
from nst_tf.video.warp import warp

METHODS = ("feedforward", "gatys")
_STATE = "run.json"


@dataclasses.dataclass
class VideoResult:
    """What :func:`stylize_video` returns.

    Attributes:
        output: the output path (complete unless ``interrupted``).
        frames: frames written (in total, resumed ones included).
        fps: frame rate of the output.
        size: ``(height, width)`` of the frames.
        seconds: wall time of this call.
        resumed: frames taken over from an interrupted run.
        warping_error: Lai et al.'s warping error of the output against the input's flow (with
            ``report=True``), else None.
        interrupted: stopped by Ctrl-C; run again with the same arguments to resume.
        input_frames: frames read from the input (source frames, before fps resampling).
        warnings: what went wrong without stopping the run, e.g. an input that ended before
            the duration its header gives (each is also issued as a
            :class:`~nst_tf.video.io.VideoWarning`).
    """

    output: str
    frames: int
    fps: float
    size: tuple
    seconds: float
    resumed: int = 0
    warping_error: float = None
    interrupted: bool = False
    input_frames: int = None
    warnings: list = dataclasses.field(default_factory=list)


class Progress(ProgressLine):
    """A one-line progress bar on stderr: frames done / total, frames per second, ETA.

    ``clock`` (default :func:`time.monotonic`) is what :class:`~nst_tf.progress.ProgressLine`
    times with.
    """

    def __init__(self, total, enabled=True, stream=None, clock=time.monotonic):
        super().__init__(total, stream=stream, clock=clock, enabled=enabled)

    def update(self, done):
        seconds = self.advance()
        rate = 1.0 / seconds if seconds > 0 else 0.0
        total = f"/{self.total}" if self.total else ""
        self.write(done, f"frame {done}{total}  {rate:.2f} fps{self.eta(done, seconds)}")


def work_folder(output):
    """The hidden folder beside ``output`` that holds the frames of an unfinished run."""
    output = os.path.abspath(os.fspath(output).rstrip("/\\"))
    return os.path.join(os.path.dirname(output), "." + os.path.basename(output) + ".partial")


def _describe(value):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest()
    weights = getattr(value, "get_weights", None)
    if weights is not None:  # a network object: identified by its weights
        digest = hashlib.sha1()
        for array in weights():
            digest.update(np.ascontiguousarray(array).tobytes())
        return f"{getattr(value, 'name', '')}:{digest.hexdigest()}"
    return f"{type(value).__name__}:{id(value)}"


def _fingerprint(source, settings):
    stat = os.stat(source.path) if os.path.isfile(source.path) else None
    key = {"input": os.path.abspath(source.path),
           "input_file": [stat.st_size, stat.st_mtime_ns] if stat else None,
           "fps": source.fps, "size": list(source.size), "start": source.start,
           "end": source.end, **{k: _describe(v) for k, v in settings.items()}}
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _load_state(work, fingerprint):
    """``(frames done, per-pair errors)`` of a resumable run in ``work``; a run with other
    settings is discarded."""
    try:
        with open(os.path.join(work, _STATE)) as f:
            state = json.load(f)
    except (OSError, ValueError):
        state = None
    if state is None or state.get("fingerprint") != fingerprint:
        if os.path.isdir(work):
            shutil.rmtree(work)
        os.makedirs(work)
        return 0, []
    done = int(state.get("frames", 0))
    while done and not os.path.isfile(os.path.join(work, vio.FRAME_NAME.format(done))):
        done -= 1
    return done, list(state.get("errors", []))[:max(done - 1, 0)]


def _save_state(work, fingerprint, done, errors):
    with atomic_write(os.path.join(work, _STATE), "w") as f:
        json.dump({"fingerprint": fingerprint, "frames": done, "errors": errors}, f)


def _publish_folder(work, output):
    """Rename the finished work folder to ``output`` (replacing an old folder)."""
    os.remove(os.path.join(work, _STATE))
    replace_folder(work, os.path.abspath(output))


def _batches(indexed, size):
    """``(index, frame)`` pairs grouped by ``index // size``: the same batches whichever frame a
    run starts from (a model's float results may depend on what else is in its batch)."""
    batch = []
    for index, frame in indexed:
        if batch and index // size != batch[0][0] // size:
            yield batch
            batch = []
        batch.append((index, frame))
    if batch:
        yield batch


def first_frame_to_read(done, batch_size):
    """Index of the first input frame a run that resumes after ``done`` frames reads: the
    start of the batch holding frame ``done`` (recomputed, as in an uninterrupted run), or the
    frame before it (the input the next frame's flow is computed against)."""
    if not done:
        return 0
    return min((done // batch_size) * batch_size, done - 1)


class _Chain:
    """The sequential part of a run: flows, consistency, blending, writing, state, progress.

    Frame t needs the finished output of frame t−1 (warped onto it), so frames are finished one
    by one, in order; only the model's forward passes may run ahead.
    """

    def __init__(self, work, fingerprint, done, errors, estimator, temporal, strength, report,
                 bar):
        self.work, self.fingerprint = work, fingerprint
        self.done, self.errors = done, errors
        self.resumed = done
        self.estimator, self.temporal, self.strength, self.report = (estimator, temporal,
                                                                     strength, report)
        self.bar = bar
        self.previous_in = self.previous_out = None
        self._flows = None

    def warped_previous(self, frame):
        """``(previous output warped onto frame, reliability mask)``, or None (first frame,
        temporal off). Computes the flows once for :meth:`finish`."""
        self._flows = None
        if self.previous_in is not None and self.estimator is not None:
            self._flows = (self.estimator(frame, self.previous_in),
                           self.estimator(self.previous_in, frame))
        if not self.temporal or self._flows is None:
            return None
        return warp(self.previous_out, self._flows[0])[0], occlusion_mask(*self._flows)

    def resume_from(self, previous_output):
        """Continue after ``self.done`` saved frames; ``previous_output`` is the last one as
        saved (float32, read back from its PNG)."""
        self.previous_out = previous_output

    def needs(self, index, frame):
        """False for an input frame whose output an interrupted run already saved (the frame
        just before the first missing one is kept as the previous input)."""
        if index >= self.resumed:
            return True
        if index == self.resumed - 1:
            self.previous_in = frame
        return False

    def finish(self, frame, out):
        """Record the finished output of ``frame``: report, write, save state, progress. The
        state carried to the next frame is the frame as saved (8 bits), as on resume."""
        saved = images.float_to_uint8(out)
        out = images.uint8_to_float(saved)
        if self.report and self._flows is not None:
            backward, forward = self._flows
            self.errors.append(pair_warping_error(self.previous_out, out, forward,
                                                  occlusion_mask(forward, backward)))
        vio.write_png(os.path.join(self.work, vio.FRAME_NAME.format(self.done + 1)), saved)
        self.done += 1
        _save_state(self.work, self.fingerprint, self.done, self.errors)
        self.previous_in, self.previous_out = frame, out
        self.bar.update(self.done)

    def blend_batch(self, batch, stylized):
        """Finish a batch of ``(index, frame)`` pairs and their feed-forward outputs, blending
        each with the previous output."""
        for (index, frame), out in zip(batch, stylized):
            if not self.needs(index, frame):
                continue
            previous = self.warped_previous(frame)
            if previous is not None:
                out = blend_with_previous(out, *previous, self.strength)
            self.finish(frame, out)


def _run_feedforward(chain, stylizer, batches):
    """Run the model on batch k+1 while a worker thread finishes batch k (flows, warps, PNG
    writes and NumPy release the GIL, as TensorFlow does)."""
    from concurrent.futures import ThreadPoolExecutor

    pending = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nst-video") as pool:
        try:
            for batch in batches:
                needed = [chain.needs(index, frame) for index, frame in batch]
                if not any(needed):
                    continue  # saved by the interrupted run (needs() kept its last input)
                stylized = stylizer(np.stack([frame for _, frame in batch]))
                if pending is not None:
                    pending.result()  # in order, and errors surface here
                pending = pool.submit(chain.blend_batch, batch, stylized)
            if pending is not None:
                pending.result()
        except BaseException:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    pending.result()  # let the frame being written finish: state stays valid
            raise


def _input_files(input):
    """The input as paths an output must not replace: the file or folder, else (a glob or
    printf pattern) the folder of its frames."""
    if not isinstance(input, (str, os.PathLike)) or os.path.exists(input):
        return input
    return os.path.dirname(os.fspath(input)) or "."


def stylize_video(input, output, model="varied", style=None, *, method="feedforward",
                  temporal=True, strength=DEFAULT_STRENGTH,
                  temporal_weight=DEFAULT_TEMPORAL_WEIGHT, style_weights=None, first_steps=None,
                  start=None, end=None, fps=None, size=None, batch_size=4, flow="medium",
                  report=False, progress=True, quality=18, overwrite=False, **options):
    """Stylize a video file or frame sequence into a video file or a folder of PNG frames.

    Args:
        input: a video file, a folder of frames, or a glob / printf pattern.
        output: a video file (``.mp4``, ``.mov``, ``.mkv``, ``.webm``, ``.avi``, ``.gif``; the
            input's audio is copied) or a folder for numbered PNGs (``frame_000001.png``...).
            Its parent folder must exist.
        model: ``method="feedforward"``: anything :func:`nst_tf.stylize` accepts (preset,
            checkpoint, ``.keras`` file, network...). Ignored by ``method="gatys"``.
        style: what the model's family takes (pastiche: index or mix such as ``5`` or
            ``{0: 0.5, 3: 0.5}``); for ``"gatys"`` the style image path(s).
        method: ``"feedforward"`` or ``"gatys"`` (per-frame optimization).
        temporal: temporal consistency (default True); False stylizes frame by frame.
        strength: feed-forward blending weight of the warped previous output, in [0, 1].
        temporal_weight: ``"gatys"``: weight of Ruder's temporal loss.
        style_weights: ``"gatys"``: blend weights of several style images.
        first_steps: ``"gatys"``: steps for the first frame (default 2 × ``steps``).
        start, end: seconds of the input to stylize (``[start, end)``).
        fps: output frame rate (nearest-frame resampling); for frame folders, their rate
            (default 24).
        size: longest side of the frames (rounded to even); None keeps the input's size.
        batch_size: frames per forward pass of a feed-forward model.
        flow: DIS preset for the optical flow: ``"ultrafast"``, ``"fast"``, ``"medium"``.
        report: compute Lai et al.'s warping error of the output (see
            :func:`nst_tf.video.warping_error`) on the way; in the result.
        progress: show a progress bar (frames, fps, ETA) on stderr.
        quality: x264 CRF of video outputs (lower is better; 18 is visually lossless).
        overwrite: replace an existing ``output`` (a video file or a non-empty folder); by
            default an existing output is an error, before any work (it may be hours of it).
        **options: the family's options (``jit_compile``, ``precision``, ``fast``...) or, for
            ``"gatys"``, :data:`nst_tf.gatys.DEFAULTS` options (``steps``, ``weights``,
            ``style_weight``, ``optimizer``...).

    Returns:
        :class:`VideoResult`.

    Raises:
        VideoError: unreadable or empty input, frames of mixed sizes.
        ConfigError: bad options, an image file name as output.
        OutputPathError: the output's folder does not exist, or the output would replace the
            input, the model or a style image; ``OutputExistsError`` (one of them):
            the output exists and ``overwrite`` is False.
        MissingDependencyError: the ``video`` extra is not installed.
        NSTError: any error of the model.
    """
    began = time.perf_counter()
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(temporal, bool):
        raise ConfigError(f"temporal must be True or False, got {temporal!r}")
    check_strength(strength)
    output = os.fspath(output)
    check_keeps_inputs(output, [("input", _input_files(input)), ("model", model),
                                ("style", style if isinstance(style, (list, tuple)) else [style])],
                       "output")
    kind = vio.check_output(output, overwrite=overwrite)
    source = vio.open_frames(input, start=start, end=end, fps=fps, size=size)
    if method == "feedforward":
        if style_weights is not None or first_steps is not None:
            raise ConfigError("style_weights and first_steps apply to method='gatys' only")
        stylizer = FeedForwardStylizer(model, style, batch_size, **options)
    else:
        stylizer = GatysStylizer(style, style_weights,
                                 temporal_weight=temporal_weight if temporal else 0.0,
                                 first_steps=first_steps, **options)
        batch_size = 1
    estimator = None
    if temporal or report:
        from nst_tf.video.flow import FlowEstimator

        estimator = FlowEstimator(flow)

    settings = dict(model=model if method == "feedforward" else None, style=style,
                    method=method, temporal=temporal, strength=strength,
                    temporal_weight=temporal_weight, style_weights=style_weights,
                    first_steps=first_steps, flow=flow, options=options)
    fingerprint = _fingerprint(source, settings)
    work = work_folder(output)
    done, errors = _load_state(work, fingerprint)
    resumed = done
    first = first_frame_to_read(done, batch_size)
    frames = enumerate(source.frames(first=first), first)
    chain = _Chain(work, fingerprint, done, errors, estimator, temporal, strength, report,
                   Progress(source.count, progress))
    if done:
        chain.resume_from(vio.load_frame(os.path.join(work, vio.FRAME_NAME.format(done))))
    interrupted = False
    try:
        if method == "feedforward":
            _run_feedforward(chain, stylizer, _batches(frames, batch_size))
        else:
            for index, frame in frames:
                if not chain.needs(index, frame):
                    continue
                stylized, stopped = stylizer(frame, chain.warped_previous(frame),
                                             first=chain.done == 0)
                if stopped:
                    raise KeyboardInterrupt
                chain.finish(frame, stylized)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        if chain.done == 0:  # failed before the first frame (e.g. a bad style): leave nothing
            shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        chain.bar.close()
    done, errors = chain.done, chain.errors
    result = VideoResult(output=output, frames=done, fps=source.fps, size=source.size,
                         seconds=0.0, resumed=resumed,
                         warping_error=float(np.mean(errors)) if errors else None,
                         interrupted=interrupted, input_frames=source.frames_read)
    if source.ended_early and not interrupted:
        result.warnings.append(source.ended_early)
        warnings.warn(source.ended_early, vio.VideoWarning, stacklevel=2)
    if interrupted:
        print(f"interrupted after {done} frames; run the same command again to resume "
              f"(frames kept in {work})", file=sys.stderr)
    else:
        if done == 0:
            raise vio.VideoError(f"{source.path} yielded no frames")
        paths = [os.path.join(work, vio.FRAME_NAME.format(k)) for k in range(1, done + 1)]
        if kind == "video":
            vio.encode_video(output, paths, source.fps,
                             audio_from=source if source.has_audio else None, quality=quality)
            shutil.rmtree(work, ignore_errors=True)
        else:
            _publish_folder(work, output)
    result.seconds = time.perf_counter() - began
    return result
