"""nst-train --mode=adain: the loss against NumPy, training lowers it, resume, Ctrl-C, the CLI."""

import glob
import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import nst_tf
from nst_tf import training
from nst_tf.models.adain import recipe as adain_training
from nst_tf.errors import ConfigError
from nst_tf.networks import adain_network

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "adain")
SIZE = 32
# 1/16-width networks (alpha = 1/16), random encoder, 32 px crops, batch 4.
FAST = dict(mode="adain", batch_size=4, image_size=SIZE, weights="random", alpha=1 / 16,
            verbose=0, log_dir="", learning_rate=1e-3)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("adain_images")
    content, style = root / "content", root / "style"
    content.mkdir()
    style.mkdir()
    rng = np.random.default_rng(3)
    for i in range(8):
        y, x = np.mgrid[0:40 + i, 44 - i:88 - 2 * i]
        wave = np.sin(x / (2.0 + i) + y / 3.0)[..., None] * [1.0, 0.3, -0.5]
        Image.fromarray(np.clip(127 + 120 * wave, 0, 255).astype(np.uint8)).save(
            content / f"c{i}.png")
    for i in range(5):
        blocks = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        Image.fromarray(np.kron(blocks, np.ones((8, 8, 1), np.uint8))).save(style / f"s{i}.png")
    return {"content": str(content), "style": str(style)}


def _mean_std(features):
    flat = features.reshape(features.shape[0], -1, features.shape[-1]).astype(np.float64)
    return flat.mean(1), np.sqrt(flat.var(1, ddof=1) + 1e-5)


def _numpy_loss(net, content, style):
    encoder, decoder = net.get_layer("encoder"), net.get_layer("decoder")
    style_features = [f.numpy() for f in encoder(style)]
    target = net.get_layer("adain")([encoder(content)[-1], encoder(style)[-1]]).numpy()
    ours = [f.numpy() for f in encoder(decoder(target))]
    content_loss = np.mean((ours[-1].astype(np.float64) - target) ** 2)
    style_loss = 0.0
    for mine, theirs in zip(ours, style_features):
        (m1, s1), (m2, s2) = _mean_std(mine), _mean_std(theirs)
        style_loss += 10 * (np.mean((m1 - m2) ** 2) + np.mean((s1 - s2) ** 2))
    return content_loss, style_loss


@pytest.mark.parametrize("encoder", ["normalised", "keras"])
def test_loss_matches_numpy(rng, encoder):
    net = adain_network(encoder, channel_divisor=16, seed=1)
    content = rng.random((2, 32, 32, 3)).astype(np.float32)
    for style in (rng.random((2, 32, 32, 3)), rng.random((2, 24, 40, 3))):  # one pass / two
        style = style.astype(np.float32)
        total, parts = adain_training.AdainLoss()(net, content, style)
        content_loss, style_loss = _numpy_loss(net, content, style)
        np.testing.assert_allclose(float(parts["content"]), content_loss, rtol=1e-4)
        np.testing.assert_allclose(float(parts["style"]), style_loss, rtol=1e-4)
        np.testing.assert_allclose(float(total), content_loss + style_loss, rtol=1e-4)
    with pytest.raises(ConfigError, match="relu4_1"):
        adain_training.AdainLoss(content_weights={"relu3_1": 1.0})


def test_published_learning_rate_decay():
    schedule = adain_training.learning_rate()
    for step in (0, 1, 1000, 160000):
        np.testing.assert_allclose(float(schedule(step)), 1e-4 / (1 + 5e-5 * step), rtol=1e-6)


def _fixed_loss(network, images):
    content = training.validation_batch(images["content"], SIZE, count=4)
    style = training.validation_batch(images["style"], SIZE, count=4)
    return float(adain_training.AdainLoss()(network, content, style)[0])


def _weights(network):
    return [np.array(w) for w in network.get_layer("decoder").get_weights()]


def test_interrupted_and_resumed_run_matches_uninterrupted_run(images, tmp_path):
    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                os.kill(os.getpid(), signal.SIGINT)

    common = dict(save_every=0, **FAST)
    straight = training.train(images["content"], images["style"], str(tmp_path / "a"),
                              train_steps=4, **common)
    previous = signal.getsignal(signal.SIGINT)
    stopped = training.train(images["content"], images["style"], str(tmp_path / "b"),
                             train_steps=4, callbacks=[Interrupt()], **common)
    assert signal.getsignal(signal.SIGINT) is previous            # handler restored
    assert stopped.interrupted and stopped.final_step == 2        # Ctrl-C: saved, stopped
    assert tf.train.latest_checkpoint(str(tmp_path / "b")).endswith("ckpt-2")
    assert not os.path.exists(tmp_path / "b" / "adain.keras")     # no model from a partial run
    photo, style = np.random.default_rng(1).random((16, 16, 3)), np.full((16, 16, 3), 0.3)
    np.testing.assert_allclose(nst_tf.stylize(photo, style, model=str(tmp_path / "b")),
                               nst_tf.stylize(photo, style, model=stopped), atol=1e-6)
    resumed = training.train(images["content"], images["style"], str(tmp_path / "b"),
                             train_steps=4, **common)
    assert resumed.final_step == 4 and os.path.exists(tmp_path / "b" / "adain.keras")
    for a, b in zip(_weights(straight), _weights(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="backbone: saved 'adain-normalised' vs now "
                                          "'adain-keras'"):
        training.train(images["content"], images["style"], str(tmp_path / "b"), train_steps=6,
                       **{**common, "encoder": "keras"})


def test_cli_training_lowers_the_loss_and_gives_a_model(images, tmp_path):
    """Random encoder (the PyTorch fixture's, read from its .pth) and the fixture decoder as
    --init_decoder; 30 steps lower the loss; adain.keras and the train_dir are stylize models."""
    from nst_tf.cli import train as cli
    from torch_compat.pth import read_state_dict

    vgg, decoder = os.path.join(FIXTURE, "vgg_normalised.pth"), os.path.join(FIXTURE, "decoder.pth")
    start, _ = adain_training.build(weights=vgg, alpha=1 / 16, init_decoder=decoder)
    np.testing.assert_array_equal(start.get_layer("decoder").get_layer("dec4_1").get_weights()[0],
                                  read_state_dict(decoder)["1.weight"].transpose(2, 3, 1, 0))
    run = tmp_path / "cli"
    code = cli.main(["nst-train", "--mode=adain", f"--content_images={images['content']}",
                     f"--style_images={images['style']}", f"--train_dir={run}",
                     f"--weights={vgg}", f"--init_decoder={decoder}", "--alpha=0.0625",
                     "--batch_size=4", f"--image_size={SIZE}", "--train_steps=30",
                     "--learning_rate=1e-3", "--summary_every=10", "--verbose=0"])
    assert code == 0
    trained = nst_tf.families.load_keras_file(str(run / "adain.keras"))
    before, after = _fixed_loss(start, images), _fixed_loss(trained, images)
    assert after < 0.7 * before, (before, after)
    events = glob.glob(str(run / "logs" / "events.*"))
    tags = {v.tag for e in events for r in tf.compat.v1.train.summary_iterator(e)
            for v in r.summary.value}
    assert {"stylized", "loss/content", "loss/style", "learning_rate"} <= tags
    photo = np.random.default_rng(0).random((20, 27, 3))
    style = os.path.join(images["style"], "s0.png")
    out = nst_tf.stylize(photo, style, model=str(run / "adain.keras"), crop=True)
    assert out.shape == (20, 27, 3)
    np.testing.assert_array_equal(out, nst_tf.stylize(photo, style, model=str(run), crop=True))
    assert cli.main(["nst-train", "--mode=adain", f"--content_images={images['content']}",
                     f"--style_images={images['style']}", f"--train_dir={tmp_path / 'x'}",
                     "--alpha=0.3", "--weights=random", "--verbose=0"]) == 1
