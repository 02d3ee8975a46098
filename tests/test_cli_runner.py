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


def test_help_lists_the_program_flags(capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["prog_help_test"])

    def define(fv):
        flags.DEFINE_string("runner_help_flag", None, "a flag --help must list", flag_values=fv)

    with pytest.raises(SystemExit):
        runner.run_app(define, lambda fv: 0, ["prog_help_test", "--help"])
    assert "--runner_help_flag: a flag --help must list" in capsys.readouterr().out
