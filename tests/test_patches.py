"""Stylization by patches (nst_tf.patches, nst_tf.stylize(tile_size=...)).

References are the same networks run on the whole image. ``"exact"`` statistics must give the
whole-image output (1e-5) for every family; a thumbnail as large as the image gives whole-image
statistics; a halo one stride smaller than the receptive field needs is not exact; and a seam
metric separates seamless outputs (about 1) from per-patch statistics (well above 1).
"""

import os

import keras
import numpy as np
import pytest
from PIL import Image

import nst_tf
from nst_tf import images, norm_statistics, patches
from nst_tf.device import dtype_policy
from nst_tf.errors import ConfigError, NSTError
from nst_tf.families import resolve
from nst_tf.networks import arbitrary_network, johnson_network, texture_network, transformer_of
from nst_tf.receptive_field import footprint, minimal_halo
from tests.pastiche_helpers import random_pastiche

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTO = os.path.join(HERE, "images", "content_sq.jpg")           # 256x256
STYLES = [os.path.join(HERE, "images", "style", f) for f in ("doesburg_sq.jpg", "mauclair.jpg")]
ADAIN = os.path.join(HERE, "fixtures", "adain")


def he_weights(network, seed=0):
    """Random He-normal conv kernels (the default init makes near-constant outputs)."""
    rng = np.random.default_rng(seed)
    for weight in network.weights:
        shape = tuple(weight.shape)
        if len(shape) == 4 and weight.trainable:
            weight.assign(rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1])))
    return network


def smooth_weights(network, seed=0):
    """Kernels near a signed box filter: the network's output follows the content's large-scale
    structure, as a trained one does, instead of pixel noise (a seam metric needs that)."""
    rng = np.random.default_rng(seed)
    for weight in network.weights:
        shape = tuple(weight.shape)
        if len(shape) == 4:
            signs = rng.choice([-1.0, 1.0], size=(1, 1) + shape[2:])
            box = 2.0 / np.prod(shape[:-1]) * (1 + 0.3 * rng.standard_normal(shape)) * signs
            weight.assign(box.astype(np.float32))
    return network


def photo(height=150, width=131):
    return images.load_image(PHOTO)[:height, :width]


def tiled(content, style, model, tile_size=48, **options):
    return nst_tf.stylize(content, style, model=model, tile_size=tile_size, **options)


# --- The grid and its errors --------------------------------------------------------------------

@pytest.mark.parametrize("tile_size, fragment", [
    (0, "positive"), (-8, "positive"), (True, "positive"), (12.0, "positive"),
    ("64", "positive"), (6, "tile_size=6 is not a multiple of 4, .* use 4 or 8"),
    (2, "use 4$"),
])
def test_bad_tile_sizes_are_one_line_config_errors(tile_size, fragment):
    net = random_pastiche(2)
    with pytest.raises(ConfigError, match=fragment) as error:
        tiled(np.zeros((20, 20, 3)), 0, net, tile_size=tile_size)
    assert "\n" not in str(error.value)


def test_bad_statistics_options_are_config_errors():
    net = random_pastiche(2)
    with pytest.raises(ConfigError, match="statistics must be one of thumbnail, exact, patch"):
        tiled(np.zeros((20, 20, 3)), 0, net, statistics="global")
    with pytest.raises(ConfigError, match="thumbnail_size must be a positive"):
        tiled(np.zeros((20, 20, 3)), 0, net, thumbnail_size=0)
    with pytest.raises(ConfigError, match="statistics must be one of"):     # without tiles too
        nst_tf.stylize(np.zeros((20, 20, 3)), 0, model=net, statistics="exakt")
    with pytest.raises(ConfigError, match="thumbnail_size=4 is smaller than the 5 pixels"):
        tiled(np.zeros((20, 20, 3)), 0, net, thumbnail_size=4)
    family, network = resolve(net)
    model = family.patch_models(network, np.zeros((1, 20, 20, 3), np.float32), 0)[1][0][0]
    with pytest.raises(ConfigError, match="halo must be a multiple of the network's stride 4"):
        patches.run(model, 8, halo=6)


def test_thumbnail_shape_keeps_the_aspect_ratio_and_the_network_minimum():
    assert patches.thumbnail_shape(8000, 12000, 1024) == (683, 1024)
    assert patches.thumbnail_shape(10000, 10000, 1024) == (1024, 1024)
    assert patches.thumbnail_shape(20, 20000, 1024, min_size=5) == (5, 1024)
    assert patches.thumbnail_shape(1000, 3000, 512, min_size=64, multiple=32) == (160, 512)
    assert patches.thumbnail_shape(300, 200, 1024) == (300, 200)


# --- Exact statistics: the whole-image output, family by family ---------------------------------

def assert_exact_and_thumbnail_equal_whole(content, style, model, tile_size=48, **options):
    whole = nst_tf.stylize(content, style, model=model, **options)
    exact = tiled(content, style, model, tile_size, statistics="exact", **options)
    assert exact.shape == whole.shape
    assert np.abs(exact - whole).max() <= 1e-5
    thumbnail = tiled(content, style, model, tile_size, thumbnail_size=1024, **options)
    assert np.abs(thumbnail - whole).max() <= 1e-5
    own = tiled(content, style, model, tile_size, statistics="patch", **options)
    assert np.abs(own - whole).max() > 1e-2            # the test can fail
    return whole, exact


@pytest.mark.slow
def test_pastiche_exact_patches_equal_the_whole_image():
    # fast=True: moments by matrix products, within ~1e-6 of float64 (Magenta's reduce_mean
    # arithmetic is itself ~3e-5 away from float64 at this size; exact patches are closer).
    net = random_pastiche(3, seed=4)
    whole, _ = assert_exact_and_thumbnail_equal_whole(photo(), "[0, 2]", net, fast=True)
    assert whole.shape == (2, 152, 132, 3)
    assert np.abs(whole[0] - whole[1]).mean() > 0.05   # the styles differ
    assert_exact_and_thumbnail_equal_whole(photo()[None], {0: 0.3, 1: 0.7}, net, fast=True,
                                           crop=True)


@pytest.mark.slow
def test_arbitrary_exact_patches_equal_the_whole_image():
    net = arbitrary_network(alpha=0.25, depth_multiplier=0.25)
    he_weights(transformer_of(net), seed=1)
    he_weights(net.get_layer("style_prediction"), seed=2)
    whole, _ = assert_exact_and_thumbnail_equal_whole(photo(), STYLES, net, fast=True,
                                                      style_size=64, strength=0.8)
    assert whole.shape == (2, 150, 131, 3)
    assert np.abs(whole[0] - whole[1]).mean() > 0.02


def test_adain_exact_patches_equal_the_whole_image():
    net = nst_tf.load_adain(f"{ADAIN}/vgg_normalised.pth", f"{ADAIN}/decoder.pth")
    whole, _ = assert_exact_and_thumbnail_equal_whole(photo(), STYLES, net, tile_size=48,
                                                      strength=0.7, style_size=None)
    assert whole.shape == (2, 152, 136, 3) and whole.std() > 0.05
    with pytest.raises(ConfigError, match="mask= cannot be combined with tile_size"):
        tiled(photo(), STYLES, net, mask=np.ones((10, 10)))


@pytest.mark.slow
def test_johnson_exact_patches_equal_the_whole_image_in_float32_and_float64():
    net = he_weights(johnson_network(alpha=0.25, num_residual=2))
    assert_exact_and_thumbnail_equal_whole(photo(), None, net, crop=True)
    with dtype_policy("float64"):
        net64 = he_weights(johnson_network(alpha=0.25, num_residual=2))
    whole = nst_tf.stylize(photo(), model=net64)
    exact = tiled(photo(), None, net64, statistics="exact")
    assert np.abs(exact - whole).max() <= 1e-6       # float64 inside, float32 output


def with_float64_statistics(content, style, net, **options):
    """The whole image through the family's own body, eagerly, with every normalization's
    statistics computed in NumPy float64 (the reference both float32 sides are measured by)."""
    family, network = resolve(net)
    model = family.patch_models(network, content[None], style, **options)[1][0][0]
    with norm_statistics.float64_reference():
        out = np.asarray(model.body(content[None], *model.extras))[0]
    return np.clip(out[:content.shape[0], :content.shape[1]], 0.0, 1.0)


def tf_nn_moments(x):
    import tensorflow as tf

    mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
    return mean, variance


@pytest.mark.slow
def test_at_a_size_where_float32_sums_drift_both_sides_agree_with_float64_statistics(
        monkeypatch):
    """640x640 (409,600 pixels per channel at full resolution): Magenta's float32 moments
    (``tf.nn.moments``, one long running sum per channel) drift enough to move the output by
    3e-5 (2.4e-3 at 1100x1500, ``benchmarks/exact_patches.py``); it was the whole image, not the
    patches, that was off. Now both sides land within float32's resolution of the float64
    statistics, and on each other."""
    content = images.resize(photo(256, 256), (640, 640))
    reference = with_float64_statistics(content, 1, random_pastiche(2, seed=4), crop=True)
    whole = nst_tf.stylize(content, 1, model=random_pastiche(2, seed=4), crop=True)
    exact = tiled(content, 1, random_pastiche(2, seed=4), 160, statistics="exact", crop=True)
    # Measured: whole 6.1e-6 and exact 4.1e-6 from the reference (the float32 arithmetic of the
    # rest of the network), 5.3e-6 from each other; Magenta's moments 3.2e-5.
    assert np.abs(whole - reference).max() <= 1e-5
    assert np.abs(exact - reference).max() <= 1e-5
    assert np.abs(exact - whole).max() <= 1e-5
    # The old whole-image arithmetic, on a fresh network (a new trace): the side that was off.
    monkeypatch.setattr(norm_statistics, "two_pass_moments", tf_nn_moments)
    magenta = nst_tf.stylize(content, 1, model=random_pastiche(2, seed=4), crop=True)
    assert np.abs(magenta - reference).max() > max(2e-5, 3 * np.abs(exact - reference).max())


@pytest.mark.slow
def test_texture_stylization_exact_patches_equal_the_whole_image():
    # float64 inside: 19 instance norms of float32 reduce_mean are ~2e-5 off float64 here,
    # more than the patches (whose statistics are summed in float64) differ from float64.
    with dtype_policy("float64"):
        net = he_weights(texture_network(num_scales=3, channels=4, mode="stylize",
                                         norm="instance"))
    batch = np.stack([photo(), photo()[::-1]])
    whole, _ = assert_exact_and_thumbnail_equal_whole(batch, None, net, seed=3, batch_size=2)
    assert whole.shape == (2, 150, 131, 3)
    assert np.abs(whole - nst_tf.stylize(batch, model=net, seed=4)).max() > 0.05  # the noise
    # Batch norm (the 2016 network) uses moving statistics: patches are exact as they are.
    net = he_weights(texture_network(num_scales=2, channels=4, mode="stylize"))
    whole = nst_tf.stylize(photo(), model=net, seed=1)
    assert np.abs(tiled(photo(), None, net, statistics="patch", seed=1) - whole).max() <= 1e-5


# --- Thumbnail statistics, halo, seams ----------------------------------------------------------

def test_thumbnail_patches_equal_the_whole_image_normalized_with_thumbnail_statistics():
    net = random_pastiche(2, seed=5)
    content = photo()
    family, network = resolve(net)
    model = family.patch_models(network, content[None], 1)[1][0][0]
    shape = patches.thumbnail_shape(150, 131, 64, min_size=5)
    with norm_statistics.recording() as recorded:
        model.body(images.resize(content, shape)[None], model.extras[0])
    with norm_statistics.replaying(recorded.statistics):
        reference = model.body(content[None], model.extras[0]).numpy()[0]
    out = tiled(content, 1, net, thumbnail_size=64)
    assert shape == (64, 56)
    assert np.abs(out - reference).max() <= 1e-5
    assert np.abs(out - nst_tf.stylize(content, 1, model=net)).max() > 1e-3


def test_a_halo_one_stride_smaller_than_the_receptive_field_is_not_exact():
    net = he_weights(johnson_network(alpha=0.25, num_residual=1), seed=3)
    content = photo()
    family, network = resolve(net)
    model = family.patch_models(network, content[None], None)[1][0][0]
    halo = minimal_halo(footprint(model.chain))
    reference = patches.run(model, 48, "exact")
    assert np.abs(reference - nst_tf.stylize(content, model=net)).max() <= 1e-5
    short = patches.run(model, 48, "exact", halo=halo - 4)
    assert np.abs(short - reference).max() > 1e-4


def test_seam_ratio_is_about_one_for_shared_statistics_and_large_for_per_patch_ones():
    net = smooth_weights(johnson_network(alpha=0.25, num_residual=1), seed=0)
    content = images.load_image(PHOTO)
    whole = nst_tf.stylize(content, model=net, crop=True)
    ratios = {statistics: patches.seam_ratio(tiled(content, None, net, 64, crop=True,
                                                   statistics=statistics, thumbnail_size=128),
                                             64)
              for statistics in patches.STATISTICS}
    assert 0.8 < patches.seam_ratio(whole, 64) < 1.25
    assert abs(ratios["exact"] - patches.seam_ratio(whole, 64)) < 1e-3
    assert 0.8 < ratios["thumbnail"] < 1.25
    assert ratios["patch"] > 3.0


def test_seam_ratio_sees_a_step_at_the_borders():
    smooth = np.tile(np.linspace(0, 1, 64)[None, :, None], (64, 1, 3))
    assert patches.seam_ratio(smooth, 16) == pytest.approx(1.0)
    stepped = smooth + (np.arange(64)[None, :, None] // 16) * 0.1
    assert patches.seam_ratio(stepped, 16) > 3.0
    with pytest.raises(ConfigError, match="no patch border"):
        patches.seam_ratio(smooth[:10, :10], 16)


# --- Streaming to a file ------------------------------------------------------------------------

def test_stylize_to_file_streams_patches_into_an_image_file(tmp_path, capsys):
    net = random_pastiche(2, seed=6)
    content = str(tmp_path / "photo.png")
    images.save_image(content, photo(61, 70))
    out = str(tmp_path / "out.png")
    assert nst_tf.stylize_to_file(content, out, 1, net, tile_size=16, statistics="exact",
                                  rounding="truncate", progress=True) == out
    expected = nst_tf.stylize(content, 1, model=net)
    written = np.asarray(Image.open(out))
    assert written.shape == expected.shape == (64, 72, 3)
    assert np.abs(written.astype(int) - images.float_to_uint8(expected, "truncate")).max() <= 1
    assert sorted(os.listdir(tmp_path)) == ["out.png", "photo.png"]   # no map left behind
    err = capsys.readouterr().err
    assert "patch 1/" in err and "(statistics 1/16)" in err and "(output)" in err
    with pytest.raises(ConfigError, match="writes one image"):
        nst_tf.stylize_to_file(content, out, "[0, 1]", net, tile_size=16)
    with pytest.raises(NSTError, match="does not exist"):
        nst_tf.stylize_to_file(content, str(tmp_path / "missing" / "out.png"), 1, net,
                               tile_size=16)


@pytest.mark.slow
def test_stylize_to_file_holds_the_float_input_and_a_uint8_map_only(tmp_path, monkeypatch):
    """The memory figures of the docs: a 12,000 × 8,000 result needs the float32 input
    (12,000·8,000·3·4 B = 1.15 GB) and the uint8 map on disk (·3 B = 0.29 GB), no float32
    output. Measured at 400 × 600 with exact statistics: the map is an on-disk ``uint8``
    ``[H, W, 3]``, and the NumPy memory of the call (tracemalloc, after a warm-up run that
    traced the functions) stays under one float32 image, while :func:`nst_tf.stylize`, which
    returns a float32 image, holds at least one more."""
    import tracemalloc

    net = random_pastiche(2, alpha=0.25, seed=6)
    y, x = np.mgrid[0:400, 0:600] / 400.0
    content = np.stack([x % 1, y, (x + y) % 1], -1).astype(np.float32)
    maps = []
    real_call = patches.Uint8Sink.__call__

    def sink_call(self, height, width):
        result = real_call(self, height, width)
        maps.append((type(self.array), self.array.dtype, self.array.shape))
        return result

    monkeypatch.setattr(patches.Uint8Sink, "__call__", sink_call)
    out = str(tmp_path / "out.png")

    def peak(run):
        tracemalloc.start()
        try:
            run()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    options = dict(tile_size=200, statistics="exact")
    to_file = lambda: nst_tf.stylize_to_file(content, out, 1, net, **options)  # noqa: E731
    to_file()                                                   # traces the patch functions
    streamed = peak(to_file)
    whole = peak(lambda: nst_tf.stylize(content, 1, model=net, **options))
    assert maps[-1] == (np.memmap, np.uint8, (400, 600, 3))
    assert streamed < content.nbytes and whole - streamed > 0.9 * content.nbytes, \
        (streamed, whole)
    assert (12_000 * 8_000 * 3 * 4 / 1e9, 12_000 * 8_000 * 3 / 1e9) == (1.152, 0.288)


def test_uint8_sink_rounds_and_removes_its_file(tmp_path):
    sink = patches.Uint8Sink(str(tmp_path))
    out = sink(2, 3)
    out[0:1, 1:3] = np.full((1, 2, 3), 0.5, np.float32)
    assert sink.array[0, 1, 0] == 128 and sink.array[1, 1, 0] == 0
    assert len(os.listdir(tmp_path)) == 1
    sink.close()
    assert os.listdir(tmp_path) == []


def test_families_without_layers_cannot_be_tiled():
    class Opaque(keras.Model):
        def call(self, x):
            return x
    with pytest.raises(ConfigError, match="cannot be run by patches"):
        nst_tf.families.Family().patch_models(Opaque(), np.zeros((1, 8, 8, 3)), None)
