"""nst-train (nst_tf.cli.train): tiny in-process runs, resume, export, one-line errors."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from nst_tf.cli import train as cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_train")
    rng = np.random.default_rng(0)
    (root / "content").mkdir()
    (root / "style").mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(
            root / "content" / f"{i}.png")
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            root / "style" / f"{i}.png")
    return root


def _argv(folders, train_dir, *extra):
    return ["nst-train", f"--content_images={folders / 'content'}",
            f"--style_images={folders / 'style' / '*.png'}", f"--train_dir={train_dir}",
            "--weights=random", "--alpha=0.25", "--batch_size=2", "--image_size=32",
            "--logdir=", "--verbose=0", *extra]


def test_tiny_cin_run_resumes_and_exports(folders, tmp_path, capsys):
    train_dir = tmp_path / "run"
    assert cli.main(_argv(folders, train_dir, "--train_steps=2", "--save_every=1",
                          '--style_weights={"vgg_16/conv1": 1e-3, "relu2_2": 1e-3}',
                          '--content_weights={"block2_conv2": 1}')) == 0
    out = capsys.readouterr().out
    assert "done at step 2" in out
    assert tf.train.latest_checkpoint(str(train_dir)).endswith("ckpt-2")
    magenta = str(tmp_path / "magenta" / "model.ckpt")
    os.makedirs(os.path.dirname(magenta))
    assert cli.main(_argv(folders, train_dir, "--train_steps=3", f"--export_magenta={magenta}",
                          '--style_weights={"vgg_16/conv1": 1e-3, "relu2_2": 1e-3}',
                          '--content_weights={"block2_conv2": 1}')) == 0
    out = capsys.readouterr().out
    assert "done at step 3" in out and magenta in out
    shapes = tf.train.load_checkpoint(magenta).get_variable_to_shape_map()
    assert shapes["transformer/contract/conv1/InstanceNorm/gamma"] == [2, 8]


@pytest.mark.parametrize("extra,message", [
    (["--mode=finetune"], "mode 'finetune' needs --checkpoint"),
    (["--mode=johnson"], "mode 'johnson' trains one style, got 2"),
    (['--style_weights={"vgg_16/conv1": -1}'], "finite and >= 0"),
    (["--style_weights=not json"], "must be a JSON object"),
    (["--weights=/no/such/vgg.h5"], "/no/such/vgg.h5"),
    (["--batch_size=0"], "batch_size must be an integer >= 1"),
])
def test_errors_are_one_line(folders, tmp_path, capsys, extra, message):
    assert cli.main(_argv(folders, tmp_path / "run", "--train_steps=1", *extra)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("nst-train: error: ") and message in err and "\n" not in err


def test_missing_inputs(folders, tmp_path, capsys):
    argv = _argv(folders, tmp_path / "run")
    argv[1] = f"--content_images={tmp_path / 'nothing' / '*.jpg'}"
    assert cli.main(argv) == 1
    assert "no files match" in capsys.readouterr().err
    assert cli.main(["nst-train", "--train_dir=x"]) == 1          # required flags
    assert "style_images" in capsys.readouterr().err


def test_script_defines_every_flag_on_the_global_flags(folders, tmp_path):
    """scripts/train.py goes through absl's global FLAGS (where absl's own flags live too)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    script = os.path.join(ROOT, "scripts", "train.py")
    result = subprocess.run([sys.executable, script, "--helpfull"], capture_output=True,
                            text=True, timeout=120, env=env)
    for flag in ("--content_images", "--mixed_precision", "--logdir", "--summary_every",
                 "--export_saved_model"):
        assert flag in result.stdout
    result = subprocess.run([sys.executable, script, *_argv(folders, tmp_path / "r")[1:],
                             "--mode=finetune"], capture_output=True, text=True, timeout=120,
                            env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "nst-train: error: mode 'finetune' needs --checkpoint (a pastiche checkpoint to extend)")
