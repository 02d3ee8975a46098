"""FeatureExtractor: names and aliases, errors, shapes per backbone, pooling, preprocessing, weights."""

import os
import subprocess
import sys
import urllib.error

import h5py
import keras
import numpy as np
import pytest

from nst_tf import features
from nst_tf.errors import (CheckpointError, ConfigError, ImageError, LayerError,
                           WeightsUnavailableError)
from nst_tf.features import FeatureExtractor, default_layers, resolve_layer_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Channels and downsampling factor of each default layer, from the published architectures.
EXPECTED = {
    "vgg19": {"block4_conv2": (512, 8), "block1_conv1": (64, 1), "block2_conv1": (128, 2),
              "block3_conv1": (256, 4), "block4_conv1": (512, 8), "block5_conv1": (512, 16)},
    "vgg16": {"block4_conv2": (512, 8), "block1_conv1": (64, 1), "block2_conv1": (128, 2),
              "block3_conv1": (256, 4), "block4_conv1": (512, 8), "block5_conv1": (512, 16)},
    "resnet50": {"conv4_block1_out": (1024, 16), "conv1_relu": (64, 2),
                 "conv2_block1_out": (256, 4), "conv3_block1_out": (512, 8),
                 "conv5_block1_out": (2048, 32)},
}


@pytest.fixture(scope="module")
def vgg19():
    return FeatureExtractor("vgg19", weights=None, seed=0)


@pytest.fixture(scope="module")
def rng64():
    return np.random.default_rng(7)


# --- Names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("alias, canonical", [
    ("conv4_2", "block4_conv2"), ("relu4_2", "block4_conv2"), ("relu1_1", "block1_conv1"),
    ("conv5_4", "block5_conv4"), ("pool4", "block4_pool"), ("block3_conv2", "block3_conv2"),
])
def test_caffe_aliases(alias, canonical):
    assert resolve_layer_name("vgg19", alias) == canonical


def test_vgg16_has_three_convs_in_block3():
    assert resolve_layer_name("vgg16", "relu3_3") == "block3_conv3"
    with pytest.raises(LayerError, match="unknown layer 'conv3_4' for backbone vgg16"):
        resolve_layer_name("vgg16", "conv3_4")
    assert resolve_layer_name("vgg19", "conv3_4") == "block3_conv4"


def test_unknown_layer_message_lists_valid_names_and_suggests():
    with pytest.raises(LayerError) as info:
        resolve_layer_name("vgg19", "blok4_conv2")
    message = str(info.value)
    assert "unknown layer 'blok4_conv2'" in message
    assert "Did you mean 'block4_conv2'" in message
    for name in features.layer_names("vgg19"):
        assert name in message
    assert "relu4_2" in message  # the alias forms are explained
    with pytest.raises(LayerError, match="Did you mean 'conv4_2'"):
        resolve_layer_name("vgg19", "conv4_22")


def test_unknown_backbone_lists_backbones():
    with pytest.raises(LayerError, match="unknown backbone 'vgg20'.*vgg19, vgg16, resnet50, "
                                         "inception_v3"):
        FeatureExtractor("vgg20", weights=None)
    with pytest.raises(LayerError, match="unknown backbone"):
        default_layers("alexnet")


def test_unknown_layer_fails_before_building(monkeypatch):
    monkeypatch.setattr(features, "_build_backbone", lambda *a: pytest.fail("built a model"))
    with pytest.raises(LayerError, match="conv6_1"):
        FeatureExtractor("vgg19", layers=["conv1_1", "conv6_1"], weights=None)


def test_default_layers_are_valid():
    for backbone in ("vgg19", "vgg16"):
        content, style = default_layers(backbone)
        for name in content + style:
            assert resolve_layer_name(backbone, name) == name
    assert default_layers("vgg19") == (("block4_conv2",), tuple(f"block{i}_conv1"
                                                               for i in range(1, 6)))


# --- Outputs -------------------------------------------------------------------------------

def check_outputs(extractor, size, rng):
    out = extractor(rng.random((2, size, size + 8, 3), np.float32))
    assert list(out) == extractor.layers
    # VGG pools with "valid" padding (floor); ResNet's strided layers pad (ceil).
    scale = (lambda s, f: -(-s // f)) if extractor.backbone == "resnet50" else (lambda s, f: s // f)
    for name, (channels, factor) in EXPECTED[extractor.backbone].items():
        expected = (2, scale(size, factor), scale(size + 8, factor), channels)
        assert tuple(out[name].shape) == expected, name
        assert np.all(np.isfinite(out[name].numpy()))


def test_vgg19_outputs(vgg19, rng64):
    assert vgg19.layers == ["block4_conv2", "block1_conv1", "block2_conv1", "block3_conv1",
                            "block4_conv1", "block5_conv1"]
    check_outputs(vgg19, 64, rng64)
    assert vgg19.model.trainable_weights == []


def test_vgg16_outputs(rng64):
    check_outputs(FeatureExtractor("vgg16", weights=None), 64, rng64)


def test_resnet50_outputs(rng64):
    check_outputs(FeatureExtractor("resnet50", weights=None), 96, rng64)


def test_inception_v3_outputs_and_stable_names(rng64):
    content, style = default_layers("inception_v3")
    ex = FeatureExtractor("inception_v3", layers=list(content + style) + ["mixed10"],
                          weights=None)
    # Unnamed layers get first-build numbers whatever Keras numbered this build.
    assert ex.all_layer_names[:4] == ["conv2d", "batch_normalization", "activation", "conv2d_1"]
    assert ex.layers == ["mixed3", "activation_2", "activation_4", "mixed0", "mixed2", "mixed5",
                         "mixed10"]
    out = ex(rng64.random((1, 96, 96, 3), np.float32))
    channels = {"mixed3": 768, "activation_2": 64, "activation_4": 192, "mixed0": 256,
                "mixed2": 288, "mixed5": 768, "mixed10": 2048}
    assert {k: v.shape[-1] for k, v in out.items()} == channels
    # keras.applications documents 75 px as InceptionV3's minimum input (without the top):
    # 75 runs, 74 raises ImageError instead of crashing inside TF.
    assert ex.min_input_size == 75
    assert ex(np.zeros((1, 75, 75, 3), np.float32))["mixed10"].shape[1:3] == (1, 1)
    with pytest.raises(ImageError, match="at least 75x75"):
        ex(np.zeros((1, 74, 80, 3), np.float32))


def test_model_is_cut_at_the_deepest_layer():
    ex = FeatureExtractor("vgg19", layers=["relu2_1", "conv1_1"], weights=None)
    # block1_conv1, block1_conv2, block2_conv1: three kernels and three biases, nothing deeper.
    assert len(ex.model.weights) == 6
    assert ex.layers == ["block2_conv1", "block1_conv1"]


def test_min_input_size_and_small_images(vgg19):
    assert vgg19.min_input_size == 16  # four 2x2 poolings before block5_conv1
    assert FeatureExtractor("vgg19", layers=["pool5"], weights=None).min_input_size == 32
    assert FeatureExtractor("vgg19", layers=["conv1_1"], weights=None).min_input_size == 1
    assert vgg19(np.zeros((1, 16, 16, 3), np.float32))["block5_conv1"].shape[1:3] == (1, 1)
    with pytest.raises(ImageError, match="15x20 is too small.*at least 16x16"):
        vgg19(np.zeros((1, 20, 15, 3), np.float32))
    with pytest.raises(ImageError, match=r"\[B, H, W, 3\]"):
        vgg19(np.zeros((1, 32, 32, 4), np.float32))


def test_random_weights_are_seeded(rng64):
    x = rng64.random((1, 32, 32, 3), np.float32)
    a = FeatureExtractor("vgg19", layers=["conv2_1"], weights=None, seed=5)(x)["block2_conv1"]
    b = FeatureExtractor("vgg19", layers=["conv2_1"], weights="random", seed=5)(x)["block2_conv1"]
    c = FeatureExtractor("vgg19", layers=["conv2_1"], weights=None, seed=6)(x)["block2_conv1"]
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), c.numpy())


# --- Pooling -------------------------------------------------------------------------------

def np_pool(x, reduce):
    b, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return reduce(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def test_avg_pooling_averages(rng64):
    x = rng64.random((1, 33, 38, 3), np.float32)  # odd sizes: pooling drops the last row
    layers = ["conv1_2", "pool1", "conv2_1"]
    max_ex = FeatureExtractor("vgg19", layers=layers, weights=None, seed=2)
    avg_ex = FeatureExtractor("vgg19", layers=layers, weights=None, seed=2, pooling="avg")
    by_max, by_avg = max_ex(x), avg_ex(x)
    conv = by_max["block1_conv2"].numpy().astype(np.float64)
    np.testing.assert_array_equal(by_avg["block1_conv2"].numpy(), conv.astype(np.float32))
    np.testing.assert_allclose(by_avg["block1_pool"].numpy(), np_pool(conv, np.mean), rtol=1e-6,
                               atol=1e-4)
    np.testing.assert_allclose(by_max["block1_pool"].numpy(), np_pool(conv, np.max), rtol=1e-6)
    assert not np.allclose(by_avg["block2_conv1"].numpy(), by_max["block2_conv1"].numpy())
    assert not any(isinstance(l, keras.layers.MaxPooling2D) for l in avg_ex.model.layers)


def test_bad_options():
    with pytest.raises(ConfigError, match="pooling"):
        FeatureExtractor("vgg19", weights=None, pooling="median")
    with pytest.raises(ConfigError, match="only available for vgg16 / vgg19"):
        FeatureExtractor("resnet50", weights=None, pooling="avg")
    with pytest.raises(ConfigError, match="preprocessing"):
        FeatureExtractor("vgg19", weights=None, preprocessing="torch")
    with pytest.raises(ConfigError, match="weights must be"):
        FeatureExtractor("vgg19", layers=["conv1_1"], weights=3)


# --- Preprocessing -------------------------------------------------------------------------

def np_preprocess(x, mode):
    x = x.astype(np.float64)
    if mode == "caffe":
        return x[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68])
    if mode == "tf":
        return x * 2.0 - 1.0
    return (x * 255.0 - np.array([123.68, 116.779, 103.939]))[..., ::-1]  # Magenta's, as BGR


@pytest.mark.parametrize("mode", ["caffe", "tf", "magenta"])
def test_preprocessing_layer(rng64, mode):
    x = rng64.random((2, 5, 6, 3)).astype(np.float32)
    layer = features.BackbonePreprocessing(mode)
    out = np.asarray(layer(x))
    np.testing.assert_allclose(out, np_preprocess(x, mode), rtol=1e-6, atol=1e-4)
    assert layer.get_config()["mode"] == mode
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    np.testing.assert_array_equal(np.asarray(clone(x)), out)
    if mode in ("caffe", "magenta"):  # Keras' own preprocess_input on 0..255 input: Magenta's
        # RGB mean is Caffe's BGR mean reversed, so both modes feed Keras' VGG the same numbers
        keras_ref = keras.applications.vgg19.preprocess_input(x.astype(np.float64) * 255.0)
        np.testing.assert_allclose(out, keras_ref, rtol=1e-6, atol=1e-4)
    if mode == "tf":
        keras_ref = keras.applications.inception_v3.preprocess_input(x.astype(np.float64) * 255)
        np.testing.assert_allclose(out, keras_ref, rtol=1e-6, atol=1e-6)


def np_conv3x3_relu(x, kernel, bias):
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for dy in range(3):
        for dx in range(3):
            out += padded[:, dy:dy + h, dx:dx + w] @ kernel[dy, dx]
    return np.maximum(out + bias, 0.0)


@pytest.mark.parametrize("preprocessing, mode", [("keras", "caffe"), ("magenta", "magenta")])
def test_preprocessing_inside_the_model(rng64, preprocessing, mode):
    x = rng64.random((1, 6, 7, 3), np.float32)
    ex = FeatureExtractor("vgg19", layers=["conv1_1"], weights=None, seed=3,
                          preprocessing=preprocessing)
    conv = [l for l in ex.model._flatten_layers() if l.name == "block1_conv1"][0]
    expected = np_conv3x3_relu(np_preprocess(x, mode), conv.kernel.numpy().astype(np.float64),
                               conv.bias.numpy())
    np.testing.assert_allclose(ex(x)["block1_conv1"].numpy(), expected, rtol=1e-5, atol=1e-3)


# --- Weights -------------------------------------------------------------------------------

def test_offline_imagenet_error(tmp_path, monkeypatch):
    """No cached file and no network: the error names the file, the cache and the ways out."""
    import keras.src.backend.config as keras_config
    import keras.src.utils.file_utils as file_utils

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable (simulated)")

    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    with pytest.raises(WeightsUnavailableError) as info:
        FeatureExtractor("vgg19", layers=["conv1_1"], weights="imagenet")
    message = str(info.value)
    assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "$KERAS_HOME/models" in message
    assert os.path.join(str(tmp_path), "models") in message
    assert "weights=None" in message and "--weights=random" in message and ".h5" in message
    assert features.keras_cache_dir() == os.path.join(str(tmp_path), "models")
    leftovers = [f for _, _, files in os.walk(tmp_path) for f in files]
    assert leftovers == []  # no partial download left behind


def write_legacy_h5(model, path):
    """The layout of Keras' downloadable *_notop.h5 files, written with h5py directly."""
    with h5py.File(path, "w") as f:
        names = [l.name for l in model.layers if l.weights]
        f.attrs["layer_names"] = [n.encode() for n in names]
        for layer in model.layers:
            if not layer.weights:
                continue
            group = f.create_group(layer.name)
            weight_names = [f"{layer.name}/{w.name}:0" for w in layer.weights]
            group.attrs["weight_names"] = [n.encode() for n in weight_names]
            for name, weight in zip(weight_names, layer.weights):
                group.create_dataset(name, data=weight.numpy())


def test_local_h5_weights(tmp_path, rng64):
    source = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    features._random_init(source, seed=11)
    x = rng64.random((1, 24, 24, 3), np.float32)
    layers = ["conv1_1", "conv3_1"]
    expected = FeatureExtractor("vgg19", layers=layers, weights=None, seed=11)(x)

    legacy = tmp_path / "vgg19_notop.h5"
    write_legacy_h5(source, legacy)
    modern = tmp_path / "vgg19.weights.h5"
    source.save_weights(str(modern))
    for path in (legacy, modern):
        got = FeatureExtractor("vgg19", layers=layers, weights=str(path))(x)
        for name in ("block1_conv1", "block3_conv1"):
            np.testing.assert_array_equal(got[name].numpy(), expected[name].numpy())
    avg = FeatureExtractor("vgg19", layers=layers, weights=str(legacy), pooling="avg")(x)
    np.testing.assert_array_equal(avg["block1_conv1"].numpy(), expected["block1_conv1"].numpy())

    with pytest.raises(WeightsUnavailableError, match="not found: .*missing.h5"):
        FeatureExtractor("vgg19", layers=layers, weights=str(tmp_path / "missing.h5"))
    with pytest.raises(CheckpointError, match="cannot load vgg16 weights from .*vgg19_notop.h5"):
        FeatureExtractor("vgg16", layers=layers, weights=str(legacy))
    (tmp_path / "weights.txt").write_text("not weights")
    with pytest.raises(CheckpointError, match=r"must be a \.h5"):
        FeatureExtractor("vgg19", layers=layers, weights=str(tmp_path / "weights.txt"))


def test_import_does_not_download(tmp_path):
    """Importing the modules opens no network connection and writes nothing to the cache."""
    code = ("import socket\n"
            "def refuse(*a, **k): raise RuntimeError('network use at import')\n"
            "socket.socket.connect = refuse\n"
            "socket.create_connection = refuse\n"
            "import nst_tf.features, nst_tf.objective, nst_tf.losses\n"
            "print(nst_tf.features.WEIGHTS_FILES['vgg19'])\n")
    env = {**os.environ, "PYTHONPATH": ROOT, "KERAS_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert not (tmp_path / "models").exists()
