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
    assert "(the --model of this run)" in lines[0]
    assert tree(tmp_path) == before


# --- Every program: an output that is one of its inputs is refused, before any work ----------------

def _picture(path, seed, size=(32, 40)):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder of what the programs read: photos, style images, a frames folder, a tiny
    .keras model and a Magenta checkpoint (made once: the refusals below read none of them)."""
    from nst_tf.networks import johnson_network

    folder = tmp_path_factory.mktemp("inputs")
    for name, seed in (("p.png", 0), ("s.png", 1), ("t.png", 2), ("out/p_masked.png", 3),
                       ("out/b_0.png", 4), ("frames/frame_001.png", 5),
                       ("frames/frame_002.png", 6), ("photos/a.png", 7),
                       ("style/0.png", 8), ("style/1.png", 9)):
        _picture(str(folder / name), seed)
    johnson_network(alpha=0.25, num_residual=1).save(str(folder / "out" / "m.keras"))
    os.mkdir(folder / "ckpt")
    write_checkpoint(random_pastiche(2, alpha=0.25, seed=0), str(folder / "ckpt" / "model.ckpt"))
    os.mkdir(folder / "notes")
    (folder / "notes" / "todo.txt").write_text("my notes\n")
    return folder


#: ``(program, arguments, words of the one error line)``, run from the inputs folder: one
#: command per program as typed; the outputs name an input directly, through ``..`` or as a
#: folder holding it.
AS_TYPED = [
    ("nst-stylize", ["--content=p.png", "--style=s.png", "--output=p.png", "--steps=1"],
     ["--output=p.png would replace p.png (the --content of this run)"]),
    ("nst-reconstruct", ["--image=p.png", "--layer=relu1_1", "--output=photos/../p.png"],
     ["would replace p.png (the --image of this run)"]),
    ("nst-transform", ["--checkpoint=ckpt/model.ckpt", "--input_image=out/b_0.png",
                       "--output_dir=out", "--output_basename=b"],
     ["--output_dir=out/b_0.png would replace out/b_0.png (the --input_image of this run)"]),
    ("nst-adain", ["--content=p.png", "--style=s.png,t.png", "--mask=out/p_masked.png",
                   "--output=out"],
     ["would replace out/p_masked.png (the --mask of this run)"]),
    ("nst-video", ["--input=frames", "--output=frames", "--overwrite"],
     ["output=frames would replace frames (the input of this run)"]),
    ("nst-export", ["--model=out/m.keras", "--output=out/m.keras"],
     ["--output=out/m.keras would replace out/m.keras (the --model of this run)"]),
    ("nst-stylize-dataset", ["--content=photos", "--output=out", "--model=out/m.keras"],
     ["out would replace ", "out/m.keras (the model of this run)"]),
    ("nst-train", ["--content_images=photos", "--style_images=style/*.png", "--weights=random",
                   "--train_dir=runs", "--export_saved_model=style", "--train_steps=1"],
     ["--export_saved_model=style would replace style/", "(the --style_images of this run)"]),
]

#: The same in this process (``main(argv)``), for the ways a path can name the same file.
IN_PROCESS = [
    ("stylize", ["--content=p.png", "--style=s.png", "--output=link-to-s.png"],
     ["would replace s.png (the --style of this run)"]),
    ("stylize", ["--content=p.png", "--style=s.png", "--output=p2.png", "--checkpoint_every=1",
                 "--checkpoint=hard-link-to-p.gif"],
     ["--checkpoint=hard-link-to-p.gif would replace p.png (the --content of this run)"]),
    ("video", ["--input=p.png", "--output=hard-link-to-p.gif", "--overwrite"],
     ["would replace p.png (the input of this run)"]),
    ("export", ["--model=out/m.keras", "--output=notes", "--format=saved_model"],
     ["notes is a folder with other files in it (no saved_model.pb)"]),
    ("train", ["--content_images=photos", "--style_images=style/*.png", "--weights=random",
               "--train_dir=runs", "--export_saved_model=notes", "--train_steps=1"],
     ["notes is a folder with other files in it (no saved_model.pb)"]),
]


def _files(folder):
    return {path: open(folder / path, "rb").read() for path in tree(folder)
            if os.path.isfile(folder / path)}


@pytest.fixture(scope="module")
def linked(inputs):
    os.symlink("s.png", inputs / "link-to-s.png")
    os.link(inputs / "p.png", inputs / "hard-link-to-p.gif")
    return inputs


@pytest.mark.slow
def test_every_program_refuses_an_output_that_is_an_input(linked):
    """As typed, all at once (each is a TensorFlow start-up, not a run): exit 1, one error line,
    and not a byte of the inputs changed nor a file added."""
    before = _files(linked)
    started = [(case, subprocess.Popen(console(case[0]) + case[1], cwd=linked, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV))
               for case in AS_TYPED]
    failures = []
    for (program, args, words), process in started:
        _, err = process.communicate(timeout=600)
        lines = err.strip().splitlines()
        if not (process.returncode == 1 and len(lines) == 1
                and lines[0].startswith(f"{program}: error: ")
                and all(word in lines[0] for word in words)):
            failures.append(f"{program} {' '.join(args)}: exit {process.returncode}: "
                            f"{err[-600:]}")
    assert not failures, "\n".join(failures)
    assert _files(linked) == before


@pytest.mark.parametrize("program, args, words", IN_PROCESS)
def test_links_and_folders_are_refused_too(linked, monkeypatch, capsys, program, args, words):
    import importlib

    monkeypatch.chdir(linked)
    before = _files(linked)
    module = importlib.import_module(f"nst_tf.cli.{program}")
    assert module.main([f"nst-{program}", *args]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"nst-{program}: error: "), lines
    assert all(word in lines[0] for word in words), lines[0]
    assert _files(linked) == before
