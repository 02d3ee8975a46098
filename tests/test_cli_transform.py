"""nst-transform (nst_tf.cli.transform): Magenta-compatible flags, file names, formats, errors.

In-process runs use ``transform.main(argv)`` (fresh absl flags); one run goes through
``scripts/transform.py`` in a subprocess. Pixels are checked against Magenta's conversion
``np.uint8(x * 255.0)`` of the stylized float image.
"""

import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from magenta_compat.checkpoint import write_checkpoint
from nst_tf import images
from nst_tf.cli import transform
from nst_tf.models.pastiche.family import stylize
from tests.pastiche_helpers import random_pastiche

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
N = 4


@pytest.fixture(scope="module")
def net():
    return random_pastiche(N, seed=3)


@pytest.fixture(scope="module")
def files(net, tmp_path_factory):
    """A V1 checkpoint of ``net`` and a 30x41 content PNG."""
    folder = tmp_path_factory.mktemp("transform_inputs")
    checkpoint = write_checkpoint(net, str(folder / "model.ckpt"), version="V1")
    content = str(folder / "content.png")
    images.save_image(content, np.random.default_rng(0).random((30, 41, 3)))
    return {"checkpoint": checkpoint, "content": content, "folder": str(folder)}


def run_cli(files, out_dir, *extra, basename="out"):
    argv = ["nst-transform", f"--checkpoint={files['checkpoint']}",
            f"--input_image={files['content']}", f"--output_dir={out_dir}",
            f"--output_basename={basename}", *extra]
    return transform.main(argv)


def magenta_pixels(net, content, weights):
    """What Magenta's transform writes before encoding: uint8(x * 255) of the float output."""
    out = stylize(images.load_image(content), weights, model=net)
    return np.uint8(out * 255.0)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def test_list_mode_writes_real_png_with_magenta_names(net, files, tmp_path, capsys):
    assert run_cli(files, tmp_path, "--which_styles=[2, 0]") == 0
    assert sorted(os.listdir(tmp_path)) == ["out_0.png", "out_2.png"]
    assert capsys.readouterr().out.split() == [str(tmp_path / "out_2.png"),
                                               str(tmp_path / "out_0.png")]
    for style in (2, 0):
        path = tmp_path / f"out_{style}.png"
        assert read_bytes(path).startswith(PNG_MAGIC)
        pixels = np.asarray(Image.open(path))
        assert pixels.shape == (32, 44, 3)                # 4*ceil(H/4) x 4*ceil(W/4), not cropped
        np.testing.assert_array_equal(pixels, magenta_pixels(net, files["content"], style))


def test_default_which_styles_is_style_zero(net, files, tmp_path):
    assert run_cli(files, tmp_path) == 0
    assert os.listdir(tmp_path) == ["out_0.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out_0.png")),
                                  magenta_pixels(net, files["content"], 0))


def test_dict_mode_mixture_name_and_pixels(net, files, tmp_path):
    assert run_cli(files, tmp_path, "--which_styles={0: 0.1, 1: 0.1}", basename="mix") == 0
    assert os.listdir(tmp_path) == ["mix_0_100_1_100.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "mix_0_100_1_100.png")),
                                  magenta_pixels(net, files["content"], {0: 0.1, 1: 0.1}))


def test_jpeg_format(net, files, tmp_path):
    assert run_cli(files, tmp_path, "--which_styles=[1]", "--save_format=jpeg") == 0
    assert os.listdir(tmp_path) == ["out_1.jpg"]
    assert read_bytes(tmp_path / "out_1.jpg").startswith(JPEG_MAGIC)
    # JPEG is lossy: compare with Pillow's encoding (quality 95) of Magenta's pixels.
    reference = io.BytesIO()
    Image.fromarray(magenta_pixels(net, files["content"], 1)).save(reference, "JPEG", quality=95)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out_1.jpg")),
                                  np.asarray(Image.open(reference)))


def test_checkpoint_folder_matching_flags_and_new_output_dir(files, tmp_path):
    out_dir = tmp_path / "new" / "folder"
    assert run_cli(files, out_dir, f"--num_styles={N}", "--alpha=0.25",
                   "--jit_compile=false") == 0
    assert os.listdir(out_dir) == ["out_0.png"]
    argv = ["nst-transform", f"--checkpoint={files['folder']}",
            f"--input_image={files['content']}", f"--output_dir={tmp_path}",
            "--output_basename=dir"]
    assert transform.main(argv) == 0 and os.path.exists(tmp_path / "dir_0.png")


@pytest.mark.parametrize("extra, fragment", [
    (["--num_styles=32"], f"num_styles=32 was given but checkpoint .* has {N} styles"),
    (["--alpha=1.0"], "alpha=1 was given"),
    (["--which_styles=[7]"], "7 is out of range.*num_styles=4"),
    (["--which_styles={0: 0.5"], "not a Python literal"),
    (["--which_styles=3"], "must be a list"),
    (["--save_format=gif"], "save_format"),
    (["--jit_compile=maybe"], "jit_compile"),
    (["--tile_size=6"], "tile_size=6 is not a multiple of 4, the stride of the network"),
    (["--tile_size=16", "--thumbnail_size=0"], "thumbnail_size must be a positive"),
    (["--tile_size=16", "--statistics=global"], "statistics"),
])
def test_errors_are_one_line_and_write_nothing(files, tmp_path, capsys, extra, fragment):
    assert run_cli(files, tmp_path, *extra) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("nst-transform: error: ")
    assert re.search(fragment, err), err
    assert os.listdir(tmp_path) == []


def test_tile_size_streams_each_output_by_patches_with_progress(net, files, tmp_path, capsys):
    assert run_cli(files, tmp_path, "--which_styles=[2, 0]", "--tile_size=16",
                   "--statistics=exact") == 0
    assert sorted(os.listdir(tmp_path)) == ["out_0.png", "out_2.png"]
    captured = capsys.readouterr()
    assert captured.out.split() == [str(tmp_path / "out_2.png"), str(tmp_path / "out_0.png")]
    # 1 x 2 patches (partial cores shorter than the 56-px halo join the ones before them); 16
    # statistics passes and the output pass, for each of the two styles.
    assert captured.err.count("patch 1/34 (statistics 1/16)") == 2
    assert captured.err.count("patch 34/34 (output)") == 2
    for style in (2, 0):
        pixels = np.asarray(Image.open(tmp_path / f"out_{style}.png")).astype(int)
        expected = magenta_pixels(net, files["content"], style).astype(int)
        assert pixels.shape == expected.shape == (32, 44, 3)
        assert np.abs(pixels - expected).max() <= 1     # truncation of floats 1e-5 apart
        assert (pixels == expected).mean() > 0.99


def test_missing_inputs(files, tmp_path, capsys):
    argv = ["nst-transform", f"--checkpoint={tmp_path / 'nope.ckpt'}",
            f"--input_image={files['content']}", f"--output_dir={tmp_path}",
            "--output_basename=o"]
    assert transform.main(argv) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    argv[1:3] = [f"--checkpoint={files['checkpoint']}", f"--input_image={tmp_path / 'no.png'}"]
    assert transform.main(argv) == 1
    assert "image file not found" in capsys.readouterr().err
    assert transform.main(["nst-transform", f"--checkpoint={files['checkpoint']}"]) == 1
    assert "input_image" in capsys.readouterr().err


def test_script_subprocess(net, files, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    base = [sys.executable, os.path.join(ROOT, "scripts", "transform.py"),
            f"--checkpoint={files['checkpoint']}", f"--input_image={files['content']}",
            f"--output_dir={tmp_path}", "--output_basename=sub"]
    ok = subprocess.run(base + ["--which_styles={3: 1.0}"], capture_output=True, text=True,
                        env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    path = tmp_path / "sub_3_1000.png"
    assert ok.stdout.strip().splitlines()[-1] == str(path)
    np.testing.assert_array_equal(np.asarray(Image.open(path)),
                                  magenta_pixels(net, files["content"], 3))
    bad = subprocess.run(base + ["--which_styles=[99]"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("nst-transform: error: ")


@pytest.mark.magenta
def test_end_to_end_against_magenta(tmp_path):
    """A checkpoint saved by Magenta's own graph: nst-transform's outputs in list and dict mode
    equal what Magenta's graph computes for the same image (floats ≤ 5e-5, the moments being
    summed in another order, see ``tests/test_magenta_parity.py``; so the truncated uint8 pixels
    differ by at most 1 where a value sits on a boundary)."""
    from tests.magenta_reference import MagentaTransformer

    reference = MagentaTransformer(num_styles=5, alpha=0.25, seed=11)
    checkpoint = reference.save(str(tmp_path / "magenta.ckpt"), "V1")
    content = str(tmp_path / "content.png")
    images.save_image(content, np.random.default_rng(1).random((27, 34, 3)))
    image = images.load_image(content)[None]
    out_dir = tmp_path / "out"
    base = ["nst-transform", f"--checkpoint={checkpoint}", f"--input_image={content}",
            f"--output_dir={out_dir}", "--output_basename=m"]
    assert transform.main(base + ["--which_styles=[4, 1]"]) == 0
    assert transform.main(base + ["--which_styles={0: 0.3, 2: 0.9}"]) == 0
    list_outputs = reference.run_list(image, [4, 1])           # Magenta's list mode (labels)
    expected = {"m_4.png": (4, list_outputs[0]), "m_1.png": (1, list_outputs[1]),
                "m_0_300_2_900.png": ({0: 0.3, 2: 0.9},
                                      reference.run_mixture(image, [0.3, 0, 0.9, 0, 0])[0])}
    assert sorted(os.listdir(out_dir)) == sorted(expected)
    for name, (weights, theirs) in expected.items():
        ours = stylize(image[0], weights, model=checkpoint)
        np.testing.assert_allclose(ours, theirs, atol=5e-5, rtol=0)
        pixels = np.asarray(Image.open(out_dir / name)).astype(int)
        assert pixels.shape == theirs.shape == (28, 36, 3)
        assert np.abs(pixels - np.uint8(theirs * 255.0)).max() <= 1


# Tolerances about twice the errors measured (this CPU, AVX512-BF16): --fast mean 0.00047 grey
# levels, max 1 (a truncated pixel on a boundary); bfloat16 mean 1.07, max 7.
@pytest.mark.parametrize("flag, max_mean_diff, max_diff", [
    ("--fast", 0.001, 1), ("--precision=bfloat16", 2.2, 14)])
def test_speed_flags(net, files, tmp_path, flag, max_mean_diff, max_diff):
    """--fast: float32 rounding only (a truncated pixel moves by at most 1 grey level);
    --precision=bfloat16: about 1 grey level on average."""
    assert run_cli(files, tmp_path, "--which_styles=[1]", flag) == 0
    pixels = np.asarray(Image.open(tmp_path / "out_1.png")).astype(float)
    exact = magenta_pixels(net, files["content"], 1).astype(float)
    assert pixels.shape == exact.shape
    assert np.mean(np.abs(pixels - exact)) < max_mean_diff
    assert np.max(np.abs(pixels - exact)) <= max_diff
