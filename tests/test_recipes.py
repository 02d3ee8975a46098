"""Training recipes: the registry, declared options, and the errors for options a mode does not
take (Python API and nst-train flags), derived from the recipes' declarations."""

import numpy as np
import pytest
from PIL import Image

from nst_tf import training
from nst_tf.cli import train as cli
from nst_tf.errors import ConfigError
from nst_tf.networks import arbitrary_config
from nst_tf.training import recipe as recipes


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipes")
    rng = np.random.default_rng(0)
    (root / "content").mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(
            root / "content" / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "style.png")
    return root


def test_registry_names_every_mode_once():
    classes = [recipes.recipe_class(mode) for mode in recipes.modes()]
    assert len(classes) == len(recipes.RECIPES) == len(set(recipes.modes()))
    assert set(recipes.modes()) == {"adain", "arbitrary", "cin", "distill", "finetune",
                                    "johnson", "texture", "texture_stylize"}
    for cls in classes:
        assert issubclass(cls, training.Recipe) and cls.summary and cls.__doc__
        assert set(cls.defaults) == {"learning_rate", "train_steps"}
        assert not set(cls.options) & set(recipes.COMMON_OPTIONS), cls.mode
    with pytest.raises(ConfigError, match="mode must be one of adain, .*texture_stylize"):
        recipes.recipe_class("fast")


def test_declared_options_decide_who_takes_what():
    assert recipes.modes_taking("init_decoder") == ["adain"]
    assert recipes.modes_taking("network_options") == ["texture", "texture_stylize"]
    assert "adain" not in recipes.modes_taking("tv_weight")
    assert "texture" not in recipes.modes_taking("content_images")
    assert recipes.modes_taking("export_magenta") == ["arbitrary", "cin", "distill", "finetune"]
    assert recipes.modes_taking("export_tflite") == ["arbitrary", "distill"]
    for option in ("depth_multiplier", "augment_style_images", "random_style_image_size"):
        assert recipes.modes_taking(option) == ["arbitrary", "distill"], option
    assert recipes.modes_taking("predictor") == ["arbitrary"]
    assert recipes.modes_taking("true_loss_weight") == ["distill"]
    assert "arbitrary" in recipes.modes_taking("tv_weight")
    assert "arbitrary" not in recipes.modes_taking("network_options")
    assert "johnson" not in recipes.modes_taking("export_magenta")
    assert all(recipes.recipe_class(m).takes("batch_size") for m in recipes.modes())


def test_python_api_refuses_an_option_of_another_mode(folders, tmp_path):
    with pytest.raises(ConfigError, match=r"^tv_weight does not apply to mode adain; it applies "
                                          r"to mode .*cin, distill, finetune, johnson"):
        training.train(str(folders / "content"), str(folders / "style.png"), str(tmp_path),
                       mode="adain", tv_weight=1.0)
    with pytest.raises(ConfigError, match="no_such_option does not apply to mode cin; no mode "
                                          "takes it"):
        training.train(str(folders / "content"), str(folders / "style.png"), str(tmp_path),
                       mode="cin", no_such_option=1)
    with pytest.raises(ConfigError, match="mode 'texture' trains without content images"):
        training.train(str(folders / "content"), str(folders / "style.png"), str(tmp_path),
                       mode="texture")
    assert not list(tmp_path.iterdir())                     # nothing written


@pytest.mark.parametrize("mode,flag,message", [
    ("adain", "--tv_weight=1", "--tv_weight does not apply to --mode=adain; it applies to "
                               "--mode="),
    ("cin", "--num_scales=3", "--num_scales does not apply to --mode=cin; it applies to "
                              "--mode=texture, texture_stylize"),
    ("johnson", "--init_decoder=d.pth", "--init_decoder does not apply to --mode=johnson; it "
                                        "applies to --mode=adain"),
    ("johnson", "--export_magenta=m.ckpt", "--export_magenta does not apply to --mode=johnson"),
    ("adain", "--mixed_precision=mixed_bfloat16", "--mixed_precision does not apply to "
                                                  "--mode=adain"),
    ("cin", "--encoder=keras", "--encoder does not apply to --mode=cin"),
    ("cin", "--depth_multiplier=0.5", "--depth_multiplier does not apply to --mode=cin; it "
                                      "applies to --mode=arbitrary, distill"),
    ("johnson", "--tflite_samples=3", "--tflite_samples does not apply to --mode=johnson; it "
                                      "applies to --mode=arbitrary, distill"),
    ("arbitrary", "--init_decoder=d.pth", "--init_decoder does not apply to --mode=arbitrary; "
                                          "it applies to --mode=adain"),
    ("arbitrary", "--num_scales=3", "--num_scales does not apply to --mode=arbitrary"),
])
def test_cli_flag_of_another_mode_is_a_one_line_error(folders, tmp_path, capsys, mode, flag,
                                                      message):
    argv = ["nst-train", f"--mode={mode}", f"--content_images={folders / 'content'}",
            f"--style_images={folders / 'style.png'}", f"--train_dir={tmp_path / 'run'}",
            "--weights=random", flag]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"nst-train: error: {message}") and "\n" not in err, err
    assert not (tmp_path / "run").exists()


def test_texture_takes_no_content_flag(folders, tmp_path, capsys):
    argv = ["nst-train", "--mode=texture", f"--content_images={folders / 'content'}",
            f"--style_images={folders / 'style.png'}", f"--train_dir={tmp_path / 'run'}"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "--content_images does not apply to --mode=texture" in err and "\n" not in err


def test_every_flag_is_an_option_some_mode_takes():
    from absl import flags

    values = flags.FlagValues()
    cli.define_flags(values)
    assert sorted(values["mode"].parser.enum_values) == list(recipes.modes())
    for name in cli._program_flags():
        option = cli._OPTION_OF_FLAG.get(name, name)
        assert recipes.modes_taking(option), f"--{name} is taken by no mode"


def test_mode_defaults_and_untrained_network():
    assert training.mode_defaults("cin")["backbone"] == "vgg16"
    assert training.mode_defaults("texture")["backbone"] == "vgg19"
    assert training.mode_defaults("adain")["learning_rate"] == 1e-4
    net, offset = training.build_network("cin", 3, alpha=0.25)
    assert net.get_layer("contract_conv1_norm").num_styles == 3 and offset == 0
    with pytest.raises(ConfigError, match="alpha does not apply to mode texture"):
        training.build_network("texture", alpha=0.5)
    assert training.mode_defaults("arbitrary")["learning_rate"] == 1e-5
    assert training.mode_defaults("arbitrary")["train_steps"] == 8_000_000
    net, offset = training.build_network("arbitrary", alpha=0.25, depth_multiplier=0.25,
                                         weights="random")
    assert offset == 0 and arbitrary_config(net) == {"embedding_size": 100, "alpha": 0.25,
                                                     "depth_multiplier": 0.25,
                                                     "predictor": "inception_v3"}
    # A train_dir's record rebuilds the same architecture (what its checkpoint is read into).
    again = recipes.recipe_class("arbitrary").network_from_config(
        {"mode": "arbitrary", **arbitrary_config(net)})
    assert [w.shape for w in again.weights] == [w.shape for w in net.weights]
