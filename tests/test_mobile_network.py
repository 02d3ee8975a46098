"""The MobileNetV2 style predictor and ``arbitrary_network(predictor=...)``: layout, names,
checkpoints, the folded batch norm, and one-line errors for missing, foreign and mismatched
model files. Random weights; trained ones are in test_mobile_trained.py.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import onnx
import pytest
import tensorflow as tf

import nst_tf
from magenta_compat import arbitrary as arb
from magenta_compat import mobile
from nst_tf import families
from nst_tf.errors import CheckpointError, ConfigError
from nst_tf.models.arbitrary import mobilenet
from nst_tf.models.arbitrary.inception import SlimBatchNorm
from nst_tf.models.arbitrary.inputs import preprocess_style
from nst_tf.networks import (arbitrary_config, arbitrary_network, style_prediction_network,
                             style_predictor_of)
from onnx_reference import PREDICT, TRANSFORM, onnx_path, pair_folder


def thin_mobile(seed=0):
    """A thin mobile network (trunk x0.35, transformer x0.25) with benign random weights."""
    net = arbitrary_network(alpha=0.25, depth_multiplier=0.35, predictor="mobilenet_v2")
    rng = np.random.default_rng(seed)
    for w in net.weights:
        if "moving_variance" in w.path:
            w.assign(rng.uniform(0.5, 2.0, w.shape).astype(np.float32))
        elif "moving_mean" in w.path or "beta" in w.path:
            w.assign(rng.normal(0, 0.1, w.shape).astype(np.float32))
        elif "gamma_bias" in w.path:
            w.assign(np.ones(w.shape, np.float32))
        elif len(w.shape) == 4:
            fan_in = np.prod(w.shape[:2]) * (1 if "depthwise" in w.path else w.shape[2])
            w.assign(rng.normal(0, np.sqrt(2.0 / fan_in), w.shape).astype(np.float32))
    return net


# --- Layout ------------------------------------------------------------------------------------

def test_trunk_is_keras_applications_mobilenet_v2_under_slim_names():
    predictor = style_prediction_network(predictor="mobilenet_v2")
    reference = keras.applications.MobileNetV2(alpha=1.0, include_top=False, weights=None,
                                               input_shape=(None, None, 3))
    rng = np.random.default_rng(1)
    for w in reference.weights:             # batch norms that do something
        if "moving_variance" in w.path:
            w.assign(rng.uniform(0.5, 2.0, w.shape))
        elif "moving_mean" in w.path or "beta" in w.path or "gamma" in w.path:
            w.assign(rng.normal(0.5 if "gamma" in w.path else 0.0, 0.1, w.shape))
    assert mobilenet.load_keras_mobilenet_weights(predictor, reference) == 52
    trunk = keras.Model(predictor.input, predictor.get_layer("Conv_1_relu6").output)
    image = rng.random((1, 64, 96, 3)).astype(np.float32)  # even sides: Keras' pads are SAME's
    ours, theirs = trunk(image).numpy(), reference(image).numpy()
    assert ours.shape == theirs.shape == (1, 2, 3, 1280)
    assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()
    assert predictor.count_params() == reference.count_params() + 1280 * 100 + 100


@pytest.mark.parametrize("multiplier", [1.0, 0.35])
def test_config_rebuilds_the_same_network(multiplier):
    net = arbitrary_network(alpha=0.25, depth_multiplier=multiplier, predictor="mobilenet_v2")
    config = arbitrary_config(net)
    assert config == {"embedding_size": 100, "alpha": 0.25, "depth_multiplier": multiplier,
                      "predictor": "mobilenet_v2"}
    again = arbitrary_network(**config)
    assert [w.shape for w in again.weights] == [w.shape for w in net.weights]


def test_unknown_predictor_is_a_config_error():
    with pytest.raises(ConfigError, match="predictor must be one of inception_v3, mobilenet_v2"):
        arbitrary_network(predictor="resnet")


def test_every_trunk_batch_norm_comes_from_one_factory(monkeypatch):
    class Marked(SlimBatchNorm):
        pass

    monkeypatch.setattr(mobilenet, "batch_norm", lambda name: Marked(scale=True, name=name))
    predictor = style_prediction_network(depth_multiplier=0.35, predictor="mobilenet_v2")
    norms = [layer for layer in predictor.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 52 and all(type(layer) is Marked for layer in norms)


@pytest.mark.parametrize("scale", [True, False])
def test_a_folded_batch_norm_adds_its_bias_exactly(scale):
    layer = SlimBatchNorm(scale=scale)
    layer.build((1, 4, 4, 5))
    bias = np.random.default_rng(2).normal(0, 1, 5).astype(np.float32)
    mobile._folded_norm(layer, bias, "test")
    x = np.random.default_rng(3).normal(0, 3, (1, 4, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x + bias)


def test_styles_go_in_as_centre_squares():
    image = np.random.default_rng(4).random((90, 150, 3)).astype(np.float32)
    square = preprocess_style(image, 60, square=True)
    full = preprocess_style(image, 60)
    assert full.shape == (60, 100, 3) and square.shape == (60, 60, 3)
    np.testing.assert_array_equal(square, full[:, 20:80])


# --- Magenta's mobile checkpoint ---------------------------------------------------------------

def test_magenta_checkpoint_names_and_round_trip(tmp_path):
    net = thin_mobile()
    path = arb.write_arbitrary_checkpoint(net, str(tmp_path / "model.ckpt"))
    names = dict(tf.train.list_variables(path))
    assert len(names) == 339 and sum(n.startswith("MobilenetV2/") for n in names) == 260
    assert names["MobilenetV2/expanded_conv/depthwise/depthwise_weights"] == [3, 3, 16, 1]
    assert names["MobilenetV2/Conv_1/BatchNorm/gamma"] == [448]
    assert names["mobilenet_conv/Conv/weights"] == [1, 1, 448, 100]
    assert "Conv/weights" not in names and not any(n.startswith("InceptionV3") for n in names)
    family, loaded = families.resolve(path)
    assert family.name == "arbitrary" and arbitrary_config(loaded) == arbitrary_config(net)
    for mine, theirs in zip(loaded.weights, net.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


# --- Files that are not Magenta's mobile pair ---------------------------------------------------

def _onnx_file(path, input_shape, convs=0):
    """A small ONNX model: ``convs`` 3x3 convs (or a Relu) on one input."""
    helper = onnx.helper
    nodes, inits, last = [], [], "x"
    channels = input_shape[-1]
    for i in range(convs):
        inits.append(onnx.numpy_helper.from_array(np.zeros((8, channels, 3, 3), np.float32),
                                                  f"w{i}"))
        nodes.append(helper.make_node("Conv", [last, f"w{i}"], [f"y{i}"], pads=[1, 1, 1, 1]))
        last, channels = f"y{i}", 8
    if not convs:
        nodes.append(helper.make_node("Relu", ["x"], ["y"]))
        last = "y"
    graph = helper.make_graph(
        nodes, "foreign", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                         input_shape)],
        [helper.make_tensor_value_info(last, onnx.TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph), str(path))
    return str(path)


def _folder(tmp_path, name, *sources):
    folder = tmp_path / name
    folder.mkdir()
    for i, source in enumerate(sources):
        os.symlink(onnx_path(source), folder / f"{i}_{source}")
    return folder


@pytest.mark.parametrize("make, message", [
    (lambda t: _folder(t, "none"), "holds no TF Lite or ONNX file; expected the two files"),
    (lambda t: _folder(t, "half", PREDICT),
     "has no style transfer model (it holds 0_arbitrary_predict.onnx); expected Magenta's "
     "style transfer model (a [1, H, W, 3] content image and a [1, 1, 1, 100] embedding"),
    (lambda t: _folder(t, "twice", PREDICT, PREDICT, TRANSFORM),
     "holds 2 style prediction models (0_arbitrary_predict.onnx, 1_arbitrary_predict.onnx); "
     "keep one pair per folder"),
])
def test_missing_and_doubled_files(tmp_path, make, message):
    folder = make(tmp_path)
    with pytest.raises(CheckpointError) as error:
        mobile.load_mobile_network(str(folder))
    assert message in str(error.value) and str(folder) in str(error.value)
    assert "\n" not in str(error.value)


def test_foreign_and_mismatched_files(tmp_path):
    folder = _folder(tmp_path, "foreign", PREDICT, TRANSFORM)
    foreign = _onnx_file(folder / "classifier.onnx", [1, 10])
    with pytest.raises(CheckpointError, match=r"classifier.onnx is an ONNX model: \[1, 10\] -> "
                                              r"\?, neither of Magenta's mobile models"):
        nst_tf.stylize(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), model=str(folder))
    os.remove(foreign)
    os.remove(folder / f"0_{PREDICT}")
    _onnx_file(folder / "predict.onnx", [1, 256, 256, 3], convs=2)
    with pytest.raises(CheckpointError, match=r"predict.onnx has 2 convolutions; expected "
                                              r"Magenta's style prediction model .*: 53$"):
        mobile.load_mobile_network(str(folder))
    os.remove(folder / "predict.onnx")
    os.symlink(onnx_path(PREDICT), folder / "p.onnx")
    model = onnx.load(onnx_path(TRANSFORM))
    model.graph.input[1].type.tensor_type.shape.dim[3].dim_value = 64
    os.remove(folder / f"1_{TRANSFORM}")
    onnx.save(model, str(folder / "t.onnx"))
    with pytest.raises(CheckpointError, match=r"p.onnx predicts 100-d embeddings but .*t.onnx "
                                              r"takes 64-d ones; the two files are not one "
                                              r"model"):
        mobile.load_mobile_network(str(folder))


def test_unreadable_tflite_and_missing_onnx_package(tmp_path, monkeypatch):
    folder = _folder(tmp_path, "broken", TRANSFORM)
    (folder / "p.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(40))
    with pytest.raises(CheckpointError, match=r"p.tflite is not a readable TF Lite model"):
        mobile.load_mobile_network(str(folder))
    os.remove(folder / "p.tflite")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(CheckpointError, match=r"reading ONNX files needs the onnx package: "
                                              r"pip install 'nst-tf\[onnx\]'"):
        mobile.load_mobile_network(str(folder))


def test_nst_export_names_the_missing_file_in_one_line(tmp_path):
    folder = _folder(tmp_path, "half", TRANSFORM)
    output = tmp_path / "out.keras"
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "nst-export"),
                           f"--model={folder}", f"--output={output}"],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert done.returncode == 1 and not output.exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"nst-export: error: {folder} has no style "
                                                   "prediction model")
