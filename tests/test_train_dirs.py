"""Every mode's train_dir is a model, and nst-export takes every model it documents.

A tiny run of each ``nst-train`` mode (random weights, one step) is trained once; then the
train_dirs are used as the docs show: ``nst_tf.stylize(model=train_dir)``, ``nst-transform
--checkpoint=runs/cin``, ``nst-train --mode=finetune --checkpoint=runs/cin``, ``nst-export
--checkpoint=runs/...``, each program run as a user types it (the console script).
"""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import nst_tf
from nst_tf import images, training
from nst_tf.errors import ConfigError
from nst_tf.export import export_keras, export_magenta_checkpoint, export_tflite

from programs import assert_clean_output, error_line, run_program, run_programs

pytestmark = pytest.mark.slow

PHOTO = np.random.default_rng(5).random((36, 44, 3)).astype(np.float32)

#: mode -> the options of its tiny run (random weights, one step of an eager learning rate:
#: the trained weights are far from the initial ones).
RUNS = {
    "cin": dict(alpha=0.25, image_size=32, batch_size=2),
    "johnson": dict(alpha=0.25, image_size=32, batch_size=2),
    "texture": dict(image_size=32, batch_size=2, network_options=dict(num_scales=3, channels=4)),
    "adain": dict(alpha=1 / 16, image_size=32, batch_size=1),
    "arbitrary": dict(alpha=0.25, depth_multiplier=0.25, image_size=48, batch_size=1),
    "distill": dict(depth_multiplier=0.35, image_size=48, batch_size=1),   # teacher: arbitrary's
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_dirs")
    rng = np.random.default_rng(0)
    for folder, count, size in (("content", 4, (72, 80)), ("styles", 2, (72, 72))):
        (root / folder).mkdir()
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
                root / folder / f"{i}.png")
    trained = {"root": root, "content": str(root / "content"),
               "style": str(root / "styles" / "0.png")}
    for mode, options in RUNS.items():
        styles = str(root / "styles") if mode in ("cin", "adain", "arbitrary", "distill") \
            else trained["style"]
        content = None if mode == "texture" else trained["content"]
        if mode == "distill":      # the teacher is the arbitrary run's train_dir
            options = dict(options, checkpoint=trained["arbitrary"][0])
        network = training.train(content, styles, str(root / mode), mode=mode, train_steps=1,
                                 weights="random" if mode in ("arbitrary", "distill") else None,
                                 learning_rate=0.05, verbose=0, log_dir="", save_every=0,
                                 **options)
        trained[mode] = (str(root / mode),
                         training.recipe_class(mode).inference_network(network))
    return trained


def _run_model(model, mode, style_path):
    """What a user gets from ``model`` for PHOTO (texture networks: a sample)."""
    if mode == "texture":
        return nst_tf.synthesize(model, (24, 32), seed=3)
    style = {"cin": 1, "adain": style_path, "arbitrary": style_path,
             "distill": style_path}.get(mode)
    small = {"style_size": 64} if mode in ("adain", "arbitrary", "distill") else {}
    return nst_tf.stylize(PHOTO, style, model=model, crop=True, **small)


def test_every_mode_train_dir_is_a_model_for_stylize(runs):
    """``nst_tf.stylize(model=train_dir)`` runs the trained network: the train_dir's network
    has the trained weights (not those of a fresh one built from the run's config) and gives
    the trained network's image."""
    for mode in RUNS:
        train_dir, network = runs[mode]
        loaded = training.load_train_dir(train_dir)
        trained = network.get_weights()
        for ours, theirs in zip(loaded.get_weights(), trained):
            np.testing.assert_array_equal(ours, theirs, err_msg=mode)
        recipe = training.recipe_class(mode)
        fresh = recipe.network_from_config(training.read_run_config(train_dir))
        assert any(not np.array_equal(a, b) for a, b in
                   zip(recipe.inference_network(fresh).get_weights(), trained)), mode
        np.testing.assert_allclose(_run_model(train_dir, mode, runs["style"]),
                                   _run_model(network, mode, runs["style"]), atol=1e-5,
                                   err_msg=mode)


def test_cin_train_dir_with_nst_transform_finetune_and_nst_export(runs, tmp_path):
    train_dir, network = runs["cin"]
    photo = str(tmp_path / "photo.png")
    images.save_image(photo, PHOTO)
    tuned = tmp_path / "tuned"
    transformed, finetuned, exported = run_programs(   # the three read the train_dir only
        ("nst-transform", f"--checkpoint={train_dir}", "--which_styles=[0,1]",
         f"--input_image={photo}", f"--output_dir={tmp_path / 'out'}", "--output_basename=p"),
        ("nst-train", "--mode=finetune", f"--checkpoint={train_dir}",
         f"--style_images={runs['style']}", f"--content_images={runs['content']}",
         f"--train_dir={tuned}", "--weights=random", "--batch_size=2", "--image_size=32",
         "--train_steps=1", "--verbose=0"),
        ("nst-export", f"--checkpoint={train_dir}", f"--output={tmp_path / 'sm'}"))
    done = transformed
    assert done.returncode == 0, done.stderr[-3000:]
    assert_clean_output(done)
    expected = nst_tf.stylize(images.load_image(photo), "[0, 1]", model=network)
    for k in (0, 1):
        ours = np.asarray(Image.open(tmp_path / "out" / f"p_{k}.png"), np.int16)
        theirs = images.float_to_uint8(expected[k], rounding="truncate").astype(np.int16)
        assert np.abs(ours - theirs).max() <= 1, k

    done = finetuned
    assert done.returncode == 0, done.stderr[-3000:]
    assert_clean_output(done)
    old, new = network.get_layer("contract_conv1_norm"), \
        training.load_train_dir(str(tuned)).get_layer("contract_conv1_norm")
    assert (old.num_styles, new.num_styles) == (2, 3)
    for a, b in zip(old.get_weights(), new.get_weights()):   # the trained rows are kept
        np.testing.assert_array_equal(a, b[:2])

    done = exported
    assert done.returncode == 0, done.stderr[-3000:]
    assert_clean_output(done)
    served = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    out = served(image=tf.constant(PHOTO[None]), style_weights=tf.constant([0.0, 1.0]))
    np.testing.assert_allclose(out["stylized_image"].numpy()[0, :36, :44],
                               nst_tf.stylize(PHOTO, 1, model=network, crop=True), atol=1e-5)


def test_nst_export_takes_single_style_models_and_names_the_program_for_others(runs,
                                                                              tmp_path):
    """The export page's single-style export works from a ``.keras`` file and a train_dir
    (SavedModel and TFLite); AdaIN and texture models are one line that says how to run them;
    ``export_tflite`` raises a ConfigError, not a raw ValueError."""
    train_dir, network = runs["johnson"]
    keras_file = export_keras(network, tmp_path / "johnson.keras")
    others = {mode: (program, output, export_keras(runs[mode][1], tmp_path / f"{mode}.keras"))
              for mode, program, output in (("adain", "nst-adain", "x_sm"),
                                            ("texture", "nst_tf.synthesize", "x.tflite"))}
    done, as_tflite, *refused = run_programs(
        ("nst-export", f"--checkpoint={keras_file}", f"--output={tmp_path / 'j_sm'}"),
        ("nst-export", f"--checkpoint={train_dir}", f"--output={tmp_path / 'j.tflite'}",
         "--image_size=32"),
        *[("nst-export", f"--checkpoint={model}", f"--output={tmp_path / output}")
          for _, output, model in others.values()])
    assert done.returncode == 0, done.stderr[-3000:]
    served = tf.saved_model.load(str(tmp_path / "j_sm")).signatures["serving_default"]
    reference = np.asarray(network(PHOTO[None]))
    np.testing.assert_allclose(served(image=tf.constant(PHOTO[None]))["stylized_image"].numpy(),
                               reference, atol=1e-5)
    done = as_tflite
    assert done.returncode == 0, done.stderr[-3000:]
    assert_clean_output(done)
    interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "j.tflite"))
    interpreter.allocate_tensors()
    square = PHOTO[None, :32, :32]
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], square)
    interpreter.invoke()
    np.testing.assert_allclose(
        interpreter.get_tensor(interpreter.get_output_details()[0]["index"]),
        np.asarray(network(square)), atol=1e-4)

    for (mode, (program, _, _)), done in zip(others.items(), refused):
        line = error_line(done, "nst-export")
        assert f"{mode} models have no SavedModel / TFLite export" in line and \
            program in line and len(line) < 400, line
        with pytest.raises(ConfigError, match=program):
            export_tflite(runs[mode][1], str(tmp_path / "y.tflite"), image_size=32)
    assert not os.path.exists(tmp_path / "x_sm") and not os.path.exists(tmp_path / "x.tflite")


def test_nst_transform_names_the_programs_for_a_single_style_model(runs, tmp_path, capsys):
    from nst_tf.cli import transform

    assert transform.main(["nst-transform", f"--checkpoint={runs['johnson'][0]}",
                           f"--input_image={runs['style']}", f"--output_dir={tmp_path}",
                           "--output_basename=j"]) == 1
    line = capsys.readouterr().err.strip()
    assert line.startswith("nst-transform: error: ") and "\n" not in line
    assert "is a single-style model" in line and "nst-video" in line, line


def test_export_folders_are_made_before_training_and_a_bad_one_stops_it(runs, tmp_path,
                                                                       capsys):
    """``--export_magenta=arbitrary/model.ckpt`` (the docs' example) and ``--export_keras`` into
    folders that do not exist yet: made before the first step; a path that cannot be written
    is one line before any training (no train_dir appears)."""
    common = [f"--content_images={runs['content']}", f"--style_images={runs['root'] / 'styles'}",
              "--weights=random", "--batch_size=2", "--image_size=32", "--train_steps=1",
              "--alpha=0.25", "--verbose=0"]
    done = run_program("nst-train", "--mode=cin", "--train_dir=runs/cin", *common,
                       "--export_magenta=arbitrary/model.ckpt", "--export_keras=nodir/cin.keras",
                       "--export_saved_model=deep/er/cin_sm", "--strategy=mirrored",
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_clean_output(done)     # no "Using MirroredStrategy", no "Assets written"
    assert os.path.isfile(tmp_path / "arbitrary" / "model.ckpt")
    assert os.path.isfile(tmp_path / "nodir" / "cin.keras")
    assert os.path.isdir(tmp_path / "deep" / "er" / "cin_sm")
    from nst_tf.cli import train as cli

    (tmp_path / "afile").write_text("not a folder")
    bad = tmp_path / "runs" / "bad"
    for flag, message in ((f"--export_keras={tmp_path / 'afile' / 'x.keras'}",
                           "afile is a file, not a folder"),
                          ("--export_keras=x.h5", "must name a .keras file")):
        assert cli.main(["nst-train", "--mode=cin", f"--train_dir={bad}", *common, flag]) == 1
        line = capsys.readouterr().err.strip()
        assert line.startswith("nst-train: error: ") and message in line, line
    assert not os.path.exists(bad)


def test_a_local_folder_named_like_a_preset_is_used_and_said(runs, tmp_path):
    """``--checkpoint=arbitrary`` with a folder ``arbitrary/`` here (what
    ``--export_magenta=arbitrary/model.ckpt`` makes): the local folder is used, and one note
    line says so (the documented rule: an existing path wins over a preset)."""
    network = runs["arbitrary"][1]
    (tmp_path / "arbitrary").mkdir()
    export_magenta_checkpoint(network, str(tmp_path / "arbitrary" / "model.ckpt"))
    photo = str(tmp_path / "photo.png")
    images.save_image(photo, PHOTO)
    done = run_program("nst-transform", "--checkpoint=arbitrary",
                       f"--style_images={runs['style']}", f"--input_image={photo}",
                       "--output_dir=out", "--output_basename=p", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    notes = [line for line in done.stderr.splitlines() if line.startswith("nst-transform: note:")]
    assert len(notes) == 1 and "'arbitrary' is the local folder" in notes[0] \
        and "instead of the preset" in notes[0], done.stderr
    written = images.load_image(str(tmp_path / "out" / "p_stylized_0_0.png"))
    expected = nst_tf.stylize(images.load_image(photo), runs["style"], model=network)
    assert np.abs(written - expected).max() <= 1.5 / 255
