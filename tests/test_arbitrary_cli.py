"""nst-transform and nst-export with arbitrary-style models (Magenta-like names, errors, TFLite)."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from magenta_compat.arbitrary import write_arbitrary_checkpoint
from nst_tf import images
from nst_tf.models.arbitrary.family import stylize
from nst_tf.cli import export, transform
from nst_tf.networks import style_predictor_of, transformer_of
from test_arbitrary_api import random_arbitrary


@pytest.fixture(scope="module")
def net():
    return random_arbitrary()


@pytest.fixture(scope="module")
def files(net, tmp_path_factory):
    folder = tmp_path_factory.mktemp("arbitrary_cli")
    rng = np.random.default_rng(0)
    paths = {"checkpoint": write_arbitrary_checkpoint(net, str(folder / "model.ckpt")),
             "content": str(folder / "photo.png")}
    images.save_image(paths["content"], rng.random((30, 41, 3)))
    for name in ("wave", "dots"):
        paths[name] = str(folder / f"{name}.png")
        images.save_image(paths[name], rng.random((64, 72, 3)))
    return paths


def run(files, out_dir, *extra):
    return transform.main(["nst-transform", f"--checkpoint={files['checkpoint']}",
                           f"--input_image={files['content']}", f"--output_dir={out_dir}",
                           "--output_basename=photo", "--style_image_size=64", *extra])


def expected_pixels(net, files, style, **options):
    out = stylize(images.load_image(files["content"]), style, net, style_size=64, **options)
    return np.uint8(out * 255.0)


def test_one_output_per_style(net, files, tmp_path, capsys):
    assert run(files, tmp_path, f"--style_images={files['wave']},{files['dots']}") == 0
    names = sorted(os.listdir(tmp_path))
    assert names == ["photo_stylized_dots_0.png", "photo_stylized_wave_0.png"]
    printed = capsys.readouterr().out.split()
    assert sorted(os.path.basename(p) for p in printed) == names
    for style in ("wave", "dots"):
        written = np.asarray(Image.open(tmp_path / f"photo_stylized_{style}_0.png"))
        np.testing.assert_array_equal(written, expected_pixels(net, files, files[style]))


def test_tile_size_makes_the_same_files_by_patches(net, files, tmp_path, capsys):
    assert run(files, tmp_path, f"--style_images={files['wave']},{files['dots']}",
               "--style_weights=0.3,0.7", "--strength=0.5", "--tile_size=16") == 0
    name = "photo_stylized_wave_300_dots_700_0.png"
    assert os.listdir(tmp_path) == [name]
    assert "patch 2/2 (output)" in capsys.readouterr().err
    written = np.asarray(Image.open(tmp_path / name)).astype(int)
    expected = expected_pixels(net, files, [files["wave"], files["dots"]],
                               style_weights=[0.3, 0.7], strength=0.5).astype(int)
    # Thumbnail statistics of a 30x41 image are the image's own: the whole-image output.
    assert np.abs(written - expected).max() <= 1


def test_mixture_and_strengths(net, files, tmp_path):
    assert run(files, tmp_path, f"--style_images={files['wave']},{files['dots']}",
               "--style_weights=0.3,0.7", "--strength=0.5,1.0") == 0
    assert sorted(os.listdir(tmp_path)) == ["photo_stylized_wave_300_dots_700_0.png",
                                            "photo_stylized_wave_300_dots_700_1.png"]
    written = np.asarray(Image.open(tmp_path / "photo_stylized_wave_300_dots_700_0.png"))
    np.testing.assert_array_equal(written, expected_pixels(
        net, files, [files["wave"], files["dots"]], style_weights=[0.3, 0.7], strength=0.5))


@pytest.mark.parametrize("extra, message", [
    (["--style_weights=0.3"], "1 style weight"),
    (["--style_weights=0.3,-1"], "negative"),
    (["--strength=2"], "strength must be"),
    (["--which_styles=[0]"], "--style_images"),
])
def test_errors_are_one_line_and_write_nothing(files, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert run(files, out, f"--style_images={files['wave']},{files['dots']}", *extra) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("nst-transform: error:") and message in err and "\n" not in err
    assert not out.exists() or not os.listdir(out)


def test_arbitrary_checkpoint_without_style_images(files, tmp_path, capsys):
    assert run(files, tmp_path / "out") == 1
    assert "--style_images" in capsys.readouterr().err


def test_unreadable_style_file(files, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    assert run(files, tmp_path / "out", f"--style_images={broken}") == 1
    assert "broken.jpg" in capsys.readouterr().err


def test_export_tflite(net, files, tmp_path, capsys):
    output = str(tmp_path / "arb.tflite")
    assert export.main(["nst-export", f"--checkpoint={files['checkpoint']}",
                        f"--output={output}", "--image_size=24",
                        "--style_image_size=48"]) == 0
    prediction, transfer = capsys.readouterr().out.split()
    assert prediction.endswith("arb_prediction.tflite") and transfer.endswith(
        "arb_transfer.tflite")
    style = np.random.default_rng(1).random((1, 48, 48, 3), np.float32)
    content = np.random.default_rng(2).random((1, 24, 24, 3), np.float32)
    predict = tf.lite.Interpreter(prediction)
    embedding = predict.get_signature_runner()(style=style)["embedding"]
    np.testing.assert_allclose(embedding, style_predictor_of(net)(style), atol=1e-4)
    run_transfer = tf.lite.Interpreter(transfer).get_signature_runner()
    np.testing.assert_allclose(run_transfer(content=content, embedding=embedding)[
        "stylized_image"], transformer_of(net)([content, embedding]), atol=1e-4)
