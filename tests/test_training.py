"""nst_tf.training: perceptual loss vs NumPy, short trainings, resume, SIGINT, finetune, export,
TensorBoard summaries, mixed precision, and tf.distribute with two logical CPU devices."""

import glob
import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from nst_tf import training
from nst_tf.errors import CheckpointError, ConfigError, LayerError
from nst_tf.features import FeatureExtractor
from nst_tf.layers import ConditionalInstanceNorm
from nst_tf.export import export_magenta_checkpoint, export_saved_model
from nst_tf.networks import is_conditional, pastiche_network

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 32
# Small and fast: random VGG-16, quarter-width networks, 32 px crops, batch 4.
FAST = dict(batch_size=4, image_size=SIZE, weights=None, alpha=0.25, verbose=0, log_dir="",
            learning_rate=2e-2)


def _pattern(height, width, i):
    y, x = np.mgrid[0:height, 0:width]
    wave = np.sin(x / (2.0 + i) + y / (3.0 + 0.5 * i))[..., None]
    return np.clip(127 + 120 * wave * np.array([1.0, 0.4 - 0.1 * i, -0.6]), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """12 content images (mixed sizes) and 3 style images, generated."""
    root = tmp_path_factory.mktemp("train_images")
    content, style = root / "content", root / "style"
    content.mkdir()
    style.mkdir()
    for i in range(12):
        Image.fromarray(_pattern(36 + 2 * i, 48 - i, i)).save(content / f"c{i:02d}.png")
    rng = np.random.default_rng(1)
    for i in range(3):
        blocks = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
        Image.fromarray(np.kron(blocks, np.ones((8, 8, 1), np.uint8))).save(style / f"s{i}.png")
    return {"content": str(content), "styles": sorted(glob.glob(str(style / "*.png")))}


def _fixed_batch(content_dir, count=8):
    return training.validation_batch(content_dir, SIZE, count=count)


def _weights(network):
    return [np.array(w) for w in network.get_weights()]


# --- Loss ---------------------------------------------------------------------------------------------

def test_layer_names_and_weight_parsing():
    assert training.parse_layer_weights(training.MAGENTA_STYLE_WEIGHTS, "vgg16") == {
        "block1_conv2": 1e-4, "block2_conv2": 1e-4, "block3_conv3": 1e-4, "block4_conv3": 1e-4}
    assert training.parse_layer_weights('{"vgg_19/conv4": 2, "relu1_1": 0.5}', "vgg19") == {
        "block4_conv4": 2.0, "block1_conv1": 0.5}
    assert training.parse_layer_weights({"conv3_3": 1, "block3_conv3": 1}, "vgg16") == {
        "block3_conv3": 2.0}
    with pytest.raises(ConfigError, match="JSON object"):
        training.parse_layer_weights("{vgg_16/conv3: 1}", "vgg16")
    with pytest.raises(ConfigError, match="finite and >= 0"):
        training.parse_layer_weights({"vgg_16/conv3": -1}, "vgg16")
    with pytest.raises(ConfigError, match="vgg_16/conv9"):
        training.parse_layer_weights({"vgg_16/conv9": 1}, "vgg16")
    with pytest.raises(LayerError):
        training.parse_layer_weights({"block9_conv1": 1}, "vgg16")


def test_perceptual_loss_matches_numpy_float64(rng):
    layers = ["block1_conv2", "block2_conv2", "block3_conv3"]
    extractor = FeatureExtractor("vgg16", layers, weights=None, pooling="avg",
                                 preprocessing="magenta")
    styles = [rng.random((24, 40, 3), dtype=np.float32), rng.random((32, 32, 3), dtype=np.float32)]
    content_w, style_w = {"block3_conv3": 0.7}, {"block1_conv2": 1e-2, "block2_conv2": 3e-3}
    loss = training.PerceptualLoss(extractor, styles, content_w, style_w, tv_weight=0.5)
    stylized = rng.random((3, 32, 32, 3), dtype=np.float32)
    content = rng.random((3, 32, 32, 3), dtype=np.float32)
    labels = np.array([1, 0, 1], np.int32)
    total, parts = loss(tf.constant(stylized), tf.constant(content), tf.constant(labels))

    def feats(x):
        return {k: np.asarray(v, np.float64) for k, v in extractor(x).items()}

    def gram(f):
        f = f.reshape(f.shape[0], -1, f.shape[-1])
        return np.einsum("bpc,bpd->bcd", f, f) / f.shape[1]

    fx, fc = feats(stylized), feats(content)
    targets = {k: np.stack([gram(feats(s[None])[k])[0] for s in styles]) for k in style_w}
    content_ref = sum(w * ((fx[k] - fc[k]) ** 2).mean(axis=(1, 2, 3)).mean()
                      for k, w in content_w.items())
    style_ref = sum(w * ((gram(fx[k]) - targets[k][labels]) ** 2).mean(axis=(1, 2)).mean()
                    for k, w in style_w.items())
    x = stylized.astype(np.float64)
    tv_ref = 0.5 * (((x[:, 1:] - x[:, :-1]) ** 2).mean() + ((x[:, :, 1:] - x[:, :, :-1]) ** 2).mean())
    np.testing.assert_allclose(float(parts["content"]), content_ref, rtol=1e-4)
    np.testing.assert_allclose(float(parts["style"]), style_ref, rtol=1e-4)
    np.testing.assert_allclose(float(parts["tv"]), tv_ref, rtol=1e-5)
    np.testing.assert_allclose(float(total), content_ref + style_ref + tv_ref, rtol=1e-4)


def test_perceptual_loss_errors(rng):
    extractor = FeatureExtractor("vgg16", ["block1_conv2"], weights=None)
    style = [rng.random((16, 16, 3), dtype=np.float32)]
    with pytest.raises(ConfigError, match=r"does not output layers \['block2_conv2'\]"):
        training.PerceptualLoss(extractor, style, {"block2_conv2": 1}, {"block1_conv2": 1})
    with pytest.raises(ConfigError, match="tv_weight"):
        training.PerceptualLoss(extractor, style, {}, {"block1_conv2": 1}, tv_weight=-1)
    with pytest.raises(ConfigError, match="at least one style"):
        training.PerceptualLoss(extractor, [], {}, {"block1_conv2": 1})


# --- Training -----------------------------------------------------------------------------------------

def test_short_cin_training_lowers_the_loss(images, tmp_path):
    """40 steps of CIN training on 12 images, 3 styles: the loss on a fixed batch (every style)
    drops by at least 40% (measured: about 69%, 2145 → 673). Random VGG weights, so only the
    objective is tested, not the art."""
    batch = _fixed_batch(images["content"])
    labels = np.arange(len(batch)) % 3

    def fixed_loss(network):
        extractor = FeatureExtractor("vgg16", ["block1_conv2", "block2_conv2", "block3_conv3",
                                               "block4_conv3"], weights=None, pooling="avg",
                                     preprocessing="magenta")
        loss = training.PerceptualLoss(extractor, [np.asarray(Image.open(p), np.float32) / 255
                                                   for p in images["styles"]],
                                       training.MAGENTA_CONTENT_WEIGHTS,
                                       training.MAGENTA_STYLE_WEIGHTS)
        trainer = training.StyleTrainer(network, loss)
        return float(trainer.compute_losses(tf.constant(batch), tf.constant(labels))[0])

    keras.utils.set_random_seed(0)
    before = fixed_loss(pastiche_network(3, alpha=0.25, style_input="labels"))
    net = training.train(images["content"], images["styles"], str(tmp_path / "run"), mode="cin",
                         train_steps=40, save_every=0, **FAST)
    after = fixed_loss(net)
    assert after < 0.6 * before, (before, after)
    assert set(net.train_history) >= {"loss", "content", "style", "tv", "images_per_sec"}
    assert net.skipped_images == 0


def test_johnson_training_and_saved_model_export(images, tmp_path):
    net = training.train(images["content"], images["styles"][:1], str(tmp_path / "run"),
                         mode="johnson", train_steps=3, save_every=0, tv_weight=1.0, **FAST)
    assert not is_conditional(net) and net.name == "johnson"
    export = str(tmp_path / "served")
    export_saved_model(net, export)
    served = tf.saved_model.load(export).signatures["serving_default"]
    x = _fixed_batch(images["content"], 1)
    np.testing.assert_allclose(served(image=tf.constant(x))["stylized_image"].numpy(),
                               np.asarray(net(x)), atol=1e-6)
    with pytest.raises(ConfigError, match="only pastiche"):
        export_magenta_checkpoint(net, str(tmp_path / "model.ckpt"))


class BatchCounter(keras.callbacks.Callback):
    """Counts the training steps a run takes."""

    count = 0

    def on_train_batch_end(self, batch, logs=None):
        self.count += 1


def test_resumed_run_matches_uninterrupted_run(images, tmp_path):
    common = dict(mode="cin", save_every=2, **FAST)
    straight = training.train(images["content"], images["styles"], str(tmp_path / "a"),
                              train_steps=4, **common)
    training.train(images["content"], images["styles"], str(tmp_path / "b"), train_steps=2, **common)
    assert tf.train.latest_checkpoint(str(tmp_path / "b")).endswith("ckpt-2")
    batches = BatchCounter()
    resumed = training.train(images["content"], images["styles"], str(tmp_path / "b"),
                             train_steps=4, callbacks=[batches], **common)
    assert tf.train.latest_checkpoint(str(tmp_path / "b")).endswith("ckpt-4")
    # It resumed: two steps ran (a restart from scratch would run four and give these weights).
    assert batches.count == 2 and resumed.final_step == 4
    for a, b in zip(_weights(straight), _weights(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # A third call has nothing left to do; a different setup in the same folder is refused.
    again = training.train(images["content"], images["styles"], str(tmp_path / "b"),
                           train_steps=4, **common)
    for a, b in zip(_weights(resumed), _weights(again)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="num_styles: saved 3 vs now 2"):
        training.train(images["content"], images["styles"][:2], str(tmp_path / "b"),
                       train_steps=6, **common)


def test_sigint_saves_and_stops(images, tmp_path):
    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    training.train(images["content"], images["styles"], str(tmp_path / "run"), mode="cin",
                   train_steps=50, save_every=0, callbacks=[Interrupt()], **FAST)
    assert signal.getsignal(signal.SIGINT) is previous          # handler restored
    latest = tf.train.latest_checkpoint(str(tmp_path / "run"))
    assert latest.endswith("ckpt-2")                             # stopped after the 2nd step
    reader = tf.train.load_checkpoint(latest)
    assert any("optimizer" in name for name in reader.get_variable_to_shape_map())


def test_checkpoint_of_another_network_is_a_clear_error(images, tmp_path):
    training.train(images["content"], images["styles"][:1], str(tmp_path / "run"),
                   mode="johnson", train_steps=1, save_every=0, **FAST)
    os.remove(tmp_path / "run" / training.CONFIG_FILE)            # defeat the config check
    with pytest.raises(CheckpointError, match="cannot resume from"):
        training.train(images["content"], images["styles"], str(tmp_path / "run"), mode="cin",
                       train_steps=2, save_every=0, **FAST)


def test_tensorboard_summaries(images, tmp_path):
    logs = tmp_path / "logs"
    options = dict(FAST, log_dir=str(logs))
    training.train(images["content"], images["styles"], str(tmp_path / "run"), mode="cin",
                   train_steps=2, save_every=0, summary_every=1, **options)
    tags, pictures = set(), []
    for path in glob.glob(str(logs / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.add(value.tag)
                tensor = tf.make_ndarray(value.tensor)
                if value.metadata.plugin_data.plugin_name == "images":
                    pictures.append((int(tensor[0]), int(tensor[1]), tf.io.decode_png(tensor[2])))
                elif value.tag == "learning_rate":
                    np.testing.assert_allclose(float(tensor), FAST["learning_rate"], rtol=1e-6)
    assert {"loss/loss", "loss/content", "loss/style", "loss/tv", "learning_rate",
            "images_per_sec", "stylized"} <= tags
    # One grid at the end of training: 4 validation images (rows) x 3 styles (columns).
    assert len(pictures) == 1
    width, height, png = pictures[0]
    assert png.shape == (4 * SIZE, 3 * SIZE, 3) and (width, height) == (3 * SIZE, 4 * SIZE)


def test_stylized_grid_layout(images, tmp_path):
    extractor = FeatureExtractor("vgg16", ["block1_conv2"], weights=None)
    styles = [np.full((16, 16, 3), v, np.float32) for v in (0.1, 0.5, 0.9)]
    loss = training.PerceptualLoss(extractor, styles, {}, {"block1_conv2": 1.0})
    net = pastiche_network(3, alpha=0.25, style_input="labels")
    for i, layer in enumerate(l for l in net.layers if isinstance(l, ConditionalInstanceNorm)):
        layer.beta.assign(np.random.default_rng(i).normal(0, 1, layer.beta.shape))
    trainer = training.StyleTrainer(net, loss)
    val = _fixed_batch(images["content"], 2)
    callback = training.SummaryCallback(str(tmp_path), trainer, val, every=1)
    grid = callback.stylized_grid().numpy()[0]
    assert grid.shape == (2 * SIZE, 3 * SIZE, 3)
    for v in range(2):
        for s in range(3):
            expected = np.asarray(net([val[v:v + 1], np.array([s])]))[0]
            np.testing.assert_allclose(grid[v * SIZE:(v + 1) * SIZE, s * SIZE:(s + 1) * SIZE],
                                       expected, atol=1e-6)


# --- Fine-tuning and Magenta export -------------------------------------------------------------------

def test_finetune_trains_only_new_gamma_beta(images, tmp_path):
    from magenta_compat import write_checkpoint

    keras.utils.set_random_seed(3)
    base = pastiche_network(2, alpha=0.25)
    for layer in base.layers:
        if isinstance(layer, ConditionalInstanceNorm):
            layer.gamma.assign(np.random.default_rng(0).uniform(0.5, 1.5, layer.gamma.shape))
    path = write_checkpoint(base, str(tmp_path / "base.ckpt"))
    net = training.train(images["content"], images["styles"][:1], str(tmp_path / "run"),
                         mode="finetune", checkpoint=path, train_steps=3, save_every=0, **FAST)
    assert net.get_layer("contract_conv1_norm").num_styles == 3
    changed = 0
    for layer in base.layers:
        new = net.get_layer(layer.name)
        if isinstance(layer, ConditionalInstanceNorm):
            for old_param, new_param in ((layer.gamma, new.gamma), (layer.beta, new.beta)):
                np.testing.assert_array_equal(np.asarray(new_param)[:2], np.asarray(old_param))
                changed += not np.allclose(np.asarray(new_param)[2],
                                           1.0 if old_param is layer.gamma else 0.0)
        else:
            for a, b in zip(layer.get_weights(), new.get_weights()):
                np.testing.assert_array_equal(a, b)                 # convs frozen
    assert changed == 32                                            # every new row moved
    assert {w.name for w in net.trainable_weights} == {"gamma", "beta"}


def test_finetune_needs_a_checkpoint(images, tmp_path):
    with pytest.raises(ConfigError, match="needs --checkpoint"):
        training.train(images["content"], images["styles"], str(tmp_path), mode="finetune", **FAST)
    with pytest.raises(CheckpointError):
        training.train(images["content"], images["styles"], str(tmp_path), mode="finetune",
                       checkpoint=str(tmp_path / "missing.ckpt"), **FAST)


def test_extend_styles_mean_init():
    base = pastiche_network(2, alpha=0.25)
    norm = base.get_layer("contract_conv2_norm")
    norm.beta.assign(np.stack([np.zeros(16), np.full(16, 2.0)]).astype(np.float32))
    extended = training.extend_styles(base, 2, init="mean")
    np.testing.assert_array_equal(np.asarray(extended.get_layer("contract_conv2_norm").beta)[2:],
                                  np.ones((2, 16), np.float32))
    with pytest.raises(ConfigError, match="init"):
        training.extend_styles(base, 1, init="zeros")


@pytest.mark.magenta
def test_trained_cin_network_runs_in_magenta(images, tmp_path):
    from tests.magenta_reference import MagentaTransformer

    net = training.train(images["content"], images["styles"], str(tmp_path / "run"), mode="cin",
                         train_steps=2, save_every=0, **FAST)
    path = export_magenta_checkpoint(net, str(tmp_path / "model.ckpt"), version="V1")
    reference = MagentaTransformer(3, alpha=0.25)
    sess = reference.restore(path)
    x = _fixed_batch(images["content"], 1)
    expected = reference.run_list(x, [0, 1, 2], sess=sess)
    ours = np.asarray(net([np.repeat(x, 3, 0), np.array([0, 1, 2])]))
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    # The SavedModel export takes mixing weights, one-hot = label.
    served = tf.saved_model.load(export_saved_model(net, str(tmp_path / "sm")))
    out = served.signatures["serving_default"](image=tf.constant(x),
                                               style_weights=tf.constant([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(out["stylized_image"].numpy(), expected[1:2], atol=1e-5)


# --- Mixed precision, configuration, distribution -----------------------------------------------------

def test_mixed_precision_keeps_loss_float32(images, tmp_path):
    net = training.train(images["content"], images["styles"][:1], str(tmp_path / "bf16"),
                         mode="johnson", train_steps=2, save_every=0,
                         mixed_precision="mixed_bfloat16", **FAST)
    assert net.dtype_policy.name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"   # restored
    assert all(w.dtype == "float32" for w in net.weights)
    assert np.isfinite(net.train_history["loss"][-1])
    extractor = FeatureExtractor("vgg16", ["block1_conv2"], weights=None)
    loss = training.PerceptualLoss(extractor, [np.ones((16, 16, 3), np.float32)], {},
                                   {"block1_conv2": 1.0})
    with training.dtype_policy("mixed_float16"):
        half = pastiche_network(1, alpha=0.25, style_input="labels")
    trainer = training.StyleTrainer(half, loss)
    trainer.compile()
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize("option,value,message", [
    ("mode", "fast", "mode must be one of"),
    ("mixed_precision", "float8", "mixed_precision must be"),
    ("strategy", "tpu", "strategy must be one of"),
    ("batch_size", 0, "batch_size must be an integer >= 1"),
    ("learning_rate", -1.0, "learning_rate must be a positive"),
])
def test_bad_configuration(images, tmp_path, option, value, message):
    options = dict(FAST, **{option: value})
    with pytest.raises(ConfigError, match=message):
        training.train(images["content"], images["styles"], str(tmp_path), **options)


def test_johnson_with_several_styles_is_refused(images, tmp_path):
    with pytest.raises(ConfigError, match="mode 'johnson' trains one style, got 3"):
        training.train(images["content"], images["styles"], str(tmp_path), mode="johnson", **FAST)


_DISTRIBUTED = r"""
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from nst_tf import training
from nst_tf.features import FeatureExtractor
from nst_tf.networks import pastiche_network

rng = np.random.default_rng(0)
images = rng.random((2, 8, 32, 32, 3), dtype=np.float32)          # 2 global batches of 8
labels = rng.integers(0, 2, (2, 8)).astype(np.int32)
styles = [rng.random((32, 32, 3), dtype=np.float32) for _ in range(2)]
keras.utils.set_random_seed(0)
initial = pastiche_network(2, alpha=0.25, style_input="labels").get_weights()

def run(strategy):
    with strategy.scope():
        fx = FeatureExtractor("vgg16", ["block1_conv2", "block2_conv2"], weights=None, seed=0)
        loss = training.PerceptualLoss(fx, styles, {"block2_conv2": 1.0}, {"block1_conv2": 1e-3})
        net = pastiche_network(2, alpha=0.25, style_input="labels")
        net.set_weights(initial)
        trainer = training.StyleTrainer(net, loss)
        trainer.compile(optimizer=keras.optimizers.SGD(1e-6))  # SGD: sees gradient scale
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    after_one = []
    snapshot = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: after_one or after_one.extend(net.get_weights()))
    history = trainer.fit(ds, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False,
                          callbacks=[snapshot])
    # Weights after one update, and the loss of step 2 (computed with them). Later steps are
    # not compared: this random loss landscape amplifies float rounding differences chaotically.
    return after_one, history.history["loss"][-1], strategy.num_replicas_in_sync

w1, l1, n1 = run(tf.distribute.get_strategy())
w2, l2, n2 = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
norm = lambda arrays: float(np.sqrt(sum(np.sum(np.square(a, dtype=np.float64)) for a in arrays)))
diff = norm([a - b for a, b in zip(w1, w2)])
scale = norm([a - b for a, b in zip(w1, initial)])
print(json.dumps({"replicas": [n1, n2], "loss": [float(l1), float(l2)], "diff": diff,
                  "moved": scale}))
"""


def test_two_logical_devices_match_one_device():
    """MirroredStrategy over 2 logical CPUs, same global batch: same loss and weights as one
    device. Runs in a subprocess because logical devices must be set before TF starts."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", _DISTRIBUTED], capture_output=True, text=True,
                            env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == [1, 2]
    np.testing.assert_allclose(report["loss"][0], report["loss"][1], rtol=1e-4)
    # Relative to how far the update moved the weights (L2 norms): a gradient averaged instead of
    # summed over replicas would differ by 50%; float reordering gives ~2e-6.
    assert report["moved"] > 1e-3                       # training did change the weights
    assert report["diff"] < 1e-4 * report["moved"], report
