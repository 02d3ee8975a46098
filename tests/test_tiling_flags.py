"""Flags of large images that were ignored or misread (issue 28): ``--statistics`` without
``--tile_size``, memory budgets that are not finite, the memory units; the warning that
``hub:`` runs a SavedModel's own graph."""

import inspect
import os
import subprocess

import pytest
from absl import flags

from nst_tf.cli import adain, runner, stylize, transform
from nst_tf.errors import ConfigError
from nst_tf.tiling import parse_memory

from conftest import ROOT, console, test_image

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
GATYS = [f"--content={test_image('content_sq.jpg')}",
         f"--style={test_image('style/doesburg_sq.jpg')}", "--size=32", "--steps=2",
         "--weights=random", "--noprogress"]


def test_statistics_without_tiles_is_refused_from_the_console(tmp_path):
    done = subprocess.run(console("nst-transform") + [
        f"--checkpoint={tmp_path / 'model.ckpt'}", f"--input_image={test_image('content_sq.jpg')}",
        f"--output_dir={tmp_path / 'out'}", "--output_basename=photo", "--which_styles=[0]",
        "--statistics=exact"], capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 1
    assert "--statistics=exact only applies with --tile_size" in done.stderr
    assert "Traceback" not in done.stderr and os.listdir(tmp_path) == []


@pytest.mark.parametrize("program, argv", [
    (transform, ["--checkpoint=model.ckpt", "--input_image=a.jpg", "--output_dir=o",
                 "--output_basename=b"]),
    (adain, ["--content=a.jpg", "--style=b.jpg"]),
])
@pytest.mark.parametrize("extra, named", [
    (["--statistics=exact"], "--statistics=exact only applies"),
    (["--thumbnail_size=512"], "--thumbnail_size=512 only applies"),
    (["--statistics=exact", "--thumbnail_size=64"],
     "--statistics=exact and --thumbnail_size=64 only apply"),
])
def test_tiling_flags_without_tiles_are_one_line(tmp_path, monkeypatch, capsys, program, argv,
                                                 extra, named):
    monkeypatch.chdir(tmp_path)
    assert program.main([program.PROGRAM, *argv, *extra]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{program.PROGRAM}: error: "), lines
    assert named in lines[0] and "add --tile_size=N" in lines[0]
    assert os.listdir(tmp_path) == []


def test_tiling_flags_with_tiles_parse():
    fv = flags.FlagValues()
    runner.define_tiling_flags(fv)
    fv(["p", "--tile_size=16", "--statistics=exact", "--thumbnail_size=64"])
    assert runner.tiling_options(fv) == {"tile_size": 16, "statistics": "exact",
                                         "thumbnail_size": 64}
    fv = flags.FlagValues()
    runner.define_tiling_flags(fv)
    fv(["p"])                                   # the defaults, without tiles: fine
    assert fv.tile_size is None


# ------------------------------------------------------------------ memory budgets
UNITS = {"B": 1, "KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9, "TB": 10 ** 12, "PB": 10 ** 15,
         "KiB": 2 ** 10, "MiB": 2 ** 20, "GiB": 2 ** 30, "TiB": 2 ** 40, "PiB": 2 ** 50}


@pytest.mark.parametrize("unit", list(UNITS))
def test_every_memory_unit_in_any_case(unit):
    for spelling in {unit, unit.lower(), unit.upper(), unit.swapcase()}:
        assert parse_memory(f"3{spelling}") == 3 * UNITS[unit]
        assert parse_memory(f" 1.5 {spelling} ") == 1.5 * UNITS[unit]
    with pytest.raises(ConfigError, match="units B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB"):
        parse_memory("3EB")


@pytest.mark.parametrize("value", ["1e400GB", "1e400", "1e300PB", float("inf"), float("nan")])
def test_a_budget_that_is_not_a_finite_number_says_so(value):
    with pytest.raises(ConfigError, match=r"is not a finite number of bytes"):
        parse_memory(value)


def test_a_budget_that_is_not_a_finite_number_from_the_console(tmp_path):
    done = subprocess.run(console("nst-stylize") + GATYS + [
        f"--output={tmp_path / 'o.png'}", "--tile_size=auto", "--max_memory=1e400GB"],
        capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "nst-stylize: error: max_memory '1e400GB' is not a finite number of bytes"]
    assert os.listdir(tmp_path) == []


def test_a_budget_in_petabytes_runs(tmp_path, capsys):
    assert stylize.main(["nst-stylize", *GATYS, f"--output={tmp_path / 'o.png'}",
                         "--tile_size=auto", "--max_memory=1PB"]) == 0
    assert os.listdir(tmp_path) == ["o.png"]


# ------------------------------------------------------------------ hub:
def test_the_docs_say_to_load_only_saved_models_you_trust():
    from nst_tf.models.arbitrary.hub import load_hub

    page = open(os.path.join(ROOT, "docs", "families", "arbitrary.md")).read()
    section = page[page.index("## TF-Hub"):]
    assert "Load only SavedModels you trust" in section[:section.index("\n## ", 1)]
    assert "Load only SavedModels you trust" in inspect.getdoc(load_hub)
