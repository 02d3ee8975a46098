"""``nst-video``: stylize a video (or a folder of frames) without flicker (an absl app).

Examples::

    nst-video --input=clip.mp4 --output=out.mp4 --model=varied --style=5
    nst-video --input=clip.mp4 --output=out.mp4 --model=varied --style="{0: 0.5, 3: 0.5}" \\
        --start=2 --end=6 --size=512 --report
    nst-video --input=frames/ --output=out_frames --model=johnson.keras --temporal=off
    nst-video --input=clip.mp4 --output=out.mp4 --method=gatys --style=starry.jpg \\
        --steps=200 --size=384 --weights=random

``--model`` / ``--style`` take what :func:`nst_tf.stylize` takes (a preset, checkpoint,
``.keras`` file or train_dir; a style index, a mix or a style image). ``--method=gatys``
optimizes every frame with ``nst-stylize``'s flags (``--steps``, ``--weights``, ``--optimizer``,
``--style_weight``, ``--tile_size``, ``--max_memory``, ``--lbfgs_memory``...) plus Ruder et
al.'s temporal loss; a video resumes by frames, so nst-stylize's ``--checkpoint`` flags are not
taken. The last line says how long the clip is and, apart, how long stylizing it took.

The output is a video file (audio copied) or, for a name without a video extension, a folder of
numbered PNGs. An existing output is not replaced unless ``--overwrite`` is given.
Ctrl-C (or a crash) keeps the finished frames: the same command resumes (exit status 130 when
interrupted). Errors print one line (``nst-video: error: ...``) and exit with status 1; an input
that ends before its header's duration prints a warning (``nst-video: warning: ...``).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import flags  # noqa: E402

from nst_tf.cli import stylize as _stylize_cli  # noqa: E402
from nst_tf.cli.runner import call_reporting_errors, entry_points  # noqa: E402
from nst_tf.errors import ConfigError  # noqa: E402

PROGRAM = "nst-video"

#: nst-stylize flags that make no sense per frame (or are redefined here). A video resumes by
#: frames (the finished ones are kept), so the per-image checkpoint flags are not taken.
_NOT_FROM_STYLIZE = ("content", "output", "style", "size", "scales", "preserve_color",
                     "save_every", "progress", "checkpoint", "checkpoint_every")
#: Feed-forward options passed to the model family only when given on the command line.
_FEEDFORWARD_OPTIONS = ("jit_compile", "precision", "fast")


def define_flags(f):
    flags.DEFINE_string("input", None, "Video file, folder of frames, or pattern "
                        "(frames/*.png, frame_%04d.png).", flag_values=f)
    flags.DEFINE_string("output", None, "Output video (.mp4 .mov .mkv .webm .avi .gif) or a "
                        "folder for numbered PNG frames.", flag_values=f)
    flags.DEFINE_enum("method", "feedforward", ["feedforward", "gatys"], "feedforward: run "
                      "--model on each frame; gatys: optimize each frame.", flag_values=f)
    flags.DEFINE_string("model", "varied", "Feed-forward model: preset, checkpoint, .keras "
                        "file or handle (anything nst_tf.stylize accepts).", flag_values=f)
    flags.DEFINE_multi_string("style", None, "Feed-forward: the model's style (an index, a mix "
                              "'{0: 0.5, 3: 0.5}', or a style image). gatys: style image path; "
                              "repeat for several.", flag_values=f)
    flags.DEFINE_enum("temporal", "on", ["on", "off"], "Temporal consistency from optical "
                      "flow; off: frame by frame.", flag_values=f)
    flags.DEFINE_float("strength", None, "Feed-forward: weight of the warped previous output "
                       "where the flow is reliable, 0..1 (default 0.7).", flag_values=f)
    flags.DEFINE_float("temporal_weight", None, "gatys: weight of the temporal loss (default "
                       "1.3e7, Ruder et al.'s balance).", flag_values=f)
    flags.DEFINE_integer("first_steps", None, "gatys: steps for the first frame (default "
                         "2 x --steps).", flag_values=f)
    flags.DEFINE_float("start", None, "Start time in seconds.", flag_values=f)
    flags.DEFINE_float("end", None, "End time in seconds (exclusive).", flag_values=f)
    flags.DEFINE_float("fps", None, "Output frame rate (frames are dropped or repeated); for "
                       "frame folders, their rate (default 24).", flag_values=f)
    flags.DEFINE_integer("size", None, "Longest side of the frames (default: the input's).",
                         flag_values=f)
    flags.DEFINE_integer("batch_size", 4, "Frames per forward pass (feed-forward).",
                         flag_values=f)
    flags.DEFINE_enum("flow", "medium", ["ultrafast", "fast", "medium"], "DIS optical-flow "
                      "preset.", flag_values=f)
    flags.DEFINE_integer("quality", 18, "x264 CRF of video outputs (lower is better).",
                         flag_values=f)
    flags.DEFINE_boolean("fast", False, "Feed-forward pastiche networks: faster equivalent "
                         "arithmetic.", flag_values=f)
    flags.DEFINE_boolean("report", False, "Print a report: the frames read from the input "
                         "(and whether it ended early), the warping error (Lai et al.) of the "
                         "output.", flag_values=f)
    flags.DEFINE_boolean("overwrite", False, "Replace an existing --output (video file or "
                         "frames folder); without it an existing output is an error.",
                         flag_values=f)
    flags.DEFINE_boolean("progress", True, "Show a progress bar (frames, fps, ETA).",
                         flag_values=f)
    borrowed = flags.FlagValues()
    _stylize_cli.define_flags(borrowed)
    for name in borrowed:
        if name not in _NOT_FROM_STYLIZE:
            f[name] = borrowed[name]


def _style_argument(values, method):
    if not values:
        return None
    if method == "gatys":
        return list(values)
    parsed = [int(v) if v.strip().lstrip("-").isdigit() else v for v in values]
    return parsed[0] if len(parsed) == 1 else parsed


def video_options(f):
    """The keyword arguments of :func:`nst_tf.video.stylize_video` given by the parsed flags."""
    missing = [name for name in ("input", "output") if not f[name].value]
    if missing:
        raise ConfigError("missing " + ", ".join(f"--{m}" for m in missing))
    kwargs = dict(method=f.method, style=_style_argument(f.style, f.method),
                  temporal=f.temporal == "on", start=f.start, end=f.end, fps=f.fps, size=f.size,
                  batch_size=f.batch_size, flow=f.flow, report=f.report, progress=f.progress,
                  quality=f.quality, overwrite=f.overwrite)
    if f.strength is not None:
        kwargs["strength"] = f.strength
    if f.method == "feedforward":
        kwargs["model"] = f.model
        for name in ("temporal_weight", "first_steps", "style_weights"):
            if f[name].present:
                raise ConfigError(f"--{name} applies to --method=gatys only")
        kwargs.update({name: f[name].value for name in _FEEDFORWARD_OPTIONS if f[name].present})
        return kwargs
    if f.fast:
        raise ConfigError("--fast applies to --method=feedforward only")
    if f.temporal_weight is not None:
        kwargs["temporal_weight"] = f.temporal_weight
    kwargs["first_steps"] = f.first_steps
    if f.style_weights:
        kwargs["style_weights"] = _stylize_cli._numbers(f.style_weights, "style_weights", float)
    gatys = _stylize_cli.options_from_flags(_GatysFlags(f))
    for name in ("size", "scales", "preserve_color", "progress", "save_every", "save_pattern",
                 "checkpoint", "checkpoint_every"):
        gatys.pop(name, None)
    kwargs.update(gatys)
    return kwargs


class _GatysFlags:
    """The parsed flags as nst-stylize's ``options_from_flags`` reads them (the flags it needs
    that nst-video does not define take their neutral values)."""

    _NEUTRAL = {"scales": None, "preserve_color": "none", "save_every": 0, "output": "",
                "size": 0, "progress": False, "checkpoint": None, "checkpoint_every": 0}

    def __init__(self, f):
        self._f = f

    def __getattr__(self, name):
        if name in self._NEUTRAL:
            return self._NEUTRAL[name]
        return getattr(self._f, name)


def _run(f):
    import warnings

    from nst_tf.video import stylize_video
    from nst_tf.video.io import VideoWarning

    kwargs = video_options(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VideoWarning)  # printed by execute, in one line each
        return stylize_video(f.input, f.output, **kwargs)


def execute(f):
    """Run with parsed flags; returns the exit status."""
    result, code = call_reporting_errors(PROGRAM, _run, f)
    if code:
        return code
    for message in result.warnings:
        print(f"{PROGRAM}: warning: {' '.join(message.split())}", file=sys.stderr)
    if result.interrupted:
        return 130
    if f.report:
        ended = "; the input ended early (see the warning)" if result.warnings else ""
        print(f"input: {result.input_frames} frames read{ended}")
    if f.report and result.warping_error is not None:
        print(f"warping error: {result.warping_error:.6f} (Lai et al., mean over "
              f"{result.frames - 1} frame pairs; lower is steadier)")
    if f.progress:
        print(f"saved {result.output}: {result.frames} frames ({result.frames / result.fps:.2f} "
              f"s of video at {result.fps:g} fps), {result.size[1]}x{result.size[0]}; stylized "
              f"in {result.seconds:.1f} s")
    return 0


main, run = entry_points(PROGRAM, define_flags, execute)

if __name__ == "__main__":
    run()
