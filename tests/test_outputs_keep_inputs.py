"""Programs whose output could coincide with what the run reads or resumes from (issue 28):
an export onto the train_dir (or a folder holding it) or a Magenta export into it, and an
nst-export output onto the checkpoint it exports, are refused before any work, and nothing
is touched. (nst-stylize's --checkpoint and nst-prefer's --db: test_gatys_checkpoint_files.py,
test_preference_durability.py.)"""

import os
import subprocess

import numpy as np
import pytest
from PIL import Image

from magenta_compat.checkpoint import write_checkpoint
from nst_tf.cli import export, train

from conftest import console
from pastiche_helpers import random_pastiche

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def tree(folder):
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, dirs, names in os.walk(folder) for name in dirs + names)


@pytest.fixture
def images(tmp_path):
    """Tiny content and style folders: a run with them takes seconds (if it is not refused)."""
    rng = np.random.default_rng(0)
    for folder, count, size in (("content", 4, (36, 40, 3)), ("style", 2, (32, 32, 3))):
        (tmp_path / folder).mkdir()
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(
                tmp_path / folder / f"{i}.png")
    return [f"--content_images={tmp_path / 'content'}",
            f"--style_images={tmp_path / 'style' / '*.png'}", "--weights=random",
            "--alpha=0.25", "--batch_size=2", "--image_size=32", "--logdir=", "--verbose=0",
            "--train_steps=1"]


def test_a_saved_model_onto_a_folder_holding_the_train_dir_from_the_console(tmp_path, images):
    """It trained, then the SavedModel replaced runs/ and the checkpoints in runs/cin."""
    os.mkdir(tmp_path / "runs")
    before = tree(tmp_path)
    done = subprocess.run(console("nst-train") + images + [
        f"--train_dir={tmp_path / 'runs' / 'cin'}", f"--export_saved_model={tmp_path / 'runs'}"],
        capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"nst-train: error: --export_saved_model={tmp_path / 'runs'} would replace "
        f"{tmp_path / 'runs' / 'cin'} (the --train_dir of this run, with its checkpoints); "
        "choose another --export_saved_model"]
    assert tree(tmp_path) == before


@pytest.mark.parametrize("flag, where, message", [
    ("export_saved_model", "runs/cin", "would replace runs/cin"),
    ("export_saved_model", "runs/cin/../cin/", "would replace runs/cin"),
    ("export_magenta", "runs/cin/model.ckpt", "its 'checkpoint' file would replace the one this "
                                              "run resumes from"),
    ("export_magenta", "link/model.ckpt", "its 'checkpoint' file would replace"),
])
def test_exports_that_would_destroy_the_train_dir(tmp_path, images, monkeypatch, capsys,
                                                  flag, where, message):
    monkeypatch.chdir(tmp_path)
    os.makedirs("runs/cin")
    os.symlink("runs/cin", "link")
    before = tree(tmp_path)
    assert train.main(["nst-train", *images, "--train_dir=runs/cin", f"--{flag}={where}"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nst-train: error: ") and message in lines[0]
    assert tree(tmp_path) == before


@pytest.mark.parametrize("checkpoint, output", [
    ("ckpt", "ckpt"),                        # a checkpoint folder replaced by the SavedModel
    ("ckpt/model.ckpt", "ckpt"),             # a V2 prefix inside the output folder
    ("ckpt", "."),
    ("ckpt/model.ckpt", "ckpt/model.ckpt.index"),
])
def test_nst_export_onto_its_checkpoint(tmp_path, monkeypatch, capsys, checkpoint, output):
    monkeypatch.chdir(tmp_path)
    os.mkdir("ckpt")
    write_checkpoint(random_pastiche(2, alpha=0.25, seed=0), "ckpt/model.ckpt")
    before = tree(tmp_path)
    assert export.main(["nst-export", f"--checkpoint={checkpoint}", f"--output={output}",
                        "--format=saved_model"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"nst-export: error: --output={output} would "
                                                   "replace "), lines
    assert "it is the model exported" in lines[0]
    assert tree(tmp_path) == before
