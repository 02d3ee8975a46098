"""nst_tf.models.pastiche.family.stylize: inputs, weights, models, shapes, caching and errors.

The reference is the Keras network called directly with the mixing vector (the network itself is
checked against Magenta's code in test_magenta_parity.py). Networks are small (alpha=0.25) with
random per-style gamma/beta, so that every style gives a different image.
"""

import numpy as np
import pytest

from magenta_compat.checkpoint import write_checkpoint
from nst_tf import images
from nst_tf.models.pastiche import family as pastiche
from nst_tf.errors import CheckpointError, ConfigError, ImageError, StyleWeightsError
from nst_tf.networks import pastiche_network
from nst_tf.models.pastiche.family import stylize
from tests.pastiche_helpers import random_pastiche

N = 4


@pytest.fixture(scope="module")
def net():
    return random_pastiche(N, seed=1)


@pytest.fixture
def image(rng):
    return rng.random((30, 41, 3)).astype(np.float32)


def direct(network, batch, vector):
    """The network called directly: batch [B,H,W,3], one mixing vector [N]."""
    return network([np.asarray(batch, np.float32), np.asarray(vector, np.float32)[None]]).numpy()


def test_mixture_dict_equals_network_with_mixture_vector(net, image):
    out = stylize(image, {0: 0.3, 2: 0.9}, model=net)
    expected = direct(net, image[None], [0.3, 0.0, 0.9, 0.0])[0]
    assert out.shape == (32, 44, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


def test_single_style_forms_give_identical_numbers(net, image):
    as_int = stylize(image, 2, model=net)
    as_dict = stylize(image, {2: 1.0}, model=net)
    as_vector = stylize(image, [0, 0, 1, 0], model=net)
    as_magenta_dict = stylize(image, "{2: 1.0}", model=net)
    as_magenta_list = stylize(image, "[2]", model=net)          # list mode adds a style axis
    for out in (as_dict, as_vector, as_magenta_dict, as_magenta_list[0]):
        np.testing.assert_array_equal(out, as_int)
    assert not np.allclose(as_int, stylize(image, 1, model=net), atol=1e-3)  # styles differ


def test_magenta_list_mode_gives_one_output_per_style(net, image):
    out = stylize(image, "[3, 0, 1]", model=net)
    assert out.shape == (3, 32, 44, 3)
    for k, style in enumerate([3, 0, 1]):
        np.testing.assert_array_equal(out[k], stylize(image, style, model=net))


def test_weight_matrix_gives_one_output_per_row(net, image):
    rows = np.array([[0.5, 0.5, 0, 0], [0, 0, 0, 2.0]], np.float32)
    out = stylize(image, rows, model=net)
    assert out.shape == (2, 32, 44, 3)
    np.testing.assert_array_equal(out[1], direct(net, image[None], rows[1])[0])


def test_weights_are_not_normalized(net, image):
    half = stylize(image, {1: 0.5}, model=net)
    full = stylize(image, {1: 1.0}, model=net)
    assert not np.allclose(half, full, atol=1e-3)


def test_batch_shapes_and_chunking(net, rng):
    batch = rng.random((3, 21, 16, 3)).astype(np.float32)
    out = stylize(batch, {0: 0.5, 1: 0.5}, model=net, batch_size=2)
    assert out.shape == (3, 24, 16, 3)
    np.testing.assert_allclose(out, direct(net, batch, [0.5, 0.5, 0, 0]), atol=1e-6)
    for b in range(3):   # instance norm: each image is independent of the others in the batch
        np.testing.assert_allclose(out[b], stylize(batch[b], {0: 0.5, 1: 0.5}, model=net),
                                   atol=1e-6)
    several = stylize(batch, "[1, 2]", model=net)
    assert several.shape == (3, 2, 24, 16, 3)
    np.testing.assert_allclose(several[:, 1], stylize(batch, 2, model=net), atol=1e-6)


def test_output_size_and_crop(net, image):
    full = stylize(image, 0, model=net)
    cropped = stylize(image, 0, model=net, crop=True)
    assert full.shape == (32, 44, 3)                  # 4*ceil(30/4) x 4*ceil(41/4), like Magenta
    assert cropped.shape == image.shape
    np.testing.assert_array_equal(cropped, full[:30, :41])
    assert 0.0 <= full.min() and full.max() <= 1.0


def test_path_uint8_and_grayscale_inputs(net, tmp_path, image):
    path = str(tmp_path / "content.png")
    images.save_image(path, image)
    loaded = images.load_image(path)
    np.testing.assert_array_equal(stylize(path, 1, model=net), stylize(loaded, 1, model=net))
    as_uint8 = (loaded * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(stylize(as_uint8, 1, model=net), stylize(loaded, 1, model=net))
    grey_path = str(tmp_path / "grey.png")
    grey = (image[..., 0] * 255).astype(np.uint8)
    from PIL import Image
    Image.fromarray(grey, mode="L").save(grey_path)
    tiled = np.repeat(images.uint8_to_float(grey)[..., None], 3, axis=-1)
    np.testing.assert_array_equal(stylize(grey_path, 1, model=net), stylize(tiled, 1, model=net))


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_checkpoint_path_model_and_cache(net, image, tmp_path, version):
    path = write_checkpoint(net, str(tmp_path / "model.ckpt"), version=version)
    out = stylize(image, {0: 0.2, 3: 0.8}, model=path)
    np.testing.assert_array_equal(out, stylize(image, {0: 0.2, 3: 0.8}, model=net))
    assert pastiche.load_model(path) is pastiche.load_model(path)            # cached
    assert pastiche.load_model(str(tmp_path)) is pastiche.load_model(path)   # folder → latest
    other = random_pastiche(N, seed=7)
    write_checkpoint(other, path, version=version)                          # rewritten → reloaded
    np.testing.assert_array_equal(stylize(image, 0, model=path), stylize(image, 0, model=other))


def test_num_styles_and_alpha_checks(net, tmp_path):
    path = write_checkpoint(net, str(tmp_path / "model.ckpt"))
    assert pastiche.load_model(path, num_styles=N, alpha=0.25) is pastiche.load_model(path)
    with pytest.raises(CheckpointError, match=rf"num_styles=32 was given.*has {N} styles"):
        pastiche.load_model(path, num_styles=32)
    with pytest.raises(CheckpointError, match=r"alpha=1 was given.*alpha=0.25"):
        pastiche.load_model(path, alpha=1.0)


def test_compiled_function_is_cached_and_not_retraced(net, rng):
    forward = pastiche.forward_function(net, jit_compile=False)
    assert pastiche.forward_function(net, jit_compile=False) is forward
    stylize(rng.random((12, 20, 3)), 0, model=net, jit_compile=False)
    stylize(rng.random((17, 9, 3)), {1: 0.5}, model=net, jit_compile=False)
    assert forward.experimental_get_tracing_count() == 1


def test_xla_gives_the_same_numbers(net, image):
    eager = stylize(image, {0: 0.4, 1: 0.6}, model=net, jit_compile=False)
    xla = stylize(image, {0: 0.4, 1: 0.6}, model=net, jit_compile=True)
    np.testing.assert_allclose(xla, eager, atol=1e-5)


@pytest.mark.parametrize("weights, fragment", [
    ([0.5, 0.5, 0.0], r"shape \(3,\).*num_styles=4"),
    (np.ones((2, 5)), r"shape \(2, 5\).*num_styles=4"),
    ([0.5, np.nan, 0.0, 0.0], "nan"),
    ({0: np.inf}, "finite"),
    (4, r"4 is out of range.*num_styles=4"),
    (-1, "out of range"),
    ({9: 1.0}, "out of range"),
    (True, "shape"),
    ("[0, 0]", "more than once"),
    ("{0: 1", "not a Python literal"),
    (object(), "style weights must be"),
])
def test_bad_weights(net, image, weights, fragment):
    with pytest.raises(StyleWeightsError, match=fragment):
        stylize(image, weights, model=net)


@pytest.mark.parametrize("content, fragment", [
    (np.zeros((16, 16, 4), np.float32), r"\[H, W, 3\]"),
    (np.zeros((16, 16), np.float32), r"\[H, W, 3\]"),
    (np.full((16, 16, 3), np.nan, np.float32), "NaN"),
    (np.zeros((4, 40, 3), np.float32), "at least 5x5"),
    (np.full((16, 16, 3), 200.0, np.float32), r"expected floats in \[0, 1\]"),
    (np.zeros((0, 16, 16, 3), np.float32), "empty"),
    ("/no/such/image.png", "not found"),
])
def test_bad_content(net, content, fragment):
    with pytest.raises(ImageError, match=fragment):
        stylize(content, 0, model=net)


def test_bad_models_and_options(net, image, tmp_path):
    with pytest.raises(CheckpointError, match="not found.*preset names are monet, varied"):
        stylize(image, 0, model=str(tmp_path / "missing.ckpt"))
    with pytest.raises(CheckpointError, match="unknown|not found|preset"):
        stylize(image, 0, model="vareid")
    with pytest.raises(ConfigError, match="preset name"):
        stylize(image, 0, model=42)
    import keras
    plain = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 1)])
    with pytest.raises(ConfigError, match="not a pastiche network"):
        stylize(image, 0, model=plain)
    labels_net = pastiche_network(N, alpha=0.25, style_input="labels")
    with pytest.raises(ConfigError, match="labels"):
        stylize(image, 0, model=labels_net)
    with pytest.raises(ConfigError, match="batch_size"):
        stylize(image, 0, model=net, batch_size=0)
    with pytest.raises(ConfigError, match="jit_compile"):
        stylize(image, 0, model=net, jit_compile="sometimes")


def test_bfloat16_precision_is_close_and_follows_the_weights(image):
    network = random_pastiche(N, seed=2)
    exact = stylize(image, {0: 0.5, 3: 0.5}, model=network)
    fast = stylize(image, {0: 0.5, 3: 0.5}, model=network, precision="bfloat16")
    assert fast.dtype == np.float32 and fast.shape == exact.shape
    # About twice the errors measured: mean 0.0043, max 0.029 (and 0.0049 below).
    assert 0 < np.mean(np.abs(fast - exact)) < 0.009 and np.max(np.abs(fast - exact)) < 0.06
    fresh = random_pastiche(N, seed=9)
    network.set_weights(fresh.get_weights())        # the bfloat16 twin must not go stale
    again = stylize(image, 1, model=network, precision="bfloat16")
    assert np.mean(np.abs(again - stylize(image, 1, model=fresh))) < 0.01
    with pytest.raises(ConfigError, match="precision"):
        stylize(image, 0, model=network, precision="float16")


def test_keras_file_model(net, image, tmp_path):
    path = str(tmp_path / "pastiche.keras")
    net.save(path)
    np.testing.assert_array_equal(stylize(image, {1: 0.5, 2: 0.5}, model=path),
                                  stylize(image, {1: 0.5, 2: 0.5}, model=net))
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="cannot load Keras model"):
        stylize(image, 0, model=str(broken))


def test_fast_form_is_close_and_leaves_the_network_alone(image):
    network = random_pastiche(N, seed=4)
    exact = stylize(image, {0: 0.5, 2: 0.7}, model=network)
    fast = stylize(image, {0: 0.5, 2: 0.7}, model=network, fast=True)
    assert 0 < np.max(np.abs(fast - exact)) < 1e-4
    assert not any(getattr(layer, "fast", False) for layer in network.layers)
    fresh = random_pastiche(N, seed=8)
    network.set_weights(fresh.get_weights())        # the fast twin must not go stale
    np.testing.assert_allclose(stylize(image, 3, model=network, fast=True),
                               stylize(image, 3, model=fresh), atol=1e-4)
