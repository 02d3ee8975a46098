"""``nst-stylize-dataset``: stylize every image of a dataset with Apache Beam (extra ``beam``)::

    nst-stylize-dataset --content=imagenet/train --styles=paintings --output=sin/train \\
        --recipe=stylized-imagenet
    nst-stylize-dataset --content='photos/**/*.jpg' --output=out --model=varied --seed=3
    nst-stylize-dataset --content=photos --styles=art --output=out --model=arbitrary \\
        --strength=0.5,1 -- --runner=DirectRunner --direct_num_workers=2 \\
        --direct_running_mode=multi_processing
    nst-stylize-dataset --content=photos --styles=art --output=out --model=adain -- --runner=dask

* The output mirrors the content tree (``OUTPUT/<relative path>.png``),
  ``OUTPUT/manifest.jsonl`` has one line per input file and ``OUTPUT/run.json`` the settings; a
  rerun with the same settings skips what exists (and decodes), one with other settings is
  refused.
* Each image's style and strength are a function of ``--seed`` and its relative path.
* Everything after ``--`` goes to Beam's ``PipelineOptions`` (runner, workers, Dataflow
  project, ...); without ``--runner`` Beam runs locally (DirectRunner); ``--runner=dask`` is
  Beam's DaskRunner (extra ``dask``; a local cluster, or ``--dask_client_address=HOST:8786``).
* Workers print their progress; Dataflow, Flink and Spark jobs are polled for Beam's counters.
  The last line is the summary; failed images are listed with their reason (the run still
  exits 0: they are in the manifest). Errors in the request are one line and exit code 1;
  Ctrl-C exits 130, and the same command later finishes the job.
"""

import contextlib
import logging
import os
import re
import signal
import sys
import threading

from absl import flags

from nst_tf.cli import quiet
from nst_tf.cli.runner import call_reporting_errors, main_with_fresh_flags, run_app
from nst_tf.errors import ConfigError
from nst_tf.scale.plan import DEFAULT_MAX_PIXELS

PROGRAM = "nst-stylize-dataset"
# Beam's local worker processes (and Dask's) log to the shared stderr in Python's default
# format ("INFO:apache_beam...:", "WARNING:root:...") before their log level applies.
_BEAM_LOG = re.compile(rb"^(DEBUG|INFO|WARNING):(apache_beam[\w.]*|distributed[\w.]*|__main__|"
                       rb"root):")
#: Worker log level for local runs unless the Beam options give one (hides Beam's INFO lines).
LOCAL_LOG_LEVEL = "--default_sdk_harness_log_level=WARNING"


def define_flags(flag_values=flags.FLAGS):
    """Define the flags on ``flag_values`` (the global ``FLAGS`` for the console script)."""
    fv = dict(flag_values=flag_values)
    flags.DEFINE_string("content", None, "Content images: a folder (every file below it), a "
                        "glob pattern or a file; local or gs://, s3://, hdfs://.", **fv)
    flags.DEFINE_string("output", None, "Output folder (mirrors the content tree).", **fv)
    flags.DEFINE_string("model", None, "adain, arbitrary, varied, monet, or a path (a "
                        "checkpoint, .keras file, .pth folder; remote paths are copied to the "
                        "workers). Default: the recipe's.", **fv)
    flags.DEFINE_string("styles", None, "Style images (folder or pattern) for arbitrary-style "
                        "models; style indices to draw from (e.g. 0,3,5; default all) for "
                        "multi-style networks.", **fv)
    flags.DEFINE_string("style_weights", None, "Multi-style networks: one mixture for every "
                        "image, e.g. '{0: 0.5, 3: 0.5}'.", **fv)
    flags.DEFINE_integer("seed", 0, "Picks each image's style and strength (with its path).",
                         **fv)
    flags.DEFINE_string("strength", None, "Strength in [0, 1], or a range 'low,high' drawn "
                        "per image (default 1).", **fv)
    flags.DEFINE_integer("content_size", None, "Resize content images' shorter side to this "
                         "(0: keep).", **fv)
    flags.DEFINE_integer("crop_size", None, "Then centre-crop them to this square (0: no).",
                         **fv)
    flags.DEFINE_integer("style_size", None, "With a recipe: side of the square style images; "
                         "else the model's style resizing (AdaIN 512, arbitrary 256).", **fv)
    flags.DEFINE_enum("recipe", None, ["stylized-imagenet"], "A published dataset's settings "
                      "(flags given explicitly override them).", **fv)
    flags.DEFINE_enum("format", None, ["png", "jpeg"], "Output format (default png).", **fv)
    flags.DEFINE_integer("batch_size", 8, "Most images per forward pass.", **fv)
    flags.DEFINE_integer("threads", 0, "TensorFlow threads per worker process (0: for a local "
                         "run with N worker processes, cores / N; else one per core).", **fv)
    flags.DEFINE_float("progress_seconds", 10.0, "Seconds between progress lines (0: none).",
                       **fv)
    flags.DEFINE_integer("max_pixels", DEFAULT_MAX_PIXELS, "Content and style images with more "
                         "pixels (width x height, read from the file's header) are failed rows "
                         "(styles: left out), never decoded (0: no cap but PIL's own, 179 "
                         "million).", **fv)
    flags.mark_flags_as_required(["content", "output"], **fv)


def split_beam_args(argv):
    """``(our arguments, Beam's)``: everything after the first ``--`` is Beam's."""
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1:]


def _is_local(args):
    runners = [a.split("=", 1)[1] for a in args if a.startswith("--runner=")]
    return not runners or runners[-1].lower() in ("directrunner", "direct")


def _beam_args(args):
    if _is_local(args) and not any(a.startswith("--default_sdk_harness_log_level")
                                   for a in args):
        args = args + [LOCAL_LOG_LEVEL]
    return args


def default_threads(args, cpus=None):
    """TensorFlow threads per worker for a local multi-process run (cores / workers), else
    None (TensorFlow's default)."""
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

    direct = PipelineOptions(list(args)).view_as(DirectOptions)
    workers = direct.direct_num_workers or (cpus or os.cpu_count())
    if not _is_local(args) or direct.direct_running_mode != "multi_processing" or workers < 2:
        return None
    return max(1, (cpus or os.cpu_count()) // workers)


def run_dataset(flag_values, beam_args):
    """Plan, run and summarize; returns the :class:`~nst_tf.scale.dataset.Summary`."""
    fv = flag_values
    try:
        from nst_tf.scale.beam import stylize_dataset
    except ImportError as e:
        raise ConfigError(f"nst-stylize-dataset needs Apache Beam: pip install 'nst-tf[beam]' "
                          f"({e})") from None
    return stylize_dataset(fv.content, fv.output, fv.model, styles=fv.styles,
                           style_weights=fv.style_weights, seed=fv.seed, strength=fv.strength,
                           content_size=fv.content_size, crop_size=fv.crop_size,
                           style_size=fv.style_size, recipe=fv.recipe, format=fv.format,
                           batch_size=fv.batch_size,
                           threads=fv.threads or default_threads(beam_args),
                           progress_seconds=fv.progress_seconds, max_pixels=fv.max_pixels,
                           pipeline_args=_beam_args(beam_args))


@contextlib.contextmanager
def _quiet_interrupt():
    """On Ctrl-C, silence standard error before raising KeyboardInterrupt: the local worker
    processes get the signal too and would print their tracebacks (about 120 lines with two
    DirectRunner workers), as would Beam's threads here; the one line comes through
    :func:`nst_tf.cli.quiet.say`."""
    def interrupted(signum, frame):
        quiet.silence()
        threading.excepthook = lambda args: None
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, interrupted)
    undo = quiet.silence_on_interrupt()
    try:
        yield
    finally:
        undo()
        signal.signal(signal.SIGINT, previous)


def execute(flag_values, beam_args=()):
    """Run with parsed flags; print the summary. Returns the exit code (0, 1, or 130)."""
    logging.getLogger().setLevel(logging.ERROR)   # Beam warns on the root logger
    # Beam logs a failing bundle's traceback before raising it: the exception says it once.
    logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    quiet.drop_lines(_BEAM_LOG.match)
    try:
        with _quiet_interrupt():
            summary, code = call_reporting_errors(PROGRAM, run_dataset, flag_values,
                                                  list(beam_args))
    except (KeyboardInterrupt, RuntimeError) as e:
        # Beam's local runner re-raises a worker's KeyboardInterrupt as a RuntimeError.
        if isinstance(e, RuntimeError) and not str(e).startswith("KeyboardInterrupt"):
            raise
        quiet.say(f"{PROGRAM}: interrupted; the images written so far stay, and the same "
                  "command finishes the rest")
        return 130
    if summary is not None:
        from nst_tf.scale.beam import print_summary

        print_summary(summary)
    return code


def main(argv=None):
    """Run with fresh flags (``argv`` starts with the program name); returns the exit code."""
    ours, beam_args = split_beam_args(sys.argv if argv is None else argv)
    return main_with_fresh_flags(PROGRAM, define_flags,
                                 lambda fv: execute(fv, beam_args), ours)


def run(argv=None):
    """Console entry point: our flags before ``--``, Beam's after."""
    ours, beam_args = split_beam_args(sys.argv if argv is None else argv)
    run_app(define_flags, lambda fv: execute(fv, beam_args), ours, program=PROGRAM)


if __name__ == "__main__":
    run()
