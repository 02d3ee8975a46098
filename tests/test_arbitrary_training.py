"""nst-train --mode=arbitrary: Magenta's arbitrary-style network trained.

The loss against NumPy float64 and against Magenta's own training graph (``build_model`` with
``adds_losses=True``, batch norm in training mode) on the same batch and weights; the Inception
start from keras.applications; the style stream (stateless, resumable); a short training lowers
the loss; a resumed run equals an uninterrupted one; the CLI trains, ``nst_tf.stylize`` runs the
train_dir, and Magenta's graph restores ``--export_magenta``'s checkpoint with its Saver and gives
the same images.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import nst_tf
from magenta_compat import arbitrary as arb
from nst_tf import training
from nst_tf.data import validation_batch
from nst_tf.errors import ConfigError
from nst_tf.features import FeatureExtractor
from nst_tf.models.arbitrary import recipe
from nst_tf.models.arbitrary.inception import load_keras_inception_weights
from nst_tf.networks import arbitrary_network, style_prediction_network
from nst_tf.training.trainer import ImagePairTrainer

SIZE = 64
# Reduced widths, random weights, 64 px crops (style batches 43..74 px), batch 2.
FAST = dict(mode="arbitrary", batch_size=2, image_size=SIZE, weights="random", alpha=0.25,
            depth_multiplier=0.25, verbose=0, log_dir="", learning_rate=1e-3, save_every=0)
VGG_LAYERS = ["block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3"]


def write_training_images(root, contents=6, styles=4, width=90):
    """Smooth synthetic content images and blocky style images in ``root/content`` and
    ``root/style`` (made here, no files committed); ``{"content": folder, "style": folder}``."""
    content, style = root / "content", root / "style"
    content.mkdir()
    style.mkdir()
    rng = np.random.default_rng(5)
    for i in range(contents):
        y, x = np.mgrid[0:70 + 3 * i, 0:width - 2 * i]
        wave = np.sin(x / (3.0 + i) + y / 4.0)[..., None] * [1.0, 0.4, -0.6]
        Image.fromarray(np.clip(127 + 120 * wave, 0, 255).astype(np.uint8)).save(
            content / f"c{i}.png")
    for i in range(styles):
        blocks = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
        Image.fromarray(np.kron(blocks, np.ones((11, 11, 1), np.uint8))).save(style / f"s{i}.png")
    return {"content": str(content), "style": str(style)}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_training_images(tmp_path_factory.mktemp("arbitrary_images"))


def _extractor():
    return FeatureExtractor("vgg16", VGG_LAYERS, weights=None, pooling="avg",
                            preprocessing="magenta", seed=0)


# --- Loss ---------------------------------------------------------------------------------------

def _gram(f):
    f = f.reshape(f.shape[0], -1, f.shape[-1])
    return np.einsum("bpc,bpd->bcd", f, f) / f.shape[1]


def test_loss_matches_numpy_float64(rng):
    fx = _extractor()
    content_w, style_w = {"block3_conv3": 1.0}, {k: 0.5e-3 for k in VGG_LAYERS}
    loss = recipe.ArbitraryLoss(fx, recipe.ARBITRARY_CONTENT_WEIGHTS,
                                recipe.ARBITRARY_STYLE_WEIGHTS, tv_weight=1e4)
    stylized = rng.random((2, 32, 32, 3), dtype=np.float32)
    content = rng.random((2, 32, 32, 3), dtype=np.float32)
    style = rng.random((2, 40, 48, 3), dtype=np.float32)       # another size than the content
    total, parts = loss(tf.constant(stylized), tf.constant(content), tf.constant(style))

    def feats(x):
        return {k: np.asarray(v, np.float64) for k, v in fx(x).items()}

    fx_, fc, fs = feats(stylized), feats(content), feats(style)
    content_ref = sum(w * ((fx_[k] - fc[k]) ** 2).mean() for k, w in content_w.items())
    style_ref = sum(w * ((_gram(fx_[k]) - _gram(fs[k])) ** 2).mean() for k, w in style_w.items())
    x = stylized.astype(np.float64)
    b, h, w, c = x.shape   # Magenta: (l2(dy)/((H-1)WC) + l2(dx)/(H(W-1)C)) / B, l2 = sum/2
    tv_ref = 1e4 * (0.5 * ((x[:, 1:] - x[:, :-1]) ** 2).sum() / ((h - 1) * w * c)
                    + 0.5 * ((x[:, :, 1:] - x[:, :, :-1]) ** 2).sum() / (h * (w - 1) * c)) / b
    np.testing.assert_allclose(float(parts["content"]), content_ref, rtol=1e-4)
    np.testing.assert_allclose(float(parts["style"]), style_ref, rtol=1e-4)
    np.testing.assert_allclose(float(parts["tv"]), tv_ref, rtol=1e-5)
    np.testing.assert_allclose(float(total), content_ref + style_ref + tv_ref, rtol=1e-4)


def _vgg_to_magenta(extractor):
    """Magenta's ``vgg_16/convN/convN_M/{weights,biases}`` from the loss network's Keras VGG-16.
    Magenta feeds RGB to its first conv, Keras' weights take BGR: reverse its input channels."""
    values = {}
    for layer in extractor.model.layers:
        if not layer.name.startswith("block") or "conv" not in layer.name:
            continue
        block, conv = layer.name[5], layer.name.split("conv")[-1]
        kernel, bias = (np.asarray(w) for w in layer.get_weights())
        if layer.name == "block1_conv1":
            kernel = kernel[:, :, ::-1, :]
        scope = f"vgg_16/conv{block}/conv{block}_{conv}"
        values[f"{scope}/weights"], values[f"{scope}/biases"] = kernel, bias
    return values


@pytest.mark.magenta
@pytest.mark.slow
def test_loss_matches_magentas_training_graph(rng):
    """Magenta's build_model(is_training=True, adds_losses=True) with our weights (all 359 model
    variables and the VGG-16) on one batch: the same content, style, TV and total loss, the same
    stylized images and the same moving averages after the step's update (batch norm in
    training mode on both sides). Measured: images within 6.8e-6 (instance-norm moments are
    summed by rows, closer to float64 than Magenta's one running sum per channel; before that
    change they were identical), loss terms within 1e-5. Magenta's VGG runs to fc8, so the
    images are 224 px."""
    from tests.arbitrary_reference import import_arbitrary
    import tf_slim as slim

    build_model, _ = import_arbitrary()
    keras.utils.set_random_seed(3)
    network = arbitrary_network()
    values = {name: np.asarray(v) for name, v in arb.variable_slots(network).items()}
    for name, value in values.items():                 # benign values (see arbitrary_reference)
        if name.endswith("moving_variance"):
            values[name] = rng.uniform(0.5, 2.0, value.shape).astype(np.float32)
        elif name.endswith("Conv_1/biases"):
            values[name] = np.ones(value.shape, np.float32)
        elif name.endswith(("weights",)) and not name.startswith("style_params/"):
            values[name] = (rng.normal(0, np.sqrt(2.0 / np.prod(value.shape[:3])), value.shape)
                            .astype(np.float32))
    for name, variable in arb.variable_slots(network).items():
        variable.assign(values[name])
    extractor = _extractor()
    loss = recipe.ArbitraryLoss(extractor)
    trainer = ImagePairTrainer(network, loss)
    content = rng.random((2, 224, 224, 3), dtype=np.float32)
    style = rng.random((2, 232, 240, 3), dtype=np.float32)
    before = [np.asarray(v) for v in network.non_trainable_variables]
    stylized = np.asarray(network([content, style], training=True))
    for variable, value in zip(network.non_trainable_variables, before):
        variable.assign(value)                         # one update of the averages, as Magenta
    total, parts = trainer.compute_losses(tf.constant(content), tf.constant(style), training=True)
    averages = {name: np.asarray(v) for name, v in arb.variable_slots(network).items()
                if "moving_" in name}

    feeds = {**values, **_vgg_to_magenta(extractor)}
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        content_in = v1.placeholder(tf.float32, [None, None, None, 3])
        style_in = v1.placeholder(tf.float32, [None, None, None, 3])
        with slim.arg_scope([slim.batch_norm], updates_collections=None):
            output, total_loss, loss_dict, _ = build_model.build_model(
                content_in, style_in, trainable=True, is_training=True, adds_losses=True,
                content_weights={"vgg_16/conv3": 1.0},
                style_weights={f"vgg_16/conv{i}": 0.5e-3 for i in range(1, 5)},
                total_variation_weight=1e4)
        variables = {v.op.name: v for v in v1.global_variables()}
        assert set(values) <= set(variables)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            for name, value in feeds.items():
                variables[name].load(value, sess)
            theirs = sess.run({"image": output, "total": total_loss,
                               "content": loss_dict["total_content_loss"],
                               "style": loss_dict["total_style_loss"],
                               "tv": loss_dict["weighted_total_variation_loss"]},
                              {content_in: content, style_in: style})
            their_averages = sess.run({name: variables[name] for name in averages})
    print({k: (float(parts[k]), float(theirs[k])) for k in ("content", "style", "tv")},
          float(total), float(theirs["total"]),
          "max image diff", float(np.abs(stylized - theirs["image"]).max()))
    np.testing.assert_allclose(stylized, theirs["image"], atol=5e-5)
    for key in ("content", "style", "tv"):
        np.testing.assert_allclose(float(parts[key]), theirs[key], rtol=1e-5)
    np.testing.assert_allclose(float(total), theirs["total"], rtol=1e-5)
    assert any(not np.allclose(averages[n], values[n]) for n in averages)   # they did move
    for name, value in averages.items():
        np.testing.assert_allclose(value, their_averages[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)


# --- Network start, data ------------------------------------------------------------------------

def test_keras_inception_weights_fill_the_trunk(rng):
    """The 70 convs and batch norms of keras.applications.InceptionV3 (random here: ImageNet is
    a download) go where slim's are: our trunk's Mixed_6e equals Keras' mixed7 (kernels scaled
    so no activation reaches 6, where our ReLU6 and Keras' ReLU agree)."""
    keras.utils.set_random_seed(1)
    theirs = keras.applications.InceptionV3(include_top=False, weights=None,
                                            input_shape=(None, None, 3))
    for layer in theirs.layers:
        if isinstance(layer, keras.layers.Conv2D):
            layer.kernel.assign(layer.kernel * 0.5)
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.beta.assign(rng.normal(0, 0.1, layer.beta.shape))
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape))
    predictor = style_prediction_network()
    assert load_keras_inception_weights(predictor, theirs) == 70
    image = rng.random((1, 99, 107, 3), dtype=np.float32)
    expected = keras.Model(theirs.input, theirs.get_layer("mixed7").output)(image).numpy()
    ours = keras.Model(predictor.input, predictor.get_layer("Mixed_6e_concat").output)(image)
    probe = keras.Model(theirs.input, [l.output for l in theirs.layers
                                       if isinstance(l, keras.layers.Activation)][:70])(image)
    assert max(float(np.max(p)) for p in probe) < 6.0          # ReLU6 == ReLU here
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="depth_multiplier=1"):
        load_keras_inception_weights(style_prediction_network(depth_multiplier=0.5), theirs)


def test_style_stream_is_stateless_and_augmented(images):
    stream = recipe.style_stream(images["style"], SIZE, batch_size=2, seed=4)
    first = [b.numpy() for b in stream.take(3)]
    resumed = next(iter(recipe.style_stream(images["style"], SIZE, batch_size=2, seed=4,
                                            start_batch=2))).numpy()
    np.testing.assert_array_equal(resumed, first[2])           # batch 2, again
    low, high = recipe.style_batch_sides(SIZE)
    assert all(b.shape[0] == 2 and b.shape[1] == b.shape[2] and low <= b.shape[1] < high
               for b in first)
    assert len({b.shape[1] for b in first}) > 1 or len(first) < 3  # sizes vary per batch
    plain = validation_batch(images["style"], SIZE, count=4)
    assert all(0.0 <= b.min() and b.max() <= 1.0 for b in first)
    assert not np.allclose(first[0].mean(), plain.mean(), atol=1e-3)  # colours were jittered


def test_recipe_checks(images, tmp_path):
    with pytest.raises(ConfigError, match="at least 43"):
        training.train(images["content"], images["style"], str(tmp_path), **{**FAST,
                                                                              "image_size": 32})
    with pytest.raises(ConfigError, match="depth_multiplier=1"):
        training.train(images["content"], images["style"], str(tmp_path),
                       **{**FAST, "weights": "imagenet"})
    with pytest.raises(ConfigError, match="style_size does not apply to mode arbitrary"):
        training.train(images["content"], images["style"], str(tmp_path), style_size=64, **FAST)


# --- Training -----------------------------------------------------------------------------------

def _fixed_loss(network, images):
    """The loss of one fixed batch (batch norm in training mode, as in training)."""
    content = validation_batch(images["content"], SIZE, count=4)
    style = validation_batch(images["style"], SIZE, count=4)
    trainer = ImagePairTrainer(network, recipe.ArbitraryLoss(_extractor()))
    return float(trainer.compute_losses(tf.constant(content), tf.constant(style),
                                        training=True)[0])


@pytest.mark.slow
def test_training_lowers_the_loss_and_resumes_exactly(images, tmp_path):
    """16 steps (random weights; the style stream without Magenta's augmentation, so that every
    step sees the styles of the fixed batch) lower the fixed-batch loss (measured 11320 → 4007);
    4 steps in one run and
    2 + 2 with a resume give the same weights, batch norm statistics included (with the
    augmentation: its random choices are stateless, so a resumed run draws them again)."""
    keras.utils.set_random_seed(0)
    untrained, _ = training.build_network("arbitrary", weights="random", alpha=0.25,
                                          depth_multiplier=0.25)
    before = _fixed_loss(untrained, images)
    trained = training.train(images["content"], images["style"], str(tmp_path / "long"),
                             train_steps=16, augment_style_images=False,
                             random_style_image_size=False, **FAST)
    after = _fixed_loss(trained, images)
    print("fixed-batch loss before / after 16 steps:", before, after)
    assert after < 0.7 * before, (before, after)
    assert set(trained.train_history) >= {"loss", "content", "style", "tv"}

    straight = training.train(images["content"], images["style"], str(tmp_path / "a"),
                              train_steps=4, **FAST)
    training.train(images["content"], images["style"], str(tmp_path / "b"), train_steps=2,
                   **FAST)
    resumed = training.train(images["content"], images["style"], str(tmp_path / "b"),
                             train_steps=4, **FAST)
    assert resumed.final_step == 4
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="alpha: saved 0.25 vs now 0.5"):
        training.train(images["content"], images["style"], str(tmp_path / "b"), train_steps=6,
                       **{**FAST, "alpha": 0.5})


@pytest.mark.magenta
@pytest.mark.slow
def test_cli_trains_stylizes_and_exports_for_magenta(images, tmp_path, capsys):
    """Full width (Magenta's graph has no width options), 2 steps: the train_dir is a stylize
    model; --export_magenta writes a checkpoint that Magenta's Saver restores into its own
    build_model graph, which then gives our images."""
    from nst_tf.cli import train as cli
    from tests.arbitrary_reference import MagentaArbitrary

    run, path = tmp_path / "run", str(tmp_path / "magenta" / "model.ckpt")
    os.makedirs(os.path.dirname(path))
    code = cli.main(["nst-train", "--mode=arbitrary", f"--content_images={images['content']}",
                     f"--style_images={images['style']}", f"--train_dir={run}",
                     "--weights=random", "--batch_size=2", f"--image_size={SIZE}",
                     "--train_steps=2", "--learning_rate=1e-3", "--logdir=", "--verbose=0",
                     f"--export_magenta={path}"])
    assert code == 0, capsys.readouterr().err
    assert path in capsys.readouterr().out
    from nst_tf.training import load_train_dir

    network = load_train_dir(str(run))
    rng = np.random.default_rng(2)
    photo = rng.random((30, 41, 3)).astype(np.float32)
    style = rng.random((64, 70, 3)).astype(np.float32)
    out = nst_tf.stylize(photo, style, model=str(run), style_size=None, crop=False)
    np.testing.assert_allclose(out, network([photo[None], style[None]])[0], atol=1e-4)

    reference = MagentaArbitrary(seed=0, style_size=64)
    sess = reference.restore(path)
    restored = reference.get_values(sess)
    for name, value in arb.network_variables(network).items():
        np.testing.assert_array_equal(restored[name], value, err_msg=name)
    theirs = reference.run(photo[None], style[None], sess=sess)[0]
    diff = float(np.abs(out - theirs).max())
    print("max |nst-tf - Magenta graph| of the exported network:", diff)
    assert diff <= 1e-4
    sess.close()
