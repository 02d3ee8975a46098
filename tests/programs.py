"""Run the ``nst-*`` console scripts as a user types them: a subprocess of the entry point that
``pip install`` put next to the Python running the tests, importing this checkout."""

import os
import subprocess
import sys

from conftest import ROOT

#: Every program of ``setup.cfg``'s ``console_scripts``.
PROGRAMS = ("nst-stylize", "nst-reconstruct", "nst-transform", "nst-train", "nst-export",
            "nst-video", "nst-adain", "nst-prefer", "nst-stylize-dataset")


def program_path(name):
    """The console script ``name`` of the environment running the tests (it must be installed:
    ``pip install -e .``)."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"console script {name} is not installed next to "
                                f"{sys.executable}: run pip install -e .")
    return path


def program_env(**extra):
    """The environment of a program run: this checkout first on the path, TensorFlow's native
    log at its default (the programs quiet it themselves)."""
    env = dict(os.environ, **extra)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_program(name, *args, cwd=None, timeout=600, env=None):
    """``subprocess.run`` of console script ``name`` with ``args``; text output captured."""
    return subprocess.run([program_path(name), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env or program_env())


def run_programs(*commands, cwd=None, timeout=600):
    """Several independent ``(name, *args)`` commands at once (each is mostly a TensorFlow
    start-up: on CI's two cores two run in the time of one); their ``CompletedProcess``
    results, in order."""
    started = [subprocess.Popen([program_path(name), *map(str, args)], cwd=cwd, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=program_env())
               for name, *args in commands]
    done = []
    for process in started:
        out, err = process.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


def start_program(name, *args, cwd=None, env=None, **popen):
    """``subprocess.Popen`` of console script ``name`` (for tests that signal it)."""
    return subprocess.Popen([program_path(name), *map(str, args)], cwd=cwd,
                            env=env or program_env(), **popen)


def assert_clean_output(done):
    """No traceback and no TensorFlow log line in a program's output."""
    text = done.stdout + done.stderr
    assert "Traceback" not in text, text[-3000:]
    assert "INFO:tensorflow" not in text and "WARNING:tensorflow" not in text, text[-3000:]


def error_line(done, program):
    """The one ``program: error: ...`` line of a failed run (asserted to be the only one)."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(f"{program}: error: ")]
    assert done.returncode == 1 and len(errors) == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "FATAL" not in done.stderr, done.stderr[-3000:]
    return errors[0]
