"""nst-stylize: flags, outputs, one-line errors; in-process and once as a subprocess."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from nst_tf import images
from nst_tf.cli import stylize
from nst_tf.gatys import DEFAULTS

from conftest import ROOT, test_image


@pytest.fixture
def base_args(tmp_path):
    return ["nst-stylize", f"--content={test_image('content_sq.jpg')}",
            f"--style={test_image('style/doesburg_sq.jpg')}", "--size=32", "--steps=2",
            "--weights=random", "--noprogress"]


def test_defaults_come_from_gatys():
    fv = flags.FlagValues()
    stylize.define_flags(fv)
    fv(["nst-stylize"])
    options = stylize.options_from_flags(fv)
    for name in ("size", "steps", "optimizer", "learning_rate", "init", "content_weight",
                 "style_weight", "tv_weight", "backbone", "content_layers", "style_layers",
                 "style_loss", "pooling", "preserve_color", "scales", "style_scale", "seed",
                 "weights", "jit_compile", "steps_per_call", "precision", "save_every"):
        assert options[name] == DEFAULTS[name], name


def test_writes_the_output_and_intermediate_images(tmp_path, base_args):
    out = tmp_path / "out.png"
    code = stylize.main(base_args + [f"--output={out}", "--save_every=1",
                                         f"--style={test_image('style/mauclair.jpg')}",
                                         "--style_weights=2,1", "--preserve_color=luminance",
                                         "--optimizer=adam", "--init=noise"])
    assert code == 0
    assert sorted(os.listdir(tmp_path)) == ["out.png", "out_00001.png", "out_00002.png"]
    image = images.load_image(out)
    assert image.shape == (32, 32, 3)
    np.testing.assert_allclose(image, images.load_image(tmp_path / "out_00002.png"), atol=1e-6)


def test_scales_flag(tmp_path, base_args):
    out = tmp_path / "out.jpg"
    assert stylize.main(base_args + [f"--output={out}", "--scales=24,40",
                                         "--steps=1,1"]) == 0
    assert images.load_image(out).shape == (40, 40, 3)


@pytest.mark.parametrize("extra, message", [
    (["--style_weights=1,2"], "2 style blend weights"),
    (["--style_weights=nan"], "nan"),
    (["--content_layers=conv9_1"], "conv9_1"),
    (["--backbone=alexnet"], "alexnet"),
    (["--steps=a"], "--steps"),
    (["--init=nosie"], "nosie"),
])
def test_errors_print_one_line_and_write_nothing(tmp_path, base_args, capsys, extra, message):
    out = tmp_path / "out.png"
    assert stylize.main(base_args + [f"--output={out}"] + extra) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nst-stylize: error:") and message in err[0]
    assert os.listdir(tmp_path) == []


def test_output_folder_and_format_are_checked_first(tmp_path, base_args, capsys):
    assert stylize.main(base_args + [f"--output={tmp_path / 'no' / 'out.png'}"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert stylize.main(base_args + [f"--output={tmp_path / 'out.xyz'}"]) == 1
    assert "format" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_bad_and_missing_flags(tmp_path, base_args, capsys):
    assert stylize.main(base_args + ["--size=abc", f"--output={tmp_path / 'o.png'}"]) == 1
    assert "size" in capsys.readouterr().err
    assert stylize.main(["nst-stylize", "--style=x.jpg"]) == 1
    assert "--content" in capsys.readouterr().err


def test_subprocess_run(tmp_path):
    out = tmp_path / "out.png"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "stylize.py"),
           f"--content={test_image('content_sq.jpg')}",
           f"--style={test_image('style/doesburg_sq.jpg')}", "--size=32", "--steps=2",
           "--weights=random", f"--output={out}"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"saved {out}" in done.stdout
    assert images.load_image(out).shape == (32, 32, 3)
    bad = subprocess.run(cmd[:-1] + [f"--output={tmp_path / 'x' / 'o.png'}"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("nst-stylize: error:")


def test_interrupted_run_saves_and_prints_the_resume_flags(tmp_path, base_args, monkeypatch,
                                                           capsys):
    """Ctrl-C inside the optimization: the output is written, exit 130, and the message gives
    the flags that continue the run (the saved image as init, the steps still to run)."""
    from nst_tf import gatys

    image = np.full((32, 32, 3), 0.5, np.float32)

    def interrupted_run(*args, **kwargs):
        assert kwargs["steps"] == 10
        return gatys.TransferResult(image=image, losses=np.ones(3), steps=3, interrupted=True,
                                    sizes=[32])

    monkeypatch.setattr(gatys, "run", interrupted_run)
    out = tmp_path / "out.png"
    code = stylize.main(base_args + ["--steps=10", f"--output={out}"])
    assert code == 130
    assert images.load_image(str(out)).shape == (32, 32, 3)
    err = capsys.readouterr().err
    assert "interrupted after 3 steps" in err
    assert f"resume with --init={out} --steps=7" in err


def test_tiling_and_checkpoint_flags(tmp_path, base_args, capsys):
    fv = flags.FlagValues()
    stylize.define_flags(fv)
    out = str(tmp_path / "out.png")
    fv(["nst-stylize", f"--output={out}", "--tile_size=auto", "--max_memory=20GB",
        "--checkpoint_every=5", "--lbfgs_memory=4"])
    options = stylize.options_from_flags(fv)
    assert (options["tile_size"], options["max_memory"], options["lbfgs_memory"]) == \
        ("auto", "20GB", 4)
    assert (options["checkpoint"], options["checkpoint_every"]) == (out + ".ckpt.npz", 5)
    assert stylize.main(base_args + [f"--output={out}", "--tile_size=big"]) == 1
    assert "tile_size must be a positive whole number of pixels, got 'big'" in \
        capsys.readouterr().err
    assert stylize.main(base_args + [f"--output={out}", "--tile_size=20",
                                     "--style_loss=sliced_wasserstein"]) == 1
    assert "cannot be tiled exactly" in capsys.readouterr().err
    # A finished run removes its checkpoint; the output is there.
    assert stylize.main(base_args + [f"--output={out}", "--checkpoint_every=1"]) == 0
    assert os.path.exists(out) and not os.path.exists(out + ".ckpt.npz")


@pytest.mark.parametrize("extra, message", [
    (["--tile_size=auto", "--max_memory=lots"], "max_memory must be a size such as 20GB"),
    (["--tile_size=auto", "--max_memory=-3GB"], "max_memory must be a size such as 20GB"),
    (["--tile_size=auto", "--max_memory=0GB"], "max_memory must be positive, got '0GB'"),
    (["--max_memory=20GB"], "max_memory is the budget of tile_size='auto'"),
    (["--tile_size=auto", "--max_memory=1MB"], "the full-size buffers do not fit"),
    (["--tile_size=24"], "tile_size=24 is not a multiple of 16, the stride of the network"),
    (["--tile_size=-32"], "tile_size must be a positive whole number of pixels, got '-32'"),
])
def test_bad_memory_budgets_are_one_line_errors(tmp_path, base_args, capsys, extra, message):
    """Budgets and tile sizes are checked before the first step (a tile size off VGG's stride
    of 16 at the only level larger than the tile too), with one line and nothing written."""
    out = tmp_path / "out.png"
    assert stylize.main(base_args + [f"--output={out}", "--checkpoint_every=1", *extra]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nst-stylize: error:") and message in err[0], err
    assert os.listdir(tmp_path) == []


def test_an_interrupted_checkpointed_run_says_how_to_resume(tmp_path, base_args, monkeypatch,
                                                            capsys):
    from nst_tf import optimize

    class CtrlC(optimize.Callback):
        def on_step(self, step, image, loss, parts):
            if step == 2:
                raise KeyboardInterrupt

    real = optimize.optimize_image
    monkeypatch.setattr(optimize, "optimize_image",
                        lambda *a, **k: real(*a, **dict(k, callbacks=[CtrlC()])))
    from nst_tf import multiscale

    monkeypatch.setattr(multiscale, "optimize_image", optimize.optimize_image)
    out = str(tmp_path / "out.png")
    args = base_args + [f"--output={out}", "--steps=4", "--checkpoint_every=1"]
    assert stylize.main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted after 2 steps" in err
    assert f"run the same command again to resume from {out}.ckpt.npz" in err
    assert os.path.exists(out + ".ckpt.npz")
    monkeypatch.undo()
    counted = []

    class Count(optimize.Callback):
        def on_step(self, step, image, loss, parts):
            counted.append(step)

    monkeypatch.setattr(multiscale, "optimize_image",
                        lambda *a, **k: real(*a, **dict(k, callbacks=[*k["callbacks"], Count()])))
    assert stylize.main(args) == 0  # resumes: steps 3 and 4, then removes the checkpoint
    assert counted == [3, 4]        # a restart from scratch would run steps 1 to 4
    assert not os.path.exists(out + ".ckpt.npz")


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_output(tmp_path):
    """SIGKILL mid-run (no clean-up of any kind), then the same command again: it resumes from
    the last checkpoint and writes exactly the file an uninterrupted run writes."""
    import signal
    import time

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")

    def command(out):
        return [sys.executable, os.path.join(ROOT, "scripts", "stylize.py"),
                f"--content={test_image('content_sq.jpg')}",
                f"--style={test_image('style/doesburg_sq.jpg')}", "--size=64",
                "--steps=80", "--weights=random", "--checkpoint_every=5", f"--output={out}"]

    out = tmp_path / "out.png"
    checkpoint = tmp_path / "out.png.ckpt.npz"
    process = subprocess.Popen(command(out), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL  # killed mid-run, not finished
    assert checkpoint.exists() and not out.exists()
    resumed = subprocess.run(command(out), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert not checkpoint.exists()
    # It resumed: it says from which step, and its first step is the one after it (a restart
    # from scratch would begin at step 1 and give the same file).
    saved = int(re.search(r"resuming from .*ckpt\.npz: scale 1, step (\d+)",
                          resumed.stdout).group(1))
    steps = [int(n) for n in re.findall(r"^step (\d+)/80", resumed.stdout, re.M)]
    assert saved >= 5 and steps[0] == saved + 1 and steps[-1] == 80, resumed.stdout[-2000:]
    straight = tmp_path / "straight.png"
    done = subprocess.run(command(straight), env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(images.load_image(str(out)), images.load_image(str(straight)))


def test_weight_layer_scale_pooling_seed_and_steps_per_call_flags_take_effect(tmp_path,
                                                                             monkeypatch,
                                                                             capsys):
    """Each flag reaches what it controls: the objective's weights and style layers, the style
    image's size (--style_scale × --size), the backbone's pooling, the noise of --seed, and the
    steps a compiled call runs (callbacks, hence progress lines, every --steps_per_call)."""
    from nst_tf import features, objective

    built, extractors = [], []
    real_objective, real_extractor = objective.StyleObjective.__init__, \
        features.FeatureExtractor.__init__

    def spy_objective(self, extractor, content, styles, **kwargs):
        built.append(dict(kwargs, style_shapes=[np.shape(s) for s in styles]))
        real_objective(self, extractor, content, styles, **kwargs)

    def spy_extractor(self, *args, **kwargs):
        real_extractor(self, *args, **kwargs)
        extractors.append(self)

    monkeypatch.setattr(objective.StyleObjective, "__init__", spy_objective)
    monkeypatch.setattr(features.FeatureExtractor, "__init__", spy_extractor)
    argv = ["nst-stylize", f"--content={test_image('content_sq.jpg')}",
            f"--style={test_image('style/doesburg_sq.jpg')}", "--size=32", "--steps=4",
            "--weights=random", "--init=noise", "--content_weight=2.5", "--style_weight=0.125",
            "--style_layers=conv1_1,relu2_1", "--style_scale=0.5", "--pooling=avg",
            "--steps_per_call=2"]
    outputs = []
    for seed in (3, 4):
        out = str(tmp_path / f"seed{seed}.png")
        assert stylize.main(argv + [f"--seed={seed}", f"--output={out}"]) == 0
        outputs.append(images.load_image(out))
    kwargs = built[0]
    assert (kwargs["content_weight"], kwargs["style_weight"]) == (2.5, 0.125)
    assert kwargs["style_layers"] == ["conv1_1", "relu2_1"]
    assert max(kwargs["style_shapes"][0][1:3]) == 16              # 0.5 x 32 px
    model = extractors[0].model
    assert any(type(l).__name__ == "AveragePooling2D" for l in model.layers)
    assert not any(type(l).__name__ == "MaxPooling2D" for l in model.layers)
    assert sorted(extractors[0].layers) == sorted(["block1_conv1", "block2_conv1", "block4_conv2"])
    steps = re.findall(r"^step (\d+)/4", capsys.readouterr().out, re.M)
    assert steps[:2] == ["2", "4"] and "1" not in steps and "3" not in steps, steps
    assert np.abs(outputs[0] - outputs[1]).max() > 0.05             # other noise, other image
