"""Texture networks (Ulyanov et al. 2016, 2017): layers vs NumPy, architecture, seeded sampling,
seamless tiling, training through the shared trainer (Gram loss falls, diversity term, resume,
TensorBoard, .keras export), the stylize entry point and the CLI.

Loss networks are random VGG-19s (random CNN features are valid texture statistics, Ustyuzhaninov
et al. 2016); networks are small (3-4 scales) and images 32-64 px so the file runs in ~1-2 min.
"""

import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import nst_tf
from nst_tf import losses, training
from nst_tf.cli import train as cli
from nst_tf.errors import ConfigError, ImageError
from nst_tf.export import export_keras
from nst_tf.features import FeatureExtractor
from nst_tf.layers import CircularPad2D, NoiseFill
from nst_tf.networks import (johnson_network, pastiche_network, texture_config,
                             texture_network)
from nst_tf.models.texture.recipe import UlyanovSchedule, ulyanov_style_weights
from nst_tf.training.recipe import recipe_class

SIZE = 32
FAST = dict(batch_size=4, image_size=SIZE, weights=None, verbose=0, log_dir="")


@pytest.fixture(scope="module")
def texture_file(tmp_path_factory):
    """A 64x64 texture exemplar: coloured 8x8 blocks."""
    path = tmp_path_factory.mktemp("texture") / "blocks.png"
    blocks = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(np.kron(blocks, np.ones((8, 8, 1), np.uint8))).save(path)
    return str(path)


def _gram_loss(texture_file, style_weights):
    """The training objective, evaluated on samples: Gram loss on a random VGG-19 (seed 0, the
    extractor ``train`` builds)."""
    fx = FeatureExtractor("vgg19", list(style_weights), weights=None, pooling="max",
                          preprocessing="magenta", seed=0)
    loss = training.PerceptualLoss(fx, [nst_tf.load_image(texture_file)], {}, style_weights)

    def evaluate(images):
        images = tf.constant(images)
        return float(loss(images, images, tf.zeros([len(images)], tf.int32))[1]["style"])
    return evaluate


@pytest.fixture(scope="module")
def gram_loss(texture_file):
    return _gram_loss(texture_file, ulyanov_style_weights())


@pytest.fixture(scope="module")
def stripes_file(tmp_path_factory):
    """A low-contrast stripe texture: samples of it are alike unless the diversity term acts."""
    path = tmp_path_factory.mktemp("stripes") / "stripes.png"
    x = np.arange(64)[None, :, None]
    image = 0.5 + 0.08 * np.sin(x / 3.0) * np.array([1.0, 0.5, -1.0])
    Image.fromarray(np.round(np.broadcast_to(image, (64, 64, 3)) * 255).astype(np.uint8)).save(path)
    return str(path)


def _mean_pairwise_distance(samples):
    d = losses.pairwise_distances(tf.constant(samples)).numpy()
    return d[~np.eye(len(d), dtype=bool)].mean()


# --- Layers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("padding", [1, 2, (0, 3), (3, 1)])
def test_circular_pad_matches_numpy_wrap(rng, padding):
    x = rng.normal(size=(2, 3, 5, 4)).astype(np.float32)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    expected = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), mode="wrap")
    np.testing.assert_array_equal(CircularPad2D(padding)(x).numpy(), expected)
    dynamic = tf.function(lambda t: CircularPad2D(padding)(t),
                          input_signature=[tf.TensorSpec([None, None, None, 4])])
    np.testing.assert_array_equal(dynamic(x).numpy(), expected)


def test_circular_pad_needs_enough_pixels():
    with pytest.raises(ImageError, match=r"at least 4x4 .* got 3x5"):
        CircularPad2D(4)(np.zeros((1, 3, 5, 1), np.float32))


def test_noise_fill_shapes_seeds_and_explicit_noise():
    layer = NoiseFill(2, ratio=4, seed=7)
    a, b = layer(tf.zeros([3, 8, 12, 1])), layer(tf.zeros([3, 8, 12, 1]))
    assert a.shape == (3, 2, 3, 2) and float(tf.reduce_min(a)) >= 0 and float(tf.reduce_max(a)) < 1
    assert not np.array_equal(a, b)                      # fresh noise on every call
    layer.reseed(5)
    c = layer(tf.zeros([3, 8, 12, 1]))
    layer.reseed(5)
    np.testing.assert_array_equal(c, layer(tf.zeros([3, 8, 12, 1])))
    given = np.random.default_rng(0).random((3, 2, 3, 2)).astype(np.float32)
    np.testing.assert_array_equal(layer([tf.zeros([3, 8, 12, 1]), given]), given)
    with pytest.raises(ImageError, match="multiples of 4.*got 10x12"):
        layer(tf.zeros([1, 10, 12, 1]))


@pytest.mark.parametrize("layer", [CircularPad2D((1, 2)), NoiseFill(5, ratio=8, seed=3)])
def test_texture_layer_configs_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


# --- Network ------------------------------------------------------------------------------------

def _expected_parameters(num_scales, channels, noise=3):
    """Count by hand from the paper's description: per scale a 3x3/3x3/1x1 block of C channels
    on the noise, then (from the second scale) BN on both branches, a 3x3/3x3/1x1 block of C·i
    channels; a 1x1 conv to RGB with bias. Convs have no bias; BN has 4 numbers per channel."""
    def block(cin, c):
        return 9 * cin * c + 9 * c * c + c * c + 3 * 4 * c
    total = 0
    for i in range(1, num_scales + 1):
        total += block(noise, channels)
        if i > 1:
            total += 4 * channels * (i - 1) + 4 * channels          # join norms
            total += block(channels * i, channels * i)
    return total + channels * num_scales * 3 + 3


@pytest.mark.parametrize("num_scales", [5, 6])
def test_parameter_count_matches_the_paper(num_scales):
    net = texture_network(num_scales)
    assert net.count_params() == _expected_parameters(num_scales, 8)
    # The reference's count: ≈72K for K = 5, ≈117K for K = 6.
    assert round(net.count_params(), -3) == {5: 72000, 6: 118000}[num_scales]


def test_any_multiple_size_and_a_clear_error_otherwise():
    net = texture_network(num_scales=4, seed=0)
    for size in ((8, 8), (40, 24), (64, 136)):
        assert nst_tf.synthesize(net, size).shape == (1, *size, 3)
    with pytest.raises(ImageError, match=r"multiples of 8 \(2\^3\).*got 60x64 .*56 or 64 x 64"):
        nst_tf.synthesize(net, (60, 64))
    with pytest.raises(ImageError, match="multiples of 8"):
        net(np.zeros((1, 60, 64, 3), np.float32))           # the network itself checks too
    reflect = texture_network(num_scales=4, padding="reflect")
    with pytest.raises(ImageError, match="at least 16"):
        nst_tf.synthesize(reflect, 8)


def test_seeds_fix_the_textures():
    net = texture_network(num_scales=4, seed=0, norm="instance")
    a = nst_tf.synthesize(net, (32, 48), seed=1, count=3, batch_size=2)
    assert a.shape == (3, 32, 48, 3) and a.dtype == np.float32
    assert 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, nst_tf.synthesize(net, (32, 48), seed=1, count=3,
                                                       batch_size=2))
    b = nst_tf.synthesize(net, (32, 48), seed=2, count=3, batch_size=2)
    assert np.abs(a - b).mean() > 1e-3
    assert np.abs(a[0] - a[1]).mean() > 1e-3               # samples of one call differ too


def _tiled_noise(noises, reps=(2, 2)):
    return [np.tile(n, (1, *reps, 1)) for n in noises]


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_circular_network_is_exactly_periodic(norm, rng):
    """With circular padding the network is a function on the torus: noise tiled 2x2 gives the
    output tiled 2x2 (no seam anywhere), and cyclically shifted noise a shifted output."""
    net = texture_network(num_scales=4, norm=norm, noise_input=True, seed=0)
    ratios = (8, 4, 2, 1)
    noises = [rng.random((2, 32 // r, 24 // r, 3)).astype(np.float32) for r in ratios]
    out = net([np.zeros((2, 32, 24, 3), np.float32), *noises]).numpy()
    big = net([np.zeros((2, 64, 48, 3), np.float32), *_tiled_noise(noises)]).numpy()
    np.testing.assert_allclose(big, np.tile(out, (1, 2, 2, 1)), atol=1e-5)
    shifted = [np.roll(n, (1, 2), axis=(1, 2)) for n in noises[:1]] + \
        [np.roll(n, (8 // r, 16 // r), axis=(1, 2)) for n, r in zip(noises[1:], ratios[1:])]
    out_shifted = net([np.zeros((2, 32, 24, 3), np.float32), *shifted]).numpy()
    np.testing.assert_allclose(out_shifted, np.roll(out, (8, 16), axis=(1, 2)), atol=1e-5)
    # Reflect padding has a seam: the tiled-noise output differs from the tiled output.
    reflect = texture_network(num_scales=4, norm=norm, padding="reflect", noise_input=True,
                              seed=0)
    reflect.set_weights(net.get_weights())
    out = reflect([np.zeros((2, 32, 24, 3), np.float32), *noises]).numpy()
    big = reflect([np.zeros((2, 64, 48, 3), np.float32), *_tiled_noise(noises)]).numpy()
    assert np.abs(big - np.tile(out, (1, 2, 2, 1))).max() > 1e-3


def test_noise_input_network_has_the_same_weights():
    net = texture_network(num_scales=3, seed=0)
    twin = texture_network(num_scales=3, noise_input=True)
    twin.set_weights(net.get_weights())
    assert [i.name for i in twin.inputs] == ["canvas", "noise_4", "noise_2", "noise_1"]
    assert texture_config(twin)["noise_input"] and not texture_config(net)["noise_input"]


# --- Training -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(texture_file, tmp_path_factory):
    """A 3-scale texture network trained for 40 steps (circular padding, instance norm)."""
    run = tmp_path_factory.mktemp("texture_run")
    options = dict(num_scales=3, seed=0, norm="instance")
    keras.utils.set_random_seed(0)                       # train() starts from the same weights
    untrained = training.build_network("texture", 1, network_options=options)[0]
    net = training.train(None, texture_file, str(run), mode="texture", train_steps=40,
                         learning_rate=0.03, lr_schedule="constant", network_options=options,
                         **{**FAST, "log_dir": str(run / "logs")},
                         summary_every=20)
    return {"net": net, "untrained": untrained, "dir": run}


def test_training_lowers_the_gram_loss(trained, gram_loss):
    before = gram_loss(nst_tf.synthesize(trained["untrained"], SIZE, count=4))
    after = gram_loss(nst_tf.synthesize(trained["net"], SIZE, count=4))
    assert after < 0.2 * before, (before, after)
    config = json.load(open(trained["dir"] / training.CONFIG_FILE))
    assert config["mode"] == "texture" and config["backbone"] == "vgg19"
    assert config["network_options"] == {"num_scales": 3, "seed": 0, "norm": "instance"}


def test_tensorboard_grid_of_samples(trained):
    events = glob.glob(str(trained["dir"] / "logs" / "events.*"))
    assert events
    tags = set()
    for event in tf.compat.v1.train.summary_iterator(events[0]):
        tags.update(v.tag for v in event.summary.value)
    assert {"stylized", "loss/style", "learning_rate"} <= tags


def test_trained_texture_tiles_without_seams(trained):
    """The wrap-around seam of a tile has the same pixel-difference statistics as the inside."""
    sample = nst_tf.synthesize(trained["net"], 64, count=4, seed=3).astype(np.float64)
    inside_h = np.abs(np.diff(sample, axis=1)).mean()
    inside_w = np.abs(np.diff(sample, axis=2)).mean()
    seam_h = np.abs(sample[:, 0] - sample[:, -1]).mean()
    seam_w = np.abs(sample[:, :, 0] - sample[:, :, -1]).mean()
    assert seam_h < 1.5 * inside_h and seam_w < 1.5 * inside_w, (seam_h, inside_h, seam_w,
                                                                 inside_w)


def test_export_keras_round_trip(trained, tmp_path):
    path = export_keras(trained["net"], tmp_path / "tex.keras")
    loaded = keras.saving.load_model(path)
    ours = nst_tf.synthesize(trained["net"], (16, 24), seed=4, count=2)
    np.testing.assert_allclose(nst_tf.synthesize(loaded, (16, 24), seed=4, count=2), ours,
                               atol=1e-6)
    np.testing.assert_allclose(nst_tf.synthesize(path, (16, 24), seed=4, count=2), ours,
                               atol=1e-6)


def test_checkpoints_hold_the_noise_state(trained):
    """A resumed run continues the noise sequence: the generators' states are checkpointed."""
    latest = tf.train.latest_checkpoint(str(trained["dir"]))
    saved = {name: tf.train.load_variable(latest, name)
             for name, _ in tf.train.list_variables(latest) if name.startswith("rng/")}
    assert len(saved) == 3
    # [seed, draws]: the scales' seeds 0, 1, 2 (network seed 0), one draw per training step.
    assert sorted(int(state[0]) for state in saved.values()) == [0, 1, 2]
    assert all(int(state[1]) >= 40 for state in saved.values())


def test_diversity_term_spreads_samples_at_a_bounded_cost(stripes_file, tmp_path):
    """Same initialization and noise, with and without the 2017 diversity term (pixels): the
    samples move apart (mean pairwise RMS distance ×1.5 or more) while keeping >= 95 % of the
    Gram-loss reduction of training. Style layers relu1_1 … relu3_1 only, to keep it fast."""
    style_weights = {k: v for k, v in ulyanov_style_weights().items() if k[5] in "123"}
    gram_loss = _gram_loss(stripes_file, style_weights)
    options = dict(num_scales=3, seed=0, norm="instance")
    keras.utils.set_random_seed(0)
    untrained = training.build_network("texture", 1, network_options=options)[0]
    untrained_loss = gram_loss(nst_tf.synthesize(untrained, SIZE, count=8, seed=11))
    results = {}
    for weight in (0.0, 3e4):
        keras.utils.set_random_seed(0)
        net = training.train(None, stripes_file, str(tmp_path / str(weight)), mode="texture",
                             train_steps=20, diversity_weight=weight, style_weights=style_weights,
                             learning_rate=0.03, lr_schedule="constant",
                             network_options=options, **FAST)
        samples = nst_tf.synthesize(net, SIZE, count=8, seed=11)
        results[weight] = (_mean_pairwise_distance(samples), gram_loss(samples))
    (plain_d, plain_loss), (div_d, div_loss) = results[0.0], results[3e4]
    assert div_d > 1.5 * plain_d, results
    # The cost: the diversity network keeps >= 95 % of the Gram-loss reduction training brings.
    assert div_loss - plain_loss < 0.05 * (untrained_loss - plain_loss), (untrained_loss, results)


def test_diversity_loss_matches_numpy(rng):
    x = rng.normal(size=(5, 4, 3, 2))
    flat = x.reshape(5, -1)
    d = np.sqrt(((flat[:, None] - flat[None]) ** 2).mean(-1))
    np.fill_diagonal(d, np.inf)
    expected = -np.log(d.min(1) + 1e-3).mean()
    np.testing.assert_allclose(float(losses.diversity_loss(tf.constant(x, tf.float32))),
                               expected, rtol=1e-5)


def test_diversity_needs_two_samples(texture_file, tmp_path):
    with pytest.raises(ConfigError, match="batch_size must be >= 2"):
        training.train(None, texture_file, str(tmp_path), mode="texture", train_steps=1,
                       diversity_weight=1.0, **{**FAST, "batch_size": 1})


def test_reflect_padding_needs_two_pixels_at_the_coarsest_scale(texture_file, tmp_path):
    """Six scales of a 32-pixel crop leave 1x1 at the coarsest, which reflect padding cannot
    pad: refused before building anything, in one line naming the options (not Keras' layer
    error after the loss network is built). Circular padding (textures) pads 1x1 fine."""
    content = str(tmp_path / "c.png")
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(content)
    stylize, texture = recipe_class("texture_stylize"), recipe_class("texture")
    with pytest.raises(ConfigError, match=r"image_size 32 is too small for 6 scales with reflect "
                                          r"padding.*image_size >= 64 or fewer num_scales"):
        stylize(content, texture_file, batch_size=2, image_size=32)
    stylize(content, texture_file, batch_size=2, image_size=32, network_options={"num_scales": 5})
    texture(None, texture_file, batch_size=2, image_size=32)   # circular padding


def test_paper_schedule():
    schedule = UlyanovSchedule(0.1)
    rates = [float(schedule(step)) for step in (0, 799, 800, 999, 1000, 1999)]
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.07, 0.07, 0.049, 0.1 * 0.7 ** 6], rtol=1e-6)
    assert training.mode_defaults("texture")["lr_schedule"] == "ulyanov"
    weights = ulyanov_style_weights(1e3)
    assert weights["block1_conv1"] == 1e3 / 64 ** 2 and weights["block5_conv1"] == 1e3 / 512 ** 2


# --- Stylization, stylize() entry point, CLI, export of other families --------------------------

def test_texture_stylize_cli_export_and_stylize(texture_file, tmp_path, capsys):
    content = tmp_path / "content"
    content.mkdir()
    rng = np.random.default_rng(2)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 44, 3), dtype=np.uint8)).save(
            content / f"c{i}.png")
    path = tmp_path / "stylize.keras"
    argv = ["nst-train", "--mode=texture_stylize", f"--content_images={content}",
            f"--style_images={texture_file}", f"--train_dir={tmp_path / 'run'}",
            "--batch_size=2", f"--image_size={SIZE}", "--train_steps=3", "--weights=random",
            "--num_scales=3", "--norm=instance", "--logdir=", "--verbose=0",
            "--diversity_weight=10", "--diversity_layer=relu4_2", f"--export_keras={path}"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert str(path) in capsys.readouterr().out
    photo = rng.random((30, 41, 3)).astype(np.float32)
    out = nst_tf.stylize(photo, model=str(path), seed=1)
    assert out.shape == (30, 41, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, nst_tf.stylize(photo, model=str(path), seed=1))
    assert nst_tf.stylize(photo[None].repeat(2, 0), model=str(path)).shape == (2, 30, 41, 3)
    with pytest.raises(ConfigError, match="takes no style"):
        nst_tf.stylize(photo, 0, model=str(path))
    with pytest.raises(ConfigError, match="use nst_tf.stylize"):
        nst_tf.synthesize(str(path), 32)
    with pytest.raises(ConfigError, match="use nst_tf.synthesize"):
        nst_tf.stylize(photo, model=texture_network(num_scales=3))
    with pytest.raises(ConfigError, match="crop"):
        nst_tf.stylize(photo, model=str(path), crop=True)   # options are the family's own


def test_only_the_texture_mode_runs_without_content_images(texture_file, tmp_path, capsys):
    argv = ["nst-train", "--mode=texture_stylize", f"--style_images={texture_file}",
            f"--train_dir={tmp_path / 'run'}"]
    assert cli.main(argv) == 1
    assert "mode 'texture_stylize' needs content images" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="texture network options"):
        training.train(None, texture_file, str(tmp_path), mode="texture", train_steps=1,
                       network_options={"norm": "group"}, **FAST)
    with pytest.raises(ConfigError, match="trains one style, got 2"):
        training.train(None, [texture_file, texture_file], str(tmp_path), mode="texture",
                       train_steps=1, **FAST)


@pytest.mark.parametrize("build", [lambda: johnson_network(alpha=0.25),
                                   lambda: pastiche_network(3, alpha=0.25, style_input="labels")])
def test_export_keras_for_other_families(build, tmp_path, rng):
    net = build()
    path = export_keras(net, tmp_path / "net.keras")
    photo = rng.random((20, 24, 3)).astype(np.float32)
    style = None if len(net.inputs) == 1 else 1
    reference = net(photo[None]) if style is None else net([photo[None], np.array([1])])
    out = nst_tf.stylize(photo, style, model=path)
    np.testing.assert_allclose(out, np.clip(reference.numpy()[0], 0, 1), atol=1e-5)
    with pytest.raises(ConfigError, match=r"end in \.keras"):
        export_keras(net, tmp_path / "net.h5")


_REPLICAS = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from nst_tf.layers import NoiseFill
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    layer = NoiseFill(3, seed=1)
step = tf.function(lambda: strategy.run(lambda: layer(tf.zeros([1, 4, 4, 3]))))
first = [t.numpy() for t in strategy.experimental_local_results(step())]
second = strategy.experimental_local_results(step())[0].numpy()
alone = NoiseFill(3, seed=1)(tf.zeros([2, 4, 4, 3])).numpy()     # one device, global batch 2
print(float(np.abs(first[0] - first[1]).max()), float(np.abs(first[0] - second).max()),
      float(np.abs(np.concatenate(first) - alone).max()))
"""


def test_replicas_draw_one_devices_noise():
    """Under MirroredStrategy every replica reads the same generator state; each draws the
    global batch's noise and keeps its own rows, so the replicas' samples differ (else the
    global batch would hold copies) and together are what one device draws for the whole batch
    (two workers train as one process). Subprocess: logical devices must be set before
    TensorFlow starts."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", _REPLICAS], capture_output=True, text=True,
                            env=env, timeout=300, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    across_replicas, across_calls, versus_one_device = map(float, result.stdout.split()[-3:])
    assert across_replicas > 0.05 and across_calls > 0.05
    assert versus_one_device == 0.0


def test_synthesize_is_exported_lazily():
    import subprocess
    import sys

    assert nst_tf.synthesize.__module__ == "nst_tf.models.texture.family"
    code = "import sys, nst_tf; nst_tf.synthesize; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
