"""Keep TensorFlow's native start-up log out of the command-line programs' output.

TensorFlow >= 2.19 writes its C++ log through absl (``I0000 00:00:1795597496.53 7111 port.cc:153]
oneDNN custom operations are on ...``, ``cudart_stub.cc] Could not find cuda drivers``,
``failed call to cuInit``, ``Sharding callback duration``) and no longer honours
``TF_CPP_MIN_LOG_LEVEL`` for them. The "no GPU here" errors (cuInit, CUDA plugin registration)
count as INFO. :func:`filter_native_log` puts a filter on the process's
standard-error file descriptor: lines in absl's native format below the chosen level are dropped,
everything else (Python tracebacks, our own messages, warnings) passes through unchanged.

A program whose worker processes share its standard error can also have a Ctrl-C silence it
(:func:`silence_on_interrupt`, :func:`silence`) and still print its own last line
(:func:`say`): the workers' tracebacks do not reach the user.

The level follows ``TF_CPP_MIN_LOG_LEVEL`` when the user set it (0 shows everything, 1 hides
INFO, 2 also WARNING, 3 also ERROR); otherwise it is 2. absl's ``--verbosity`` (``-v``) of 0 or
more shows INFO again.

TensorFlow's Python log (``INFO:tensorflow:Assets written to ...``, ``Using MirroredStrategy``,
the multi-worker collective set-up) goes through the ``tensorflow`` logger:
:func:`quiet_python_log` hides its INFO lines at the same levels (and its warnings at level 3).

Example:
    >>> native_log_level({"TF_CPP_MIN_LOG_LEVEL": "1"}, ["prog"])
    1
    >>> native_log_level({}, ["prog", "--verbosity=0"])
    0
    >>> is_native_log_line("I0000 00:00:1795597496.533934    7111 port.cc:153] oneDNN ...", 2)
    True
    >>> is_native_log_line("E0000 00:00:17.9   7 cuda_platform.cc:52] failed call to cuInit", 2)
    True
    >>> is_native_log_line("E0000 00:00:17.9   7 kernel.cc:52] out of memory", 2)
    False
"""

import atexit
import os
import re
import select
import signal
import sys
import threading

#: Default level when ``TF_CPP_MIN_LOG_LEVEL`` is unset: hide INFO and WARNING.
DEFAULT_LEVEL = 2

# absl's native prefix: severity letter, MMDD, time (seconds unbounded before absl is set
# up), thread id, file:line]
_NATIVE = re.compile(rb"^(?P<severity>[IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] ")
# TF's older native prefix: "2026-11-25 09:00:00.123456: I tensorflow/core/...cc:123] ..."
_OLD_NATIVE = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?P<severity>[IWEF]) \S+:\d+\] ")
_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# The second line of cpu_feature_guard's INFO message, which has no prefix of its own.
_CONTINUATION = b"To enable the following instructions:"
_RANK = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}
# ERROR lines that only say "this machine has no GPU": hidden from level 1 on, like INFO.
_NO_GPU = (b"failed call to cuInit", b"Unable to register cu", b"Could not find cuda drivers")

_installed = False
_also_dropped = []   # predicates(line bytes) -> bool added by programs (drop_lines)
_silenced = False    # silence(): drop everything
_original = None     # the real standard error, once the filter is installed
_wakeup = None       # write end of the pipe that tells the filter a signal arrived


def drop_lines(predicate):
    """Also drop the lines for which ``predicate(line: bytes)`` is true (e.g. a library's own
    log format); takes effect where :func:`filter_native_log` is installed (level > 0)."""
    _also_dropped.append(predicate)


def silence():
    """Drop everything written to standard error from now on: by this process, its threads
    and the worker processes that share its standard error (their tracebacks when Ctrl-C
    reaches them all). :func:`say` still reaches the real standard error. Takes effect where
    :func:`filter_native_log` is installed."""
    global _silenced
    _silenced = True


def silence_on_interrupt():
    """Make Ctrl-C :func:`silence` standard error the moment the signal arrives (through
    ``signal.set_wakeup_fd``), not when Python's handler gets to run in the main thread, which
    may be waiting inside a C call meanwhile while the worker processes print. Main thread
    only, where the filter is installed; returns the function that undoes it."""
    if _wakeup is None or threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.set_wakeup_fd(_wakeup, warn_on_full_buffer=False)
    return lambda: signal.set_wakeup_fd(previous)


def say(text):
    """Print the line ``text`` on the real standard error, past :func:`silence`."""
    if _original is None:
        print(text, file=sys.stderr, flush=True)
    else:
        os.write(_original, (text.rstrip("\n") + "\n").encode())


def native_log_level(environ=None, argv=None):
    """The minimum severity to show (0 INFO … 3 FATAL only), from the environment and argv."""
    environ = os.environ if environ is None else environ
    argv = sys.argv if argv is None else argv
    level = DEFAULT_LEVEL
    value = environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip()
    if value.isdigit():
        level = min(int(value), 3)
    for i, arg in enumerate(argv[1:], start=1):
        verbosity = None
        if arg.startswith(("--verbosity=", "-v=")):
            verbosity = arg.split("=", 1)[1]
        elif arg in ("--verbosity", "-v") and i + 1 < len(argv):
            verbosity = argv[i + 1]
        if verbosity is not None and verbosity.lstrip("-").isdigit() and int(verbosity) >= 0:
            level = 0
    return level


def quiet_python_log(level=None):
    """Hide the ``tensorflow`` Python logger's INFO lines from level 1 on (its WARNINGs stay
    up to level 2: they are about the user's run), everything below ERROR at level 3."""
    import logging

    level = native_log_level() if level is None else level
    if level > 0:
        logging.getLogger("tensorflow").setLevel(logging.ERROR if level >= 3 else logging.WARNING)


def is_native_log_line(line, level):
    """True when ``line`` (str or bytes) is a native TensorFlow log line below ``level``."""
    raw = line.encode() if isinstance(line, str) else line
    if raw.startswith(_PREAMBLE):
        return level > 0
    match = _NATIVE.match(raw) or _OLD_NATIVE.match(raw)
    if not match:
        return False
    rank = 0 if any(text in raw for text in _NO_GPU) else _RANK[match.group("severity")]
    return rank < level


def filter_native_log(level=None):
    """Drop native log lines below ``level`` (default :func:`native_log_level`) from fd 2.

    Call once, before TensorFlow is imported. A no-op at level 0. Lines other than native log
    lines pass through in order; the filter is flushed at exit.
    """
    global _installed, _original, _wakeup
    level = native_log_level() if level is None else level
    if _installed or level <= 0:
        return
    _installed = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", str(level))  # for TF's own older checks
    sys.stderr.flush()
    original = _original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    signals = None
    if os.name == "posix":  # select() on pipes: not on Windows
        signals, _wakeup = os.pipe()
        os.set_blocking(_wakeup, False)

    def wait_for_data():
        """Wait until standard error has data; meanwhile a Ctrl-C silences it."""
        while signals is not None:
            ready = select.select([read_end, signals], [], [])[0]
            if signals in ready and signal.SIGINT in os.read(signals, 512):
                silence()
            if read_end in ready:
                return

    def pump():
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            pending, dropped = b"", False
            while True:
                wait_for_data()
                chunk = pipe.read(65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                kept = []
                for line in lines:
                    if is_native_log_line(line, level) or \
                            any(drop(line) for drop in _also_dropped):
                        dropped = True
                    elif not (dropped and line.startswith(_CONTINUATION)):
                        dropped = False
                        kept.append(line + b"\n")
                if kept and not _silenced:
                    os.write(original, b"".join(kept))
            if pending and not _silenced and not is_native_log_line(pending, level):
                os.write(original, pending)

    thread = threading.Thread(target=pump, name="native-log-filter", daemon=True)
    thread.start()

    def restore():
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end: the pump sees EOF
        thread.join(timeout=5)

    atexit.register(restore)
