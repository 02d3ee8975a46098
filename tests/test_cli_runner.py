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


@pytest.mark.slow
def test_every_program_answers_help_with_status_0_and_a_missing_flag_in_one_line():
    """``nst-x --help`` prints the usage and exits 0 (absl exits 1); with no flags, each program
    says in one line which required flags are missing (not absl's multi-line FATAL)."""
    import subprocess

    from programs import PROGRAMS, start_program

    def run_all(*args):
        processes = {name: start_program(name, *args, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
                     for name in PROGRAMS}
        return {name: (p.communicate(timeout=300), p.returncode)
                for name, p in processes.items()}

    for name, ((out, err), code) in run_all("--help").items():
        assert code == 0, (name, err[-2000:])
        assert "flags:" in out and "--" in out, name
        assert "Traceback" not in err, (name, err[-2000:])
    for name, ((out, err), code) in run_all().items():
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 1 and len(lines) == 1, (name, err[-2000:])
        assert lines[0].startswith(f"{name}: error: missing --"), (name, lines)


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
