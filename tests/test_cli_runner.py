"""The shared absl plumbing of the CLIs."""

import pytest
from absl import flags

from nst_tf.cli import runner


def test_a_flag_that_clashes_with_absl_is_an_error_not_a_silent_skip():
    def define(fv):
        flags.DEFINE_string("log_dir", None, "a clash with absl.logging's --log_dir",
                            flag_values=fv)

    with pytest.raises(flags.DuplicateFlagError, match="log_dir"):
        runner.run_app(define, lambda fv: 0, ["prog"])


def test_run_twice_in_one_process_reuses_the_flags(capsys):
    def define(fv):
        flags.DEFINE_integer("runner_test_n", 1, "a number", flag_values=fv)

    seen = []
    for value in (3, 4):
        with pytest.raises(SystemExit) as exit_info:
            runner.run_app(define, lambda fv: seen.append(fv.runner_test_n) or 0,
                           ["prog", f"--runner_test_n={value}"])
        assert exit_info.value.code == 0
    assert seen == [3, 4]


def test_main_reports_nst_errors_in_one_line(capsys):
    from nst_tf.errors import ImageError

    def execute(fv):
        _, code = runner.call_reporting_errors("prog", _raise, ImageError("bad\nimage  file"))
        return code

    def _raise(error):
        raise error

    assert runner.main_with_fresh_flags("prog", lambda fv: None, execute, ["prog"]) == 1
    assert capsys.readouterr().err == "prog: error: bad image file\n"


def test_help_lists_the_program_flags_and_exits_0(capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["prog_help_test"])

    def define(fv):
        flags.DEFINE_string("runner_help_flag", None, "a flag --help must list", flag_values=fv)

    with pytest.raises(SystemExit) as exit_info:
        runner.run_app(define, lambda fv: 0, ["prog_help_test", "--help"])
    assert exit_info.value.code == 0
    assert "--runner_help_flag: a flag --help must list" in capsys.readouterr().out


def _run_in_this_process(program, args, capsys):
    """``(exit status, stdout, stderr)`` of ``program``'s console entry point (its ``run``, as
    the installed script calls it) here; the flags it defined on absl's global ``FLAGS`` are
    removed after, so the next program defines its own (several share names: ``--output``)."""
    import importlib

    from absl import app

    from nst_tf.cli.launch import PROGRAMS

    app.define_help_flags()   # absl's own flags (--help...), defined once by its first run
    before = set(flags.FLAGS)
    try:
        with pytest.raises(SystemExit) as exit_info:
            importlib.import_module(f"nst_tf.cli.{PROGRAMS[program]}").run([program, *args])
        captured = capsys.readouterr()
        return exit_info.value.code, captured.out, captured.err
    finally:
        for name in set(flags.FLAGS) - before:
            if name in flags.FLAGS:   # a short name goes with its long one
                delattr(flags.FLAGS, name)


def test_every_program_answers_help_with_status_0_and_a_missing_flag_in_one_line(capsys):
    """``nst-x --help`` prints the usage with the program's flags and exits 0 (absl exits 1);
    with no flags, each program says in one line which required flags are missing (not absl's
    multi-line FATAL). Every program's entry point in this process (one TensorFlow start-up);
    the console scripts themselves in test_console_scripts_answer_help_and_missing_flags."""
    from programs import PROGRAMS

    for name in PROGRAMS:
        code, out, err = _run_in_this_process(name, ["--help"], capsys)
        assert code == 0, (name, err[-2000:])
        assert "flags:" in out and "--" in out, name
        assert "Traceback" not in err, (name, err[-2000:])
        code, out, err = _run_in_this_process(name, [], capsys)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 1 and len(lines) == 1, (name, err[-2000:])
        assert lines[0].startswith(f"{name}: error: missing --"), (name, lines)


@pytest.mark.slow
def test_console_scripts_answer_help_and_missing_flags():
    """Two installed scripts as typed (the launcher's quiet log and exit statuses included)."""
    import subprocess

    from programs import start_program

    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = {("nst-train", "--help"): start_program("nst-train", "--help", **pipes),
               ("nst-prefer",): start_program("nst-prefer", **pipes)}
    results = {args: (p.communicate(timeout=300), p.returncode) for args, p in started.items()}
    (out, err), code = results[("nst-train", "--help")]
    assert code == 0 and "flags:" in out and "--train_dir" in out, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    (out, err), code = results[("nst-prefer",)]
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("nst-prefer: error: missing --"), \
        err[-2000:]


def test_flag_errors_are_one_line():
    error = flags.IllegalFlagValueError(
        "flag --a=None: Flag --a must have a value other than None.\n"
        "flag --b=None: Flag --b must have a value other than None.")
    assert runner.flag_error_message(error) == "missing --a, --b"
    assert runner.flag_error_message(flags.Error("Unknown command line\nflag 'x'")) == \
        "Unknown command line flag 'x'"
    assert runner.asks_for_help(["p", "--x=1", "--helpfull"])
    assert not runner.asks_for_help(["p", "--", "--help"])
    assert not runner.asks_for_help(["p", "--helpme=1"])
