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


@pytest.mark.slow
def test_ctrl_c_exits_130_and_the_same_command_resumes_only_the_rest(folders, tmp_path):
    """``nst-train`` as typed: Ctrl-C saves, says so, exits 130 and its progress bar ends at the
    step reached (not at --train_steps); the same command resumes from that step and runs only
    the steps left; other --style_images in that train_dir are refused in one line."""
    import re
    import signal
    import time

    from programs import assert_clean_output, error_line, run_program, start_program

    train_dir = tmp_path / "run"
    argv = [f"--content_images={folders / 'content'}", f"--train_dir={train_dir}",
            f"--style_images={folders / 'style' / '0.png'}", "--mode=johnson", "--alpha=0.25",
            "--weights=random", "--batch_size=1", "--image_size=32", "--logdir=",
            "--save_every=1"]
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        process = start_program("nst-train", *argv, "--train_steps=500", stdout=out, stderr=err)
        deadline = time.time() + 300
        while not (train_dir / "ckpt-3.index").exists() and process.poll() is None \
                and time.time() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=300)
    stdout, stderr = (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()
    assert code == 130, stderr[-3000:]
    step = int(re.search(r"nst-train: interrupted at step (\d+); checkpoints in ", stderr)
               .group(1))
    assert 3 <= step < 500 and tf.train.latest_checkpoint(str(train_dir)).endswith(f"-{step}")
    bars = re.findall(r"(\d+)/500", stdout)
    assert bars and int(bars[-1]) == step and "500/500" not in stdout, stdout[-2000:]

    resumed = run_program("nst-train", *argv, f"--train_steps={step + 2}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_clean_output(resumed)
    assert f"Resuming {train_dir} from step {step}" in resumed.stdout
    assert re.findall(r"(\d+)/(\d+)", resumed.stdout)[-1] == ("2", "2")   # two steps ran
    assert f"nst-train: done at step {step + 2}" in resumed.stdout

    other = run_program("nst-train", *argv[:2], f"--style_images={folders / 'style' / '1.png'}",
                        *argv[3:], f"--train_steps={step + 4}")
    line = error_line(other, "nst-train")
    assert "different setup" in line and "style_images: saved" in line and "1.png" in line
    assert tf.train.latest_checkpoint(str(train_dir)).endswith(f"-{step + 2}")


@pytest.mark.slow
def test_schedule_preprocessing_texture_and_arbitrary_flags_take_effect(folders, tmp_path,
                                                                        monkeypatch, capsys):
    """Each flag reaches what it controls in a one-step run: the optimizer's learning-rate
    schedule (--lr_decay: lr / (1 + decay·step); --lr_schedule=ulyanov: ×0.7 from step 800),
    the loss network's input (--preprocessing), the texture network's padding layers and
    widths (--padding, --texture_channels), the style network's width (--depth_multiplier) and
    the style stream (--noaugment_style_images, --norandom_style_image_size: crops of
    --image_size)."""
    from nst_tf import features, training
    from nst_tf.models.arbitrary import recipe as arbitrary_recipe
    from nst_tf.networks import arbitrary_config
    from nst_tf.training.trainer import StyleTrainer

    schedules, extractors, streams = [], [], []
    real_compile, real_extractor = StyleTrainer.compile, features.FeatureExtractor.__init__
    real_stream = arbitrary_recipe.style_stream

    def compile(self, optimizer=None, learning_rate=1e-3, **kwargs):
        schedules.append(learning_rate)
        return real_compile(self, optimizer, learning_rate, **kwargs)

    def extractor(self, *args, **kwargs):
        real_extractor(self, *args, **kwargs)
        extractors.append(self)

    def stream(*args, **kwargs):
        dataset = real_stream(*args, **kwargs)
        streams.append((kwargs, tuple(next(iter(dataset)).shape)))
        return dataset

    monkeypatch.setattr(StyleTrainer, "compile", compile)
    monkeypatch.setattr(features.FeatureExtractor, "__init__", extractor)
    monkeypatch.setattr(arbitrary_recipe, "style_stream", stream)

    def train(mode, *flags, styles="*.png", name=None):
        run = tmp_path / (name or mode)
        argv = ["nst-train", f"--mode={mode}", f"--style_images={folders / 'style' / styles}",
                f"--train_dir={run}", "--weights=random", "--batch_size=1", "--logdir=",
                "--verbose=0", "--train_steps=1", *flags]
        if mode != "texture":
            argv.append(f"--content_images={folders / 'content'}")
        assert cli.main(argv) == 0, capsys.readouterr().err
        return str(run)

    train("adain", "--alpha=0.0625", "--image_size=32", "--learning_rate=0.01",
          "--lr_decay=0.5")
    assert float(schedules[-1](2)) == pytest.approx(0.01 / (1 + 0.5 * 2))

    train("cin", "--alpha=0.25", "--image_size=32", "--learning_rate=0.01",
          "--lr_schedule=ulyanov", "--preprocessing=keras")
    ulyanov = schedules[-1]
    assert [float(ulyanov(s)) for s in (0, 799, 800, 1000)] == pytest.approx(
        [0.01, 0.01, 0.007, 0.0049])
    modes = [getattr(l, "mode", None) for l in extractors[-1].model.layers]
    assert "caffe" in modes and "magenta" not in modes
    train("cin", "--alpha=0.25", "--image_size=32", "--learning_rate=0.01",   # the defaults
          name="cin_defaults")
    assert float(schedules[-1]) == 0.01
    assert "magenta" in [getattr(l, "mode", None) for l in extractors[-1].model.layers]

    texture = training.load_train_dir(train("texture", "--image_size=32", "--num_scales=3",
                                            "--padding=reflect", "--texture_channels=5",
                                            styles="0.png"))
    kinds = {type(l).__name__ for l in texture.layers}
    assert "ReflectionPad2D" in kinds and "CircularPad2D" not in kinds
    widths = {l.filters for l in texture.layers if type(l).__name__ == "Conv2D"} - {3}
    assert widths and all(w % 5 == 0 for w in widths), widths

    arbitrary = training.load_train_dir(train("arbitrary", "--image_size=48",
                                              "--depth_multiplier=0.25", "--alpha=0.25",
                                              "--noaugment_style_images",
                                              "--norandom_style_image_size"))
    assert arbitrary_config(arbitrary)["depth_multiplier"] == 0.25
    (kwargs, shape), = streams
    assert (kwargs["augment"], kwargs["random_size"]) == (False, False)
    assert shape[1:3] == (48, 48)
