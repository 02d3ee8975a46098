"""Shared plumbing of the absl command-line programs: flag parsing, one-line errors, exit codes.

A CLI module defines ``define_flags(flag_values)`` and ``execute(flag_values) -> exit code``, then
``main, run = entry_points(PROGRAM, define_flags, execute)``: ``run()`` is the console entry point
(global ``absl.flags.FLAGS``, ``app.run``); ``main(argv)`` runs it from Python with a private
``FlagValues`` and returns the exit code (tests, notebooks).

Example:
    >>> from absl import flags
    >>> def define(fv): flags.DEFINE_integer("n", 1, "a number", flag_values=fv)
    >>> main_with_fresh_flags("demo", define, lambda fv: fv.n - 2, ["demo", "--n=2"])
    0
"""

import re
import sys

from absl import app, flags

from nst_tf.errors import NSTError

#: absl's help flags: the usage goes to stdout and the program exits with status 0.
HELP_FLAGS = ("help", "helpshort", "helpfull", "helpxml", "?")

_REQUIRED = re.compile(r"Flag --(\w+) must have a value other than None")


def print_error(program, error):
    """Print ``program: error: message`` on one line to stderr."""
    print(f"{program}: error: {' '.join(str(error).split())}", file=sys.stderr)


def flag_error_message(error):
    """One line for an absl flag-parsing error: ``missing --a, --b`` for required flags left
    out (absl's validators list one line per flag), else absl's message.

    Example:
        >>> flag_error_message(flags.IllegalFlagValueError(
        ...     "flag --a=None: Flag --a must have a value other than None."))
        'missing --a'
    """
    missing = _REQUIRED.findall(str(error))
    if missing:
        return "missing " + ", ".join(f"--{name}" for name in missing)
    return " ".join(str(error).split())


def asks_for_help(argv):
    """True when the command line (program name first) holds one of :data:`HELP_FLAGS`."""
    for arg in argv[1:]:
        if arg == "--":
            return False
        name = arg.lstrip("-").split("=", 1)[0]
        if arg.startswith("-") and name in HELP_FLAGS:
            return True
    return False


def parse_numbers(values, name, kind=float):
    """``values`` (a list flag's strings) as numbers of type ``kind``; a ConfigError names the
    flag ``--name`` otherwise."""
    from nst_tf.errors import ConfigError

    try:
        return [kind(v) for v in values]
    except ValueError:
        raise ConfigError(f"--{name} must be {kind.__name__} values, got "
                          f"{','.join(values)}") from None


def call_reporting_errors(program, function, *args, **kwargs):
    """``(result, 0)``, or ``(None, 1)`` after printing an ``NSTError`` / ``OSError`` in one line.

    Meanwhile an :class:`~nst_tf.errors.NSTWarning` is printed as one line too,
    ``program: note: ...`` (each message once)."""
    import warnings

    from nst_tf.errors import NSTWarning

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, NSTWarning):
            print(f"{program}: note: {' '.join(str(message).split())}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("default", NSTWarning)
        warnings.showwarning = show
        try:
            return function(*args, **kwargs), 0
        except (NSTError, OSError) as e:
            print_error(program, e)
            return None, 1


def main_with_fresh_flags(program, define_flags, execute, argv):
    """Parse ``argv`` (program name first) into new flags, then ``execute``; returns the exit code."""
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    try:
        extra = flag_values(list(argv))
    except flags.Error as e:
        print_error(program, flag_error_message(e))
        return 1
    if len(extra) > 1:
        print_error(program, f"unexpected arguments {extra[1:]}")
        return 1
    return execute(flag_values)


def _parse_flags(program):
    """absl's ``flags_parser`` for ``app.run``: a help flag exits with status 0 after the usage;
    a bad or missing flag is one line (``program: error: ...``) and status 1."""

    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except SystemExit as e:
            if e.code == 1 and asks_for_help(argv):   # absl exits 1 after printing the usage
                raise SystemExit(0) from None
            raise
        except flags.Error as e:
            print_error(program, flag_error_message(e))
            raise SystemExit(1) from None

    return parse


def run_app(define_flags, execute, argv=None, program=None):
    """Console entry point: define the flags on the global ``FLAGS`` once, then ``app.run``.

    ``--help`` (and ``--helpfull``...) print the usage and exit with status 0; flag errors and
    unexpected arguments are one line on stderr (``program: error: ...``, status 1)."""
    program = program or (argv or sys.argv)[0]
    fresh = flags.FlagValues()
    define_flags(fresh)
    for name in fresh:
        if name in flags.FLAGS and flags.FLAGS[name].help != fresh[name].help:
            # Same name as a flag of absl or of another program: fail loudly, not later with
            # an AttributeError on a flag that was never defined.
            raise flags.DuplicateFlagError.from_flag(name, flags.FLAGS)
    if not all(name in flags.FLAGS for name in fresh):  # else: run() called twice
        define_flags(flags.FLAGS)
    for name in fresh:
        # Key flags of the main program, so `--help` lists them (absl shows the main module's).
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])

    def app_main(args):
        if len(args) > 1:
            print_error(program, f"unexpected arguments {args[1:]}")
            return 1
        return execute(flags.FLAGS)

    app.run(app_main, argv=argv, flags_parser=_parse_flags(program))


def entry_points(program, define_flags, execute):
    """``(main, run)`` for a CLI module; see the module docstring."""

    def main(argv=None):
        """Run with fresh flags (``argv`` starts with the program name); returns the exit code."""
        return main_with_fresh_flags(program, define_flags, execute,
                                     sys.argv if argv is None else argv)

    def run(argv=None):
        """Console entry point: parse the command line into the global flags and exit."""
        run_app(define_flags, execute, argv, program=program)

    return main, run


def define_tiling_flags(flag_values):
    """``--tile_size``, ``--statistics`` and ``--thumbnail_size``: stylize by patches
    (:mod:`nst_tf.patches`), streaming the output to disk."""
    flags.DEFINE_string(
        "tile_size", None,
        "Stylize by patches whose cores are this many pixels wide (a multiple of the network's "
        "stride: 4 for pastiche / arbitrary networks, 8 for AdaIN), for images too large to "
        "stylize at once; the output streams to disk. Default (or none): the whole image at "
        "once.", flag_values=flag_values)
    flags.DEFINE_enum(
        "statistics", "thumbnail", ["thumbnail", "exact"],
        "With --tile_size, the instance-norm statistics of every patch: thumbnail (those of a "
        "copy downscaled to --thumbnail_size, one small extra pass) or exact (the whole "
        "image's, one pass over the patches per normalization layer: the output equals "
        "whole-image stylization).", flag_values=flag_values)
    flags.DEFINE_integer("thumbnail_size", 1024,
                         "Longest side of the thumbnail of --statistics=thumbnail.",
                         flag_values=flag_values)
    flags.register_multi_flags_validator(["tile_size", "statistics", "thumbnail_size"],
                                         _check_tiling_flags, flag_values=flag_values)


def _check_tiling_flags(values):
    """``--statistics`` and ``--thumbnail_size`` mean nothing without ``--tile_size``: refuse
    them rather than ignore them (the whole image at once is what ``exact`` reproduces)."""
    if values["tile_size"] is None or values["tile_size"].strip().lower() in ("", "none"):
        given = [f"--{name}={values[name]}" for name, default in
                 (("statistics", "thumbnail"), ("thumbnail_size", 1024))
                 if values[name] != default]
        if given:
            one = len(given) == 1
            raise flags.ValidationError(
                f"{' and '.join(given)} only {'applies' if one else 'apply'} with --tile_size "
                "(stylizing by patches); without it the whole image is stylized at once, "
                f"exactly: add --tile_size=N or drop {'it' if one else 'them'}")
    return True


def tiling_options(flag_values):
    """The options of :func:`nst_tf.stylize_to_file` from the flags of
    :func:`define_tiling_flags`; a bad ``--tile_size`` raises the
    :class:`~nst_tf.errors.ConfigError` of :func:`nst_tf.grid.parse_tile_size` (the message
    nst-stylize gives for the same value). Call it before loading a model."""
    from nst_tf.grid import parse_tile_size

    return {"tile_size": parse_tile_size(flag_values.tile_size),
            "statistics": flag_values.statistics, "thumbnail_size": flag_values.thumbnail_size}
