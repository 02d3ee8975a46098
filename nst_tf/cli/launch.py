"""Console entry points: quiet TensorFlow's native log, then run one program.

Each ``nst-*`` command starts here, so the native-log filter (:mod:`nst_tf.cli.quiet`) is in
place before the program's module imports TensorFlow. ``scripts/*.py`` call :func:`launch` too.

Example:
    >>> from nst_tf.cli import launch
    >>> sorted(launch.PROGRAMS)[:2]
    ['nst-export', 'nst-reconstruct']
"""

import importlib

from nst_tf.cli import quiet

#: Program name -> module under ``nst_tf.cli`` whose ``run()`` it calls.
PROGRAMS = {
    "nst-stylize": "stylize",
    "nst-reconstruct": "reconstruct",
    "nst-transform": "transform",
    "nst-train": "train",
    "nst-export": "export",
    "nst-video": "video",
    "nst-adain": "adain",
    "nst-prefer": "prefer",
    "nst-stylize-dataset": "stylize_dataset",
}


def launch(program, argv=None):
    """Install the native-log filter and quiet TensorFlow's Python log, then run ``program``'s
    ``run(argv)``."""
    quiet.filter_native_log()
    quiet.quiet_python_log()
    importlib.import_module(f"nst_tf.cli.{PROGRAMS[program]}").run(argv)


def _entry(program):
    def run():
        launch(program)

    run.__doc__ = f"Console entry point of ``{program}``."
    return run


stylize = _entry("nst-stylize")
reconstruct = _entry("nst-reconstruct")
transform = _entry("nst-transform")
train = _entry("nst-train")
export = _entry("nst-export")
video = _entry("nst-video")
adain = _entry("nst-adain")
prefer = _entry("nst-prefer")
stylize_dataset = _entry("nst-stylize-dataset")
